// startTelemetry: NodeSDK with this package's resource, sampler, exporters and instrumentations, and
// the handle the plugin and the preload flush it through.
import { diag } from '@opentelemetry/api'
import type { NodeSDKConfiguration, Sampler, TelemetryHandle, TelemetryOptions } from './options'
import { envString, withEnv } from './env'
import { resolveInternal } from './config'
import { buildSampler, buildSpanProcessors } from './exporters'
import type { SpanLoss } from './span-loss'
import { buildInstrumentations } from './instrumentations'
import { buildResource } from './resource'
import { requireSdkNode } from './packages'
import { publishedHandle, publishHandle } from '../telemetry-handle'

const DEFAULT_SHUTDOWN_TIMEOUT = 5000

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
      { code: 'FST_OBSERVABILITY_TELEMETRY_ALREADY_STARTED' })
    return existing
  }

  let handle: TelemetryHandle
  if (config.disabled) {
    const done = Promise.resolve()
    handle = {
      enabled: false,
      sdk: undefined,
      config,
      instrumentations: [],
      isShutdown: false,
      failedSpans: 0,
      droppedSpans: 0,
      attributeValueLengthLimit: undefined,
      forceFlush: () => done,
      shutdown: () => done
    }
  } else {
    handle = start(options, env, resolved)
  }
  publishHandle(handle)
  return handle
}

function start (options: TelemetryOptions, env: NodeJS.ProcessEnv, resolved: ReturnType<typeof resolveInternal>): TelemetryHandle {
  const { NodeSDK } = requireSdkNode()
  const timeout = options.shutdownTimeoutMillis ?? DEFAULT_SHUTDOWN_TIMEOUT
  const loss: SpanLoss = { failedSpans: 0, droppedSpans: 0 }
  const processors = buildSpanProcessors(resolved, options.traceExporter, resolved.batch, loss)
  if (options.spanProcessors) processors.push(...options.spanProcessors)
  const sampler: Sampler = resolved.sampler ?? buildSampler(resolved.public.sampler.name as Exclude<typeof resolved.public.sampler.name, 'custom'>, resolved.public.sampler.ratio ?? 1)

  const instrumentations = buildInstrumentations(options, env)
  const userSdk = options.nodeSdk ?? {}
  const sdkConfig: Partial<NodeSDKConfiguration> = {
    // The metrics are Prometheus ones (the plugin's): no OTel metric reader unless asked for.
    ...(envString(env, 'OTEL_METRICS_EXPORTER') === undefined ? { metricReaders: [] } : {}),
    ...userSdk,
    resource: buildResource(options, env),
    autoDetectResources: false,
    sampler,
    spanProcessors: processors,
    instrumentations
  }
  const envOverrides: Record<string, string | undefined> = {
    // NodeSDK reads OTEL_SDK_DISABLED itself: options.disabled=false must win.
    OTEL_SDK_DISABLED: 'false'
  }
  if (envString(env, 'OTEL_LOGS_EXPORTER') === undefined &&
      userSdk.logRecordProcessors === undefined && (userSdk as { logRecordProcessor?: unknown }).logRecordProcessor === undefined) {
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
  return {
    enabled: true,
    sdk,
    config: resolved.public,
    instrumentations: instrumentations.map(i => i.instrumentationName),
    get isShutdown () { return isShutdown },
    get failedSpans () { return loss.failedSpans },
    get droppedSpans () { return loss.droppedSpans },
    attributeValueLengthLimit: userSdk.spanLimits?.attributeValueLengthLimit,
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
