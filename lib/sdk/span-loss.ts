// Spans the SDK set-up lost, counted, and the warning about them: a collector that is down,
// black-holed or too slow otherwise loses spans silently (the SDK tells only its diag logger, off
// by default). The counts are read from the handle (lib/sdk/start.ts) and served at /metrics by
// the plugin (lib/export-failures.ts).

export interface SpanLoss {
  /** Spans in exports that failed (collector down, timed out, refused): never delivered. */
  failedSpans: number
  /** Spans the batch span processor dropped because its queue was full (maxQueueSize): never exported. */
  droppedSpans: number
}

/** Emits the warning `code` about a loss at `destination`, unless one went out less than a minute ago. */
export type LossWarning = (code: string, what: string) => void

const WARN_EVERY_MS = 60_000

/**
 * At most one process warning a minute for one destination, whichever loss comes first, each with
 * the totals so far: a black-holed collector fills the queue long before its first export times
 * out, and both must not make two warnings a minute.
 */
export function lossWarning (loss: SpanLoss): LossWarning {
  let last = -Infinity
  return (code, what) => {
    const now = Date.now()
    if (now - last < WARN_EVERY_MS) return
    last = now
    const lost = loss.failedSpans + loss.droppedSpans
    process.emitWarning(`fastify-observability: ${what}; ${lost} span(s) lost so far (${loss.failedSpans} in failed exports, ` +
      `${loss.droppedSpans} dropped with the batch queue full) (at most one warning a minute)`, { code })
  }
}
