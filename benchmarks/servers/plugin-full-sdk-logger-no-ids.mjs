// plugin-full-sdk-logger-no-ids — as plugin-full-sdk-logger with tracing.logIds false: the
// difference from plugin-full-sdk-logger is what binding the trace ids on request.log costs.
import { runServer, loadPlugin } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'plugin-full-sdk-logger-no-ids',
  setup: () => startSdk({ http: false }),
  fastifyOptions: { logger: { level: 'info', file: '/dev/null' } },
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: { logIds: false } })
  }
})
