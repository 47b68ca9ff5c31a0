// Your own SDK with instrumentation-pino (no preload): its mixin already adds the span's ids to every
// pino line, so the plugin does not bind them again. Each key appears once.
import t from 'tap'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { PinoInstrumentation } from '@opentelemetry/instrumentation-pino'

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c'
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())] })
provider.register()
// Before fastify (and so pino) is loaded, as an SDK preload would.
const unregister = registerInstrumentations({ instrumentations: [new PinoInstrumentation()] })
t.teardown(async () => {
  unregister()
  await provider.shutdown()
})

t.test('instrumentation-pino active without the preload: ids once per line', async (t) => {
  const { default: Fastify } = await import('fastify')
  const observability = require('../lib/index').default as typeof import('../lib/index').default
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write (chunk: string) { lines.push(chunk) } } } })
  t.teardown(() => app.close())
  await app.register(observability, { metrics: false })
  app.get('/api/logs', async (request) => {
    request.log.info('in the handler')
    return 'ok'
  })
  await app.inject({ url: '/api/logs', headers: { traceparent: `00-${TRACE_ID}-b7ad6b7169203331-01` } })
  const raw = lines.find(l => l.includes('"in the handler"'))
  t.ok(raw)
  t.match(JSON.parse(raw ?? '{}'), { trace_id: TRACE_ID }, 'the ids are there (from instrumentation-pino)')
  t.equal(raw?.split('"trace_id"').length, 2, 'and only once')
})
