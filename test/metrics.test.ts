import t from 'tap'
import client from 'prom-client'
import { HttpMetrics, UNMATCHED_ROUTE, normalizeMethod } from '../lib/metrics'
import { HistogramSeries } from '../lib/instruments'
import { resolveOptions } from '../lib/options'
import type { ResolvedMetrics } from '../lib/options'

function metricsOptions (metrics: object = {}): ResolvedMetrics {
  const o = resolveOptions({ metrics: { defaultMetrics: false, ...metrics } })
  if (o.metrics === false) throw new Error('metrics off')
  return o.metrics
}

t.test('a value equal to a bound falls in that bucket (le is <=)', async (t) => {
  const s = new HistogramSeries({}, [0.1, 1])
  t.equal(s.observe(0.1), 0)
  t.equal(s.observe(0.10001), 1)
  t.equal(s.observe(1), 1)
  t.equal(s.observe(5), 2, '+Inf slot')
  t.equal(s.observe(0), 0)
  t.same(s.counts, [2, 2, 1])
  t.equal(s.count, 5)
  t.equal(Math.round(s.sum * 1e6) / 1e6, 6.20001)
})

t.test('series are found once and cached per route, method and status', async (t) => {
  const m = new HttpMetrics(metricsOptions())
  const route = m.forRoute('/a/:id')
  const get = route.forMethod('GET')
  t.equal(route.forMethod('GET'), get, 'same method series')
  t.equal(get.forStatus(200), get.forStatus(200), 'same status series')
  t.equal(m.forRoute('/a/:id').forMethod('GET').forStatus(200), get.forStatus(200), 'a second route object with the same pattern shares the series (HEAD routes, prefixes)')
  t.same(get.forStatus(200).labels, { http_request_method: 'GET', http_route: '/a/:id', http_response_status_code: '200' })
  t.equal(get.active, m.forRoute('/b').forMethod('GET').active, 'one active gauge series per method')
  m.close()
})

t.test('unknown methods are _OTHER and are never cached under their own name', async (t) => {
  const m = new HttpMetrics(metricsOptions())
  const other = m.unmatched.forMethod('FOOBAR')
  t.equal(other.method, '_OTHER')
  t.equal(m.unmatched.forMethod('QUUX'), other)
  t.same(Object.keys((m.unmatched as any).byMethod), ['_OTHER'])
  t.equal(other.forStatus(404).labels.http_route, UNMATCHED_ROUTE)
  t.equal(normalizeMethod('get'), '_OTHER', 'methods are case-sensitive tokens')
  t.equal(normalizeMethod('PATCH'), 'PATCH')
  m.close()
})

t.test('grouped status codes', async (t) => {
  const m = new HttpMetrics(metricsOptions({ groupStatusCodes: true }))
  const get = m.forRoute('/x').forMethod('GET')
  t.equal(get.forStatus(201).labels.http_response_status_code, '2xx')
  t.equal(get.forStatus(204), get.forStatus(201), '201 and 204 share one series')
  t.equal(get.forStatus(503).labels.http_response_status_code, '5xx')
  m.close()
})

t.test('a shared registry: the same instruments are reused; a different metric of that name is a clear error', async (t) => {
  const registry = new client.Registry()
  const a = new HttpMetrics(metricsOptions({ registry }))
  const b = new HttpMetrics(metricsOptions({ registry }))
  t.equal(b.duration, a.duration, 'second instance adopts the first one\'s histogram')
  t.throws(() => new HttpMetrics(metricsOptions({ registry, buckets: [1, 2] })), /already has a different metric named "http_server_request_duration_seconds"/)
  const other = new client.Registry()
  other.registerMetric(new client.Counter({ name: 'http_server_active_requests', help: 'x', registers: [] }))
  t.throws(() => new HttpMetrics(metricsOptions({ registry: other })), /different metric named "http_server_active_requests"/)
  // The overflow limit belongs to the shared histogram: another one is refused, not silently ignored.
  const labelled = new client.Registry()
  const tenant = { tenant: () => 'a' }
  const c = new HttpMetrics(metricsOptions({ registry: labelled, customLabels: tenant, maxSeries: 10 }))
  t.throws(() => new HttpMetrics(metricsOptions({ registry: labelled, customLabels: tenant, maxSeries: 20 })), {
    code: 'FST_OBSERVABILITY_INVALID_OPTION',
    message: /option "metrics\.maxSeries" must be 10, the value of the other plugin instance sharing "http_server_request_duration_seconds" in this registry \(or set metrics\.prefix\), got 20$/
  })
  t.throws(() => new HttpMetrics(metricsOptions({ registry: labelled, customLabels: tenant, maxSeries: 10, nativeHistograms: true })), {
    code: 'FST_OBSERVABILITY_INVALID_OPTION',
    message: /option "metrics\.nativeHistograms" must be false, the value of the other plugin instance .*, got \{"schema":3,"zeroThreshold":2\.938735877055719e-39,"maxBuckets":160\}$/
  })
  const d = new HttpMetrics(metricsOptions({ registry: labelled, customLabels: tenant, maxSeries: 10 }))
  t.equal(d.duration, c.duration, 'the same limit: adopted')
  c.close()
  d.close()
  a.close()
  t.equal(registry.getSingleMetric('http_server_request_duration_seconds'), b.duration, 'b still uses it: closing a keeps it')
  b.close()
  t.equal(registry.getSingleMetric('http_server_request_duration_seconds'), undefined, 'the last user closing removes it')
})

t.test('default metrics: registered once per registry, removed on close', async (t) => {
  const registry = new client.Registry()
  const a = new HttpMetrics(metricsOptions({ registry, defaultMetrics: true }))
  t.ok(registry.getSingleMetric('process_cpu_user_seconds_total'))
  const b = new HttpMetrics(metricsOptions({ registry, defaultMetrics: true }))
  t.ok(registry.getSingleMetric('nodejs_heap_size_used_bytes'), 'no "already registered" error from the second')
  a.close()
  t.ok(registry.getSingleMetric('process_cpu_user_seconds_total'), 'b still uses them')
  b.close()
  t.equal(registry.getSingleMetric('process_cpu_user_seconds_total'), undefined)
  t.same(registry.getMetricsAsArray(), [])

  const users = new client.Registry()
  client.collectDefaultMetrics({ register: users })
  const c = new HttpMetrics(metricsOptions({ registry: users, defaultMetrics: true }))
  c.close()
  t.ok(users.getSingleMetric('process_cpu_user_seconds_total'), "the user's own default metrics are never removed")
})

t.test('reset zeroes series but keeps them (routes cache them)', async (t) => {
  const registry = new client.Registry()
  const m = new HttpMetrics(metricsOptions({ registry }))
  const s = m.forRoute('/r').forMethod('GET').forStatus(200)
  s.observe(0.2)
  registry.resetMetrics()
  t.equal(s.count, 0)
  s.observe(0.3)
  t.match(await registry.metrics(), /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/r",http_response_status_code="200"\} 1\n/)
  m.close()
})
