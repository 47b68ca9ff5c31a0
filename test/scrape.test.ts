// The streamed /metrics endpoint and the exposition cache: scrapes in flight at the same time,
// resets, cache hits. Everything listens on 127.0.0.1; no timing is asserted.
import t from 'tap'
import client from 'prom-client'
import Fastify, { type FastifyInstance } from 'fastify'
import { get, type IncomingMessage } from 'node:http'
import observability from '../lib/index'
import { render } from '../lib/exposition'
import { SeriesHistogram, SeriesGauge } from '../lib/instruments'
import { defaultLabelsOf } from '../lib/default-labels'
import { DROPPED_NAME, EXPORT_FAILED_NAME } from '../lib/export-failures'

const OPENMETRICS = 'application/openmetrics-text; version=1.0.0'

/**
 * The exposition of a registry rendered from copies of its plugin instruments (fresh series
 * objects, so nothing of the exposition cache is reused): what a scrape must send.
 */
async function independentRender (registry: client.Registry, openMetrics: boolean, defaultLabels?: Record<string, string>): Promise<string> {
  const copy = new client.Registry()
  if (defaultLabels !== undefined) copy.setDefaultLabels(defaultLabels)
  for (const m of registry.getMetricsAsArray() as unknown[]) {
    if (m instanceof SeriesHistogram) {
      const h = new SeriesHistogram(m.name, m.help, m.labelNames, m.upperBounds)
      for (const [key, s] of m.series) {
        const c = h.seriesFor(key.split('\u0000'))
        c.counts.splice(0, c.counts.length, ...s.counts)
        c.sum = s.sum
        c.count = s.count
      }
      copy.registerMetric(h as any)
    } else if (m instanceof SeriesGauge) {
      const g = new SeriesGauge(m.name, m.help, m.labelName)
      for (const [key, s] of m.series) g.seriesFor(key).value = s.value
      copy.registerMetric(g as any)
    } else if ((m as { name: string }).name === EXPORT_FAILED_NAME || (m as { name: string }).name === DROPPED_NAME) {
      copy.registerMetric(m as any) // the lost-span counters: no state of their own, nothing cached
    } else {
      throw new Error('only the plugin instruments are expected here')
    }
  }
  return render(copy as any, openMetrics)
}

async function bigApp (t: typeof import('tap').default, routes: number): Promise<{ app: FastifyInstance, port: number, touchAll: (id: number) => Promise<void> }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false } })
  for (let i = 0; i < routes; i++) app.get(`/r${i}/:id`, async (request, reply) => reply.code(Number((request.params as { id: string }).id) % 2 === 0 ? 200 : 201).send('x'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const touchAll = async (id: number): Promise<void> => {
    for (let i = 0; i < routes; i += 250) await Promise.all(Array.from({ length: Math.min(250, routes - i) }, (_, k) => app.inject(`/r${i + k}/${id}`)))
  }
  return { app, port, touchAll }
}

/** GET /metrics that stops reading once the response has started: it stays in flight until resumed. */
function stalledScrape (port: number, accept: string): Promise<{ res: IncomingMessage, body: () => Promise<string> }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics', headers: { accept } }, (res) => {
      res.pause()
      resolve({
        res,
        body: async () => {
          const parts: Buffer[] = []
          res.on('data', (c: Buffer) => parts.push(c))
          const done = new Promise<void>((resolve, reject) => { res.on('end', resolve); res.on('error', reject) })
          res.resume()
          await done
          return Buffer.concat(parts).toString('utf8')
        }
      })
    }).on('error', reject)
  })
}

for (const [format, accept] of [['prometheus', 'text/plain'], ['openmetrics', OPENMETRICS]] as const) {
  t.test(`two large scrapes in flight at once are both complete and current (${format})`, async (t) => {
    const openMetrics = format === 'openmetrics'
    // 2,500 routes x 2 status codes: 5,000 series, ~10 MB, more than loopback socket buffers hold.
    const { app, port, touchAll } = await bigApp(t, 2500)
    await touchAll(1)
    await touchAll(2)
    // Count the responses of /metrics the server has finished handing to the socket.
    let finished = 0
    app.server.on('request', (req, res) => { if (req.url === '/metrics') res.once('finish', () => { finished++ }) })

    const registry = app.metrics.registry as client.Registry
    const expectedFirst = await independentRender(registry, openMetrics)
    if (!openMetrics) t.ok(expectedFirst === (await registry.metrics()).trimEnd() + '\n', "the reference equals prom-client's own rendering")
    const first = await stalledScrape(port, accept)
    t.match(first.res.headers['content-type'], openMetrics ? /^application\/openmetrics-text/ : /^text\/plain/)

    // Every series changes, and a second scrape runs to its end while the first is still open.
    await touchAll(3)
    const expectedSecond = await independentRender(registry, openMetrics)
    t.not(expectedSecond, expectedFirst)
    const second = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { accept } })).text()
    t.equal(finished, 1, 'the first scrape was still in flight when the second ended')
    t.ok(second === expectedSecond, `second scrape complete and current (${second.length} of ${expectedSecond.length} chars)`)

    const firstBody = await first.body()
    t.ok(firstBody === expectedFirst, `first scrape is the state when it came in (${firstBody.length} of ${expectedFirst.length} chars)`)
    t.ok(firstBody.length > 8e6, `the exposition was large enough to stay in flight (${firstBody.length} chars)`)
    if (openMetrics) t.ok(firstBody.endsWith('# EOF\n'))
    // Once both are done, a third is still right. (t.ok: a diff of megabytes would take minutes.)
    const third = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { accept } })).text()
    t.ok(third === await independentRender(registry, openMetrics), 'a third scrape, after both, is current')
  })
}

t.test('a reset series that climbs back to the same count renders its new values (both formats)', async (t) => {
  const registry = new client.Registry()
  const h = new SeriesHistogram('d_seconds', 'D.', ['route'], [0.1, 1])
  registry.registerMetric(h as any)
  const a = h.seriesFor(['/a'])
  a.observe(0.05)
  a.observeWithExemplar(0.5, '0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331')
  const text1 = await render(registry as any, false)
  const om1 = await render(registry as any, true)
  t.match(text1, /d_seconds_sum\{route="\/a"\} 0.55\n/)
  t.match(om1, /d_seconds_bucket\{route="\/a",le="1"\} 2 # \{trace_id="0af7651916cd43dd8448eb211c80319c"/)

  h.reset()
  a.observe(2)
  a.observe(3)
  const text2 = await render(registry as any, false)
  const om2 = await render(registry as any, true)
  t.match(text2, /d_seconds_sum\{route="\/a"\} 5\n/, 'text: the sum after the reset')
  t.match(text2, /d_seconds_bucket\{route="\/a",le="0.1"\} 0\n/)
  t.match(text2, /d_seconds_count\{route="\/a"\} 2\n/)
  t.match(om2, /d_seconds_sum\{route="\/a"\} 5\n/, 'OpenMetrics: the sum after the reset')
  t.notOk(om2.includes('trace_id'), 'OpenMetrics: the exemplars went with the reset')
  t.equal(text2, await independentRender(registry, false))
  t.equal(om2, await independentRender(registry, true))
})

t.test('a cache hit returns the same bytes, per format', async (t) => {
  const registry = new client.Registry()
  registry.setDefaultLabels({ pod: 'p1' })
  const h = new SeriesHistogram('d_seconds', 'D.', ['route'], [0.1, 1])
  registry.registerMetric(h as any)
  for (let i = 0; i < 50; i++) h.seriesFor([`/r${i}`]).observeWithExemplar(i / 10, '0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331')
  const om = await render(registry as any, true)
  const text = await render(registry as any, false)
  t.notOk(text.includes('trace_id'), 'no exemplars in the text format')
  t.match(om, /trace_id=/)
  t.equal(await render(registry as any, true), om, 'OpenMetrics again: same bytes, exemplars and all')
  t.equal(await render(registry as any, false), text, 'text again: same bytes')
  // One series changes: only its lines differ.
  h.seriesFor(['/r7']).observe(9)
  const om2 = await render(registry as any, true)
  const changed = om2.split('\n').filter((line, i) => line !== om.split('\n')[i])
  t.ok(changed.length > 0 && changed.every((line) => line.includes('route="/r7"')), 'only the changed series differs')
  t.equal(await render(registry as any, false), await independentRender(registry, false, { pod: 'p1' }))
})

t.test('HEAD /metrics answers the headers only', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false } })
  app.get('/a', async () => 'a')
  await app.inject('/a')
  const res = await app.inject({ method: 'HEAD', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0.0.4/)
  t.equal(res.body, '')
  t.equal((await app.inject('/metrics')).body, await app.metrics.render())
})

t.test('registry default labels are read through the public API: escaped values, changes between scrapes', async (t) => {
  const registry = new client.Registry()
  const h = new SeriesHistogram('d_seconds', 'D.', ['route'], [0.1, 1])
  registry.registerMetric(h as any)
  h.seriesFor(['/a']).observe(0.5)
  const g = new SeriesGauge('inflight', 'In flight.', 'method')
  registry.registerMetric(g as any)
  g.seriesFor('GET').value = 3
  // prom-client's own rendering is the reference: the same lines, but for the position of a
  // histogram's le label (prom-client puts it before the default labels), so lines are compared
  // with their labels sorted.
  const sorted = (text: string): string[] => text.trimEnd().split('\n').map((l) => l.replace(/\{(.*)\} /, (_m, inner: string) => '{' + inner.split(/,(?=[a-z_]+=")/).sort().join(',') + '} ')).sort()
  const own = async (): Promise<string[]> => sorted(await registry.metrics())
  t.same(sorted(await render(registry as any, false)), await own(), 'none set')
  const tricky = { pod: 'p "1"', path: 'C:\\tmp\\', note: 'two\nlines', odd: 'a",b="c}' }
  registry.setDefaultLabels(tricky)
  const text = await render(registry as any, false)
  t.match(text, 'd_seconds_count{route="/a",pod="p \\"1\\"",path="C:\\\\tmp\\\\",note="two\\nlines",odd="a\\",b=\\"c}"} 1\n', 'escaped as the client escapes them')
  t.same(sorted(text), await own())
  t.match(text, 'inflight{method="GET",pod="p \\"1\\"",path="C:\\\\tmp\\\\",note="two\\nlines",odd="a\\",b=\\"c}"} 3\n')
  // Changed in place (the client keeps the caller's object): the cached lines follow.
  ;(tricky as Record<string, string>).pod = 'p2'
  t.match(await render(registry as any, false), 'd_seconds_count{route="/a",pod="p2",')
  t.same(sorted(await render(registry as any, false)), await own())
  registry.setDefaultLabels({})
  t.same(sorted(await render(registry as any, false)), await own(), 'cleared')
})

t.test('the default labels object keeps its identity while they do not change (the cache keys on it)', async (t) => {
  const registry = new client.Registry()
  const h = new SeriesHistogram('d_seconds', 'D.', ['route'], [0.1, 1])
  registry.registerMetric(h as any)
  h.seriesFor(['/a']).observe(1)
  t.equal(await defaultLabelsOf(registry as any, h), null)
  registry.setDefaultLabels({ pod: 'p1' })
  const a = await defaultLabelsOf(registry as any, h)
  t.same(a, { pod: 'p1' })
  t.equal(await defaultLabelsOf(registry as any, h), a, 'unchanged: the same object')
  registry.setDefaultLabels({ pod: 'p2' })
  const b = await defaultLabelsOf(registry as any, h)
  t.not(b, a, 'changed: a new object')
  t.same(b, { pod: 'p2' })
  t.equal(h.probing, false)
  t.match((await h.get()).values[0], { labels: { route: '/a', le: 0.1 }, metricName: 'd_seconds_bucket' }, 'get() answers the real series again')
})

t.test('a registry that renders the probe late is a clear error, not wrong labels', async (t) => {
  const registry = new client.Registry()
  const g = new SeriesGauge('inflight', 'In flight.', 'method')
  g.seriesFor('GET').value = 1
  registry.registerMetric(g as any)
  const late = Object.create(registry)
  late.getSingleMetricAsString = async (name: string) => { await null; return registry.getSingleMetricAsString(name) }
  await t.rejects(render(late, false), /did not render the probe sample/)
})

t.test('default labels of a registry that keeps them private are still applied', async (t) => {
  // Duck-typed like both clients' Registry, with the defaults in a true private field: only
  // getSingleMetricAsString (public in both) reveals them.
  class PrivateRegistry {
    readonly contentType = 'text/plain; version=0.0.4; charset=utf-8'
    readonly #metrics = new Map<string, any>()
    readonly #defaults = { region: 'eu' }
    registerMetric (m: any): void { this.#metrics.set(m.name, m) }
    getSingleMetric (name: string): any { return this.#metrics.get(name) }
    removeSingleMetric (name: string): void { this.#metrics.delete(name) }
    getMetricsAsArray (): any[] { return [...this.#metrics.values()] }
    async getMetricsAsJSON (): Promise<any[]> { return [] }
    async metrics (): Promise<string> { return '' }
    async getSingleMetricAsString (name: string): Promise<string> {
      const m = await this.#metrics.get(name).get()
      return m.values.map((v: any) => `${v.metricName ?? m.name}{${Object.entries({ ...v.labels, ...this.#defaults }).map(([k, x]) => `${k}="${String(x)}"`).join(',')}} ${String(v.value)}`).join('\n')
    }
  }
  const registry = new PrivateRegistry()
  const g = new SeriesGauge('inflight', 'In flight.', 'method')
  registry.registerMetric(g)
  g.seriesFor('GET').value = 2
  t.equal(await render(registry as any, false), '# HELP inflight In flight.\n# TYPE inflight gauge\ninflight{method="GET",region="eu"} 2\n')
})
