// The series-backed instruments: a histogram and a gauge whose series are plain objects.
//
// They are prom-client metrics by duck typing (name/help/type/get/reset, the interface both
// prom-client and @prometheus-io/client registries consume), but keep their series in plain
// objects, so a caller can find a series once and then record into it with no label object, no
// hashing and no validation per call (prom-client's own child.observe() does all three every call).
import { probeSample } from './default-labels'
import { resyncWallClock } from './wall-clock'
import { NativeBuckets } from './native-histogram'
import type { NativeHistogramConfig } from './native-histogram'

export interface Exemplar {
  labelSet: Record<string, string>
  value: number
  timestamp: number
}

/** One labelled histogram series. `counts` is per bucket (not cumulative); the last slot is +Inf. */
export class HistogramSeries {
  readonly labels: Record<string, string>
  readonly counts: number[]
  /** Per bucket, the latest sampled request's exemplar; null until the first one. */
  exemplars: Array<Exemplar | null> | null = null
  sum = 0
  count = 0
  /**
   * Bumped by every reset. `count` only grows between resets, so the same (epoch, count) means
   * the same contents: the exposition's cache (lib/exposition-cache.ts) relies on it.
   */
  epoch = 0
  /** The same observations in sparse exponential buckets (metrics.nativeHistograms); null when off. */
  readonly native: NativeBuckets | null
  private readonly bounds: readonly number[]

  constructor (labels: Record<string, string>, bounds: readonly number[], native: NativeHistogramConfig | null = null) {
    this.labels = labels
    this.bounds = bounds
    this.counts = new Array(bounds.length + 1).fill(0)
    this.native = native === null ? null : new NativeBuckets(native)
  }

  observe (value: number): number {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]) i++
    this.counts[i]++
    this.sum += value
    this.count++
    if (this.native !== null) this.native.observe(value)
    return i
  }

  /**
   * Observe and keep the trace that produced it as the bucket's exemplar (OpenMetrics only; the
   * latest wins). Each bucket's exemplar object is made once and then overwritten: no allocation
   * per request. `timestamp`: seconds since the epoch; the record step passes its own clock reading
   * (lib/wall-clock.ts).
   */
  observeWithExemplar (value: number, traceId: string, spanId: string, timestamp: number = Date.now() / 1000): void {
    const i = this.observe(value)
    // Slots made on the first exemplar: a series (or a registry shared with an app without
    // tracing) that never sees a sampled request has none, and renders as before.
    const exemplars = this.exemplars ??= new Array(this.counts.length).fill(null)
    const e = exemplars[i]
    if (e === null) {
      exemplars[i] = { labelSet: { trace_id: traceId, span_id: spanId }, value, timestamp }
    } else {
      e.labelSet.trace_id = traceId
      e.labelSet.span_id = spanId
      e.value = value
      e.timestamp = timestamp
    }
  }
}

export class GaugeSeries {
  value = 0
  constructor (readonly labels: Record<string, string>) {}
}

/** The value of every label an overflow series does not keep. */
export const OVERFLOW_VALUE = '_overflow'

/**
 * A histogram whose series are addressed by label values in a fixed order.
 *
 * At most `maxSeries` label sets: a new one beyond that is recorded in an overflow series, which
 * keeps the first `overflowKeeps` label values and has `_overflow` for the others, so that the
 * number of series stays bounded whatever the values (OpenTelemetry's cardinality limit).
 */
export class SeriesHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly series = new Map<string, HistogramSeries>()
  /** Set while lib/default-labels.ts asks the registry to render its probe sample. */
  probing = false
  /** Set by the first label set refused for maxSeries; never cleared (series are never removed). */
  overflowed = false

  constructor (readonly name: string, readonly help: string, readonly labelNames: readonly string[], readonly upperBounds: readonly number[],
    readonly maxSeries = Infinity, readonly overflowKeeps = 0, readonly native: NativeHistogramConfig | null = null) {}

  /** The series for these label values (in labelNames order), created on first use. */
  seriesFor (values: readonly string[]): HistogramSeries {
    const key = values.join('\u0000')
    const s = this.series.get(key)
    if (s !== undefined) return s
    if (this.series.size < this.maxSeries) return this.create(key, values)
    this.overflowed = true
    // Overflow series are not counted against the limit: there are at most as many as distinct
    // kept prefixes (with the plugin's labels kept: route, method and status, bounded already).
    const overflow = values.map((v, i) => i < this.overflowKeeps ? v : OVERFLOW_VALUE)
    const okey = overflow.join('\u0000')
    return this.series.get(okey) ?? this.create(okey, overflow)
  }

  private create (key: string, values: readonly string[]): HistogramSeries {
    const labels: Record<string, string> = {}
    for (let i = 0; i < this.labelNames.length; i++) labels[this.labelNames[i]] = values[i]
    const s = new HistogramSeries(labels, this.upperBounds, this.native)
    this.series.set(key, s)
    return s
  }

  reset (): void {
    // Keep the series objects (routes cache them) but zero them.
    for (const s of this.series.values()) {
      s.counts.fill(0)
      s.exemplars?.fill(null)
      s.native?.reset()
      s.sum = 0
      s.count = 0
      s.epoch++
    }
  }

  /** prom-client's metric.get() shape, so any registry can render this metric. */
  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: any[] }> {
    if (this.probing) return probeSample(this)
    resyncWallClock()
    const values: any[] = []
    const bucket = this.name + '_bucket'
    for (const s of this.series.values()) {
      let acc = 0
      for (let i = 0; i <= this.upperBounds.length; i++) {
        acc += s.counts[i]
        values.push({
          labels: { ...s.labels, le: i < this.upperBounds.length ? this.upperBounds[i] : '+Inf' },
          value: acc,
          metricName: bucket,
          exemplar: s.exemplars?.[i] ?? undefined
        })
      }
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: this.name + '_sum' })
      values.push({ labels: { ...s.labels }, value: s.count, metricName: this.name + '_count' })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}

export class SeriesGauge {
  readonly type = 'gauge'
  readonly aggregator = 'sum'
  readonly series = new Map<string, GaugeSeries>()
  /** Set while lib/default-labels.ts asks the registry to render its probe sample. */
  probing = false

  constructor (readonly name: string, readonly help: string, readonly labelName: string) {}

  seriesFor (value: string): GaugeSeries {
    let s = this.series.get(value)
    if (s === undefined) {
      s = new GaugeSeries({ [this.labelName]: value })
      this.series.set(value, s)
    }
    return s
  }

  reset (): void {
    for (const s of this.series.values()) s.value = 0
  }

  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: any[] }> {
    if (this.probing) return probeSample(this)
    const values: any[] = []
    for (const s of this.series.values()) values.push({ labels: { ...s.labels }, value: s.value })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
