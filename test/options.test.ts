import t from 'tap'
import Fastify from 'fastify'
import observability from '../lib/index'
import { resolveOptions, DEFAULT_BUCKETS } from '../lib/options'

t.test('defaults a newcomer can live with', async (t) => {
  const o = resolveOptions(undefined)
  t.equal(o.include, undefined, 'every route included')
  t.same(o.exclude, [])
  if (o.metrics === false || o.tracing === false) throw new Error('metrics and tracing must default on')
  t.equal(o.metrics.endpoint, '/metrics')
  t.equal(o.metrics.prefix, '')
  t.same(o.metrics.buckets, [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10])
  t.same(o.metrics.buckets, DEFAULT_BUCKETS)
  t.equal(o.metrics.groupStatusCodes, false)
  t.same(o.metrics.defaultMetrics, {})
  const first = Number(process.versions.node.split('.')[0]) >= 22 ? '@prometheus-io/client' : 'prom-client'
  t.equal(o.metrics.client, require(first), `both installed: ${first} first on Node ${process.versions.node}`)
  t.equal(o.tracing.captureQuery, false)
})

t.test("without metrics.client, a passed registry's own client module is used", async (t) => {
  for (const name of ['prom-client', '@prometheus-io/client']) {
    const client = require(name)
    const o = resolveOptions({ metrics: { registry: new client.Registry() } })
    t.equal(o.metrics !== false && o.metrics.client, client, name)
  }
  const other = require('prom-client')
  const o = resolveOptions({ metrics: { client: other, registry: new (require('@prometheus-io/client').Registry)() } })
  t.equal(o.metrics !== false && o.metrics.client, other, 'metrics.client wins')
})

t.test('false turns a half off', async (t) => {
  const o = resolveOptions({ metrics: false, tracing: false })
  t.equal(o.metrics, false)
  t.equal(o.tracing, false)
  const d = resolveOptions({ metrics: { defaultMetrics: false, endpoint: false } })
  // Turning parts of metrics off must leave metrics on: `d.metrics !== false && …` would pass
  // vacuously if the whole half were switched off.
  t.not(d.metrics, false, 'metrics stays on when only its parts are turned off')
  if (d.metrics === false) return
  t.equal(d.metrics.defaultMetrics, false)
  t.equal(d.metrics.endpoint, false)
})

// Each bad option must fail at register with a message naming the option and the value.
const bad: Array<[string, unknown, RegExp]> = [
  ['unknown top-level key', { inclde: ['/api/**'] }, /option "inclde" is not a known option.*\["\/api\/\*\*"\]/],
  ['include not an array', { include: '/api/**' }, /option "include" must be an array.*"\/api\/\*\*"/],
  ['include with a number', { include: [42] }, /option "include\[0\]" must be a non-empty glob string, got 42/],
  ['glob without leading slash', { exclude: ['api/**'] }, /option "exclude\[0\]" must start with '\/'.*"api\/\*\*"/],
  ['unbalanced glob', { include: ['/api/[a'] }, /option "include\[0\]" is not a valid glob.*"\/api\/\[a"/],
  ['unknown metrics key', { metrics: { bucket: [1] } }, /option "metrics.bucket" is not a known option/],
  ['buckets not increasing', { metrics: { buckets: [0.1, 0.1, 1] } }, /option "metrics.buckets" must be strictly increasing, got \[0.1,0.1,1\]/],
  ['buckets decreasing', { metrics: { buckets: [1, 0.5] } }, /option "metrics.buckets" must be strictly increasing, got \[1,0.5\]/],
  ['buckets with a string', { metrics: { buckets: [0.1, '1'] } }, /option "metrics.buckets" must hold finite numbers \(index 1/],
  ['buckets empty', { metrics: { buckets: [] } }, /option "metrics.buckets" must be a non-empty array/],
  ['endpoint without slash', { metrics: { endpoint: 'metrics' } }, /option "metrics.endpoint" must be a path starting with '\/' or false, got "metrics"/],
  ['endpoint true', { metrics: { endpoint: true } }, /option "metrics.endpoint" .* got true/],
  ['bad prefix', { metrics: { prefix: '1app-' } }, /option "metrics.prefix" .* got "1app-"/],
  ['groupStatusCodes not boolean', { metrics: { groupStatusCodes: 'yes' } }, /option "metrics.groupStatusCodes" must be a boolean, got "yes"/],
  ['custom label not a function', { metrics: { customLabels: { tenant: 'x' } } }, /option "metrics.customLabels.tenant" must be a function/],
  ['custom label reserved', { metrics: { customLabels: { http_route: () => 'x' } } }, /option "metrics.customLabels.http_route" must be a valid Prometheus label name/],
  ['custom label invalid', { metrics: { customLabels: { 'bad-name': () => 'x' } } }, /option "metrics.customLabels.bad-name"/],
  ['defaultMetrics wrong', { metrics: { defaultMetrics: 'on' } }, /option "metrics.defaultMetrics" .* got "on"/],
  ['registry wrong', { metrics: { registry: {} } }, /option "metrics.registry" must be a prom-client Registry, got \{\}/],
  ['client wrong', { metrics: { client: {} } }, /option "metrics.client" must be the prom-client module/],
  ['metrics a string', { metrics: 'on' }, /option "metrics" must be false or an object, got "on"/],
  ['tracing unknown key', { tracing: { sampler: 1 } }, /option "tracing.sampler" is not a known option/],
  ['tracing provider wrong', { tracing: { tracerProvider: {} } }, /option "tracing.tracerProvider" must be an OpenTelemetry TracerProvider/],
  ['tracing hook wrong', { tracing: { requestHook: 1 } }, /option "tracing.requestHook" must be a function, got|option "tracing.requestHook" must be a function \(span, request\) => void, got 1/],
  ['exemplars not a boolean', { metrics: { exemplars: 'yes' } }, /option "metrics.exemplars" must be a boolean, got "yes"/],
  ['customLabelsOnSpan not a boolean', { metrics: { customLabelsOnSpan: 1 } }, /option "metrics.customLabelsOnSpan" must be a boolean, got 1/],
  ['logIds not a boolean', { tracing: { logIds: 'no' } }, /option "tracing.logIds" must be a boolean, got "no"/],
  ['responseHeader not a header name', { tracing: { responseHeader: 'x trace' } }, /option "tracing.responseHeader" must be a boolean or an HTTP header name, got "x trace"/],
  ['responseHeader with a meaning of its own', { tracing: { responseHeader: 'Set-Cookie' } }, /option "tracing.responseHeader" must not be a header with a meaning of its own.*got "Set-Cookie"/]
]

for (const [what, options, message] of bad) {
  t.test(`register fails: ${what}`, async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(observability, options as any) }, message)
  })
}

t.test("Fastify's own register options are accepted", async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { logLevel: 'warn', metrics: { defaultMetrics: false } } as any)
  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
})

t.test('a route config of the wrong type fails when the route is added, naming it', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { defaultMetrics: false } })
  t.throws(() => app.get('/x', { config: { metrics: 'no' } as any }, async () => 'x'), /config.metrics of route GET \/x" must be a boolean, got "no"/)
})

t.test('errors carry codes: an invalid option, and a second registration', async (t) => {
  const bad = Fastify()
  t.teardown(() => bad.close())
  const err = await bad.register(observability, { metrics: { buckets: 'x' as any } }).ready().then(() => null, (e: any) => e)
  t.equal(err?.code, 'FST_OBSERVABILITY_INVALID_OPTION')
  t.equal(err?.name, 'ObservabilityOptionError')
  t.ok(err instanceof observability.ObservabilityOptionError)
  t.match(err?.message, /option "metrics\.buckets"/)

  // Twice in one instance, or once per half: register rejects, naming the plugin; the process lives on.
  for (const [first, second] of [[{}, {}], [{ metrics: false }, { tracing: false }]] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(observability, { ...first, tracing: false, metrics: first.metrics ?? { defaultMetrics: false } } as any)
    app.register(observability, { ...second, tracing: false, metrics: { defaultMetrics: false } } as any)
    const e = await app.ready().then(() => null, (x: any) => x)
    t.equal(e?.code, 'FST_OBSERVABILITY_ALREADY_REGISTERED', `${JSON.stringify(first)} then ${JSON.stringify(second)}`)
    t.match(e?.message, /fastify-observability is already registered/)
  }

  // In a child of an instance that has it: the same. In two sibling contexts: fine, each its own.
  const parent = Fastify()
  t.teardown(() => parent.close())
  parent.register(observability, { tracing: false, metrics: { defaultMetrics: false } })
  parent.register(async (child) => { await child.register(observability, { tracing: false, metrics: { defaultMetrics: false, endpoint: '/m2' } }) })
  t.equal((await parent.ready().then(() => null, (x: any) => x))?.code, 'FST_OBSERVABILITY_ALREADY_REGISTERED', 'in a child')

  const siblings = Fastify()
  t.teardown(() => siblings.close())
  for (const endpoint of ['/a/metrics', '/b/metrics']) {
    siblings.register(async (child) => { await child.register(observability, { tracing: false, metrics: { defaultMetrics: false, endpoint, prefix: endpoint[1] + '_' } }) })
  }
  await siblings.ready()
  t.equal((await siblings.inject('/a/metrics')).statusCode, 200, 'sibling contexts each have their own')
  t.equal((await siblings.inject('/b/metrics')).statusCode, 200)
})
