// The /metrics handler: content negotiation and rendering of a registry in the Prometheus text
// format 0.0.4 or OpenMetrics 1.0.0.
//
// prom-client renders one format per registry (and its OpenMetrics mode renames counters in place,
// which then breaks the text format), so both formats are rendered here from metric.get(). The
// plugin's own HTTP instruments are rendered straight from their series.
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { setImmediate } from 'node:timers/promises'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { PromRegistry } from './options'
import { SeriesGauge, SeriesHistogram } from './metrics'
import type { Exemplar, HistogramSeries } from './metrics'

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8'

/**
 * True when the Accept header prefers OpenMetrics 1.0 (or its 0.0.1 draft) over the text format.
 * Prometheus sends e.g. `application/openmetrics-text;version=1.0.0;q=0.5,...,text/plain;version=0.0.4;q=0.3`.
 */
export function prefersOpenMetrics (accept: string | undefined): boolean {
  if (accept === undefined || !accept.includes('openmetrics')) return false
  let om = -1
  let text = -1
  for (const part of accept.split(',')) {
    const params = part.split(';')
    const type = params[0].trim().toLowerCase()
    let q = 1
    let version: string | undefined
    for (let i = 1; i < params.length; i++) {
      const [k, v] = params[i].split('=').map((x) => x.trim())
      if (k === 'q') q = Number(v)
      else if (k === 'version') version = v
    }
    if (!(q >= 0 && q <= 1)) continue
    if (type === 'application/openmetrics-text' && (version === undefined || version === '1.0.0' || version === '0.0.1')) om = Math.max(om, q)
    else if (type === 'text/plain' || type === '*/*' || type === 'text/*') text = Math.max(text, type === 'text/plain' ? q : q - 1e-6)
  }
  return om > 0 && om >= text
}

function escapeHelp (s: string, openMetrics: boolean): string {
  s = s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
  return openMetrics ? s.replace(/"/g, '\\"') : s
}

function escapeLabelValue (s: unknown): string {
  return String(s).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

export function formatValue (v: number): string {
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  if (Number.isNaN(v)) return 'NaN'
  return String(v)
}

function formatLabels (labels: Record<string, unknown> | undefined, defaults: Record<string, unknown> | null): string {
  let out = ''
  if (labels !== undefined) {
    for (const k in labels) {
      const v = labels[k]
      if (v === undefined) continue
      out += (out === '' ? '' : ',') + k + '="' + escapeLabelValue(v) + '"'
    }
  }
  if (defaults !== null) {
    for (const k in defaults) {
      if (labels !== undefined && labels[k] !== undefined) continue
      out += (out === '' ? '' : ',') + k + '="' + escapeLabelValue(defaults[k]) + '"'
    }
  }
  return out === '' ? '' : '{' + out + '}'
}

function formatExemplar (e: { labelSet: Record<string, unknown>, value: number, timestamp: number } | null | undefined): string {
  if (e == null) return ''
  return ' # ' + formatLabels(e.labelSet, null) + ' ' + formatValue(e.value) + ' ' + e.timestamp
}

function header (name: string, help: string, type: string, openMetrics: boolean): string {
  return '# HELP ' + name + ' ' + escapeHelp(help, openMetrics) + '\n# TYPE ' + name + ' ' + type + '\n'
}

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
  return { series: s, epoch: s.epoch, count: s.count, sum: s.sum, counts: s.counts.slice(), exemplars: s.exemplars?.slice() ?? null }
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

function renderGauge (m: SeriesGauge, openMetrics: boolean, defaults: Record<string, unknown> | null): string {
  let out = header(m.name, m.help, 'gauge', openMetrics)
  for (const s of m.series.values()) out += m.name + formatLabels(s.labels, defaults) + ' ' + formatValue(s.value) + '\n'
  return out
}

/** Any other prom-client metric, from its get() (the API every prom-client metric has). */
async function renderGeneric (metric: any, openMetrics: boolean, defaults: Record<string, unknown> | null): Promise<string> {
  const data = await metric.get()
  const type: string = data.type
  let family: string = data.name
  if (openMetrics && type === 'counter' && family.endsWith('_total')) family = family.slice(0, -6)
  // OpenMetrics has no 'untyped'; 'unknown' is its name.
  const shownType = openMetrics && type === 'untyped' ? 'unknown' : type
  let out = header(family, data.help ?? '', shownType, openMetrics)
  for (const v of data.values ?? []) {
    let name: string = v.metricName ?? data.name
    if (openMetrics && type === 'counter' && !name.endsWith('_total')) name += '_total'
    const labels = v.sharedLabels !== undefined ? { ...v.sharedLabels, ...v.labels } : v.labels
    out += name + formatLabels(labels, defaults) + ' ' + formatValue(v.value)
    if (openMetrics) out += formatExemplar(v.exemplar)
    out += '\n'
  }
  return out
}

/**
 * A scrape in two steps. prepare() takes the exposition as it is when the scrape comes in: every
 * metric that is not one of the plugin's histograms rendered (default metrics and the user's own:
 * their get() is where a failure or an await can come from, and a failure should still answer
 * 500 before a byte is sent), and for the plugin's histograms each series' cached lines, or a copy
 * of its values when it changed (a copy of 16 numbers costs far less than rendering them).
 * slices() then renders the changed series and emits the exposition in registry order as slices
 * of about SLICE_BYTES, handing the event loop back (setImmediate) whenever SLICE_MS of work were
 * done in one turn: a scrape of megabytes never holds the loop for the whole render, copy and
 * socket write, and what it sends is still the state of the moment it came in.
 */
interface HistogramPlan {
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

function planHistogram (m: SeriesHistogram, openMetrics: boolean, defaults: Record<string, unknown> | null): HistogramPlan {
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
interface Plan {
  openMetrics: boolean
  defaults: Record<string, unknown> | null
  parts: Array<Buffer | HistogramPlan>
}

/** Bytes per slice written to the response: big enough to keep per-write costs small. */
const SLICE_BYTES = 64 * 1024
/** Work per turn of the event loop before a scrape yields to other requests. */
const SLICE_MS = 2

async function prepare (registry: PromRegistry, openMetrics: boolean): Promise<Plan> {
  // Registry default labels are kept privately by both clients; read them where they are.
  const rawDefaults = (registry as unknown as { _defaultLabels?: Record<string, unknown> })._defaultLabels
  const defaults = rawDefaults !== undefined && Object.keys(rawDefaults).length > 0 ? rawDefaults : null
  const parts: Plan['parts'] = []
  let since = performance.now()
  for (const metric of registry.getMetricsAsArray()) {
    // Dozens of default metrics, each get() a little work: not all of it in one turn either.
    if (performance.now() - since >= SLICE_MS) {
      await setImmediate()
      since = performance.now()
    }
    if (metric instanceof SeriesHistogram) {
      parts.push(planHistogram(metric, openMetrics, defaults))
    } else if (metric instanceof SeriesGauge) {
      parts.push(Buffer.from(renderGauge(metric, openMetrics, defaults)))
    } else {
      parts.push(Buffer.from(await renderGeneric(metric, openMetrics, defaults)))
    }
  }
  return { openMetrics, defaults, parts }
}

async function * slices ({ openMetrics, defaults, parts }: Plan): AsyncGenerator<Buffer> {
  let pending: Buffer[] = []
  let size = 0
  const take = (): Buffer => {
    const b = pending.length === 1 ? pending[0] : Buffer.concat(pending, size)
    pending = []
    size = 0
    return b
  }
  // The first slice in a turn of its own, not after the tail of prepare().
  await setImmediate()
  let since = performance.now()
  const gap = openMetrics ? EMPTY : NEWLINE // the text format separates families by a blank line
  for (let i = 0; i < parts.length; i++) {
    if (i > 0 && gap.length > 0) {
      pending.push(gap)
      size += gap.length
    }
    const part = parts[i]
    if (!Buffer.isBuffer(part)) {
      const m = part.metric
      const head = Buffer.from(header(m.name, m.help, 'histogram', openMetrics))
      pending.push(head)
      size += head.length
      for (const run of part.runs) {
        let bytes: Buffer
        if (Buffer.isBuffer(run)) {
          bytes = run
        } else {
          const lines = run.items.map((item) => Buffer.isBuffer(item) ? item : renderLines(m, item, openMetrics, defaults))
          bytes = Buffer.concat(lines)
          // Cached under the (epoch, count) its series had when this scrape came in.
          run.cache.runs[run.index] = { bytes, series: run.series, epochs: run.epochs, counts: run.counts }
        }
        if (size > 0) yield take()
        yield bytes
        if (performance.now() - since >= SLICE_MS) {
          await setImmediate()
          since = performance.now()
        }
      }
    } else if (part.length <= SLICE_BYTES) {
      pending.push(part)
      size += part.length
      if (size >= SLICE_BYTES) yield take()
    } else {
      // A large family of the user's (rendered in prepare): written in slices all the same.
      if (size > 0) yield take()
      for (let o = 0; o < part.length; o += SLICE_BYTES) {
        yield part.subarray(o, o + SLICE_BYTES)
        if (performance.now() - since >= SLICE_MS) {
          await setImmediate()
          since = performance.now()
        }
      }
    }
  }
  if (openMetrics) {
    pending.push(EOF)
    size += EOF.length
  }
  if (size > 0) yield take()
}

/** The exposition of a registry as one fresh Buffer, in Prometheus text 0.0.4 or OpenMetrics 1.0.0. */
export async function renderBuffer (registry: PromRegistry, openMetrics: boolean): Promise<Buffer> {
  const out: Buffer[] = []
  let length = 0
  for await (const b of slices(await prepare(registry, openMetrics))) {
    out.push(b)
    length += b.length
  }
  return Buffer.concat(out, length)
}

const EMPTY = Buffer.alloc(0)
const NEWLINE = Buffer.from('\n')
const EOF = Buffer.from('# EOF\n')

export async function render (registry: PromRegistry, openMetrics: boolean): Promise<string> {
  return (await renderBuffer(registry, openMetrics)).toString('utf8')
}

export type MetricsHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<Buffer>

/**
 * A ready-made route handler, also exposed on the instance for users who serve it elsewhere.
 * It answers a fresh Buffer, which the caller may keep.
 */
export function createMetricsHandler (registry: PromRegistry): MetricsHandler {
  return async function metricsHandler (request, reply) {
    return renderBuffer(registry, negotiate(request, reply))
  }
}

/** Picks the format from the Accept header and sets the content type: true for OpenMetrics. */
function negotiate (request: FastifyRequest, reply: FastifyReply): boolean {
  const openMetrics = prefersOpenMetrics(request.headers.accept)
  reply.header('content-type', openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE)
  return openMetrics
}

/**
 * The handler of the plugin's own endpoint: the exposition as a stream of slices (chunked
 * encoding, no Content-Length), so that a multi-megabyte scrape is rendered, copied and written a
 * slice at a time, under the socket's backpressure, with other requests served in between.
 * Series lines come from the cache and are never written into once made, so scrapes in flight at
 * the same time cannot corrupt each other. A client that goes away destroys the stream, which ends
 * the rendering.
 */
export function createEndpointHandler (registry: PromRegistry): (request: FastifyRequest, reply: FastifyReply) => Promise<Readable> {
  return async function metricsEndpoint (request, reply) {
    const plan = await prepare(registry, negotiate(request, reply))
    return Readable.from(slices(plan), { objectMode: false, highWaterMark: SLICE_BYTES })
  }
}
