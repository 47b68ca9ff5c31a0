// The Prometheus protobuf exposition: length-delimited io.prometheus.client.MetricFamily messages,
// the only format in which Prometheus 2.x takes native histograms.
//
// Field numbers are those of client_model's io/prometheus/client/metrics.proto (a copy of the
// published file is in test/fixtures: the tests decode this module's output with it). What
// Prometheus 2.42 does with each field is in its model/textparse/protobufparse.go: a counter's,
// gauge's or untyped series is named after the family; a histogram's +Inf bucket may be left out
// (it is then made from sample_count); a family is read as native histograms when its FIRST
// Metric has native deltas or a non-zero zero threshold or zero count, and then only the native
// part is ingested (plus the classic buckets' exemplars).
import { parseAccept } from './accept'
import { ProtoWriter, putVarint, varintSize } from './protobuf-writer'
import type { Exemplar } from './instruments'

export const PROTOBUF_CONTENT_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'

const PROTOBUF_TYPE = 'application/vnd.google.protobuf'
const PROTO = 'io.prometheus.client.MetricFamily'

/**
 * True when the Accept header ranks the delimited MetricFamily protobuf above every text format
 * (higher q, or the same q and listed first). Prometheus with native histograms on sends
 * `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,...`.
 * Like client_golang, another proto or encoding is not this format.
 */
export function prefersProtobuf (accept: string | undefined): boolean {
  if (accept === undefined || !/vnd\.google\.protobuf/i.test(accept)) return false
  // The best q of each side, and where it was listed: at equal q the earlier one wins.
  let pb = { q: 0, at: Infinity }
  let text = { q: 0, at: Infinity }
  for (const { type, params, q, at } of parseAccept(accept)) {
    if (!(q > 0 && q <= 1)) continue
    if (type === PROTOBUF_TYPE) {
      if (params.proto === PROTO && params.encoding?.toLowerCase() === 'delimited' && q > pb.q) pb = { q, at }
    } else if (type === 'application/openmetrics-text' || type === 'text/plain' || type === 'text/*' || type === '*/*') {
      if (q > text.q) text = { q, at }
    }
  }
  return pb.q > text.q || (pb.q > 0 && pb.q === text.q && pb.at < text.at)
}

/** The native part of a histogram series; spans and deltas as in metrics.proto. */
export interface NativePart {
  schema: number
  zeroThreshold: number
  zeroCount: number
  positiveSpans: ReadonlyArray<{ offset: number, length: number }>
  positiveDeltas: readonly number[]
  negativeSpans: ReadonlyArray<{ offset: number, length: number }>
  negativeDeltas: readonly number[]
}

export type FamilyType = 'counter' | 'gauge' | 'summary' | 'untyped' | 'histogram'
type ExemplarLike = Pick<Exemplar, 'value' | 'timestamp'> & { labelSet: Record<string, unknown> }

const TYPE_NUMBER: Record<FamilyType, number> = { counter: 0, gauge: 1, summary: 2, untyped: 3, histogram: 4 }
// MetricFamily 1 name, 2 help, 3 type, 4 metric; Metric 1 label, 2 gauge, 3 counter, 4 summary,
// 5 untyped, 7 histogram; Gauge, Counter and Untyped 1 value; Counter 2 exemplar.
const METRIC_FIELD = 4
const VALUE_FIELD: Record<FamilyType, number> = { gauge: 2, counter: 3, summary: 4, untyped: 5, histogram: 7 }
/** The tag of MetricFamily.metric (field 4, length-delimited): 4 << 3 | 2. */
const METRIC_TAG = 0x22

// One writer for every message: encoding is synchronous, and its buffer is reused from scrape to
// scrape unless one message made it large.
const KEEP_CAPACITY = 1024 * 1024
let scratch = new ProtoWriter()

function writer (): ProtoWriter {
  scratch.reset()
  return scratch
}

function done (w: ProtoWriter): Buffer {
  const b = w.finish()
  if (w.capacity > KEEP_CAPACITY) scratch = new ProtoWriter()
  return b
}

function labelPair (w: ProtoWriter, field: number, name: string, value: unknown): void {
  const start = w.begin(field)
  w.string(1, name)
  w.string(2, String(value))
  w.end(start)
}

/** A series' labels then the defaults it does not override, skipping undefined values (as formatLabels). */
function writeLabels (w: ProtoWriter, labels: Record<string, unknown> | undefined, defaults: Record<string, unknown> | null): void {
  if (labels !== undefined) {
    for (const k in labels) {
      const v = labels[k]
      if (v !== undefined) labelPair(w, 1, k, v)
    }
  }
  if (defaults !== null) {
    for (const k in defaults) {
      if ((labels !== undefined && labels[k] !== undefined) || defaults[k] === undefined) continue
      labelPair(w, 1, k, defaults[k])
    }
  }
}

/**
 * Exemplar: 1 label, 2 value, 3 timestamp. The timestamp (seconds, a float, as the instruments and
 * prom-client keep it) becomes google.protobuf.Timestamp's seconds and nanos, rounded to the
 * microsecond: a double of today's epoch seconds is only good to ~0.2 µs, and its noise would
 * turn 1718000000.123 into nanos 122999907, which Prometheus truncates to 122 ms.
 */
function writeExemplar (w: ProtoWriter, field: number, e: ExemplarLike | null | undefined): void {
  if (e == null || typeof e.value !== 'number') return
  const start = w.begin(field)
  for (const k in e.labelSet) {
    if (e.labelSet[k] !== undefined) labelPair(w, 1, k, e.labelSet[k])
  }
  w.double(2, e.value)
  if (Number.isFinite(e.timestamp)) {
    let seconds = Math.floor(e.timestamp)
    let nanos = Math.round((e.timestamp - seconds) * 1e6) * 1000
    if (nanos >= 1e9) {
      seconds++
      nanos -= 1e9
    }
    const ts = w.begin(3)
    if (seconds !== 0) w.int(1, seconds)
    if (nanos !== 0) w.int(2, nanos)
    w.end(ts)
  }
  w.end(start)
}

/** Bucket: 1 cumulative_count, 2 upper_bound, 3 exemplar. */
function writeBucket (w: ProtoWriter, cumulative: number, upperBound: number, exemplar: ExemplarLike | null | undefined): void {
  const start = w.begin(3)
  w.uint(1, cumulative)
  w.double(2, upperBound)
  writeExemplar(w, 3, exemplar)
  w.end(start)
}

function writeSpans (w: ProtoWriter, field: number, spans: NativePart['positiveSpans']): void {
  for (const s of spans) {
    const start = w.begin(field)
    w.sint(1, s.offset)
    w.uint(2, s.length)
    w.end(start)
  }
}

/** Histogram 5 schema, 6 zero_threshold, 7 zero_count, 9/10 negative spans/deltas, 12/13 positive. */
function writeNative (w: ProtoWriter, n: NativePart): void {
  w.sint(5, n.schema)
  w.double(6, n.zeroThreshold)
  w.uint(7, n.zeroCount)
  writeSpans(w, 9, n.negativeSpans)
  w.packedSint(10, n.negativeDeltas)
  // As client_golang: an empty native histogram with no zero bucket gets a no-op span, or it
  // would read as a classic one (Prometheus 3 looks at spans; 2.42 only at deltas and the zero
  // bucket, so there a zero threshold above 0 is what marks a histogram native).
  const empty = n.positiveSpans.length === 0 && n.negativeSpans.length === 0 && n.zeroThreshold === 0 && n.zeroCount === 0
  writeSpans(w, 12, empty ? NO_OP_SPAN : n.positiveSpans)
  w.packedSint(13, n.positiveDeltas)
}

const NO_OP_SPAN = [{ offset: 0, length: 0 }]

/**
 * One Metric message (to go in MetricFamily field 4, see frameFamily) for a series of the plugin's
 * histogram: labels, sample_count, sample_sum, the classic buckets cumulated from per-bucket
 * `counts` (the last slot is +Inf), then the native part if any. The +Inf bucket is left out, as
 * client_golang does, unless it holds an exemplar (then with sample_count as its count).
 */
export function encodeHistogramMetric (labels: Record<string, string>, defaults: Record<string, unknown> | null, upperBounds: readonly number[],
  counts: readonly number[], sum: number, count: number, exemplars: ReadonlyArray<ExemplarLike | null> | null, native: NativePart | null): Buffer {
  const w = writer()
  writeLabels(w, labels, defaults)
  const h = w.begin(VALUE_FIELD.histogram)
  w.uint(1, count)
  w.double(2, sum)
  let acc = 0
  for (let i = 0; i < upperBounds.length; i++) {
    acc += counts[i]
    writeBucket(w, acc, upperBounds[i], exemplars?.[i])
  }
  const inf = exemplars?.[upperBounds.length]
  if (inf != null) writeBucket(w, count, Infinity, inf)
  if (native !== null) writeNative(w, native)
  w.end(h)
  return done(w)
}

/**
 * The delimited MetricFamily around already-encoded Metric messages: the length prefix with name,
 * help and type, then each metric's tag and length followed by the metric itself, as buffers to
 * write in order (the metrics are not copied). A family without metrics is left out (nothing is
 * returned), as client_golang's registry does: Prometheus skips them anyway.
 */
export function frameFamily (name: string, help: string, type: FamilyType, metrics: readonly Buffer[]): Buffer[] {
  if (metrics.length === 0) return []
  const w = writer()
  w.string(1, name)
  w.string(2, help)
  w.uint(3, TYPE_NUMBER[type])
  let prefixes = 0
  for (const m of metrics) prefixes += 1 + varintSize(m.length)
  let body = w.pos + prefixes
  for (const m of metrics) body += m.length
  const fields = done(w)
  const head = Buffer.allocUnsafe(varintSize(body) + fields.length)
  fields.copy(head, putVarint(head, 0, body))
  // Every metric's tag and length in one allocation, handed out as slices.
  const tags = Buffer.allocUnsafe(prefixes)
  const out: Buffer[] = [head]
  let o = 0
  for (const m of metrics) {
    const from = o
    tags[o++] = METRIC_TAG
    o = putVarint(tags, o, m.length)
    out.push(tags.subarray(from, o), m)
  }
  return out
}

interface GenericData { name: string, help?: string, type: string, values?: any[] }
interface Group { labels: Record<string, unknown>, sum: number, count: number | undefined, parts: Array<{ at: number, value: number, exemplar?: ExemplarLike | null }> }

function familyType (type: string): FamilyType {
  return type === 'counter' || type === 'gauge' || type === 'histogram' || type === 'summary' ? type : 'untyped'
}

/** A value's labels with its sharedLabels, as renderGeneric takes them. */
function labelsOf (v: any): Record<string, unknown> | undefined {
  return v.sharedLabels !== undefined ? { ...v.sharedLabels, ...v.labels } : v.labels
}

/** A bucket's `le` or a quantile: numbers or strings such as '+Inf' (which Number() does not read). */
function parseBound (v: unknown): number {
  if (v === '+Inf' || v === 'Inf') return Infinity
  if (v === '-Inf') return -Infinity
  return Number(v)
}

/**
 * Histogram and summary values grouped into series: by their labels without `le` (or `quantile`),
 * whatever their order, keeping first-seen order and the first value's label order.
 */
function groupSeries (data: GenericData, skip: string): Group[] {
  const groups = new Map<string, Group>()
  const parts = data.type === 'histogram' ? data.name + '_bucket' : data.name
  for (const v of data.values ?? []) {
    const labels = labelsOf(v) ?? {}
    const names = Object.keys(labels).filter((k) => k !== skip && labels[k] !== undefined).sort()
    const key = names.map((k) => k + '\u0001' + String(labels[k])).join('\u0000')
    let g = groups.get(key)
    if (g === undefined) {
      const own: Record<string, unknown> = {}
      for (const k in labels) if (k !== skip) own[k] = labels[k]
      g = { labels: own, sum: 0, count: undefined, parts: [] }
      groups.set(key, g)
    }
    const name: string = v.metricName ?? data.name
    if (name === data.name + '_sum') g.sum = Number(v.value)
    else if (name === data.name + '_count') g.count = Number(v.value)
    else if (name === parts) {
      const at = parseBound(labels[skip])
      if (!Number.isNaN(at)) g.parts.push({ at, value: Number(v.value), exemplar: v.exemplar })
    }
  }
  return [...groups.values()]
}

function writeHistogramGroup (w: ProtoWriter, g: Group): void {
  const buckets = g.parts.sort((a, b) => a.at - b.at)
  const inf = buckets.length > 0 && buckets[buckets.length - 1].at === Infinity ? buckets[buckets.length - 1] : undefined
  const count = g.count ?? inf?.value ?? 0
  w.uint(1, count)
  w.double(2, g.sum)
  for (const b of buckets) {
    // The +Inf bucket only to carry an exemplar, as encodeHistogramMetric.
    if (b !== inf || b.exemplar != null) writeBucket(w, b.value, b.at, b.exemplar)
  }
}

/** Summary: 1 sample_count, 2 sample_sum, 3 quantile (1 quantile, 2 value). */
function writeSummaryGroup (w: ProtoWriter, g: Group): void {
  w.uint(1, g.count ?? 0)
  w.double(2, g.sum)
  for (const q of g.parts) {
    const start = w.begin(3)
    w.double(1, q.at)
    w.double(2, q.value)
    w.end(start)
  }
}

/**
 * Any prom-client or @prometheus-io/client metric's get() data as one delimited MetricFamily:
 * counters (with their exemplars), gauges and any other type as untyped, one Metric per value;
 * histograms from their _bucket/_sum/_count values and summaries from their quantile and
 * _sum/_count values, one Metric per label set. Values with no place in the family (a name that
 * is neither the family's nor one of its suffixes) cannot be expressed and are left out.
 */
export function encodeGenericFamily (data: GenericData, defaults: Record<string, unknown> | null): Buffer[] {
  const values = data.values ?? []
  if (values.length === 0) return []
  const type = familyType(data.type)
  const w = writer()
  const family = w.begin()
  w.string(1, data.name)
  w.string(2, data.help ?? '')
  w.uint(3, TYPE_NUMBER[type])
  if (type === 'histogram' || type === 'summary') {
    const histogram = type === 'histogram'
    for (const g of groupSeries(data, histogram ? 'le' : 'quantile')) {
      const metric = w.begin(METRIC_FIELD)
      writeLabels(w, g.labels, defaults)
      const value = w.begin(VALUE_FIELD[type])
      if (histogram) writeHistogramGroup(w, g)
      else writeSummaryGroup(w, g)
      w.end(value)
      w.end(metric)
    }
  } else {
    for (const v of values) {
      if (v.metricName !== undefined && v.metricName !== data.name) continue
      const metric = w.begin(METRIC_FIELD)
      writeLabels(w, labelsOf(v), defaults)
      const value = w.begin(VALUE_FIELD[type])
      w.double(1, Number(v.value))
      if (type === 'counter') writeExemplar(w, 2, v.exemplar)
      w.end(value)
      w.end(metric)
    }
  }
  w.end(family)
  return [done(w)]
}
