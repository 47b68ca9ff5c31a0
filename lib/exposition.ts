// The /metrics handler: content negotiation and rendering of a registry in the Prometheus text
// format 0.0.4 or OpenMetrics 1.0.0.
//
// prom-client renders one format per registry (and its OpenMetrics mode renames counters in place,
// which then breaks the text format), so both formats are rendered here from metric.get(). The
// plugin's own HTTP instruments are rendered straight from their series.
import type { ServerResponse } from 'node:http'
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

function renderHistogram (m: SeriesHistogram, openMetrics: boolean, defaults: Record<string, unknown> | null, out: Buffer[]): void {
  out.push(Buffer.from(header(m.name, m.help, 'histogram', openMetrics)))
  for (const s of m.series.values()) out.push(seriesLines(m, s, openMetrics, defaults))
}

/**
 * One series' lines, re-rendered only when it changed since the last scrape: a scrape of
 * thousands of series where few saw traffic costs little more than copying cached bytes.
 * They are kept encoded, so a scrape neither re-encodes them nor walks string pieces again.
 * Without exemplars both formats are the same bytes.
 */
function seriesLines (m: SeriesHistogram, s: HistogramSeries, openMetrics: boolean, defaults: Record<string, unknown> | null): Buffer {
  const om = openMetrics && s.exemplars !== null
  if (s.renderedDefaults !== defaults) {
    s.renderedDefaults = defaults
    s.renderedTextAt = s.renderedOpenMetricsAt = -1
  }
  if (om ? s.renderedOpenMetricsAt === s.count : s.renderedTextAt === s.count) return om ? s.renderedOpenMetrics : s.renderedText

  const bounds = m.upperBounds
  const base = formatLabels(s.labels, defaults)
  // '{a="b"}' -> '{a="b",' so le can be appended without rebuilding the label set.
  const bucket = m.name + '_bucket' + (base === '' ? '{' : base.slice(0, -1) + ',') + 'le="'
  let out = ''
  let acc = 0
  for (let i = 0; i <= bounds.length; i++) {
    acc += s.counts[i]
    out += bucket + (i < bounds.length ? formatValue(bounds[i]) : '+Inf') + '"} ' + acc
    if (om) out += formatExemplar((s.exemplars as Array<Exemplar | null>)[i])
    out += '\n'
  }
  out += m.name + '_sum' + base + ' ' + formatValue(s.sum) + '\n' + m.name + '_count' + base + ' ' + s.count + '\n'
  const bytes = Buffer.from(out)
  if (om) {
    s.renderedOpenMetrics = bytes
    s.renderedOpenMetricsAt = s.count
  } else {
    s.renderedText = bytes
    s.renderedTextAt = s.count
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

/** The exposition of a registry as byte chunks (mostly cached per series), and their total length. */
export async function renderChunks (registry: PromRegistry, openMetrics: boolean): Promise<{ chunks: Buffer[], length: number }> {
  // Registry default labels are kept privately by both clients; read them where they are.
  const rawDefaults = (registry as unknown as { _defaultLabels?: Record<string, unknown> })._defaultLabels
  const defaults = rawDefaults !== undefined && Object.keys(rawDefaults).length > 0 ? rawDefaults : null
  const out: Buffer[] = []
  const gap = openMetrics ? EMPTY : NEWLINE // the text format separates families by a blank line
  for (const metric of registry.getMetricsAsArray()) {
    if (out.length > 0) out.push(gap)
    if (metric instanceof SeriesHistogram) renderHistogram(metric, openMetrics, defaults, out)
    else if (metric instanceof SeriesGauge) out.push(Buffer.from(renderGauge(metric, openMetrics, defaults)))
    else out.push(Buffer.from(await renderGeneric(metric, openMetrics, defaults)))
  }
  if (openMetrics) out.push(EOF)
  let length = 0
  for (const c of out) length += c.length
  return { chunks: out, length }
}

/** The exposition of a registry as bytes, in Prometheus text 0.0.4 or OpenMetrics 1.0.0. */
export async function renderBuffer (registry: PromRegistry, openMetrics: boolean): Promise<Buffer> {
  const { chunks, length } = await renderChunks(registry, openMetrics)
  return Buffer.concat(chunks, length)
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

type ScrapeResponse = ServerResponse & { isLightMyRequest?: boolean }

/**
 * The handler of the plugin's own endpoint. Thousands of series make an exposition of megabytes
 * (5,000 histogram series: 12 MiB); allocating and concatenating that per scrape doubled the
 * scrape's time (the copy, and the GC that external memory of that size triggers), so one buffer
 * is reused. It is lent to one HTTP/1 response at a time and taken back only once that response
 * has flushed it; any other case gets a buffer of its own.
 */
export function createEndpointHandler (registry: PromRegistry): MetricsHandler {
  let spare: Buffer | null = null
  return async function metricsEndpoint (request, reply) {
    const { chunks, length } = await renderChunks(registry, negotiate(request, reply))
    const res = reply.raw as ScrapeResponse
    // HTTP/2 may still be sending from the buffer after the stream closed: never reuse there.
    const lend = request.raw.httpVersionMajor === 1 || res.isLightMyRequest === true
    let buf = lend ? spare : null
    if (lend) spare = null
    if (buf === null || buf.length < length) buf = Buffer.allocUnsafeSlow(lend ? length + (length >> 3) : length)
    let offset = 0
    for (const c of chunks) {
      buf.set(c, offset)
      offset += c.length
    }
    if (lend) {
      const lent = buf
      res.once('close', () => {
        // Flushed (or copied, under app.inject): ours again. Otherwise it may still be in use.
        if (res.writableFinished || res.isLightMyRequest === true) spare = lent
      })
    }
    return buf.subarray(0, length)
  }
}
