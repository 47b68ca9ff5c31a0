// The plugin's errors, made with @fastify/error as Fastify's own are: each has a stable `code`
// to match on (`err.code === 'FST_OBSERVABILITY_INVALID_OPTION'`) and a message that says what to do.
import createError from '@fastify/error'

const InvalidOption = createError('FST_OBSERVABILITY_INVALID_OPTION', 'fastify-observability: option "%s" %s, got %s')

/** An invalid option, at register time: names the option, what it must be, and the value given. */
export class ObservabilityOptionError extends InvalidOption {
  constructor (option: string, value: unknown, expected: string) {
    super(option, expected, show(value))
    this.name = 'ObservabilityOptionError'
  }
}

/** The plugin registered a second time where the first one's hooks and decorators are visible. */
export const AlreadyRegisteredError = createError(
  'FST_OBSERVABILITY_ALREADY_REGISTERED',
  'fastify-observability is already registered in this Fastify instance or one of its parents: register it once, with the metrics and tracing options in the same options object'
)

/** Metrics are on but no Prometheus client module is installed (neither is a dependency). */
export const MetricsClientMissingError = createError(
  'FST_OBSERVABILITY_METRICS_CLIENT_MISSING',
  'fastify-observability: metrics need a Prometheus client module: npm install @prometheus-io/client (Node 22 and later) or npm install prom-client (Node 20); or register with metrics: false'
)

function show (value: unknown): string {
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`
  if (typeof value === 'string') return JSON.stringify(value)
  // JSON has no NaN or Infinity (it writes null): say what was given.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  try {
    const s = JSON.stringify(value)
    if (s !== undefined) return s.length > 120 ? s.slice(0, 117) + '...' : s
  } catch {}
  return String(value)
}
