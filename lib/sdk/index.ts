/**
 * `fastify-observability/sdk`: starts the OpenTelemetry SDK the user installed (JS SDK 2.x or 3.x)
 * with the Node auto-instrumentations (instrumentation-http for outgoing calls; the noisy fs/dns/
 * net/runtime-node ones off), a resource carrying service.name/service.version, a sampler and one
 * trace exporter per name (OTLP http/protobuf by default, Jaeger on 2.x, console or none).
 *
 * Every option overrides its environment variable; invalid configuration is ONE
 * `TelemetryConfigError` listing every problem. The SDK packages are optional peer dependencies,
 * loaded when startTelemetry runs: the plugin itself never loads this module.
 */
export type * from './options'
export { TelemetryConfigError, TelemetryPackageMissingError } from './errors'
export { resolveTelemetryConfig } from './config'
export { getTelemetryHandle, startTelemetry } from './start'
export { registerShutdownHooks } from './shutdown-hooks'
export { TELEMETRY_HANDLE_SYMBOL } from '../telemetry-handle'
