// plugin-full-sdk-http — as plugin-full-sdk, with
// @opentelemetry/instrumentation-http on: the http instrumentation starts the
// server span and the plugin enriches it (route, name) instead of starting its own.
import { runServer, loadPlugin } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'plugin-full-sdk-http',
  setup: () => startSdk({ http: true }),
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: {} })
  }
})
