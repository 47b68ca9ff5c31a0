// Option types and the top-level resolve; each section is checked in a file of its own
// (lib/metrics-options.ts, lib/tracing-options.ts, lib/discovery-options.ts, shared checks in
// lib/option-checks.ts). Everything is resolved once at register time; the hot path only ever
// reads the frozen ResolvedOptions.
import { ObservabilityOptionError } from './errors'
import { resolveDiscovery } from './discovery-options'
import { resolveMetrics } from './metrics-options'
import { checkKeys, isPlainObject, resolveGlobs } from './option-checks'
import { resolveTracing } from './tracing-options'
import type { NativeHistogramConfig } from './native-histogram'
import type { FastifyReply, FastifyRequest, onRequestHookHandler, onRequestAsyncHookHandler } from 'fastify'
import type { TracerProvider, Span } from '@opentelemetry/api'

export { DEFAULT_BUCKETS, DEFAULT_MAX_SERIES, DEFAULT_SCRAPE_TIMEOUT } from './metrics-options'

/** The subset of prom-client's (and @prometheus-io/client's) module API this plugin uses. */
export interface PromClientModule {
  Registry: new (...args: any[]) => PromRegistry
  collectDefaultMetrics: (config?: Record<string, unknown>) => void
  register: PromRegistry
}

/** The subset of a prom-client Registry this plugin uses (shared by both client packages). */
export interface PromRegistry {
  registerMetric (metric: any): void
  getSingleMetric (name: string): any
  getSingleMetricAsString (name: string): Promise<string>
  removeSingleMetric (name: string): void
  getMetricsAsArray (): any[]
  getMetricsAsJSON (): Promise<any[]>
  metrics (): Promise<string>
  readonly contentType: string
}

export type CustomLabelFn = (request: FastifyRequest, reply: FastifyReply) => string | number

export interface MetricsOptions {
  /** Path of the exposition route, or false to register no route. Default '/metrics'. */
  endpoint?: string | false
  /**
   * onRequest hook(s) of the exposition route only, to guard it (a bearer token, an IP allow-list):
   * answer 401/403 there and the scrape is not served. Default none.
   */
  guard?: MetricsGuard | MetricsGuard[]
  /** Prefix for the plugin's HTTP metric names, e.g. 'myapp_'. Default ''. */
  prefix?: string
  /** Histogram buckets in seconds. Default: the OpenTelemetry HTTP semantic-convention advice. */
  buckets?: number[]
  /** Record status codes as '2xx', '3xx', ... instead of '200', '404'. Default false. */
  groupStatusCodes?: boolean
  /** Extra labels computed per request. Every distinct value is a new series: keep them bounded. */
  customLabels?: Record<string, CustomLabelFn>
  /** prom-client default process/Node.js metrics: true (default), false, or their config object. */
  defaultMetrics?: boolean | Record<string, unknown>
  /** Registry to register into. Default: a new Registry per plugin instance. */
  registry?: PromRegistry
  /**
   * The Prometheus client module the default metrics come from. Default: the installed one,
   * `@prometheus-io/client` first, then `prom-client` (the one whose Registry `registry` is, if given).
   */
  client?: PromClientModule
  /**
   * A sampled request's trace (`trace_id`, `span_id`) as the exemplar of the duration bucket it
   * lands in, latest wins; served in OpenMetrics only. Default true (needs tracing on).
   */
  exemplars?: boolean
  /**
   * Also set each custom label on the request's span, as an attribute under the same key, so a
   * query by label and a trace search by attribute find the same requests. Default false.
   */
  customLabelsOnSpan?: boolean
  /**
   * Most label sets (series) of the duration histogram; beyond it, requests with new label values
   * are recorded in an overflow series labelled `_overflow`, and a warning is logged once. Default 2000.
   */
  maxSeries?: number
  /**
   * Milliseconds a scrape waits for a metric's collection (a `collect()` of your own, say); one
   * that takes longer, like one that throws, is left out of that scrape. Default 5000.
   */
  scrapeTimeout?: number
  /**
   * Also keep the duration histogram as a Prometheus native histogram (sparse exponential
   * buckets, no bucket layout to choose), served in the protobuf exposition to a Prometheus that
   * asks for it; text and OpenMetrics stay classic. `true` for the defaults, or their settings.
   * Default false.
   */
  nativeHistograms?: boolean | NativeHistogramOptions
}

/** Settings of metrics.nativeHistograms (docs/native-histograms.md). */
export interface NativeHistogramOptions {
  /** Resolution: bucket boundaries grow by 2^(2^-schema); -4 to 8. Default 3 (about 9% wide). */
  schema?: number
  /** Values whose magnitude is at most this go to the zero bucket. Default 2^-128. */
  zeroThreshold?: number
  /** Most populated buckets per series; beyond it the resolution is halved. Default 160. */
  maxBuckets?: number
}

export interface TracingOptions {
  /** Tracer provider to use instead of the global one. */
  tracerProvider?: TracerProvider
  /** Called once per traced request, after the span started, to add attributes. */
  requestHook?: (span: Span, request: FastifyRequest) => void
  /** Record `url.query` (may contain secrets). Default false. */
  captureQuery?: boolean
  /**
   * Answer with the request's trace: `true` sets the W3C `traceresponse` header
   * (`00-{trace-id}-{span-id}-{flags}`); a header name (e.g. 'x-trace-id') sets that header to the
   * trace id. Default false.
   */
  responseHeader?: boolean | string
  /** Add `trace_id`, `span_id` and `trace_flags` to `request.log` of traced requests. Default true. */
  logIds?: boolean
  /**
   * Longest value, in UTF-16 code units, of the span attributes copied from the request (url.path,
   * url.query, user_agent.original, server.address). Default: the limit startTelemetry() gave the
   * SDK in code (`nodeSdk.spanLimits.attributeValueLengthLimit`), else
   * OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT / OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, else 1024. Set it
   * to the `spanLimits.attributeValueLengthLimit` of a NodeSDK of your own. A positive integer.
   */
  maxAttributeLength?: number
}

export interface DiscoveryOptions {
  /**
   * Directory a Prometheus `file_sd_configs` entry reads (`<directory>/*.json`). After `listen` the
   * instance writes its scrape target there, in a file of its own, removed when the app closes.
   * Must exist and be writable at register.
   */
  directory: string
  /** Labels Prometheus attaches to the target's series, e.g. `{ service: 'shop' }`. */
  labels?: Record<string, string>
  /**
   * `host` or `host:port` to announce instead of the listening address, for an app listening on
   * 0.0.0.0 or behind NAT. Without a port, the listening port. A bare IPv6 address is the host,
   * all of it (`2001:db8::1:3000` has no port): `[2001:db8::1]:3000` gives one. No zone id (`%eth0`).
   */
  address?: string
}

export interface ObservabilityOptions {
  /** Globs over route patterns that are observed. Default: every route. */
  include?: string[]
  /** Globs over route patterns that are not observed; wins over include. Default: none. */
  exclude?: string[]
  /** Metrics options, or false to turn metrics off. */
  metrics?: boolean | MetricsOptions
  /** Tracing options, or false to turn tracing off. */
  tracing?: boolean | TracingOptions
  /** Announce the scrape target in a Prometheus file_sd directory after listen. Default: off. */
  discovery?: DiscoveryOptions | false
}

/** An onRequest hook of the exposition route (callback or async style, as Fastify takes them). */
export type MetricsGuard = onRequestHookHandler | onRequestAsyncHookHandler

export interface ResolvedMetrics {
  endpoint: string | false
  guard: MetricsGuard[]
  prefix: string
  buckets: number[]
  groupStatusCodes: boolean
  customLabels: Array<[string, CustomLabelFn]>
  defaultMetrics: false | Record<string, unknown>
  registry: PromRegistry | undefined
  client: PromClientModule
  exemplars: boolean
  customLabelsOnSpan: boolean
  scrapeTimeout: number
  maxSeries: number
  /** null: classic buckets only. */
  nativeHistograms: NativeHistogramConfig | null
}

export interface ResolvedTracing {
  tracerProvider: TracerProvider | undefined
  requestHook: ((span: Span, request: FastifyRequest) => void) | undefined
  captureQuery: boolean
  /** 'traceresponse', a header of the user's (set to the trace id), or null. */
  responseHeader: string | null
  logIds: boolean
  /** undefined: decided at the first recorded span (lib/tracing.ts, attributeLengthLimit). */
  maxAttributeLength: number | undefined
}

export interface ResolvedDiscovery {
  /** Absolute, so a later process.chdir does not move the file. */
  directory: string
  labels: Record<string, string>
  /** From `address`: the host without IPv6 brackets, and the port if one was given. */
  host: string | undefined
  port: number | undefined
  /** metrics.endpoint, the path to scrape (before the register prefix). */
  endpoint: string
}

export interface ResolvedOptions {
  include: string[] | undefined
  exclude: string[]
  metrics: ResolvedMetrics | false
  tracing: ResolvedTracing | false
  discovery: ResolvedDiscovery | false
}

// prefix/logLevel/logSerializers are Fastify's own register options, passed along to every plugin.
const TOP_KEYS = ['include', 'exclude', 'metrics', 'tracing', 'discovery', 'prefix', 'logLevel', 'logSerializers']

export function resolveOptions (options: unknown): ResolvedOptions {
  if (options === undefined || options === null) options = {}
  if (!isPlainObject(options)) throw new ObservabilityOptionError('options', options, 'must be an object')
  checkKeys(options, TOP_KEYS, '')
  // Fastify's own register options are fine here but are not ours to validate.
  const metrics = resolveMetrics(options.metrics)
  const tracing = resolveTracing(options.tracing)
  // Exemplars name a trace: none without tracing.
  if (metrics !== false && tracing === false) metrics.exemplars = false
  return {
    include: resolveGlobs(options.include, 'include'),
    exclude: resolveGlobs(options.exclude, 'exclude') ?? [],
    metrics,
    tracing,
    discovery: resolveDiscovery(options.discovery, metrics)
  }
}
