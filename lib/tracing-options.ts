// The tracing section of the options (tracing.*).
import { ObservabilityOptionError } from './errors'
import { checkBoolean, checkKeys, isPlainObject } from './option-checks'
import type { ResolvedTracing, TracingOptions } from './options'
import type { TracerProvider } from '@opentelemetry/api'

const TRACING_KEYS = ['tracerProvider', 'requestHook', 'captureQuery', 'responseHeader', 'logIds', 'maxAttributeLength']
/** Headers whose meaning a trace id would break: not accepted as tracing.responseHeader. */
const RESERVED_RESPONSE_HEADERS = new Set(['age', 'allow', 'cache-control', 'connection', 'content-encoding', 'content-length', 'content-location', 'content-range', 'content-type', 'date', 'etag', 'expires', 'keep-alive', 'last-modified', 'location', 'proxy-authenticate', 'retry-after', 'server', 'set-cookie', 'trailer', 'transfer-encoding', 'upgrade', 'vary', 'www-authenticate'])
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

export function resolveTracing (value: unknown): ResolvedTracing | false {
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
