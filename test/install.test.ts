// The documented install lines, run as written (in README-then-docs order, the ones marked for this
// Node version) in a scratch project with the real npm registry, then the quick start with the
// SDK preload, end to end: spans decoded by the OTLP receiver, metrics scraped. On Node 22.15+ this
// is JS SDK 3.x with @prometheus-io/client; on Node 20, SDK 2.x with prom-client (and Jaeger).
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import ts from 'typescript'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { DOC_FILES, ROOT, extractBlocks, packInto } from './helpers/packed'
import { startOtlpReceiver } from './helpers/otlp-receiver'
import { startJaegerReceiver } from './helpers/jaeger-receiver'
import { getText } from './helpers/child'

// Three installs from the registry and three app runs: a cold npm cache can take minutes.
t.setTimeout(10 * 60_000)

const NODE_MAJOR = Number(process.versions.node.split('.')[0])
const [, NODE_MINOR] = process.versions.node.split('.').map(Number)
const SDK3 = NODE_MAJOR > 22 || (NODE_MAJOR === 22 && NODE_MINOR >= 15)

/** The marker before a block, e.g. `<!-- docs-test: install node>=22 -->`: does it apply here? */
function appliesHere (file: string, line: number): boolean {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n')
  let k = line - 3 // the line before the opening fence (line is the first code line, 1-based)
  while (k >= 0 && lines[k].trim() === '') k--
  const m = k >= 0 ? /<!--\s*docs-test:\s*install\s+node\s*(>=|<)\s*(\d+)\s*-->/.exec(lines[k]) : null
  if (m === null) return true
  return m[1] === '>=' ? NODE_MAJOR >= Number(m[2]) : NODE_MAJOR < Number(m[2])
}

/** `npm install ...` lines of the sh blocks for this Node, in document order (README first). */
function installLines (): Array<{ where: string, args: string[] }> {
  const out: Array<{ where: string, args: string[] }> = []
  for (const b of extractBlocks(DOC_FILES())) {
    if ((b.lang !== 'sh' && b.lang !== 'bash') || b.skip !== undefined || !appliesHere(b.file, b.line)) continue
    b.code.replace(/\\\n/g, ' ').split('\n').forEach((l, i) => {
      const cmd = l.replace(/#.*$/, '').trim().split(/\s+/)
      if (cmd[0] === 'npm' && (cmd[1] === 'install' || cmd[1] === 'i')) out.push({ where: `${b.file}:${b.line + i}`, args: cmd.slice(2) })
    })
  }
  return out
}

/** npm with this Node, without the npm_config_* / npm_package_* of an enclosing `npm test`. */
function cleanEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|OTEL_|TAP|_TAPJS|NODE_OPTIONS$|NODE_V8_COVERAGE$)/.test(k)) continue
    env[k] = v
  }
  return { ...env, ...extra }
}

function exec (file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeout: number): Promise<{ code: number, out: string, err: string }> {
  return new Promise(resolve => {
    execFile(file, args, { cwd, env, timeout, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, out: String(stdout), err: String(stderr) })
    })
  })
}

/** npm's CLI script, run with this Node (npm picks package versions by the Node it runs on). */
function npmCli (): string {
  const fromNpm = process.env.npm_execpath
  if (fromNpm !== undefined && fromNpm.endsWith('npm-cli.js')) return fromNpm
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const bin = join(dir, 'npm')
    if (existsSync(bin)) return realpathSync(bin)
  }
  throw new Error('npm not found on PATH')
}
const NPM_CLI = npmCli()

/** The README quick start's TypeScript block, compiled as `tsc` would (ESM), on a free port. */
function quickStart (port: number): string {
  const block = extractBlocks(['README.md']).find(b => b.lang === 'ts' && b.code.includes('app.listen('))
  if (block === undefined) throw new Error('README.md has no quick start block')
  const js = ts.transpileModule(block.code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
  if (!js.includes('port: 3000')) throw new Error('the quick start no longer listens on port 3000')
  return js.replace('port: 3000', `port: ${port}`)
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    }).on('error', reject)
  })
}

/** GET once the app listens: retried while the connection is refused (at most ~20 s). */
async function getWhenListening (port: number, path: string): Promise<{ status: number, body: string }> {
  for (let i = 0; ; i++) {
    try {
      return await getText(port, path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || i >= 200) throw err
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
}

const APP = `
import Fastify from 'fastify'
import observability from 'fastify-observability'

const app = Fastify()
await app.register(observability, { include: ['/api/**'] })
app.get('/api/users/:id', async (request) => ({ id: request.params.id }))
await app.listen({ host: '127.0.0.1', port: 0 })
const base = 'http://127.0.0.1:' + app.server.address().port
const user = await (await fetch(base + '/api/users/7')).json()
const metrics = await (await fetch(base + '/metrics')).text()
await app.close() // flushes the preload's SDK
console.log(JSON.stringify({ user, metrics }))
`

t.test(`documented install lines on Node ${process.versions.node}, then the quick start with the preload`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fo-install-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'pack'))
  const packed = await packInto(join(dir, 'pack'))
  const { version: ours } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const tarball = join(packed.dir, `fastify-observability-${ours}.tgz`)
  t.ok(existsSync(tarball), 'packed')
  const app = join(dir, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'quick-start', version: '1.0.0', private: true, type: 'module' }))

  const lines = installLines()
  t.ok(lines.length >= 2, "the plugin's and the SDK's install lines")
  for (const { where, args } of lines) {
    const argv = args.map(a => a === 'fastify-observability' ? tarball : a)
    const r = await exec(process.execPath, [NPM_CLI, 'install', '--no-audit', '--no-fund', ...argv], app, cleanEnv(), 240_000)
    t.equal(r.code, 0, `${where}: npm install ${args.join(' ')}`, { stderr: r.err.slice(-3000) })
    t.notMatch(r.err, /ERESOLVE|legacy-peer-deps/, `${where}: no peer conflict`)
    if (r.code !== 0) return
  }
  const has = (name: string): boolean => existsSync(join(app, 'node_modules', ...name.split('/'), 'package.json'))
  const version = (name: string): string => JSON.parse(readFileSync(join(app, 'node_modules', ...name.split('/'), 'package.json'), 'utf8')).version
  t.ok(has('@opentelemetry/sdk-node'), 'the SDK installed')
  t.equal(version('@opentelemetry/sdk-node').startsWith('0.3'), SDK3, `SDK line ${SDK3 ? '3.x' : '2.x'} (sdk-node ${version('@opentelemetry/sdk-node')})`)
  if (NODE_MAJOR >= 22) {
    t.ok(has('@prometheus-io/client'), '@prometheus-io/client on Node 22+')
    t.notOk(has('prom-client'), 'no deprecated prom-client on Node 22+')
  } else {
    t.ok(has('prom-client'), 'prom-client on Node 20')
    t.ok(has('@opentelemetry/exporter-jaeger'), 'the Jaeger exporter on Node 20')
  }

  writeFileSync(join(app, 'app.mjs'), APP)
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const run = await exec(process.execPath, ['--import', 'fastify-observability/register', 'app.mjs'], app,
    cleanEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'quick-start', OTEL_LOG_LEVEL: 'error' }), 60_000)
  t.equal(run.code, 0, 'the quick start ran', { stderr: run.err.slice(-3000) })
  if (run.code !== 0) return
  const { user, metrics } = JSON.parse(run.out.trim().split('\n').pop()!) as { user: unknown, metrics: string }
  t.same(user, { id: '7' })
  t.match(metrics, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/api\/users\/:id",http_response_status_code="200"\} 1/, 'the request counted')
  t.match(metrics, /process_cpu_user_seconds_total/, 'default metrics from the installed client')

  const span = await rx.waitForSpan(s => s.kindName === 'SERVER' && s.attributes['http.route'] === '/api/users/:id', 10_000)
  t.equal(span.name, 'GET /api/users/:id')
  t.equal(span.resource['service.name'], 'quick-start')
  t.equal(String(span.resource['telemetry.sdk.version']).split('.')[0], SDK3 ? '3' : '2', 'the installed SDK line exported it')
  t.ok(rx.spans.some(s => s.kindName === 'CLIENT' && s.traceId === span.traceId), 'the outgoing fetch traced, parent of the SERVER span')

  // The README's quick start, pasted into app.ts and compiled as the user would, run with the
  // preload: each route gets exactly what its comment says.
  const port = await freePort()
  writeFileSync(join(app, 'quick-start.mjs'), quickStart(port))
  const child = spawn(process.execPath, ['--import', 'fastify-observability/register', 'quick-start.mjs'], {
    cwd: app, env: cleanEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'readme', OTEL_LOG_LEVEL: 'error' }), stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += String(d) })
  const exited = new Promise<number | string | null>(resolve => child.on('exit', (code, signal) => resolve(code ?? signal)))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const answer = await getWhenListening(port, '/api/users/7').catch((err: Error) => { throw new Error(`${err.message}; the app's stderr:\n${stderr}`) })
  t.equal(answer.body, '{"id":"7"}', 'README: /api/users/:id answers')
  t.equal((await getText(port, '/api/internal')).body, 'ok')
  t.equal((await getText(port, '/actuator/health')).body, '{"status":"UP"}')
  const readmeMetrics = (await getText(port, '/metrics')).body
  t.match(readmeMetrics, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/api\/users\/:id",http_response_status_code="200"\} 1\n/, 'README: measured')
  t.notMatch(readmeMetrics, /http_route="\/api\/internal"/, 'README: /api/internal not measured')
  t.notMatch(readmeMetrics, /http_route="\/actuator/, 'README: /actuator/health not measured')
  child.kill('SIGTERM') // the preload flushes the spans, then the process ends by the signal
  t.equal(await exited, 'SIGTERM')
  const readmeSpans = await rx.waitFor(spans => spans.filter(x => x.resource['service.name'] === 'readme' && x.kindName === 'SERVER').length >= 2, 10_000)
  const routes = readmeSpans.filter(x => x.resource['service.name'] === 'readme' && x.kindName === 'SERVER').map(x => x.attributes['http.route']).sort()
  t.same(routes, ['/api/internal', '/api/users/:id'], 'README: traced, /actuator/health not')

  if (!SDK3) {
    // SDK 2.x: the Jaeger exporter the docs install, Thrift over HTTP to the receiver that decodes it.
    const jaegerRx = await startJaegerReceiver()
    t.teardown(() => jaegerRx.close())
    const viaJaeger = await exec(process.execPath, ['--import', 'fastify-observability/register', 'app.mjs'], app,
      cleanEnv({ OTEL_TRACES_EXPORTER: 'jaeger', OTEL_EXPORTER_JAEGER_ENDPOINT: jaegerRx.endpoint, OTEL_SERVICE_NAME: 'via-jaeger', OTEL_LOG_LEVEL: 'error' }), 60_000)
    t.equal(viaJaeger.code, 0, 'the app ran with the Jaeger exporter', { stderr: viaJaeger.err.slice(-3000) })
    const jaegerSpan = await jaegerRx.waitForSpan(s => s.kindName === 'SERVER' && s.attributes['http.route'] === '/api/users/:id', 10_000)
    t.equal(jaegerSpan.name, 'GET /api/users/:id', 'Jaeger Thrift received and decoded')
  }

  if (SDK3) {
    const jaeger = await exec(process.execPath, ['--import', 'fastify-observability/register', 'app.mjs'], app,
      cleanEnv({ OTEL_TRACES_EXPORTER: 'jaeger' }), 60_000)
    t.not(jaeger.code, 0, 'jaeger on SDK 3.x stops start-up')
    t.match(jaeger.err, /TelemetryConfigError: .*OTEL_TRACES_EXPORTER="jaeger".*has no Jaeger exporter; use "otlp"/, 'saying to use OTLP')
  }
})
