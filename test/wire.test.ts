// The plugin inside real Fastify apps (test/fixtures/fastify-app.{mjs,cjs}) started as child
// processes with the preloads (`--import ./dist/register.mjs`, `--require ./dist/register.js`),
// exporting to the in-test OTLP and Jaeger receivers, which decode the real protobuf / Thrift.
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { resolve } from 'node:path'
import { startOtlpReceiver } from './helpers/otlp-receiver'
import type { ReceivedSpan } from './helpers/otlp-receiver'
import { startJaegerReceiver } from './helpers/jaeger-receiver'

const ROOT = resolve(__dirname, '..')
const SERVER = 1
const CLIENT = 2
const STATUS_UNSET = 0
const STATUS_ERROR = 2
const HTTP_SCOPE = '@opentelemetry/instrumentation-http'

/** One W3C traceparent per request, so every request's spans are found by trace id. */
function traceparent (n: number): { traceId: string, parentId: string, header: string } {
  const traceId = `4bf92f3577b34da6a3ce929d0e0e${n.toString(16).padStart(4, '0')}`
  const parentId = `00f067aa0ba9${n.toString(16).padStart(4, '0')}`
  return { traceId, parentId, header: `00-${traceId}-${parentId}-01` }
}

// ------------------------------------------------------------------------------------------
// Child processes
// ------------------------------------------------------------------------------------------
interface App {
  child: ChildProcess
  ready: Promise<{ port: number, instrumentations: string[] | null }>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  stderr: () => string
  /** SIGTERM and wait for the exit. */
  stop: () => Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** The parent's env without OTEL_*, npm_package_* and tap's NODE_OPTIONS / coverage. */
function childEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('OTEL_') || k.startsWith('npm_package_') || k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE') continue
    if (k.startsWith('TAP') || k.startsWith('_TAPJS')) continue
    env[k] = v
  }
  // Only the shutdown flush delivers: nothing is exported on a timer during a test.
  return { ...env, OTEL_LOG_LEVEL: 'error', OTEL_BSP_SCHEDULE_DELAY: '600000', ...extra }
}

function startApp (t: Test, fixture: 'mjs' | 'cjs', preload: boolean, env: Record<string, string>): App {
  const args = preload
    ? fixture === 'mjs' ? ['--import', './dist/register.mjs'] : ['--require', './dist/register.js']
    : []
  const child = spawn(process.execPath, [...args, `test/fixtures/fastify-app.${fixture}`], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stderr!.on('data', (d: Buffer) => { err += String(d) })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    child.on('exit', (code, signal) => resolve({ code, signal }))
  })
  const ready = new Promise<{ port: number, instrumentations: string[] | null }>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += String(d)
      const line = out.split('\n').find(l => l.startsWith('{"port":'))
      if (line !== undefined) resolve(JSON.parse(line))
    })
    void exited.then(({ code, signal }) => reject(new Error(`app exited (code ${code}, signal ${signal}) before listening; stderr:\n${err}`)))
  })
  ready.catch(() => {}) // observed by the tests
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  return {
    child,
    ready,
    exited,
    stderr: () => err,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      return exited
    }
  }
}

function get (port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(body) }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** Sends the request, then destroys the socket after `ms` (before any response). */
function abortAfter (port: number, path: string, headers: Record<string, string>, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, () => resolve('unexpected response'))
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
    req.end()
    setTimeout(() => req.destroy(), ms)
  })
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

const inTrace = (spans: ReceivedSpan[], traceId: string): ReceivedSpan[] => spans.filter(s => s.traceId === traceId)
const servers = (spans: ReceivedSpan[]): ReceivedSpan[] => spans.filter(s => s.kind === SERVER)

function describeSpans (spans: ReceivedSpan[]): string {
  return spans.map(s => `${s.kindName} ${JSON.stringify(s.name)} scope=${s.scope.name} route=${String(s.attributes['http.route'])} trace=${s.traceId.slice(-4)}`).join('\n')
}

// ------------------------------------------------------------------------------------------
// 1. OTLP, ESM app
// ------------------------------------------------------------------------------------------
t.test('OTLP http/protobuf, ESM app with --import: one enriched SERVER span per request', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'mjs', true, {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
    OTEL_SERVICE_NAME: 'wire-esm'
  })
  const { port } = await app.ready

  const users = [traceparent(1), traceparent(2)]
  const fail = traceparent(3)
  const quiet = traceparent(4)
  const statik = traceparent(5)
  for (const [i, tp] of users.entries()) {
    const res = await get(port, `/api/users/${41 + i}`, { traceparent: tp.header })
    t.same(res, { status: 200, json: { id: String(41 + i), traceId: tp.traceId } }, 'handler runs in the incoming trace')
  }
  t.equal((await get(port, '/api/fail', { traceparent: fail.header })).status, 500)
  t.same(await get(port, '/api/quiet', { traceparent: quiet.header }), { status: 200, json: { quiet: true } })
  t.same(await get(port, '/static/x', { traceparent: statik.header }), { status: 200, json: { file: 'x' } })
  await sleep(200)
  t.equal(rx.requests.length, 0, 'nothing exported before the shutdown (batch delay 600 s)')

  t.same(await app.stop(), { code: null, signal: 'SIGTERM' }, 'the preload flushed, then re-raised SIGTERM')
  const spans = await rx.waitFor(s => servers(s).length >= 5, 5000)
  await sleep(100)
  t.same(rx.errors, [])
  t.comment(`received:\n${describeSpans(rx.spans)}`)

  for (const [i, tp] of users.entries()) {
    const mine = servers(inTrace(spans, tp.traceId))
    t.equal(mine.length, 1, `exactly one SERVER span for /api/users/${41 + i} (the plugin enriched instrumentation-http's span)`)
    const s = mine[0]
    if (s === undefined) continue
    t.equal(s.name, 'GET /api/users/:id')
    t.equal(s.kindName, 'SERVER')
    t.equal(s.scope.name, HTTP_SCOPE, 'the span instrumentation-http started')
    t.equal(s.traceId, tp.traceId, 'incoming trace id kept')
    t.equal(s.parentSpanId, tp.parentId, 'parent = the traceparent\'s span id')
    t.match(s.spanId, /^[0-9a-f]{16}$/)
    t.not(s.spanId, tp.parentId)
    t.equal(s.attributes['http.route'], '/api/users/:id')
    t.equal(s.attributes['http.request.method'], 'GET')
    t.equal(s.attributes['url.path'], `/api/users/${41 + i}`)
    t.equal(s.attributes['http.response.status_code'], 200)
    t.equal(s.attributes['server.port'], port)
    t.equal(s.status.code, STATUS_UNSET)
    t.ok(s.endTimeUnixNano > s.startTimeUnixNano, 'ended')
    t.equal(s.resource['service.name'], 'wire-esm')
  }

  const f = servers(inTrace(spans, fail.traceId))
  t.equal(f.length, 1, 'one SERVER span for /api/fail')
  const failSpan = f[0]
  t.equal(failSpan?.name, 'GET /api/fail')
  t.equal(failSpan?.parentSpanId, fail.parentId)
  t.equal(failSpan?.attributes['http.response.status_code'], 500)
  t.equal(failSpan?.status.code, STATUS_ERROR)
  // The plugin sets { ERROR, message: err.message } in onResponse, but instrumentation-http calls
  // setStatus({ code: ERROR }) again on the response's 'close', later: the message is lost.
  t.equal(failSpan?.status.message, '', 'status message overwritten by instrumentation-http (plugin sets the error message)')
  const exc = failSpan?.events.filter(e => e.name === 'exception') ?? []
  t.equal(exc.length, 1, 'one exception event')
  t.equal(exc[0]?.attributes['exception.message'], 'card 4242 declined')
  // The subclass does not set .name: both the SDK (exception.type = err.name) and the plugin
  // (error.type = err.name || constructor.name) report its inherited name, 'Error'.
  t.equal(exc[0]?.attributes['exception.type'], 'Error')
  t.match(String(exc[0]?.attributes['exception.stacktrace']), /card 4242 declined\n\s+at .*fastify-app\.mjs/, 'stack trace from the fixture')
  t.equal(failSpan?.attributes['error.type'], 'Error')

  // Routes the plugin does not trace: the plugin starts no span and does not touch
  // instrumentation-http's, which instrumentation-http starts before Fastify routes.
  for (const [path, tp] of [['/api/quiet', quiet], ['/static/x', statik]] as const) {
    const mine = inTrace(spans, tp.traceId)
    t.equal(mine.length, 1, `${path}: exactly one span, instrumentation-http's`)
    const s = mine[0]
    t.equal(s?.scope.name, HTTP_SCOPE, `${path}: from instrumentation-http, none from the plugin`)
    t.equal(s?.kindName, 'SERVER')
    t.equal(s?.name, 'GET', `${path}: not renamed with a route`)
    t.notOk(s !== undefined && 'http.route' in s.attributes, `${path}: no http.route`)
    t.equal(s?.attributes['url.path'], path)
    t.equal(s?.parentSpanId, tp.parentId, `${path}: still continues the incoming trace`)
  }
  t.equal(spans.filter(s => s.scope.name === 'fastify-observability').length, 0, 'no span of the plugin\'s own tracer (all borrowed)')
  t.equal(spans.length, 5, 'five requests, five spans, nothing else')
})

// ------------------------------------------------------------------------------------------
// 2. Jaeger HTTP collector, CJS app
// ------------------------------------------------------------------------------------------
t.test('Jaeger HTTP collector (Thrift), CJS app with --require', async (t) => {
  const rx = await startJaegerReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'cjs', true, {
    OTEL_TRACES_EXPORTER: 'jaeger',
    OTEL_EXPORTER_JAEGER_ENDPOINT: rx.endpoint,
    OTEL_SERVICE_NAME: 'wire-cjs'
  })
  const { port } = await app.ready
  const user = traceparent(11)
  const fail = traceparent(12)
  const quiet = traceparent(13)
  t.same(await get(port, '/api/users/7', { traceparent: user.header }), { status: 200, json: { id: '7', traceId: user.traceId } })
  t.equal((await get(port, '/api/fail', { traceparent: fail.header })).status, 500)
  t.equal((await get(port, '/api/quiet', { traceparent: quiet.header })).status, 200)
  t.same(await app.stop(), { code: null, signal: 'SIGTERM' })
  const spans = await rx.waitFor(s => servers(s).length >= 3, 5000)
  await sleep(100)
  t.same(rx.errors, [])
  t.comment(`received:\n${describeSpans(rx.spans)}`)
  t.ok(spans.every(s => s.transport === 'jaeger-http'), 'delivered to POST /api/traces')

  const u = inTrace(spans, user.traceId)
  t.equal(u.length, 1, 'one span for /api/users/7')
  const s = u[0]
  t.equal(s?.name, 'GET /api/users/:id', 'operationName')
  t.equal(s?.kindName, 'SERVER', 'span.kind tag = server')
  t.equal(s?.traceId, user.traceId, 'incoming trace id kept (traceIdHigh + traceIdLow)')
  t.equal(s?.parentSpanId, user.parentId, 'parentSpanId = the traceparent\'s')
  t.equal(s?.attributes['http.route'], '/api/users/:id')
  t.equal(s?.attributes['http.request.method'], 'GET')
  t.equal(s?.attributes['url.path'], '/api/users/7')
  t.equal(s?.attributes['http.response.status_code'], 200, 'a LONG tag')
  t.equal(s?.attributes['server.port'], port)
  t.notOk(s !== undefined && 'error' in s.attributes, 'no error tag on a 200')
  t.equal(s?.status.code, STATUS_UNSET)
  t.equal(s?.scope.name, HTTP_SCOPE, 'otel.library.name')
  t.equal(s?.resource['service.name'], 'wire-cjs', 'process.serviceName')

  const f = inTrace(spans, fail.traceId)
  t.equal(f.length, 1, 'one span for /api/fail')
  const e = f[0]
  t.equal(e?.name, 'GET /api/fail')
  t.equal(e?.parentSpanId, fail.parentId)
  t.equal(e?.attributes.error, true, 'error tag')
  t.equal(e?.status.code, STATUS_ERROR, 'otel.status_code = ERROR')
  t.equal(e?.status.message, '', 'no otel.status_description: the plugin\'s message is overwritten (see the OTLP test)')
  t.equal(e?.attributes['error.type'], 'Error')
  t.equal(e?.attributes['http.response.status_code'], 500)
  const log = e?.events.find(ev => ev.name === 'exception')
  t.equal(log?.attributes['exception.message'], 'card 4242 declined', 'exception log')
  t.match(String(log?.attributes['exception.stacktrace']), /fastify-app\.cjs/)

  const q = inTrace(spans, quiet.traceId)
  t.equal(q.length, 1, '/api/quiet: instrumentation-http\'s span only')
  t.equal(q[0]?.name, 'GET', '/api/quiet: not renamed')
  t.notOk(q[0] !== undefined && 'http.route' in q[0].attributes, '/api/quiet: no http.route tag')
  t.equal(spans.length, 3)
})

// ------------------------------------------------------------------------------------------
// 3. Two apps, one trace
// ------------------------------------------------------------------------------------------
t.test('app A calls app B: one trace, A SERVER -> A CLIENT -> B SERVER', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const b = startApp(t, 'cjs', true, { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'wire-b' })
  const { port: portB } = await b.ready
  const a = startApp(t, 'mjs', true, {
    OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
    OTEL_SERVICE_NAME: 'wire-a',
    DOWNSTREAM_URL: `http://127.0.0.1:${portB}/api/users/7`
  })
  const { port: portA, instrumentations } = await a.ready
  t.ok(instrumentations?.includes('@opentelemetry/instrumentation-undici'), 'instrumentation-undici is in the default set')

  // B's handler answers with the trace id it ran in.
  const call = async (query: string, headers: Record<string, string> = {}): Promise<string> => {
    const res = await get(portA, `/api/call${query}`, headers)
    t.equal(res.status, 200, `/api/call${query}`)
    const body = res.json.body as { id: string, traceId: string }
    t.equal(body.id, '7', 'B answered')
    return body.traceId
  }
  const viaHttp = await call('')
  const viaFetch = await call('?client=fetch')
  const namedTp = traceparent(41)
  const viaNamed = await call('?client=named', { traceparent: namedTp.header })

  t.same(await a.stop(), { code: null, signal: 'SIGTERM' })
  t.same(await b.stop(), { code: null, signal: 'SIGTERM' })
  await rx.waitFor(s => s.length >= 8, 5000)
  await sleep(100)
  t.same(rx.errors, [])
  t.comment(`received:\n${describeSpans(rx.spans)}`)

  for (const [label, traceId, scope] of [
    ['http.get', viaHttp, HTTP_SCOPE],
    ['fetch', viaFetch, '@opentelemetry/instrumentation-undici']
  ] as const) {
    t.match(traceId, /^[0-9a-f]{32}$/, `${label}: B's handler saw a trace id`)
    const trace = inTrace(rx.spans, traceId)
    t.equal(trace.length, 3, `${label}: three spans in the trace B's handler ran in`)
    const aServer = trace.find(s => s.kind === SERVER && s.resource['service.name'] === 'wire-a')
    const aClient = trace.find(s => s.kind === CLIENT)
    const bServer = trace.find(s => s.kind === SERVER && s.resource['service.name'] === 'wire-b')
    t.equal(aServer?.name, 'GET /api/call', `${label}: A's SERVER span`)
    t.equal(aServer?.parentSpanId, '', `${label}: A's SERVER span is the root`)
    t.equal(aClient?.resource['service.name'], 'wire-a', `${label}: the CLIENT span is A's`)
    t.equal(aClient?.scope.name, scope, `${label}: CLIENT span from ${scope}`)
    t.equal(aClient?.parentSpanId, aServer?.spanId, `${label}: A CLIENT is the child of A SERVER`)
    t.equal(aClient?.attributes['server.port'], portB, `${label}: CLIENT span targets B`)
    t.equal(aClient?.attributes['http.response.status_code'], 200)
    t.equal(bServer?.name, 'GET /api/users/:id', `${label}: B's SERVER span`)
    t.equal(bServer?.parentSpanId, aClient?.spanId, `${label}: B SERVER is the child of A CLIENT (traceparent propagated)`)
    t.not(aServer?.resource['service.name'], bServer?.resource['service.name'], `${label}: two services`)
  }
  t.not(viaHttp, viaFetch, 'two calls, two traces')

  // KNOWN GAP of the --import preload: `import { get } from 'node:http'` in an ESM app that
  // imports fastify (CJS, which requires node:http) first is NOT instrumented. The CJS require
  // patches http's exports first, instrumentation-http's "already patched" guard then skips the
  // ESM namespace, and the ESM named binding keeps the original get: no CLIENT span, no
  // traceparent sent, so B starts a new trace. (http.get through the module object is patched.)
  // When the preload is fixed this block must flip to the same assertions as above.
  const aNamed = inTrace(rx.spans, namedTp.traceId)
  t.equal(aNamed.length, 1, 'named get: only A\'s SERVER span in A\'s trace (no CLIENT span)')
  t.equal(aNamed[0]?.name, 'GET /api/call')
  t.not(viaNamed, namedTp.traceId, 'named get: B ran in another trace (no traceparent sent)')
  const bNamed = inTrace(rx.spans, viaNamed)
  t.equal(bNamed.length, 1, 'named get: B\'s SERVER span alone in its trace')
  t.equal(bNamed[0]?.resource['service.name'], 'wire-b')
  t.equal(bNamed[0]?.parentSpanId, '', 'named get: B\'s SERVER span is a root')
  t.equal(rx.spans.length, 8, 'nothing else exported')
})

// ------------------------------------------------------------------------------------------
// 4. Client abort
// ------------------------------------------------------------------------------------------
t.test('client aborts /api/slow: the SERVER span is still ended and exported', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'mjs', true, { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'wire-abort' })
  const { port } = await app.ready
  const tp = traceparent(21)
  const started = Date.now()
  t.equal(await abortAfter(port, '/api/slow', { traceparent: tp.header }, 200), 'ECONNRESET', 'the client saw its own abort')
  // The handler is still waiting for its 2 s timer: let it finish before shutting down.
  await sleep(Math.max(0, 2300 - (Date.now() - started)))
  t.same(await app.stop(), { code: null, signal: 'SIGTERM' })
  const spans = await rx.waitFor(s => s.length >= 1, 5000)
  await sleep(100)
  t.comment(`received:\n${describeSpans(rx.spans)}`)
  const mine = inTrace(spans, tp.traceId)
  t.equal(mine.length, 1, 'one span for the aborted request')
  const s = mine[0]
  t.equal(s?.kindName, 'SERVER')
  t.equal(s?.scope.name, HTTP_SCOPE)
  t.equal(s?.name, 'GET /api/slow', 'named by the plugin before the abort')
  t.equal(s?.attributes['http.route'], '/api/slow')
  t.equal(s?.parentSpanId, tp.parentId)
  const ms = s === undefined ? -1 : Number(s.endTimeUnixNano - s.startTimeUnixNano) / 1e6
  t.ok(ms >= 150 && ms < 1500, `ended when the socket closed (~200 ms), not when the handler finished (${ms.toFixed(0)} ms)`)
  // instrumentation-http ends the span on the response's 'close' and records the status code the
  // response object holds; nothing was sent, so that is Node's default 200. That 'close' comes
  // before Fastify's onRequestAbort hook (the span no longer records there), and the plugin's
  // abort() returns early for borrowed spans anyway: no error.type, no event.
  t.equal(s?.attributes['http.response.status_code'], 200, 'recorded status: the never-sent default 200')
  t.equal(s?.status.code, STATUS_UNSET, 'status UNSET')
  t.notOk(s !== undefined && 'error.type' in s.attributes, 'no error.type on the borrowed span')
  t.same(s?.events.map(e => e.name), [], 'no abort event on the borrowed span')
})

// ------------------------------------------------------------------------------------------
// 5. No SDK
// ------------------------------------------------------------------------------------------
t.test('without a preload the apps work and nothing is exported', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const env = { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'wire-nosdk' }
  const apps = [startApp(t, 'mjs', false, env), startApp(t, 'cjs', false, env)]
  for (const app of apps) {
    const { port, instrumentations } = await app.ready
    t.equal(instrumentations, null, 'no telemetry handle')
    const tp = traceparent(31)
    t.same(await get(port, '/api/users/5', { traceparent: tp.header }), { status: 200, json: { id: '5', traceId: null } },
      '200, and no active span in the handler (the global API is a no-op)')
    t.equal((await get(port, '/api/fail')).status, 500)
    t.equal((await get(port, '/static/x')).status, 200)
  }
  for (const app of apps) t.same(await app.stop(), { code: null, signal: 'SIGTERM' }, 'ended by SIGTERM')
  await sleep(300)
  t.equal(rx.requests.length, 0, 'no export request reached the receiver')
  t.equal(rx.spans.length, 0)
})
