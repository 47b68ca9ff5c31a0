// Exports that fail, made visible: an exporter whose collector is down or black-holed otherwise
// drops spans silently (the SDK reports it only through its diag logger, off by default). Each
// exporter is wrapped: spans of a failed export are counted on the handle (the plugin serves the
// count at /metrics), and a warning naming the endpoint goes out at most once a minute.
import type { SpanExporter } from './options'

/** ExportResultCode.SUCCESS of @opentelemetry/core (a const enum there: 0 success, 1 failed). */
const SUCCESS = 0
const WARN_EVERY_MS = 60_000

export interface ExportStats {
  /** Spans in exports that failed (collector down, timed out, refused): never delivered. */
  failedSpans: number
}

type ExportCallback = Parameters<SpanExporter['export']>[1]

export function watchExports (exporter: SpanExporter, endpoint: string, stats: ExportStats): SpanExporter {
  let lastWarning = -Infinity
  return {
    export (spans, done: ExportCallback) {
      exporter.export(spans, (result) => {
        if (result.code !== SUCCESS) {
          stats.failedSpans += spans.length
          const now = Date.now()
          if (now - lastWarning >= WARN_EVERY_MS) {
            lastWarning = now
            process.emitWarning(`fastify-observability: spans could not be exported to ${endpoint} (${result.error?.message ?? 'export failed'}); ` +
              `${stats.failedSpans} span(s) lost so far (at most one warning a minute)`, { code: 'FST_OBSERVABILITY_EXPORT_FAILED' })
          }
        }
        done(result)
      })
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: exporter.forceFlush === undefined ? undefined : () => (exporter.forceFlush as () => Promise<void>)()
  }
}
