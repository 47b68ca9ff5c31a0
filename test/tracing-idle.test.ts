// With no SDK registered the plugin skips tracing per request; an SDK started later is picked up.
import t from 'tap'
import Fastify from 'fastify'
import { trace } from '@opentelemetry/api'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import observability from '../lib/index'
import { Tracing } from '../lib/tracing'

t.test('idle while no SDK is registered, active once one is', async (t) => {
  const tracing = new Tracing({ tracerProvider: undefined, requestHook: undefined, captureQuery: false, responseHeader: null, logIds: true }, Fastify().log)
  t.equal(tracing.idle, true, 'no SDK yet')

  // Spy on the span start: while idle the hook must not even get there (the cost is the point).
  const starts = t.capture(Tracing.prototype, 'start', Tracing.prototype.start)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: false })
  let activeInHandler: unknown = 'unset'
  app.get('/x', async () => { activeInHandler = trace.getActiveSpan(); return 'x' })
  const before = await app.inject({ url: '/x', headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } })
  t.equal(before.statusCode, 200)
  t.equal(activeInHandler, undefined, 'no span, not even a no-op one, while idle')
  t.equal(starts.args().length, 0, 'no span work at all while idle')

  const exporter = new InMemorySpanExporter()
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  provider.register()
  t.teardown(async () => { await provider.shutdown(); trace.disable() })
  t.equal(tracing.idle, false, 'an SDK registered after the plugin counts')
  await app.inject('/x')
  t.same(exporter.getFinishedSpans().map((s) => s.name), ['GET /x'])
  t.equal(starts.args().length, 1)
  t.ok(activeInHandler !== undefined, 'the handler ran inside the span')
})
