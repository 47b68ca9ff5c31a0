// instrumentation-http's SERVER span is found through the public RPC metadata, not by reading
// SDK-only span fields: with a tracer provider whose spans carry nothing beyond the API's Span
// interface (no `kind`, no `attributes`), the plugin must still enrich that span and not start a
// second one.
import t from 'tap'
import { context, propagation, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import type { Span, SpanOptions, Context, Tracer, TracerProvider } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http'
import type { FastifyInstance } from 'fastify'

/** Collects finished spans; `until(n)` resolves once n SERVER spans have ended. */
class WaitingExporter implements SpanExporter {
  readonly spans: ReadableSpan[] = []
  private waiters: Array<{ n: number, resolve: () => void }> = []
  export (spans: ReadableSpan[], done: (r: { code: number }) => void): void {
    this.spans.push(...spans)
    const servers = this.spans.filter((s) => s.kind === SpanKind.SERVER).length
    this.waiters = this.waiters.filter((w) => (servers >= w.n ? (w.resolve(), false) : true))
    done({ code: 0 })
  }

  until (n: number): Promise<void> {
    if (this.spans.filter((s) => s.kind === SpanKind.SERVER).length >= n) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push({ n, resolve }))
  }

  async shutdown (): Promise<void> {}
}

/** A span with exactly the API's Span interface, delegating to an SDK span it hides. */
class InterfaceOnlySpan implements Span {
  readonly #inner: Span
  constructor (inner: Span) { this.#inner = inner }
  spanContext (): ReturnType<Span['spanContext']> { return this.#inner.spanContext() }
  setAttribute (k: string, v: Parameters<Span['setAttribute']>[1]): this { this.#inner.setAttribute(k, v); return this }
  setAttributes (a: Parameters<Span['setAttributes']>[0]): this { this.#inner.setAttributes(a); return this }
  addEvent (n: string, a?: Parameters<Span['addEvent']>[1], ts?: Parameters<Span['addEvent']>[2]): this { this.#inner.addEvent(n, a, ts); return this }
  addLink (l: Parameters<Span['addLink']>[0]): this { this.#inner.addLink(l); return this }
  addLinks (l: Parameters<Span['addLinks']>[0]): this { this.#inner.addLinks(l); return this }
  setStatus (s: Parameters<Span['setStatus']>[0]): this { this.#inner.setStatus(s); return this }
  updateName (n: string): this { this.#inner.updateName(n); return this }
  end (t?: Parameters<Span['end']>[0]): void { this.#inner.end(t) }
  isRecording (): boolean { return this.#inner.isRecording() }
  recordException (e: Parameters<Span['recordException']>[0], t?: Parameters<Span['recordException']>[1]): void { this.#inner.recordException(e, t) }
}

const exporter = new WaitingExporter()
const sdk = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
const provider: TracerProvider = {
  getTracer (name, version, options): Tracer {
    const inner = sdk.getTracer(name, version, options)
    return {
      startSpan: (n: string, o?: SpanOptions, c?: Context) => new InterfaceOnlySpan(inner.startSpan(n, o, c)),
      startActiveSpan: inner.startActiveSpan.bind(inner) as Tracer['startActiveSpan']
    }
  }
}
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
propagation.setGlobalPropagator(new W3CTraceContextPropagator())
trace.setGlobalTracerProvider(provider)
registerInstrumentations({ instrumentations: [new HttpInstrumentation()], tracerProvider: provider })
t.teardown(() => sdk.shutdown())

// Loaded after the instrumentation is enabled, as a preload would do.

const Fastify = require('fastify') as typeof import('fastify').default
const observability = require('../lib/index') as typeof import('../lib/index').default

async function listen (t: Tap.Test, app: FastifyInstance): Promise<string> {
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
}

t.test('spans without SDK-only fields: instrumentation-http\'s span is enriched, never duplicated', async (t) => {
  const app = Fastify()
  await app.register(observability, { metrics: false })
  app.get('/api/users/:id', async () => 'u')
  app.get('/boom', async () => { throw new RangeError('out of range') })
  const base = await listen(t, app)
  await (await fetch(`${base}/api/users/9`)).text()
  await (await fetch(`${base}/boom`)).text()
  await exporter.until(2)

  const servers = exporter.spans.filter((s) => s.kind === SpanKind.SERVER)
  t.equal(servers.length, 2, 'one SERVER span per request')
  t.same(servers.map((s) => s.instrumentationScope.name), ['@opentelemetry/instrumentation-http', '@opentelemetry/instrumentation-http'], 'both are instrumentation-http\'s')
  const users = servers.find((s) => s.attributes['http.route'] === '/api/users/:id')
  t.equal(users?.name, 'GET /api/users/:id', 'named by the route the plugin handed over')
  const boom = servers.find((s) => s.attributes['http.route'] === '/boom')
  t.equal(boom?.name, 'GET /boom')
  t.equal(boom?.status.code, SpanStatusCode.ERROR)
  t.equal(boom?.attributes['error.type'], 'RangeError', 'the plugin marked the borrowed span')
  t.equal(boom?.events.find((e) => e.name === 'exception')?.attributes?.['exception.message'], 'out of range')
})
