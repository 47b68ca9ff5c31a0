// The shipped rules end to end: a real Prometheus loads docs/prometheus/recording-rules.yml and
// alerting-rules.yml as they are, with a config made from the sample docs/prometheus/prometheus.yml
// (its static job and its file_sd job both scrape the fixture app, which announces itself to the
// latter through the plugin's discovery option; intervals 1 s), and sends its
// alerts to a real Alertmanager configured from the sample docs/prometheus/alertmanager.yml
// (group_wait 1 s), whose page receiver posts to a webhook receiver in this test. The app answers
// half of its requests with a 500: HttpServerErrorBudgetBurn must reach the page webhook for each
// job. Nothing here waits for a fixed time: the test waits for the webhook's POSTs.
import t from 'tap'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { startPrometheus, skipReasonIfAbsent } from './helpers/prometheus'
import { alertmanagerSkipReason, startAlertmanager, startWebhookReceiver } from './helpers/alertmanager'
import type { WebhookNotification } from './helpers/alertmanager'
import { childEnv, getText, startNodeApp } from './helpers/child'

const DOCS = resolve(__dirname, '..', 'docs', 'prometheus')
const skip = skipReasonIfAbsent() ?? alertmanagerSkipReason()

/** text with each [from, to] replaced; from must occur exactly `times` (default 1) times. */
function substitute (text: string, file: string, pairs: Array<[string, string, number?]>): string {
  for (const [from, to, times = 1] of pairs) {
    const found = text.split(from).length - 1
    if (found !== times) throw new Error(`${file}: expected ${times} × ${JSON.stringify(from)}, found ${found}: the sample changed, update this test`)
    text = text.split(from).join(to)
  }
  return text
}

t.test('an app answering 5xx pages through the shipped rules, Prometheus and Alertmanager', skip === null ? {} : { skip }, async (t) => {
  const webhook = await startWebhookReceiver()
  t.teardown(() => webhook.close())

  const am = await startAlertmanager({
    config: substitute(readFileSync(join(DOCS, 'alertmanager.yml'), 'utf8'), 'alertmanager.yml', [
      ['group_wait: 30s', 'group_wait: 1s'],
      ['group_interval: 5m', 'group_interval: 1s'],
      ['http://127.0.0.1:5001', webhook.url, 2]
    ])
  })
  t.teardown(() => am.stop())

  // The directory of the fastify-discovered job: the app's discovery option writes its file there
  // after listen (the option wants the directory to exist at register).
  const sdDir = mkdtempSync(join(tmpdir(), 'fo-file-sd-'))
  t.teardown(() => rmSync(sdDir, { recursive: true, force: true })) // teardowns run last first: after the app's kill
  const app = startNodeApp<{ port: number }>(t, ['test/fixtures/alerting-app.cjs'],
    childEnv({ DISCOVERY_DIR: sdDir, DISCOVERY_LABELS: JSON.stringify({ env: 'e2e' }) }))
  const { port } = await app.ready
  const target = `127.0.0.1:${port}`
  const sdFiles = readdirSync(sdDir).filter((f) => f.endsWith('.json'))
  t.equal(sdFiles.length, 1, 'the app announced itself: one file_sd file', { files: readdirSync(sdDir) })
  t.same(JSON.parse(readFileSync(join(sdDir, sdFiles[0]), 'utf8')), [{ targets: [target], labels: { env: 'e2e' } }],
    'its listening address and the labels of the option')

  const prom = await startPrometheus({
    targets: [],
    config: substitute(readFileSync(join(DOCS, 'prometheus.yml'), 'utf8'), 'prometheus.yml', [
      ['scrape_interval: 15s', 'scrape_interval: 1s'],
      ['scrape_timeout: 10s', 'scrape_timeout: 1s'],
      ['evaluation_interval: 15s', 'evaluation_interval: 1s'],
      ['- recording-rules.yml', `- ${JSON.stringify(join(DOCS, 'recording-rules.yml'))}`],
      ['- alerting-rules.yml', `- ${JSON.stringify(join(DOCS, 'alerting-rules.yml'))}`],
      ["'127.0.0.1:9093'", JSON.stringify(am.address)],
      ["'127.0.0.1:3000'", JSON.stringify(target)],
      ['/var/lib/fastify-observability/targets/*.json', join(sdDir, '*.json')]
    ])
  })
  t.teardown(() => prom.stop())

  // Traffic until the test ends: an order (200) and a checkout (500) at a time, paced so as not
  // to spin (the pause is not a wait for anything).
  const stopTraffic = new AbortController()
  let sent = 0
  const traffic = (async () => {
    while (!stopTraffic.signal.aborted) {
      const [ok, failed] = await Promise.all([getText(port, '/api/orders/42'), getText(port, '/api/checkout')])
      if (ok.status !== 200 || failed.status !== 500) throw new Error(`unexpected answers ${ok.status}, ${failed.status}`)
      sent += 2
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  t.teardown(async () => {
    stopTraffic.abort()
    await traffic.catch(() => {})
  })

  const describe = async (): Promise<string> => {
    const rules = await fetch(`${prom.url}/api/v1/rules?type=alert`).then((r) => r.text()).catch((e: unknown) => String(e))
    const ratios = await prom.query('{__name__=~"job:http_server_request_errors:ratio_rate(5m|1h)"}').then((r) => JSON.stringify(r)).catch((e: unknown) => String(e))
    const held = await am.alerts().then((a) => JSON.stringify(a)).catch((e: unknown) => String(e))
    return `requests sent: ${sent}\nerror ratios: ${ratios}\nPrometheus alerting rules: ${rules}\nAlertmanager's alerts: ${held}\n` +
      `Prometheus log:\n${prom.logs()}\nAlertmanager log:\n${am.logs()}\napp stderr:\n${app.stderr()}`
  }
  const pageFor = (job: string) => (n: WebhookNotification): boolean =>
    n.status === 'firing' && n.alerts.some((a) => a.labels.alertname === 'HttpServerErrorBudgetBurn' && a.labels.severity === 'page' && a.labels.job === job)

  // The traffic failing ends the wait too.
  const trafficFailed = traffic.then(() => new Promise<never>(() => {}))
  for (const job of ['fastify', 'fastify-discovered']) {
    const n = await Promise.race([webhook.waitFor(pageFor(job), describe), trafficFailed])
    t.equal(n.path, '/page', `${job}: posted to the page webhook`)
    t.equal(n.receiver, 'page', `${job}: by the page receiver (the route for severity="page")`)
    t.same(n.groupLabels, { alertname: 'HttpServerErrorBudgetBurn', job, severity: 'page' }, `${job}: grouped by alertname, job, severity`)
    t.equal(n.alerts.length, 1, `${job}: one alert in the group`)
    const alert = n.alerts[0]
    // The SLO alerts are per service: one alert for the job, no instance label (an instance's
    // own state is what InstanceDown, NodejsEventLoopLag and ScrapeTooSlow are about).
    t.same(alert.labels, { alertname: 'HttpServerErrorBudgetBurn', severity: 'page', job }, `${job}: the alert's labels`)
    t.match(alert.annotations.summary, new RegExp(`^${job} burns its error budget fast: \\d+(\\.\\d+)?% of requests fail with 5xx$`), `${job}: summary`)
    t.match(alert.annotations.description, /^Over the last hour \(or 6 hours\), \d+(\.\d+)?% of the requests of /, `${job}: description`)
    t.equal(alert.annotations.runbook_url, 'https://github.com/fastify-observability/fastify-observability/blob/main/docs/alerting.md#httpservererrorbudgetburn', `${job}: runbook`)
    const generator = new URL(alert.generatorURL)
    t.ok(generator.port === new URL(prom.url).port && generator.pathname === '/graph', `${job}: generated by the test's Prometheus`, { generatorURL: alert.generatorURL })
  }

  // The targets behind the two jobs: the same app, and the file_sd target with its labels.
  const up = await prom.query('up')
  t.same(up.map((s) => s.metric).sort((a, b) => a.job.localeCompare(b.job)), [
    { __name__: 'up', job: 'fastify', instance: target, env: 'production' },
    { __name__: 'up', job: 'fastify-discovered', instance: target, env: 'e2e' }
  ], 'both jobs scrape the app, the discovered one with the labels of its file')
  t.ok(up.every((s) => s.value[1] === '1'), 'and are up')
})
