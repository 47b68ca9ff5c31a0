// With @opentelemetry/instrumentation-http active (as with auto-instrumentations-node) the plugin
// must enrich the SERVER span that instrumentation started instead of starting a second one.
import t from 'tap'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http'
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import type { FastifyInstance } from 'fastify'
import { closedResponses, nextTurn } from './helpers/events'

const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
provider.register()
registerInstrumentations({ instrumentations: [new HttpInstrumentation()] })
t.teardown(() => provider.shutdown())

// Loaded after the instrumentation is enabled, as a preload would do.

const Fastify = require('fastify') as typeof import('fastify').default
const observability = require('../lib/index') as typeof import('../lib/index').default

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_ID = '00f067aa0ba902b7'

async function listen (t: Tap.Test, app: FastifyInstance): Promise<string> {
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
}

function spans (kind: SpanKind): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.kind === kind)
}

t.test('one SERVER span: instrumentation-http started it, the plugin named and enriched it', async (t) => {
  exporter.reset()
  const app = Fastify()
  await app.register(observability, { metrics: false })
  const tracer = trace.getTracer('test')
  app.get('/api/users/:id', async () => { tracer.startSpan('db.query').end(); return 'u' })
  app.get('/boom', async () => { throw new TypeError('bad thing') })
  const base = await listen(t, app)
  const responses = closedResponses(app.server)
  const res = await fetch(`${base}/api/users/9`, { headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } })
  await res.text()
  await (await fetch(`${base}/boom`)).text()
  await responses.closed(2) // instrumentation-http ends its span on 'finish', the plugin on 'close'
  const servers = spans(SpanKind.SERVER)
  t.equal(servers.length, 2, 'no duplicate server span')
  const span = servers.find((s) => s.attributes['http.route'] === '/api/users/:id') as ReadableSpan
  t.equal(span.name, 'GET /api/users/:id')
  t.equal(span.instrumentationScope.name, '@opentelemetry/instrumentation-http')
  t.equal(span.spanContext().traceId, TRACE_ID)
  t.equal(span.parentSpanContext?.spanId, PARENT_ID)
  const child = exporter.getFinishedSpans().find((s) => s.name === 'db.query')
  t.equal(child?.parentSpanContext?.spanId, span.spanContext().spanId, "handler's span is a child of the http span")

  const boom = servers.find((s) => s.attributes['http.route'] === '/boom') as ReadableSpan
  t.equal(boom.name, 'GET /boom')
  t.equal(boom.status.code, SpanStatusCode.ERROR)
  t.equal(boom.events.find((e) => e.name === 'exception')?.attributes?.['exception.message'], 'bad thing')
  t.equal(boom.attributes['error.type'], 'TypeError')
})

t.test('fetch from a handler to a second app: one trace across both, parent links right', async (t) => {
  exporter.reset()
  const second = Fastify()
  await second.register(observability, { metrics: false })
  second.get('/inventory/:sku', async () => ({ stock: 3 }))
  const secondBase = await listen(t, second)
  const secondResponses = closedResponses(second.server)

  const first = Fastify()
  await first.register(observability, { metrics: false })
  first.get('/orders/:id', async () => {
    // Node's fetch (undici) is not patched by instrumentation-http; use node:http like most clients.
    const { get } = await import('node:http')
    const body = await new Promise<string>((resolve, reject) => {
      get(`${secondBase}/inventory/abc`, (r) => { let d = ''; r.on('data', (c) => { d += c }); r.on('end', () => resolve(d)) }).on('error', reject)
    })
    return JSON.parse(body)
  })
  const firstBase = await listen(t, first)
  const firstResponses = closedResponses(first.server)
  const res = await fetch(`${firstBase}/orders/1`)
  t.same(await res.json(), { stock: 3 })
  await secondResponses.closed(1)
  await firstResponses.closed(1) // both servers closed their responses: every span has ended

  const servers = spans(SpanKind.SERVER)
  const orders = servers.find((s) => s.name === 'GET /orders/:id') as ReadableSpan
  const inventory = servers.find((s) => s.name === 'GET /inventory/:sku') as ReadableSpan
  const client = spans(SpanKind.CLIENT).find((s) => s.parentSpanContext?.spanId === orders.spanContext().spanId) as ReadableSpan
  t.ok(orders && inventory && client, 'server, client, server spans')
  t.equal(inventory.spanContext().traceId, orders.spanContext().traceId, 'one trace')
  t.equal(inventory.parentSpanContext?.spanId, client.spanContext().spanId, 'second server span is the child of the outgoing call')
})

t.test('a client abort marks the borrowed span before instrumentation-http ends it', async (t) => {
  exporter.reset()
  const app = Fastify()
  await app.register(observability, { metrics: false })
  let entered: () => void = () => {}
  const inHandler = new Promise<void>((resolve) => { entered = resolve })
  // The handler answers when the test says so, after the abort.
  let release: () => void = () => {}
  const answer = new Promise<void>((resolve) => { release = resolve })
  app.get('/hang', async () => { entered(); await answer; return 'late' })
  let lateReplySent: () => void = () => {}
  const lateReply = new Promise<void>((resolve) => { lateReplySent = resolve })
  app.addHook('onSend', async (req, _reply, payload) => { if (req.url === '/hang') lateReplySent(); return payload })
  const base = await listen(t, app)
  const responses = closedResponses(app.server)
  const { request } = await import('node:http')
  const req = request(`${base}/hang`)
  req.on('error', () => {})
  req.end()
  await inHandler
  req.destroy()
  await responses.closed(1) // the abort: instrumentation-http ends its span on the response's 'close'
  const [span, ...rest] = spans(SpanKind.SERVER)
  t.equal(rest.length, 0)
  t.equal(span?.name, 'GET /hang')
  t.equal(span?.attributes['error.type'], 'aborted')
  release()
  await lateReply
  await nextTurn()
  t.equal(spans(SpanKind.SERVER).length, 1, 'the late reply ends no second span')
})

t.test('a request made in-process while another is handled gets a span of its own', async (t) => {
  exporter.reset()
  const inner = Fastify()
  t.teardown(() => inner.close())
  await inner.register(observability, { metrics: false })
  inner.get('/inner/:id', async () => 'inner')
  const outer = Fastify()
  await outer.register(observability, { metrics: false })
  // A gateway forwarding in-process: the inner request runs inside the outer one's context, which
  // carries instrumentation-http's metadata for the outer request.
  outer.get('/gateway', async () => (await inner.inject('/inner/1')).body)
  const base = await listen(t, outer)
  t.equal(await (await fetch(`${base}/gateway`)).text(), 'inner')
  for (let i = 0; i < 100 && spans(SpanKind.SERVER).length < 2; i++) await new Promise((resolve) => setImmediate(resolve))

  const servers = spans(SpanKind.SERVER)
  t.equal(servers.length, 2, 'one SERVER span per request')
  const gateway = servers.find((s) => s.instrumentationScope.name === '@opentelemetry/instrumentation-http')
  const own = servers.find((s) => s.instrumentationScope.name === 'fastify-observability')
  t.equal(gateway?.name, 'GET /gateway', "the outer request keeps its route on instrumentation-http's span")
  t.equal(gateway?.attributes['http.route'], '/gateway')
  t.equal(own?.name, 'GET /inner/:id', 'the inner request started its own span')
  t.equal(own?.parentSpanContext?.spanId, gateway?.spanContext().spanId, 'as a child of the outer one')
})
