// The user's OpenTelemetry SDK packages, loaded at run time. Nothing is imported statically: the
// SDK is an optional peer, and which line is installed (2.x with sdk-node 0.2xx, or 3.x with
// 0.3xx, where sdk-trace-base and the Jaeger exporter are gone) is known only here. Packages the
// SDK itself depends on (sdk-trace, resources, the OTLP exporters) come from sdk-node's own
// location first: they are then the copies the SDK runs with, whatever npm hoisted next to us.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { TelemetryPackageMissingError } from './errors'
import { resolveFrom } from '../installed'

export const SDK_NODE = '@opentelemetry/sdk-node'
export const AUTO_INSTRUMENTATIONS = '@opentelemetry/auto-instrumentations-node'
/** What a user without the SDK is told to install. */
export const SDK_INSTALL = `${SDK_NODE} ${AUTO_INSTRUMENTATIONS}`
const WHO = 'fastify-observability/sdk (and /register)'

function sdkNodeMain (): string | undefined {
  return resolveFrom(require, SDK_NODE)
}

/** The installed @opentelemetry/sdk-node's version, undefined when it is not installed. */
export function sdkNodeVersion (): string | undefined {
  const main = sdkNodeMain()
  if (main === undefined) return undefined
  // Its package.json is not always an export: walk up from the entry point to it.
  for (let dir = dirname(main); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === SDK_NODE) return pkg.version
    } catch {}
  }
  return undefined
}

/** The SDK line: 3 from sdk-node 0.300 on (SDK 3.x), else 2. undefined when sdk-node is absent. */
export function sdkLine (): 2 | 3 | undefined {
  const version = sdkNodeVersion()
  if (version === undefined) return undefined
  const [major, minor] = version.split('.').map(Number)
  return major > 0 || minor >= 300 ? 3 : 2
}

export function requireSdkNode (): typeof import('@opentelemetry/sdk-node') {
  if (sdkNodeMain() === undefined) throw new TelemetryPackageMissingError(WHO, SDK_NODE, SDK_INSTALL)
  return require(SDK_NODE)
}

/** A package next to this plugin (the user installed it), e.g. auto-instrumentations. */
export function requireInstalled<T> (name: string, why: string, install = name): T {
  if (resolveFrom(require, name) === undefined) throw new TelemetryPackageMissingError(why, name, install)
  return require(name) as T
}

/** A package the SDK depends on: sdk-node's own copy first, else one installed next to this plugin. */
export function requireFromSdk<T> (name: string, why: string, install = name): T {
  const main = sdkNodeMain()
  if (main !== undefined) {
    const fromSdk = createRequire(main)
    if (resolveFrom(fromSdk, name) !== undefined) return fromSdk(name) as T
  }
  return requireInstalled<T>(name, why, install)
}
