// The /metrics endpoint: content negotiation, the scrape plan and its streaming, and the handlers.
//
// Lines are formatted in lib/exposition-format.ts; what is kept between scrapes so that unchanged
// series are neither re-rendered nor re-allocated is in lib/exposition-cache.ts.
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { setImmediate } from 'node:timers/promises'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { PromRegistry } from './options'
import { SeriesGauge, SeriesHistogram } from './instruments'
import { header, renderGauge, renderGeneric } from './exposition-format'
import { planHistogram, renderRun } from './exposition-cache'
import { defaultLabelsOf } from './default-labels'
import type { HistogramPlan } from './exposition-cache'
import { ScrapeErrors, ScrapeFaults, scrapeDeadlineMs, standaloneFaults } from './scrape-faults'
import { encodeGenericFamily, encodeHistogramMetric, frameFamily, prefersProtobuf, PROTOBUF_CONTENT_TYPE } from './exposition-protobuf'
import type { NativePart } from './exposition-protobuf'
import type { NativeBuckets } from './native-histogram'
import { DEFAULT_SCRAPE_TIMEOUT } from './options'
import { parseAccept } from './accept'

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
  for (const { type, params, q } of parseAccept(accept)) {
    if (!(q >= 0 && q <= 1)) continue
    const version = params.version
    if (type === 'application/openmetrics-text' && (version === undefined || version === '1.0.0' || version === '0.0.1')) om = Math.max(om, q)
    else if (type === 'text/plain' || type === '*/*' || type === 'text/*') text = Math.max(text, type === 'text/plain' ? q : q - 1e-6)
  }
  return om > 0 && om >= text
}

/**
 * A scrape in two steps. prepare() takes the exposition as it is when the scrape comes in: every
 * metric that is not one of the plugin's histograms rendered (default metrics and the user's own:
 * their get() is where a failure or an await can come from; they are collected side by side under
 * one deadline, and one that fails or misses it is left out, lib/scrape-faults.ts), and for the
 * plugin's histograms each series' cached lines, or a copy
 * of its values when it changed (a copy of 16 numbers costs far less than rendering them).
 * slices() then renders the changed series and emits the exposition in registry order as slices
 * of about SLICE_BYTES, handing the event loop back (setImmediate) whenever SLICE_MS of work were
 * done in one turn: a scrape of megabytes never holds the loop for the whole render, copy and
 * socket write, and what it sends is still the state of the moment it came in (in protobuf, the
 * plugin's histogram series are read as they are encoded: see slices()).
 */
interface Plan {
  format: Format
  defaults: Record<string, unknown> | null
  /** A SeriesHistogram: one of the plugin's histograms, encoded in protobuf a series at a time. */
  parts: Array<Buffer | HistogramPlan | SeriesHistogram>
}

/**
 * The three expositions. The protobuf one is only offered with metrics.nativeHistograms on: it is
 * the only format that carries them, and an app without them keeps being scraped as before.
 */
export type Format = 'text' | 'openmetrics' | 'protobuf'

/** Bytes per slice written to the response: big enough to keep per-write costs small. */
const SLICE_BYTES = 64 * 1024
/**
 * Work per turn of the event loop before a scrape yields to other requests. 1 ms against 2 ms:
 * median stall per scrape ~3 ms against ~4.5, light-load p99 over GC-free scrapes 1.0-1.4x
 * against 1.4-1.7x, the scrape over HTTP ~10% longer (benchmarks/scrape.mjs, Node 20).
 */
const SLICE_MS = 1

async function prepare (registry: PromRegistry, format: Format, faults: ScrapeFaults, deadlineMs?: number): Promise<Plan> {
  const openMetrics = format === 'openmetrics'
  const protobuf = format === 'protobuf'
  const metrics = registry.getMetricsAsArray()
  const probe = metrics.find((m) => m instanceof SeriesHistogram || m instanceof SeriesGauge)
  const defaults = probe === undefined ? null : await defaultLabelsOf(registry, probe)
  const deadline = faults.begin(deadlineMs)
  // A metric's get() data, as it goes out in this format.
  const renderer = protobuf
    ? (data: any) => encodeGenericFamily(data, defaults)[0] ?? EMPTY
    : async (data: any) => Buffer.from(await renderGeneric({ get: () => data }, openMetrics, defaults))
  try {
    const parts: Array<Plan['parts'][number] | Promise<Buffer | null>> = []
    const counters: ScrapeErrors[] = []
    let since = performance.now()
    for (const metric of metrics) {
      // Dozens of default metrics, each get() a little work: not all of it in one turn either.
      if (performance.now() - since >= SLICE_MS) {
        await setImmediate()
        since = performance.now()
      }
      if (metric instanceof SeriesHistogram) {
        parts.push(protobuf ? metric : planHistogram(metric, openMetrics, defaults))
      } else if (metric instanceof SeriesGauge && !protobuf) {
        parts.push(Buffer.from(renderGauge(metric, openMetrics, defaults)))
      } else if (metric instanceof ScrapeErrors) {
        counters.push(metric)
      } else {
        // Not awaited here: one hung metric must not hold up the others' collection.
        parts.push(faults.collect(metric, renderer, deadline))
      }
    }
    const settled = (await Promise.all(parts)).filter((p) => p !== null)
    // The fault counter last, with this scrape's faults counted (the first one registers it).
    const own = faults.counter
    if (own !== null && !counters.includes(own) && registry.getSingleMetric(own.name) === own) counters.push(own)
    for (const c of counters) settled.push(await renderer(await c.get()))
    return { format, defaults, parts: settled }
  } finally {
    deadline.end()
  }
}

async function * slices ({ format, defaults, parts }: Plan): AsyncGenerator<Buffer> {
  const openMetrics = format === 'openmetrics'
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
  const gap = format === 'text' ? NEWLINE : EMPTY // the text format separates families by a blank line
  for (let i = 0; i < parts.length; i++) {
    if (i > 0 && gap.length > 0) {
      pending.push(gap)
      size += gap.length
    }
    const part = parts[i]
    if (part instanceof SeriesHistogram) {
      // Protobuf: each series encoded as it comes (its counts, sum and native buckets read in one
      // go), the family framed around them once all are, yielding between series as the text does.
      // Unlike the text path, which copies changed series when the scrape comes in, a series is
      // read when its turn comes: each is consistent in itself, but may include requests that
      // ended during the scrape (Prometheus takes each series on its own).
      const metrics: Buffer[] = []
      for (const s of part.series.values()) {
        metrics.push(encodeHistogramMetric(s.labels, defaults, part.upperBounds, s.counts, s.sum, s.count, s.exemplars, s.native === null ? null : nativePart(s.native)))
        if (performance.now() - since >= SLICE_MS) {
          await setImmediate()
          since = performance.now()
        }
      }
      if (size > 0) yield take()
      for (const b of frameFamily(part.name, part.help, 'histogram', metrics)) yield b
    } else if (!Buffer.isBuffer(part)) {
      const m = part.metric
      const head = Buffer.from(header(m.name, m.help, 'histogram', openMetrics))
      pending.push(head)
      size += head.length
      for (const run of part.runs) {
        const bytes = Buffer.isBuffer(run) ? run : renderRun(m, run, openMetrics, defaults)
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

/** The spans and deltas of a series' native buckets, as encodeHistogramMetric takes them. */
function nativePart (n: NativeBuckets): NativePart {
  const positive = n.positive()
  const negative = n.negative()
  return {
    schema: n.schema,
    zeroThreshold: n.zeroThreshold,
    zeroCount: n.zeroCount,
    positiveSpans: positive.spans,
    positiveDeltas: positive.deltas,
    negativeSpans: negative.spans,
    negativeDeltas: negative.deltas
  }
}

/**
 * The exposition of a registry as one fresh Buffer, in Prometheus text 0.0.4 or OpenMetrics 1.0.0
 * (`openMetrics` true), or a Format.
 */
export async function renderBuffer (registry: PromRegistry, openMetrics: boolean | Format, faults = standaloneFaults(registry, DEFAULT_SCRAPE_TIMEOUT), deadlineMs?: number): Promise<Buffer> {
  const out: Buffer[] = []
  let length = 0
  const format: Format = typeof openMetrics === 'string' ? openMetrics : openMetrics ? 'openmetrics' : 'text'
  for await (const b of slices(await prepare(registry, format, faults, deadlineMs))) {
    out.push(b)
    length += b.length
  }
  return Buffer.concat(out, length)
}

const EMPTY = Buffer.alloc(0)
const NEWLINE = Buffer.from('\n')
const EOF = Buffer.from('# EOF\n')

export async function render (registry: PromRegistry, openMetrics: boolean | Exclude<Format, 'protobuf'>, faults?: ScrapeFaults): Promise<string> {
  return (await renderBuffer(registry, openMetrics, faults)).toString('utf8')
}

export type MetricsHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<Buffer>

/**
 * A ready-made route handler, also exposed on the instance for users who serve it elsewhere.
 * It answers a fresh Buffer, which the caller may keep.
 */
export function createMetricsHandler (registry: PromRegistry, faults: ScrapeFaults, protobuf = false): MetricsHandler {
  return async function metricsHandler (request, reply) {
    const body = await renderBuffer(registry, negotiate(request, reply, protobuf), faults, scraperDeadline(request, faults))
    keepAliveUnlessClosing(reply, faults)
    return body
  }
}

function scraperDeadline (request: FastifyRequest, faults: ScrapeFaults): number {
  return scrapeDeadlineMs(request.headers['x-prometheus-scrape-timeout-seconds'], faults.timeout)
}

/**
 * A scrape answered while the app closes ends its connection: the server's close waits for every
 * connection, and a keep-alive one (Prometheus keeps its connections) would stay open after it.
 */
function keepAliveUnlessClosing (reply: FastifyReply, faults: ScrapeFaults): void {
  if (faults.closing) reply.header('connection', 'close')
}

/** Picks the format from the Accept header (protobuf only when offered) and sets the content type. */
function negotiate (request: FastifyRequest, reply: FastifyReply, protobuf: boolean): Format {
  const accept = request.headers.accept
  const format: Format = protobuf && prefersProtobuf(accept) ? 'protobuf' : prefersOpenMetrics(accept) ? 'openmetrics' : 'text'
  reply.header('content-type', CONTENT_TYPES[format])
  return format
}

const CONTENT_TYPES: Record<Format, string> = {
  text: PROMETHEUS_CONTENT_TYPE,
  openmetrics: OPENMETRICS_CONTENT_TYPE,
  protobuf: PROTOBUF_CONTENT_TYPE
}

/**
 * The handler of the plugin's own endpoint: the exposition as a stream of slices (chunked
 * encoding, no Content-Length), so that a multi-megabyte scrape is rendered, copied and written a
 * slice at a time, under the socket's backpressure, with other requests served in between.
 * Series lines come from the cache and are never written into once made, so scrapes in flight at
 * the same time cannot corrupt each other. A client that goes away destroys the stream, which ends
 * the rendering.
 */
export function createEndpointHandler (registry: PromRegistry, faults: ScrapeFaults, protobuf = false): (request: FastifyRequest, reply: FastifyReply) => Promise<Readable> {
  return async function metricsEndpoint (request, reply) {
    const plan = await prepare(registry, negotiate(request, reply, protobuf), faults, scraperDeadline(request, faults))
    keepAliveUnlessClosing(reply, faults)
    return Readable.from(slices(plan), { objectMode: false, highWaterMark: SLICE_BYTES })
  }
}
