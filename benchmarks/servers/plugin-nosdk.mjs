// plugin-nosdk — this plugin with tracing on and metrics off, and no
// OpenTelemetry SDK started: @opentelemetry/api hands out no-op spans, so this
// isolates the cost of the plugin's tracing code path on an app that has not
// set up an SDK.
import { runServer, loadPlugin } from '../lib/server.mjs'

await runServer({
  name: 'plugin-nosdk',
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { metrics: false, tracing: {} })
  }
})
