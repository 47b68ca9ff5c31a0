// HTTP/2 cancels (issue #13): a stream the client resets (RST_STREAM NGHTTP2_CANCEL) is an abort,
// as a closed HTTP/1.1 connection is, though Node's HTTP/2 compat response then reports
// writableFinished. Real HTTP/2 servers, a node:http2 client and an SDK in memory.
import t from 'tap'
import http2 from 'node:http2'
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { SpanKind } from '@opentelemetry/api'
import Fastify from 'fastify'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import observability from '../lib/index'
import { requestCount, routesRecorded, sampleValue } from './helpers/metrics-text'

const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
provider.register()
t.teardown(() => provider.shutdown())

const ABORT_EVENT = 'connection closed before the response was sent'

/** Fastify's own http2 option, and an HTTP/2 server of the user's through serverFactory. */
const servers: Array<[string, FastifyServerOptions]> = [
  ['http2: true', { http2: true }],
  ['serverFactory', { serverFactory: (handler) => http2.createServer(handler) as never }]
]

interface Harness {
  app: FastifyInstance
  client: http2.ClientHttp2Session
  /** Resolves when the handler of /wait or /stream has started. */
  entered: () => Promise<void>
  /** The server response's 'close' of the last /wait or /stream (after the plugin's listener). */
  closed: () => Promise<unknown>
  release: () => void
  errors: string[]
}

async function harness (t: Tap.Test, options: FastifyServerOptions): Promise<Harness> {
  exporter.reset()
  const errors: string[] = []
  const app = Fastify({ ...options, logger: { level: 'error', stream: { write: (line: string) => { errors.push(line) } } } } as FastifyServerOptions)
  await app.register(observability, { metrics: { defaultMetrics: false } })
  let enter: () => void = () => {}
  let entered = new Promise<void>((resolve) => { enter = resolve })
  let closed: Promise<unknown> = Promise.resolve()
  let release: () => void = () => {}
  app.get('/ok', async () => 'ok')
  // Cancelled before any of the response was written.
  app.get('/wait', async (_req, reply) => {
    closed = once(reply.raw, 'close')
    const released = new Promise<void>((resolve) => { release = resolve })
    enter()
    await released
    return 'late'
  })
  // Cancelled mid-body: headers and a first chunk sent, the end still to come.
  app.get('/stream', async (_req, reply) => {
    closed = once(reply.raw, 'close')
    const body = new PassThrough()
    body.write('first chunk')
    release = () => body.end('last chunk')
    enter()
    return reply.send(body)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = http2.connect(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`)
  // Teardowns run last-in first-out: the client goes before the server closes.
  t.teardown(() => app.close())
  t.teardown(() => { client.close() })
  return {
    app,
    client,
    entered: async () => {
      await entered
      entered = new Promise<void>((resolve) => { enter = resolve })
    },
    closed: () => closed,
    release: () => { release() },
    errors
  }
}

async function scrape (app: FastifyInstance): Promise<string> {
  const res = await app.inject('/metrics')
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return res.body
}

function serverSpans (route: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER && s.attributes['http.route'] === route)
}

/** A complete request; resolves with the status and body once the stream closed. */
function get (client: http2.ClientHttp2Session, path: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const stream = client.request({ ':path': path })
    let status = 0
    let body = ''
    stream.setEncoding('utf8')
    stream.on('response', (headers) => { status = Number(headers[':status']) })
    stream.on('data', (chunk: string) => { body += chunk })
    stream.on('error', reject)
    stream.on('close', () => resolve({ status, body }))
    stream.end()
  })
}

for (const [name, options] of servers) {
  t.test(`${name}: a stream cancelled while the handler waits is an abort`, async (t) => {
    const h = await harness(t, options)
    const stream = h.client.request({ ':path': '/wait' })
    stream.on('error', () => {})
    stream.end()
    await h.entered()
    t.equal(sampleValue(await scrape(h.app), 'http_server_active_requests', { http_request_method: 'GET' }), 1, 'one in flight')
    stream.close(http2.constants.NGHTTP2_CANCEL)
    await h.closed()
    h.release() // the handler answers a stream that is gone

    const text = await scrape(h.app)
    t.equal(sampleValue(text, 'http_server_active_requests', { http_request_method: 'GET' }), 0, 'back to 0')
    t.notOk(routesRecorded(text).has('/wait'), 'not recorded in the duration histogram')
    const spans = serverSpans('/wait')
    t.equal(spans.length, 1, 'one span, ended')
    t.equal(spans[0].attributes['error.type'], 'aborted')
    t.equal(spans[0].attributes['http.response.status_code'], undefined, 'no status: none was sent')
    t.same(spans[0].events.map((e) => e.name), [ABORT_EVENT])
    t.same(h.errors, [], 'nothing failed while recording')
  })

  t.test(`${name}: a stream cancelled mid-body is an abort`, async (t) => {
    const h = await harness(t, options)
    const stream = h.client.request({ ':path': '/stream' })
    stream.on('error', () => {})
    const response = once(stream, 'response')
    const firstChunk = once(stream, 'data')
    stream.end()
    await h.entered()
    const [headers] = await response as [http2.IncomingHttpHeaders]
    t.equal(headers[':status'], 200, 'the headers went out')
    await firstChunk
    stream.close(http2.constants.NGHTTP2_CANCEL)
    await h.closed()
    h.release()

    const text = await scrape(h.app)
    t.equal(sampleValue(text, 'http_server_active_requests', { http_request_method: 'GET' }), 0, 'back to 0')
    t.notOk(routesRecorded(text).has('/stream'), 'not recorded in the duration histogram')
    const spans = serverSpans('/stream')
    t.equal(spans.length, 1, 'one span, ended')
    t.equal(spans[0].attributes['error.type'], 'aborted')
    t.same(spans[0].events.map((e) => e.name), [ABORT_EVENT])
    t.same(h.errors, [], 'nothing failed while recording')
  })

  t.test(`${name}: answered streams are still recorded with their status`, async (t) => {
    const h = await harness(t, options)
    t.same(await get(h.client, '/ok'), { status: 200, body: 'ok' })
    const streamed = get(h.client, '/stream')
    await h.entered()
    h.release()
    t.same(await streamed, { status: 200, body: 'first chunklast chunk' })

    const text = await scrape(h.app)
    t.equal(sampleValue(text, 'http_server_active_requests', { http_request_method: 'GET' }), 0, 'back to 0')
    t.equal(requestCount(text, '/ok'), 1, 'recorded as 200')
    t.equal(requestCount(text, '/stream'), 1, 'the streamed one too')
    for (const route of ['/ok', '/stream']) {
      const spans = serverSpans(route)
      t.equal(spans.length, 1, `${route}: one span`)
      t.equal(spans[0].attributes['http.response.status_code'], 200, `${route}: status 200`)
      t.equal(spans[0].attributes['error.type'], undefined, `${route}: no error`)
      t.equal(spans[0].attributes['network.protocol.version'], '2', `${route}: over HTTP/2, as semconv writes it`)
      t.same(spans[0].events, [], `${route}: no abort event`)
    }
    t.same(h.errors, [], 'nothing failed while recording')
  })
}
