// OpenTelemetry SDK set-up shared by the tracing variants.
//
// 100% sampling (AlwaysOnSampler; `ratio` for a ratio sampler), a BatchSpanProcessor with its default
// settings, and an exporter that drops every span at once so the figures show
// the cost of creating, recording and batching spans, not of serialising or
// sending them.
//
// Must run before `fastify` (and so `node:http`) is loaded, so that
// @opentelemetry/instrumentation-http can patch the http module when enabled.

// Keep the NodeSDK from building its default OTLP log / metric pipelines.
process.env.OTEL_LOGS_EXPORTER ??= 'none'
process.env.OTEL_METRICS_EXPORTER ??= 'none'
process.env.OTEL_SDK_DISABLED = 'false'

export const spanStats = { exported: 0, batches: 0 }

export class DropSpanExporter {
  export (spans, resultCallback) {
    spanStats.exported += spans.length
    spanStats.batches++
    resultCallback({ code: 0 })
  }

  shutdown () { return Promise.resolve() }
  forceFlush () { return Promise.resolve() }
}

/**
 * Start a NodeSDK.
 * @param {object} opts
 * @param {boolean} [opts.http] enable @opentelemetry/instrumentation-http
 * @param {() => Promise<object[]>} [opts.extraInstrumentations] more instrumentations
 * @param {number|null} [opts.ratio] sample this share of root spans:
 *   ParentBasedSampler({ root: TraceIdRatioBasedSampler(ratio) }); null: AlwaysOn
 */
export async function startSdk ({ http = false, extraInstrumentations, ratio = null } = {}) {
  const { NodeSDK } = await import('@opentelemetry/sdk-node')
  const { BatchSpanProcessor, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = await import('@opentelemetry/sdk-trace-base')
  const instrumentations = []
  if (http) {
    const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http')
    instrumentations.push(new HttpInstrumentation())
  }
  if (extraInstrumentations) instrumentations.push(...(await extraInstrumentations()))
  const sdk = new NodeSDK({
    serviceName: 'bench',
    autoDetectResources: false,
    sampler: ratio == null ? new AlwaysOnSampler() : new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
    spanProcessors: [new BatchSpanProcessor(new DropSpanExporter())],
    instrumentations
  })
  sdk.start()
  return {
    sdk,
    info: { sdk: '@opentelemetry/sdk-node NodeSDK', sampler: ratio == null ? 'AlwaysOn' : `ParentBased(TraceIdRatioBased(${ratio}))`, processor: 'BatchSpanProcessor', exporter: 'drop', instrumentationHttp: http },
    stats: () => ({ spansExported: spanStats.exported, exportBatches: spanStats.batches })
  }
}
