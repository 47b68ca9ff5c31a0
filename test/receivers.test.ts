// The test receivers decode the real bytes that the real exporters put on the wire.
import t from 'tap'
import type { Test } from 'tap'
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { SpanExporter } from '@opentelemetry/sdk-trace-base'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { OTLPTraceExporter as OTLPProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { OTLPTraceExporter as OTLPJsonExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { JaegerExporter } from '@opentelemetry/exporter-jaeger'
import { startOtlpReceiver } from './helpers/otlp-receiver'
import type { ReceivedSpan, SpanCollector } from './helpers/otlp-receiver'
import { startJaegerReceiver } from './helpers/jaeger-receiver'

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c'
const REMOTE_PARENT = 'b7ad6b7169203331'

/** Emits a known little trace through `exporter` and returns the ids it used. */
async function emitTrace (exporter: SpanExporter): Promise<{ server: string, child: string }> {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'receiver-test', 'service.version': '9.8.7', 'deployment.environment.name': 'ci' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)]
  })
  const tracer = provider.getTracer('receiver-scope', '1.2.3')
  const remote = trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE_ID, spanId: REMOTE_PARENT, traceFlags: 1, isRemote: true })
  const server = tracer.startSpan('GET /items/:id', {
    kind: SpanKind.SERVER,
    attributes: { 'http.request.method': 'GET', 'http.response.status_code': 503, 'http.route': '/items/:id', retry: true, ratio: 0.25 }
  }, remote)
  const child = tracer.startSpan('db query', { kind: SpanKind.CLIENT, attributes: { 'db.system': 'postgresql' } }, trace.setSpan(remote, server))
  child.addEvent('rows', { count: 3 })
  child.end()
  server.recordException(new Error('backend down'))
  server.setStatus({ code: SpanStatusCode.ERROR, message: 'backend down' })
  server.end()
  await provider.forceFlush()
  await provider.shutdown()
  return { server: server.spanContext().spanId, child: child.spanContext().spanId }
}

function checkTrace (t: Test, spans: ReceivedSpan[], ids: { server: string, child: string }, numbersAreDoubles: boolean): void {
  t.equal(spans.length, 2, 'two spans')
  const server = spans.find(s => s.spanId === ids.server)!
  const child = spans.find(s => s.spanId === ids.child)!
  t.ok(server, 'server span present')
  t.ok(child, 'child span present')
  t.equal(server.traceId, TRACE_ID, 'trace id kept')
  t.equal(server.parentSpanId, REMOTE_PARENT, 'server parent = remote span')
  t.equal(server.name, 'GET /items/:id')
  t.equal(server.kind, SpanKind.SERVER)
  t.equal(server.kindName, 'SERVER')
  t.equal(server.attributes['http.request.method'], 'GET')
  t.equal(server.attributes['http.response.status_code'], 503)
  t.equal(server.attributes.retry, true)
  t.equal(server.attributes.ratio, 0.25)
  t.same(server.status, { code: SpanStatusCode.ERROR, message: 'backend down' })
  const exception = server.events.find(e => e.name === 'exception')
  t.ok(exception, 'exception event')
  t.equal(exception?.attributes['exception.message'], 'backend down')
  t.ok(server.endTimeUnixNano >= server.startTimeUnixNano && server.startTimeUnixNano > 1_600_000_000_000_000_000n, 'plausible timestamps')
  t.equal(server.resource['service.name'], 'receiver-test')
  t.equal(server.scope.name, 'receiver-scope')
  t.equal(server.scope.version, '1.2.3')

  t.equal(child.traceId, TRACE_ID)
  t.equal(child.parentSpanId, ids.server, 'child parent = server span')
  t.equal(child.kind, SpanKind.CLIENT)
  t.equal(child.attributes['db.system'], 'postgresql')
  t.same(child.events.map(e => [e.name, e.attributes.count]), [['rows', 3]])
  t.equal(typeof child.events[0].attributes.count, 'number', numbersAreDoubles ? 'double' : 'int')
  t.same(child.status, { code: SpanStatusCode.UNSET, message: '' })
}

async function received (c: SpanCollector, n: number): Promise<ReceivedSpan[]> {
  return c.waitFor(spans => spans.length >= n, 5000)
}

t.test('OTLP http/protobuf', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const ids = await emitTrace(new OTLPProtoExporter({ url: rx.tracesUrl }))
  const spans = await received(rx, 2)
  t.equal(rx.requests[0].contentType, 'application/x-protobuf')
  t.ok(spans.every(s => s.transport === 'otlp-protobuf'))
  t.equal(spans[0].resource['service.version'], '9.8.7')
  t.equal(spans[0].resource['deployment.environment.name'], 'ci')
  checkTrace(t, spans, ids, false)
  t.same(rx.errors, [])
})

t.test('OTLP http/protobuf gzip', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const ids = await emitTrace(new OTLPProtoExporter({ url: rx.tracesUrl, compression: 'gzip' as never }))
  const spans = await received(rx, 2)
  t.equal(rx.requests[0].contentEncoding, 'gzip')
  checkTrace(t, spans, ids, false)
})

t.test('OTLP http/json', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const ids = await emitTrace(new OTLPJsonExporter({ url: rx.tracesUrl }))
  const spans = await received(rx, 2)
  t.equal(rx.requests[0].contentType, 'application/json')
  t.ok(spans.every(s => s.transport === 'otlp-json'))
  checkTrace(t, spans, ids, false)
})

t.test('Jaeger HTTP collector (Thrift binary Batch)', async (t) => {
  const rx = await startJaegerReceiver()
  t.teardown(() => rx.close())
  const exporter = new JaegerExporter({ endpoint: rx.endpoint })
  const ids = await emitTrace(exporter as unknown as SpanExporter)
  const spans = await received(rx, 2)
  t.equal(rx.requests[0].path, '/api/traces')
  t.ok(spans.every(s => s.transport === 'jaeger-http'))
  t.equal(spans[0].resource['service.name'], 'receiver-test', 'process.serviceName')
  t.equal(spans[0].attributes['service.version'], '9.8.7', 'resource attributes copied into tags')
  checkTrace(t, spans, ids, true)
})

t.test('Jaeger UDP agent (emitBatch)', async (t) => {
  const rx = await startJaegerReceiver()
  t.teardown(() => rx.close())
  const exporter = new JaegerExporter({ host: rx.agentHost, port: rx.agentPort })
  const ids = await emitTrace(exporter as unknown as SpanExporter)
  const spans = await received(rx, 2)
  t.equal(rx.requests[0].path, 'udp:emitBatch')
  t.ok(spans.every(s => s.transport === 'jaeger-udp'))
  t.equal(spans[0].resource['service.name'], 'receiver-test')
  checkTrace(t, spans, ids, true)
})

t.test('receiver rejects garbage and reports it', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const res = await fetch(rx.tracesUrl, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: new Uint8Array([0x0a, 0xff, 0xff, 0x01]) })
  t.equal(res.status, 400)
  await t.rejects(rx.waitFor(s => s.length > 0, 1000), /truncated/)
})

t.test('waitFor times out with what it saw', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  await t.rejects(rx.waitFor(s => s.length > 0, 100), /timed out after 100 ms.*received 0 span/)
})
