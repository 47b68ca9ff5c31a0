// SERVER spans from Fastify's hooks, through @opentelemetry/api only (the user's SDK, any version).
//
// If @opentelemetry/instrumentation-http already started the SERVER span for this request, that
// span is enriched (route, exception, error.type) instead of a second one being started. The
// instrumentation announces its span the public way, in @opentelemetry/core's RPC metadata on the
// active context, and takes `route` back from it for its span name, `http.route` and its own
// metrics (as @fastify/otel does).
import { context, createContextKey, propagation, trace, ProxyTracerProvider, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import type { Attributes, Context, Span, SpanOptions, Tracer, TracerProvider } from '@opentelemetry/api'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { ResolvedTracing } from './options'
import { KNOWN_METHODS, OTHER_METHOD } from './metrics'
import { truncate } from './truncate'
import { createAnnounce } from './trace-identity'
import { publishedHandle } from './telemetry-handle'
import type { Announce } from './trace-identity'

const TRACER_NAME = 'fastify-observability'

const TRACER_VERSION: string = require('../package.json').version

/**
 * Longest value of an attribute copied from the request (url.path, url.query, user_agent.original,
 * server.address): a client controls them, and the SDK keeps them whole unless told otherwise.
 */
export const DEFAULT_ATTRIBUTE_LENGTH = 1024

/**
 * The limit the SDK cuts attribute values at, when the plugin can know it, else
 * DEFAULT_ATTRIBUTE_LENGTH: the SDK cuts there anyway, so the plugin never cuts shorter than asked.
 * In the SDK's order: the limit given in code (`inCode`: startTelemetry's
 * `nodeSdk.spanLimits.attributeValueLengthLimit`, published on its handle), then the environment
 * (the span variable first). Invalid values are ignored, as the SDK ignores them. A NodeSDK of the
 * user's own keeps its limits private: `tracing.maxAttributeLength` says it (and wins over all).
 */
export function attributeLengthLimit (env: NodeJS.ProcessEnv = process.env, inCode?: number): number {
  if (inCode !== undefined && Number.isSafeInteger(inCode) && inCode > 0) return inCode
  for (const name of ['OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT', 'OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT']) {
    const v = env[name]?.trim()
    if (v !== undefined && /^[0-9]+$/.test(v) && Number(v) > 0) return Number(v)
  }
  return DEFAULT_ATTRIBUTE_LENGTH
}

/** A port as Host may carry it: 1 to 5 decimal digits (Number() would also take 0x50, 1e2, ' 80'). */
const PORT = /^[0-9]{1,5}$/

/** @opentelemetry/core's RPCMetadata, as far as it is used here. */
interface RPCMetadata {
  type: string
  span: Span
  route?: string
}

/**
 * @opentelemetry/core's getRPCMetadata (an optional peer: every instrumentation-http depends on it).
 * Where core cannot be resolved from this package (pnpm's strict layout, Yarn PnP), the same
 * metadata is read under the same key: core creates it with the API's createContextKey, which is
 * global (Symbol.for of its description), so any copy or version of core reads and writes it.
 */
const getRPCMetadata: (ctx: Context) => RPCMetadata | undefined = (() => {
  try {
    const fn = require('@opentelemetry/core').getRPCMetadata
    if (typeof fn === 'function') return fn
  } catch {}
  const key = createContextKey('OpenTelemetry SDK Context Key RPC_METADATA')
  return (ctx: Context) => ctx.getValue(key) as RPCMetadata | undefined
})()
/**
 * Metadata whose span a request already took over. The metadata is inherited by every context
 * below it, so a request made in-process while another is handled (app.inject from a handler)
 * sees the outer request's metadata: that one starts a span of its own.
 */
const claimed = new WeakSet<RPCMetadata>()
const RPC_TYPE_HTTP = 'http' // RPCType.HTTP

/** Per-request tracing state, kept on the request under a symbol. */
export interface RequestSpan {
  span: Span
  ctx: Context
  /** true when instrumentation-http owns the span: we enrich it but never end it. */
  borrowed: boolean
  /** error.type of a thrown error, if any. */
  errorType: string | undefined
  errorMessage: string | undefined
}

/** What one route (and method) needs at request time, computed once in onRoute. */
export class RouteTracing {
  private readonly byMethod: Record<string, { name: string, options: SpanOptions }> = Object.create(null)

  constructor (readonly route: string | undefined) {}

  /**
   * Span name and start options with the attributes known before the request arrives (given to
   * samplers). One options object per route and method: the SDK copies what it keeps.
   */
  forMethod (method: string): { name: string, options: SpanOptions } {
    let m = this.byMethod[method]
    if (m === undefined) {
      const known = KNOWN_METHODS.has(method)
      const semMethod = known ? method : OTHER_METHOD
      // Semconv: unknown methods are named 'HTTP'; without a route the name is the method alone.
      const nameMethod = known ? method : 'HTTP'
      const attributes: Attributes = { 'http.request.method': semMethod }
      if (!known) attributes['http.request.method_original'] = method
      if (this.route !== undefined) attributes['http.route'] = this.route
      m = { name: this.route === undefined ? nameMethod : `${nameMethod} ${this.route}`, options: { kind: SpanKind.SERVER, attributes } }
      // Unknown methods are not cached: they are unbounded input.
      if (known) this.byMethod[method] = m
    }
    return m
  }
}

function headerString (v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v
}

/** What the global ProxyTracerProvider delegates to while no SDK is registered. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate()

export class Tracing {
  private readonly tracer: Tracer
  private readonly provider: TracerProvider
  /** Tells the request's trace to its log lines and its caller (lib/trace-identity.ts), if asked. */
  private readonly announce: Announce | null
  private announceFailed = false
  /**
   * tracing.maxAttributeLength, else attributeLengthLimit() read once, at the first recorded span:
   * an SDK (and the handle with its limit) may be started after register, and is by then.
   */
  private maxLength: number | undefined

  constructor (private readonly options: ResolvedTracing, rootLog: FastifyBaseLogger) {
    // The global API hands out a ProxyTracer that follows an SDK started after register.
    this.provider = options.tracerProvider ?? trace.getTracerProvider()
    this.tracer = this.provider.getTracer(TRACER_NAME, TRACER_VERSION)
    this.announce = createAnnounce(options.responseHeader, options.logIds, rootLog)
    this.maxLength = options.maxAttributeLength
  }

  /**
   * True while no SDK is registered: every span would be a no-op and no propagator is set, so a
   * request skips tracing altogether. Asked per request, since an SDK may start after register.
   */
  get idle (): boolean {
    const p = this.provider
    return p instanceof ProxyTracerProvider && p.getDelegate() === NOOP_PROVIDER
  }

  /** Start (or borrow) the SERVER span. The caller runs the rest of the request inside `ctx`. */
  start (request: FastifyRequest, reply: FastifyReply, route: RouteTracing): RequestSpan {
    const active = context.active()
    // instrumentation-http's metadata for this very request is on the active context while
    // Fastify routes it. It names the span and sets http.route from `route` when the span ends.
    const rpc = getRPCMetadata(active)
    if (rpc !== undefined && rpc.type === RPC_TYPE_HTTP && rpc.span !== undefined && trace.getSpan(active) === rpc.span && !claimed.has(rpc)) {
      claimed.add(rpc)
      if (route.route !== undefined) rpc.route = route.route
      if (this.announce !== null) this.tell(rpc.span, request, reply)
      return { span: rpc.span, ctx: active, borrowed: true, errorType: undefined, errorMessage: undefined }
    }

    const { name, options } = route.forMethod(request.method)
    const parent = propagation.extract(active, request.headers)
    const span = this.tracer.startSpan(name, options, parent)
    // Before describe(): a warning about the user's requestHook then carries the ids too.
    if (this.announce !== null) this.tell(span, request, reply)
    if (span.isRecording()) this.describe(span, request)
    return { span, ctx: trace.setSpan(parent, span), borrowed: false, errorType: undefined, errorMessage: undefined }
  }

  /** announce(), which must never fail the request: a user's logger or header hook may throw. */
  private tell (span: Span, request: FastifyRequest, reply: FastifyReply): void {
    try {
      (this.announce as Announce)(span, request, reply)
    } catch (err) {
      if (!this.announceFailed) request.log.warn({ err }, 'fastify-observability: telling the trace id to the log or the response failed')
      this.announceFailed = true
    }
  }

  // Nearly every request of a server carries the same Host header: parse it once, not per
  // request (Fastify's hostname/port getters split and run a regex on every access).
  private lastHost: string | undefined = undefined
  private lastAddress = ''
  private lastPort: number | undefined = undefined

  private parseHost (host: string, max: number): void {
    this.lastHost = host
    let address = host
    let port: string | undefined
    if (host[0] === '[') { // [::1]:8080
      const end = host.indexOf(']')
      address = host.slice(0, end + 1)
      if (host[end + 1] === ':') port = host.slice(end + 2)
    } else {
      const colon = host.indexOf(':')
      if (colon !== -1) {
        address = host.slice(0, colon)
        port = host.slice(colon + 1)
      }
    }
    // A malformed port (x:0x50, x:80abc, x:99999, x:) is no port, not a guess.
    const n = port !== undefined && PORT.test(port) ? Number(port) : NaN
    this.lastAddress = truncate(address, max)
    this.lastPort = n > 0 && n < 65536 ? n : undefined
  }

  /** Per-request attributes, only computed for spans that are recorded. */
  private describe (span: Span, request: FastifyRequest): void {
    const url = request.url
    const q = url.indexOf('?')
    const max = this.maxLength ?? (this.maxLength = attributeLengthLimit(process.env, publishedHandle()?.attributeValueLengthLimit))
    span.setAttribute('url.path', truncate(q === -1 ? url : url.slice(0, q), max))
    if (this.options.captureQuery && q !== -1) span.setAttribute('url.query', truncate(url.slice(q + 1), max))
    span.setAttribute('url.scheme', request.protocol)
    const host = request.host // the Host header, or X-Forwarded-Host behind a trusted proxy
    if (host !== this.lastHost) this.parseHost(host, max)
    if (this.lastAddress !== '') span.setAttribute('server.address', this.lastAddress)
    if (this.lastPort !== undefined) span.setAttribute('server.port', this.lastPort)
    if (request.ip) span.setAttribute('client.address', request.ip)
    const ua = headerString(request.headers['user-agent'])
    if (ua !== undefined) span.setAttribute('user_agent.original', truncate(ua, max))
    // Semconv writes HTTP/2 as '2' (and '3'); Node's httpVersion says '2.0'.
    const version = request.raw.httpVersion
    span.setAttribute('network.protocol.version', version === '2.0' ? '2' : version)
    if (this.options.requestHook !== undefined) {
      try {
        this.options.requestHook(span, request)
      } catch (err) {
        request.log.warn({ err }, 'fastify-observability: tracing.requestHook threw')
      }
    }
  }

  /** A thrown or rejected error: an exception event now; the status follows the response code. */
  error (rs: RequestSpan, err: Error): void {
    rs.span.recordException(err)
    // Semconv: the error's class name. A subclass that does not set `name` inherits 'Error'.
    const ctor = (err as { constructor?: { name?: string } }).constructor?.name
    rs.errorType = ctor !== undefined && ctor !== '' && ctor !== 'Object' ? ctor : (err.name || 'Error')
    rs.errorMessage = err.message
  }

  end (rs: RequestSpan, reply: FastifyReply): void {
    const code = reply.statusCode
    const span = rs.span
    // 4xx is the client's fault: UNSET, per the HTTP semantic conventions for SERVER spans.
    if (code >= 500) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: rs.errorMessage })
      span.setAttribute('error.type', rs.errorType ?? String(code))
    }
    if (rs.borrowed) return // instrumentation-http records the status code and ends its own span
    span.setAttribute('http.response.status_code', code)
    span.end()
  }

  /**
   * The connection closed before the response was fully sent (usually the client leaving; also
   * a server-side timeout or a stream failing after the headers went out). Called from the
   * response's 'close' ahead of instrumentation-http's own listener, so a borrowed span is
   * still open to be marked.
   */
  abort (rs: RequestSpan): void {
    rs.span.setAttribute('error.type', 'aborted')
    if (rs.borrowed) return
    rs.span.addEvent('connection closed before the response was sent')
    rs.span.end()
  }
}
