// The HTTP instruments and the record step.
//
// The two HTTP instruments are series-backed (lib/instruments.ts). A series is found once per
// route/method/status and cached on the route, so recording a request is a bucket search and
// three additions: no label object, no hashing, no validation per request.
import type { Span } from '@opentelemetry/api'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { CustomLabelFn, PromRegistry, ResolvedMetrics } from './options'
import { SeriesGauge, SeriesHistogram } from './instruments'
import { wallSeconds } from './wall-clock'
import { tellOperator } from './tell-operator'
import { ObservabilityOptionError } from './errors'
import { truncate } from './truncate'
import type { GaugeSeries, HistogramSeries } from './instruments'

/** Methods recorded under their own name; anything else is `_OTHER` (OpenTelemetry semconv). */
export const KNOWN_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE'])
export const OTHER_METHOD = '_OTHER'
/** `http_route` of requests that matched no route: one fixed value, so random URLs add no series. */
export const UNMATCHED_ROUTE = 'unmatched'

/** TraceFlags.SAMPLED */
const SAMPLED = 1

export const DURATION_NAME = 'http_server_request_duration_seconds'
export const ACTIVE_NAME = 'http_server_active_requests'
/**
 * Longest custom label value kept, in UTF-16 code units: a value is a series' identity, stored once
 * per series and rendered on every bucket line of every scrape.
 */
export const MAX_LABEL_LENGTH = 128

export function normalizeMethod (method: string): string {
  return KNOWN_METHODS.has(method) ? method : OTHER_METHOD
}

/** The series one (route, method) pair records into; created once, cached on the route. */
export class MethodSeries {
  readonly byStatus: Array<HistogramSeries | undefined> = []

  constructor (private readonly metrics: HttpMetrics, readonly route: string, readonly method: string, readonly active: GaugeSeries) {}

  /** A request of this route and method started: in flight until `end`. */
  begin (): void {
    this.active.value++
  }

  /**
   * The record step. The request left flight; if it was answered (fully sent), its duration goes
   * into the series of its status code, found once and then cached here: no label object, no
   * hashing per request. A sampled span's ids become the bucket's exemplar (when exemplars are on,
   * the series has slots for them). `start` and `now` are performance.now() readings.
   */
  end (answered: boolean, request: FastifyRequest, reply: FastifyReply, start: number, now: number, span: Span | null): void {
    this.active.value--
    if (!answered) return
    const seconds = (now - start) / 1000
    const s = this.metrics.customLabels.length === 0 ? this.forStatus(reply.statusCode) : this.metrics.seriesWithCustomLabels(this, request, reply, span)
    if (span !== null && this.metrics.exemplars) {
      const sc = span.spanContext()
      if ((sc.traceFlags & SAMPLED) !== 0) {
        s.observeWithExemplar(seconds, sc.traceId, sc.spanId, wallSeconds(now))
        return
      }
    }
    s.observe(seconds)
  }

  forStatus (statusCode: number): HistogramSeries {
    let s = this.byStatus[statusCode]
    if (s === undefined) {
      s = this.metrics.duration.seriesFor([this.method, this.route, this.metrics.statusLabel(statusCode)])
      this.byStatus[statusCode] = s
    }
    return s
  }
}

/** Per-route metrics state, computed in onRoute. */
export class RouteMetrics {
  private readonly byMethod: Record<string, MethodSeries> = Object.create(null)

  constructor (private readonly metrics: HttpMetrics, readonly route: string) {}

  /** For matched routes the router only lets the route's own methods through, so this stays bounded. */
  forMethod (method: string): MethodSeries {
    return this.byMethod[method] ?? this.create(method)
  }

  private create (rawMethod: string): MethodSeries {
    const method = normalizeMethod(rawMethod)
    const ms = this.byMethod[method] ?? new MethodSeries(this.metrics, this.route, method, this.metrics.active.seriesFor(method))
    this.byMethod[method] = ms
    // Only known methods are cached under their raw name; others are looked up via _OTHER each time.
    if (rawMethod === method) this.byMethod[rawMethod] = ms
    return ms
  }
}

/**
 * What plugin instances registered in each registry and how many instances use each metric, so
 * that closing one of two instances sharing a registry does not pull metrics from the other.
 */
interface RegistryUse {
  users: Map<string, number>
  /** Names of the default metrics a plugin instance registered here (empty: none, or the user's). */
  defaultMetrics: string[]
}
const registryUse = new WeakMap<PromRegistry, RegistryUse>()

function useOf (registry: PromRegistry): RegistryUse {
  let use = registryUse.get(registry)
  if (use === undefined) {
    use = { users: new Map(), defaultMetrics: [] }
    registryUse.set(registry, use)
  }
  return use
}

export class HttpMetrics {
  readonly registry: PromRegistry
  readonly duration: SeriesHistogram
  readonly active: SeriesGauge
  readonly unmatched: RouteMetrics
  readonly customLabels: ReadonlyArray<[string, CustomLabelFn]>
  /** options.exemplars, read per request. */
  readonly exemplars: boolean
  private readonly owned: string[] = []
  private readonly groupStatusCodes: boolean
  private readonly statusLabels: string[] = []
  /** Per custom label, whether its function threw once already: logged once, not per request. */
  private readonly labelThrew: boolean[]
  private overflowTold = false

  constructor (readonly options: ResolvedMetrics) {
    const client = options.client
    this.registry = options.registry ?? new client.Registry()
    this.groupStatusCodes = options.groupStatusCodes
    this.customLabels = options.customLabels
    this.labelThrew = options.customLabels.map(() => false)
    this.exemplars = options.exemplars

    const labelNames = ['http_request_method', 'http_route', 'http_response_status_code', ...options.customLabels.map(([name]) => name)]
    this.duration = this.adopt(new SeriesHistogram(
      options.prefix + DURATION_NAME,
      'Duration of HTTP server requests, in seconds. Its _count is the number of requests.',
      labelNames,
      options.buckets,
      // Only custom labels can grow the series without bound: the plugin's own are bounded by the
      // routes (an app of thousands of routes is not an overflow). An overflow series keeps method, route
      // and status, so request rates, error ratios and latency by route stay right.
      options.customLabels.length > 0 ? options.maxSeries : Infinity,
      3,
      options.nativeHistograms
    ))
    this.active = this.adopt(new SeriesGauge(options.prefix + ACTIVE_NAME, 'Number of HTTP server requests in flight.', 'http_request_method'))
    this.unmatched = new RouteMetrics(this, UNMATCHED_ROUTE)

    if (options.defaultMetrics !== false) {
      const config = { ...options.defaultMetrics, register: this.registry }
      const probe = ((config as { prefix?: string }).prefix ?? '') + 'process_cpu_user_seconds_total'
      const use = useOf(this.registry)
      // A shared registry may already collect them (another instance, or the user): don't register twice.
      if (this.registry.getSingleMetric(probe) === undefined) {
        const before = new Set(this.registry.getMetricsAsArray().map((m) => m.name as string))
        client.collectDefaultMetrics(config)
        use.defaultMetrics = this.registry.getMetricsAsArray().map((m) => m.name as string).filter((name) => !before.has(name))
        for (const name of use.defaultMetrics) this.use(name)
      } else if (use.defaultMetrics.includes(probe)) {
        for (const name of use.defaultMetrics) this.use(name)
      }
    }
  }

  /**
   * Register a metric, or reuse the same-named metric of the same shape a previous instance left in
   * a shared registry (two Fastify instances, one registry): anything else is a clear error.
   */
  private adopt<T extends SeriesHistogram | SeriesGauge> (metric: T): T {
    const existing = this.registry.getSingleMetric(metric.name)
    if (existing !== undefined) {
      if (existing.constructor === metric.constructor && sameShape(existing, metric)) {
        if (metric instanceof SeriesHistogram) checkSharedSettings(existing as SeriesHistogram, metric)
        this.use(metric.name)
        return existing as T
      }
      throw new Error(`fastify-observability: the registry already has a different metric named "${metric.name}"; set metrics.prefix or pass another metrics.registry`)
    }
    this.registry.registerMetric(metric)
    this.use(metric.name)
    return metric
  }

  private use (name: string): void {
    const users = useOf(this.registry).users
    users.set(name, (users.get(name) ?? 0) + 1)
    this.owned.push(name)
  }

  forRoute (route: string): RouteMetrics {
    return new RouteMetrics(this, route)
  }

  /**
   * Custom labels are the user's functions of the request: their values are not known per route,
   * so these series are looked up by label values on every request. A throwing function records ""
   * (and is logged the first time only: a warning with a stack per request would flood the log);
   * a long value is cut to MAX_LABEL_LENGTH.
   */
  seriesWithCustomLabels (series: MethodSeries, request: FastifyRequest, reply: FastifyReply, span: Span | null): HistogramSeries {
    const values = [series.method, series.route, this.statusLabel(reply.statusCode)]
    for (const [name, fn] of this.customLabels) {
      let v: string
      try {
        v = truncate(String(fn(request, reply)), MAX_LABEL_LENGTH)
      } catch (err) {
        const i = values.length - 3
        if (!this.labelThrew[i]) {
          this.labelThrew[i] = true
          request.log.warn({ err }, `fastify-observability: metrics.customLabels.${name} threw; recorded as "" (logged once: later throws of this label are not)`)
        }
        v = ''
      }
      values.push(v)
    }
    // One vocabulary: the same key and value on the span (still open: tracing ends it after this).
    if (this.options.customLabelsOnSpan && span !== null && span.isRecording()) {
      for (let i = 0; i < this.customLabels.length; i++) span.setAttribute(this.customLabels[i][0], values[3 + i])
    }
    const s = this.duration.seriesFor(values)
    if (this.duration.overflowed && !this.overflowTold) this.tellOverflow(request.log)
    return s
  }

  /** Once per instance: the duration histogram refused a label set for metrics.maxSeries. */
  private tellOverflow (log: FastifyBaseLogger): void {
    this.overflowTold = true
    const name = this.duration.name
    const message = `fastify-observability: ${name} reached metrics.maxSeries (${this.duration.maxSeries} label sets); ` +
      'requests with new label values are recorded in series whose custom labels are "_overflow". ' +
      'Bound the values of metrics.customLabels, or raise metrics.maxSeries'
    tellOperator(log, 'warn', { metric: name, maxSeries: this.duration.maxSeries }, message, 'FST_OBSERVABILITY_METRICS_OVERFLOW')
  }

  statusLabel (code: number): string {
    return (this.statusLabels[code] ??= this.groupStatusCodes ? `${Math.floor(code / 100)}xx` : String(code))
  }

  /** Release what this instance registered, once no other instance uses it (the registry may outlive us). */
  close (): void {
    const use = useOf(this.registry)
    const users = use.users
    for (const name of this.owned) {
      const left = (users.get(name) ?? 1) - 1
      if (left > 0) {
        users.set(name, left)
      } else {
        users.delete(name)
        this.registry.removeSingleMetric(name)
        use.defaultMetrics = use.defaultMetrics.filter((n) => n !== name)
      }
    }
    this.owned.length = 0
  }
}

function sameShape (a: any, b: any): boolean {
  if (a instanceof SeriesHistogram) {
    return a.labelNames.join() === b.labelNames.join() && a.upperBounds.join() === b.upperBounds.join()
  }
  return a.labelName === b.labelName
}

/**
 * The settings a shared histogram has once for all its users: a second instance asking for others
 * would silently get the first one's. A clear error at register instead, naming the option.
 */
function checkSharedSettings (existing: SeriesHistogram, mine: SeriesHistogram): void {
  const shared = `the value of the other plugin instance sharing "${existing.name}" in this registry (or set metrics.prefix)`
  if (existing.maxSeries !== mine.maxSeries) {
    throw new ObservabilityOptionError('metrics.maxSeries', mine.maxSeries, `must be ${String(existing.maxSeries)}, ${shared}`)
  }
  if (JSON.stringify(existing.native) !== JSON.stringify(mine.native)) {
    throw new ObservabilityOptionError('metrics.nativeHistograms', mine.native ?? false, `must be ${JSON.stringify(existing.native ?? false)}, ${shared}`)
  }
}
