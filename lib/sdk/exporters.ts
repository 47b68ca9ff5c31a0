// The trace pipeline's parts, built from the installed SDK line's own classes (@opentelemetry/sdk-trace
// exists in both lines; sdk-trace-base only in 2.x): the sampler, one exporter per name, and a span
// processor for each exporter.
import type { BatchOptions, Sampler, SamplerName, SpanExporter, SpanProcessor, TraceExporterName } from './options'
import type { ResolvedInternal } from './config'
import type { JaegerExporterConfig } from './exporter-config'
import { withEnv } from './env'
import { requireFromSdk, requireInstalled } from './packages'
import { watchExports } from './export-watch'
import { watchQueue } from './queue-watch'
import { lossWarning } from './span-loss'
import type { SpanLoss } from './span-loss'

/** The part of @opentelemetry/sdk-trace used here (the same in 2.x and 3.x). */
interface SdkTrace {
  AlwaysOffSampler: new () => Sampler
  AlwaysOnSampler: new () => Sampler
  TraceIdRatioBasedSampler: new (ratio: number) => Sampler
  ParentBasedSampler: new (config: { root: Sampler }) => Sampler
  // sdk-trace's processors take one options object (sdk-trace-base's took the exporter first).
  BatchSpanProcessor: new (options: BatchOptions & { exporter: SpanExporter }) => SpanProcessor
  SimpleSpanProcessor: new (options: { exporter: SpanExporter }) => SpanProcessor
  ConsoleSpanExporter: new () => SpanExporter
}
type ExporterClass<C> = new (config: C) => SpanExporter
interface OtlpConfig { url?: string, headers?: Record<string, string>, timeoutMillis?: number, compression?: string }

/** sdk-trace's BatchSpanProcessor default maxQueueSize (OTEL_BSP_MAX_QUEUE_SIZE's default). */
const DEFAULT_MAX_QUEUE_SIZE = 2048

const OTLP_PACKAGES = {
  'http/protobuf': '@opentelemetry/exporter-trace-otlp-proto',
  'http/json': '@opentelemetry/exporter-trace-otlp-http',
  grpc: '@opentelemetry/exporter-trace-otlp-grpc'
} as const

function sdkTrace (): SdkTrace {
  return requireFromSdk<SdkTrace>('@opentelemetry/sdk-trace', 'the trace pipeline')
}

export function buildSampler (name: SamplerName, ratio: number): Sampler {
  const t = sdkTrace()
  switch (name) {
    case 'always_on': return new t.AlwaysOnSampler()
    case 'always_off': return new t.AlwaysOffSampler()
    case 'traceidratio': return new t.TraceIdRatioBasedSampler(ratio)
    case 'parentbased_always_off': return new t.ParentBasedSampler({ root: new t.AlwaysOffSampler() })
    case 'parentbased_traceidratio': return new t.ParentBasedSampler({ root: new t.TraceIdRatioBasedSampler(ratio) })
    case 'parentbased_always_on':
    default: return new t.ParentBasedSampler({ root: new t.AlwaysOnSampler() })
  }
}

function buildExporter (name: Exclude<TraceExporterName, 'none'>, r: ResolvedInternal): SpanExporter {
  switch (name) {
    case 'otlp': {
      const o = r.otlpOptions
      const pkg = OTLP_PACKAGES[o.protocol ?? 'http/protobuf']
      const m = requireFromSdk<{ OTLPTraceExporter: ExporterClass<OtlpConfig> }>(pkg, `OTLP protocol ${o.protocol ?? 'http/protobuf'}`)
      return new m.OTLPTraceExporter({ url: o.endpoint, headers: o.headers, timeoutMillis: o.timeoutMillis, compression: o.compression })
    }
    case 'jaeger': {
      const m = requireInstalled<{ JaegerExporter: ExporterClass<JaegerExporterConfig> }>(
        '@opentelemetry/exporter-jaeger', 'the jaeger trace exporter')
      // The exporter reads OTEL_EXPORTER_JAEGER_ENDPOINT itself whenever `endpoint`
      // is empty; hide it when the resolved transport is UDP so options win.
      return withEnv(r.jaegerForceUdp ? { OTEL_EXPORTER_JAEGER_ENDPOINT: undefined } : {},
        () => new m.JaegerExporter(r.jaegerConfig!))
    }
    case 'console':
      return new (sdkTrace().ConsoleSpanExporter)()
  }
}

/** Where an exporter sends, for the failed-export warning. */
function destination (name: TraceExporterName | 'custom', r: ResolvedInternal): string {
  const j = r.public.jaeger
  if (name === 'otlp') return r.public.otlp?.url ?? 'the OTLP endpoint'
  if (name === 'jaeger') return j === undefined ? 'Jaeger' : j.transport === 'http' ? j.endpoint : `${j.host}:${j.port} (UDP)`
  return 'the traceExporter'
}

/**
 * One processor per exporter: batched, except the console's (printed as each span ends). Batched
 * exporters are watched: their failed exports (export-watch.ts) and the spans their processor drops
 * with its queue full (queue-watch.ts) counted in `loss` and warned about, once a minute at most.
 */
export function buildSpanProcessors (r: ResolvedInternal, custom: SpanExporter | undefined, batch: BatchOptions, loss: SpanLoss): SpanProcessor[] {
  const t = sdkTrace()
  const named: Array<[TraceExporterName | 'custom', SpanExporter]> = custom !== undefined
    ? [['custom', custom]]
    : r.exporterNames.map(n => [n, buildExporter(n, r)])
  return named.map(([name, exporter]) => {
    if (exporter instanceof t.ConsoleSpanExporter) return new t.SimpleSpanProcessor({ exporter })
    const endpoint = destination(name, r)
    const warn = lossWarning(loss)
    return watchQueue(watchExports(exporter, endpoint, loss, warn), batch.maxQueueSize ?? DEFAULT_MAX_QUEUE_SIZE,
      (watched, maxQueueSize) => new t.BatchSpanProcessor({ ...batch, maxQueueSize, exporter: watched }), endpoint, loss, warn)
  })
}
