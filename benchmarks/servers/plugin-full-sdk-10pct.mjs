// plugin-full-sdk-10pct — as plugin-full-sdk, with 10% of requests sampled:
// ParentBasedSampler({ root: TraceIdRatioBasedSampler(0.1) }). Its floor is 90% `context-with`
// + 10% `span-hook`.
import { runServer, loadPlugin } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'plugin-full-sdk-10pct',
  setup: () => startSdk({ http: false, ratio: 0.1 }),
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: {} })
  }
})
