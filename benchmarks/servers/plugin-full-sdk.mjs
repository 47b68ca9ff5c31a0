// plugin-full-sdk — this plugin with metrics and tracing, NodeSDK at 100%
// sampling, BatchSpanProcessor and a dropping exporter. No
// instrumentation-http: the plugin starts the server span itself.
import { runServer, loadPlugin } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'plugin-full-sdk',
  setup: () => startSdk({ http: false }),
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: {} })
  }
})
