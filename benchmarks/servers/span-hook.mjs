// span-hook — the floor for the tracing variants: a bare hook that starts a SERVER span with the
// same SDK set-up as plugin-full-sdk, runs the request inside its context and ends the span when
// the response closes, with no attributes, no propagation, no metrics. What any SDK-based tracing
// pays at least. (It ends the span on the response's 'close' rather than in an onResponse hook,
// because an onResponse hook alone makes Fastify add ~1 µs of 'finish' listeners per request.)
import { runServer } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'span-hook',
  setup: () => startSdk({ http: false }),
  async register (app) {
    const { trace, context, SpanKind } = await import('@opentelemetry/api')
    const tracer = trace.getTracer('span-hook')
    const kSpan = Symbol('span')
    function endSpan () {
      this[kSpan].end()
    }
    app.addHook('onRequest', function startSpan (request, reply, done) {
      const span = tracer.startSpan('GET', { kind: SpanKind.SERVER })
      reply.raw[kSpan] = span
      reply.raw.on('close', endSpan)
      context.with(trace.setSpan(context.active(), span), done)
    })
  }
})
