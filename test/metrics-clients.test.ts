// prom-client and @prometheus-io/client, whichever the application has: the same options and the
// same requests give byte-identical expositions in both formats, the plugin's metrics and the
// application's own (every metric type), and the same default metric families.
import t from 'tap'
import Fastify from 'fastify'
import { performance } from 'node:perf_hooks'
import observability from '../lib/index'
import type { PromClientModule } from '../lib/options'

const CLIENTS = ['prom-client', '@prometheus-io/client'] as const
const OPENMETRICS = 'application/openmetrics-text; version=1.0.0'

async function expositions (name: string, defaultMetrics: boolean): Promise<{ text: string, openMetrics: string }> {
  const client = require(name)
  const registry = new client.Registry()
  const app = Fastify()
  try {
    await app.register(observability, { tracing: false, metrics: { client: client as PromClientModule, registry, defaultMetrics } })
    app.get('/api/users/:id', async (request) => ({ id: (request.params as { id: string }).id }))
    app.post('/api/orders', async (_request, reply) => reply.code(201).send('ok'))
    app.get('/api/fail', async () => { throw new Error('boom') })

    const orders = new client.Counter({ name: 'orders_placed_total', help: 'Orders placed.', labelNames: ['kind'], registers: [registry] })
    orders.inc({ kind: 'book' }, 2)
    orders.inc({ kind: 'pen "blue"\n' })
    new client.Gauge({ name: 'queue_depth', help: 'Jobs waiting.', registers: [registry] }).set(7)
    const jobs = new client.Histogram({ name: 'job_duration_seconds', help: 'Jobs.', buckets: [0.1, 1], registers: [registry] })
    jobs.observe(0.5)
    jobs.observe(3)
    const sizes = new client.Summary({ name: 'payload_bytes', help: 'Payload sizes.', percentiles: [0.5, 0.9], registers: [registry] })
    for (const v of [10, 20, 30]) sizes.observe(v)

    // A deterministic clock: every read advances 1 ms, so both runs record the same durations.
    let now = 0
    const realNow = performance.now
    performance.now = () => (now += 1)
    try {
      for (const url of ['/api/users/1', '/api/users/2', '/api/fail', '/nowhere']) await app.inject(url)
      await app.inject({ method: 'POST', url: '/api/orders' })
      const text = (await app.inject('/metrics')).body
      const openMetrics = (await app.inject({ url: '/metrics', headers: { accept: OPENMETRICS } })).body
      return { text, openMetrics }
    } finally {
      performance.now = realNow
    }
  } finally {
    await app.close()
  }
}

/** '# HELP' and '# TYPE' lines: the families and their metadata, whatever the sampled values. */
const families = (text: string): string[] => text.split('\n').filter(l => l.startsWith('# ')).sort()

t.test('byte-identical exposition from either client module', async (t) => {
  const a = await expositions(CLIENTS[0], false)
  const b = await expositions(CLIENTS[1], false) // one after the other: the clock is global
  t.match(a.text, /http_server_request_duration_seconds_bucket\{.*http_route="\/api\/users\/:id"/, 'the plugin\'s metrics are there')
  t.match(a.text, /payload_bytes\{quantile="0.5"\} 20/, 'the application\'s own metrics are there')
  t.equal(b.text, a.text, 'Prometheus text format')
  t.match(a.openMetrics, /# EOF\n$/, 'OpenMetrics served')
  t.equal(b.openMetrics, a.openMetrics, 'OpenMetrics format')
})

t.test("prom-client's default metric families from either client module; @prometheus-io/client adds event-loop utilization", async (t) => {
  const a = await expositions(CLIENTS[0], true)
  const b = await expositions(CLIENTS[1], true)
  t.ok(families(a.text).includes('# TYPE process_cpu_user_seconds_total counter'), 'process metrics')
  t.ok(families(a.text).includes('# TYPE nodejs_eventloop_lag_seconds gauge'), 'Node.js metrics')
  t.same(families(b.text).filter(l => !/ nodejs_eventloop_utilization_/.test(l)), families(a.text), 'the same families and metadata')
  t.same(families(b.text).filter(l => l.startsWith('# TYPE nodejs_eventloop_utilization_')),
    ['# TYPE nodejs_eventloop_utilization_histogram histogram', '# TYPE nodejs_eventloop_utilization_summary summary'])
})
