// Where the ./register preload publishes its SDK handle, so the plugin (which must never load the
// SDK itself) can flush it on close. One global key, defined here only.

/** Global symbol under which the active `TelemetryHandle` is published. */
export const TELEMETRY_HANDLE_SYMBOL: unique symbol = Symbol.for('fastify-observability.telemetry')

/** What the plugin needs of a published handle. */
export interface FlushableHandle {
  forceFlush?: () => Promise<void>
  shutdown?: () => Promise<void>
  /** Spans in failed exports (lib/sdk/export-watch.ts), served at /metrics (lib/export-failures.ts). */
  failedSpans?: number
  /** Spans dropped with the batch queue full (lib/sdk/queue-watch.ts), served at /metrics too. */
  droppedSpans?: number
  /** The span attribute value length limit given to the SDK in code: the plugin cuts there (lib/tracing.ts). */
  attributeValueLengthLimit?: number
}

/** The handle published by the last startTelemetry() call (e.g. from the preload), if any. */
export function publishedHandle<T extends FlushableHandle = FlushableHandle> (): T | undefined {
  return (globalThis as Record<symbol, T | undefined>)[TELEMETRY_HANDLE_SYMBOL]
}

/**
 * Set by the preload's signal hook when the application handles the signal itself: the plugin then
 * shuts the SDK down (not just flushes it) once Fastify has closed, after the requests drained, so
 * the whole SDK (metric readers, log processors) ends even when the app calls process.exit(), which
 * emits no 'beforeExit'. Global, like the handle: the preload and the plugin may be two module copies.
 */
const SHUTDOWN_ON_CLOSE = Symbol.for('fastify-observability.telemetry.shutdown-on-close')

export function requestShutdownOnClose (): void {
  ;(globalThis as Record<symbol, boolean | undefined>)[SHUTDOWN_ON_CLOSE] = true
}

export function shutdownOnClose (): boolean {
  return (globalThis as Record<symbol, boolean | undefined>)[SHUTDOWN_ON_CLOSE] === true
}

export function publishHandle (handle: FlushableHandle): void {
  ;(globalThis as Record<symbol, FlushableHandle | undefined>)[TELEMETRY_HANDLE_SYMBOL] = handle
}
