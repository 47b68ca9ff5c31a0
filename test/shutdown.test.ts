// Shutdown loses nothing: with the preload, an app that handles SIGTERM itself (`await app.close();
// process.exit(0)`) while requests are in flight. The preload must not shut the SDK down at the
// signal (their spans would end after it and be dropped): it flushes, Fastify drains, the plugin's
// onClose flushes what the drained requests ended, and every span reaches the collector.
import t from 'tap'
import { SpanKind } from '@opentelemetry/api'
import { startOtlpReceiver } from './helpers/otlp-receiver'
import { childEnv, getText, startNodeApp } from './helpers/child'
import { until } from './helpers/events'
import { DROPPED_NAME } from '../lib/export-failures'

const INFLIGHT = 20
const lostSpans = (scrape: string): number => Number(new RegExp(`^${DROPPED_NAME} (\\d+)$`, 'm').exec(scrape)?.[1] ?? NaN)

t.test("SIGTERM handled by the app, requests in flight: every request's span exported", async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startNodeApp<{ port: number }>(t, ['--require', './dist/register.js', 'test/fixtures/shutdown-app.cjs'],
    childEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'shutdown', SHUTDOWN_INFLIGHT: String(INFLIGHT) }))
  const { port } = await app.ready

  const inflight = new Promise<void>(resolve => {
    const check = (): void => { if (app.stdout().includes(`{"inflight":${INFLIGHT}}`)) { app.child.stdout!.off('data', check); resolve() } }
    app.child.stdout!.on('data', check)
    check()
  })
  const answers = Array.from({ length: INFLIGHT }, () => getText(port, '/api/slow'))
  await inflight
  app.child.kill('SIGTERM')

  const statuses = (await Promise.all(answers)).map(a => a.status)
  t.same(statuses, Array(INFLIGHT).fill(200), 'Fastify drained every request in flight')
  t.same(await app.exited, { code: 0, signal: null }, "the app's own handler ended the process")
  const servers = (spans: typeof rx.spans): number => spans.filter(s => s.kind === SpanKind.SERVER && s.attributes['http.route'] === '/api/slow').length
  await rx.waitFor(spans => servers(spans) >= INFLIGHT, 10_000).catch(() => {})
  t.equal(servers(rx.spans), INFLIGHT, 'a SERVER span for every request that was in flight at the signal')
  t.match(app.stdout(), '{"sdkShutdown":true}', 'the SDK shut down (not only flushed) once Fastify had closed: process.exit() emits no beforeExit')
})

// Shutdown is bounded even when the collector never answers: the SDK's flush at the signal and its
// shutdown once Fastify has closed each give up after shutdownTimeoutMillis (5 s by default), and
// no export or exporter timeout could end them sooner here (both set to 10 minutes). Spans the
// black hole cost are said: counted at /metrics and warned about.
t.test('SIGTERM with a black-holed collector: the process still exits, and the lost spans were said', { timeout: 60_000 }, async (t) => {
  const hole = await startOtlpReceiver({ blackHole: true })
  t.teardown(() => hole.close())
  const app = startNodeApp<{ port: number }>(t, ['--require', './dist/register.js', 'test/fixtures/shutdown-app.cjs'], childEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: hole.url,
    OTEL_SERVICE_NAME: 'shutdown-black-hole',
    OTEL_BSP_MAX_QUEUE_SIZE: '10',
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '5',
    OTEL_BSP_EXPORT_TIMEOUT: '600000',
    OTEL_EXPORTER_OTLP_TIMEOUT: '600000',
    SHUTDOWN_INFLIGHT: '0' // no {"inflight":N} line: the requests here are answered before the signal
  }))
  const { port } = await app.ready
  const REQUESTS = 30
  const statuses = (await Promise.all(Array.from({ length: REQUESTS }, () => getText(port, '/api/slow')))).map(a => a.status)
  t.same(statuses, Array(REQUESTS).fill(200))
  // A batch of 5 handed to the black hole, 10 queued behind it, the other 15 dropped.
  let text = ''
  await until('15 spans counted as dropped', async () => lostSpans(text = (await getText(port, '/metrics')).body) >= 15)
  t.equal(lostSpans(text), REQUESTS - 5 - 10, 'the metric says 15 spans were lost')

  const signalled = Date.now()
  app.child.kill('SIGTERM')
  t.same(await app.exited, { code: 0, signal: null }, 'the process exited: the app\'s own handler, after the bounded shutdown')
  t.comment(`exited ${Date.now() - signalled} ms after SIGTERM (shutdownTimeoutMillis: 5000)`)
  t.match(app.stdout(), '{"sdkShutdown":true}', 'the SDK was shut down, not left hanging')
  const warnings = app.stderr().split('\n').filter(l => l.includes('FST_OBSERVABILITY_'))
  t.equal(warnings.length, 1, `one warning:\n${app.stderr()}`)
  t.match(warnings[0], `[FST_OBSERVABILITY_SPANS_DROPPED] Warning: fastify-observability: spans dropped: the batch span processor's queue for ${hole.url}/v1/traces is full`)
  t.match(warnings[0], /; 1 span\(s\) lost so far \(0 in failed exports, 1 dropped with the batch queue full\)/, 'sent at the first drop')
  await hole.waitFor(() => hole.requests.length >= 3, 5000).catch(() => {})
  t.equal(hole.requests.length, 3, 'the first batch, and the 10 queued flushed at the signal, reached the collector (never answered)')
})
