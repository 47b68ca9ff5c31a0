// What the exposition keeps between scrapes, and why: the lines of the plugin's histogram series
// as last rendered, and the bytes of runs of them, so that a scrape of thousands of series where
// few changed neither re-renders, re-encodes nor allocates much for the others.
import type { Exemplar, HistogramSeries, SeriesHistogram } from './instruments'
import { resyncWallClock } from './wall-clock'
import { formatExemplar, formatLabels, formatValue } from './exposition-format'

const EMPTY = Buffer.alloc(0)

/**
 * Exposition cache: each histogram series' lines as last rendered, kept encoded, so a scrape of
 * thousands of series where few saw traffic neither re-renders nor re-encodes the others. An
 * entry holds the text-format lines and, for series with exemplars, the OpenMetrics lines (without
 * exemplars both formats are the same bytes), each with the series' count when rendered, plus the
 * series' epoch and the default labels it was rendered with. A series' count only grows between
 * resets and reset() bumps its epoch, so the same (epoch, count) means the same contents. The
 * cached bytes are never written into once made, so a scrape still sending them is never changed.
 */
interface Rendered {
  defaults: object | null
  epoch: number
  textAt: number
  text: Buffer
  openMetricsAt: number
  openMetrics: Buffer
}
const rendered = new WeakMap<HistogramSeries, Rendered>()

/** A series' values as they were when the scrape came in, for lines rendered later. */
interface Snapshot {
  series: HistogramSeries
  epoch: number
  count: number
  sum: number
  counts: number[]
  exemplars: Array<Exemplar | null> | null
}

/** One series' cached lines, if it has not changed since they were rendered; else its snapshot. */
function linesOrSnapshot (s: HistogramSeries, openMetrics: boolean, defaults: Record<string, unknown> | null): Buffer | Snapshot {
  const r = rendered.get(s)
  if (r !== undefined && r.defaults === defaults && r.epoch === s.epoch) {
    if (openMetrics && s.exemplars !== null) {
      if (r.openMetricsAt === s.count) return r.openMetrics
    } else if (r.textAt === s.count) {
      return r.text
    }
  }
  return { series: s, epoch: s.epoch, count: s.count, sum: s.sum, counts: s.counts.slice(), exemplars: openMetrics ? s.exemplars?.map(copyExemplar) ?? null : null }
}

/** Exemplar objects are overwritten in place by later requests: a snapshot copies their values. */
function copyExemplar (e: Exemplar | null): Exemplar | null {
  return e === null ? null : { labelSet: { ...e.labelSet }, value: e.value, timestamp: e.timestamp }
}

/** A snapshot's lines, kept in the cache for the next scrapes. */
function renderLines (m: SeriesHistogram, snap: Snapshot, openMetrics: boolean, defaults: Record<string, unknown> | null): Buffer {
  const om = openMetrics && snap.exemplars !== null
  const bounds = m.upperBounds
  const base = formatLabels(snap.series.labels, defaults)
  // '{a="b"}' -> '{a="b",' so le can be appended without rebuilding the label set.
  const bucket = m.name + '_bucket' + (base === '' ? '{' : base.slice(0, -1) + ',') + 'le="'
  let out = ''
  let acc = 0
  for (let i = 0; i <= bounds.length; i++) {
    acc += snap.counts[i]
    out += bucket + (i < bounds.length ? formatValue(bounds[i]) : '+Inf') + '"} ' + acc
    if (om) out += formatExemplar((snap.exemplars as Array<Exemplar | null>)[i])
    out += '\n'
  }
  out += m.name + '_sum' + base + ' ' + formatValue(snap.sum) + '\n' + m.name + '_count' + base + ' ' + snap.count + '\n'
  const bytes = Buffer.from(out)
  let r = rendered.get(snap.series)
  if (r === undefined || r.defaults !== defaults || r.epoch !== snap.epoch) {
    r = { defaults, epoch: snap.epoch, textAt: -1, text: EMPTY, openMetricsAt: -1, openMetrics: EMPTY }
    rendered.set(snap.series, r)
  }
  if (om) {
    r.openMetrics = bytes
    r.openMetricsAt = snap.count
  } else {
    r.text = bytes
    r.textAt = snap.count
  }
  return bytes
}

/** One histogram's part of a scrape plan (lib/exposition.ts). */
export interface HistogramPlan {
  metric: SeriesHistogram
  /** Each run of RUN series: its cached bytes, or what to render it from. */
  runs: Array<Buffer | PendingRun>
}

/**
 * The second level of the cache: the bytes of runs of RUN consecutive series of a histogram, per
 * format, written as one slice each. A run whose series all kept their (epoch, count) is sent as
 * it is: no copy and no allocation, so a scrape where few series changed allocates little (12 MB
 * of new buffers per scrape made V8 run a full garbage collection every scrape).
 */
const RUN = 32
interface Run {
  bytes: Buffer
  series: HistogramSeries[]
  epochs: number[]
  counts: number[]
}
interface RunCache {
  defaults: object | null
  runs: Array<Run | undefined>
}
interface PendingRun {
  cache: RunCache
  index: number
  series: HistogramSeries[]
  epochs: number[]
  counts: number[]
  items: Array<Buffer | Snapshot>
}
const runCaches = new WeakMap<SeriesHistogram, { text?: RunCache, openMetrics?: RunCache }>()

export function planHistogram (m: SeriesHistogram, openMetrics: boolean, defaults: Record<string, unknown> | null): HistogramPlan {
  resyncWallClock() // the collection of this histogram, as in SeriesHistogram.get()
  let caches = runCaches.get(m)
  if (caches === undefined) {
    caches = {}
    runCaches.set(m, caches)
  }
  const all = Array.from(m.series.values())
  // Without exemplars both formats are the same bytes: one set of runs serves both.
  const slot = openMetrics && all.some((s) => s.exemplars !== null) ? 'openMetrics' : 'text'
  let cache = caches[slot]
  if (cache === undefined || cache.defaults !== defaults) {
    cache = { defaults, runs: [] }
    caches[slot] = cache
  }
  const runs: HistogramPlan['runs'] = []
  for (let index = 0, i = 0; i < all.length; index++, i += RUN) {
    const series = all.slice(i, i + RUN)
    const run = cache.runs[index]
    if (run !== undefined && run.series.length === series.length && series.every((s, k) => run.series[k] === s && run.epochs[k] === s.epoch && run.counts[k] === s.count)) {
      runs.push(run.bytes)
      continue
    }
    runs.push({
      cache,
      index,
      series,
      epochs: series.map((s) => s.epoch),
      counts: series.map((s) => s.count),
      items: series.map((s) => linesOrSnapshot(s, openMetrics, defaults))
    })
  }
  return { metric: m, runs }
}

/** A run's bytes, rendered from what the plan kept of it, and cached for the next scrapes. */
export function renderRun (m: SeriesHistogram, run: PendingRun, openMetrics: boolean, defaults: Record<string, unknown> | null): Buffer {
  const lines = run.items.map((item) => Buffer.isBuffer(item) ? item : renderLines(m, item, openMetrics, defaults))
  const bytes = Buffer.concat(lines)
  // Cached under the (epoch, count) its series had when this scrape came in.
  run.cache.runs[run.index] = { bytes, series: run.series, epochs: run.epochs, counts: run.counts }
  return bytes
}
