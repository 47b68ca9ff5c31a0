// Flushing spans when the process is asked to end, without changing how it ends.
import type { ShutdownHooksOptions, TelemetryHandle } from './options'
import { requestShutdownOnClose } from '../telemetry-handle'

const hooked = new WeakSet<TelemetryHandle>()

/**
 * Listeners for `signal` other than ours and other than signal-exit's. signal-exit (v3 and
 * v4, used by many tools) listens to every signal but only acts when it is the last one
 * listening, so it must not count as "the app handles this signal" (or neither would act).
 * Each loaded signal-exit instance adds exactly one listener per signal and counts itself in
 * the emitter it publishes globally.
 */
function appListenerCount (signal: NodeJS.Signals, ours: (...args: unknown[]) => void): number {
  const others = process.listeners(signal).filter(l => l !== ours).length
  const v4 = (globalThis as Record<symbol, { count?: unknown } | undefined>)[Symbol.for('signal-exit emitter')]?.count
  const v3 = (process as unknown as { __signal_exit_emitter__?: { count?: unknown } }).__signal_exit_emitter__?.count
  const signalExit = (typeof v4 === 'number' ? v4 : 0) + (typeof v3 === 'number' ? v3 : 0)
  return others - signalExit
}

/**
 * Flushes telemetry on SIGTERM/SIGINT and on 'beforeExit'.
 *
 * On a signal the application does not handle itself: shutdown() (bounded by
 * shutdownTimeoutMillis), then the listener removes itself and re-raises the signal, so the
 * process ends exactly as it would have without it; a second signal while flushing ends it at once.
 *
 * On a signal the application handles itself (typically `await app.close(); process.exit()`), its
 * listeners decide how and when the process ends, and requests may still be in flight: the SDK is
 * only flushed, not shut down, so the spans of those requests, which end while Fastify drains, are
 * still exported: the plugin shuts the SDK down when Fastify has closed (or 'beforeExit' does, for
 * an app without the plugin). Shutting down here lost every in-flight request's span.
 *
 * Returns a function that removes the hooks.
 */
export function registerShutdownHooks (handle: TelemetryHandle, options: ShutdownHooksOptions = {}): () => void {
  if (!handle.enabled || hooked.has(handle)) return () => {}
  hooked.add(handle)
  const signals = options.signals ?? ['SIGTERM', 'SIGINT']
  const listeners = new Map<NodeJS.Signals, () => void>()
  let flushing = false

  const uninstall = (): void => {
    for (const [sig, fn] of listeners) process.removeListener(sig, fn)
    listeners.clear()
    process.removeListener('beforeExit', onBeforeExit)
    hooked.delete(handle)
  }

  const reRaise = (signal: NodeJS.Signals): void => {
    uninstall()
    process.kill(process.pid, signal)
  }

  for (const signal of signals) {
    const onSignal = (): void => {
      const appHandlesIt = appListenerCount(signal, onSignal) > 0
      if (flushing) {
        if (!appHandlesIt) reRaise(signal)
        return
      }
      if (appHandlesIt) {
        requestShutdownOnClose()
        void handle.forceFlush()
        return
      }
      flushing = true
      void handle.shutdown().then(() => reRaise(signal))
    }
    listeners.set(signal, onSignal)
    process.on(signal, onSignal)
  }

  function onBeforeExit (): void {
    void handle.shutdown()
  }
  if (options.beforeExit !== false) process.once('beforeExit', onBeforeExit)

  return uninstall
}
