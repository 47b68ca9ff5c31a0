// One request, one story: the span's ids in the duration histogram's exemplars, in the request's log
// lines, and back to the caller. A real SDK in memory, through the global OpenTelemetry API.
import t from 'tap'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor, TraceIdRatioBasedSampler, ParentBasedSampler } from '@opentelemetry/sdk-trace-base'
import { SpanKind } from '@opentelemetry/api'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import observability from '../lib/index'
import type { ObservabilityOptions } from '../lib/index'

const exporter = new InMemorySpanExporter()
// Root spans are sampled out (ratio 0); a sampled traceparent's children are sampled.
const provider = new NodeTracerProvider({ sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) }), spanProcessors: [new SimpleSpanProcessor(exporter)] })
provider.register()
t.teardown(() => provider.shutdown())

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c'
const PARENT_ID = 'b7ad6b7169203331'
const SAMPLED = `00-${TRACE_ID}-${PARENT_ID}-01`
const UNSAMPLED = `00-${TRACE_ID}-${PARENT_ID}-00`
const OPENMETRICS = 'application/openmetrics-text; version=1.0.0'

async function appWith (t: Tap.Test, options: ObservabilityOptions = {}, fastifyOptions = {}): Promise<FastifyInstance> {
  exporter.reset()
  const app = Fastify(fastifyOptions)
  t.teardown(() => app.close())
  await app.register(observability, { ...options, metrics: { defaultMetrics: false, buckets: [0.5, 10], ...options.metrics } })
  app.get('/api/users/:id', async () => ({ ok: true }))
  app.get('/api/other', async () => 'other')
  return app
}

function serverSpanId (): string {
  const spans = exporter.getFinishedSpans().filter(s => s.kind === SpanKind.SERVER)
  if (spans.length !== 1) throw new Error(`expected one SERVER span, got ${spans.length}`)
  return spans[0].spanContext().spanId
}

const bucketLines = (text: string, route: string): string[] =>
  text.split('\n').filter(l => l.startsWith('http_server_request_duration_seconds_bucket{') && l.includes(`http_route="${route}"`))

t.test('a sampled request is the exemplar of its bucket, in OpenMetrics only', async (t) => {
  const app = await appWith(t)
  const before = (await app.inject('/metrics')).body
  const sentAt = Date.now() / 1000
  await app.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
  const answeredAt = Date.now() / 1000
  const spanId = serverSpanId()
  await app.inject('/api/other') // a root span: sampled out, no exemplar

  const om = (await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })).body
  const lines = bucketLines(om, '/api/users/:id')
  t.equal(lines.length, 3, 'le 0.5, 10, +Inf')
  // Whichever bucket the request's duration fell in (the machine's speed decides, not the test):
  // that one carries the exemplar, and its value lies in that bucket.
  const carrying = lines.filter(l => l.includes(' # {'))
  t.equal(carrying.length, 1, `exactly one bucket carries the exemplar:\n${lines.join('\n')}`)
  const at = lines.findIndex(l => l.includes(' # {'))
  const m = / # \{trace_id="([0-9a-f]{32})",span_id="([0-9a-f]{16})"\} ([0-9.e-]+) ([0-9.]+)$/.exec(carrying[0] ?? '')
  t.ok(m, `the exemplar: ${carrying[0]}`)
  if (m === null) return
  t.equal(m[1], TRACE_ID, 'trace_id of the request')
  t.equal(m[2], spanId, 'span_id of its SERVER span')
  const le = [0.5, 10, Infinity]
  t.ok(Number(m[3]) > (at === 0 ? 0 : le[at - 1]) && Number(m[3]) <= le[at], `the observed duration (${m[3]} s) lies in its bucket (le ${le[at]})`)
  t.ok(Number(m[4]) >= sentAt - 1 && Number(m[4]) <= answeredAt + 1, `a timestamp in seconds, the wall clock while the request ran (±1 s for the offset read at the last scrape): ${m[4]}`)
  t.notMatch(bucketLines(om, '/api/other').join('\n'), /#/, 'a sampled-out request leaves none')

  const text = (await app.inject('/metrics')).body
  t.notMatch(text, /trace_id/, 'the Prometheus text format has none')
  t.equal(text.split('\n').filter(l => l.startsWith('# ')).join('\n'), before.split('\n').filter(l => l.startsWith('# ')).join('\n'))
})

t.test("the exemplar's timestamp follows the wall clock from the next scrape on", async (t) => {
  const app = await appWith(t)
  const stamp = async (): Promise<number> => {
    await app.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
    const om = (await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })).body
    return Number(/ ([0-9.]+)$/.exec(bucketLines(om, '/api/users/:id')[0])?.[1])
  }
  const before = Date.now() / 1000
  const first = await stamp()
  t.ok(first >= before - 1 && first <= Date.now() / 1000 + 1, `the wall clock (${first})`)
  // The wall clock is set an hour ahead (NTP after boot, a resumed VM): performance.now() does not follow.
  const realNow = Date.now
  Date.now = () => realNow() + 3_600_000
  t.teardown(() => { Date.now = realNow })
  await app.inject('/metrics') // a scrape reads the offset again
  const from = realNow() / 1000 + 3600
  const later = await stamp()
  const to = realNow() / 1000 + 3600
  t.ok(later >= from - 1 && later <= to + 1, `an hour later (${later - first} s): the shifted wall clock while the request ran`)
})

t.test('the latest sampled request wins', async (t) => {
  const app = await appWith(t)
  await app.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
  const second = '1af7651916cd43dd8448eb211c80319c'
  await app.inject({ url: '/api/users/2', headers: { traceparent: `00-${second}-${PARENT_ID}-01` } })
  const om = (await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })).body
  t.match(bucketLines(om, '/api/users/:id')[0], new RegExp(`trace_id="${second}"`))
  await app.inject({ url: '/api/users/3', headers: { traceparent: UNSAMPLED } })
  const after = (await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })).body
  t.match(bucketLines(after, '/api/users/:id')[0], / 3 # \{trace_id="1af7/, 'an unsampled request counts but keeps the exemplar')
})

t.test('exemplars: false, or tracing off: none', async (t) => {
  for (const options of [{ metrics: { exemplars: false } }, { tracing: false as const }]) {
    const app = await appWith(t, options)
    await app.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
    const om = (await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })).body
    t.equal(bucketLines(om, '/api/users/:id').length, 3)
    t.notMatch(om, /trace_id/, JSON.stringify(options))
  }
})

t.test('custom labels keep exemplars', async (t) => {
  const app = await appWith(t, { metrics: { customLabels: { tenant: () => 'acme' } } })
  await app.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
  const om = (await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })).body
  t.match(bucketLines(om, '/api/users/:id')[0], /tenant="acme".* # \{trace_id="0af7/)
})

// ------------------------------------------------------------------------------------------
// Log lines
// ------------------------------------------------------------------------------------------
async function loggedApp (t: Tap.Test, options: ObservabilityOptions = {}): Promise<{ app: FastifyInstance, lines: Array<Record<string, unknown>> }> {
  const lines: Array<Record<string, unknown>> = []
  const stream = { write (chunk: string) { lines.push(JSON.parse(chunk)) } }
  const app = await appWith(t, options, { logger: { level: 'info', stream } })
  app.get('/api/logs', async (request) => {
    request.log.info('in the handler')
    return 'logged'
  })
  app.get('/api/untraced', { config: { tracing: false } }, async (request) => {
    request.log.info('in the handler')
    return 'untraced'
  })
  return { app, lines }
}

const byMsg = (lines: Array<Record<string, unknown>>, msg: string): Array<Record<string, unknown>> => lines.filter(l => l.msg === msg)

t.test("a traced request's log lines carry its trace_id, span_id and trace_flags", async (t) => {
  const { app, lines } = await loggedApp(t)
  await app.inject({ url: '/api/logs', headers: { traceparent: SAMPLED } })
  const spanId = serverSpanId()
  const ids = { trace_id: TRACE_ID, span_id: spanId, trace_flags: '01' }
  t.match(byMsg(lines, 'in the handler'), [ids], "the handler's line")
  t.match(byMsg(lines, 'request completed'), [ids], "Fastify's request completed line")
  t.notOk('trace_id' in byMsg(lines, 'incoming request')[0], 'not the incoming request line: it is written before any hook runs')
  const raw = JSON.stringify(byMsg(lines, 'in the handler')[0])
  t.equal(raw.split('"trace_id"').length, 2, 'each key once')
})

t.test('untraced routes log no ids; a malformed traceparent logs a fresh root, never the header', async (t) => {
  const { app, lines } = await loggedApp(t)
  await app.inject({ url: '/api/untraced', headers: { traceparent: SAMPLED } })
  t.notOk(lines.some(l => 'trace_id' in l), 'no ids on an untraced route')
  lines.length = 0
  const hostile = '00-zzzz-not-a-trace-"}{'
  await app.inject({ url: '/api/logs', headers: { traceparent: hostile } })
  const [line] = byMsg(lines, 'in the handler')
  t.match(line, { trace_id: /^[0-9a-f]{32}$/, span_id: /^[0-9a-f]{16}$/, trace_flags: '00' }, 'a fresh root (sampled out by this test\'s sampler)')
  t.not(line.trace_id, TRACE_ID)
  t.notOk(JSON.stringify(lines).includes('zzzz'), 'the header text is logged nowhere')
})

t.test('logIds: false, or no logger: nothing bound', async (t) => {
  const { app, lines } = await loggedApp(t, { tracing: { logIds: false } })
  await app.inject({ url: '/api/logs', headers: { traceparent: SAMPLED } })
  t.ok(byMsg(lines, 'in the handler').length === 1)
  t.notOk(lines.some(l => 'trace_id' in l))
  const quiet = await appWith(t)
  t.equal((await quiet.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })).statusCode, 200, 'a disabled logger is left alone')
})

// ------------------------------------------------------------------------------------------
// The trace id back to the caller
// ------------------------------------------------------------------------------------------
t.test('responseHeader: the W3C traceresponse, or a header of your own with the trace id; off by default', async (t) => {
  const plain = await appWith(t)
  const none = await plain.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
  t.notOk('traceresponse' in none.headers, 'off by default')

  const w3c = await appWith(t, { tracing: { responseHeader: true } })
  const res = await w3c.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
  t.equal(res.headers.traceresponse, `00-${TRACE_ID}-${serverSpanId()}-01`)
  const root = await w3c.inject('/api/users/2')
  t.match(root.headers.traceresponse, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/, 'a sampled-out root says so in its flags')
  const untraced = await w3c.inject({ url: '/metrics' })
  t.notOk('traceresponse' in untraced.headers, 'untraced routes: none')

  const own = await appWith(t, { tracing: { responseHeader: 'X-Trace-ID' } })
  t.equal((await own.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })).headers['x-trace-id'], TRACE_ID)

  await t.rejects(appWith(t, { tracing: { responseHeader: 'bad header' } }), /option "tracing.responseHeader" must be a boolean or an HTTP header name, got "bad header"/)
})

// ------------------------------------------------------------------------------------------
// One vocabulary; the user's own exemplars
// ------------------------------------------------------------------------------------------
t.test('customLabelsOnSpan: each custom label is also a span attribute under the same key', async (t) => {
  const app = await appWith(t, { metrics: { customLabels: { tenant: (request) => String(request.headers['x-tenant'] ?? 'none') }, customLabelsOnSpan: true } })
  await app.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED, 'x-tenant': 'acme' } })
  const [span] = exporter.getFinishedSpans().filter(s => s.kind === SpanKind.SERVER)
  t.equal(span.attributes.tenant, 'acme', 'the attribute')
  const text = (await app.inject('/metrics')).body
  t.match(text, /http_server_request_duration_seconds_count\{[^}]*tenant="acme"\} 1/, 'the label, same key and value')

  const off = await appWith(t, { metrics: { customLabels: { tenant: () => 'acme' } } })
  await off.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
  t.notOk('tenant' in exporter.getFinishedSpans()[0].attributes, 'off by default')
})

t.test("the application's own histograms and counters keep their exemplars in OpenMetrics", async (t) => {
  const client = require('prom-client')
  const registry = new client.Registry()
  registry.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE)
  const jobs = new client.Histogram({ name: 'job_seconds', help: 'Jobs.', buckets: [1], registers: [registry], enableExemplars: true })
  jobs.observe({ value: 0.5, exemplarLabels: { trace_id: 'abc' } })
  const orders = new client.Counter({ name: 'orders', help: 'Orders.', registers: [registry], enableExemplars: true })
  orders.inc({ value: 2, exemplarLabels: { trace_id: 'def' } })
  const app = await appWith(t, { metrics: { registry } })
  const om = (await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })).body
  t.match(om, /^job_seconds_bucket\{le="1"\} 1 # \{trace_id="abc"\} 0.5 \d/m)
  t.match(om, /^orders_total 2 # \{trace_id="def"\} 2 \d/m)
})

// ------------------------------------------------------------------------------------------
// Review cases
// ------------------------------------------------------------------------------------------
t.test('the Prometheus text format is the same bytes with exemplars on and off (but _sum)', async (t) => {
  const bodies: string[] = []
  for (const exemplars of [true, false]) {
    const app = await appWith(t, { metrics: { exemplars } })
    await app.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
    bodies.push((await app.inject('/metrics')).body.replace(/^(\S+_sum\S*) .*$/gm, '$1 <sum>'))
  }
  t.equal(bodies[0], bodies[1])
})

t.test("a warning about the user's requestHook carries the ids too", async (t) => {
  const { app, lines } = await loggedApp(t, { tracing: { requestHook: () => { throw new Error('hook failed') } } })
  await app.inject({ url: '/api/logs', headers: { traceparent: SAMPLED } })
  const warning = lines.find(l => typeof l.msg === 'string' && l.msg.includes('requestHook'))
  t.match(warning, { trace_id: TRACE_ID }, JSON.stringify(warning))
})

t.test('a childLoggerFactory that returns the root logger: nothing bound on it, no ids piling up', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = { write (chunk: string) { lines.push(JSON.parse(chunk)) } }
  const app = await appWith(t, {}, { logger: { level: 'info', stream }, childLoggerFactory: (logger: unknown) => logger })
  for (let i = 0; i < 3; i++) await app.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })
  app.log.info('outside any request')
  t.notOk('trace_id' in (lines.find(l => l.msg === 'outside any request') ?? {}), 'the root logger is left alone')
})

t.test('a logger whose setBindings throws: the request is answered, one warning', async (t) => {
  const warnings: unknown[] = []
  const noop = (): void => {}
  // Every child() a new object, as pino's: so request.log is never the instance's logger.
  const makeLogger = (): Record<string, unknown> => ({
    level: 'info',
    setBindings () { throw new Error('no bindings here') },
    info: noop,
    error: noop,
    debug: noop,
    fatal: noop,
    trace: noop,
    warn: (o: unknown) => { warnings.push(o) },
    child: makeLogger
  })
  const app = await appWith(t, {}, { loggerInstance: makeLogger() })
  for (let i = 0; i < 2; i++) {
    t.equal((await app.inject({ url: '/api/users/1', headers: { traceparent: SAMPLED } })).statusCode, 200)
  }
  t.equal(warnings.length, 1, 'warned once')
})

t.test("at level warn the warn lines carry the ids; the user's own pino mixin still applies", async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = { write (chunk: string) { lines.push(JSON.parse(chunk)) } }
  const app = await appWith(t, {}, { logger: { level: 'warn', stream, mixin: () => ({ app: 'shop' }) } })
  app.get('/api/warns', async (request) => {
    request.log.info('filtered out')
    request.log.warn('careful')
    return 'ok'
  })
  await app.inject({ url: '/api/warns', headers: { traceparent: SAMPLED } })
  t.same(lines.map(l => l.msg), ['careful'], 'only the warn line')
  t.match(lines[0], { app: 'shop', trace_id: TRACE_ID, span_id: serverSpanId(), trace_flags: '01' })
  app.log.warn('outside any request')
  t.match(lines[1], { app: 'shop', msg: 'outside any request' })
  t.notOk('trace_id' in lines[1], 'the instance logger keeps only its own mixin')
})
