// ref-dropped-span — ad-hoc reference: what the SDK itself costs for a request its sampler drops
// (ParentBased(TraceIdRatioBased(0))): start the SERVER span (ids generated, sampler asked, a
// non-recording span returned), run the request in its context, end it on 'close'. Compare with
// context-with (no span at all) and plugin-full-sdk-sampled-out. REF_EXTRACT=1 adds the W3C extract.
import { runServer } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

const extract = process.env.REF_EXTRACT === '1'

await runServer({
  name: 'ref-dropped-span',
  setup: () => startSdk({ http: false, ratio: 0 }),
  async register (app) {
    const { context, propagation, trace, SpanKind } = await import('@opentelemetry/api')
    const tracer = trace.getTracer('ref-dropped-span')
    const options = { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.route': '/api/users/:id' } }
    const kSpan = Symbol('span')
    function endSpan () { this[kSpan].end() }
    app.addHook('onRequest', function dropped (request, reply, done) {
      const ctx = extract ? propagation.extract(context.active(), request.headers) : context.active()
      const span = tracer.startSpan('GET /api/users/:id', options, ctx)
      reply.raw[kSpan] = span
      reply.raw.on('close', endSpan)
      context.with(trace.setSpan(ctx, span), done)
    })
  }
})
