// The exposition against the real Prometheus tools: `promtool check metrics` on the text format,
// real Prometheus scrapes (OpenMetrics and text), and series cardinality under hostile traffic.
//
// Needs Debian's `prometheus` package (/usr/bin/prometheus, /usr/bin/promtool). Tests that need it
// are skipped only when it is absent and CI is not set; on CI its absence fails them.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import observability, {
  DEFAULT_BUCKETS,
  UNMATCHED_ROUTE,
  OTHER_METHOD,
  DURATION_NAME,
  ACTIVE_NAME,
  PROMETHEUS_CONTENT_TYPE,
  OPENMETRICS_CONTENT_TYPE,
  prefersOpenMetrics
} from '../lib/index'
import type { ObservabilityOptions } from '../lib/index'
import { promtoolCheckMetrics, prometheusVersion, startPrometheus, skipReasonIfAbsent, versionAtLeast } from './helpers/prometheus'
import type { PromSample } from './helpers/prometheus'

const skipReason = skipReasonIfAbsent()
const needsPrometheus = skipReason === null ? {} : { skip: skipReason }

// What Prometheus 2.x sends by default (it prefers OpenMetrics).
const PROMETHEUS_ACCEPT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'

const KNOWN_METHOD_LABELS = ['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', OTHER_METHOD]

// ---------------------------------------------------------------------------------------------
// Helpers

interface Sample { name: string, labels: Record<string, string>, value: string, key: string }

/** Non-comment sample lines of a metric family (name, name_bucket, name_sum, name_count). */
function samplesOf (text: string, family: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line)
    if (m === null) continue
    const name = m[1]
    if (name !== family && name !== family + '_bucket' && name !== family + '_sum' && name !== family + '_count') continue
    const labels: Record<string, string> = {}
    if (m[2] !== undefined) {
      for (const l of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => c === 'n' ? '\n' : c)
      }
    }
    out.push({ name, labels, value: m[3], key: name + (m[2] ?? '') })
  }
  return out
}

function countValue (text: string, labels: Record<string, string>): number | undefined {
  const s = samplesOf(text, DURATION_NAME).find((x) => x.name === DURATION_NAME + '_count' &&
    Object.entries(labels).every(([k, v]) => x.labels[k] === v))
  return s === undefined ? undefined : Number(s.value)
}

const agents: http.Agent[] = []
t.teardown(() => { for (const a of agents) a.destroy() })

function newAgent (): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 50 })
  agents.push(agent)
  return agent
}

/** One real HTTP request (node's client takes any token method; light-my-request does not). */
function request (port: number, method: string, path: string, agent?: http.Agent, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers, timeout: 10_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${path}`)))
    req.on('error', reject)
    req.end()
  })
}

async function listen (app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

const TENANT_HEADER = 'x-tenant'
const ODD_TENANT = 'a"b\\c,d=e{f}' // quote, backslash and separators: must be escaped in the output

function buildApp (opts: ObservabilityOptions = {}): FastifyInstance {
  const app = Fastify()
  app.register(observability, {
    ...opts,
    metrics: {
      customLabels: { tenant: (req) => String(req.headers[TENANT_HEADER] ?? 'none') },
      ...(typeof opts.metrics === 'object' ? opts.metrics : {})
    }
  })
  app.get('/api/users/:id', async (req) => ({ id: (req.params as { id: string }).id }))
  app.post('/api/items', async () => ({ ok: true }))
  app.get('/boom', async () => { throw new Error('boom') })
  return app
}

/** 5 x 200 (tenant none), 1 x 200 (odd tenant), 1 x POST 200, 3 x 404, 2 x 500. */
async function traffic (app: FastifyInstance): Promise<void> {
  for (let i = 0; i < 5; i++) await app.inject(`/api/users/${i}`)
  await app.inject({ url: '/api/users/99', headers: { [TENANT_HEADER]: ODD_TENANT } })
  await app.inject({ method: 'POST', url: '/api/items', payload: { a: 1 } })
  for (let i = 0; i < 3; i++) await app.inject(`/no/such/path/${i}`)
  for (let i = 0; i < 2; i++) await app.inject('/boom')
}

function checkTrafficCounts (t: Test, text: string): void {
  t.equal(countValue(text, { http_route: '/api/users/:id', http_response_status_code: '200', tenant: 'none' }), 5, '5 x GET /api/users/:id 200')
  t.equal(countValue(text, { http_route: '/api/users/:id', tenant: ODD_TENANT }), 1, 'odd custom label value round-trips through escaping')
  t.equal(countValue(text, { http_request_method: 'POST', http_route: '/api/items' }), 1, 'POST /api/items')
  t.equal(countValue(text, { http_route: UNMATCHED_ROUTE, http_response_status_code: '404' }), 3, '3 x 404 as unmatched')
  t.equal(countValue(text, { http_route: '/boom', http_response_status_code: '500' }), 2, '2 x 500')
}

// ---------------------------------------------------------------------------------------------
// (a) promtool on the text format; OpenMetrics through a real Prometheus scrape

t.test('promtool check metrics: text format, plugin metrics only', needsPrometheus, async (t) => {
  const app = buildApp({ metrics: { defaultMetrics: false } })
  t.teardown(() => app.close())
  await traffic(app)
  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], PROMETHEUS_CONTENT_TYPE)
  checkTrafficCounts(t, res.body)

  const r = await promtoolCheckMetrics(res.body)
  t.same(r.lines, [], 'promtool reports nothing')
  t.equal(r.code, 0, 'promtool exits 0')
})

t.test('promtool check metrics: text format with the default process metrics', needsPrometheus, async (t) => {
  const app = buildApp()
  t.teardown(() => app.close())
  await traffic(app)
  const res = await app.inject('/metrics')
  t.equal(res.headers['content-type'], PROMETHEUS_CONTENT_TYPE)
  checkTrafficCounts(t, res.body)
  t.match(res.body, /^process_cpu_user_seconds_total \d/m, 'default metrics are there')

  const r = await promtoolCheckMetrics(res.body)
  // Never a parse error (exit 1), never a finding about our http_ metrics.
  t.not(r.code, 1, `no parse error: ${r.lines.join(' | ')}`)
  t.same(r.lines.filter((l) => /http_/.test(l)), [], 'no finding about the http_ metrics')
  // promtool 2.42 (Debian 12) lints prom-client's default metrics, exiting 3 (lint only):
  //   nodejs_active_handles_total non-counter metrics should not have "_total" suffix
  //   nodejs_active_requests_total non-counter metrics should not have "_total" suffix
  //   nodejs_active_resources_total non-counter metrics should not have "_total" suffix
  // Those are gauges named by prom-client itself (collectDefaultMetrics), not by this plugin.
  const foreign = r.lines.filter((l) => !/^(nodejs|process)_\S+ /.test(l))
  t.same(foreign, [], 'every finding is about prom-client default metrics')
  t.ok(r.code === 0 || r.code === 3, `exit 0, or 3 for those lint findings only (got ${r.code})`)
  if (r.lines.length > 0) t.comment('promtool lint on default metrics:\n' + r.lines.join('\n'))
})

t.test('OpenMetrics: a real Prometheus scrape in OpenMetrics mode', needsPrometheus, async (t) => {
  const app = buildApp()
  const scrapes: Array<{ accept: string | undefined, contentType: unknown }> = []
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url === '/metrics') scrapes.push({ accept: req.headers.accept, contentType: reply.getHeader('content-type') })
    return payload
  })
  t.teardown(() => app.close())
  await traffic(app)

  const om = await app.inject({ url: '/metrics', headers: { accept: PROMETHEUS_ACCEPT } })
  t.equal(om.headers['content-type'], OPENMETRICS_CONTENT_TYPE)
  t.ok(om.body.endsWith('\n# EOF\n'), 'ends with # EOF')
  t.equal(om.body.split('\n').filter((l) => l === '# EOF').length, 1, 'exactly one # EOF')
  t.match(om.body, /^# TYPE process_cpu_user_seconds counter$/m, 'counter family named without _total')
  t.match(om.body, /^process_cpu_user_seconds_total \d/m, 'counter sample keeps _total')
  checkTrafficCounts(t, om.body)
  scrapes.length = 0

  const port = await listen(app)
  const prom = await startPrometheus({ targets: [`127.0.0.1:${port}`], scrapeProtocols: ['OpenMetricsText1.0.0'] })
  t.teardown(() => prom.stop())
  t.comment(`prometheus ${prom.version}`)

  const up = await prom.waitFor('up{job="app"}', (r) => r.length === 1 && r[0].value[1] === '1')
  t.equal(up[0]?.value[1], '1', `up == 1\n${prom.logs()}`)
  t.ok(scrapes.length > 0, 'the app was scraped')
  t.ok(scrapes.every((s) => prefersOpenMetrics(s.accept)), `Prometheus asked for OpenMetrics: ${scrapes[0]?.accept}`)
  t.ok(scrapes.every((s) => s.contentType === OPENMETRICS_CONTENT_TYPE), 'and was served OpenMetrics')

  const byOdd = await prom.query(`${DURATION_NAME}_count{tenant=${JSON.stringify(ODD_TENANT)}}`)
  t.equal(byOdd.length, 1)
  t.equal(byOdd[0]?.value[1], '1', 'the escaped label value parsed back to the original')
  const cpu = await prom.query('process_cpu_user_seconds_total{job="app"}')
  t.equal(cpu.length, 1, 'OpenMetrics counter ingested under its _total sample name')
  const users = await prom.query(`${DURATION_NAME}_count{http_route="/api/users/:id",tenant="none"}`)
  t.equal(users[0]?.value[1], '5')
  const samples = await prom.query('scrape_samples_scraped{job="app"}')
  t.ok(Number(samples[0]?.value[1]) > 100, `samples scraped: ${samples[0]?.value[1]}`)
})

// ---------------------------------------------------------------------------------------------
// (b) cardinality under random unmatched paths and random methods

/** mulberry32: a seeded PRNG so a failing run can be replayed (the seed is printed). */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('10,000 random unmatched requests add a bounded number of series', async (t) => {
  const app = buildApp({ tracing: false })
  let reachedFastify = 0
  let answeredByFastify = 0
  // Only requests the router matched to no route (not the /metrics scrapes below).
  app.addHook('onRequest', async (req) => { if (req.routeOptions.url === undefined) reachedFastify++ })
  app.addHook('onResponse', async (req) => { if (req.routeOptions.url === undefined) answeredByFastify++ })
  t.teardown(() => app.close())
  const port = await listen(app)
  const agent = newAgent()

  // One matched request first, so "before" already holds a real route.
  t.equal((await request(port, 'GET', '/api/users/1', agent)).status, 200)
  reachedFastify = 0
  answeredByFastify = 0
  const before = (await app.inject('/metrics')).body
  const family = (text: string): Sample[] => [...samplesOf(text, DURATION_NAME), ...samplesOf(text, ACTIVE_NAME)]
  const beforeKeys = new Set(family(before).map((s) => s.key))

  // A fixed default seed: every run sends the same traffic, so a failure reproduces as is;
  // FO_SEED=<n> explores other traffic (FO_SEED=random picks one and prints it).
  const seed = process.env.FO_SEED === 'random' ? Date.now() % 2147483647 : Number(process.env.FO_SEED ?? 13)
  t.comment(`seed ${seed} (FO_SEED=${seed} to replay)`)
  const rnd = prng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]
  const token = (n: number, alphabet: string): string => Array.from({ length: n }, () => pick([...alphabet])).join('')
  // CONNECT is left out: node's http server hands it to a 'connect' listener, never to Fastify.
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'QUERY',
    'PROPFIND', 'MKCOL', 'PURGE', 'SEARCH', 'LOCK', 'FOOBAR', 'BREW']
  const randomMethod = (): string => rnd() < 0.15 ? 'X' + token(1 + Math.floor(rnd() * 8), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') : pick(methods)
  const segment = (): string => token(1 + Math.floor(rnd() * 12), 'abcdefghijklmnopqrstuvwxyz0123456789-._~') + (rnd() < 0.1 ? '%E2%82%AC' : '')
  const randomPath = (): string => {
    const r = rnd()
    if (r < 0.05) return '/api/users/' + segment() + '/' + segment() // near a real route, still unmatched
    if (r < 0.1) return '/r/' + segment() + '?q=' + segment()
    if (r < 0.12) return '/r/' + 'x'.repeat(200 + Math.floor(rnd() * 300))
    return '/r/' + Array.from({ length: 1 + Math.floor(rnd() * 4) }, segment).join('/')
  }

  const TOTAL = 10_000
  const CONCURRENCY = 50
  const noPool = new http.Agent({ keepAlive: false, maxSockets: CONCURRENCY })
  agents.push(noPool)
  const statuses = new Map<number, number>()
  const errors = new Map<string, number>()
  const sentMethods = new Set<string>()
  let next = 0
  async function worker (): Promise<void> {
    while (next < TOTAL) {
      next++
      const method = randomMethod()
      sentMethods.add(method)
      try {
        // Methods node's parser rejects get a 400 and a closed socket from the server (never
        // reaching Fastify's router): send those on their own connection, not a pooled one.
        const parsable = http.METHODS.includes(method)
        const { status } = await request(port, method, randomPath(), parsable ? agent : noPool)
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
      } catch (err) {
        // Node's server answers a method its parser rejects with 400 and destroys the socket
        // right away, so the client may see ECONNRESET instead of the 400: fine for those only.
        const code = (http.METHODS.includes(method) ? 'parsable:' : 'rejected:') + ((err as NodeJS.ErrnoException).code ?? (err as Error).message)
        errors.set(code, (errors.get(code) ?? 0) + 1)
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  t.comment(`statuses ${JSON.stringify([...statuses])}, client errors ${JSON.stringify([...errors])}, ${reachedFastify} reached Fastify`)
  const answered = [...statuses.values()].reduce((a, b) => a + b, 0)
  const resets = errors.get('rejected:ECONNRESET') ?? 0
  t.same([...errors.keys()].filter((k) => k !== 'rejected:ECONNRESET'), [], 'no other client error')
  t.equal(answered + resets, TOTAL, 'every request was answered (or reset after a parser rejection)')
  t.equal(answeredByFastify, reachedFastify, 'every request that reached Fastify was answered by it')
  t.ok(reachedFastify > TOTAL * 0.7, `most requests reached the router (${reachedFastify})`)

  const after = (await app.inject('/metrics')).body
  const afterSamples = family(after)
  const added = afterSamples.filter((s) => !beforeKeys.has(s.key))

  const statusCodes = new Set(added.filter((s) => s.labels.http_response_status_code !== undefined).map((s) => s.labels.http_response_status_code))
  const STATUS_BOUND = 4
  t.ok(statusCodes.size <= STATUS_BOUND, `at most ${STATUS_BOUND} status codes: ${[...statusCodes]}`)
  const bound = KNOWN_METHOD_LABELS.length * STATUS_BOUND * (DEFAULT_BUCKETS.length + 3) + KNOWN_METHOD_LABELS.length
  t.ok(added.length <= bound, `series lines grew by ${added.length} <= ${bound}`)
  t.ok(added.length > 0, 'the traffic was recorded at all')

  const routes = new Set(added.filter((s) => s.labels.http_route !== undefined).map((s) => s.labels.http_route))
  t.same([...routes], [UNMATCHED_ROUTE], 'every new series has http_route="unmatched"')
  const methodLabels = new Set(afterSamples.map((s) => s.labels.http_request_method))
  t.same([...methodLabels].filter((m) => !KNOWN_METHOD_LABELS.includes(m)), [], `method labels are known or _OTHER: ${[...methodLabels]}`)
  t.ok(methodLabels.has(OTHER_METHOD), 'non-standard methods that reached Fastify (PROPFIND, QUERY...) are _OTHER')

  // Every request that reached Fastify was counted, under "unmatched".
  const unmatchedCount = afterSamples
    .filter((s) => s.name === DURATION_NAME + '_count' && s.labels.http_route === UNMATCHED_ROUTE)
    .reduce((a, s) => a + Number(s.value), 0)
  t.equal(unmatchedCount, answeredByFastify, 'unmatched _count sums to the requests Fastify answered')
  const active = samplesOf(after, ACTIVE_NAME).reduce((a, s) => a + Number(s.value), 0)
  t.equal(active, 0, 'no request left in flight')
})

// ---------------------------------------------------------------------------------------------
// (c) a real Prometheus server scraping the app

const N = 7

async function scrapedRouteCount (t: Test, mode: 'default' | 'text'): Promise<void> {
  const app = buildApp()
  let seen: { accept: string | undefined, contentType: unknown } | undefined
  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url.startsWith('/metrics')) seen = { accept: req.headers.accept, contentType: reply.getHeader('content-type') }
    return payload
  })
  // Prometheus < 2.49 cannot be told to scrape the text format (no scrape_protocols; it always
  // prefers OpenMetrics), so there it scrapes a route that always serves the text format.
  app.get('/metrics-text', { config: { metrics: false, tracing: false } }, async (_req, reply) => {
    reply.type(PROMETHEUS_CONTENT_TYPE)
    return await app.metrics.render(false)
  })
  t.teardown(() => app.close())
  const port = await listen(app)

  const version = prometheusVersion() ?? 'unknown'
  const modern = version === 'unknown' || versionAtLeast(version, '2.49.0')
  const prom = await startPrometheus({
    targets: [`127.0.0.1:${port}`],
    ...(mode === 'text' ? (modern ? { scrapeProtocols: ['PrometheusText0.0.4'] } : { metricsPath: '/metrics-text' }) : {})
  })
  t.teardown(() => prom.stop())
  t.comment(`prometheus ${prom.version}, ${mode} mode`)
  const up = await prom.waitFor('up{job="app"}', (r) => r[0]?.value[1] === '1')
  t.equal(up[0]?.value[1], '1', `target is up\n${prom.logs()}`)

  const agent = newAgent()
  for (let i = 0; i < N; i++) {
    const res = await request(port, 'GET', `/api/users/${1000 + i * 7}`, agent)
    t.equal(res.status, 200)
  }

  const q = `${DURATION_NAME}_count{http_route="/api/users/:id"}`
  const sum = (r: PromSample[]): number => r.reduce((a, s) => a + Number(s.value[1]), 0)
  const result = await prom.waitFor(q, (r) => sum(r) >= N, 30_000)
  t.equal(sum(result), N, `Prometheus counts exactly ${N} requests\n${prom.logs()}`)
  t.equal(result.length, 1, 'in one series')
  t.match(result[0]?.metric, { http_request_method: 'GET', http_response_status_code: '200', tenant: 'none', job: 'app' })

  const routes = (await prom.query(`count by (http_route) (${DURATION_NAME}_count)`)).map((s) => s.metric.http_route)
  t.same(routes.filter((r) => /^\/api\/users\/\d+/.test(r)), [], `no raw URL as a route: ${routes}`)
  t.same(routes.filter((r) => r.startsWith('/metrics')), [], 'scrapes are not measured')
  t.same(await prom.query(`${DURATION_NAME}_count{http_route=~"/api/users/[0-9]+"}`), [])

  if (mode === 'text') {
    t.equal(seen?.contentType, PROMETHEUS_CONTENT_TYPE, 'Prometheus was served the text format')
  } else {
    // Every Prometheus 2.x/3.x prefers OpenMetrics by default.
    t.ok(prefersOpenMetrics(seen?.accept), `default Accept prefers OpenMetrics: ${seen?.accept}`)
    t.equal(seen?.contentType, OPENMETRICS_CONTENT_TYPE)
  }
}

t.test('real Prometheus: route label and exact count (default negotiation)', needsPrometheus, async (t) => {
  await scrapedRouteCount(t, 'default')
})

t.test('real Prometheus: route label and exact count (text format)', needsPrometheus, async (t) => {
  await scrapedRouteCount(t, 'text')
})
