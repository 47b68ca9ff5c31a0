// Which instrumentations the SDK starts: auto-instrumentations-node's set with this plugin's defaults.
import type { SdkInstrumentation, TelemetryOptions } from './options'
import { envString } from './env'
import { AUTO_INSTRUMENTATIONS, SDK_INSTALL, requireInstalled } from './packages'

const HTTP_INSTRUMENTATION = '@opentelemetry/instrumentation-http'
const DEFAULT_OFF_INSTRUMENTATIONS = [
  '@opentelemetry/instrumentation-fs',
  '@opentelemetry/instrumentation-dns',
  '@opentelemetry/instrumentation-net',
  '@opentelemetry/instrumentation-runtime-node'
]

export interface AutoInstrumentations {
  getNodeAutoInstrumentations (config?: Record<string, Record<string, unknown>>): SdkInstrumentation[]
  getResourceDetectors (): Array<import('./options').ResourceDetector>
}

export function autoInstrumentations (): AutoInstrumentations {
  return requireInstalled<AutoInstrumentations>(AUTO_INSTRUMENTATIONS, 'fastify-observability/sdk (and /register)', SDK_INSTALL)
}

export function buildInstrumentations (options: TelemetryOptions, env: NodeJS.ProcessEnv): SdkInstrumentation[] {
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
    list = autoInstrumentations().getNodeAutoInstrumentations(config)
  }
  if (options.additionalInstrumentations) list.push(...options.additionalInstrumentations)
  return list
}
