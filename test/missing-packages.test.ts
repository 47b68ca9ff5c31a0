// A project with the plugin but neither Prometheus client nor OpenTelemetry SDK installed: metrics
// fail at register saying what to install, `metrics: false` needs neither, and the preloads stop
// with one error naming the packages to install instead of a module-resolution stack.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { linkPackages, packInto } from './helpers/packed'

function node (args: string[], cwd: string, extra: Record<string, string> = {}): Promise<{ code: number, out: string, err: string }> {
  return new Promise(resolve => {
    const env = { ...process.env }
    for (const k of Object.keys(env)) if (/^(OTEL_|NODE_OPTIONS$|NODE_V8_COVERAGE$)/.test(k)) delete env[k]
    execFile(process.execPath, args, { cwd, env: { ...env, ...extra }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, out: String(stdout), err: String(stderr) })
    })
  })
}

const APP = `
const Fastify = require('fastify')
const observability = require('fastify-observability')
async function main () {
  const results = {}
  for (const [name, options] of [['metrics', {}], ['metricsOff', { metrics: false }]]) {
    const app = Fastify()
    try {
      await app.register(observability, options)
      await app.ready()
      results[name] = 'ok'
    } catch (err) {
      results[name] = { code: err.code, message: err.message }
    }
    await app.close()
  }
  console.log(JSON.stringify(results))
}
main()
`

t.test('without a Prometheus client or the SDK installed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fo-missing-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await packInto(dir)
  // The plugin's dependencies and fastify, nothing optional.
  linkPackages(dir, ['fastify', 'fastify-plugin', '@fastify/error', 'picomatch', '@opentelemetry/api'])
  writeFileSync(join(dir, 'app.cjs'), APP)
  writeFileSync(join(dir, 'server.cjs'), "require('node:http').createServer().listen(0, function () { this.close() })\n")

  const r = await node(['app.cjs'], dir)
  t.equal(r.code, 0, r.err)
  const results = JSON.parse(r.out)
  t.match(results.metrics, {
    code: 'FST_OBSERVABILITY_METRICS_CLIENT_MISSING',
    message: /npm install @prometheus-io\/client \(Node 22 and later\) or npm install prom-client \(Node 20\)/
  }, 'register rejects, saying what to install')
  t.equal(results.metricsOff, 'ok', 'metrics: false needs no client')

  for (const preload of ['--import', '--require']) {
    const p = await node([preload, 'fastify-observability/register', 'server.cjs'], dir)
    t.not(p.code, 0, `${preload}: start-up stops`)
    t.match(p.err, /TelemetryPackageMissingError: fastify-observability: .* needs @opentelemetry\/sdk-node, which is not installed: npm install @opentelemetry\/sdk-node @opentelemetry\/auto-instrumentations-node/, `${preload}: says what to install`)
    t.notMatch(p.err, /Cannot find module/, `${preload}: no module-resolution error`)
  }
  const off = await node(['--import', 'fastify-observability/register', 'server.cjs'], dir, { OTEL_SDK_DISABLED: 'true' })
  t.equal(off.code, 0, 'OTEL_SDK_DISABLED=true: the preload does nothing and needs nothing')
})
