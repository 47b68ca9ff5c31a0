// Configuration: options over OTEL_* variables, validated before anything starts. Every problem is
// collected into ONE TelemetryConfigError naming the option or variable and its value. What the SDK
// reads well itself (OTEL_EXPORTER_OTLP_HEADERS/TIMEOUT/COMPRESSION in the exporters, OTEL_PROPAGATORS,
// span limits, OTEL_RESOURCE_ATTRIBUTES) is left to it. OTEL_BSP_* is read here: sdk-trace's
// BatchSpanProcessor (unlike sdk-trace-base's) does not read it, in either SDK line.
import type { BatchOptions, OtlpOptions, ResolvedTelemetryConfig, Sampler, SamplerName, TelemetryOptions, TraceExporterName } from './options'
import { envString, firstSet, parseBool, quote } from './env'
import { TelemetryConfigError } from './errors'
import { resolveJaeger, resolveOtlp } from './exporter-config'
import type { JaegerExporterConfig } from './exporter-config'
import { sdkLine, sdkNodeVersion } from './packages'

export const EXPORTER_NAMES: readonly TraceExporterName[] = ['otlp', 'jaeger', 'console', 'none']
export const SAMPLER_NAMES: readonly SamplerName[] = [
  'always_on', 'always_off', 'traceidratio',
  'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'
]

const BATCH_ENV: Array<[keyof BatchOptions, string]> = [
  ['scheduledDelayMillis', 'OTEL_BSP_SCHEDULE_DELAY'],
  ['maxQueueSize', 'OTEL_BSP_MAX_QUEUE_SIZE'],
  ['maxExportBatchSize', 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE'],
  ['exportTimeoutMillis', 'OTEL_BSP_EXPORT_TIMEOUT']
]

/** The batch span processor's settings: each option over its OTEL_BSP_* variable, over sdk-trace's default. */
function resolveBatch (options: TelemetryOptions, env: NodeJS.ProcessEnv, issues: string[]): BatchOptions {
  const out: BatchOptions = {}
  for (const [key, name] of BATCH_ENV) {
    const set = firstSet<number | string>([`options.batch.${key}`, options.batch?.[key]], [name, envString(env, name)])
    if (set === undefined) continue
    const [source, raw] = set
    const n = typeof raw === 'number' ? raw : /^\d+$/.test(raw) ? Number(raw) : NaN
    if (!Number.isSafeInteger(n) || n < (key === 'scheduledDelayMillis' ? 0 : 1)) {
      issues.push(`${source}=${quote(raw)} must be ${key === 'scheduledDelayMillis' ? 'a non-negative' : 'a positive'} integer`)
    } else out[key] = n
  }
  return out
}

export interface ResolvedInternal {
  public: ResolvedTelemetryConfig
  batch: BatchOptions
  /** The user's sampler instance; otherwise `public.sampler` names the one to build. */
  sampler?: Sampler
  exporterNames: Array<Exclude<TraceExporterName, 'none'>>
  otlpOptions: OtlpOptions
  jaegerConfig?: JaegerExporterConfig
  jaegerForceUdp: boolean
}

function resolveExporterNames (options: TelemetryOptions, env: NodeJS.ProcessEnv, issues: string[]): Array<Exclude<TraceExporterName, 'none'>> {
  if (options.traceExporter !== undefined) return []
  let names: string[]
  let source: string
  if (options.exporter !== undefined) {
    names = Array.isArray(options.exporter) ? options.exporter : [options.exporter]
    source = 'options.exporter'
  } else {
    const raw = envString(env, 'OTEL_TRACES_EXPORTER')
    names = raw === undefined ? [] : raw.split(',').map(s => s.trim()).filter(Boolean)
    source = 'OTEL_TRACES_EXPORTER'
    if (names.length === 0) names = ['otlp']
  }
  const out: TraceExporterName[] = []
  for (const n of names) {
    if (!(EXPORTER_NAMES as readonly string[]).includes(n)) {
      issues.push(`${source}=${quote(n)} is not a supported trace exporter (expected one of ${EXPORTER_NAMES.join(', ')})`)
    } else if (!out.includes(n as TraceExporterName)) out.push(n as TraceExporterName)
  }
  if (out.includes('none') && out.length > 1) {
    issues.push(`${source}=${quote(names.join(','))} combines "none" with other exporters`)
  }
  if (out.includes('jaeger') && sdkLine() === 3) {
    issues.push(`${source}=${quote(names.join(','))}: the OpenTelemetry JS SDK 3.x (@opentelemetry/sdk-node ${sdkNodeVersion() ?? ''}) has no Jaeger exporter; use "otlp" instead: Jaeger 1.35 and later receive OTLP (http/protobuf on port 4318)`)
  }
  return out.filter((n): n is Exclude<TraceExporterName, 'none'> => n !== 'none')
}

function resolveSampler (options: TelemetryOptions, env: NodeJS.ProcessEnv, issues: string[]): ResolvedTelemetryConfig['sampler'] {
  if (options.sampler !== undefined && typeof options.sampler !== 'string') return { name: 'custom' }
  let name: SamplerName = 'parentbased_always_on'
  const nameSource = firstSet<string>(['options.sampler', options.sampler], ['OTEL_TRACES_SAMPLER', envString(env, 'OTEL_TRACES_SAMPLER')])
  if (nameSource !== undefined) {
    if ((SAMPLER_NAMES as readonly string[]).includes(nameSource[1])) name = nameSource[1] as SamplerName
    else issues.push(`${nameSource[0]}=${quote(nameSource[1])} is not a supported sampler (expected one of ${SAMPLER_NAMES.join(', ')})`)
  }
  if (name !== 'traceidratio' && name !== 'parentbased_traceidratio') return { name }
  let ratio = 1
  const argSource = firstSet<number | string>(['options.samplerArg', options.samplerArg], ['OTEL_TRACES_SAMPLER_ARG', envString(env, 'OTEL_TRACES_SAMPLER_ARG')])
  if (argSource !== undefined) {
    const raw = argSource[1]
    const n = typeof raw === 'number' ? raw : (String(raw).trim() === '' ? NaN : Number(raw))
    if (!Number.isFinite(n) || n < 0 || n > 1) issues.push(`${argSource[0]}=${quote(raw)} must be a number between 0 and 1`)
    else ratio = n
  }
  return { name, ratio }
}

export function resolveInternal (options: TelemetryOptions, env: NodeJS.ProcessEnv): ResolvedInternal {
  const issues: string[] = []
  const disabled = options.disabled ?? parseBool(env, 'OTEL_SDK_DISABLED', issues) ?? false
  const exporterNames = resolveExporterNames(options, env, issues)
  const otlp = exporterNames.includes('otlp') ? resolveOtlp(options, env, issues) : undefined
  const jaeger = exporterNames.includes('jaeger') ? resolveJaeger(options, env, issues) : undefined
  const sampler = resolveSampler(options, env, issues)
  const batch = resolveBatch(options, env, issues)
  if (options.shutdownTimeoutMillis !== undefined &&
      (!Number.isFinite(options.shutdownTimeoutMillis) || options.shutdownTimeoutMillis < 0)) {
    issues.push(`options.shutdownTimeoutMillis=${quote(options.shutdownTimeoutMillis)} must be a non-negative number`)
  }
  if (issues.length > 0) throw new TelemetryConfigError(issues)

  return {
    public: {
      disabled,
      exporters: options.traceExporter !== undefined ? ['custom'] : exporterNames,
      otlp: otlp?.otlp,
      jaeger: jaeger?.jaeger,
      sampler,
      batch,
      serviceName: options.serviceName ?? envString(env, 'OTEL_SERVICE_NAME'),
      serviceVersion: options.serviceVersion
    },
    batch,
    sampler: typeof options.sampler === 'object' ? options.sampler : undefined,
    exporterNames,
    otlpOptions: otlp?.otlpOptions ?? { ...options.otlp },
    jaegerConfig: jaeger?.jaegerConfig,
    jaegerForceUdp: jaeger?.jaegerForceUdp ?? false
  }
}

/**
 * Resolves and validates the configuration without starting anything.
 * Throws a `TelemetryConfigError` naming every bad option / env variable.
 */
export function resolveTelemetryConfig (options: TelemetryOptions = {}): ResolvedTelemetryConfig {
  return resolveInternal(options, options.env ?? process.env).public
}
