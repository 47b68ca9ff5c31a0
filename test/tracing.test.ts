// Spans from the plugin's hooks, through the global OpenTelemetry API with a real SDK in memory.
import t from 'tap'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { trace, context, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { request as httpRequest } from 'node:http'
import observability from '../lib/index'
import { closedResponses, nextTurn } from './helpers/events'
import type { ObservabilityOptions } from '../lib/index'

const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
provider.register() // global provider, AsyncLocalStorage context manager, W3C trace context + baggage
t.teardown(() => provider.shutdown())

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c'
const PARENT_ID = 'b7ad6b7169203331'
const traceparent = `00-${TRACE_ID}-${PARENT_ID}-01`

async function appWith (t: Tap.Test, options: ObservabilityOptions = {}): Promise<FastifyInstance> {
  exporter.reset()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: false, ...options })
  return app
}

function serverSpans (): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER)
}

t.test('a SERVER span named {method} {route} with the stable HTTP attributes', async (t) => {
  const app = await appWith(t)
  app.get('/api/users/:id', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const res = await fetch(`http://127.0.0.1:${port}/api/users/42?secret=1`, { headers: { 'user-agent': 'tap-test/1.0', traceparent } })
  t.equal(res.status, 200)
  await res.text()
  const [span, ...rest] = serverSpans()
  t.equal(rest.length, 0, 'exactly one server span')
  t.equal(span.name, 'GET /api/users/:id')
  t.equal(span.spanContext().traceId, TRACE_ID, "the incoming traceparent's trace id is kept")
  t.equal(span.parentSpanContext?.spanId, PARENT_ID)
  t.same(span.attributes, {
    'http.request.method': 'GET',
    'http.route': '/api/users/:id',
    'url.path': '/api/users/42',
    'url.scheme': 'http',
    'server.address': '127.0.0.1',
    'server.port': port,
    'client.address': '127.0.0.1',
    'user_agent.original': 'tap-test/1.0',
    'network.protocol.version': '1.1',
    'http.response.status_code': 200
  }, 'no url.query unless enabled')
  t.equal(span.status.code, SpanStatusCode.UNSET)
})

t.test('url.query when enabled; requestHook adds attributes', async (t) => {
  const app = await appWith(t, { tracing: { captureQuery: true, requestHook: (span, req) => { span.setAttribute('app.tenant', String(req.headers['x-tenant'])) } } })
  app.get('/q', async () => 'q')
  await app.inject({ url: '/q?a=1&b=2', headers: { 'x-tenant': 'acme' } })
  const [span] = serverSpans()
  t.equal(span.attributes['url.query'], 'a=1&b=2')
  t.equal(span.attributes['app.tenant'], 'acme')
})

t.test('5xx and thrown errors: ERROR with an exception event; 4xx: UNSET', async (t) => {
  const app = await appWith(t)
  class PaymentError extends Error { override name = 'PaymentError' }
  app.get('/throw', async () => { throw new PaymentError('card declined') })
  class InventoryError extends Error {} // no own `name`: error.type must still be the class
  app.get('/inventory', async () => { throw new InventoryError('out of stock') })
  app.get('/503', async (req, reply) => reply.code(503).send('down'))
  app.get('/404', async (req, reply) => reply.code(404).send('nope'))
  await app.inject('/throw')
  await app.inject('/503')
  await app.inject('/404')
  await app.inject('/inventory')
  const byName = new Map(serverSpans().map((s) => [s.name, s]))
  const thrown = byName.get('GET /throw') as ReadableSpan
  t.equal(thrown.status.code, SpanStatusCode.ERROR)
  t.equal(thrown.status.message, 'card declined')
  t.equal(thrown.attributes['error.type'], 'PaymentError')
  t.equal(thrown.attributes['http.response.status_code'], 500)
  const ev = thrown.events.find((e) => e.name === 'exception')
  t.equal(ev?.attributes?.['exception.type'], 'PaymentError')
  t.equal(ev?.attributes?.['exception.message'], 'card declined')
  t.match(String(ev?.attributes?.['exception.stacktrace']), /PaymentError: card declined\n\s+at /)
  t.equal(byName.get('GET /inventory')?.attributes['error.type'], 'InventoryError')
  const s503 = byName.get('GET /503') as ReadableSpan
  t.equal(s503.status.code, SpanStatusCode.ERROR)
  t.equal(s503.attributes['error.type'], '503')
  const s404 = byName.get('GET /404') as ReadableSpan
  t.equal(s404.status.code, SpanStatusCode.UNSET)
  t.equal(s404.attributes['error.type'], undefined)
})

t.test('unmatched requests: span named by the method alone, no http.route', async (t) => {
  const app = await appWith(t)
  await app.inject('/nowhere/123')
  const [span] = serverSpans()
  t.equal(span.name, 'GET')
  t.equal(span.attributes['http.route'], undefined)
  t.equal(span.attributes['http.response.status_code'], 404)
})

t.test('config.tracing: false and excluded globs produce no span', async (t) => {
  const app = await appWith(t, { exclude: ['/static/**'] })
  app.get('/api/a', async () => 'a')
  app.get('/api/quiet', { config: { tracing: false } }, async () => 'q')
  app.get('/static/*', async () => 's')
  await app.inject('/api/quiet')
  await app.inject('/static/x.css')
  await app.inject('/api/a')
  t.same(serverSpans().map((s) => s.name), ['GET /api/a'])
})

t.test('the handler and later hooks run inside the span: their spans are children (GET and POST)', async (t) => {
  const app = await appWith(t)
  const tracer = trace.getTracer('test')
  app.addHook('preHandler', async () => { tracer.startSpan('preHandler-work').end() })
  const handler = async (): Promise<string> => {
    await new Promise((resolve) => setTimeout(resolve, 5))
    tracer.startActiveSpan('db.query', (s) => s.end())
    return 'ok'
  }
  app.get('/work', handler)
  app.post('/work', handler)
  let headersIn: () => void = () => {}
  const postHeadersIn = new Promise<void>((resolve) => { headersIn = resolve })
  app.addHook('onRequest', async (req) => { if (req.method === 'POST') headersIn() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  await (await fetch(`${base}/work`)).text()
  // A real socket: the body arrives in later 'data' events, outside the onRequest context (sent
  // once the server has run onRequest for the headers, not after a guessed delay).
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(`${base}/work`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': 7 } }, (res) => { res.resume(); res.on('end', resolve) })
    req.on('error', reject)
    req.flushHeaders()
    void postHeadersIn.then(() => req.end('{"a":1}'))
  })
  const servers = serverSpans()
  t.equal(servers.length, 2)
  for (const server of servers) {
    const children = exporter.getFinishedSpans().filter((s) => s.parentSpanContext?.spanId === server.spanContext().spanId)
    t.same(children.map((c) => c.name).sort(), ['db.query', 'preHandler-work'], `${server.name} has both children`)
    for (const c of children) t.equal(c.spanContext().traceId, server.spanContext().traceId)
  }
})

t.test('baggage is extracted into the request context', async (t) => {
  const app = await appWith(t)
  const { propagation } = await import('@opentelemetry/api')
  let seen: string | undefined
  app.get('/b', async () => {
    seen = propagation.getBaggage(context.active())?.getEntry('tenant')?.value
    return 'b'
  })
  await app.inject({ url: '/b', headers: { traceparent, baggage: 'tenant=acme' } })
  t.equal(seen, 'acme')
})

t.test('a client abort ends the span: nothing left open', async (t) => {
  const app = await appWith(t)
  let entered: () => void = () => {}
  const inHandler = new Promise<void>((resolve) => { entered = resolve })
  let aborted: () => void = () => {}
  const abortSeen = new Promise<void>((resolve) => { aborted = resolve })
  app.addHook('onRequestAbort', async (_req) => { aborted() })
  // The handler answers when the test says so, after the abort (not after a timer racing a sleep).
  let release: () => void = () => {}
  const answer = new Promise<void>((resolve) => { release = resolve })
  app.get('/hang', async () => { entered(); await answer; return 'late' })
  // Registered after the plugin: runs once the plugin's own hooks have seen the late reply.
  let lateReplySent: () => void = () => {}
  const lateReply = new Promise<void>((resolve) => { lateReplySent = resolve })
  app.addHook('onSend', async (req, _reply, payload) => { if (req.url === '/hang') lateReplySent(); return payload })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const req = httpRequest({ host: '127.0.0.1', port, path: '/hang' })
  req.on('error', () => {})
  req.end()
  await inHandler
  req.destroy()
  await abortSeen
  const [span] = serverSpans()
  t.equal(span?.name, 'GET /hang', 'span ended at the abort, before the handler finished')
  t.equal(span.attributes['error.type'], 'aborted')
  release()
  await lateReply
  await nextTurn() // Fastify writes the late reply to the closed response right after onSend
  t.equal(serverSpans().length, 1, 'not ended twice: the late reply (it went through onSend) ends no second span')
})

t.test('a custom tracer provider is used instead of the global one', async (t) => {
  const mine = new InMemorySpanExporter()
  const custom = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(mine)] })
  t.teardown(() => custom.shutdown())
  const app = await appWith(t, { tracing: { tracerProvider: custom } })
  app.get('/c', async () => 'c')
  await app.inject('/c')
  t.equal(mine.getFinishedSpans().length, 1)
  t.equal(serverSpans().length, 0)
})

t.test('tracing: false starts nothing', async (t) => {
  const app = await appWith(t, { tracing: false })
  app.get('/n', async () => 'n')
  await app.inject('/n')
  t.equal(exporter.getFinishedSpans().length, 0)
})

t.test('server.address and server.port from the Host header, IPv6 and odd values included', async (t) => {
  const app = await appWith(t)
  app.get('/h', async () => 'h')
  const cases: Array<[string, string | undefined, number | undefined]> = [
    ['example.com:8080', 'example.com', 8080],
    ['example.com', 'example.com', undefined],
    ['[::1]:3000', '[::1]', 3000],
    ['[::1]', '[::1]', undefined],
    ['example.com:notaport', 'example.com', undefined],
    ['example.com:99999', 'example.com', undefined],
    ['example.com:8080', 'example.com', 8080]
  ]
  for (const [host] of cases) await app.inject({ url: '/h', headers: { host } })
  const spans = serverSpans()
  t.equal(spans.length, cases.length)
  cases.forEach(([host, address, port], i) => {
    t.equal(spans[i].attributes['server.address'], address, `${host} address`)
    t.equal(spans[i].attributes['server.port'], port, `${host} port`)
  })
})

t.test('a span processor that throws on end neither crashes the app nor loses the metrics', async (t) => {
  const throwing = new NodeTracerProvider({
    spanProcessors: [{
      onStart () {},
      onEnd () { throw new Error('processor broke') },
      forceFlush: async () => {},
      shutdown: async () => {}
    }]
  })
  t.teardown(() => throwing.shutdown())
  const logged: string[] = []
  const app = Fastify({ logger: { level: 'error', stream: { write: (line: string) => { logged.push(line) } } } })
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { defaultMetrics: false }, tracing: { tracerProvider: throwing } })
  app.get('/x', async () => 'x')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const responses = closedResponses(app.server)
  const port = (app.server.address() as { port: number }).port
  for (let i = 0; i < 3; i++) t.equal(await (await fetch(`http://127.0.0.1:${port}/x`)).text(), 'x')
  await responses.closed(3) // recorded on the response's 'close', which the client does not wait for
  const text = (await app.inject('/metrics')).body
  t.match(text, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/x",http_response_status_code="200"\} 3/, 'all three recorded')
  t.match(text, /http_server_active_requests\{http_request_method="GET"\} 0/)
  t.equal(logged.filter((l) => l.includes('recording the request failed') && l.includes('processor broke')).length, 3, 'each failure logged')
})

t.test('a client gone before the plugin\'s hook runs is neither counted nor left open', async (t) => {
  exporter.reset()
  const app = Fastify()
  t.teardown(() => app.close())
  let gone: () => void = () => {}
  const clientGone = new Promise<void>((resolve) => { gone = resolve })
  let arrived: () => void = () => {}
  const inHook = new Promise<void>((resolve) => { arrived = resolve })
  // A slow hook of the user's, registered before the plugin (an auth check, say).
  app.addHook('onRequest', async (request) => {
    if (request.url !== '/slow-auth') return
    request.raw.once('close', gone)
    arrived()
    await clientGone
  })
  await app.register(observability, { metrics: { defaultMetrics: false } })
  // Registered after the plugin: once it runs, the plugin's onRequest has had its turn.
  let passed: () => void = () => {}
  const pastThePlugin = new Promise<void>((resolve) => { passed = resolve })
  app.addHook('onRequest', async (request) => { if (request.url === '/slow-auth') passed() })
  app.get('/slow-auth', async () => 'never')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const req = httpRequest({ host: '127.0.0.1', port, path: '/slow-auth' })
  req.on('error', () => {})
  req.end()
  await inHook
  req.destroy()
  await clientGone
  await pastThePlugin
  await nextTurn()
  const text = (await app.inject('/metrics')).body
  t.notMatch(text, /http_server_active_requests\{[^}]*\} [1-9]/, 'no request left in flight')
  t.notMatch(text, /http_route="\/slow-auth"/, 'not recorded as answered')
  t.equal(serverSpans().length, 0, 'no span started for it')
})
