// The preload's lost spans at /metrics, read from the published SDK handle (lib/telemetry-handle.ts)
// at each scrape: `fastify_observability_spans_export_failed_total`, the spans of exports that failed
// (collector down or unreachable), and `fastify_observability_spans_dropped_total`, the spans the
// batch span processor dropped with its queue full (collector too slow or black-holed). Two counters,
// not one with a reason label: the first name was already served, and each says where the spans were
// lost. The plugin never loads the SDK, and the handle may be published after register
// (startTelemetry() called later): the counters are always registered, and whether there is a
// count is decided at each scrape. Without a handle that counts them (no preload, no
// startTelemetry), they are served with no sample: a family's HELP and TYPE alone, which
// Prometheus accepts and stores nothing for.
import type { PromRegistry } from './options'
import { publishedHandle } from './telemetry-handle'
import type { FlushableHandle } from './telemetry-handle'

export const EXPORT_FAILED_NAME = 'fastify_observability_spans_export_failed_total'
export const DROPPED_NAME = 'fastify_observability_spans_dropped_total'

type Count = 'failedSpans' | 'droppedSpans'

const COUNTERS: Array<[string, Count, string]> = [
  [EXPORT_FAILED_NAME, 'failedSpans', 'Spans the OpenTelemetry SDK started by fastify-observability failed to export (lost): collector down, unreachable or too slow.'],
  [DROPPED_NAME, 'droppedSpans', 'Spans the OpenTelemetry SDK started by fastify-observability dropped, its batch span processor\'s queue full (lost): spans ended faster than they were exported.']
]

const counted = (count: Count): number | undefined => (publishedHandle() as FlushableHandle | undefined)?.[count]

/** A counter in the shape both Prometheus clients' registries render (as lib/instruments.ts's). */
class LostSpans {
  readonly type = 'counter'
  readonly aggregator = 'sum'
  constructor (readonly name: string, private readonly count: Count, readonly help: string) {}
  reset (): void {}
  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: any[] }> {
    const value = counted(this.count)
    // No sample rather than a 0: without a counting SDK there is no count, and a 0 would read as
    // "nothing lost" to an alert.
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: typeof value === 'number' ? [{ labels: {}, value }] : [] }
  }
}

/** Plugin instances serving each counter object (instances may share a registry). */
const users = new WeakMap<LostSpans, number>()

/**
 * Registers the counters, or shares those another plugin instance registered in this registry;
 * returns what releases them on close: the last instance using a counter removes it.
 */
export function serveExportFailures (registry: PromRegistry): () => void {
  const mine: LostSpans[] = []
  for (const [name, count, help] of COUNTERS) {
    const existing = registry.getSingleMetric(name)
    let metric: LostSpans
    if (existing instanceof LostSpans) {
      metric = existing
    } else if (existing === undefined) {
      metric = new LostSpans(name, count, help)
      registry.registerMetric(metric as any)
    } else {
      continue // a metric of the user's under that name: left alone
    }
    users.set(metric, (users.get(metric) ?? 0) + 1)
    mine.push(metric)
  }
  return () => {
    for (const metric of mine) {
      const left = (users.get(metric) ?? 1) - 1
      users.set(metric, left)
      if (left === 0 && registry.getSingleMetric(metric.name) === metric) registry.removeSingleMetric(metric.name)
    }
    mine.length = 0
  }
}
