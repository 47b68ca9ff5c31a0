// plugin-metrics-nodefaults — this plugin, metrics only, prom-client's default metrics off: the
// hot path alone. (Default metrics keep a 10 ms event-loop-delay timer; under valgrind a request
// takes ~50x longer, so that timer's share per request is ~50x what it is in production.)
import { runServer, loadPlugin } from '../lib/server.mjs'

await runServer({
  name: 'plugin-metrics-nodefaults',
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: false, metrics: { defaultMetrics: false } })
  }
})
