// plugin-full-sdk-logger — as plugin-full-sdk with Fastify's pino logger on (level info, written to
// /dev/null): each request logs "incoming request" and "request completed", the latter with the
// trace ids the plugin binds on request.log (tracing.logIds, the default).
import { runServer, loadPlugin } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'plugin-full-sdk-logger',
  setup: () => startSdk({ http: false }),
  fastifyOptions: { logger: { level: 'info', file: '/dev/null' } },
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: {} })
  }
})
