// Where the ./register preload publishes its SDK handle, so the plugin (which must never load the
// SDK itself) can flush it on close. One global key, defined here only.

/** Global symbol under which the active `TelemetryHandle` is published. */
export const TELEMETRY_HANDLE_SYMBOL: unique symbol = Symbol.for('fastify-observability.telemetry')

/** What the plugin needs of a published handle. */
export interface FlushableHandle {
  forceFlush?: () => Promise<void>
  /** Spans in failed exports (lib/sdk/export-watch.ts), served at /metrics (lib/export-failures.ts). */
  failedSpans?: number
}

/** The handle published by the last startTelemetry() call (e.g. from the preload), if any. */
export function publishedHandle<T extends FlushableHandle = FlushableHandle> (): T | undefined {
  return (globalThis as Record<symbol, T | undefined>)[TELEMETRY_HANDLE_SYMBOL]
}

export function publishHandle (handle: FlushableHandle): void {
  ;(globalThis as Record<symbol, FlushableHandle | undefined>)[TELEMETRY_HANDLE_SYMBOL] = handle
}
