// Scrapes that always answer (docs/reliability.md#scrapes-that-always-answer): a metric whose
// collect() throws, rejects or never settles is left out of that scrape, counted and logged at most
// once a minute; the rest is served, with either client's registry; app.close() does not wait on a
// hung scrape. No timing is asserted: a hung collect is cut off by a short scrapeTimeout or by close.
import t from 'tap'
import Fastify from 'fastify'
import { Writable } from 'node:stream'
import { Agent, get } from 'node:http'
import observability from '../lib/index'
import type { PromClientModule, PromRegistry } from '../lib/options'
import { render } from '../lib/exposition'
import { DROPPED_NAME, EXPORT_FAILED_NAME } from '../lib/export-failures'
import { ScrapeFaults, SCRAPE_ERRORS_NAME, scrapeDeadlineMs, waitersOn } from '../lib/scrape-faults'
import { promtoolCheckMetrics, skipReasonIfAbsent } from './helpers/prometheus'

const CLIENTS = ['prom-client', '@prometheus-io/client'] as const
const OPENMETRICS = 'application/openmetrics-text; version=1.0.0'
const skipReason = skipReasonIfAbsent()

/** '# TYPE' lines: the families a scrape served. */
const families = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2])

/** Log lines of a Fastify logger at warn, parsed. */
function logSink (): { stream: Writable, lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb() } })
  return { stream, lines }
}

/** A gauge of the user's, with this collect(), in this registry. */
function gauge (client: any, registry: PromRegistry, name: string, collect: (this: any) => unknown): void {
  registry.registerMetric(new client.Gauge({ name, help: `${name}.`, registers: [], collect }))
}

/** The counter's samples, by `metric/reason`. */
async function faultCounts (registry: PromRegistry, name = SCRAPE_ERRORS_NAME): Promise<Record<string, number>> {
  const m = registry.getSingleMetric(name)
  if (m === undefined) return {}
  const out: Record<string, number> = {}
  for (const v of (await m.get()).values) out[`${v.labels.metric as string}/${v.labels.reason as string}`] = v.value
  return out
}

for (const name of CLIENTS) {
  t.test(`${name}: a throwing and a rejecting collect are left out, the rest is served (both formats)`, async (t) => {
    const client = require(name)
    const registry = new client.Registry()
    const log = logSink()
    const app = Fastify({ logger: { level: 'warn', stream: log.stream } })
    t.teardown(() => app.close())
    await app.register(observability, { tracing: false, metrics: { client: client as PromClientModule, registry, defaultMetrics: false, prefix: 'shop_' } })
    app.get('/api/a', async () => 'a')
    gauge(client, registry, 'broken_sync', () => { throw new Error('sync boom') })
    gauge(client, registry, 'broken_async', async () => { throw new Error('async boom') })
    new client.Counter({ name: 'orders_placed_total', help: 'Orders.', registers: [registry] }).inc(3)
    gauge(client, registry, 'queue_depth', function () { this.set(7) })
    await app.inject('/api/a')

    const errorsName = SCRAPE_ERRORS_NAME // not under metrics.prefix
    const text = await app.inject('/metrics')
    t.equal(text.statusCode, 200)
    // The lost-span counters (lib/export-failures.ts) are always registered, with no sample here.
    const lost = [EXPORT_FAILED_NAME, DROPPED_NAME]
    t.same(families(text.body), ['shop_http_server_request_duration_seconds', 'shop_http_server_active_requests', ...lost, 'orders_placed_total', 'queue_depth', errorsName],
      'the 4 healthy families are served, the 2 broken ones are not, the fault counter last')
    t.match(text.body, new RegExp(`^${errorsName}\\{metric="broken_sync",reason="error"\\} 1\n${errorsName}\\{metric="broken_async",reason="error"\\} 1\n$`, 'm'),
      'this scrape\'s faults, counted in it')
    t.match(text.body, /^orders_placed_total 3$/m)
    t.match(text.body, /^queue_depth 7$/m)
    t.match(text.body, /^shop_http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/api\/a",http_response_status_code="200"\} 1$/m)

    const om = await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })
    t.equal(om.statusCode, 200)
    t.same(families(om.body), ['shop_http_server_request_duration_seconds', 'shop_http_server_active_requests', ...lost.map(n => n.slice(0, -'_total'.length)), 'orders_placed', 'queue_depth', errorsName.slice(0, -'_total'.length)],
      'OpenMetrics: the same')
    t.match(om.body, new RegExp(`^${errorsName}\\{metric="broken_sync",reason="error"\\} 2\n`, 'm'), 'OpenMetrics: the second scrape\'s fault counted')
    t.ok(om.body.endsWith('# EOF\n'), 'a complete OpenMetrics exposition')

    t.same(await faultCounts(registry, errorsName), { 'broken_sync/error': 2, 'broken_async/error': 2 }, 'two scrapes, each broken metric counted twice')
    const warnings = log.lines.filter((l) => l.level === 40)
    t.same(warnings.map((l) => [l.metric, l.reason, l.err?.message]).sort(), [['broken_async', 'error', 'async boom'], ['broken_sync', 'error', 'sync boom']],
      'one log line per broken metric for two scrapes, with its name and the error')
    t.same(log.lines.filter((l) => l.level >= 50), [], 'no error lines (no 500)')

    await app.close()
    t.equal(registry.getSingleMetric(errorsName), undefined, 'the counter leaves the user\'s registry with the app')
  })
}

t.test('promtool accepts a scrape with a throwing gauge left out (text format)', skipReason === null ? {} : { skip: skipReason }, async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false } })
  gauge(app.metrics!.client, app.metrics!.registry, 'broken', () => { throw new Error('boom') })
  app.get('/api/a', async () => 'a')
  await app.inject('/api/a')
  const res = await app.inject('/metrics')
  t.match(res.body, /^fastify_observability_scrape_errors_total\{metric="broken",reason="error"\} 1$/m, 'the fault, counted in the scrape that had it')
  t.notMatch(res.body, /^# TYPE broken /m)
  const r = await promtoolCheckMetrics(res.body)
  t.same(r.lines, [], 'promtool reports nothing')
  t.equal(r.code, 0, 'promtool exits 0')
})

t.test('a collect that never settles is cut off at metrics.scrapeTimeout, and called once for all scrapes', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false, scrapeTimeout: 50 } })
  const registry = app.metrics!.registry
  const client = app.metrics!.client as any
  let calls = 0
  gauge(client, registry, 'hung', () => { calls++; return new Promise(() => {}) })
  gauge(client, registry, 'slow_ok', async function () { await new Promise(setImmediate); this.set(1) })
  for (let i = 0; i < 3; i++) {
    const res = await app.inject('/metrics')
    t.equal(res.statusCode, 200)
    t.notMatch(res.body, /^# TYPE hung /m, `scrape ${i + 1}: the hung gauge is left out`)
    t.match(res.body, /^slow_ok 1$/m, `scrape ${i + 1}: the others are served`)
  }
  t.equal(calls, 1, 'the pending collect is awaited again, not called again')
  t.same(await faultCounts(registry), { 'hung/timeout': 3 })
  // A scrape cut off stops waiting on the pending collect: nothing piles up on it scrape after scrape.
  t.equal(waitersOn(registry.getSingleMetric('hung')!), 0, 'no scrape still waits on the hung collect')
})

t.test('the scraper\'s own timeout (X-Prometheus-Scrape-Timeout-Seconds) cuts collection at 80% of it when sooner', { timeout: 30_000 }, async (t) => {
  t.equal(scrapeDeadlineMs('10', 5000), 5000, 'Prometheus\' default 10 s: metrics.scrapeTimeout is sooner')
  t.equal(scrapeDeadlineMs('2', 5000), 1600)
  t.equal(scrapeDeadlineMs('0.5', 5000), 400)
  for (const bad of [undefined, '', 'abc', '0', '-1', 'Infinity', 'NaN', '1e400', ['1', '2']]) {
    t.equal(scrapeDeadlineMs(bad as any, 5000), 5000, `ignored: ${JSON.stringify(bad)}`)
  }

  const log = logSink()
  const app = Fastify({ logger: { level: 'warn', stream: log.stream } })
  t.teardown(() => app.close())
  // Never cut off by the plugin's own timeout: only the header can end these scrapes.
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false, scrapeTimeout: 2 ** 31 - 1 } })
  gauge(app.metrics!.client as any, app.metrics!.registry, 'hung', () => new Promise(() => {}))
  gauge(app.metrics!.client as any, app.metrics!.registry, 'fine', function () { this.set(7) })
  for (const format of [undefined, OPENMETRICS]) {
    const res = await app.inject({ url: '/metrics', headers: { 'x-prometheus-scrape-timeout-seconds': '0.05', ...(format === undefined ? {} : { accept: format }) } })
    t.equal(res.statusCode, 200)
    t.notMatch(res.body, /^# TYPE hung /m, 'the hung gauge is left out')
    t.match(res.body, /^fine 7$/m, 'the rest is served')
  }
  const line = log.lines.find((l) => l.metric === 'hung')
  t.match(line?.msg, /did not collect within the scraper's timeout \(X-Prometheus-Scrape-Timeout-Seconds\) \(40 ms\)/)
  t.same(await faultCounts(app.metrics!.registry), { 'hung/timeout': 2 })
})

t.test('app.close() does not wait on a hung scrape: the scrape in flight is answered without it', { timeout: 20_000 }, async (t) => {
  const app = Fastify()
  // The longest timeout there is: only close can end this scrape.
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false, scrapeTimeout: 2 ** 31 - 1 } })
  const client = app.metrics!.client as any
  let collecting!: () => void
  const collected = new Promise<void>((resolve) => { collecting = resolve })
  gauge(client, app.metrics!.registry, 'hung', () => { collecting(); return new Promise(() => {}) })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  // Keep-alive, as Prometheus scrapes.
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const scrape = new Promise<{ status: number | undefined, connection: string | undefined, body: string }>((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics', agent }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection, body }))
      res.on('error', reject)
    }).on('error', reject)
  })
  await collected
  await app.close()
  const res = await scrape
  t.equal(res.status, 200, 'the scrape got its answer (not destroyed)')
  t.equal(res.connection, 'close', 'and its keep-alive connection was closed, which close() waited for')
  t.match(res.body, /^# TYPE http_server_active_requests gauge$/m, 'with the plugin\'s metrics')
  t.notMatch(res.body, /^# TYPE hung /m, 'without the hung gauge')
})

t.test('one log line per metric per minute, the lines left out counted in the next', async (t) => {
  const client = require('prom-client')
  const registry = new client.Registry()
  gauge(client, registry, 'broken', () => { throw new Error('boom') })
  const lines: Array<{ obj: any, msg: string }> = []
  const log = { warn: (obj: any, msg: string) => lines.push({ obj, msg }) } as any
  let now = 0
  const faults = new ScrapeFaults(registry, 1000, log, () => now)
  for (const at of [0, 15_000, 30_000, 59_999, 60_000, 75_000]) {
    now = at
    await render(registry, false, faults)
  }
  t.same(lines.map((l) => l.obj.metric), ['broken', 'broken'], 'at 0 s and at 60 s')
  t.match(lines[0].msg, /metric "broken" failed to collect; left out of the scrape, counted in fastify_observability_scrape_errors_total$/)
  t.match(lines[1].msg, /\(3 more since the last line\)/)
  t.same(await faultCounts(registry), { 'broken/error': 6 }, 'every fault counted')
})

t.test('metrics.scrapeTimeout: a positive finite number of milliseconds, checked at register', async (t) => {
  for (const bad of [0, -1, Number.NaN, Infinity, '5000', 2 ** 31, null]) {
    const app = Fastify()
    await t.rejects(app.register(observability, { metrics: { scrapeTimeout: bad as any } }).ready(), {
      code: 'FST_OBSERVABILITY_INVALID_OPTION',
      message: new RegExp(`option "metrics\\.scrapeTimeout" must be a positive finite number of milliseconds .*, got ${bad === '5000' ? '"5000"' : typeof bad === 'number' && !Number.isFinite(bad) ? String(bad) : String(JSON.stringify(bad))}$`)
    }, `rejects ${String(bad)}`)
    await app.close()
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { scrapeTimeout: 250 } })
  t.ok(app.metrics, 'accepts 250')
})
