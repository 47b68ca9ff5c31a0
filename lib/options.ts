// Option types, defaults and validation. Everything is resolved once at register time;
// the hot path only ever reads the frozen ResolvedOptions.
import picomatch from 'picomatch'
import { accessSync, constants as fsConstants, statSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import { parseAddress } from './discovery'
import { MetricsClientMissingError, ObservabilityOptionError } from './errors'
import { installedClient } from './metrics-client'
import { DEFAULT_NATIVE_CONFIG, invalidSetting } from './native-histogram'
import type { NativeHistogramConfig } from './native-histogram'
import type { FastifyReply, FastifyRequest, onRequestHookHandler, onRequestAsyncHookHandler } from 'fastify'
import type { TracerProvider, Span } from '@opentelemetry/api'

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

/** OpenTelemetry's advice for http.server.request.duration, in seconds. */
export const DEFAULT_BUCKETS = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10])
/** Half of Prometheus' default scrape_timeout (10 s): the scrape is answered before Prometheus gives up on it. */
export const DEFAULT_SCRAPE_TIMEOUT = 5000
/** setTimeout's largest delay; a longer one fires at once. */
const MAX_TIMEOUT = 2 ** 31 - 1

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const RESERVED_LABELS = new Set(['http_request_method', 'http_route', 'http_response_status_code', 'le', 'quantile'])

// prefix/logLevel/logSerializers are Fastify's own register options, passed along to every plugin.
const TOP_KEYS = ['include', 'exclude', 'metrics', 'tracing', 'discovery', 'prefix', 'logLevel', 'logSerializers']
const METRICS_KEYS = ['endpoint', 'guard', 'prefix', 'buckets', 'groupStatusCodes', 'customLabels', 'defaultMetrics', 'registry', 'client', 'exemplars', 'customLabelsOnSpan', 'scrapeTimeout', 'maxSeries', 'nativeHistograms']
const TRACING_KEYS = ['tracerProvider', 'requestHook', 'captureQuery', 'responseHeader', 'logIds', 'maxAttributeLength']
const DISCOVERY_KEYS = ['directory', 'labels', 'address']
/** Headers whose meaning a trace id would break: not accepted as tracing.responseHeader. */
const RESERVED_RESPONSE_HEADERS = new Set(['age', 'allow', 'cache-control', 'connection', 'content-encoding', 'content-length', 'content-location', 'content-range', 'content-type', 'date', 'etag', 'expires', 'keep-alive', 'last-modified', 'location', 'proxy-authenticate', 'retry-after', 'server', 'set-cookie', 'trailer', 'transfer-encoding', 'upgrade', 'vary', 'www-authenticate'])
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** What the plugin calls on a registry (PromRegistry), checked at register. */
const REGISTRY_METHODS = ['registerMetric', 'getSingleMetric', 'getSingleMetricAsString', 'removeSingleMetric', 'getMetricsAsArray'] as const

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function checkKeys (obj: Record<string, unknown>, allowed: string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new ObservabilityOptionError(path + key, obj[key], `is not a known option (known: ${allowed.join(', ')})`)
    }
  }
}

function checkBoolean (value: unknown, name: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') throw new ObservabilityOptionError(name, value, 'must be a boolean')
  return value as boolean | undefined
}

function resolveGlobs (value: unknown, name: string): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value)) throw new ObservabilityOptionError(name, value, 'must be an array of glob strings')
  value.forEach((glob, i) => {
    if (typeof glob !== 'string' || glob.length === 0) {
      throw new ObservabilityOptionError(`${name}[${i}]`, glob, 'must be a non-empty glob string')
    }
    // Route patterns always start with '/', so a glob that does not can never match: a typo.
    if (glob[0] !== '/' && glob[0] !== '*') {
      throw new ObservabilityOptionError(`${name}[${i}]`, glob, "must start with '/' or '*' (globs match route patterns like /api/users/:id)")
    }
    try {
      picomatch.makeRe(glob, { strictBrackets: true, dot: true })
    } catch (err) {
      throw new ObservabilityOptionError(`${name}[${i}]`, glob, `is not a valid glob (${(err as Error).message})`)
    }
  })
  return [...value]
}

function resolveMetrics (value: unknown): ResolvedMetrics | false {
  if (value === false) return false
  if (value === undefined || value === true) value = {}
  if (!isPlainObject(value)) throw new ObservabilityOptionError('metrics', value, 'must be false or an object')
  checkKeys(value, METRICS_KEYS, 'metrics.')
  const o = value as MetricsOptions

  let endpoint: string | false = '/metrics'
  if (o.endpoint !== undefined) {
    if (o.endpoint !== false && (typeof o.endpoint !== 'string' || o.endpoint[0] !== '/')) {
      throw new ObservabilityOptionError('metrics.endpoint', o.endpoint, "must be a path starting with '/' or false")
    }
    endpoint = o.endpoint
  }

  const guard = o.guard === undefined ? [] : Array.isArray(o.guard) ? [...o.guard] : [o.guard]
  if (guard.some((g) => typeof g !== 'function')) {
    throw new ObservabilityOptionError('metrics.guard', o.guard, 'must be an onRequest hook (request, reply[, done]) or an array of them')
  }
  if (guard.length > 0 && endpoint === false) {
    throw new ObservabilityOptionError('metrics.guard', o.guard, 'guards the metrics route, but metrics.endpoint is false: add the hook to the route that serves app.metrics.handler')
  }

  const prefix = o.prefix ?? ''
  if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_NAME.test(prefix))) {
    throw new ObservabilityOptionError('metrics.prefix', o.prefix, 'must be a string of letters, digits, _ and : not starting with a digit')
  }

  let buckets = [...DEFAULT_BUCKETS]
  if (o.buckets !== undefined) {
    if (!Array.isArray(o.buckets) || o.buckets.length === 0) {
      throw new ObservabilityOptionError('metrics.buckets', o.buckets, 'must be a non-empty array of numbers')
    }
    for (let i = 0; i < o.buckets.length; i++) {
      const b = o.buckets[i]
      if (typeof b !== 'number' || !Number.isFinite(b)) {
        throw new ObservabilityOptionError('metrics.buckets', o.buckets, `must hold finite numbers (index ${i} is not)`)
      }
      if (i > 0 && b <= o.buckets[i - 1]) {
        throw new ObservabilityOptionError('metrics.buckets', o.buckets, 'must be strictly increasing')
      }
    }
    buckets = [...o.buckets]
  }

  const groupStatusCodes = checkBoolean(o.groupStatusCodes, 'metrics.groupStatusCodes') ?? false

  const customLabels: Array<[string, CustomLabelFn]> = []
  if (o.customLabels !== undefined) {
    if (!isPlainObject(o.customLabels)) {
      throw new ObservabilityOptionError('metrics.customLabels', o.customLabels, 'must be an object of label name to function')
    }
    for (const [label, fn] of Object.entries(o.customLabels)) {
      if (!LABEL_NAME.test(label) || label.startsWith('__') || RESERVED_LABELS.has(label)) {
        throw new ObservabilityOptionError(`metrics.customLabels.${label}`, label, 'must be a valid Prometheus label name not used by the plugin')
      }
      if (typeof fn !== 'function') {
        throw new ObservabilityOptionError(`metrics.customLabels.${label}`, fn, 'must be a function (request, reply) => string')
      }
      customLabels.push([label, fn])
    }
  }

  let defaultMetrics: false | Record<string, unknown> = {}
  if (o.defaultMetrics === false) defaultMetrics = false
  else if (isPlainObject(o.defaultMetrics)) defaultMetrics = { ...o.defaultMetrics }
  else if (o.defaultMetrics !== undefined && o.defaultMetrics !== true) {
    throw new ObservabilityOptionError('metrics.defaultMetrics', o.defaultMetrics, 'must be a boolean or a prom-client collectDefaultMetrics config object')
  }

  if (o.registry !== undefined && (o.registry === null || typeof o.registry !== 'object' || REGISTRY_METHODS.some((m) => typeof (o.registry as PromRegistry)[m] !== 'function'))) {
    throw new ObservabilityOptionError('metrics.registry', o.registry, 'must be a prom-client Registry')
  }

  let client: PromClientModule
  if (o.client !== undefined) {
    const c = o.client as Partial<PromClientModule> | null
    if (c === null || typeof c !== 'object' || typeof c.Registry !== 'function' || typeof c.collectDefaultMetrics !== 'function') {
      throw new ObservabilityOptionError('metrics.client', o.client, "must be the prom-client module (e.g. require('@prometheus-io/client'))")
    }
    client = c as PromClientModule
  } else {
    const found = installedClient(o.registry)
    if (found === undefined) throw new MetricsClientMissingError()
    client = found
  }

  return {
    endpoint,
    guard,
    prefix,
    buckets,
    groupStatusCodes,
    customLabels,
    defaultMetrics,
    registry: o.registry,
    client,
    exemplars: checkBoolean(o.exemplars, 'metrics.exemplars') ?? true,
    customLabelsOnSpan: checkBoolean(o.customLabelsOnSpan, 'metrics.customLabelsOnSpan') ?? false,
    scrapeTimeout: resolveScrapeTimeout(o.scrapeTimeout),
    maxSeries: resolveMaxSeries(o.maxSeries),
    nativeHistograms: resolveNativeHistograms(o.nativeHistograms)
  }
}

function resolveNativeHistograms (value: unknown): NativeHistogramConfig | null {
  if (value === undefined || value === false) return null
  if (value === true) value = {}
  if (!isPlainObject(value)) throw new ObservabilityOptionError('metrics.nativeHistograms', value, 'must be a boolean or { schema, zeroThreshold, maxBuckets }')
  checkKeys(value, ['schema', 'zeroThreshold', 'maxBuckets'], 'metrics.nativeHistograms.')
  const { schema = DEFAULT_NATIVE_CONFIG.schema, zeroThreshold = DEFAULT_NATIVE_CONFIG.zeroThreshold, maxBuckets = DEFAULT_NATIVE_CONFIG.maxBuckets } = value
  const config = { schema, zeroThreshold, maxBuckets }
  const wrong = invalidSetting(config)
  if (wrong !== null) throw new ObservabilityOptionError(`metrics.nativeHistograms.${wrong.setting}`, config[wrong.setting], wrong.expected)
  return config as NativeHistogramConfig
}

/** OpenTelemetry SDK's default cardinality limit per metric. */
export const DEFAULT_MAX_SERIES = 2000

function resolveMaxSeries (value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_SERIES
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ObservabilityOptionError('metrics.maxSeries', value, 'must be a positive integer')
  }
  return value
}

function resolveScrapeTimeout (value: unknown): number {
  if (value === undefined) return DEFAULT_SCRAPE_TIMEOUT
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT) {
    throw new ObservabilityOptionError('metrics.scrapeTimeout', value, `must be a positive finite number of milliseconds (at most ${MAX_TIMEOUT})`)
  }
  return value
}

function resolveTracing (value: unknown): ResolvedTracing | false {
  if (value === false) return false
  if (value === undefined || value === true) value = {}
  if (!isPlainObject(value)) throw new ObservabilityOptionError('tracing', value, 'must be false or an object')
  checkKeys(value, TRACING_KEYS, 'tracing.')
  const o = value as TracingOptions
  if (o.tracerProvider !== undefined && (o.tracerProvider === null || typeof (o.tracerProvider as TracerProvider).getTracer !== 'function')) {
    throw new ObservabilityOptionError('tracing.tracerProvider', o.tracerProvider, 'must be an OpenTelemetry TracerProvider')
  }
  if (o.requestHook !== undefined && typeof o.requestHook !== 'function') {
    throw new ObservabilityOptionError('tracing.requestHook', o.requestHook, 'must be a function (span, request) => void')
  }
  return {
    tracerProvider: o.tracerProvider,
    requestHook: o.requestHook,
    captureQuery: checkBoolean(o.captureQuery, 'tracing.captureQuery') ?? false,
    responseHeader: resolveResponseHeader(o.responseHeader),
    logIds: checkBoolean(o.logIds, 'tracing.logIds') ?? true,
    maxAttributeLength: resolveMaxAttributeLength(o.maxAttributeLength)
  }
}

function resolveMaxAttributeLength (value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ObservabilityOptionError('tracing.maxAttributeLength', value, 'must be a positive integer (UTF-16 code units)')
  }
  return value
}

function resolveResponseHeader (value: unknown): string | null {
  if (value === undefined || value === false) return null
  if (value === true) return 'traceresponse'
  if (typeof value !== 'string' || !HEADER_NAME.test(value)) {
    throw new ObservabilityOptionError('tracing.responseHeader', value, 'must be a boolean or an HTTP header name')
  }
  if (RESERVED_RESPONSE_HEADERS.has(value.toLowerCase())) {
    throw new ObservabilityOptionError('tracing.responseHeader', value, 'must not be a header with a meaning of its own in HTTP (choose e.g. "x-trace-id")')
  }
  return value.toLowerCase()
}

function resolveDiscovery (value: unknown, metrics: ResolvedMetrics | false): ResolvedDiscovery | false {
  if (value === undefined || value === false) return false
  if (!isPlainObject(value)) throw new ObservabilityOptionError('discovery', value, 'must be false or an object { directory, labels?, address? }')
  checkKeys(value, DISCOVERY_KEYS, 'discovery.')
  // Nothing to scrape: better said at register than found out as a target that never comes up.
  if (metrics === false) {
    throw new ObservabilityOptionError('discovery', value, 'needs the metrics endpoint, but metrics is false: there is nothing to scrape')
  }
  if (metrics.endpoint === false) {
    throw new ObservabilityOptionError('discovery', value, 'needs the metrics endpoint, but metrics.endpoint is false: there is nothing to scrape here (announce the route or port that serves app.metrics.handler with a file_sd entry of your own)')
  }
  const o = value as Partial<DiscoveryOptions>
  return {
    directory: resolveDirectory(o.directory),
    labels: resolveTargetLabels(o.labels),
    ...resolveAddress(o.address),
    endpoint: metrics.endpoint
  }
}

// Checked at register so that a typo fails the start-up, not a write after listen that only logs.
function resolveDirectory (value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new ObservabilityOptionError('discovery.directory', value, 'must be a non-empty path to a directory')
  }
  const directory = resolvePath(value)
  let isDirectory: boolean
  try {
    isDirectory = statSync(directory).isDirectory()
  } catch (err) {
    throw new ObservabilityOptionError('discovery.directory', value, `must be an existing directory (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  if (!isDirectory) throw new ObservabilityOptionError('discovery.directory', value, 'must be a directory (it is a file)')
  try {
    // W for the temp file and the rename, X to reach entries in it.
    accessSync(directory, fsConstants.W_OK | fsConstants.X_OK)
  } catch (err) {
    throw new ObservabilityOptionError('discovery.directory', value, `must be a directory this process can write to (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  return directory
}

function resolveTargetLabels (value: unknown): Record<string, string> {
  if (value === undefined) return {}
  if (!isPlainObject(value)) throw new ObservabilityOptionError('discovery.labels', value, 'must be an object of label name to string value')
  const labels: Record<string, string> = {}
  for (const [name, v] of Object.entries(value)) {
    // __-prefixed labels are Prometheus' own (__metrics_path__, __scheme__, ...): set by the plugin.
    if (!LABEL_NAME.test(name) || name.startsWith('__')) {
      throw new ObservabilityOptionError(`discovery.labels.${name}`, name, 'must be a valid Prometheus label name (letters, digits and _, not starting with a digit or __)')
    }
    if (typeof v !== 'string') throw new ObservabilityOptionError(`discovery.labels.${name}`, v, 'must be a string')
    labels[name] = v
  }
  return labels
}

// The address rules are discovery's (lib/discovery.ts, with the target they make); the error is the options'.
function resolveAddress (value: unknown): { host: string | undefined, port: number | undefined } {
  if (value === undefined) return { host: undefined, port: undefined }
  const parsed = parseAddress(value)
  if ('invalid' in parsed) throw new ObservabilityOptionError('discovery.address', value, parsed.invalid)
  return parsed
}

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
