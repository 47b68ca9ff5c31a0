// span-hook — the floor for the tracing variants: two bare hooks that start a SERVER span with
// the same SDK set-up as plugin-full-sdk, run the request inside its context and end it, with
// no attributes, no propagation, no metrics. What any SDK-based tracing pays at least.
import { runServer } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'span-hook',
  setup: () => startSdk({ http: false }),
  async register (app) {
    const { trace, context, SpanKind } = await import('@opentelemetry/api')
    const tracer = trace.getTracer('span-hook')
    const kSpan = Symbol('span')
    app.decorateRequest(kSpan, null)
    app.addHook('onRequest', function startSpan (request, reply, done) {
      const span = tracer.startSpan('GET', { kind: SpanKind.SERVER })
      request[kSpan] = span
      context.with(trace.setSpan(context.active(), span), done)
    })
    app.addHook('onResponse', function endSpan (request, reply, done) {
      request[kSpan]?.end()
      done()
    })
  }
})
