// plugin-full-sdk-no-exemplars — as plugin-full-sdk with metrics.exemplars false: the difference
// from plugin-full-sdk is what the exemplars cost per request.
import { runServer, loadPlugin } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'plugin-full-sdk-no-exemplars',
  setup: () => startSdk({ http: false }),
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: {}, metrics: { exemplars: false } })
  }
})
