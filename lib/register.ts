/**
 * CommonJS preload: `node --require fastify-observability/register app.js`
 *
 * Starts the OpenTelemetry SDK from the OTEL_* environment variables (see
 * `startTelemetry`) and flushes it on SIGTERM / SIGINT and on 'beforeExit'.
 * The handle is published on `Symbol.for('fastify-observability.telemetry')`
 * so the Fastify plugin can flush it when the app closes.
 *
 * Invalid configuration stops the process at start-up with a
 * `TelemetryConfigError` naming the variable and its value.
 *
 * For ESM applications use `node --import fastify-observability/register`,
 * which also registers the ESM loader hook.
 */
import { isMainThread } from 'node:worker_threads'
import { registerShutdownHooks, startTelemetry } from './sdk/index'
import type { TelemetryHandle } from './sdk/index'

let handle: TelemetryHandle | undefined
if (isMainThread) {
  handle = startTelemetry()
  registerShutdownHooks(handle)
}

export { handle }
