// The public types of `fastify-observability/sdk`. The SDK's own types are taken from
// @opentelemetry/sdk-node's NodeSDKConfiguration only, so these declarations load on either SDK
// line (2.x or 3.x) and never import a package the user may not have (sdk-trace-base, the Jaeger
// exporter).
import type { Attributes } from '@opentelemetry/api'
import type { NodeSDK, NodeSDKConfiguration } from '@opentelemetry/sdk-node'

export type { NodeSDK, NodeSDKConfiguration }
export type Sampler = NodeSDKConfiguration['sampler']
export type SpanExporter = NodeSDKConfiguration['traceExporter']
export type SpanProcessor = NonNullable<NodeSDKConfiguration['spanProcessors']>[number]
export type Resource = NodeSDKConfiguration['resource']
export type ResourceDetector = NodeSDKConfiguration['resourceDetectors'][number]

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

/** Jaeger exporter settings: SDK 2.x only (the 3.x line has no Jaeger exporter; use OTLP). */
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
  tags?: Array<{ key: string, value: string | number | boolean }>
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
  /**
   * Default: [env, process, host]; with OTEL_NODE_RESOURCE_DETECTORS set, the detectors
   * auto-instrumentations-node's getResourceDetectors() reads from it (cloud detectors included).
   */
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
  /** Batch span processor settings given by options or OTEL_BSP_* (the rest are sdk-trace's defaults). */
  batch: BatchOptions
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
  /**
   * Spans in exports that failed (collector down, unreachable, timed out): lost. Served by the
   * plugin at /metrics as `fastify_observability_spans_export_failed_total`.
   */
  readonly failedSpans: number
  /**
   * Spans the batch span processor dropped because its queue was full (`batch.maxQueueSize`):
   * spans ended faster than they were exported (collector slow or black-holed). Lost, never
   * exported, so never in `failedSpans`. Served by the plugin at /metrics as
   * `fastify_observability_spans_dropped_total`.
   */
  readonly droppedSpans: number
  /**
   * `nodeSdk.spanLimits.attributeValueLengthLimit`, when given: the plugin cuts the attributes it
   * copies from the request (url.path, user_agent.original, ...) there rather than at its default
   * 1024 or the OTEL_*ATTRIBUTE_VALUE_LENGTH_LIMIT variables, as the SDK puts code before them.
   */
  readonly attributeValueLengthLimit: number | undefined
}

export interface ShutdownHooksOptions {
  /** Default ['SIGTERM', 'SIGINT']. */
  signals?: NodeJS.Signals[]
  /** Flush on 'beforeExit'. Default true. */
  beforeExit?: boolean
}
