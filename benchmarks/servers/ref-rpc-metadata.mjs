// ref-rpc-metadata — ad-hoc reference: the SDK started (its AsyncLocalStorage context manager), one
// onRequest hook that looks for instrumentation-http's span in @opentelemetry/core's RPC metadata,
// as the plugin does on every traced request. Compare with context-with / span-hook.
import { runServer } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

// eslint-disable-next-line no-unused-vars -- written, never read: the hook does the work it measures
let found = 0

await runServer({
  name: 'ref-rpc-metadata',
  setup: () => startSdk({ http: false }),
  async register (app) {
    const { context } = await import('@opentelemetry/api')
    const { getRPCMetadata } = await import('@opentelemetry/core')
    app.addHook('onRequest', function lookup (request, reply, next) {
      if (getRPCMetadata(context.active()) !== undefined) found++
      next()
    })
  }
})
