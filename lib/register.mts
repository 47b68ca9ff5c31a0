/**
 * ESM preload: `node --import fastify-observability/register app.mjs`
 *
 * 1. Registers the OpenTelemetry ESM loader hook (import-in-the-middle, as shipped
 *    by @opentelemetry/instrumentation in hook.mjs) with `module.register()`, in the
 *    "only modules that an instrumentation hooks" mode (createAddHookMessageChannel),
 *    so ESM `import`s of instrumented modules are patched and nothing else is wrapped.
 * 2. Starts the SDK from the OTEL_* environment variables with the same code as the
 *    CommonJS preload (the CJS build of ./sdk, shared through require's cache), and
 *    flushes it on SIGTERM / SIGINT / 'beforeExit'.
 * 3. Waits until the loader has acknowledged every hooked module, so the application's
 *    static imports are instrumented.
 */
import { createRequire, register } from 'node:module'
import type { RegisterOptions } from 'node:module'
import { pathToFileURL } from 'node:url'
import { isMainThread } from 'node:worker_threads'
import type * as Sdk from './sdk/index.js'
import type * as Packages from './sdk/packages.js'

interface HookChannel {
  registerOptions: RegisterOptions<unknown>
  waitForAllMessagesAcknowledged (): Promise<void>
}

const require = createRequire(import.meta.url)
const sdk = require('./sdk/index.js') as typeof Sdk
const packages = require('./sdk/packages.js') as typeof Packages

/** The loader hook (@opentelemetry/instrumentation's hook.mjs) and the import-in-the-middle next to it. */
function locateHook (): { hookUrl: string, iitm: { createAddHookMessageChannel?: () => HookChannel } | undefined } {
  // hook.mjs is an export of @opentelemetry/instrumentation in the 3.x line (whose package.json is
  // not), and a plain file of the 2.x one: resolving it by name works for both.
  const HOOK = '@opentelemetry/instrumentation/hook.mjs'
  // The instrumentations' own copy first (auto-instrumentations'), so the loader hook and their
  // Hook() calls share one import-in-the-middle; then sdk-node's; then one next to this package.
  let hookPath: string | undefined
  for (const from of ['@opentelemetry/auto-instrumentations-node', '@opentelemetry/sdk-node']) {
    try {
      hookPath = createRequire(require.resolve(from)).resolve(HOOK)
      break
    } catch {}
  }
  hookPath ??= require.resolve(HOOK)
  let iitm
  try {
    iitm = createRequire(hookPath)('import-in-the-middle')
  } catch {
    iitm = undefined
  }
  return { hookUrl: pathToFileURL(hookPath).href, iitm }
}

if (isMainThread) {
  // Validate first: invalid configuration throws before any hook is installed.
  const config = sdk.resolveTelemetryConfig()
  let channel: HookChannel | undefined
  if (!config.disabled) {
    packages.requireSdkNode() // without the SDK: one error saying what to install, before any hook
    const { hookUrl, iitm } = locateHook()
    if (typeof iitm?.createAddHookMessageChannel === 'function') {
      channel = iitm.createAddHookMessageChannel()
      register(hookUrl, import.meta.url, channel.registerOptions as RegisterOptions<unknown>)
    } else {
      register(hookUrl, import.meta.url)
    }
  }
  const handle = sdk.startTelemetry()
  sdk.registerShutdownHooks(handle)
  if (channel) await channel.waitForAllMessagesAcknowledged()
  if (handle.enabled) {
    // Load the core http modules through the ESM loader now: otherwise a CommonJS package that
    // requires them first (fastify) gets them patched and instrumentation-http then skips the
    // ESM namespace, so an app's named `import { get } from 'node:http'` stays unpatched.
    await import('node:http')
    await import('node:https')
  }
}
