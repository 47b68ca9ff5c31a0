// The preload's lost spans at /metrics: `fastify_observability_spans_export_failed_total`, the spans
// of exports that failed (collector down or unreachable), read from the published SDK handle
// (lib/telemetry-handle.ts) at each scrape. The plugin never loads the SDK: without a handle that
// counts them (no preload, no startTelemetry), the metric is not there.
import type { PromRegistry } from './options'
import { publishedHandle } from './telemetry-handle'

export const EXPORT_FAILED_NAME = 'fastify_observability_spans_export_failed_total'

const failedSpans = (): number | undefined => publishedHandle()?.failedSpans

/** A counter in the shape both Prometheus clients' registries render (as lib/instruments.ts's). */
class ExportFailures {
  readonly name = EXPORT_FAILED_NAME
  readonly help = 'Spans the OpenTelemetry SDK started by fastify-observability failed to export (lost): collector down, unreachable or too slow.'
  readonly type = 'counter'
  readonly aggregator = 'sum'
  reset (): void {}
  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: any[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [{ labels: {}, value: failedSpans() ?? 0 }] }
  }
}

/** Registers the counter when a handle counts failures; returns what removes it on close. */
export function serveExportFailures (registry: PromRegistry): () => void {
  // One per registry: a second plugin instance sharing it leaves it to the first.
  if (typeof failedSpans() !== 'number' || registry.getSingleMetric(EXPORT_FAILED_NAME) !== undefined) return () => {}
  const metric = new ExportFailures()
  registry.registerMetric(metric as any)
  return () => { if (registry.getSingleMetric(EXPORT_FAILED_NAME) === metric) registry.removeSingleMetric(EXPORT_FAILED_NAME) }
}
