// The package's types for CommonJS consumers. `export =` because require('fastify-observability')
// returns the plugin function itself (with .default and the named exports on it), so that
// `import observability = require('fastify-observability')` is callable too. Everything is taken
// from the build's declarations (dist/index.d.ts, emitted from lib/), which also carry the Fastify
// augmentation (route `config.metrics`/`config.tracing`, `app.metrics`). ESM consumers get
// dist/esm/index.d.mts.
import type { FastifyInstance } from 'fastify'
import * as api from '../dist/index'

// A function declaration (not a const) so the namespace below can merge with it.
declare function observability (fastify: FastifyInstance, opts: api.ObservabilityOptions, done: (err?: Error) => void): void
declare namespace observability {
  export type ObservabilityOptions = api.ObservabilityOptions
  export type MetricsOptions = api.MetricsOptions
  export type TracingOptions = api.TracingOptions
  export type PromRegistry = api.PromRegistry
  export type PromClientModule = api.PromClientModule
  export type CustomLabelFn = api.CustomLabelFn
  export type MetricsHandler = api.MetricsHandler
  export type ObservabilityMetrics = api.ObservabilityMetrics
  export type ObservabilityOptionError = api.ObservabilityOptionError
  export const ObservabilityOptionError: typeof api.ObservabilityOptionError
  export const DEFAULT_BUCKETS: typeof api.DEFAULT_BUCKETS
  export const UNMATCHED_ROUTE: typeof api.UNMATCHED_ROUTE
  export const OTHER_METHOD: typeof api.OTHER_METHOD
  export const DURATION_NAME: typeof api.DURATION_NAME
  export const ACTIVE_NAME: typeof api.ACTIVE_NAME
  export const prefersOpenMetrics: typeof api.prefersOpenMetrics
  export const PROMETHEUS_CONTENT_TYPE: typeof api.PROMETHEUS_CONTENT_TYPE
  export const OPENMETRICS_CONTENT_TYPE: typeof api.OPENMETRICS_CONTENT_TYPE
  const plugin: typeof api.default
  export { plugin as default, plugin as observability }
}
export = observability
