// The plugin inside real Fastify apps (test/fixtures/fastify-app.{mjs,cjs}) started as child
// processes with the preloads (`--import ./dist/register.mjs`, `--require ./dist/register.js`),
// exporting to the in-test OTLP and Jaeger receivers, which decode the real protobuf / Thrift.
//
// The preloads turn instrumentation-http's incoming spans off: the plugin starts every request's
// SERVER span itself (scope 'fastify-observability'), so routes it does not trace have no span at
// all; outgoing calls still get CLIENT spans from instrumentation-http / instrumentation-undici.
import t from 'tap'
import type { Test } from 'tap'
import { request } from 'node:http'
import { startOtlpReceiver } from './helpers/otlp-receiver'
import type { ReceivedSpan } from './helpers/otlp-receiver'
import { startJaegerReceiver } from './helpers/jaeger-receiver'
import { childEnv, getText, startNodeApp, stdoutEvent } from './helpers/child'
import type { NodeApp } from './helpers/child'
import { sampleValue } from './helpers/metrics-text'

const SERVER = 1
const CLIENT = 2
const STATUS_UNSET = 0
const STATUS_ERROR = 2
const HTTP_SCOPE = '@opentelemetry/instrumentation-http'
const PLUGIN_SCOPE = 'fastify-observability'

/** One W3C traceparent per request, so every request's spans are found by trace id. */
function traceparent (n: number): { traceId: string, parentId: string, header: string } {
  const traceId = `4bf92f3577b34da6a3ce929d0e0e${n.toString(16).padStart(4, '0')}`
  const parentId = `00f067aa0ba9${n.toString(16).padStart(4, '0')}`
  return { traceId, parentId, header: `00-${traceId}-${parentId}-01` }
}

// ------------------------------------------------------------------------------------------
// Child processes
// ------------------------------------------------------------------------------------------
type App = NodeApp<{ port: number, instrumentations: string[] | null }>

/** Only the shutdown flush delivers: nothing is exported on a timer during a test. */
function appEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  return childEnv({ OTEL_BSP_SCHEDULE_DELAY: '600000', ...extra })
}

function startApp (t: Test, fixture: 'mjs' | 'cjs', preload: boolean, env: Record<string, string>): App {
  const args = preload
    ? fixture === 'mjs' ? ['--import', './dist/register.mjs'] : ['--require', './dist/register.js']
    : []
  return startNodeApp(t, [...args, `test/fixtures/fastify-app.${fixture}`], appEnv(env))
}

async function get (port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  const { status, body } = await getText(port, path, headers)
  return { status, json: JSON.parse(body) }
}

/** The duration histogram's _count for `route` in a Prometheus text scrape. */
function durationCount (scrape: string, route: string): number | undefined {
  return sampleValue(scrape, 'http_server_request_duration_seconds_count', { http_route: route })
}

/** The app's http_server_active_requests{http_request_method="GET"} (the scrape is not counted). */
async function activeGets (port: number): Promise<number | undefined> {
  return sampleValue((await getText(port, '/metrics')).body, 'http_server_active_requests', { http_request_method: 'GET' })
}

/** Polls `check` until it holds; fails after the deadline (a wait for an event, not a fixed delay). */
async function until (what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/**
 * Sends the request and destroys the socket once the app has it in flight (its active-requests
 * gauge reads 1), before any response. Resolves with the client's error code.
 */
async function abortInFlight (port: number, path: string, headers: Record<string, string>): Promise<string> {
  let settle: (v: string) => void = () => {}
  const outcome = new Promise<string>(resolve => { settle = resolve })
  const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, () => settle('unexpected response'))
  req.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? err.message))
  req.end()
  await until(`${path} in flight`, async () => (await activeGets(port)) === 1)
  req.destroy()
  return await outcome
}

const inTrace = (spans: ReceivedSpan[], traceId: string): ReceivedSpan[] => spans.filter(s => s.traceId === traceId)
const servers = (spans: ReceivedSpan[]): ReceivedSpan[] => spans.filter(s => s.kind === SERVER)

function describeSpans (spans: ReceivedSpan[]): string {
  return spans.map(s => `${s.kindName} ${JSON.stringify(s.name)} scope=${s.scope.name} route=${String(s.attributes['http.route'])} trace=${s.traceId.slice(-4)}`).join('\n')
}

// ------------------------------------------------------------------------------------------
// 1. OTLP, ESM app
// ------------------------------------------------------------------------------------------
t.test('OTLP http/protobuf, ESM app with --import: the plugin\'s SERVER span per traced request, none for the others', async (t) => {
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
  const scrapeTp = traceparent(6)
  for (const [i, tp] of users.entries()) {
    const res = await get(port, `/api/users/${41 + i}`, { traceparent: tp.header })
    t.same(res, { status: 200, json: { id: String(41 + i), traceId: tp.traceId } }, 'handler runs in the incoming trace')
  }
  t.equal((await get(port, '/api/fail', { traceparent: fail.header })).status, 500)
  t.same(await get(port, '/api/quiet', { traceparent: quiet.header }), { status: 200, json: { quiet: true } })
  t.same(await get(port, '/static/x', { traceparent: statik.header }), { status: 200, json: { file: 'x' } })
  const scrape = await getText(port, '/metrics', { traceparent: scrapeTp.header })
  t.equal(scrape.status, 200, '/metrics scraped')
  t.equal(durationCount(scrape.body, '/api/users/:id'), 2, 'scrape: both /api/users requests measured')
  t.equal(durationCount(scrape.body, '/api/quiet'), 1, 'scrape: /api/quiet still measured (only tracing: false)')
  t.equal(durationCount(scrape.body, '/static/*'), undefined, 'scrape: the excluded /static/* not measured')
  t.equal(durationCount(scrape.body, '/metrics'), undefined, 'scrape: the scrape does not measure itself')
  t.equal(rx.requests.length, 0, 'nothing exported before the shutdown (batch delay 600 s)')

  const stopping = Date.now()
  t.same(await app.stop(), { code: null, signal: 'SIGTERM' }, 'the preload flushed, then re-raised SIGTERM')
  const spans = await rx.waitFor(s => servers(s).length >= 3, 5000)
  await rx.settled() // the app has exited: everything it sent is recorded
  t.ok(rx.requests.every(r => r.receivedAt >= stopping), 'every export request arrived after the SIGTERM (none during the run)')
  t.same(rx.errors, [])
  t.comment(`received:\n${describeSpans(rx.spans)}`)

  for (const [i, tp] of users.entries()) {
    const mine = inTrace(spans, tp.traceId)
    t.equal(mine.length, 1, `exactly one span for /api/users/${41 + i}`)
    const s = mine[0]
    if (s === undefined) continue
    t.equal(s.name, 'GET /api/users/:id')
    t.equal(s.kindName, 'SERVER')
    t.equal(s.scope.name, PLUGIN_SCOPE, 'started by the plugin, not instrumentation-http')
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

  const f = inTrace(spans, fail.traceId)
  t.equal(f.length, 1, 'one span for /api/fail')
  const failSpan = f[0]
  t.equal(failSpan?.kindName, 'SERVER')
  t.equal(failSpan?.scope.name, PLUGIN_SCOPE)
  t.equal(failSpan?.name, 'GET /api/fail')
  t.equal(failSpan?.parentSpanId, fail.parentId)
  t.equal(failSpan?.attributes['http.response.status_code'], 500)
  t.equal(failSpan?.status.code, STATUS_ERROR)
  t.equal(failSpan?.status.message, 'card 4242 declined', 'status message = the thrown error\'s message (kept: nobody overwrites it)')
  t.equal(failSpan?.attributes['error.type'], 'PaymentDeclinedError', 'error.type = the error\'s class name')
  const exc = failSpan?.events.filter(e => e.name === 'exception') ?? []
  t.equal(exc.length, 1, 'one exception event')
  t.equal(exc[0]?.attributes['exception.message'], 'card 4242 declined')
  // The SDK's recordException reports err.name: the subclass does not set it, so it inherits 'Error'.
  t.equal(exc[0]?.attributes['exception.type'], 'Error', 'exception.type from the SDK = err.name')
  t.match(String(exc[0]?.attributes['exception.stacktrace']), /card 4242 declined\n\s+at .*fastify-app\.mjs/, 'stack trace from the fixture')

  // Routes the plugin does not trace, and the scrape: no span at all (instrumentation-http no
  // longer starts SERVER spans, and the plugin starts none for them).
  for (const [path, tp] of [['/api/quiet', quiet], ['/static/x', statik], ['/metrics', scrapeTp]] as const) {
    t.same(inTrace(spans, tp.traceId), [], `${path}: no span in its trace`)
    t.notOk(spans.some(s => s.attributes['url.path'] === path), `${path}: no span with its url.path`)
  }
  t.equal(spans.filter(s => s.name === 'GET').length, 0, 'no bare "GET" span (an unrouted instrumentation-http span)')
  t.equal(spans.filter(s => s.scope.name === HTTP_SCOPE).length, 0, 'no span from instrumentation-http')
  t.equal(spans.length, 3, 'three traced requests, three spans, nothing else')
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
  const spans = await rx.waitFor(s => servers(s).length >= 2, 5000)
  await rx.settled()
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
  t.equal(s?.scope.name, PLUGIN_SCOPE, 'otel.library.name')
  t.equal(s?.resource['service.name'], 'wire-cjs', 'process.serviceName')

  const f = inTrace(spans, fail.traceId)
  t.equal(f.length, 1, 'one span for /api/fail')
  const e = f[0]
  t.equal(e?.name, 'GET /api/fail')
  t.equal(e?.scope.name, PLUGIN_SCOPE, 'otel.library.name')
  t.equal(e?.parentSpanId, fail.parentId)
  t.equal(e?.attributes.error, true, 'error tag')
  t.equal(e?.status.code, STATUS_ERROR, 'otel.status_code = ERROR')
  t.equal(e?.status.message, 'card 4242 declined', 'otel.status_description = the thrown error\'s message')
  t.equal(e?.attributes['error.type'], 'PaymentDeclinedError', 'error.type tag = the error\'s class name')
  t.equal(e?.attributes['http.response.status_code'], 500)
  const log = e?.events.find(ev => ev.name === 'exception')
  t.equal(log?.attributes['exception.message'], 'card 4242 declined', 'exception log')
  t.match(String(log?.attributes['exception.stacktrace']), /fastify-app\.cjs/)

  t.same(inTrace(spans, quiet.traceId), [], '/api/quiet: no span at all')
  t.notOk(spans.some(x => x.attributes['url.path'] === '/api/quiet'), '/api/quiet: no span with its url.path')
  t.equal(spans.length, 2, 'two traced requests, two spans')
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
  await rx.waitFor(s => s.length >= 9, 5000)
  await rx.settled()
  t.same(rx.errors, [])
  t.comment(`received:\n${describeSpans(rx.spans)}`)

  // http.get through the module object; global fetch (undici); and `import { get } from
  // 'node:http'`, which the --import preload now instruments even though fastify (CJS) required
  // node:http first. The last one continues an incoming trace.
  for (const [label, traceId, scope, parent] of [
    ['http.get', viaHttp, HTTP_SCOPE, ''],
    ['fetch', viaFetch, '@opentelemetry/instrumentation-undici', ''],
    ['named get', viaNamed, HTTP_SCOPE, namedTp.parentId]
  ] as const) {
    t.match(traceId, /^[0-9a-f]{32}$/, `${label}: B's handler saw a trace id`)
    const trace = inTrace(rx.spans, traceId)
    t.equal(trace.length, 3, `${label}: three spans in the trace B's handler ran in`)
    const aServer = trace.find(s => s.kind === SERVER && s.resource['service.name'] === 'wire-a')
    const aClient = trace.find(s => s.kind === CLIENT)
    const bServer = trace.find(s => s.kind === SERVER && s.resource['service.name'] === 'wire-b')
    t.equal(aServer?.name, 'GET /api/call', `${label}: A's SERVER span`)
    t.equal(aServer?.scope.name, PLUGIN_SCOPE, `${label}: A's SERVER span from the plugin`)
    t.equal(aServer?.parentSpanId, parent, parent === '' ? `${label}: A's SERVER span is the root` : `${label}: A's SERVER span continues the incoming trace`)
    t.equal(aClient?.resource['service.name'], 'wire-a', `${label}: the CLIENT span is A's`)
    t.equal(aClient?.scope.name, scope, `${label}: CLIENT span from ${scope}`)
    t.equal(aClient?.parentSpanId, aServer?.spanId, `${label}: A CLIENT is the child of A SERVER`)
    t.equal(aClient?.attributes['server.port'], portB, `${label}: CLIENT span targets B`)
    t.equal(aClient?.attributes['http.response.status_code'], 200)
    t.equal(bServer?.name, 'GET /api/users/:id', `${label}: B's SERVER span`)
    t.equal(bServer?.scope.name, PLUGIN_SCOPE, `${label}: B's SERVER span from the plugin`)
    t.equal(bServer?.parentSpanId, aClient?.spanId, `${label}: B SERVER is the child of A CLIENT (traceparent propagated)`)
    t.not(aServer?.resource['service.name'], bServer?.resource['service.name'], `${label}: two services`)
  }
  t.equal(viaNamed, namedTp.traceId, 'named get: B ran in the trace A received')
  t.not(viaHttp, viaFetch, 'two calls, two traces')
  t.equal(rx.spans.length, 9, 'nothing else exported')
})

// ------------------------------------------------------------------------------------------
// 4. Client abort
// ------------------------------------------------------------------------------------------
t.test('client aborts /api/slow: the plugin ends its SERVER span at the abort, marked aborted', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startApp(t, 'mjs', true, { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SERVICE_NAME: 'wire-abort' })
  const { port } = await app.ready
  const tp = traceparent(21)
  const replied = stdoutEvent<{ traceId: string, spanEnded: boolean }>(app, 'slowReplied')
  t.equal(await abortInFlight(port, '/api/slow', { traceparent: tp.header }), 'ECONNRESET', 'the client saw its own abort')
  await until('the abort seen by the app', async () => (await activeGets(port)) === 0)
  // The handler is still in its 2 s timer; its late reply is part of what is tested: the fixture
  // prints a line once Fastify has written it, and the app is stopped only after that.
  const late = await replied
  t.same(late, { traceId: tp.traceId, spanEnded: true }, 'when the handler answered, its request\'s span had already ended (at the abort)')
  t.same(await app.stop(), { code: null, signal: 'SIGTERM' })
  const spans = await rx.waitFor(s => s.length >= 1, 5000)
  await rx.settled()
  t.same(rx.errors, [])
  t.comment(`received:\n${describeSpans(rx.spans)}`)
  const mine = inTrace(spans, tp.traceId)
  t.equal(mine.length, 1, 'one span for the aborted request')
  const s = mine[0]
  t.equal(s?.kindName, 'SERVER')
  t.equal(s?.scope.name, PLUGIN_SCOPE, 'the plugin\'s span')
  t.equal(s?.name, 'GET /api/slow')
  t.equal(s?.attributes['http.route'], '/api/slow')
  t.equal(s?.parentSpanId, tp.parentId)
  // Ended before the handler answered (the fixture saw it ended, above), so not by the late reply;
  // the exported span is that one, ended once.
  t.ok(s !== undefined && s.endTimeUnixNano >= s.startTimeUnixNano, 'an ended span')
  t.equal(s?.attributes['error.type'], 'aborted', 'error.type = aborted')
  t.same(s?.events.map(e => e.name), ['connection closed before the response was sent'], 'an abort event')
  t.notOk(s !== undefined && 'http.response.status_code' in s.attributes, 'no response status code (nothing was sent; not the default 200)')
  t.equal(s?.status.code, STATUS_UNSET, 'status left UNSET (no response, no 5xx)')
  t.equal(spans.length, 1, 'nothing else (the late reply after the abort ends no second span)')
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
  await rx.settled() // both apps have exited: anything they sent is recorded
  t.equal(rx.requests.length, 0, 'no export request reached the receiver')
  t.equal(rx.spans.length, 0)
})
