// fastify-metrics — fastify-metrics@13 on its defaults (route histogram and
// summary, default process metrics), exposed on /metrics.
import { createRequire } from 'node:module'
import { runServer } from '../lib/server.mjs'

const require = createRequire(import.meta.url)

await runServer({
  name: 'fastify-metrics',
  async register (app) {
    const mod = require('fastify-metrics')
    await app.register(mod.default ?? mod, { endpoint: '/metrics' })
  }
})
