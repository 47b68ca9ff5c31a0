// The demo: an instrumented Fastify app on the plugin's defaults.
//   npm run demo            metrics at http://127.0.0.1:3000/metrics, spans printed to the console
//   OTEL_TRACES_EXPORTER=otlp npm run demo     spans to an OTLP collector on localhost:4318 instead
//   DISCOVERY_DIR=/some/dir npm run demo       announced to Prometheus' file_sd in that directory
//   npm run demo:stack      two of these with Prometheus, Alertmanager and traffic (examples/stack.mjs)
import { startTelemetry } from 'fastify-observability/sdk'

// Start the SDK before Fastify is loaded, so node:http is instrumented too (what the
// `--import fastify-observability/register` preload does for you).
const telemetry = startTelemetry({
  serviceName: 'fastify-observability-demo',
  exporter: process.env.OTEL_TRACES_EXPORTER ? undefined : 'console'
})

const { default: Fastify } = await import('fastify')
const { default: observability } = await import('fastify-observability')

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
await app.register(observability, {
  include: ['/api/**'], // the recipe's table: /api/** observed, /actuator/** and /static/** not
  exclude: ['/actuator/**', '/static/**'],
  tracing: { responseHeader: true }, // traceresponse on every traced answer
  discovery: process.env.DISCOVERY_DIR ? { directory: process.env.DISCOVERY_DIR } : false
})

const users = new Map([['1', { id: '1', name: 'Ada' }], ['2', { id: '2', name: 'Linus' }]])
app.get('/api/users/:id', async (request, reply) => users.get(request.params.id) ?? reply.code(404).send({ error: 'no such user' }))
app.get('/api/fail', async () => { throw new Error('this route always fails') })
app.get('/api/internal', { config: { metrics: false } }, async () => ({ note: 'traced, but not measured' }))
app.get('/static/*', async (request) => `static file ${request.params['*']}\n`)
app.get('/actuator/health', async () => ({ status: 'UP' }))

const port = Number(process.env.PORT ?? 3000)
await app.listen({ host: '127.0.0.1', port })
const base = `http://127.0.0.1:${app.server.address().port}`
console.log(`fastify-observability demo on ${base} (Ctrl-C to stop). Try:
  curl -i ${base}/api/users/1       (traceresponse: the trace id; LOG_LEVEL=info shows it in the log line)
  curl ${base}/api/users/42          (404)
  curl ${base}/api/fail              (500, an ERROR span)
  curl ${base}/api/internal          (config.metrics: false)
  curl ${base}/static/app.css        (not observed)
  curl ${base}/actuator/health       (not observed)
  curl ${base}/metrics               (Prometheus text)
  curl -H 'Accept: application/openmetrics-text; version=1.0.0' ${base}/metrics   (exemplars: trace ids)`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await app.close()
    await telemetry.shutdown() // flush every pending span
    process.exit(0)
  })
}
