// The whole kit on one machine: `npm run demo:stack`.
//   - two demo apps: one listed in Prometheus' static job, one that announces itself through the
//     plugin's `discovery` option (the file_sd job);
//   - Prometheus (Debian's `prometheus`) with docs/prometheus/'s sample config, recording and
//     alerting rules, exemplar storage on;
//   - Alertmanager (Debian's `prometheus-alertmanager`) with the sample alertmanager.yml, its
//     webhooks pointed at this script, which prints every alert it is sent;
//   - a little traffic, a tenth of it to a route that always fails, so the error-budget alert fires
//     within a minute or so (STACK_TRAFFIC=0: none).
// Ports: PORT (3000), PORT2 (3001), PROMETHEUS_PORT (9090), ALERTMANAGER_PORT (9093),
// WEBHOOK_PORT (5001). Binaries: PROMETHEUS_BIN, ALERTMANAGER_BIN. STACK_INTERVAL: Prometheus'
// scrape and rule evaluation interval (5s; the sample's 15s makes a demo slow). Ctrl-C stops everything.
import { spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:http'
import { copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const SAMPLES = path.join(ROOT, 'docs', 'prometheus')
const env = process.env
const port = (name, fallback) => Number(env[name] ?? fallback)
const ports = { app: port('PORT', 3000), app2: port('PORT2', 3001), prometheus: port('PROMETHEUS_PORT', 9090), alertmanager: port('ALERTMANAGER_PORT', 9093), webhook: port('WEBHOOK_PORT', 5001) }
const interval = env.STACK_INTERVAL ?? '5s'
const url = (p) => `http://127.0.0.1:${p}`

/** The first of these binaries that runs, or null. */
function findBinary (candidates) {
  return candidates.find((bin) => !spawnSync(bin, ['--version'], { stdio: 'ignore' }).error) ?? null
}
const prometheusBin = findBinary([env.PROMETHEUS_BIN ?? 'prometheus'])
const alertmanagerBin = findBinary(env.ALERTMANAGER_BIN ? [env.ALERTMANAGER_BIN] : ['prometheus-alertmanager', 'alertmanager'])

/** The sample with its ports and paths replaced; a replacement that finds nothing is an error. */
function adapt (file, replacements) {
  let text = readFileSync(path.join(SAMPLES, file), 'utf8')
  for (const [from, to] of replacements) {
    if (!text.includes(from)) throw new Error(`docs/prometheus/${file} no longer contains ${from}: update examples/stack.mjs`)
    text = text.replaceAll(from, to)
  }
  return text
}

const work = mkdtempSync(path.join(os.tmpdir(), 'fastify-observability-stack-'))
const targets = path.join(work, 'targets')
mkdirSync(targets)
const children = []
let stopping = false
let traffic = null

/** A child process whose output goes to <name>.log in the work directory (stdout piped here too when `watch`). */
function start (name, command, args, { extraEnv = {}, watch = false } = {}) {
  const log = openSync(path.join(work, `${name}.log`), 'a')
  const child = spawn(command, args, { cwd: work, env: { ...env, ...extraEnv }, stdio: ['ignore', watch ? 'pipe' : log, log] })
  children.push(child)
  child.on('error', (err) => { console.error(`${name}: ${err.message}`); void stop(1) })
  child.on('exit', (code, signal) => {
    if (!stopping) { console.error(`${name} exited (${code ?? signal}); its log: ${path.join(work, `${name}.log`)}`); void stop(1) }
  })
  return child
}

/** Resolves when a watched child prints a line matching `re`; its stdout goes on to its log. */
function printed (child, re, name) {
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      writeFileSync(path.join(work, `${name}.log`), d, { flag: 'a' })
      if (out === null) return
      out += d
      if (re.test(out)) { out = null; resolve() }
    })
    child.on('exit', () => reject(new Error(`${name} exited before it was ready; see ${work}`)))
  })
}

async function ready (u, name) {
  for (let i = 0; i < 300; i++) {
    try { if ((await fetch(u + '/-/ready')).ok) return } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${name} not ready after 30 s; see ${work}`)
}

async function stop (code = 0) {
  if (stopping) return
  stopping = true
  clearInterval(traffic)
  webhook.close()
  // SIGTERM, then SIGKILL what is still running 10 s later: a stop never hangs.
  await Promise.all(children.map((c) => c.exitCode !== null || c.signalCode !== null || c.pid === undefined
    ? null
    : new Promise((resolve) => {
      const kill = setTimeout(() => c.kill('SIGKILL'), 10_000)
      c.once('exit', () => { clearTimeout(kill); resolve() })
      c.kill('SIGTERM')
    })))
  if (code === 0) rmSync(work, { recursive: true, force: true }) // kept after a failure, for its logs
  console.log('stopped')
  process.exit(code)
}
// SIGHUP too (the terminal closed): Prometheus and Alertmanager would take it as "reload" and stay.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(signal, () => stop())

// Alertmanager's webhooks: print each alert as it arrives.
const webhook = createServer((req, res) => {
  let body = ''
  req.on('data', (d) => { body += d })
  req.on('end', () => {
    res.end()
    try {
      for (const a of JSON.parse(body).alerts) {
        const labels = Object.entries(a.labels).filter(([k]) => k !== 'alertname').map(([k, v]) => `${k}=${v}`).join(' ')
        console.log(`ALERT ${a.status} ${a.labels.alertname} (${req.url.slice(1)}) ${labels}`)
      }
    } catch { console.log(`webhook ${req.url}: ${body}`) }
  })
})
try {
  await new Promise((resolve, reject) => {
    webhook.once('error', (err) => reject(new Error(`the webhook cannot listen on 127.0.0.1:${ports.webhook} (${err.code}): set WEBHOOK_PORT`)))
    webhook.listen(ports.webhook, '127.0.0.1', resolve)
  })
  // The two demo apps; spans go to their logs (the console exporter).
  const app = start('app', process.execPath, [path.join(ROOT, 'examples', 'demo.mjs')], { extraEnv: { PORT: String(ports.app) }, watch: true })
  const app2 = start('app2', process.execPath, [path.join(ROOT, 'examples', 'demo.mjs')], { extraEnv: { PORT: String(ports.app2), DISCOVERY_DIR: targets }, watch: true })
  await Promise.all([printed(app, /demo on http/, 'app'), printed(app2, /demo on http/, 'app2')])

  if (alertmanagerBin !== null) {
    writeFileSync(path.join(work, 'alertmanager.yml'), adapt('alertmanager.yml', [
      ['http://127.0.0.1:5001', url(ports.webhook)], ['group_wait: 30s', 'group_wait: 5s']]))
    start('alertmanager', alertmanagerBin, ['--config.file=alertmanager.yml', `--storage.path=${path.join(work, 'alertmanager-data')}`,
      `--web.listen-address=127.0.0.1:${ports.alertmanager}`, '--cluster.listen-address='])
    await ready(url(ports.alertmanager), 'Alertmanager')
  }
  if (prometheusBin !== null) {
    for (const f of ['recording-rules.yml', 'alerting-rules.yml']) copyFileSync(path.join(SAMPLES, f), path.join(work, f))
    writeFileSync(path.join(work, 'prometheus.yml'), adapt('prometheus.yml', [
      ['scrape_interval: 15s', `scrape_interval: ${interval}`], ['scrape_timeout: 10s', `scrape_timeout: ${interval}`], ['evaluation_interval: 15s', `evaluation_interval: ${interval}`],
      ["'127.0.0.1:9093'", `'127.0.0.1:${ports.alertmanager}'`], ["'127.0.0.1:3000'", `'127.0.0.1:${ports.app}'`],
      ['/var/lib/fastify-observability/targets/*.json', path.join(targets, '*.json')]]))
    start('prometheus', prometheusBin, ['--config.file=prometheus.yml', `--storage.tsdb.path=${path.join(work, 'prometheus-data')}`,
      `--web.listen-address=127.0.0.1:${ports.prometheus}`, '--enable-feature=exemplar-storage'])
    await ready(url(ports.prometheus), 'Prometheus')
  }

  if (env.STACK_TRAFFIC !== '0') {
    const paths = ['/api/users/1', '/api/users/2', '/api/users/42', '/api/users/1', '/static/app.css', '/api/users/2', '/api/internal', '/api/users/1', '/api/users/2', '/api/fail']
    let i = 0
    traffic = setInterval(() => {
      const p = paths[i++ % paths.length]
      for (const u of [url(ports.app), url(ports.app2)]) fetch(u + p).then((r) => r.arrayBuffer(), () => {})
    }, 100)
  }

  console.log(`fastify-observability stack (Ctrl-C to stop; logs in ${work}):
  app (static job):       ${url(ports.app)}/metrics
  app (announced, file_sd): ${url(ports.app2)}/metrics   its file: ${targets}
  Prometheus:   ${prometheusBin === null ? 'not installed: apt-get install prometheus (or set PROMETHEUS_BIN)' : `${url(ports.prometheus)}/targets  /alerts  /rules`}
  Alertmanager: ${alertmanagerBin === null ? 'not installed: apt-get install prometheus-alertmanager (or set ALERTMANAGER_BIN)' : `${url(ports.alertmanager)}`}
  Grafana:      import docs/grafana/fastify-observability.json (see docs/grafana.md), data source ${url(ports.prometheus)}
  Traffic:      ${traffic === null ? 'none (STACK_TRAFFIC=0)' : 'a request every 100 ms to each app, 1 in 10 sent to /api/fail: the error-budget alert fires in a minute or so and is printed here'}`)
} catch (err) {
  console.error(err.message)
  await stop(1)
}
