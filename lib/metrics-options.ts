// The metrics section of the options (metrics.*), and its defaults.
import { MetricsClientMissingError, ObservabilityOptionError } from './errors'
import { installedClient } from './metrics-client'
import { DEFAULT_NATIVE_CONFIG, invalidSetting } from './native-histogram'
import type { NativeHistogramConfig } from './native-histogram'
import { checkBoolean, checkKeys, isPlainObject, LABEL_NAME } from './option-checks'
import type { CustomLabelFn, MetricsOptions, PromClientModule, PromRegistry, ResolvedMetrics } from './options'

/** OpenTelemetry's advice for http.server.request.duration, in seconds. */
export const DEFAULT_BUCKETS = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10])
/** Half of Prometheus' default scrape_timeout (10 s): the scrape is answered before Prometheus gives up on it. */
export const DEFAULT_SCRAPE_TIMEOUT = 5000
/** OpenTelemetry SDK's default cardinality limit per metric. */
export const DEFAULT_MAX_SERIES = 2000
/** setTimeout's largest delay; a longer one fires at once. */
const MAX_TIMEOUT = 2 ** 31 - 1

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const RESERVED_LABELS = new Set(['http_request_method', 'http_route', 'http_response_status_code', 'le', 'quantile'])
const METRICS_KEYS = ['endpoint', 'guard', 'prefix', 'buckets', 'groupStatusCodes', 'customLabels', 'defaultMetrics', 'registry', 'client', 'exemplars', 'customLabelsOnSpan', 'scrapeTimeout', 'maxSeries', 'nativeHistograms']
/** What the plugin calls on a registry (PromRegistry), checked at register. */
const REGISTRY_METHODS = ['registerMetric', 'getSingleMetric', 'getSingleMetricAsString', 'removeSingleMetric', 'getMetricsAsArray'] as const

export function resolveMetrics (value: unknown): ResolvedMetrics | false {
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
