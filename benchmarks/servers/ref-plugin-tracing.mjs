// ref-plugin-tracing — ad-hoc reference: plugin-full-sdk with metrics off, the plugin's tracing
// alone. plugin-full-sdk minus this is what the metrics add to a traced request; this minus
// ref-span-attributes (REF_FROM_REQUEST=1) is the plugin's own tracing work on a whole server.
import { runServer, loadPlugin } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'ref-plugin-tracing',
  setup: () => startSdk({ http: false }),
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { metrics: false, tracing: {} })
  }
})
