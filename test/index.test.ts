// The plugin end to end through Fastify: which requests are recorded, under which labels.
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { Readable } from 'node:stream'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { CLIENT_PACKAGES } from '../lib/metrics-client'
import observability from '../lib/index'
import type { ObservabilityOptions } from '../lib/index'
import { requestCount, routesRecorded, sampleValue, parseSamples } from './helpers/metrics-text'
import { closedResponses, nextTurn } from './helpers/events'

async function appWith (t: Tap.Test, options: ObservabilityOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { ...options, metrics: { defaultMetrics: false, ...(options.metrics as object | undefined) } })
  return app
}

async function scrape (app: FastifyInstance): Promise<string> {
  const res = await app.inject('/metrics')
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return res.body
}

t.test('include/exclude table and per-route overrides, counted exactly', async (t) => {
  const app = await appWith(t, { include: ['/api/**'], exclude: ['/actuator/**', '/static/**'] })
  app.get('/api/users/:id', async (req) => ({ id: (req.params as { id: string }).id }))
  app.get('/api/internal', { config: { metrics: false } }, async () => 'internal')
  app.get('/actuator/health', async () => 'ok')
  app.get('/actuator/info', { config: { metrics: true } }, async () => 'info')
  app.get('/static/*', async () => 'file')
  app.get('/home', async () => 'home')

  for (let i = 0; i < 3; i++) await app.inject(`/api/users/${i}`)
  await app.inject('/api/internal')
  await app.inject('/actuator/health')
  await app.inject('/actuator/info')
  await app.inject('/static/app.css')
  await app.inject('/home')

  const text = await scrape(app)
  t.equal(requestCount(text, '/api/users/:id'), 3, 'route pattern, never the raw URL')
  t.equal(requestCount(text, '/actuator/info'), 1, 'config.metrics: true takes in an excluded route')
  t.same([...routesRecorded(text)].sort(), ['/actuator/info', '/api/users/:id'])
})

t.test('encapsulated and prefixed routes are decided at route time', async (t) => {
  const app = await appWith(t, { exclude: ['/v1/private/**'] })
  await app.register(async (child) => {
    child.get('/users/:id', async () => 'u')
    child.get('/private/x', async () => 'p')
    await child.register(async (grandchild) => {
      grandchild.get('/deep', async () => 'd')
    }, { prefix: '/nested' })
  }, { prefix: '/v1' })
  await app.inject('/v1/users/7')
  await app.inject('/v1/private/x')
  await app.inject('/v1/nested/deep')
  await app.inject('/v1/nested/deep')
  const text = await scrape(app)
  t.equal(requestCount(text, '/v1/users/:id'), 1)
  t.equal(requestCount(text, '/v1/nested/deep'), 2)
  t.notOk(routesRecorded(text).has('/v1/private/x'))
})

t.test('HEAD, OPTIONS and unmatched requests; _OTHER for unknown methods', async (t) => {
  const app = await appWith(t)
  app.get('/r', async () => 'r')
  await app.inject({ method: 'HEAD', url: '/r' })
  await app.inject({ method: 'OPTIONS', url: '/r' })
  await app.inject('/no/such/path')
  await app.inject('/another/missing?q=1')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'PROPFIND', path: '/weird' }, (res) => { res.resume(); res.on('end', resolve) })
    req.on('error', reject)
    req.end()
  })
  const text = await scrape(app)
  t.equal(requestCount(text, '/r', 'HEAD'), 1, 'HEAD route has its own method label')
  t.equal(requestCount(text, 'unmatched', 'OPTIONS', '404'), 1)
  t.equal(requestCount(text, 'unmatched', 'GET', '404'), 2, 'random paths share one series')
  t.equal(requestCount(text, 'unmatched', '_OTHER', '404'), 1)
  t.equal(parseSamples(text).filter((s) => s.labels.http_request_method === 'PROPFIND').length, 0)
})

t.test('thrown, rejected and callback errors are recorded as 5xx; async and callback handlers', async (t) => {
  const app = await appWith(t)
  app.get('/throw', () => { throw new Error('sync') })
  app.get('/reject', async () => { throw new Error('async') })
  app.get('/cb', (req, reply) => { setImmediate(() => reply.send({ ok: true })) })
  app.get('/cb-error', (req, reply) => { setImmediate(() => reply.send(new Error('cb'))) })
  app.get('/teapot', async (req, reply) => reply.code(418).send('tea'))
  for (const u of ['/throw', '/reject', '/cb', '/cb-error', '/teapot']) await app.inject(u)
  const text = await scrape(app)
  t.equal(requestCount(text, '/throw', 'GET', '500'), 1)
  t.equal(requestCount(text, '/reject', 'GET', '500'), 1)
  t.equal(requestCount(text, '/cb', 'GET', '200'), 1)
  t.equal(requestCount(text, '/cb-error', 'GET', '500'), 1)
  t.equal(requestCount(text, '/teapot', 'GET', '418'), 1)
})

t.test('streamed responses are timed to the end of the stream', async (t) => {
  const app = await appWith(t, { metrics: { buckets: [0.05, 0.1, 1] } })
  app.get('/stream', async (req, reply) => {
    const chunks = ['a', 'b', 'c']
    const stream = new Readable({
      read () {
        const c = chunks.shift()
        if (c === undefined) setTimeout(() => this.push(null), 120)
        else this.push(c)
      }
    })
    return reply.type('text/plain').send(stream)
  })
  const res = await app.inject('/stream')
  t.equal(res.body, 'abc')
  const text = await scrape(app)
  t.equal(requestCount(text, '/stream'), 1)
  // The stream's 120 ms timer is a lower bound on its duration; no upper bound (a slow machine may
  // take longer, and it is still the stream's duration).
  t.equal(sampleValue(text, 'http_server_request_duration_seconds_bucket', { http_route: '/stream', le: '0.1' }), 0, 'took more than 0.1 s')
  t.equal(sampleValue(text, 'http_server_request_duration_seconds_bucket', { http_route: '/stream', le: '+Inf' }), 1)
  const sum = sampleValue(text, 'http_server_request_duration_seconds_sum', { http_route: '/stream' }) as number
  t.ok(sum > 0.1, `sum ${sum} is the stream's duration in seconds (not ms: above 0.1, the timer)`)
})

t.test('active requests gauge rises during a request and returns to 0, also after a client abort', async (t) => {
  const app = await appWith(t)
  let release: () => void = () => {}
  let entered: () => void = () => {}
  let inHandler = new Promise<void>((resolve) => { entered = resolve })
  app.get('/slow', async () => {
    entered()
    await new Promise<void>((resolve) => { release = resolve })
    return 'done'
  })
  let abortedSeen: () => void = () => {}
  const aborted = new Promise<void>((resolve) => { abortedSeen = resolve })
  app.addHook('onRequestAbort', async (_req) => { abortedSeen() })
  // Registered after the plugin: runs once the plugin's own hooks have seen the late reply.
  let replySent: () => void = () => {}
  const lateReply = new Promise<void>((resolve) => { replySent = resolve })
  app.addHook('onSend', async (req, _reply, payload) => { if (req.url === '/slow') replySent(); return payload })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const responses = closedResponses(app.server)
  const port = (app.server.address() as { port: number }).port

  const req = httpRequest({ host: '127.0.0.1', port, path: '/slow' })
  req.on('error', () => {})
  req.end()
  await inHandler
  t.equal(sampleValue(await scrape(app), 'http_server_active_requests', { http_request_method: 'GET' }), 1, 'one in flight')
  req.destroy()
  await aborted
  release()
  await lateReply // the handler's late reply went through onSend
  await nextTurn() // and Fastify wrote it to the closed response
  const text = await scrape(app)
  t.equal(sampleValue(text, 'http_server_active_requests', { http_request_method: 'GET' }), 0, 'back to 0 after abort')
  t.notOk(routesRecorded(text).has('/slow'), 'the aborted request is not recorded as answered')

  // The same route answered normally over HTTP is recorded once, with its status.
  inHandler = new Promise<void>((resolve) => { entered = resolve })
  const done = fetch(`http://127.0.0.1:${port}/slow`).then((r) => r.text())
  await inHandler
  release()
  t.equal(await done, 'done')
  await responses.closed(2) // recorded on the server's 'close', which the client does not wait for
  t.equal(requestCount(await scrape(app), '/slow'), 1)
})

t.test('custom labels, grouped status codes and a name prefix', async (t) => {
  const app = await appWith(t, {
    metrics: {
      prefix: 'shop_',
      groupStatusCodes: true,
      customLabels: { tenant: (req) => String(req.headers['x-tenant'] ?? 'none'), broken: () => { throw new Error('x') } }
    }
  })
  app.get('/a', async () => 'a')
  app.get('/missing', async (req, reply) => reply.code(404).send())
  await app.inject({ url: '/a', headers: { 'x-tenant': 'acme' } })
  await app.inject({ url: '/a', headers: { 'x-tenant': 'acme' } })
  await app.inject({ url: '/a', headers: { 'x-tenant': 'globex' } })
  await app.inject('/missing')
  const text = await scrape(app)
  const count = (labels: Record<string, string>): number | undefined => sampleValue(text, 'shop_http_server_request_duration_seconds_count', labels)
  t.equal(count({ http_route: '/a', tenant: 'acme', http_response_status_code: '2xx', broken: '' }), 2)
  t.equal(count({ http_route: '/a', tenant: 'globex' }), 1)
  t.equal(count({ http_route: '/missing', tenant: 'none', http_response_status_code: '4xx' }), 1)
  t.equal(sampleValue(text, 'http_server_request_duration_seconds_count', { http_route: '/a', tenant: 'acme' }), undefined, 'unprefixed name absent')
})

t.test('endpoint path configurable; the scrape itself is never recorded', async (t) => {
  const app = await appWith(t, { metrics: { endpoint: '/internal/prom' } })
  app.get('/x', async () => 'x')
  await app.inject('/x')
  t.equal((await app.inject('/metrics')).statusCode, 404)
  await app.inject('/internal/prom')
  const res = await app.inject('/internal/prom')
  t.equal(res.statusCode, 200)
  t.equal(requestCount(res.body, '/x'), 1)
  t.notOk(routesRecorded(res.body).has('/internal/prom'))
  t.equal(requestCount(res.body, 'unmatched', 'GET', '404'), 1, 'the 404 on /metrics counts as unmatched')
})

t.test('endpoint off: the registry and a ready handler stay reachable, e.g. on another port', async (t) => {
  const app = await appWith(t, { metrics: { endpoint: false } })
  app.get('/x', async () => 'x')
  await app.inject('/x')
  t.equal((await app.inject('/metrics')).statusCode, 404)
  const admin = Fastify()
  t.teardown(() => admin.close())
  admin.get('/metrics', app.metrics.handler)
  const res = await admin.inject({ url: '/metrics', headers: { accept: 'application/openmetrics-text; version=1.0.0' } })
  t.match(res.headers['content-type'], /^application\/openmetrics-text; version=1.0.0/)
  t.match(res.body, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/x",http_response_status_code="200"\} 1\n/)
  t.ok(res.body.endsWith('# EOF\n'))
  t.equal(requestCount(await app.metrics.render(), '/x'), 1)
})

t.test("default metrics on by default, off by option; the user's own metrics at the same endpoint", async (t) => {
  const on = Fastify()
  t.teardown(() => on.close())
  await on.register(observability)
  const text = (await on.inject('/metrics')).body
  t.ok(sampleValue(text, 'process_cpu_user_seconds_total') !== undefined, 'process metrics')
  t.ok(parseSamples(text).some((s) => s.name === 'nodejs_eventloop_lag_seconds'), 'Node.js metrics')

  const client = require('prom-client')
  const off = await appWith(t)
  const mine = new client.Counter({ name: 'orders_placed_total', help: 'Orders.', registers: [off.metrics.registry] })
  mine.inc(3)
  const offText = await scrape(off)
  t.equal(sampleValue(offText, 'process_cpu_user_seconds_total'), undefined)
  t.equal(sampleValue(offText, 'orders_placed_total'), 3, "user's metric served by the plugin")
  t.equal(off.metrics.client, require(CLIENT_PACKAGES[0]), 'the installed client module chosen for this Node')
})

t.test('a user-passed registry is used, and released on close', async (t) => {
  const client = require('prom-client')
  const registry = new client.Registry()
  const app = Fastify()
  await app.register(observability, { metrics: { registry, defaultMetrics: false } })
  app.get('/x', async () => 'x')
  await app.inject('/x')
  t.equal(requestCount(await registry.metrics(), '/x'), 1, "prom-client's own rendering of the registry works too")
  await app.close()
  t.equal(registry.getSingleMetric('http_server_request_duration_seconds'), undefined)
})

t.test('tracing off and metrics off cost nothing and record nothing', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: false, tracing: false })
  app.get('/x', async () => 'x')
  t.equal((await app.inject('/x')).body, 'x')
  t.equal((await app.inject('/metrics')).statusCode, 404)
  t.equal(app.hasDecorator('metrics'), false)
})

t.test('routes added before the plugin are decided on their first request, by the same rules', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/early/:id', async () => 'early')
  app.get('/early-off', { config: { metrics: false } }, async () => 'off')
  app.get('/static/early', async () => 'static')
  await app.register(observability, { exclude: ['/static/**'], metrics: { defaultMetrics: false } })
  for (const u of ['/early/1', '/early/2', '/early-off', '/static/early']) await app.inject(u)
  const text = await scrape(app)
  t.equal(requestCount(text, '/early/:id'), 2)
  t.same([...routesRecorded(text)], ['/early/:id'])
})

t.test('every kind of route is found through its public route config: early, 404, HEAD, encapsulated, shared config', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/early/:id', async () => 'early')
  await app.register(observability, { exclude: ['/v2/hidden/**'], metrics: { defaultMetrics: false } })
  const shared = { note: 'one config object for two routes' }
  app.get('/a', { config: shared }, async () => 'a')
  app.get('/b', { config: { ...shared, metrics: false } }, async () => 'b')
  app.get('/c', { config: shared }, async () => 'c')
  await app.register(async (child) => {
    child.get('/items/:id', async () => 'item')
    child.get('/hidden/x', async () => 'hidden')
    child.setNotFoundHandler(async (_req, reply) => reply.code(404).send('v2 missing'))
  }, { prefix: '/v2' })

  for (const u of ['/early/1', '/early/2', '/early/3', '/a', '/b', '/c', '/c', '/v2/items/1', '/v2/hidden/x']) await app.inject(u)
  await app.inject({ method: 'HEAD', url: '/v2/items/2' })
  await app.inject({ method: 'HEAD', url: '/v2/items/3' })
  await app.inject('/nothing/here')
  const missing = await app.inject('/v2/nothing')
  t.equal(missing.body, 'v2 missing', 'the encapsulated not-found handler answered')

  const text = await scrape(app)
  t.equal(requestCount(text, '/early/:id'), 3, 'a route added before the plugin, decided once and counted every time')
  t.equal(requestCount(text, '/a'), 1)
  t.equal(requestCount(text, '/b'), undefined, 'config.metrics false on a route sharing a config object')
  t.equal(requestCount(text, '/c'), 2, 'each route keeps its own state although they share a config object')
  t.equal(requestCount(text, '/v2/items/:id'), 1, 'encapsulated route, GET')
  t.equal(requestCount(text, '/v2/items/:id', 'HEAD'), 2, "Fastify's HEAD route for it, under its own method")
  t.equal(requestCount(text, 'unmatched', 'GET', '404'), 2, 'both not-found handlers record as unmatched')
  t.same([...routesRecorded(text)].sort(), ['/a', '/c', '/early/:id', '/v2/items/:id', 'unmatched'])
})

t.test("404s: nothing is written onto the user's not-found config (frozen, or shared by two apps)", async (t) => {
  const shared = { config: { note: 'one options object for two apps' } }
  const frozen = Fastify()
  t.teardown(() => frozen.close())
  await frozen.register(observability, { metrics: { defaultMetrics: false }, tracing: false })
  frozen.setNotFoundHandler({ config: Object.freeze({ public: true }) }, async (_req, reply) => reply.code(404).send('nope'))
  const res = await frozen.inject('/missing')
  t.equal(res.statusCode, 404, 'a frozen not-found config still answers 404')
  t.equal(requestCount(await scrape(frozen), 'unmatched', 'GET', '404'), 1)

  const apps: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(observability, { metrics: { defaultMetrics: false }, tracing: false })
    app.setNotFoundHandler(shared, async (_req, reply) => reply.code(404).send('nope'))
    apps.push(app)
  }
  await apps[0].inject('/missing')
  for (let i = 0; i < 5; i++) await apps[1].inject(`/missing/${i}`)
  t.equal(requestCount(await scrape(apps[0]), 'unmatched', 'GET', '404'), 1, 'each app counts its own 404s')
  t.equal(requestCount(await scrape(apps[1]), 'unmatched', 'GET', '404'), 5)
})

t.test('HTTP/2: a stream reset after the body was ended but not flushed is an abort, and leaves flight', async (t) => {
  const http2 = await import('node:http2')
  const errors: string[] = []
  const app = Fastify({ http2: true, logger: { level: 'error', stream: { write: (line: string) => { errors.push(line) } } } })
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { defaultMetrics: false }, tracing: false })
  app.get('/small', async () => 'ok')
  // Larger than HTTP/2's default flow-control window (65,535 bytes): ended, but not flushed until the client reads.
  let bigClosed: Promise<unknown> = Promise.resolve()
  app.get('/big', async (_req, reply) => {
    bigClosed = once(reply.raw, 'close') // the plugin's own 'close' listener runs before this one
    return reply.send(Buffer.alloc(64 * 1024, 97))
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = http2.connect(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
  t.teardown(() => client.close())
  const get = (path: string, cancel: boolean): Promise<void> => new Promise((resolve) => {
    const stream = client.request({ ':path': path })
    stream.on('data', () => { if (cancel) stream.close(http2.constants.NGHTTP2_CANCEL) })
    stream.on('close', () => resolve())
    stream.end()
  })
  await get('/small', false)
  await get('/big', true)
  await bigClosed
  const text = await scrape(app)
  t.equal(sampleValue(text, 'http_server_active_requests', { http_request_method: 'GET' }), 0, 'no request left in flight')
  t.equal(requestCount(text, '/small'), 1, 'the answered stream recorded')
  t.equal(requestCount(text, '/big'), undefined, 'the reset one is not recorded as answered')
  t.same(errors, [], 'nothing failed while recording')
})
