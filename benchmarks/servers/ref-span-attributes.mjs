// ref-span-attributes — ad-hoc reference: span-hook plus what any semconv-complete SERVER span pays
// in the SDK: W3C extract, a route name, and the HTTP attributes the plugin sets (same keys and
// kinds of values, set one by one with setAttribute; http.response.status_code at the end).
// REF_ATTRIBUTES_AT_START=1 passes them all in startSpan's options instead; REF_NO_ATTRIBUTES=1
// keeps only the extract; REF_FROM_REQUEST=1 reads the values from the request as the plugin must
// (Fastify's protocol, host and ip getters, the user-agent header, the HTTP version) instead of
// constants.
import { runServer } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

const atStart = process.env.REF_ATTRIBUTES_AT_START === '1'
const none = process.env.REF_NO_ATTRIBUTES === '1'
const fromRequest = process.env.REF_FROM_REQUEST === '1'

await runServer({
  name: 'ref-span-attributes',
  setup: () => startSdk({ http: false }),
  async register (app) {
    const { trace, context, propagation, SpanKind } = await import('@opentelemetry/api')
    const tracer = trace.getTracer('ref-span-attributes')
    const kSpan = Symbol('span')
    const startOptions = { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.route': '/api/users/:id' } }
    function endSpan () {
      const span = this[kSpan]
      if (!none) span.setAttribute('http.response.status_code', this.statusCode)
      span.end()
    }
    app.addHook('onRequest', function startSpan (request, reply, done) {
      const parent = propagation.extract(context.active(), request.headers)
      let span
      if (none) {
        span = tracer.startSpan('GET', { kind: SpanKind.SERVER }, parent)
      } else if (atStart) {
        span = tracer.startSpan('GET /api/users/:id', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.route': '/api/users/:id', 'url.path': request.url, 'url.scheme': 'http', 'server.address': '127.0.0.1', 'server.port': 3000, 'client.address': '127.0.0.1', 'user_agent.original': 'autocannon', 'network.protocol.version': '1.1' } }, parent)
      } else if (fromRequest) {
        span = tracer.startSpan('GET /api/users/:id', startOptions, parent)
        span.setAttribute('url.path', request.url)
        span.setAttribute('url.scheme', request.protocol)
        const host = request.host
        const colon = host.indexOf(':')
        span.setAttribute('server.address', colon === -1 ? host : host.slice(0, colon))
        if (colon !== -1) span.setAttribute('server.port', Number(host.slice(colon + 1)))
        span.setAttribute('client.address', request.ip)
        span.setAttribute('user_agent.original', request.headers['user-agent'])
        span.setAttribute('network.protocol.version', request.raw.httpVersion)
      } else {
        span = tracer.startSpan('GET /api/users/:id', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.route': '/api/users/:id' } }, parent)
        span.setAttribute('url.path', request.url)
        span.setAttribute('url.scheme', 'http')
        span.setAttribute('server.address', '127.0.0.1')
        span.setAttribute('server.port', 3000)
        span.setAttribute('client.address', '127.0.0.1')
        span.setAttribute('user_agent.original', 'autocannon')
        span.setAttribute('network.protocol.version', '1.1')
      }
      reply.raw[kSpan] = span
      reply.raw.on('close', endSpan)
      context.with(trace.setSpan(parent, span), done)
    })
  }
})
