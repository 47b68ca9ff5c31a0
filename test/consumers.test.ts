// How the package is consumed: by its own name from ESM and CommonJS (through package.json
// "exports" and the built dist/), and several Fastify instances in one process.
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { execFile, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve as resolvePath } from 'node:path'
import observability, { DURATION_NAME } from '../lib/index'
import { requestCount, sampleValue } from './helpers/metrics-text'

const root = resolvePath(__dirname, '..')

// The fixtures import the built package; build it once if it is not there (npm test builds first).
if (!existsSync(join(root, 'dist', 'index.js')) || !existsSync(join(root, 'dist', 'esm', 'index.mjs'))) {
  execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit', timeout: 120_000 })
}

/** Run a fixture with node (it exits by itself; killed after 30 s) and parse its JSON line. */
function runFixture (file: string): Promise<any> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [join(root, 'test', 'fixtures', file)], { cwd: root, timeout: 30_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err !== null) { reject(new Error(`${file} failed: ${err.message}\n${stderr}`)); return }
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop() as string))
      } catch (e) {
        reject(new Error(`${file} printed no JSON: ${stdout}\n${stderr}`))
      }
    })
  })
}

// The TypeScript consumers (test/fixtures/types/*) are type-checked against the packed package in
// every resolution mode by test/docs-types.test.ts, together with the docs' code blocks.

t.test('ESM consumer: import observability from "fastify-observability"', async (t) => {
  const r = await runFixture('consumer-esm.mjs')
  t.equal(r.resolved, join(root, 'dist', 'esm', 'index.mjs'), 'the "import" condition picks the ESM entry')
  t.equal(r.defaultType, 'function')
  t.equal(r.sameAsNamed, true, 'default and { observability } are the same plugin')
  t.equal(r.sameAsRequire, true, 'ESM and require() share one module instance (no dual-package copy)')
  t.equal(r.pluginName, 'fastify-observability', 'fastify-plugin metadata is there')
  t.same(r.viaDefault, { status: 200, count: 3, rootDecorated: true }, 'default import: 3 requests counted, decorator on the root')
  t.same(r.viaNamed, { status: 200, count: 2, rootDecorated: true }, 'named import: 2 requests counted')
})

t.test('CJS consumer: require("fastify-observability")', async (t) => {
  const r = await runFixture('consumer-cjs.cjs')
  t.equal(r.resolved, join(root, 'dist', 'index.js'), 'the "require" condition picks the CJS build')
  // Fastify convention: require('plugin') is the plugin function itself, with .default and the
  // named exports hanging off it (lib/index.ts: module.exports = Object.assign(plugin, ...)).
  t.equal(r.requireType, 'function', 'require() returns the plugin function')
  t.equal(r.defaultType, 'function')
  t.equal(r.sameDefaultNamed, true, '.default and .observability are the same plugin')
  for (const key of ['default', 'observability', 'DURATION_NAME', 'ObservabilityOptionError', 'prefersOpenMetrics']) {
    t.ok(r.keys.includes(key), `require() result has .${key}`)
  }
  t.equal(r.pluginName, 'fastify-observability')
  t.same(r.viaRequireItself, { status: 200, count: 4, rootDecorated: true }, 'app.register(require(...)): 4 requests counted')
  t.same(r.viaDefault, { status: 200, count: 3, rootDecorated: true }, 'require(...).default: 3 requests counted')
  t.same(r.viaNamed, { status: 200, count: 2, rootDecorated: true }, 'require(...).observability: 2 requests counted')
})

async function appWith (opts: Parameters<typeof observability>[1], routes: string[]): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(observability, opts)
  for (const r of routes) app.get(r, async () => r)
  await app.ready()
  return app
}

t.test('two Fastify instances in one process, each with the default options', async (t) => {
  // No "already registered" error: fastify-plugin's name check is per instance tree, and each
  // plugin instance makes its own Registry (with its own copy of the default process metrics).
  const a = await appWith({}, ['/a'])
  t.teardown(() => a.close())
  const b = await appWith({}, ['/a', '/b'])
  t.teardown(() => b.close())
  t.not(a.metrics?.registry, b.metrics?.registry, 'separate registries')

  for (let i = 0; i < 3; i++) await a.inject('/a')
  for (let i = 0; i < 5; i++) await b.inject('/a')
  await b.inject('/b')

  const ma = (await a.inject('/metrics')).body
  const mb = (await b.inject('/metrics')).body
  t.equal(requestCount(ma, '/a'), 3, 'a counts only its own 3 requests')
  t.equal(requestCount(ma, '/b'), undefined, 'a never saw /b')
  t.equal(requestCount(mb, '/a'), 5, 'b counts only its own 5 requests')
  t.equal(requestCount(mb, '/b'), 1)
  t.ok((sampleValue(ma, 'process_cpu_user_seconds_total') ?? -1) >= 0, 'a has the default metrics')
  t.ok((sampleValue(mb, 'process_cpu_user_seconds_total') ?? -1) >= 0, 'b has the default metrics')

  // Closing one leaves the other whole.
  await a.close()
  await b.inject('/a')
  t.equal(requestCount((await b.inject('/metrics')).body, '/a'), 6, 'b still counts after a closed')
})

t.test('two Fastify instances sharing one user-passed registry', async (t) => {
  // What happens: the second instance finds the first one's http_server_* metrics in the registry
  // with the same shape and adopts them (lib/metrics.ts adopt()); the default process metrics are
  // registered once (the second instance sees process_cpu_user_seconds_total and skips them).
  // So both instances record into the SAME series: a route both define (/a) is one series holding
  // the requests of both, and each instance's /metrics shows the combined registry. Telling the
  // instances apart needs a customLabels label or a different metrics.prefix.
  const registry = new Registry()
  const a = await appWith({ metrics: { registry } }, ['/a'])
  t.teardown(() => a.close())
  const b = await appWith({ metrics: { registry } }, ['/a', '/b'])
  t.teardown(() => b.close())
  t.equal(a.metrics?.registry, registry)
  t.equal(b.metrics?.registry, registry)

  for (let i = 0; i < 3; i++) await a.inject('/a')
  for (let i = 0; i < 5; i++) await b.inject('/a')
  await b.inject('/b')

  const ma = (await a.inject('/metrics')).body
  const mb = (await b.inject('/metrics')).body
  t.equal(requestCount(ma, '/a'), 8, 'one /a series with the 3 + 5 requests of both')
  t.equal(requestCount(ma, '/b'), 1, "a's /metrics shows b's route too")
  t.equal(ma.split('\n').filter((l) => l.startsWith('# TYPE process_cpu_user_seconds_total ')).length, 1, 'default metrics registered once')
  t.equal(ma.split('\n').filter((l) => l.startsWith(`# TYPE ${DURATION_NAME} `)).length, 1, 'one histogram family')
  t.equal(requestCount(mb, '/a'), 8, 'b shows the same series')

  // Closing the instance that registered the metrics (a) must not pull them from b, which still
  // records into them: the registry counts its users and the last one to close removes them.
  await a.close()
  await b.inject('/a')
  const after = (await b.inject('/metrics')).body
  t.equal(requestCount(after, '/a'), 9, "b's metrics survive a closing")
  t.equal(after.split('\n').filter((l) => l.startsWith('# TYPE process_cpu_user_seconds_total ')).length, 1, 'and so do the default metrics')
  await b.close()
  t.same(registry.getMetricsAsArray().map((m: { name: string }) => m.name), [], 'the last instance closing empties the registry')
})
