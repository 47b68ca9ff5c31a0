// Fastify's own early answers (issue #13): the 503 while closing, the URL errors before routing and
// the HTTP parser's errors are sent before any hook runs, so they are neither recorded nor traced
// (docs/reliability.md); a 404 runs the hooks and is. return503OnClosing: false lets requests during
// close through the hooks: then they are recorded.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { SpanKind } from '@opentelemetry/api'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import observability from '../lib/index'
import { parseSamples, requestCount, sampleValue } from './helpers/metrics-text'

const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
provider.register()
t.teardown(() => provider.shutdown())

const tracedPaths = (): string[] => exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER).map((s) => String(s.attributes['url.path'])).sort()
const statuses = (text: string): string[] => [...new Set(parseSamples(text).map((s) => s.labels.http_response_status_code).filter((c) => c !== undefined))].sort()

/** A request held in its handler until released. */
function held (app: FastifyInstance, path: string): { entered: Promise<void>, release: () => void } {
  let enter: () => void = () => {}
  let release: () => void = () => {}
  const entered = new Promise<void>((resolve) => { enter = resolve })
  const released = new Promise<void>((resolve) => { release = resolve })
  app.get(path, async () => { enter(); await released; return path })
  return { entered, release }
}

/** The status of the server's response to `path`, once that response closed (after the plugin's listener). */
function served (app: FastifyInstance, path: string): Promise<number> {
  return new Promise((resolve) => {
    app.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === path) res.on('close', () => resolve(res.statusCode))
    })
  })
}

async function connect (app: FastifyInstance): Promise<net.Socket> {
  const socket = net.connect((app.server.address() as net.AddressInfo).port, '127.0.0.1')
  await once(socket, 'connect')
  socket.on('error', () => {})
  socket.setEncoding('utf8')
  return socket
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`

async function requestDuringClose (t: Tap.Test, fastifyOptions: FastifyServerOptions): Promise<{ status: number, text: string, traced: string[], wire: string }> {
  exporter.reset()
  const app = Fastify(fastifyOptions)
  await app.register(observability, { metrics: { defaultMetrics: false } })
  const slow = held(app, '/slow') // keeps connection A busy, so close does not drop it as idle
  const hold = held(app, '/hold') // keeps close from finishing (onClose removes the metrics) while we read them
  app.get('/x', async () => 'x')
  let closing: () => void = () => {}
  const closingStarted = new Promise<void>((resolve) => { closing = resolve })
  app.addHook('preClose', (done) => { closing(); done() })
  await app.listen({ port: 0, host: '127.0.0.1' })

  const a = await connect(app)
  let wire = ''
  a.on('data', (chunk: string) => { wire += chunk })
  a.write(get('/slow'))
  await slow.entered
  const b = await connect(app)
  const holdServed = served(app, '/hold')
  b.write(get('/hold'))
  await hold.entered

  const closed = app.close()
  await closingStarted
  const xServed = served(app, '/x')
  a.write(get('/x')) // on a connection that is still open: the only way a request reaches a closing server
  slow.release()
  const status = await xServed
  const text = await app.metrics.render()
  const traced = tracedPaths()
  hold.release()
  await holdServed
  b.destroy() // kept alive otherwise, and close waits for it
  a.destroy()
  await closed
  t.equal(sampleValue(text, 'http_server_active_requests', { http_request_method: 'GET' }), 1, '/hold alone in flight')
  t.equal(requestCount(text, '/slow'), 1, 'the request before close recorded')
  return { status, text, traced, wire }
}

t.test('the 503 while closing is answered before any hook: not recorded, not traced', async (t) => {
  const { status, text, traced, wire } = await requestDuringClose(t, {})
  t.equal(status, 503)
  t.match(wire, /HTTP\/1.1 503 Service Unavailable/, 'the client got the 503')
  t.same(statuses(text), ['200'], 'no 503 in the histogram')
  t.equal(requestCount(text, '/x'), undefined, 'nor the route it asked for')
  t.same(traced, ['/slow'], 'no span for it')
})

t.test('return503OnClosing: false runs the hooks during close: recorded and traced', async (t) => {
  const { status, text, traced } = await requestDuringClose(t, { return503OnClosing: false })
  t.equal(status, 200)
  t.equal(requestCount(text, '/x'), 1, 'recorded')
  t.same(traced, ['/slow', '/x'], 'traced')
})

t.test('URL errors before routing are not recorded, even answered by frameworkErrors; a 404 is', async (t) => {
  for (const frameworkErrors of [false, true]) {
    exporter.reset()
    const seen: string[] = []
    const app = Fastify(frameworkErrors
      ? { frameworkErrors: (err, _req, reply) => { seen.push((err as { code: string }).code); reply.code(400).send('bad') } }
      : {})
    t.teardown(() => app.close())
    await app.register(observability, { metrics: { defaultMetrics: false } })
    app.get('/users/:id', async () => 'user')
    const label = frameworkErrors ? 'with frameworkErrors' : 'default'
    const badUrl = await app.inject('/users/%E0%A4%A')
    const tooLong = await app.inject(`/users/${'a'.repeat(101)}`)
    t.same([badUrl.statusCode, tooLong.statusCode], frameworkErrors ? [400, 400] : [400, 414], `${label}: answered`)
    if (frameworkErrors) t.same(seen, ['FST_ERR_BAD_URL', 'FST_ERR_MAX_PARAM_LENGTH'], 'the user sees them in frameworkErrors')
    t.equal((await app.inject('/nope')).statusCode, 404)
    const text = await app.metrics.render()
    t.same(statuses(text), ['404'], `${label}: only the 404 recorded`)
    t.equal(requestCount(text, 'unmatched', 'GET', '404'), 1)
    t.equal(sampleValue(text, 'http_server_active_requests', { http_request_method: 'GET' }), 0)
    t.same(tracedPaths(), ['/nope'], `${label}: only the 404 traced`)
  }
})

t.test("the HTTP parser's errors never become a request: not recorded", async (t) => {
  exporter.reset()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { defaultMetrics: false } })
  const clientErrors: string[] = []
  await app.listen({ port: 0, host: '127.0.0.1' })
  // What the docs suggest instead: Node's 'clientError' event, next to Fastify's handler.
  app.server.on('clientError', (err: NodeJS.ErrnoException) => { clientErrors.push(err.code ?? '') })
  for (const [raw, status] of [['NOT HTTP\r\n\r\n', 400], [get(`/${'x'.repeat(20000)}`), 431]] as const) {
    const socket = await connect(app)
    let wire = ''
    socket.on('data', (chunk: string) => { wire += chunk })
    socket.write(raw)
    await once(socket, 'close')
    t.match(wire, new RegExp(`^HTTP/1.1 ${status} `), `answered ${status}`)
  }
  t.same(clientErrors, ['HPE_INVALID_METHOD', 'HPE_HEADER_OVERFLOW'])
  const text = await app.metrics.render()
  t.same(statuses(text), [], 'nothing recorded')
  t.same(tracedPaths(), [], 'nothing traced')
})
