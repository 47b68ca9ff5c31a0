// metrics.nativeHistograms in the plugin (docs/native-histograms.md): the option checked at register;
// the protobuf exposition served to a scraper that asks for it, only with the option on, holding
// every metric of the registry (default metrics and the user's too), the duration histogram with
// its classic buckets (equal to the text exposition's) and its native buckets, and exemplars; text
// and OpenMetrics as without the option. The real Prometheus is in native-histograms-prometheus.test.ts.
import t from 'tap'
import Fastify from 'fastify'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import observability from '../lib/index'
import { HttpMetrics } from '../lib/metrics'
import { resolveOptions } from '../lib/options'
import { render } from '../lib/exposition'
import { PROTOBUF_CONTENT_TYPE } from '../lib/exposition-protobuf'
import { bucketKey, DEFAULT_NATIVE_CONFIG } from '../lib/native-histogram'
import { decode, samplesOf, textSamples } from './helpers/metric-families'
import { promtoolCheckMetrics, skipReasonIfAbsent } from './helpers/prometheus'

/** What Prometheus 2.42 sends with --enable-feature=native-histograms (scrape/scrape.go). */
const PROMETHEUS_PROTOBUF = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
const OPENMETRICS = 'application/openmetrics-text;version=1.0.0'
const DURATION = 'http_server_request_duration_seconds'
const skipPromtool = skipReasonIfAbsent()

async function appWith (metrics: Record<string, unknown>, tracing: false | Record<string, unknown> = false): Promise<ReturnType<typeof Fastify>> {
  const app = Fastify()
  await app.register(observability, { tracing, metrics } as any)
  app.get('/api/items/:id', async () => 'ok')
  app.get('/api/fail', async () => { throw new Error('boom') })
  return app
}

t.test('metrics.nativeHistograms: checked at register, naming the option and the value', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    ['yes', /option "metrics\.nativeHistograms" must be a boolean or \{ schema, zeroThreshold, maxBuckets \}, got "yes"/],
    [{ schema: 9 }, /option "metrics\.nativeHistograms\.schema" must be an integer from -4 to 8, got 9/],
    [{ schema: 1.5 }, /"metrics\.nativeHistograms\.schema" .* got 1\.5/],
    [{ zeroThreshold: -1 }, /option "metrics\.nativeHistograms\.zeroThreshold" must be a finite number >= 0, got -1/],
    [{ zeroThreshold: Infinity }, /"metrics\.nativeHistograms\.zeroThreshold" .* got Infinity$/],
    [{ schema: NaN }, /"metrics\.nativeHistograms\.schema" .* got NaN$/],
    [{ maxBuckets: 0 }, /option "metrics\.nativeHistograms\.maxBuckets" must be a positive integer, got 0/],
    [{ buckets: 3 }, /option "metrics\.nativeHistograms\.buckets" is not a known option \(known: schema, zeroThreshold, maxBuckets\)/]
  ]
  for (const [value, message] of bad) {
    const app = Fastify()
    await t.rejects(app.register(observability, { metrics: { nativeHistograms: value as any } }).ready(), { code: 'FST_OBSERVABILITY_INVALID_OPTION', message })
    await app.close()
  }
  for (const good of [true, false, {}, { schema: -4, zeroThreshold: 0, maxBuckets: 1 }, { schema: 8 }]) {
    const app = Fastify()
    await app.register(observability, { metrics: { nativeHistograms: good } })
    await app.ready()
    t.ok(app.metrics, `accepts ${JSON.stringify(good)}`)
    await app.close()
  }
})

t.test('with the option on: protobuf to a scraper that asks for it, with every metric, classic buckets as the text, native buckets, exemplars', async (t) => {
  const exporter = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const app = await appWith({ nativeHistograms: true, defaultMetrics: true }, { tracerProvider })
  t.teardown(() => app.close())
  const client = app.metrics!.client as any
  const users = new client.Counter({ name: 'shop_orders_total', help: 'Orders.', registers: [app.metrics!.registry] })
  users.inc(3)
  for (let i = 0; i < 20; i++) t.equal((await app.inject(`/api/items/${i}`)).statusCode, 200)
  t.equal((await app.inject('/api/fail')).statusCode, 500)

  const pb = await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF } })
  t.equal(pb.statusCode, 200)
  t.equal(pb.headers['content-type'], PROTOBUF_CONTENT_TYPE)
  const families = decode(pb.rawPayload)
  const text = (await app.inject({ url: '/metrics', headers: { accept: 'text/plain' } })).body
  const lines = text.split('\n')
  const withSamples = lines.filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2])
    .filter((name) => lines.some((l) => [name, name + '_bucket', name + '_sum', name + '_count'].includes(l.split(/[ {]/)[0])))
  // Every family of the text exposition that has samples, in the same order. Families without
  // samples (the lost-span counters without an SDK, a gauge with no series) are left out, as
  // client_golang does: Prometheus would skip them.
  // The nodejs_active_* gauges count the process's handles and resources at the moment of each
  // scrape (the scrape itself queues an Immediate), so two scrapes may differ in them; the GC
  // histogram gets its first samples at the process's first collection of a kind, which may fall
  // between the two scrapes (seen once in CI).
  const steady = (names: string[]): string[] => names.filter((n) => !n.startsWith('nodejs_active_') && n !== 'nodejs_gc_duration_seconds')
  t.same(steady(families.map((f) => f.name)), steady(withSamples), 'the same families as the text exposition, default metrics and the user\'s included')
  t.ok(families.some((f) => f.name === 'process_cpu_user_seconds_total'), 'default metrics')
  t.same(families.find((f) => f.name === 'shop_orders_total')?.metric[0].counter.value, 3, 'the user\'s counter')

  const duration = families.find((f) => f.name === DURATION)
  t.equal(duration?.type, 'HISTOGRAM')
  t.same(samplesOf(duration), textSamples(text, DURATION), 'the classic part equals the text exposition\'s, sample for sample')

  const ok = duration.metric.find((m: any) => m.label.some((l: any) => l.name === 'http_response_status_code' && l.value === '200'))
  const h = ok.histogram
  t.equal(h.sampleCount, 20)
  t.equal(h.schema, DEFAULT_NATIVE_CONFIG.schema)
  t.equal(h.zeroThreshold, DEFAULT_NATIVE_CONFIG.zeroThreshold, 'a non-zero zero threshold: Prometheus 2.42 reads the family as native even before an observation')
  const nativeTotal = (h.zeroCount ?? 0) + (h.positiveDelta as number[]).reduce((acc: number[], d: number) => [...acc, (acc.at(-1) ?? 0) + d], []).reduce((a: number, b: number) => a + b, 0)
  t.equal(nativeTotal, 20, 'the native buckets hold every observation')
  // Each populated native bucket is where bucketKey puts some duration within the classic range seen.
  const firstKey = h.positiveSpan[0].offset as number
  t.ok(firstKey <= bucketKey(h.sampleSum / h.sampleCount, h.schema), 'the lowest native bucket is at or below the mean\'s')

  // Exemplars: sampled requests' trace ids on the classic buckets, as in OpenMetrics.
  const exemplars = duration.metric.flatMap((m: any) => m.histogram.bucket.filter((b: any) => b.exemplar !== undefined).map((b: any) => b.exemplar))
  t.ok(exemplars.length > 0, 'exemplars carried')
  const ids = new Set(exporter.getFinishedSpans().map((s) => s.spanContext().traceId))
  for (const e of exemplars) t.ok(ids.has(e.label.find((l: any) => l.name === 'trace_id')?.value), 'an exemplar names an exported trace')

  // Text and OpenMetrics: classic only, unchanged by the option.
  const om = await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })
  t.match(om.headers['content-type'], /^application\/openmetrics-text; version=1\.0\.0/)
  t.match(om.body, /# EOF\n$/)
  t.notMatch(text + om.body, /schema|zero_threshold|native/i, 'nothing native in the text formats')
  t.equal((await app.inject({ url: '/metrics' })).headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8', 'no Accept: text')
})

t.test('with the option off: a scraper asking for protobuf gets OpenMetrics or text, exactly as before', async (t) => {
  const app = await appWith({ defaultMetrics: false })
  t.teardown(() => app.close())
  await app.inject('/api/items/1')
  const res = await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF } })
  t.match(res.headers['content-type'], /^application\/openmetrics-text; version=1\.0\.0/, 'OpenMetrics, its next choice')
  t.match(res.body, /^http_server_request_duration_seconds_count\{.*\} 1$/m)
  const plain = await app.inject({ url: '/metrics', headers: { accept: 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited' } })
  t.equal(plain.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8', 'protobuf alone: text')
})

t.test('the text exposition with the option on passes promtool', skipPromtool === null ? {} : { skip: skipPromtool }, async (t) => {
  const app = await appWith({ nativeHistograms: { schema: 0, maxBuckets: 4 }, defaultMetrics: false })
  t.teardown(() => app.close())
  for (let i = 0; i < 5; i++) await app.inject(`/api/items/${i}`)
  const r = await promtoolCheckMetrics((await app.inject('/metrics')).body)
  t.equal(r.code, 0, JSON.stringify(r))
})

t.test('resolution reduction through the plugin: maxBuckets bounds each series, the count stays exact', async (t) => {
  const app = Fastify()
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false, nativeHistograms: { schema: 8, maxBuckets: 3 } } })
  // Durations spread over orders of magnitude: many buckets at schema 8.
  app.get('/api/wait/:ms', async (req) => { await new Promise((resolve) => setTimeout(resolve, Number((req.params as any).ms))); return 'ok' })
  t.teardown(() => app.close())
  for (const ms of [0, 1, 5, 20, 60]) await app.inject(`/api/wait/${ms}`)
  const families = decode((await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF } })).rawPayload)
  const h = families.find((f) => f.name === DURATION).metric[0].histogram
  t.equal(h.sampleCount, 5)
  const populated = (h.positiveDelta as number[]).reduce((acc: number[], d: number) => [...acc, (acc.at(-1) ?? 0) + d], []).filter((c: number) => c > 0).length
  t.ok(populated <= 3, `at most 3 populated buckets (${populated})`)
  t.ok(h.schema < 8, `resolution reduced (schema ${h.schema as number})`)
})

t.test('scrapes in flight at the same time, protobuf and text, do not corrupt each other', async (t) => {
  const app = await appWith({ nativeHistograms: true, defaultMetrics: false })
  t.teardown(() => app.close())
  for (let i = 0; i < 300; i++) app.get(`/api/r${i}`, async () => 'ok')
  await Promise.all(Array.from({ length: 300 }, (_, i) => app.inject(`/api/r${i}`)))
  const [a, b, c] = await Promise.all([
    app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF } }),
    app.inject({ url: '/metrics', headers: { accept: 'text/plain' } }),
    app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_PROTOBUF } })
  ])
  t.same(a.rawPayload, c.rawPayload, 'the two protobuf scrapes are identical')
  t.same(samplesOf(decode(a.rawPayload).find((f) => f.name === DURATION)), textSamples(b.body, DURATION), 'and agree with the text one')
})

t.test('text and OpenMetrics are byte for byte the same with the option on as off, for the same observations', async (t) => {
  const expositions: string[][] = []
  for (const nativeHistograms of [false, true, { schema: -2, maxBuckets: 2 }]) {
    const options = resolveOptions({ metrics: { defaultMetrics: false, nativeHistograms } }).metrics
    if (options === false) throw new Error('metrics off')
    const m = new HttpMetrics(options)
    const series = m.forRoute('/api/items/:id').forMethod('GET')
    // performance.now() readings: durations from 0.2 ms to 20 s, statuses 200 and 503.
    for (let i = 0; i < 200; i++) {
      series.begin()
      series.end(true, {} as any, { statusCode: i % 7 === 0 ? 503 : 200 } as any, 1000, 1000 + 0.2 * 1.06 ** i, null)
    }
    expositions.push([await render(m.registry, false), await render(m.registry, true)])
    m.close()
  }
  t.match(expositions[0][0], /http_server_request_duration_seconds_count\{.*\} 171/)
  t.equal(expositions[1][0], expositions[0][0], 'text, option on')
  t.equal(expositions[1][1], expositions[0][1], 'OpenMetrics, option on')
  t.equal(expositions[2][0], expositions[0][0], 'text, a reduced resolution')
  t.equal(expositions[2][1], expositions[0][1], 'OpenMetrics, a reduced resolution')
})
