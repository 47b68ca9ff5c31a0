// plugin-metrics — this plugin, Prometheus metrics only (tracing off).
import { runServer, loadPlugin } from '../lib/server.mjs'

await runServer({
  name: 'plugin-metrics',
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: false })
  }
})
