// App builders for the scrape and memory benchmarks (in-process, app.inject).
import { createRequire } from 'node:module'
import { loadPlugin } from './server.mjs'

const require = createRequire(import.meta.url)

export const SUBJECTS = {
  // This plugin; metrics-only for the scrape bench, defaults (metrics + tracing
  // without an SDK) for the memory bench.
  async plugin (app, { purpose }) {
    const observability = await loadPlugin()
    await app.register(observability, purpose === 'scrape' ? { tracing: false } : {})
    return { endpoint: '/metrics', config: purpose === 'scrape' ? '{ tracing: false }' : '{} (defaults)' }
  },
  async 'fastify-metrics' (app) {
    const mod = require('fastify-metrics')
    await app.register(mod.default ?? mod, { endpoint: '/metrics' })
    return { endpoint: '/metrics', config: "{ endpoint: '/metrics' }" }
  },
  // The hand-written recipe: histogram labelled by raw request.url.
  recipe (app) {
    const client = require('prom-client')
    const register = new client.Registry()
    client.collectDefaultMetrics({ register })
    const histogram = new client.Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration in seconds',
      labelNames: ['method', 'route', 'status_code'],
      registers: [register]
    })
    app.decorateRequest('startTime', null)
    app.addHook('onRequest', async (request) => { request.startTime = process.hrtime() })
    app.addHook('onResponse', async (request, reply) => {
      const d = process.hrtime(request.startTime)
      histogram.observe({ method: request.method, route: request.url, status_code: reply.statusCode }, d[0] + d[1] / 1e9)
    })
    app.get('/metrics', async (request, reply) => {
      reply.type(register.contentType)
      return register.metrics()
    })
    return { endpoint: '/metrics', config: 'hooks + Histogram(route = request.url)' }
  }
}

export async function buildApp (subject, purpose) {
  const { default: Fastify } = await import('fastify')
  const app = Fastify({ logger: false })
  const setup = SUBJECTS[subject]
  if (!setup) throw new Error(`unknown subject ${subject}`)
  const info = await setup(app, { purpose })
  return { app, info }
}
