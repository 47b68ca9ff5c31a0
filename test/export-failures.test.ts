// A collector that is down loses spans; it must not do so silently. With the preload and an OTLP
// endpoint nobody listens on: one warning naming the endpoint (not one per failed export), and the
// lost spans counted at /metrics. Without the preload's handle, no such metric.
import t from 'tap'
import Fastify from 'fastify'
import observability from '../lib/index'
import { EXPORT_FAILED_NAME } from '../lib/export-failures'
import { freePort, promtoolCheckMetrics, skipReasonIfAbsent } from './helpers/prometheus'
import { childEnv, getText, startNodeApp } from './helpers/child'

const failed = (body: string): number => Number(new RegExp(`^${EXPORT_FAILED_NAME} (\\d+)$`, 'm').exec(body)?.[1] ?? NaN)

t.test('collector down: lost spans counted at /metrics, one warning naming the endpoint', async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}`
  const app = startNodeApp<{ port: number }>(t, ['--require', './dist/register.js', 'test/fixtures/story-app.cjs'],
    childEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: dead, OTEL_SERVICE_NAME: 'dead-collector', OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_EXPORTER_OTLP_TIMEOUT: '300', STORY_DELAY_MS: '0' }))
  const { port } = await app.ready

  // Two rounds of requests, each awaited until its spans' export failed: at least two failed exports.
  let count = 0
  for (const round of [1, 2]) {
    for (let i = 0; i < 5; i++) t.equal((await getText(port, '/api/slow')).status, 200)
    for (let i = 0; i < 200 && count < 5 * round; i++) {
      count = failed((await getText(port, '/metrics')).body)
      if (count < 5 * round) await new Promise(resolve => setTimeout(resolve, 50))
    }
    t.ok(count >= 5 * round, `round ${round}: ${count} spans counted as lost (a SERVER span per request at least)`)
  }
  const text = (await getText(port, '/metrics')).body
  t.match(text, `# TYPE ${EXPORT_FAILED_NAME} counter`)
  const skip = skipReasonIfAbsent()
  if (skip === null) t.same((await promtoolCheckMetrics(text)).lines, [], 'promtool check metrics: clean')

  await app.stop()
  const warnings = app.stderr().split('\n').filter(l => l.includes('FST_OBSERVABILITY_EXPORT_FAILED'))
  t.equal(warnings.length, 1, `one warning for every failed export of the minute:\n${app.stderr()}`)
  t.match(warnings[0], `spans could not be exported to ${dead}/v1/traces`)
})

t.test('no preload, no SDK handle: no such metric', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { defaultMetrics: false } })
  t.notMatch((await app.inject('/metrics')).body, EXPORT_FAILED_NAME)
})
