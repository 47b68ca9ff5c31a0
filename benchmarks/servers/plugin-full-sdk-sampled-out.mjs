// plugin-full-sdk-sampled-out — as plugin-full-sdk (metrics + tracing, NodeSDK,
// BatchSpanProcessor, dropping exporter), with a sampler that drops every request:
// ParentBasedSampler({ root: TraceIdRatioBasedSampler(0) }). What the plugin costs for a request
// the sampler drops; its floor is `context-with`.
import { runServer, loadPlugin } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'plugin-full-sdk-sampled-out',
  setup: () => startSdk({ http: false, ratio: 0 }),
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: {} })
  }
})
