import t from 'tap'
import client from 'prom-client'
import { prefersOpenMetrics, render } from '../lib/exposition'
import { SeriesHistogram, SeriesGauge } from '../lib/instruments'
import Fastify from 'fastify'
import { get } from 'node:http'
import observability from '../lib/index'
import { until } from './helpers/events'

t.test('content negotiation', async (t) => {
  const prometheus2 = 'application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2'
  const prometheus3 = 'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2'
  const textOnly = 'text/plain;version=0.0.4;q=1,*/*;q=0.1'
  t.equal(prefersOpenMetrics(prometheus2), true)
  t.equal(prefersOpenMetrics(prometheus3), true)
  t.equal(prefersOpenMetrics(textOnly), false)
  t.equal(prefersOpenMetrics(undefined), false)
  t.equal(prefersOpenMetrics('*/*'), false)
  t.equal(prefersOpenMetrics('application/openmetrics-text'), true)
  t.equal(prefersOpenMetrics('application/openmetrics-text; version=2.0.0'), false, 'unknown version')
  t.equal(prefersOpenMetrics('application/openmetrics-text;q=0.2,text/plain;q=0.9'), false, 'q decides')
  t.equal(prefersOpenMetrics('application/openmetrics-text;q=0'), false)
  t.equal(prefersOpenMetrics('application/openmetrics-text;q=garbage'), false)
})

async function bothFormats (setup: (r: client.Registry) => void): Promise<{ text: string, om: string, reference: string }> {
  const registry = new client.Registry()
  setup(registry)
  return { text: await render(registry as any, false), om: await render(registry as any, true), reference: await registry.metrics() }
}

t.test("prom-client metrics: text equals prom-client's own rendering; OpenMetrics names counters right", async (t) => {
  const { text, om, reference } = await bothFormats((registry) => {
    const c = new client.Counter({ name: 'jobs_total', help: 'Jobs "done"\\n', labelNames: ['queue'], registers: [registry] })
    c.inc({ queue: 'a"b\\c\nd' }, 2)
    const g = new client.Gauge({ name: 'temp', help: 'Temp.', registers: [registry] })
    g.set(-1.5)
    const h = new client.Histogram({ name: 'size_bytes', help: 'Size.', buckets: [1, 10], registers: [registry] })
    h.observe(5)
    const s = new client.Summary({ name: 'lat', help: 'Lat.', percentiles: [0.5], registers: [registry] })
    s.observe(3)
  })
  t.equal(text.trim(), reference.trim(), 'same bytes as prom-client for the text format')
  t.match(om, /# TYPE jobs counter\njobs_total\{queue="a\\"b\\\\c\\nd"\} 2\n/)
  t.match(om, /# HELP jobs Jobs \\"done\\"\\\\n\n/, 'OpenMetrics escapes quotes in HELP')
  t.match(om, /size_bytes_bucket\{le="\+Inf"\} 1\n/)
  t.match(om, /lat\{quantile="0.5"\} 3\n/)
  t.ok(om.endsWith('# EOF\n'))
  t.notOk(text.includes('# EOF'))
})

t.test("the plugin's own instruments render like prom-client's, plus exemplars only in OpenMetrics", async (t) => {
  const registry = new client.Registry()
  const mine = new SeriesHistogram('d_seconds', 'D.', ['method', 'route'], [0.1, 1])
  registry.registerMetric(mine as any)
  mine.seriesFor(['GET', '/a']).observe(0.05)
  mine.seriesFor(['GET', '/a']).observeWithExemplar(0.5, '0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331')
  mine.seriesFor(['POST', '/b']).observe(3)
  const g = new SeriesGauge('active', 'A.', 'method')
  registry.registerMetric(g as any)
  g.seriesFor('GET').value = 2
  t.equal((await render(registry as any, false)).trim(), (await registry.metrics()).trim(), "text equals prom-client's rendering of the same get() data")
  registry.setDefaultLabels({ service: 'shop' })

  const text = await render(registry as any, false)
  t.match(text, /d_seconds_bucket\{method="GET",route="\/a",service="shop",le="0.1"\} 1\n/)
  t.match(text, /d_seconds_bucket\{method="GET",route="\/a",service="shop",le="1"\} 2\n/)
  t.match(text, /d_seconds_bucket\{method="POST",route="\/b",service="shop",le="\+Inf"\} 1\n/)
  t.match(text, /d_seconds_sum\{method="POST",route="\/b",service="shop"\} 3\n/)
  t.match(text, /active\{method="GET",service="shop"\} 2\n/)
  t.notOk(text.includes('trace_id'), 'no exemplars in the text format')
  const om = await render(registry as any, true)
  t.match(om, /d_seconds_bucket\{method="GET",route="\/a",service="shop",le="1"\} 2 # \{trace_id="0af7651916cd43dd8448eb211c80319c",span_id="b7ad6b7169203331"\} 0.5 \d+(\.\d+)?\n/)
})

t.test('cached series lines are re-rendered exactly when the series changed', async (t) => {
  const registry = new client.Registry()
  const h = new SeriesHistogram('d_seconds', 'D.', ['route'], [0.1, 1])
  registry.registerMetric(h as any)
  const a = h.seriesFor(['/a'])
  const b = h.seriesFor(['/b'])
  a.observe(0.05)
  b.observe(0.5)
  const first = await render(registry as any, false)
  t.equal(await render(registry as any, false), first, 'nothing changed: same bytes')
  a.observe(2)
  const second = await render(registry as any, false)
  t.match(second, /d_seconds_count\{route="\/a"\} 2\n/)
  t.match(second, /d_seconds_bucket\{route="\/a",le="\+Inf"\} 2\n/)
  t.match(second, /d_seconds_count\{route="\/b"\} 1\n/)
  registry.resetMetrics()
  for (let i = 0; i < 2; i++) a.observe(0.01)
  const afterReset = await render(registry as any, false)
  t.match(afterReset, /d_seconds_sum\{route="\/a"\} 0.02\n/, 'a reset invalidates the cache even when the count comes back to the same value')
  t.match(afterReset, /d_seconds_bucket\{route="\/a",le="0.1"\} 2\n/)
  registry.setDefaultLabels({ pod: 'p1' })
  t.match(await render(registry as any, false), /d_seconds_count\{route="\/a",pod="p1"\} 2\n/, 'new default labels invalidate the cache')
})

t.test('the reused scrape buffer is never shared by two scrapes in flight', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false } })
  // ~10 MB of exposition: more than loopback socket buffers hold, so a client that stops
  // reading keeps the first scrape's response open.
  const routes = 4500
  for (let i = 0; i < routes; i++) app.get(`/r${i}/:id`, async () => 'x')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  for (let i = 0; i < routes; i += 250) await Promise.all(Array.from({ length: 250 }, (_, k) => app.inject(`/r${i + k}/1`)))

  const expectedFirst = await app.metrics.render()
  let firstOnServer: import('node:http').ServerResponse | undefined
  app.server.once('request', (_req, res) => { firstOnServer = res })
  let resumeFirst: () => void = () => {}
  let firstHeaders = false
  const first = new Promise<string>((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      res.pause()
      firstHeaders = true
      resumeFirst = () => {
        const parts: Buffer[] = []
        res.on('data', (c: Buffer) => parts.push(c))
        res.on('end', () => resolve(Buffer.concat(parts).toString('utf8')))
        res.resume()
      }
    }).on('error', reject)
  })
  // The first response is stuck: the client has its headers and paused; the server holds bytes
  // the socket could not take (kernel buffers full).
  await until('the first scrape stuck in flight', () => firstHeaders && (firstOnServer?.socket?.writableLength ?? 0) > 0, 10_000)
  // Change every series, then scrape again while the first is still being sent.
  for (let i = 0; i < routes; i += 250) await Promise.all(Array.from({ length: 250 }, (_, k) => app.inject(`/r${i + k}/2`)))
  const expectedSecond = await app.metrics.render()
  const second = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  t.equal(firstOnServer?.writableFinished, false, 'the first scrape was still being sent during the second')
  t.not(expectedSecond, expectedFirst)
  t.ok(second === expectedSecond, `second scrape complete and current (${second.length} of ${expectedSecond.length} chars)`)
  resumeFirst()
  const firstBody = await first
  t.ok(firstBody === expectedFirst, `first scrape unchanged by the second (${firstBody.length} of ${expectedFirst.length} chars)`)
  t.ok(firstBody.length > 8e6, 'the exposition was large enough to stay in flight')
  // And once both are done the buffer is reused for a third, still correct.
  t.equal(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), await app.metrics.render())
})

t.test('the buffer app.metrics.handler answers is the caller\'s to keep', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false } })
  for (let i = 0; i < 50; i++) app.get(`/k${i}`, async () => 'k')
  let kept: Buffer = Buffer.alloc(0)
  app.get('/my-metrics', { config: { metrics: false } }, async (request, reply) => {
    kept = await app.metrics.handler(request, reply)
    return kept
  })
  for (let i = 0; i < 50; i++) await app.inject(`/k${i}`)
  const served = (await app.inject('/my-metrics')).body
  const snapshot = kept.toString('utf8')
  t.equal(snapshot, served)
  // Scrapes of the plugin's endpoint with other values must not write into the kept buffer.
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 50; i++) await app.inject(`/k${i}`)
    t.not((await app.inject('/metrics')).body, snapshot)
  }
  t.equal(kept.toString('utf8'), snapshot, 'unchanged')
})
