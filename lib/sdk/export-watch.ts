// Exports that fail, made visible: an exporter whose collector is down or black-holed otherwise
// drops spans silently (the SDK reports it only through its diag logger, off by default). Each
// exporter is wrapped: spans of a failed export are counted (lib/sdk/span-loss.ts; the plugin
// serves the count at /metrics), and a warning naming the endpoint goes out at most once a minute.
import type { SpanExporter } from './options'
import type { LossWarning, SpanLoss } from './span-loss'

/** ExportResultCode.SUCCESS of @opentelemetry/core (a const enum there: 0 success, 1 failed). */
const SUCCESS = 0

type ExportCallback = Parameters<SpanExporter['export']>[1]

export function watchExports (exporter: SpanExporter, endpoint: string, loss: SpanLoss, warn: LossWarning): SpanExporter {
  return {
    export (spans, done: ExportCallback) {
      exporter.export(spans, (result) => {
        if (result.code !== SUCCESS) {
          loss.failedSpans += spans.length
          warn('FST_OBSERVABILITY_EXPORT_FAILED', `spans could not be exported to ${endpoint} (${result.error?.message ?? 'export failed'})`)
        }
        done(result)
      })
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: exporter.forceFlush === undefined ? undefined : () => (exporter.forceFlush as () => Promise<void>)()
  }
}
