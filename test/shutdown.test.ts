// Shutdown loses nothing: with the preload, an app that handles SIGTERM itself (`await app.close();
// process.exit(0)`) while requests are in flight. The preload must not shut the SDK down at the
// signal (their spans would end after it and be dropped): it flushes, Fastify drains, the plugin's
// onClose flushes what the drained requests ended, and every span reaches the collector.
import t from 'tap'
import { SpanKind } from '@opentelemetry/api'
import { startOtlpReceiver } from './helpers/otlp-receiver'
import { childEnv, getText, startNodeApp } from './helpers/child'

const INFLIGHT = 20

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
