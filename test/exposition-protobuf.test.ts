// The protobuf exposition encoder, decoded by an independent decoder (protobufjs) against the
// published schema, field by field.
//
// test/fixtures/metrics.proto is prometheus/client_model's io/prometheus/client/metrics.proto at
// tag v0.3.0 (commit 63fb9822ca3ba7a4ba5184071fb8f2ea000a99ef, byte for byte; taken from Debian's
// golang-github-prometheus-client-model-dev 0.3.0-3, sha256 bc9c0c2d…939359b): the schema of
// Prometheus 2.42's time. Later versions (467cd280de49, 2025) only add fields this encoder does
// not write (created timestamps, unit, native exemplars). google/protobuf/timestamp.proto is one
// of protobufjs' bundled common types.
import t from 'tap'
import client from 'prom-client'
import { decode, Metric, samplesOf, textSamples } from './helpers/metric-families'
import {
  PROTOBUF_CONTENT_TYPE, encodeGenericFamily, encodeHistogramMetric, frameFamily, prefersProtobuf
} from '../lib/exposition-protobuf'
import type { NativePart } from '../lib/exposition-protobuf'
import { SeriesHistogram, SeriesGauge } from '../lib/instruments'

/** A metric's get() data. prom-client's typings say `type` is a numeric enum; it is a string. */
const data = async (metric: { get: () => Promise<unknown> }): Promise<any> => await metric.get()

const labelPairs = (labels: Record<string, string>): Array<{ name: string, value: string }> => Object.entries(labels).map(([name, value]) => ({ name, value }))

t.test('prefersProtobuf: Prometheus 2.42 asks for it first with native histograms on, not otherwise', async (t) => {
  // prometheus/prometheus v2.42.0 (commit 225c61122d88) scrape/scrape.go, scrapeAcceptHeader and
  // scrapeAcceptHeaderWithProtobuf; the same strings are in Debian's /usr/bin/prometheus 2.42.0.
  const withProtobuf = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
  const without = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
  const pb = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited'
  t.equal(prefersProtobuf(withProtobuf), true, 'native histograms on')
  t.equal(prefersProtobuf(without), false, 'native histograms off')
  t.equal(prefersProtobuf(undefined), false)
  t.equal(prefersProtobuf('*/*'), false)
  t.equal(prefersProtobuf(pb), true, 'alone')
  t.equal(prefersProtobuf(PROTOBUF_CONTENT_TYPE), true, 'with spaces, as this module answers it')
  t.equal(prefersProtobuf('Application/Vnd.Google.Protobuf; Proto="io.prometheus.client.MetricFamily"; ENCODING=Delimited'), true, 'type and parameter names case-insensitive, a quoted value')
  t.equal(prefersProtobuf(pb + ';q=0.4,text/plain;version=0.0.4;q=0.5'), false, 'q decides: text higher')
  t.equal(prefersProtobuf('text/plain;q=0.3,' + pb + ';q=0.4'), true, 'q decides: protobuf higher, listed second')
  t.equal(prefersProtobuf('text/plain,' + pb), false, 'same q: the first listed wins')
  t.equal(prefersProtobuf(pb + ',text/plain'), true, 'same q: the first listed wins')
  t.equal(prefersProtobuf(pb + ';q=0,text/plain;q=0.1'), false, 'q=0: not acceptable')
  t.equal(prefersProtobuf(pb + ';q=0'), false)
  t.equal(prefersProtobuf(pb + ';q=garbage'), false)
  t.equal(prefersProtobuf('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily'), false, 'no encoding: not the delimited format')
  t.equal(prefersProtobuf('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text'), false, 'the text encoding of protobuf is not served')
  t.equal(prefersProtobuf('application/vnd.google.protobuf;proto=other.Message;encoding=delimited'), false, 'another message')
  t.equal(prefersProtobuf('application/vnd.google.protobuf;proto=other.Message;encoding=delimited,' + pb + ';q=0.9,text/plain;q=0.8'), true, 'the right entry counts')
  t.equal(prefersProtobuf(pb + ';charset;q=0.2,*/*;q=0.1'), true, 'a parameter without a value is ignored')
})

t.test('prom-client metrics of every type: decoded field by field, and the same samples as the text exposition', async (t) => {
  const registry = new client.Registry()
  const defaults = { service: 'shop', region: 'eu' }
  registry.setDefaultLabels(defaults)
  const jobs = new client.Counter({ name: 'jobs_total', help: 'Jobs "done"\\n', labelNames: ['queue', 'region'], registers: [registry] })
  jobs.inc({ queue: 'café ☕ 𝄞', region: 'us' }, 2)
  jobs.inc({ queue: 'a"b\\c\nd' }, 2 ** 40 + 3)
  const temp = new client.Gauge({ name: 'temp', help: 'Temp.', labelNames: ['probe'], registers: [registry] })
  temp.set({ probe: 'nan' }, NaN)
  temp.set({ probe: 'inf' }, Infinity)
  temp.set({ probe: 'minf' }, -Infinity)
  temp.set({ probe: 'neg' }, -1.5)
  const sizes = new client.Histogram({ name: 'size_bytes', help: 'Size.', labelNames: ['kind'], buckets: [1, 10, 100], registers: [registry] })
  for (const v of [0.5, 5, 5, 50, 500]) sizes.observe({ kind: 'a' }, v)
  sizes.observe({ kind: 'b' }, 7)
  const lat = new client.Summary({ name: 'lat', help: 'Lat.', labelNames: ['op'], percentiles: [0.5, 0.9], registers: [registry] })
  for (const v of [1, 2, 3, 4]) lat.observe({ op: 'read' }, v)
  const empty = new client.Gauge({ name: 'never_set', help: 'Never set.', labelNames: ['x'], registers: [registry] })

  const families = decode((await Promise.all(registry.getMetricsAsArray().map(async (m: any) => encodeGenericFamily(await data(m), defaults)))).flat())
  t.same(families.map((f) => f.name), ['jobs_total', 'temp', 'size_bytes', 'lat'], 'in registry order; the family without series is left out')
  t.same(encodeGenericFamily(await data(empty), defaults), [])

  const [c, g, h, s] = families
  t.same({ name: c.name, help: c.help, type: c.type }, { name: 'jobs_total', help: 'Jobs "done"\\n', type: 'COUNTER' }, 'help as is: no escaping in protobuf')
  t.same(c.metric[0].label, labelPairs({ queue: 'café ☕ 𝄞', region: 'us', service: 'shop' }), 'own labels, then defaults not overridden')
  t.equal(c.metric[0].counter.value, 2)
  t.same(c.metric[1].label, labelPairs({ queue: 'a"b\\c\nd', service: 'shop', region: 'eu' }))
  t.equal(c.metric[1].counter.value, 2 ** 40 + 3)
  t.notOk('exemplar' in c.metric[0].counter, 'no exemplar without one')

  t.equal(g.type, 'GAUGE')
  t.same(g.metric.map((m: any) => m.label[0].value), ['nan', 'inf', 'minf', 'neg'])
  t.ok(Number.isNaN(g.metric[0].gauge.value), 'NaN')
  t.same(g.metric.slice(1).map((m: any) => m.gauge.value), [Infinity, -Infinity, -1.5])

  t.equal(h.type, 'HISTOGRAM')
  t.same(h.metric[0].label, labelPairs({ kind: 'a', service: 'shop', region: 'eu' }), 'no le label: buckets are structure')
  t.same(h.metric[0].histogram, {
    sampleCount: 5,
    sampleSum: 560.5,
    bucket: [{ cumulativeCount: 1, upperBound: 1 }, { cumulativeCount: 3, upperBound: 10 }, { cumulativeCount: 4, upperBound: 100 }],
    negativeSpan: [],
    negativeDelta: [],
    negativeCount: [],
    positiveSpan: [],
    positiveDelta: [],
    positiveCount: []
  }, 'count, sum, cumulative buckets; +Inf left out; no native part')
  t.same(h.metric[1].histogram.bucket.map((b: any) => b.cumulativeCount), [0, 1, 1])

  t.equal(s.type, 'SUMMARY')
  t.same(s.metric[0].label, labelPairs({ op: 'read', service: 'shop', region: 'eu' }))
  t.equal(s.metric[0].summary.sampleCount, 4)
  t.equal(s.metric[0].summary.sampleSum, 10)
  const expected = (await data(lat)).values.filter((v: any) => v.metricName === undefined).map((v: any) => ({ quantile: v.labels.quantile, value: v.value }))
  t.same(s.metric[0].summary.quantile, expected, 'quantiles in order, as prom-client computed them')

  const text = await registry.metrics()
  for (const f of families) t.same(samplesOf(f), textSamples(text, f.name), `${f.name}: the same samples as prom-client's text exposition`)
})

/** The other client module, where it is installed (it declares Node 22+). */
function prometheusIoClient (): typeof client | undefined {
  try {
    return require('@prometheus-io/client')
  } catch {
    return undefined
  }
}

const prom = prometheusIoClient()
t.test('@prometheus-io/client metrics, where it is installed', { skip: prom === undefined && '@prometheus-io/client is not installed' }, async (t) => {
  if (prom === undefined) return
  const registry = new prom.Registry()
  registry.setDefaultLabels({ service: 'shop' })
  new prom.Counter({ name: 'orders_total', help: 'Orders.', labelNames: ['kind'], registers: [registry] }).inc({ kind: 'book' }, 3)
  new prom.Gauge({ name: 'depth', help: 'Depth.', registers: [registry] }).set(7)
  const h = new prom.Histogram({ name: 'job_seconds', help: 'Jobs.', labelNames: ['q'], buckets: [0.1, 1], registers: [registry] })
  h.observe({ q: 'x' }, 0.5)
  h.observe({ q: 'x' }, 3)
  const s = new prom.Summary({ name: 'payload_bytes', help: 'Payloads.', percentiles: [0.5], registers: [registry] })
  for (const v of [10, 20, 30]) s.observe(v)
  const families = decode((await Promise.all(registry.getMetricsAsArray().map(async (m: any) => encodeGenericFamily(await data(m), { service: 'shop' })))).flat())
  t.same(families.map((f) => [f.name, f.type]), [['orders_total', 'COUNTER'], ['depth', 'GAUGE'], ['job_seconds', 'HISTOGRAM'], ['payload_bytes', 'SUMMARY']])
  t.same(families[2].metric[0].histogram.bucket, [{ cumulativeCount: 0, upperBound: 0.1 }, { cumulativeCount: 1, upperBound: 1 }])
  const text = await registry.metrics()
  for (const f of families) t.same(samplesOf(f), textSamples(text, f.name), `${f.name}: the same samples as its text exposition`)
})

t.test("exemplars: prom-client's counters and histograms, and the plugin's histogram (+Inf bucket kept for one)", async (t) => {
  // prom-client keeps exemplars only in an OpenMetrics registry; its typings restrict exemplar
  // label names to the metric's own, hence the casts.
  const registry = new client.Registry<client.OpenMetricsContentType>()
  registry.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE)
  const c = new client.Counter({ name: 'hits_total', help: 'Hits.', labelNames: ['k'], enableExemplars: true, registers: [registry] })
  c.inc({ labels: { k: 'v' }, value: 2, exemplarLabels: { trace_id: 'abc' } } as any)
  const h = new client.Histogram({ name: 'h_seconds', help: 'H.', labelNames: ['a'], buckets: [1, 10], enableExemplars: true, registers: [registry] })
  h.observe({ labels: { a: 'x' }, value: 5, exemplarLabels: { trace_id: 't1' } } as any)
  h.observe({ labels: { a: 'x' }, value: 50, exemplarLabels: { trace_id: 't2' } } as any)

  const [counter] = decode(encodeGenericFamily(await data(c), null))
  const e = counter.metric[0].counter.exemplar
  const ts = (await data(c)).values[0].exemplar.timestamp
  t.same(e.label, labelPairs({ trace_id: 'abc' }))
  t.equal(e.value, 2)
  t.equal(e.timestamp.seconds, Math.floor(ts), 'timestamp seconds')
  t.equal(e.timestamp.nanos, Math.round((ts - Math.floor(ts)) * 1e3) * 1e6, 'timestamp nanos: the milliseconds prom-client has')

  const [histogram] = decode(encodeGenericFamily(await data(h), null))
  const buckets = histogram.metric[0].histogram.bucket
  t.same(buckets.map((b: any) => [b.upperBound, b.cumulativeCount, b.exemplar?.label[0].value]), [[1, 0, undefined], [10, 1, 't1'], [Infinity, 2, 't2']], 'the +Inf bucket is kept to carry its exemplar')
  t.equal(buckets[2].exemplar.value, 50)

  // The plugin's own: timestamps to the microsecond, including one whose double is .1229999065
  // (Prometheus would read 122 ms from its nanos), and one before 1970 (int64 seconds -2, ten
  // bytes; nanos stay positive).
  const bounds = [0.1, 1]
  const exemplars = [
    { labelSet: { trace_id: 'a', span_id: 'b' }, value: 0.05, timestamp: 1718000000.123 },
    null,
    { labelSet: { trace_id: 'c', span_id: 'd' }, value: 7, timestamp: -1.5 }
  ]
  const [mine] = decode(frameFamily('d_seconds', 'D.', 'histogram', [encodeHistogramMetric({ route: '/a' }, null, bounds, [1, 0, 1], 7.05, 2, exemplars, null)]))
  const b = mine.metric[0].histogram.bucket
  t.same(b.map((x: any) => [x.upperBound, x.cumulativeCount]), [[0.1, 1], [1, 1], [Infinity, 2]])
  t.same(b[0].exemplar, { label: labelPairs({ trace_id: 'a', span_id: 'b' }), value: 0.05, timestamp: { seconds: 1718000000, nanos: 123000000 } })
  t.notOk('exemplar' in b[1])
  t.same(b[2].exemplar.timestamp, { seconds: -2, nanos: 500000000 })
  const carried = decode(frameFamily('x', '', 'histogram', [encodeHistogramMetric({}, null, [1], [1, 0], 1, 1, [{ labelSet: {}, value: 1, timestamp: 41.9999999 }, null], null)]))
  t.same(carried[0].metric[0].histogram.bucket[0].exemplar, { label: [], value: 1, timestamp: { seconds: 42 } }, 'a microsecond short of 42 s: 42 s, no nanos')
  const noTime = decode(frameFamily('x', '', 'histogram', [encodeHistogramMetric({}, null, [1], [1, 0], 1, 1, [{ labelSet: { trace_id: 'z' }, value: 1, timestamp: NaN }, null], null)]))
  t.notOk('timestamp' in noTime[0].metric[0].histogram.bucket[0].exemplar, 'no timestamp when it is unknown')
})

t.test('a histogram Metric with a native part: schema, zero bucket, spans, deltas', async (t) => {
  const native: NativePart = {
    schema: -3,
    zeroThreshold: 2 ** -128,
    zeroCount: 2 ** 33 + 1,
    positiveSpans: [{ offset: -5, length: 2 }, { offset: 300, length: 1 }],
    positiveDeltas: [4, -3, 70000],
    negativeSpans: [{ offset: 1, length: 2 }],
    negativeDeltas: [1, -1]
  }
  const metric = encodeHistogramMetric({ http_route: '/a' }, { service: 'shop' }, [0.1, 1], [2, 0, 5], 12.5, 7, null, native)
  const m = Metric.toObject(Metric.decode(metric), { longs: Number, arrays: true })
  t.same(m.label, labelPairs({ http_route: '/a', service: 'shop' }))
  const h = m.histogram
  t.same([h.sampleCount, h.sampleSum], [7, 12.5])
  t.same(h.bucket, [{ cumulativeCount: 2, upperBound: 0.1 }, { cumulativeCount: 2, upperBound: 1 }], 'classic buckets alongside')
  t.equal(h.schema, -3, 'negative schema: zigzag')
  t.equal(h.zeroThreshold, 2 ** -128)
  t.equal(h.zeroCount, 2 ** 33 + 1, 'uint64 beyond 32 bits')
  t.same(h.positiveSpan, [{ offset: -5, length: 2 }, { offset: 300, length: 1 }])
  t.same(h.positiveDelta, [4, -3, 70000], 'negative and multi-byte deltas')
  t.same(h.negativeSpan, [{ offset: 1, length: 2 }])
  t.same(h.negativeDelta, [1, -1])
  t.same([h.positiveCount, h.negativeCount], [[], []], 'integer histogram: no float counts')
  t.notOk('sampleCountFloat' in h || 'zeroCountFloat' in h, 'nor float totals')

  const positive = Metric.toObject(Metric.decode(encodeHistogramMetric({}, null, [], [0], 0, 0, null, { ...native, schema: 8 })), { arrays: true })
  t.equal(positive.histogram.schema, 8)

  // Nothing observed, no zero bucket: a no-op span, as client_golang writes, marks it native.
  const none = Metric.toObject(Metric.decode(encodeHistogramMetric({}, null, [1], [0, 0], 0, 0, null,
    { schema: 3, zeroThreshold: 0, zeroCount: 0, positiveSpans: [], positiveDeltas: [], negativeSpans: [], negativeDeltas: [] })), { longs: Number, arrays: true, defaults: true })
  t.same(none.histogram.positiveSpan, [{ offset: 0, length: 0 }])
  t.same(none.histogram.positiveDelta, [])
  t.equal(none.histogram.schema, 3)
  const zeroOnly = Metric.toObject(Metric.decode(encodeHistogramMetric({}, null, [1], [0, 0], 0, 0, null,
    { schema: 3, zeroThreshold: 1e-9, zeroCount: 0, positiveSpans: [], positiveDeltas: [], negativeSpans: [], negativeDeltas: [] })), { arrays: true })
  t.same(zeroOnly.histogram.positiveSpan, [], 'a zero threshold marks it already: no span added')
})

t.test("the plugin's histogram: decoded equals prom-client's text exposition of the same series, with default labels", async (t) => {
  const registry = new client.Registry()
  const mine = new SeriesHistogram('d_seconds', 'D.', ['method', 'route'], [0.005, 0.1, 1])
  registry.registerMetric(mine as any)
  for (const v of [0.001, 0.05, 0.05, 0.5, 3]) mine.seriesFor(['GET', '/a']).observe(v)
  mine.seriesFor(['POST', '/b']).observe(2)
  const gauge = new SeriesGauge('active', 'A.', 'method')
  registry.registerMetric(gauge as any)
  gauge.seriesFor('GET').value = 2
  const defaults = { service: 'shop', route: 'never-shown' }
  registry.setDefaultLabels(defaults)

  const metrics = [...mine.series.values()].map((s) => encodeHistogramMetric(s.labels, defaults, mine.upperBounds, s.counts, s.sum, s.count, s.exemplars, null))
  const parts = [...frameFamily(mine.name, mine.help, 'histogram', metrics), ...encodeGenericFamily(await data(gauge), defaults)]
  const [h, g] = decode(parts)
  t.same([h.name, h.help, h.type], ['d_seconds', 'D.', 'HISTOGRAM'])
  t.same(h.metric[0].label, labelPairs({ method: 'GET', route: '/a', service: 'shop' }), 'own labels first; a default does not override one')
  t.same(h.metric[0].histogram.bucket.map((b: any) => [b.upperBound, b.cumulativeCount]), [[0.005, 1], [0.1, 3], [1, 4]])
  t.equal(h.metric[0].histogram.sampleCount, 5)
  t.equal(h.metric[0].histogram.sampleSum, 0.001 + 0.05 + 0.05 + 0.5 + 3)
  const text = await registry.metrics()
  t.same(samplesOf(h), textSamples(text, 'd_seconds'), 'counts, sum, bounds as the text shows them')
  t.same(samplesOf(g), textSamples(text, 'active'))
  t.same(frameFamily('nothing', '', 'histogram', []), [], 'no metrics, no family')
})

t.test('framing: families back to back, long fields, sharedLabels, undefined label values', async (t) => {
  const longHelp = 'h'.repeat(300)
  const longValue = 'v'.repeat(20000) // a three-byte length
  const many = Array.from({ length: 200 }, (_, i) => encodeHistogramMetric({ i: String(i) }, null, [1], [i, 1], i, i + 1, null, null))
  const parts = [
    ...encodeGenericFamily({ name: 'one', help: longHelp, type: 'counter', values: [{ labels: { a: longValue }, value: 1 }] }, null),
    ...frameFamily('two', 'Two.', 'histogram', many),
    ...encodeGenericFamily({
      name: 'three',
      type: 'gauge',
      values: [
        { labels: { own: 'o', gone: undefined }, sharedLabels: { shared: 's', own: 'hidden' }, value: 3 },
        { labels: {}, value: 4, metricName: 'three_other' } // no place in a family named three
      ]
    }, { d: 'x', e: undefined }),
    ...encodeGenericFamily({ name: 'four', help: 'Four.', type: 'info', values: [{ labels: {}, value: 1 }] }, null)
  ]
  t.ok(parts.length > 400, 'a framed family is handed out metric by metric, not concatenated')
  const families = decode(parts)
  t.same(families.map((f) => f.name), ['one', 'two', 'three', 'four'], 'in order')
  t.equal(families[0].help, longHelp)
  t.equal(families[0].metric[0].label[0].value, longValue)
  t.equal(families[1].metric.length, 200)
  t.same(families[1].metric.map((m: any) => m.histogram.sampleCount), many.map((_, i) => i + 1))
  t.same(families[1].metric[199].label, labelPairs({ i: '199' }))
  t.same(families[2].metric.length, 1, 'a value named otherwise is left out')
  t.same(families[2].metric[0].label, labelPairs({ shared: 's', own: 'o', d: 'x' }), 'sharedLabels under the own ones; undefined values skipped')
  t.equal(families[2].help, '', 'no help: empty')
  t.same([families[3].type, families[3].metric[0].untyped.value], ['UNTYPED', 1], 'any other type: untyped')

  // A message larger than the reused buffer keeps: it grows, then is let go; later ones are right.
  const huge = encodeGenericFamily({ name: 'huge', help: '', type: 'gauge', values: [{ labels: { a: 'x'.repeat(3 * 1024 * 1024) }, value: 1 }] }, null)
  t.equal(decode(huge)[0].metric[0].label[0].value.length, 3 * 1024 * 1024)
  t.same(decode(encodeGenericFamily({ name: 'after', help: '', type: 'gauge', values: [{ labels: {}, value: 5 }] }, null))[0].metric[0].gauge.value, 5)
})

t.test('histogram and summary values from get() in any order, and odd ones', async (t) => {
  const [h] = decode(encodeGenericFamily({
    name: 'h',
    help: '',
    type: 'histogram',
    values: [
      { metricName: 'h_count', labels: { b: '2', a: '1' }, value: 3 },
      { metricName: 'h_bucket', labels: { a: '1', b: '2', le: '+Inf' }, value: 3 },
      { metricName: 'h_bucket', labels: { le: 5, a: '1', b: '2' }, value: 2 },
      { metricName: 'h_bucket', labels: { a: '1', b: '2', le: '0.5' }, value: 1 },
      { metricName: 'h_bucket', labels: { a: '1', b: '2' }, value: 9 }, // no le: not a bucket
      { metricName: 'h_sum', labels: { a: '1', b: '2' }, value: 6.5 },
      { metricName: 'h_bucket', labels: { a: 'other', le: '+Inf' }, value: 4 }
    ]
  }, null))
  t.equal(h.metric.length, 2, 'grouped by labels without le, whatever their order')
  t.same(h.metric[0].label, labelPairs({ b: '2', a: '1' }), "the first value's label order")
  t.same(h.metric[0].histogram.bucket, [{ cumulativeCount: 1, upperBound: 0.5 }, { cumulativeCount: 2, upperBound: 5 }], 'sorted by bound, numeric or string')
  t.same([h.metric[0].histogram.sampleCount, h.metric[0].histogram.sampleSum], [3, 6.5])
  t.same([h.metric[1].histogram.sampleCount, h.metric[1].histogram.bucket], [4, []], 'no _count: the +Inf bucket gives it')

  const [s] = decode(encodeGenericFamily({ name: 's', type: 'summary', values: [{ labels: { quantile: '0.99' }, value: 7 }, { labels: {}, value: 1.5, metricName: 's_count' }] }, null))
  t.same(s.metric[0].summary, { sampleCount: 2, sampleSum: 0, quantile: [{ quantile: 0.99, value: 7 }] }, 'count rounded to an integer; quantile from a string')
})
