// Bounded by default (#13): what a client or a careless custom label can make the plugin keep is
// bounded: series of the duration histogram, custom label values, warnings, span attributes.
import t from 'tap'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { SpanKind } from '@opentelemetry/api'
import type { Attributes } from '@opentelemetry/api'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import observability from '../lib/index'
import type { ObservabilityOptions } from '../lib/index'
import { resolveOptions } from '../lib/options'
import { parseSamples } from './helpers/metrics-text'
import { publishHandle, TELEMETRY_HANDLE_SYMBOL } from '../lib/telemetry-handle'
import { startOtlpReceiver } from './helpers/otlp-receiver'
import { childEnv, getText, startNodeApp } from './helpers/child'

const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
provider.register()
t.teardown(() => provider.shutdown())

const COUNT = 'http_server_request_duration_seconds_count'

interface Logged { app: FastifyInstance, lines: Array<Record<string, any>> }

async function appWith (t: Tap.Test, options: ObservabilityOptions = {}): Promise<Logged> {
  exporter.reset()
  const lines: Array<Record<string, any>> = []
  const stream = { write (chunk: string) { lines.push(JSON.parse(chunk)) } }
  const app = Fastify({ logger: { level: 'warn', stream } })
  t.teardown(() => app.close())
  await app.register(observability, { ...options, metrics: { defaultMetrics: false, buckets: [10], ...options.metrics } })
  app.get('/api/users/:id', async () => 'ok')
  app.get('/a', async () => 'a')
  app.get('/b', async () => 'b')
  app.get('/c', async () => 'c')
  return { app, lines }
}

async function counts (app: FastifyInstance): Promise<Array<{ labels: Record<string, string>, value: number }>> {
  return parseSamples((await app.inject('/metrics')).body).filter(s => s.name === COUNT)
}

const warnings = (lines: Array<Record<string, any>>, text: string): Array<Record<string, any>> => lines.filter(l => l.level === 40 && String(l.msg).includes(text))

t.test('metrics.maxSeries: 2000 by default; anything but a positive integer fails register', async (t) => {
  const m = resolveOptions({ metrics: { defaultMetrics: false } }).metrics
  t.equal(m !== false && m.maxSeries, 2000)
  for (const bad of [0, -1, 1.5, NaN, Infinity, '100', null]) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(observability, { metrics: { maxSeries: bad as number } }) },
      { code: 'FST_OBSERVABILITY_INVALID_OPTION', message: `option "metrics.maxSeries" must be a positive integer, got ${typeof bad === 'number' && !Number.isFinite(bad) ? String(bad) : JSON.stringify(bad)}` })
  }
})

t.test('a per-request unique custom label: maxSeries series, then one overflow series per route, method and status', async (t) => {
  let n = 0
  const { app, lines } = await appWith(t, { metrics: { maxSeries: 10, customLabels: { request: () => String(n++) } } })
  for (let i = 0; i < 50; i++) await app.inject('/api/users/1')
  for (let i = 0; i < 5; i++) await app.inject('/nowhere') // unmatched, 404: an overflow series of its own
  const c = await counts(app)
  t.equal(c.length, 12, '10 label sets, 2 overflow series')
  const overflow = c.filter(s => s.labels.request === '_overflow')
  t.same(overflow.map(s => [s.labels.http_route, s.labels.http_request_method, s.labels.http_response_status_code, s.value]).sort(),
    [['/api/users/:id', 'GET', '200', 40], ['unmatched', 'GET', '404', 5]], 'route, method and status kept: rates and error ratios stay right')
  t.equal(c.reduce((sum, s) => sum + s.value, 0), 55, 'every request counted once')
  const told = warnings(lines, 'reached metrics.maxSeries')
  t.equal(told.length, 1, 'warned once')
  t.equal(told[0].metric, 'http_server_request_duration_seconds', 'naming the metric')
  t.equal(told[0].maxSeries, 10)
})

t.test('a label set seen before the limit keeps its own series after it', async (t) => {
  let tenant = 'a'
  const { app } = await appWith(t, { metrics: { maxSeries: 2, customLabels: { tenant: () => tenant } } })
  for (const v of ['a', 'b', 'c', 'a', 'd', 'b']) {
    tenant = v
    await app.inject('/a')
  }
  const by = Object.fromEntries((await counts(app)).map(s => [s.labels.tenant, s.value]))
  t.same(by, { a: 2, b: 2, _overflow: 2 })
})

t.test('without custom labels there is no limit: the plugin\'s own labels are bounded by the routes', async (t) => {
  const { app, lines } = await appWith(t, { metrics: { maxSeries: 2 } })
  for (const url of ['/a', '/b', '/c', '/c', '/a']) await app.inject(url)
  const c = await counts(app)
  t.same(c.map(s => [s.labels.http_route, s.value]).sort(), [['/a', 2], ['/b', 1], ['/c', 2]])
  t.equal(warnings(lines, 'reached metrics.maxSeries').length, 0)
})

t.test('with the logger off, the overflow is a process warning', async (t) => {
  const emitted: Array<{ message: string, code?: string }> = []
  const real = process.emitWarning
  process.emitWarning = ((message: string, options?: { code?: string }) => { emitted.push({ message, code: options?.code }) }) as typeof process.emitWarning
  t.teardown(() => { process.emitWarning = real })
  const app = Fastify()
  t.teardown(() => app.close())
  let n = 0
  await app.register(observability, { metrics: { defaultMetrics: false, maxSeries: 1, customLabels: { n: () => n++ } } })
  app.get('/a', async () => 'a')
  for (let i = 0; i < 3; i++) await app.inject('/a')
  t.equal(emitted.length, 1)
  t.equal(emitted[0].code, 'FST_OBSERVABILITY_METRICS_OVERFLOW')
  t.match(emitted[0].message, /http_server_request_duration_seconds reached metrics\.maxSeries \(1 label sets\)/)
})

t.test('custom label values are cut to 128 UTF-16 code units, never inside a surrogate pair', async (t) => {
  let value = 'x'.repeat(1024 * 1024)
  const { app } = await appWith(t, { metrics: { customLabels: { big: () => value } } })
  await app.inject('/a')
  value = 'y'.repeat(127) + '😀' // the pair at 127-128: cutting at 128 would split it
  await app.inject('/a')
  const c = await counts(app)
  t.same(c.map(s => s.labels.big).sort(), ['x'.repeat(128), 'y'.repeat(127)])
})

t.test('a throwing custom label records "" and is logged once per label', async (t) => {
  const { app, lines } = await appWith(t, {
    metrics: {
      customLabels: {
        broken: () => { throw new Error('boom') },
        other: () => { throw new Error('bang') },
        fine: () => 'ok'
      }
    }
  })
  for (let i = 0; i < 5; i++) await app.inject('/a')
  const c = await counts(app)
  t.same(c.map(s => [s.labels.broken, s.labels.other, s.labels.fine, s.value]), [['', '', 'ok', 5]])
  t.equal(warnings(lines, 'metrics.customLabels.broken threw').length, 1)
  t.equal(warnings(lines, 'metrics.customLabels.other threw').length, 1)
  t.equal(warnings(lines, 'threw').length, 2)
})

// ------------------------------------------------------------------------------------------
// Span attributes
// ------------------------------------------------------------------------------------------
function serverAttributes (): Attributes {
  const spans = exporter.getFinishedSpans().filter(s => s.kind === SpanKind.SERVER)
  if (spans.length !== 1) throw new Error(`expected one SERVER span, got ${spans.length}`)
  exporter.reset()
  return spans[0].attributes
}

const BIG = 8 * 1024

t.test('attributes copied from the request are cut to 1,024 characters', async (t) => {
  const { app } = await appWith(t, { tracing: { captureQuery: true } })
  const path = '/nowhere/' + 'p'.repeat(BIG) // unmatched: a route parameter is at most 100 characters (Fastify's maxParamLength)
  await app.inject({ url: path + '?' + 'q'.repeat(BIG), headers: { host: 'h'.repeat(BIG), 'user-agent': 'u'.repeat(BIG) } })
  const a = serverAttributes()
  t.equal(a['url.path'], path.slice(0, 1024))
  t.equal(a['url.query'], 'q'.repeat(1024))
  t.equal(a['server.address'], 'h'.repeat(1024))
  t.equal(a['user_agent.original'], 'u'.repeat(1024))
  await app.inject({ url: '/api/users/1?a=1', headers: { host: 'example.com:8080', 'user-agent': 'curl/8' } })
  t.match(serverAttributes(), { 'url.path': '/api/users/1', 'url.query': 'a=1', 'server.address': 'example.com', 'server.port': 8080, 'user_agent.original': 'curl/8' }, 'short values whole')
})

t.test("OpenTelemetry's attribute value length limit, when set, is the limit", async (t) => {
  const saved = { span: process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, all: process.env.OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT }
  t.teardown(() => {
    for (const [name, v] of [['OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT', saved.span], ['OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT', saved.all]] as const) {
      if (v === undefined) delete process.env[name]
      else process.env[name] = v
    }
  })
  const cases: Array<[string | undefined, string | undefined, number]> = [
    [undefined, '4096', 4096],
    ['2000', '4096', 2000], // the span limit first, as the SDK reads them
    ['abc', '16', 16], // an invalid one is ignored
    [undefined, '0', 1024]
  ]
  for (const [span, all, expected] of cases) {
    if (span === undefined) delete process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
    else process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT = span
    if (all === undefined) delete process.env.OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT
    else process.env.OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT = all
    const { app } = await appWith(t)
    await app.inject({ url: '/a', headers: { 'user-agent': 'u'.repeat(BIG) } })
    t.equal((serverAttributes()['user_agent.original'] as string).length, expected, `span ${span}, all ${all}`)
  }
})

t.test('tracing.maxAttributeLength: the limit, over the environment; anything but a positive integer fails register', async (t) => {
  const saved = process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
  process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT = '2000'
  t.teardown(() => {
    if (saved === undefined) delete process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
    else process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT = saved
  })
  // A NodeSDK of the user's own with spanLimits.attributeValueLengthLimit 4096 in code: the plugin
  // cannot read it, the option says it.
  const { app } = await appWith(t, { tracing: { maxAttributeLength: 4096, captureQuery: true } })
  await app.inject({ url: '/nowhere/' + 'p'.repeat(BIG) + '?' + 'q'.repeat(BIG), headers: { host: 'h'.repeat(BIG), 'user-agent': 'u'.repeat(BIG) } })
  const a = serverAttributes()
  t.same(['url.path', 'url.query', 'server.address', 'user_agent.original'].map(k => (a[k] as string).length), [4096, 4096, 4096, 4096], 'every copied attribute cut at 4096, not 2000 (env) or 1024')

  for (const bad of [0, -1, 1.5, NaN, Infinity, '4096', null]) {
    await t.rejects(Fastify().register(observability, { tracing: { maxAttributeLength: bad as any } }).ready(),
      { name: 'ObservabilityOptionError', message: /tracing\.maxAttributeLength.*must be a positive integer/ }, `${String(bad)} rejected`)
    // The value as lib/errors.ts shows every option's (JSON: NaN and Infinity read null there).
    const shown = (typeof bad === 'number' && !Number.isFinite(bad) ? String(bad) : JSON.stringify(bad) as string).replace(/[.[\]]/g, '\\$&')
    t.throws(() => resolveOptions({ tracing: { maxAttributeLength: bad as any } }), { message: new RegExp(`option "tracing\\.maxAttributeLength" must be a positive integer .*, got ${shown}$`) }, `the error names the option and ${String(bad)}`)
  }
})

t.test("startTelemetry's span limit in code (published on its handle) is the limit, over the environment", async (t) => {
  const saved = process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
  process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT = '2000'
  t.teardown(() => {
    if (saved === undefined) delete process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
    else process.env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT = saved
    delete (globalThis as Record<symbol, unknown>)[TELEMETRY_HANDLE_SYMBOL]
  })
  const { app } = await appWith(t)
  // Published after register, as a startTelemetry() called later would: read at the first span.
  publishHandle({ attributeValueLengthLimit: 3000 })
  await app.inject({ url: '/a', headers: { 'user-agent': 'u'.repeat(BIG) } })
  t.equal((serverAttributes()['user_agent.original'] as string).length, 3000)
})

t.test('end to end: startTelemetry({ nodeSdk: { spanLimits } }) and the plugin, exported over OTLP', async (t) => {
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const app = startNodeApp<{ port: number }>(t, ['test/fixtures/telemetry-options.cjs'], childEnv({
    FIXTURE_APP: '1',
    FIXTURE_OPTIONS: JSON.stringify({ otlp: { endpoint: rx.tracesUrl }, batch: { scheduledDelayMillis: 600000 }, nodeSdk: { spanLimits: { attributeValueLengthLimit: 3000 } } })
  }))
  const { port } = await app.ready
  t.equal((await getText(port, '/items/1', { 'user-agent': 'u'.repeat(BIG) })).status, 200)
  t.same(await app.stop(), { code: 0, signal: null })
  const [span] = await rx.waitFor(s => s.length >= 1, 5000)
  t.equal((span.attributes['user_agent.original'] as string).length, 3000, 'cut where the SDK was told to cut, not at 1024')
})

t.test('Host is parsed strictly: a malformed port is no port', async (t) => {
  const { app } = await appWith(t)
  const cases: Array<[string, string, number | undefined]> = [
    ['x:0x50', 'x', undefined],
    ['x:80abc', 'x', undefined],
    ['x:99999', 'x', undefined],
    ['x:', 'x', undefined],
    ['x:0', 'x', undefined],
    ['x:1e2', 'x', undefined],
    ['x: 80', 'x', undefined],
    ['x:8080', 'x', 8080],
    ['x:65535', 'x', 65535],
    ['[::1]:0x50', '[::1]', undefined],
    ['[::1]:8443', '[::1]', 8443],
    ['x', 'x', undefined]
  ]
  for (const [host, address, port] of cases) {
    await app.inject({ url: '/a', headers: { host } })
    const a = serverAttributes()
    t.equal(a['server.address'], address, host)
    t.equal(a['server.port'], port, host)
  }
})
