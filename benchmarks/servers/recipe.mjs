// recipe — the hand-written "four-step recipe": a prom-client Histogram,
// onRequest records process.hrtime(), onResponse observes the duration
// labelled by method, raw URL (request.url) and status code, and a /metrics
// route. No tracing.
import { createRequire } from 'node:module'
import { runServer } from '../lib/server.mjs'

const require = createRequire(import.meta.url)

await runServer({
  name: 'recipe',
  register (app) {
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
    app.addHook('onRequest', async (request) => {
      request.startTime = process.hrtime()
    })
    app.addHook('onResponse', async (request, reply) => {
      const d = process.hrtime(request.startTime)
      histogram.observe(
        { method: request.method, route: request.url, status_code: reply.statusCode },
        d[0] + d[1] / 1e9
      )
    })
    app.get('/metrics', async (request, reply) => {
      reply.type(register.contentType)
      return register.metrics()
    })
  }
})
