// plugin-metrics-native — as plugin-metrics, with metrics.nativeHistograms on (issue #14): the
// difference is the native bucket step per request (the scrape is not part of the workload).
import { runServer, loadPlugin } from '../lib/server.mjs'

await runServer({
  name: 'plugin-metrics-native',
  async register (app) {
    const observability = await loadPlugin()
    await app.register(observability, { tracing: false, metrics: { nativeHistograms: true } })
  }
})
