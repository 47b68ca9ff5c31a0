// The story end to end: an app with the SDK preload exporting to the OTLP receiver, a real
// Prometheus with exemplar storage scraping it. After a slow request made with a known traceparent,
// the exemplar Prometheus stored names the trace the receiver received, and the app's log line for
// that request carries the same trace id.
import t from 'tap'
import { SpanKind } from '@opentelemetry/api'
import { startPrometheus, skipReasonIfAbsent } from './helpers/prometheus'
import { startOtlpReceiver } from './helpers/otlp-receiver'
import { childEnv, getText, startNodeApp } from './helpers/child'

const TRACE_ID = 'f1e2d3c4b5a697887766554433221100'
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`
const skip = skipReasonIfAbsent()

interface StoredExemplars { seriesLabels: Record<string, string>, exemplars: Array<{ labels: Record<string, string>, value: string, timestamp: number }> }

t.test('latency -> exemplar -> trace -> log line, on the wire', skip === null ? {} : { skip }, async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startNodeApp<{ port: number }>(t, ['--require', './dist/register.js', 'test/fixtures/story-app.cjs'],
    childEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'story', OTEL_BSP_SCHEDULE_DELAY: '100' }))
  const { port } = await app.ready

  const prom = await startPrometheus({ targets: [`127.0.0.1:${port}`], features: ['exemplar-storage'] })
  t.teardown(() => prom.stop())
  const res = await getText(port, '/api/slow', { traceparent: TRACEPARENT })
  t.equal(res.status, 200)

  // Prometheus stores the exemplar with the next scrape (every second).
  const query = 'http_server_request_duration_seconds_bucket{http_route="/api/slow"}'
  let found: StoredExemplars['exemplars'][number] | undefined
  for (let i = 0; i < 60 && found === undefined; i++) {
    const end = Date.now() / 1000 + 60
    const r = await fetch(`${prom.url}/api/v1/query_exemplars?query=${encodeURIComponent(query)}&start=${end - 3600}&end=${end}`)
    const body = await r.json() as { status: string, data: StoredExemplars[] }
    found = body.data?.flatMap(s => s.exemplars).find(e => e.labels.trace_id === TRACE_ID)
    if (found === undefined) await new Promise(resolve => setTimeout(resolve, 500))
  }
  t.ok(found, `query_exemplars returned the request's trace id\n${prom.logs()}`)
  if (found === undefined) return
  t.ok(Number(found.value) >= 0.3, `the exemplar's value is the slow request's duration (${found.value} s)`)

  const span = await rx.waitForSpan(s => s.traceId === found!.labels.trace_id && s.kind === SpanKind.SERVER, 10_000)
  t.equal(span.spanId, found.labels.span_id, 'the exemplar names the SERVER span the receiver got')
  t.equal(span.attributes['http.route'], '/api/slow')

  await app.stop()
  const raw = app.stdout().split('\n').find(l => l.includes('"slow work started"'))
  t.ok(raw, 'the handler logged')
  if (raw === undefined) return
  t.match(JSON.parse(raw), { trace_id: TRACE_ID, span_id: found.labels.span_id }, 'the log line names the same trace and span')
  t.equal(raw.split('"trace_id"').length, 2, 'once: the preload\'s instrumentation-pino adds the ids, the plugin then does not')
  const completed = app.stdout().split('\n').filter(l => l.includes('"request completed"')).map(l => JSON.parse(l) as Record<string, unknown>)
  const reqId = (JSON.parse(raw) as { reqId: string }).reqId
  t.match(completed.find(l => l.reqId === reqId), { trace_id: TRACE_ID }, "Fastify's request completed line too")
})
