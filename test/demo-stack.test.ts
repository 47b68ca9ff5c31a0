// `npm run demo:stack` (examples/stack.mjs) as a reader runs it: two demo apps, the real Prometheus
// and Alertmanager with docs/prometheus/'s sample config and rules, and traffic. Both apps are
// scraped (one listed, one announced through the discovery option), the error-budget alert the
// traffic provokes reaches the script through Alertmanager, and Ctrl-C stops every process.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { freePort, skipReasonIfAbsent } from './helpers/prometheus'
import { alertmanagerSkipReason } from './helpers/alertmanager'

const ROOT = path.resolve(__dirname, '..')
const skip = skipReasonIfAbsent() ?? alertmanagerSkipReason()

function startStack (t: Tap.Test, env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [path.join(ROOT, 'examples', 'stack.mjs')], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += String(d) })
  child.stderr.on('data', (d: Buffer) => { out += String(d) })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode !== null) return
    child.kill('SIGINT')
    // Its own stop SIGKILLs what hangs after 10 s; past that, the script itself.
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000)
    await exited
    clearTimeout(kill)
  })
  /**
   * Resolves with the output once it matches, or once the process exited or `ms` passed (then the
   * caller's assertion on the output fails, showing it).
   */
  const printed = (re: RegExp, ms = 60_000) => new Promise<string>(resolve => {
    const timer = setTimeout(done, ms)
    function done (): void { clearTimeout(timer); child.stdout.off('data', check); resolve(out) }
    function check (): void { if (re.test(out) || child.exitCode !== null) done() }
    child.stdout.on('data', check)
    void exited.then(done)
    check()
  })
  return { child, exited, printed, output: () => out }
}

async function ports () {
  return { PORT: String(await freePort()), PORT2: String(await freePort()), PROMETHEUS_PORT: String(await freePort()), ALERTMANAGER_PORT: String(await freePort()), WEBHOOK_PORT: String(await freePort()) }
}

t.test('the stack: both apps scraped, the alert delivered, a hang-up stops it all', skip === null ? {} : { skip }, async (t) => {
  const p = await ports()
  const stack = startStack(t, { ...p, STACK_INTERVAL: '1s' })
  const banner = await stack.printed(/Traffic:/)
  t.match(banner, `Prometheus:   http://127.0.0.1:${p.PROMETHEUS_PORT}/targets`, banner)
  const work = /logs in (\S+)\)/.exec(banner)?.[1] ?? ''
  t.ok(existsSync(path.join(work, 'targets')), 'the discovery directory')

  const prom = `http://127.0.0.1:${p.PROMETHEUS_PORT}`
  let up: Array<{ metric: Record<string, string>, value: [number, string] }> = []
  for (let i = 0; i < 120; i++) {
    const body = await (await fetch(`${prom}/api/v1/query?query=up`)).json() as { data: { result: typeof up } }
    up = body.data.result
    if (up.length === 2 && up.every(s => s.value[1] === '1')) break
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  t.same(up.map(s => [s.metric.job, s.metric.instance, s.value[1]]).sort(), [
    ['fastify', `127.0.0.1:${p.PORT}`, '1'],
    ['fastify-discovered', `127.0.0.1:${p.PORT2}`, '1']
  ], 'the listed app and the announced one are both up')

  const alerts = await stack.printed(/ALERT firing HttpServerErrorBudgetBurn \(page\) job=fastify severity=page/)
  t.match(alerts, /ALERT firing HttpServerErrorBudgetBurn \(page\) job=fastify severity=page/, 'the page reached the webhook through Alertmanager', { output: alerts })

  // SIGHUP (the terminal closed) as Ctrl-C: Prometheus and Alertmanager would take it as a reload.
  stack.child.kill('SIGHUP')
  t.equal(await stack.exited, 0, 'exit 0')
  t.match(stack.output(), /stopped\n$/)
  t.notOk(existsSync(work), 'its work directory removed')
  await t.rejects(fetch(`${prom}/-/ready`), 'Prometheus stopped')
  await t.rejects(fetch(`http://127.0.0.1:${p.PORT2}/metrics`), 'the apps stopped')
})

t.test('without Prometheus and Alertmanager: the apps run, and the banner says what to install', async (t) => {
  const p = await ports()
  const stack = startStack(t, { ...p, PROMETHEUS_BIN: '/nonexistent/prometheus', ALERTMANAGER_BIN: '/nonexistent/alertmanager', STACK_TRAFFIC: '0' })
  const banner = await stack.printed(/Traffic:/)
  t.match(banner, 'Prometheus:   not installed: apt-get install prometheus')
  t.match(banner, 'Alertmanager: not installed: apt-get install prometheus-alertmanager')
  t.equal((await fetch(`http://127.0.0.1:${p.PORT}/api/users/1`)).status, 200, 'the demo app answers')
  stack.child.kill('SIGINT')
  t.equal(await stack.exited, 0)
})
