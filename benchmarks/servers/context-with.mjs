// context-with — the floor for a request the sampler drops: the same SDK set-up as
// plugin-full-sdk (NodeSDK, so its AsyncLocalStorage context manager), one onRequest hook that
// runs the rest of the request in a new context, `context.with(context.active().setValue(key, 1),
// done)`, and the one shared 'close' listener of ref-close-listener. No span, no attributes, no
// metrics. A dropped (non-recording) request still costs at least this.
import { runServer } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'context-with',
  setup: () => startSdk({ http: false }),
  async register (app) {
    const { context, createContextKey } = await import('@opentelemetry/api')
    const key = createContextKey('context-with')
    const kRequest = Symbol('request')
    // eslint-disable-next-line no-unused-vars -- written, never read: the hook does the work it measures
    let closed = 0
    function onClose () { if (this[kRequest] !== undefined) closed++ }
    app.addHook('onRequest', function withContext (request, reply, done) {
      reply.raw[kRequest] = request
      reply.raw.on('close', onClose)
      context.with(context.active().setValue(key, 1), done)
    })
  }
})
