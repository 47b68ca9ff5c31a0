/**
 * OpenTelemetry SDK start-up for fastify-observability.
 *
 * `startTelemetry()` wraps `NodeSDK` from `@opentelemetry/sdk-node` with the
 * Node auto-instrumentations (instrumentation-http ON, the noisy fs/dns/net/
 * runtime-node instrumentations OFF), a resource carrying service.name /
 * service.version, a sampler and one trace exporter (OTLP http/protobuf by
 * default, Jaeger, console or none).
 *
 * Every option overrides its environment variable. Invalid configuration is
 * reported as ONE `TelemetryConfigError` listing every problem, each naming
 * the option or variable and the bad value.
 *
 * The SDK packages are optional peer dependencies of fastify-observability:
 * this module is only loaded through `fastify-observability/sdk` and
 * `fastify-observability/register`, never by the plugin itself.
 */
import { createRequire } from 'node:module'
import { diag } from '@opentelemetry/api'
import type { Attributes } from '@opentelemetry/api'
import { NodeSDK } from '@opentelemetry/sdk-node'
import type { NodeSDKConfiguration } from '@opentelemetry/sdk-node'
import { getNodeAutoInstrumentations } from '@opentelemetry/auto-instrumentations-node'
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler
} from '@opentelemetry/sdk-trace-base'
import type { Sampler, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  osDetector,
  processDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector
} from '@opentelemetry/resources'
import type { Resource, ResourceDetector } from '@opentelemetry/resources'
import type { ExporterConfig as JaegerExporterConfig } from '@opentelemetry/exporter-jaeger'

import { TELEMETRY_HANDLE_SYMBOL, publishedHandle, publishHandle } from './telemetry-handle'
export { TELEMETRY_HANDLE_SYMBOL }

export type TraceExporterName = 'otlp' | 'jaeger' | 'console' | 'none'
export type OtlpProtocol = 'http/protobuf' | 'http/json' | 'grpc'
export type SamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio'

/** An instrumentation instance as accepted by NodeSDK. */
export type SdkInstrumentation = Exclude<NodeSDKConfiguration['instrumentations'][number], unknown[]>

/**
 * Per-instrumentation setting: `false` disables, `true` enables with defaults,
 * an object is that instrumentation's config (enabled unless `enabled: false`).
 */
export type InstrumentationSetting = boolean | ({ enabled?: boolean } & Record<string, unknown>)

export interface OtlpOptions {
  /**
   * Full traces URL, used as is (like OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
   * Default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT
   * + '/v1/traces', else http://localhost:4318/v1/traces (grpc: :4317).
   */
  endpoint?: string
  /** Default: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL, else 'http/protobuf'. */
  protocol?: OtlpProtocol
  /** Extra headers (merged over OTEL_EXPORTER_OTLP_[TRACES_]HEADERS by the exporter). */
  headers?: Record<string, string>
  /** Export request timeout (default OTEL_EXPORTER_OTLP_TIMEOUT or 10000). */
  timeoutMillis?: number
  /** 'gzip' | 'none' (default OTEL_EXPORTER_OTLP_COMPRESSION or none). */
  compression?: 'gzip' | 'none'
}

export interface JaegerOptions {
  /** Collector endpoint (HTTP Thrift), e.g. http://jaeger:14268/api/traces. Wins over host/port. */
  endpoint?: string
  /** Agent host for UDP (binary Thrift, emitBatch). Default OTEL_EXPORTER_JAEGER_AGENT_HOST or localhost. */
  host?: string
  /** Agent UDP port. Default OTEL_EXPORTER_JAEGER_AGENT_PORT or 6832. */
  port?: number
  username?: string
  password?: string
  maxPacketSize?: number
  flushTimeout?: number
  /** Process tags. */
  tags?: JaegerExporterConfig['tags']
}

export interface BatchOptions {
  /** Default OTEL_BSP_SCHEDULE_DELAY or 5000. */
  scheduledDelayMillis?: number
  /** Default OTEL_BSP_MAX_QUEUE_SIZE or 2048. */
  maxQueueSize?: number
  /** Default OTEL_BSP_MAX_EXPORT_BATCH_SIZE or 512. */
  maxExportBatchSize?: number
  /** Default OTEL_BSP_EXPORT_TIMEOUT or 30000. */
  exportTimeoutMillis?: number
}

export interface TelemetryOptions {
  /** true: do nothing (like OTEL_SDK_DISABLED=true). false forces the SDK on even if the env says disabled. */
  disabled?: boolean
  /** Default: OTEL_SERVICE_NAME, service.name of OTEL_RESOURCE_ATTRIBUTES, npm_package_name, 'unknown_service:node'. */
  serviceName?: string
  /** Default: service.version of OTEL_RESOURCE_ATTRIBUTES, else npm_package_version. */
  serviceVersion?: string
  /** Extra resource attributes (override detected ones; serviceName/serviceVersion win over these). */
  resourceAttributes?: Attributes
  /** Default: OTEL_NODE_RESOURCE_DETECTORS, else [env, process, host]. */
  resourceDetectors?: ResourceDetector[]
  /**
   * Trace exporter(s). Default OTEL_TRACES_EXPORTER (comma separated list) or 'otlp'.
   * Ignored when `traceExporter` is given.
   */
  exporter?: TraceExporterName | TraceExporterName[]
  otlp?: OtlpOptions
  jaeger?: JaegerOptions
  /** A custom exporter (e.g. one that drops spans for benchmarks); wrapped in a BatchSpanProcessor. */
  traceExporter?: SpanExporter
  /** Extra span processors, added after the exporter's processor. */
  spanProcessors?: SpanProcessor[]
  /** BatchSpanProcessor settings (override OTEL_BSP_*). */
  batch?: BatchOptions
  /** Sampler name or instance. Default OTEL_TRACES_SAMPLER or 'parentbased_always_on'. */
  sampler?: SamplerName | Sampler
  /** Ratio in [0, 1] for the *traceidratio samplers. Default OTEL_TRACES_SAMPLER_ARG or 1. */
  samplerArg?: number | string
  /**
   * Instrumentations.
   *   - omitted / object: getNodeAutoInstrumentations() with our defaults (fs, dns, net,
   *     runtime-node off; http and everything else on). Keys are short names ('http',
   *     'dns', 'undici') or full package names ('@opentelemetry/instrumentation-http');
   *     values are an `InstrumentationSetting`. Example: `{ http: false }`.
   *   - an array: exactly these instrumentations (no auto-instrumentations).
   *   - false: no instrumentation at all.
   */
  instrumentations?: false | SdkInstrumentation[] | Record<string, InstrumentationSetting>
  /** Instrumentations added to the above (e.g. `new FastifyOtelInstrumentation()`). */
  additionalInstrumentations?: SdkInstrumentation[]
  /** Upper bound for shutdown()/forceFlush(); they resolve (with a diag warning) after it. Default 5000. */
  shutdownTimeoutMillis?: number
  /**
   * Passed through to NodeSDK (contextManager, textMapPropagator, idGenerator, spanLimits,
   * metricReaders, logRecordProcessors, views, ...). Keys that startTelemetry computes
   * (resource, sampler, spanProcessors, instrumentations) are overridden.
   */
  nodeSdk?: Partial<NodeSDKConfiguration>
  /** Environment to read (default process.env); for tests. */
  env?: NodeJS.ProcessEnv
}

/** What `startTelemetry` resolved from options and env (no secrets). */
export interface ResolvedTelemetryConfig {
  disabled: boolean
  /** Exporter names in use; ['custom'] when `traceExporter` was given. */
  exporters: Array<TraceExporterName | 'custom'>
  otlp?: { protocol: OtlpProtocol, url: string }
  jaeger?: { transport: 'http', endpoint: string } | { transport: 'udp', host: string, port: number }
  sampler: { name: SamplerName | 'custom', ratio?: number }
  serviceName?: string
  serviceVersion?: string
}

export interface TelemetryHandle {
  /** false when disabled (OTEL_SDK_DISABLED=true or `disabled: true`): every method is a no-op. */
  readonly enabled: boolean
  /** The started NodeSDK (undefined when disabled). */
  readonly sdk: NodeSDK | undefined
  readonly config: ResolvedTelemetryConfig
  /** instrumentationName of every registered instrumentation, e.g. '@opentelemetry/instrumentation-http'. */
  readonly instrumentations: string[]
  /** Exports every pending span now; the SDK keeps running. */
  forceFlush(): Promise<void>
  /** Flushes every pending span and stops the SDK. Idempotent: every call returns the same promise. Never rejects. */
  shutdown(): Promise<void>
  readonly isShutdown: boolean
}

/** Thrown by `startTelemetry` / `resolveTelemetryConfig` for invalid configuration. */
export class TelemetryConfigError extends Error {
  readonly code = 'FST_OBS_INVALID_TELEMETRY_CONFIG'
  readonly issues: string[]
  constructor (issues: string[]) {
    super(`fastify-observability: invalid telemetry configuration: ${issues.join('; ')}`)
    this.name = 'TelemetryConfigError'
    this.issues = issues
  }
}

const EXPORTER_NAMES: readonly TraceExporterName[] = ['otlp', 'jaeger', 'console', 'none']
const OTLP_PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'http/json', 'grpc']
const SAMPLER_NAMES: readonly SamplerName[] = [
  'always_on', 'always_off', 'traceidratio',
  'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'
]
const HTTP_INSTRUMENTATION = '@opentelemetry/instrumentation-http'

const DEFAULT_OFF_INSTRUMENTATIONS = [
  '@opentelemetry/instrumentation-fs',
  '@opentelemetry/instrumentation-dns',
  '@opentelemetry/instrumentation-net',
  '@opentelemetry/instrumentation-runtime-node'
]
const DEFAULT_SHUTDOWN_TIMEOUT = 5000

function envString (env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name]
  if (v === undefined) return undefined
  const t = v.trim()
  return t === '' ? undefined : t
}

function quote (v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v)
}

/** Validates an http(s) URL; returns an issue message or undefined. */
function checkHttpUrl (value: string, source: string): string | undefined {
  let u: URL
  try {
    u = new URL(value)
  } catch {
    return `${source}=${quote(value)} is not a valid URL`
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return `${source}=${quote(value)} must be an http:// or https:// URL`
  }
  return undefined
}

function parseBool (env: NodeJS.ProcessEnv, name: string, issues: string[]): boolean | undefined {
  const raw = envString(env, name)
  if (raw === undefined) return undefined
  const v = raw.toLowerCase()
  if (v === 'true') return true
  if (v === 'false') return false
  issues.push(`${name}=${quote(raw)} must be "true" or "false"`)
  return undefined
}

interface ResolvedInternal {
  public: ResolvedTelemetryConfig
  sampler?: Sampler
  exporterNames: TraceExporterName[]
  otlpOptions: OtlpOptions
  jaegerConfig?: JaegerExporterConfig
  jaegerForceUdp: boolean
}

function resolveInternal (options: TelemetryOptions, env: NodeJS.ProcessEnv): ResolvedInternal {
  const issues: string[] = []

  // --- disabled -----------------------------------------------------------
  const envDisabled = parseBool(env, 'OTEL_SDK_DISABLED', issues)
  const disabled = options.disabled ?? envDisabled ?? false

  // --- exporter ------------------------------------------------------------
  let exporterNames: TraceExporterName[] = []
  if (options.traceExporter === undefined) {
    let names: string[]
    let source: string
    if (options.exporter !== undefined) {
      names = Array.isArray(options.exporter) ? options.exporter : [options.exporter]
      source = 'options.exporter'
    } else {
      const raw = envString(env, 'OTEL_TRACES_EXPORTER')
      names = raw === undefined ? ['otlp'] : raw.split(',').map(s => s.trim()).filter(Boolean)
      source = 'OTEL_TRACES_EXPORTER'
      if (names.length === 0) names = ['otlp']
    }
    for (const n of names) {
      if ((EXPORTER_NAMES as readonly string[]).includes(n)) {
        if (!exporterNames.includes(n as TraceExporterName)) exporterNames.push(n as TraceExporterName)
      } else {
        issues.push(`${source}=${quote(n)} is not a supported trace exporter (expected one of ${EXPORTER_NAMES.join(', ')})`)
      }
    }
    if (exporterNames.includes('none') && exporterNames.length > 1) {
      issues.push(`${source}=${quote(names.join(','))} combines "none" with other exporters`)
    }
    if (exporterNames.includes('none')) exporterNames = []
  }

  // --- otlp ------------------------------------------------------------------
  const otlpOptions: OtlpOptions = { ...options.otlp }
  let otlp: ResolvedTelemetryConfig['otlp']
  if (exporterNames.includes('otlp')) {
    let protocol: OtlpProtocol = 'http/protobuf'
    const protoSource = options.otlp?.protocol !== undefined
      ? ['options.otlp.protocol', options.otlp.protocol] as const
      : envString(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') !== undefined
        ? ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', envString(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL')!] as const
        : envString(env, 'OTEL_EXPORTER_OTLP_PROTOCOL') !== undefined
          ? ['OTEL_EXPORTER_OTLP_PROTOCOL', envString(env, 'OTEL_EXPORTER_OTLP_PROTOCOL')!] as const
          : undefined
    if (protoSource !== undefined) {
      if ((OTLP_PROTOCOLS as readonly string[]).includes(protoSource[1])) {
        protocol = protoSource[1] as OtlpProtocol
      } else {
        issues.push(`${protoSource[0]}=${quote(protoSource[1])} is not a supported OTLP protocol (expected one of ${OTLP_PROTOCOLS.join(', ')})`)
      }
    }
    let url: string
    let urlSource: string
    const specific = envString(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')
    const generic = envString(env, 'OTEL_EXPORTER_OTLP_ENDPOINT')
    if (options.otlp?.endpoint !== undefined) {
      url = options.otlp.endpoint
      urlSource = 'options.otlp.endpoint'
    } else if (specific !== undefined) {
      url = specific
      urlSource = 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'
    } else if (generic !== undefined) {
      urlSource = 'OTEL_EXPORTER_OTLP_ENDPOINT'
      const bad = checkHttpUrl(generic, urlSource)
      if (bad !== undefined) issues.push(bad)
      url = protocol === 'grpc' ? generic : generic.replace(/\/+$/, '') + '/v1/traces'
    } else {
      url = protocol === 'grpc' ? 'http://localhost:4317' : 'http://localhost:4318/v1/traces'
      urlSource = 'default'
    }
    if (urlSource !== 'OTEL_EXPORTER_OTLP_ENDPOINT') {
      const bad = checkHttpUrl(url, urlSource)
      if (bad !== undefined) issues.push(bad)
    }
    otlp = { protocol, url }
    otlpOptions.protocol = protocol
    otlpOptions.endpoint = url
  }

  // --- jaeger ----------------------------------------------------------------
  let jaeger: ResolvedTelemetryConfig['jaeger']
  let jaegerConfig: JaegerExporterConfig | undefined
  let jaegerForceUdp = false
  if (exporterNames.includes('jaeger')) {
    const o = options.jaeger ?? {}
    const optionsWantUdp = o.endpoint === undefined && (o.host !== undefined || o.port !== undefined)
    const endpoint = o.endpoint ?? (optionsWantUdp ? undefined : envString(env, 'OTEL_EXPORTER_JAEGER_ENDPOINT'))
    jaegerConfig = {
      username: o.username,
      password: o.password,
      maxPacketSize: o.maxPacketSize,
      flushTimeout: o.flushTimeout,
      tags: o.tags
    }
    if (endpoint !== undefined) {
      const source = o.endpoint !== undefined ? 'options.jaeger.endpoint' : 'OTEL_EXPORTER_JAEGER_ENDPOINT'
      const bad = checkHttpUrl(endpoint, source)
      if (bad !== undefined) issues.push(bad)
      jaeger = { transport: 'http', endpoint }
      jaegerConfig.endpoint = endpoint
    } else {
      jaegerForceUdp = true
      const host = o.host ?? envString(env, 'OTEL_EXPORTER_JAEGER_AGENT_HOST') ?? 'localhost'
      let port = 6832
      if (o.port !== undefined) {
        if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
          issues.push(`options.jaeger.port=${quote(o.port)} is not a valid port (1-65535)`)
        } else port = o.port
      } else {
        const raw = envString(env, 'OTEL_EXPORTER_JAEGER_AGENT_PORT')
        if (raw !== undefined) {
          const n = Number(raw)
          if (!/^\d+$/.test(raw) || n < 1 || n > 65535) {
            issues.push(`OTEL_EXPORTER_JAEGER_AGENT_PORT=${quote(raw)} is not a valid port (1-65535)`)
          } else port = n
        }
      }
      jaeger = { transport: 'udp', host, port }
      jaegerConfig.host = host
      jaegerConfig.port = port
    }
  }

  // --- sampler -----------------------------------------------------------------
  let sampler: Sampler | undefined
  let samplerInfo: ResolvedTelemetryConfig['sampler']
  if (options.sampler !== undefined && typeof options.sampler !== 'string') {
    sampler = options.sampler
    samplerInfo = { name: 'custom' }
  } else {
    let name: SamplerName = 'parentbased_always_on'
    const nameSource = options.sampler !== undefined
      ? ['options.sampler', options.sampler] as const
      : envString(env, 'OTEL_TRACES_SAMPLER') !== undefined
        ? ['OTEL_TRACES_SAMPLER', envString(env, 'OTEL_TRACES_SAMPLER')!] as const
        : undefined
    if (nameSource !== undefined) {
      if ((SAMPLER_NAMES as readonly string[]).includes(nameSource[1])) {
        name = nameSource[1] as SamplerName
      } else {
        issues.push(`${nameSource[0]}=${quote(nameSource[1])} is not a supported sampler (expected one of ${SAMPLER_NAMES.join(', ')})`)
      }
    }
    samplerInfo = { name }
    if (name === 'traceidratio' || name === 'parentbased_traceidratio') {
      let ratio = 1
      const argSource = options.samplerArg !== undefined
        ? ['options.samplerArg', options.samplerArg] as const
        : envString(env, 'OTEL_TRACES_SAMPLER_ARG') !== undefined
          ? ['OTEL_TRACES_SAMPLER_ARG', envString(env, 'OTEL_TRACES_SAMPLER_ARG')!] as const
          : undefined
      if (argSource !== undefined) {
        const raw = argSource[1]
        const n = typeof raw === 'number' ? raw : (String(raw).trim() === '' ? NaN : Number(raw))
        if (!Number.isFinite(n) || n < 0 || n > 1) {
          issues.push(`${argSource[0]}=${quote(raw)} must be a number between 0 and 1`)
        } else ratio = n
      }
      samplerInfo.ratio = ratio
    }
  }

  // --- misc ------------------------------------------------------------------------
  if (options.shutdownTimeoutMillis !== undefined &&
      (!Number.isFinite(options.shutdownTimeoutMillis) || options.shutdownTimeoutMillis < 0)) {
    issues.push(`options.shutdownTimeoutMillis=${quote(options.shutdownTimeoutMillis)} must be a non-negative number`)
  }

  if (issues.length > 0) throw new TelemetryConfigError(issues)

  if (sampler === undefined) sampler = buildSampler(samplerInfo.name as SamplerName, samplerInfo.ratio ?? 1)

  return {
    public: {
      disabled,
      exporters: options.traceExporter !== undefined ? ['custom'] : exporterNames,
      otlp,
      jaeger,
      sampler: samplerInfo,
      serviceName: options.serviceName ?? envString(env, 'OTEL_SERVICE_NAME'),
      serviceVersion: options.serviceVersion
    },
    sampler,
    exporterNames,
    otlpOptions,
    jaegerConfig,
    jaegerForceUdp
  }
}

function buildSampler (name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case 'always_on': return new AlwaysOnSampler()
    case 'always_off': return new AlwaysOffSampler()
    case 'traceidratio': return new TraceIdRatioBasedSampler(ratio)
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) })
    case 'parentbased_always_on':
    default: return new ParentBasedSampler({ root: new AlwaysOnSampler() })
  }
}

/**
 * Resolves and validates the configuration without starting anything.
 * Throws a `TelemetryConfigError` naming every bad option / env variable.
 */
export function resolveTelemetryConfig (options: TelemetryOptions = {}): ResolvedTelemetryConfig {
  return resolveInternal(options, options.env ?? process.env).public
}

/** Runs fn with some env variables set (string) or removed (undefined), then restores them. */
function withEnv<T> (overrides: Record<string, string | undefined>, fn: () => T): T {
  const saved: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(overrides)) {
    saved[k] = process.env[k]
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
  try {
    return fn()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

/**
 * Loads an optional package: first from here, then from @opentelemetry/sdk-node's
 * location (sdk-node depends on the OTLP exporters, so they are present with it).
 */
function loadOptional<T> (name: string, why: string): T {
  try {
    return require(name) as T
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err
  }
  try {
    const fromSdk = createRequire(require.resolve('@opentelemetry/sdk-node'))
    return fromSdk(name) as T
  } catch {
    throw new Error(`fastify-observability: ${why} needs the package ${name}: npm install ${name}`)
  }
}

function buildExporter (name: Exclude<TraceExporterName, 'none'>, r: ResolvedInternal): SpanExporter {
  switch (name) {
    case 'otlp': {
      const o = r.otlpOptions
      const config = {
        url: o.endpoint,
        headers: o.headers,
        timeoutMillis: o.timeoutMillis,
        compression: o.compression
      } as ConstructorParameters<typeof OTLPTraceExporter>[0]
      if (o.protocol === 'http/json') {
        const m = loadOptional<typeof import('@opentelemetry/exporter-trace-otlp-http')>(
          '@opentelemetry/exporter-trace-otlp-http', 'OTLP protocol http/json')
        return new m.OTLPTraceExporter(config)
      }
      if (o.protocol === 'grpc') {
        const m = loadOptional<{ OTLPTraceExporter: new (c: unknown) => SpanExporter }>(
          '@opentelemetry/exporter-trace-otlp-grpc', 'OTLP protocol grpc')
        return new m.OTLPTraceExporter(config)
      }
      return new OTLPTraceExporter(config)
    }
    case 'jaeger': {
      const m = loadOptional<typeof import('@opentelemetry/exporter-jaeger')>(
        '@opentelemetry/exporter-jaeger', 'the jaeger trace exporter')
      const cfg = r.jaegerConfig!
      // The exporter reads OTEL_EXPORTER_JAEGER_ENDPOINT itself whenever `endpoint`
      // is empty; hide it when the resolved transport is UDP so options win.
      return withEnv(r.jaegerForceUdp ? { OTEL_EXPORTER_JAEGER_ENDPOINT: undefined } : {},
        () => new m.JaegerExporter(cfg) as unknown as SpanExporter)
    }
    case 'console':
      return new ConsoleSpanExporter()
  }
}

function buildInstrumentations (options: TelemetryOptions, env: NodeJS.ProcessEnv): SdkInstrumentation[] {
  const setting = options.instrumentations
  let list: SdkInstrumentation[]
  if (setting === false) {
    list = []
  } else if (Array.isArray(setting)) {
    list = [...setting]
  } else {
    const enabledFromEnv = (envString(env, 'OTEL_NODE_ENABLED_INSTRUMENTATIONS') ?? '')
      .split(',').map(s => s.trim()).filter(Boolean).map(s => `@opentelemetry/instrumentation-${s}`)
    const config: Record<string, Record<string, unknown>> = {}
    for (const name of DEFAULT_OFF_INSTRUMENTATIONS) {
      if (!enabledFromEnv.includes(name)) config[name] = { enabled: false }
    }
    // The plugin starts each request's SERVER span itself, so by default instrumentation-http only
    // traces outgoing calls: its incoming path costs about half of a server's CPU per request, and
    // it cannot honour the plugin's per-route policy (it runs before routing).
    config[HTTP_INSTRUMENTATION] = { disableIncomingRequestInstrumentation: true }
    for (const [key, value] of Object.entries(setting ?? {})) {
      const full = key.startsWith('@') ? key : `@opentelemetry/instrumentation-${key}`
      if (value === false) config[full] = { enabled: false }
      else if (value === true) config[full] = { ...config[full], enabled: true }
      else config[full] = { ...config[full], ...value, enabled: value.enabled ?? true }
    }
    list = getNodeAutoInstrumentations(config as Parameters<typeof getNodeAutoInstrumentations>[0]) as SdkInstrumentation[]
  }
  if (options.additionalInstrumentations) list.push(...options.additionalInstrumentations)
  return list
}

const RESOURCE_DETECTORS: Record<string, ResourceDetector[]> = {
  env: [envDetector],
  host: [hostDetector],
  os: [osDetector],
  process: [processDetector],
  serviceinstance: [serviceInstanceIdDetector]
}

function resourceDetectorsFor (options: TelemetryOptions, env: NodeJS.ProcessEnv): ResourceDetector[] {
  if (options.resourceDetectors) return options.resourceDetectors
  const raw = envString(env, 'OTEL_NODE_RESOURCE_DETECTORS')
  if (raw === undefined) return [envDetector, processDetector, hostDetector]
  const names = raw.split(',').map(s => s.trim()).filter(Boolean)
  if (names.includes('none')) return []
  if (names.includes('all')) return Object.values(RESOURCE_DETECTORS).flat()
  const out: ResourceDetector[] = []
  for (const n of names) {
    const d = RESOURCE_DETECTORS[n]
    if (d) out.push(...d)
    else diag.warn(`fastify-observability: OTEL_NODE_RESOURCE_DETECTORS contains unknown detector ${quote(n)}, ignored`)
  }
  return out
}

function buildResource (options: TelemetryOptions, env: NodeJS.ProcessEnv): Resource {
  const fallback: Attributes = {}
  const pkgName = envString(env, 'npm_package_name')
  const pkgVersion = envString(env, 'npm_package_version')
  if (pkgName !== undefined) fallback['service.name'] = pkgName
  if (pkgVersion !== undefined) fallback['service.version'] = pkgVersion

  const explicit: Attributes = { ...options.resourceAttributes }
  const envServiceName = envString(env, 'OTEL_SERVICE_NAME')
  if (options.serviceName !== undefined) explicit['service.name'] = options.serviceName
  else if (envServiceName !== undefined) explicit['service.name'] = envServiceName
  if (options.serviceVersion !== undefined) explicit['service.version'] = options.serviceVersion

  return defaultResource()
    .merge(resourceFromAttributes(fallback))
    .merge(detectResources({ detectors: resourceDetectorsFor(options, env) }))
    .merge(resourceFromAttributes(explicit))
}

function withTimeout (p: Promise<unknown>, ms: number, what: string): Promise<void> {
  return new Promise<void>(resolve => {
    const timer = setTimeout(() => {
      diag.warn(`fastify-observability: telemetry ${what} did not finish within ${ms} ms`)
      resolve()
    }, ms)
    p.then(() => {
      clearTimeout(timer)
      resolve()
    }, (err: unknown) => {
      clearTimeout(timer)
      diag.error(`fastify-observability: telemetry ${what} failed`, err)
      resolve()
    })
  })
}

/** The handle published by the last startTelemetry() call (e.g. from the preload), if any. */
export function getTelemetryHandle (): TelemetryHandle | undefined {
  return publishedHandle<TelemetryHandle>()
}

/**
 * Starts the OpenTelemetry SDK. Call it before the modules to instrument are loaded
 * (or use the `fastify-observability/register` preload).
 *
 * If a started, not yet shut down, telemetry handle already exists in this process,
 * it is returned unchanged (with a process warning) instead of starting a second SDK.
 */
export function startTelemetry (options: TelemetryOptions = {}): TelemetryHandle {
  const env = options.env ?? process.env
  const resolved = resolveInternal(options, env)
  const config = resolved.public

  const existing = getTelemetryHandle()
  if (existing !== undefined && existing.enabled && !existing.isShutdown) {
    process.emitWarning('OpenTelemetry was already started in this process; returning the existing telemetry handle',
      { code: 'FST_OBS_TELEMETRY_ALREADY_STARTED' })
    return existing
  }

  const timeout = options.shutdownTimeoutMillis ?? DEFAULT_SHUTDOWN_TIMEOUT
  let handle: TelemetryHandle

  if (config.disabled) {
    const done = Promise.resolve()
    handle = {
      enabled: false,
      sdk: undefined,
      config,
      instrumentations: [],
      isShutdown: false,
      forceFlush: () => done,
      shutdown: () => done
    }
  } else {
    const processors: SpanProcessor[] = []
    const batch = options.batch ?? {}
    const exporters: SpanExporter[] = options.traceExporter !== undefined
      ? [options.traceExporter]
      : resolved.exporterNames.map(n => buildExporter(n as Exclude<TraceExporterName, 'none'>, resolved))
    for (const exporter of exporters) {
      processors.push(exporter instanceof ConsoleSpanExporter
        ? new SimpleSpanProcessor(exporter)
        : new BatchSpanProcessor(exporter, { ...batch }))
    }
    if (options.spanProcessors) processors.push(...options.spanProcessors)

    const instrumentations = buildInstrumentations(options, env)
    const userSdk = options.nodeSdk ?? {}
    const sdkConfig: Partial<NodeSDKConfiguration> = {
      // Our metrics are Prometheus (prom-client): no OTel metric reader unless asked for.
      ...(envString(env, 'OTEL_METRICS_EXPORTER') === undefined ? { metricReaders: [] } : {}),
      ...userSdk,
      resource: buildResource(options, env) as NodeSDKConfiguration['resource'],
      autoDetectResources: false,
      sampler: resolved.sampler as NodeSDKConfiguration['sampler'],
      spanProcessors: processors as NodeSDKConfiguration['spanProcessors'],
      instrumentations
    }
    const envOverrides: Record<string, string | undefined> = {
      // NodeSDK reads OTEL_SDK_DISABLED itself: options.disabled=false must win.
      OTEL_SDK_DISABLED: 'false'
    }
    if (envString(env, 'OTEL_LOGS_EXPORTER') === undefined &&
        userSdk.logRecordProcessors === undefined && userSdk.logRecordProcessor === undefined) {
      // No OTel logs pipeline unless asked for (NodeSDK would default to OTLP logs).
      envOverrides.OTEL_LOGS_EXPORTER = 'none'
    }
    const sdk = withEnv(envOverrides, () => {
      const s = new NodeSDK(sdkConfig)
      s.start()
      return s
    })

    let shutdownPromise: Promise<void> | undefined
    let isShutdown = false
    handle = {
      enabled: true,
      sdk,
      config,
      instrumentations: instrumentations.map(i => i.instrumentationName),
      get isShutdown () { return isShutdown },
      forceFlush () {
        if (shutdownPromise) return shutdownPromise
        return withTimeout(Promise.all(processors.map(p => p.forceFlush())), timeout, 'flush')
      },
      shutdown () {
        if (shutdownPromise === undefined) {
          isShutdown = true
          shutdownPromise = withTimeout(sdk.shutdown(), timeout, 'shutdown')
        }
        return shutdownPromise
      }
    }
  }

  publishHandle(handle)
  return handle
}

export interface ShutdownHooksOptions {
  /** Default ['SIGTERM', 'SIGINT']. */
  signals?: NodeJS.Signals[]
  /** Flush on 'beforeExit'. Default true. */
  beforeExit?: boolean
}

const hooked = new WeakSet<TelemetryHandle>()

/**
 * Listeners for `signal` other than ours and other than signal-exit's. signal-exit (v3 and
 * v4, used by many tools) listens to every signal but only acts when it is the last one
 * listening, so it must not count as "the app handles this signal" (or neither would act).
 * Each loaded signal-exit instance adds exactly one listener per signal and counts itself in
 * the emitter it publishes globally.
 */
function appListenerCount (signal: NodeJS.Signals, ours: (...args: unknown[]) => void): number {
  const others = process.listeners(signal).filter(l => l !== ours).length
  const v4 = (globalThis as Record<symbol, { count?: unknown } | undefined>)[Symbol.for('signal-exit emitter')]?.count
  const v3 = (process as unknown as { __signal_exit_emitter__?: { count?: unknown } }).__signal_exit_emitter__?.count
  const signalExit = (typeof v4 === 'number' ? v4 : 0) + (typeof v3 === 'number' ? v3 : 0)
  return others - signalExit
}

/**
 * Flushes telemetry on SIGTERM/SIGINT and on 'beforeExit'.
 *
 * On a signal: shutdown() (bounded by shutdownTimeoutMillis) is started at once. If the
 * application has its own listeners for that signal, they decide how the process ends and
 * nothing else is done here. Otherwise, once flushed, the listener removes itself and
 * re-raises the signal, so the process ends exactly as it would have without it. A second
 * signal while flushing (no own listeners) ends the process at once.
 *
 * Returns a function that removes the hooks.
 */
export function registerShutdownHooks (handle: TelemetryHandle, options: ShutdownHooksOptions = {}): () => void {
  if (!handle.enabled || hooked.has(handle)) return () => {}
  hooked.add(handle)
  const signals = options.signals ?? ['SIGTERM', 'SIGINT']
  const listeners = new Map<NodeJS.Signals, () => void>()
  let flushing = false

  const uninstall = (): void => {
    for (const [sig, fn] of listeners) process.removeListener(sig, fn)
    listeners.clear()
    process.removeListener('beforeExit', onBeforeExit)
    hooked.delete(handle)
  }

  const reRaise = (signal: NodeJS.Signals): void => {
    uninstall()
    process.kill(process.pid, signal)
  }

  for (const signal of signals) {
    const onSignal = (): void => {
      const appHandlesIt = appListenerCount(signal, onSignal) > 0
      if (flushing) {
        if (!appHandlesIt) reRaise(signal)
        return
      }
      flushing = true
      void handle.shutdown().then(() => {
        if (!appHandlesIt) reRaise(signal)
      })
    }
    listeners.set(signal, onSignal)
    process.on(signal, onSignal)
  }

  function onBeforeExit (): void {
    void handle.shutdown()
  }
  if (options.beforeExit !== false) process.once('beforeExit', onBeforeExit)

  return uninstall
}
