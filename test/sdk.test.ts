// startTelemetry() and the preloads, end to end: Fastify apps registering the plugin
// (test/fixtures/telemetry-app.{cjs,mjs}), started as child processes with
// `node --require ./dist/register.js` / `node --import ./dist/register.mjs`, export to the
// in-test OTLP and Jaeger receivers, which decode the real bytes.
//
// The preloads configure instrumentation-http with disableIncomingRequestInstrumentation: the
// plugin starts each request's SERVER span itself (scope 'fastify-observability'), and
// instrumentation-http only traces outgoing calls, unless the app opts back in (last tests).
import t from 'tap'
import type { Test } from 'tap'
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { context, propagation, trace, SpanKind } from '@opentelemetry/api'
import { ExportResultCode } from '@opentelemetry/core'
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base'
import {
  TELEMETRY_HANDLE_SYMBOL,
  TelemetryConfigError,
  getTelemetryHandle,
  resolveTelemetryConfig,
  startTelemetry
} from '../lib/sdk/index'
import type { TelemetryOptions } from '../lib/sdk/index'
import { startOtlpReceiver } from './helpers/otlp-receiver'
import type { ReceivedSpan } from './helpers/otlp-receiver'
import { startJaegerReceiver } from './helpers/jaeger-receiver'
import { childEnv, getText, startNodeApp } from './helpers/child'
import type { NodeApp } from './helpers/child'
import { until } from './helpers/events'

const execFileAsync = promisify(execFile)
const ROOT = resolve(__dirname, '..')
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_ID = '00f067aa0ba902b7'
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`

// ------------------------------------------------------------------------------------------
// Build: the preloads run from dist/. `npm test` builds first; when run alone and dist is
// missing or older than the sources, compile just the three telemetry entry points.
// ------------------------------------------------------------------------------------------
function ensureBuilt (): void {
  const sources = [...readdirSync(join(ROOT, 'lib/sdk')).map(f => join(ROOT, 'lib/sdk', f)), join(ROOT, 'lib/register.ts'), join(ROOT, 'lib/register.mts')]
  const outputs = ['dist/sdk/index.js', 'dist/register.js', 'dist/register.mjs'].map(f => join(ROOT, f))
  const newestSource = Math.max(...sources.map(f => statSync(f).mtimeMs))
  const fresh = outputs.every(f => existsSync(f) && statSync(f).mtimeMs >= newestSource)
  if (!fresh) execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')], { cwd: ROOT, stdio: 'inherit' })
}

// ------------------------------------------------------------------------------------------
// Child process helpers
// ------------------------------------------------------------------------------------------
interface ReadyLine {
  port: number
  handle: null | { enabled: boolean, config: ReturnType<typeof resolveTelemetryConfig>, instrumentations: string[] }
}

type App = NodeApp<ReadyLine>

function startApp (t: Test, preload: 'require' | 'import', fixture: 'cjs' | 'mjs', env: Record<string, string>): App {
  const preloadFile = preload === 'require' ? './dist/register.js' : './dist/register.mjs'
  return startProcess(t, [`--${preload}`, preloadFile, `test/fixtures/telemetry-app.${fixture}`], env)
}

function startProcess (t: Test, args: string[], env: Record<string, string>): App {
  return startNodeApp<ReadyLine>(t, args, childEnv(env))
}

const get = getText

const PLUGIN_SCOPE = 'fastify-observability'
const HTTP_SCOPE = '@opentelemetry/instrumentation-http'
const STATUS_UNSET = 0
const STATUS_ERROR = 2

function serverSpanFor (spans: ReceivedSpan[], path: string): ReceivedSpan | undefined {
  return spans.find(s => s.kind === SpanKind.SERVER && s.attributes['url.path'] === path)
}

/** Common assertions on the plugin's SERVER span of a request to the route `path` sent with TRACEPARENT. */
function checkServerSpan (t: Test, span: ReceivedSpan | undefined, path: string, status: number): void {
  t.ok(span, `SERVER span for ${path}`)
  if (!span) return
  t.equal(span.traceId, TRACE_ID, 'incoming trace id kept')
  t.equal(span.parentSpanId, PARENT_ID, 'parent = the traceparent span id')
  t.match(span.spanId, /^[0-9a-f]{16}$/)
  t.not(span.spanId, PARENT_ID, 'a new span id')
  t.equal(span.kindName, 'SERVER')
  t.equal(span.scope.name, PLUGIN_SCOPE, 'started by the plugin (instrumentation-http\'s incoming spans are off)')
  t.equal(span.name, `GET ${path}`, 'named "METHOD route"')
  t.equal(span.attributes['http.route'], path)
  t.equal(span.attributes['url.path'], path)
  t.equal(span.attributes['http.request.method'], 'GET')
  t.equal(span.attributes['http.response.status_code'], status, 'status code attribute')
  t.ok(span.endTimeUnixNano > span.startTimeUnixNano, 'ended')
}

t.before(ensureBuilt)

// ------------------------------------------------------------------------------------------
// Preloads, end to end
// ------------------------------------------------------------------------------------------
t.test('CJS: --require preload, OTLP http/protobuf, flushed by SIGTERM', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'require', 'cjs', {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
    OTEL_SERVICE_NAME: 'cjs-fixture',
    npm_package_name: 'not-the-service-name',
    npm_package_version: '3.4.5',
    OTEL_BSP_SCHEDULE_DELAY: '600000' // only the shutdown flush can deliver in time
  })
  const { port, handle } = await app.ready
  t.same(handle?.config.exporters, ['otlp'])
  t.equal(handle?.config.otlp?.url, rx.tracesUrl, 'OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces')
  t.ok(handle?.instrumentations.includes(HTTP_SCOPE), 'instrumentation-http on (outgoing calls)')
  t.ok(handle?.instrumentations.includes('@opentelemetry/instrumentation-undici'), 'other auto-instrumentations on')
  for (const noisy of ['fs', 'dns', 'net', 'runtime-node']) {
    t.notOk(handle?.instrumentations.includes(`@opentelemetry/instrumentation-${noisy}`), `${noisy} off by default`)
  }

  t.same(await get(port, '/hello?x=1', { traceparent: TRACEPARENT }), { status: 200, body: '{"url":"/hello?x=1"}' })
  const fail = await get(port, '/fail', { traceparent: TRACEPARENT })
  t.equal(fail.status, 500)
  t.match(JSON.parse(fail.body), { statusCode: 500, message: 'quota exceeded' }, 'Fastify\'s error reply')
  t.equal(rx.spans.length, 0, 'nothing exported before shutdown (batch delay 600 s)')

  const stopping = Date.now()
  app.child.kill('SIGTERM')
  t.same(await app.exited, { code: null, signal: 'SIGTERM' }, 'signal re-raised: the process ends by SIGTERM')
  const spans = await rx.waitFor(s => s.filter(x => x.kind === SpanKind.SERVER).length >= 2, 5000)
  await rx.settled() // the app has exited: everything it sent is recorded
  t.ok(rx.requests.every(r => r.receivedAt >= stopping), 'nothing exported before the shutdown: every request arrived after the SIGTERM')
  checkServerSpan(t, serverSpanFor(spans, '/hello'), '/hello', 200)
  checkServerSpan(t, serverSpanFor(spans, '/fail'), '/fail', 500)
  const hello = serverSpanFor(spans, '/hello')!
  t.equal(hello.attributes['url.query'], 'x=1', 'the fixture sets tracing.captureQuery')
  t.equal(hello.status.code, STATUS_UNSET)
  t.notOk('error.type' in hello.attributes)
  const failSpan = serverSpanFor(spans, '/fail')
  t.equal(failSpan?.status.code, STATUS_ERROR, '5xx: status ERROR')
  t.equal(failSpan?.status.message, 'quota exceeded', 'with the thrown error\'s message')
  t.equal(failSpan?.attributes['error.type'], 'RangeError', 'error.type = the error\'s class')
  const exc = failSpan?.events.filter(e => e.name === 'exception') ?? []
  t.equal(exc.length, 1, 'one exception event')
  t.equal(exc[0]?.attributes['exception.message'], 'quota exceeded')
  t.equal(exc[0]?.attributes['exception.type'], 'RangeError')
  t.equal(hello.resource['service.name'], 'cjs-fixture', 'OTEL_SERVICE_NAME wins over npm_package_name')
  t.equal(hello.resource['service.version'], '3.4.5', 'service.version from npm_package_version')
  t.equal(hello.resource['telemetry.sdk.language'], 'nodejs')
  t.equal(spans.length, 2, 'exactly the two SERVER spans (no instrumentation-http SERVER span; the exporter\'s own requests are not traced)')
  t.equal(rx.requests.length, 1, 'one export request, from the flush')
  t.same(rx.errors, [])
})

t.test('ESM: --import preload, Jaeger HTTP collector, flushed by SIGINT', async (t) => {
  const rx = await startJaegerReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'import', 'mjs', {
    OTEL_TRACES_EXPORTER: 'jaeger',
    OTEL_EXPORTER_JAEGER_ENDPOINT: rx.endpoint,
    OTEL_SERVICE_NAME: 'esm-fixture',
    OTEL_BSP_SCHEDULE_DELAY: '600000'
  })
  const { port, handle } = await app.ready
  t.same(handle?.config.jaeger, { transport: 'http', endpoint: rx.endpoint })
  t.same(await get(port, '/esm?token=s3cret', { traceparent: TRACEPARENT }), { status: 200, body: '{"url":"/esm?token=s3cret"}' })
  t.equal(rx.spans.length, 0, 'nothing exported before shutdown')
  const stopping = Date.now()

  // instrumentation-pino patched the ESM-imported pino: the log line carries the span ids. The line
  // comes through the child's stdout pipe, which may trail the HTTP answer: awaited, not assumed.
  await until('the handler\'s log line', () => app.stdout().includes('"handled"')).catch(() => {})
  const logLine = app.stdout().split('\n').find(l => l.includes('"handled"'))
  t.ok(logLine, 'pino log line')
  const logged = JSON.parse(logLine ?? '{}') as { trace_id?: string, span_id?: string }
  t.equal(logged.trace_id, TRACE_ID, 'trace_id injected into the ESM-imported logger')

  app.child.kill('SIGINT')
  t.same(await app.exited, { code: null, signal: 'SIGINT' })
  const span = await rx.waitForSpan(s => s.kind === SpanKind.SERVER, 5000)
  await rx.settled()
  t.ok(rx.requests.every(r => r.receivedAt >= stopping), 'every export request arrived after the SIGINT')
  checkServerSpan(t, span, '/esm', 200)
  t.notOk('url.query' in span.attributes, 'query string not recorded by default')
  t.equal(span.transport, 'jaeger-http')
  t.equal(span.resource['service.name'], 'esm-fixture', 'Jaeger process.serviceName')
  t.equal(logged.span_id, span.spanId, 'log line correlated with the plugin\'s exported SERVER span (the handler runs in its context)')
  t.equal(rx.spans.length, 1, 'one span: the plugin\'s')
})

t.test('CJS: Jaeger UDP agent, service.name from npm_package_name', async (t) => {
  const rx = await startJaegerReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'require', 'cjs', {
    OTEL_TRACES_EXPORTER: 'jaeger',
    OTEL_EXPORTER_JAEGER_AGENT_HOST: rx.agentHost,
    OTEL_EXPORTER_JAEGER_AGENT_PORT: String(rx.agentPort),
    npm_package_name: 'udp-fixture',
    OTEL_BSP_SCHEDULE_DELAY: '600000'
  })
  const { port, handle } = await app.ready
  t.same(handle?.config.jaeger, { transport: 'udp', host: '127.0.0.1', port: rx.agentPort })
  t.equal((await get(port, '/udp', { traceparent: TRACEPARENT })).status, 200)
  app.child.kill('SIGTERM')
  t.same(await app.exited, { code: null, signal: 'SIGTERM' })
  const span = await rx.waitForSpan(s => s.kind === SpanKind.SERVER, 5000)
  checkServerSpan(t, span, '/udp', 200)
  t.equal(span.transport, 'jaeger-udp')
  t.equal(span.resource['service.name'], 'udp-fixture')
})

t.test('signal-exit in the app does not count as the app\'s own handler', async (t) => {
  let signalExitAvailable = true
  try { require.resolve('signal-exit') } catch { signalExitAvailable = false }
  if (!signalExitAvailable) {
    t.skip('signal-exit is not installed', () => {})
    return
  }
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'require', 'cjs', {
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
    OTEL_BSP_SCHEDULE_DELAY: '600000',
    FIXTURE_SIGNAL_EXIT: '1'
  })
  const { port } = await app.ready
  t.equal((await get(port, '/se', { traceparent: TRACEPARENT })).status, 200)
  app.child.kill('SIGTERM')
  t.same(await app.exited, { code: null, signal: 'SIGTERM' }, 'ends by SIGTERM (no deadlock between the two listeners)')
  t.match(app.stdout(), /signal-exit:SIGTERM/, 'signal-exit ran its exit callback')
  const span = await rx.waitForSpan(s => s.kind === SpanKind.SERVER, 5000)
  checkServerSpan(t, span, '/se', 200)
})

t.test('the app\'s own SIGTERM handler decides: no forced exit, spans still flushed', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'require', 'cjs', {
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: rx.tracesUrl,
    OTEL_SERVICE_NAME: 'own-handler',
    OTEL_BSP_SCHEDULE_DELAY: '600000',
    FIXTURE_USER_SIGTERM: '1'
  })
  const { port } = await app.ready
  t.equal((await get(port, '/own', { traceparent: TRACEPARENT })).status, 200)
  app.child.kill('SIGTERM')
  const exit = await app.exited
  t.same(exit, { code: 0, signal: null }, 'the app closed its server and exited normally')
  t.match(app.stdout(), /user-cleanup-done/, 'the app\'s handler ran to completion (300 ms after the signal)')
  const span = await rx.waitForSpan(s => s.kind === SpanKind.SERVER, 5000)
  checkServerSpan(t, span, '/own', 200)
})

t.test('flushed on beforeExit when the app ends by itself; self-request CLIENT + SERVER spans', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'require', 'cjs', {
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
    OTEL_SERVICE_NAME: 'oneshot',
    OTEL_BSP_SCHEDULE_DELAY: '600000',
    FIXTURE_ONESHOT: '1'
  })
  const { port } = await app.ready
  t.same(await app.exited, { code: 0, signal: null })
  t.match(app.stdout(), /oneshot-done/)
  const spans = await rx.waitFor(s => s.length >= 3, 5000)
  await rx.settled() // the app has exited: everything it sent is recorded
  const client = spans.find(s => s.kind === SpanKind.CLIENT)
  const server = spans.find(s => s.kind === SpanKind.SERVER)
  t.ok(client && server, 'CLIENT and SERVER spans of the self-request')
  t.equal(client?.scope.name, HTTP_SCOPE, 'CLIENT span from instrumentation-http (outgoing calls still traced)')
  t.equal(client?.attributes['server.port'], port, 'CLIENT span targets the app')
  t.equal(client?.attributes['http.response.status_code'], 200)
  t.equal(server?.scope.name, PLUGIN_SCOPE, 'SERVER span from the plugin')
  t.equal(server?.name, 'GET /oneshot')
  t.equal(server?.attributes['http.route'], '/oneshot')
  t.equal(server?.traceId, client?.traceId, 'one trace')
  t.equal(server?.parentSpanId, client?.spanId, 'server span is the child of the client span (traceparent propagated)')
  t.equal(client?.parentSpanId, '', 'client span is a root')
  // The app's onClose flush (the plugin's) exported those; 'after-close' was ended after it, so
  // only the preload's 'beforeExit' shutdown can have delivered it.
  const late = spans.find(s => s.name === 'after-close')
  t.equal(late?.scope.name, 'oneshot-fixture', 'the span ended after app.close() was exported at beforeExit')
  t.equal(late?.resource['service.name'], 'oneshot')
  t.equal(spans.length, 3, 'nothing else (no instrumentation-http SERVER span)')
  t.equal(rx.requests.length, 2, 'two exports: the onClose flush, then the beforeExit shutdown')
  t.same(rx.errors, [])
})

t.test('OTEL_SDK_DISABLED=true: the preload does nothing', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'import', 'mjs', {
    OTEL_SDK_DISABLED: 'true',
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.url
  })
  const { port, handle } = await app.ready
  t.equal(handle?.enabled, false)
  t.equal(handle?.config.disabled, true)
  t.equal((await get(port, '/off', { traceparent: TRACEPARENT })).status, 200)
  await until('the handler\'s log line', () => app.stdout().includes('"handled"')).catch(() => {})
  const logLine = app.stdout().split('\n').find(l => l.includes('"handled"')) ?? '{}'
  t.equal((JSON.parse(logLine) as { trace_id?: string }).trace_id, undefined, 'pino not instrumented')
  app.child.kill('SIGTERM')
  t.same(await app.exited, { code: null, signal: 'SIGTERM' }, 'no signal hook installed: default SIGTERM behaviour')
  await rx.settled() // the app has exited: anything it sent is recorded
  t.equal(rx.requests.length, 0, 'nothing exported')
})

t.test('invalid env stops the preload with one clear error', async (t) => {
  const cases: Array<[preload: 'require' | 'import', env: Record<string, string>, expected: RegExp]> = [
    ['require', { OTEL_TRACES_EXPORTER: 'zipkinx' }, /TelemetryConfigError: .*OTEL_TRACES_EXPORTER="zipkinx" is not a supported trace exporter/],
    ['import', { OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }, /TelemetryConfigError: .*OTEL_EXPORTER_OTLP_ENDPOINT="not a url" is not a valid URL/]
  ]
  for (const [preload, env, expected] of cases) {
    const app = startApp(t, preload, preload === 'require' ? 'cjs' : 'mjs', env)
    await t.rejects(app.ready, /before listening/, `${preload}: app never starts`)
    const exit = await app.exited
    t.equal(exit.code, 1, `${preload}: exit code 1`)
    t.match(app.stderr(), expected, `${preload}: stderr names the variable and the value`)
    t.equal(app.stderr().match(/TelemetryConfigError:/g)?.length, 1, `${preload}: one error`)
  }
})

async function runOptionsFixture (options: unknown, env: Record<string, string> = {}): Promise<{ instrumentations: string[] }> {
  const { stdout } = await execFileAsync(process.execPath, ['test/fixtures/telemetry-options.cjs'], {
    cwd: ROOT,
    env: childEnv({ ...env, FIXTURE_OPTIONS: JSON.stringify(options) }),
    timeout: 15000
  })
  return JSON.parse(stdout.split('\n').find(l => l.startsWith('{"instrumentations"')) ?? '{}') as { instrumentations: string[] }
}

t.test('instrumentations option', async (t) => {
  const http = '@opentelemetry/instrumentation-http'
  const dns = '@opentelemetry/instrumentation-dns'
  const net = '@opentelemetry/instrumentation-net'
  const undici = '@opentelemetry/instrumentation-undici'
  const a = await runOptionsFixture({ exporter: 'none', instrumentations: { http: false, dns: true } })
  t.notOk(a.instrumentations.includes(http), '{ http: false } turns instrumentation-http off')
  t.ok(a.instrumentations.includes(dns), '{ dns: true } turns a default-off one on')
  t.ok(a.instrumentations.includes(undici), 'the others stay on')
  const b = await runOptionsFixture({ exporter: 'none', instrumentations: { '@opentelemetry/instrumentation-http': { enabled: false } } })
  t.notOk(b.instrumentations.includes(http), 'full package name and config object accepted')
  const c = await runOptionsFixture({ exporter: 'none' }, { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,net' })
  t.same(c.instrumentations.slice().sort(), [http, net], 'OTEL_NODE_ENABLED_INSTRUMENTATIONS respected, incl. a default-off one')
  const d = await runOptionsFixture({ exporter: 'none', instrumentations: false })
  t.same(d.instrumentations, [], 'false: none')
})

t.test('instrumentations: { http: { disableIncomingRequestInstrumentation: false } } brings back instrumentation-http\'s SERVER span, which the plugin enriches', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const common = { exporter: 'otlp', otlp: { endpoint: rx.tracesUrl }, batch: { scheduledDelayMillis: 600000 } }
  const runs = [
    { service: 'incoming-default', options: {}, tp: '4bf92f3577b34da6a3ce929d0e0e0001', scope: PLUGIN_SCOPE },
    {
      service: 'incoming-http',
      options: { instrumentations: { http: { disableIncomingRequestInstrumentation: false } } },
      tp: '4bf92f3577b34da6a3ce929d0e0e0002',
      scope: HTTP_SCOPE
    }
  ]
  let exportsBefore = 0
  for (const run of runs) {
    const app = startProcess(t, ['test/fixtures/telemetry-options.cjs'], {
      FIXTURE_APP: '1',
      FIXTURE_OPTIONS: JSON.stringify({ ...common, serviceName: run.service, ...run.options })
    })
    const { port, handle } = await app.ready
    t.ok(handle?.instrumentations.includes(HTTP_SCOPE), `${run.service}: instrumentation-http registered`)
    t.ok(handle?.instrumentations.includes('@opentelemetry/instrumentation-undici'), `${run.service}: the other defaults kept`)
    t.same(await get(port, '/items/42', { traceparent: `00-${run.tp}-${PARENT_ID}-01` }), { status: 200, body: '{"id":"42"}' })
    t.equal(rx.spans.filter(s => s.resource['service.name'] === run.service).length, 0, `${run.service}: nothing exported before shutdown`)
    const stopping = Date.now()
    app.child.kill('SIGTERM')
    t.same(await app.exited, { code: 0, signal: null }, `${run.service}: closed, shut down, exited`)
    await rx.settled()
    t.ok(rx.requests.slice(exportsBefore).every(r => r.receivedAt >= stopping), `${run.service}: every export request arrived after the SIGTERM`)
    exportsBefore = rx.requests.length
  }
  const spans = await rx.waitFor(s => s.length >= 2, 5000)
  t.same(rx.errors, [])
  for (const run of runs) {
    const mine = spans.filter(s => s.traceId === run.tp)
    t.equal(mine.length, 1, `${run.service}: exactly one span for the request`)
    const s = mine[0]
    t.equal(s?.resource['service.name'], run.service)
    t.equal(s?.kindName, 'SERVER')
    t.equal(s?.scope.name, run.scope, `${run.service}: SERVER span from ${run.scope}`)
    t.equal(s?.name, 'GET /items/:id', `${run.service}: named by the plugin`)
    t.equal(s?.attributes['http.route'], '/items/:id', `${run.service}: http.route set by the plugin`)
    t.equal(s?.attributes['url.path'], '/items/42')
    t.equal(s?.attributes['http.request.method'], 'GET')
    t.equal(s?.attributes['http.response.status_code'], 200)
    t.equal(s?.parentSpanId, PARENT_ID, `${run.service}: continues the incoming trace`)
    t.equal(s?.status.code, STATUS_UNSET)
  }
  t.equal(spans.length, 2, 'one span per app, nothing else')
})

// ------------------------------------------------------------------------------------------
// In-process: configuration resolution and errors (nothing started)
// ------------------------------------------------------------------------------------------
function configError (options: TelemetryOptions): TelemetryConfigError {
  try {
    resolveTelemetryConfig(options)
  } catch (err) {
    if (err instanceof TelemetryConfigError) return err
    throw err
  }
  throw new Error('expected a TelemetryConfigError')
}

t.test('defaults', async (t) => {
  const c = resolveTelemetryConfig({ env: {} })
  t.same(c, {
    disabled: false,
    exporters: ['otlp'],
    otlp: { protocol: 'http/protobuf', url: 'http://localhost:4318/v1/traces' },
    jaeger: undefined,
    sampler: { name: 'parentbased_always_on' },
    batch: {},
    serviceName: undefined,
    serviceVersion: undefined
  })
  t.same(resolveTelemetryConfig({ env: { OTEL_TRACES_EXPORTER: 'jaeger' } }).jaeger, { transport: 'udp', host: 'localhost', port: 6832 })
  t.equal(resolveTelemetryConfig({ env: { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' } }).otlp?.url, 'http://localhost:4317')
})

t.test('env is read', async (t) => {
  const c = resolveTelemetryConfig({
    env: {
      OTEL_TRACES_EXPORTER: 'otlp, console',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example:4318/',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_SERVICE_NAME: 'from-env'
    }
  })
  t.same(c.exporters, ['otlp', 'console'])
  t.same(c.otlp, { protocol: 'http/json', url: 'https://collector.example:4318/v1/traces' })
  t.same(c.sampler, { name: 'parentbased_traceidratio', ratio: 0.25 })
  t.equal(c.serviceName, 'from-env')
  t.equal(resolveTelemetryConfig({ env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://h:1/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://other:2' } }).otlp?.url,
    'http://h:1/custom', 'the traces-specific endpoint is used as is and wins')
  t.same(resolveTelemetryConfig({ env: { OTEL_TRACES_EXPORTER: 'none' } }).exporters, [])
  t.equal(resolveTelemetryConfig({ env: { OTEL_SDK_DISABLED: 'TRUE' } }).disabled, true)
  t.same(resolveTelemetryConfig({ env: { OTEL_TRACES_SAMPLER: 'traceidratio' } }).sampler, { name: 'traceidratio', ratio: 1 }, 'missing arg: ratio 1')
  t.same(resolveTelemetryConfig({
    env: { OTEL_BSP_SCHEDULE_DELAY: '600000', OTEL_BSP_MAX_QUEUE_SIZE: '100', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '10', OTEL_BSP_EXPORT_TIMEOUT: '2000' },
    batch: { maxQueueSize: 50 }
  }).batch, { scheduledDelayMillis: 600000, maxQueueSize: 50, maxExportBatchSize: 10, exportTimeoutMillis: 2000 }, 'OTEL_BSP_*, each under its batch option')
})

t.test('options override env', async (t) => {
  const env = {
    OTEL_TRACES_EXPORTER: 'jaeger',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://from-env:4318',
    OTEL_EXPORTER_JAEGER_ENDPOINT: 'http://jaeger-env:14268/api/traces',
    OTEL_TRACES_SAMPLER: 'always_off',
    OTEL_TRACES_SAMPLER_ARG: 'garbage-is-ignored-when-overridden',
    OTEL_SDK_DISABLED: 'true',
    OTEL_SERVICE_NAME: 'env-name'
  }
  const c = resolveTelemetryConfig({
    env,
    disabled: false,
    exporter: 'otlp',
    otlp: { endpoint: 'http://from-options:9999/v1/traces' },
    sampler: 'traceidratio',
    samplerArg: 0.5,
    serviceName: 'option-name'
  })
  t.equal(c.disabled, false)
  t.same(c.exporters, ['otlp'])
  t.equal(c.otlp?.url, 'http://from-options:9999/v1/traces')
  t.same(c.sampler, { name: 'traceidratio', ratio: 0.5 })
  t.equal(c.serviceName, 'option-name')
  t.same(resolveTelemetryConfig({ env, jaeger: { host: 'agent', port: 7000 }, exporter: 'jaeger' }).jaeger,
    { transport: 'udp', host: 'agent', port: 7000 }, 'jaeger host/port options win over OTEL_EXPORTER_JAEGER_ENDPOINT')
  t.same(resolveTelemetryConfig({ env, traceExporter: { export () {}, async shutdown () {} } }).exporters, ['custom'])
})

t.test('invalid configuration: one error naming the option / variable and the value', async (t) => {
  const cases: Array<[TelemetryOptions, RegExp]> = [
    [{ env: { OTEL_TRACES_EXPORTER: 'zipkin' } }, /OTEL_TRACES_EXPORTER="zipkin" is not a supported trace exporter \(expected one of otlp, jaeger, console, none\)/],
    [{ env: {}, exporter: 'prometheus' as never }, /options\.exporter="prometheus" is not a supported trace exporter/],
    [{ env: { OTEL_TRACES_EXPORTER: 'none,otlp' } }, /OTEL_TRACES_EXPORTER="none,otlp" combines "none" with other exporters/],
    [{ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' } }, /OTEL_EXPORTER_OTLP_ENDPOINT="localhost:4318" must be an http:\/\/ or https:\/\/ URL/],
    [{ env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://' } }, /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http:\/\/" is not a valid URL/],
    [{ env: {}, otlp: { endpoint: '::nope' } }, /options\.otlp\.endpoint="::nope" is not a valid URL/],
    [{ env: { OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' } }, /OTEL_EXPORTER_OTLP_PROTOCOL="thrift" is not a supported OTLP protocol/],
    [{ env: { OTEL_TRACES_EXPORTER: 'jaeger', OTEL_EXPORTER_JAEGER_ENDPOINT: 'udp://agent:6832' } }, /OTEL_EXPORTER_JAEGER_ENDPOINT="udp:\/\/agent:6832" must be an http:\/\/ or https:\/\/ URL/],
    [{ env: { OTEL_TRACES_EXPORTER: 'jaeger', OTEL_EXPORTER_JAEGER_AGENT_PORT: '70000' } }, /OTEL_EXPORTER_JAEGER_AGENT_PORT="70000" is not a valid port/],
    [{ env: {}, exporter: 'jaeger', jaeger: { port: 0 } }, /options\.jaeger\.port=0 is not a valid port/],
    [{ env: { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' } }, /OTEL_TRACES_SAMPLER_ARG="1\.5" must be a number between 0 and 1/],
    [{ env: { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' } }, /OTEL_TRACES_SAMPLER_ARG="half" must be a number between 0 and 1/],
    [{ env: {}, sampler: 'traceidratio', samplerArg: -0.1 }, /options\.samplerArg=-0\.1 must be a number between 0 and 1/],
    [{ env: { OTEL_TRACES_SAMPLER: 'jaeger_remote' } }, /OTEL_TRACES_SAMPLER="jaeger_remote" is not a supported sampler/],
    [{ env: {}, sampler: 'sometimes' as never }, /options\.sampler="sometimes" is not a supported sampler/],
    [{ env: { OTEL_SDK_DISABLED: 'yes' } }, /OTEL_SDK_DISABLED="yes" must be "true" or "false"/],
    [{ env: { OTEL_BSP_SCHEDULE_DELAY: 'soon' } }, /OTEL_BSP_SCHEDULE_DELAY="soon" must be a non-negative integer/],
    [{ env: {}, batch: { maxExportBatchSize: 0 } }, /options\.batch\.maxExportBatchSize=0 must be a positive integer/]
  ]
  for (const [options, expected] of cases) {
    const err = configError(options)
    t.match(err.message, expected, expected.source)
    t.match(err.message, /^fastify-observability: invalid telemetry configuration: /)
    t.equal(err.issues.length, 1)
    t.equal(err.code, 'FST_OBSERVABILITY_INVALID_TELEMETRY_CONFIG')
  }
  const both = configError({ env: { OTEL_TRACES_EXPORTER: 'bogus', OTEL_TRACES_SAMPLER: 'nope' } })
  t.equal(both.issues.length, 2, 'every problem reported in the one error')
  t.match(both.message, /OTEL_TRACES_EXPORTER="bogus".*; OTEL_TRACES_SAMPLER="nope"/)
  t.throws(() => startTelemetry({ env: { OTEL_TRACES_EXPORTER: 'bogus' } }), TelemetryConfigError, 'startTelemetry throws it too')
  t.equal(getTelemetryHandle(), undefined, 'and starts nothing')
})

// ------------------------------------------------------------------------------------------
// In-process: disabled handle, then one real start (custom exporter, no instrumentation)
// ------------------------------------------------------------------------------------------
t.test('disabled handle does nothing', async (t) => {
  const handle = startTelemetry({ env: { OTEL_SDK_DISABLED: 'true' } })
  t.equal(handle.enabled, false)
  t.equal(handle.sdk, undefined)
  t.equal(handle.shutdown(), handle.shutdown())
  await handle.shutdown()
  await handle.forceFlush()
  const span = trace.getTracer('t').startSpan('x')
  t.equal(span.isRecording(), false, 'no tracer provider registered')
  span.end()
  t.equal((globalThis as Record<symbol, unknown>)[TELEMETRY_HANDLE_SYMBOL], handle, 'published on the global symbol')
  t.equal(TELEMETRY_HANDLE_SYMBOL, Symbol.for('fastify-observability.telemetry'))
})

t.test('custom exporter, forceFlush, idempotent shutdown', async (t) => {
  const exported: ReadableSpan[] = []
  const batchSizes: number[] = []
  let exporterShutdowns = 0
  const exporter: SpanExporter = {
    export (spans, done) {
      exported.push(...spans)
      batchSizes.push(spans.length)
      done({ code: ExportResultCode.SUCCESS })
    },
    async shutdown () { exporterShutdowns++ }
  }
  const handle = startTelemetry({
    env: { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '2' },
    serviceName: 'in-process',
    serviceVersion: '0.0.1',
    traceExporter: exporter,
    instrumentations: false,
    batch: { scheduledDelayMillis: 600000 }
  })
  t.teardown(() => {
    trace.disable()
    context.disable()
    propagation.disable()
  })
  t.equal(handle.enabled, true)
  t.ok(handle.sdk, 'NodeSDK exposed')
  t.same(handle.config.exporters, ['custom'])
  t.equal(getTelemetryHandle(), handle)

  let warning: Error | undefined
  let onWarning: (w: Error) => void = () => {}
  // process.emitWarning emits on the next tick: wait for the event itself, with a deadline.
  const warned = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no process warning within 5000 ms')), 5000)
    onWarning = (w: Error): void => { warning = w; clearTimeout(timer); resolve() }
  })
  process.on('warning', onWarning)
  const again = startTelemetry({ env: {}, exporter: 'console' })
  await warned
  process.off('warning', onWarning)
  t.equal(again, handle, 'a second start returns the running handle')
  t.match(warning, { code: 'FST_OBSERVABILITY_TELEMETRY_ALREADY_STARTED' })

  const tracer = trace.getTracer('in-process-test')
  const first = tracer.startSpan('first')
  t.equal(first.isRecording(), true)
  first.end()
  t.equal(exported.length, 0, 'batched')
  await handle.forceFlush()
  t.same(exported.map(s => s.name), ['first'], 'forceFlush exported it')
  t.equal(exported[0].resource.attributes['service.name'], 'in-process')
  t.equal(exported[0].resource.attributes['service.version'], '0.0.1')

  tracer.startSpan('second').end()
  tracer.startSpan('third').end()
  tracer.startSpan('fourth').end()
  const p1 = handle.shutdown()
  const p2 = handle.shutdown()
  t.equal(p1, p2, 'the same promise')
  await p1
  await handle.shutdown()
  t.equal(handle.isShutdown, true)
  t.same(exported.map(s => s.name), ['first', 'second', 'third', 'fourth'], 'shutdown flushed the pending spans')
  t.same(batchSizes, [1, 2, 1], 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2 reached the batch processor')
  t.equal(exporterShutdowns, 1, 'exporter shut down once')
  tracer.startSpan('late').end()
  await handle.forceFlush()
  t.equal(exported.length, 4, 'nothing exported after shutdown')
})
