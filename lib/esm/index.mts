// ESM entry: re-exports the CommonJS build, so ESM and CJS consumers share one module instance
// (one set of symbols and one registry per plugin instance, never two copies of the plugin).
import cjs from '../index.js'

export default cjs.default
export const {
  observability,
  ObservabilityOptionError,
  DEFAULT_BUCKETS,
  UNMATCHED_ROUTE,
  OTHER_METHOD,
  DURATION_NAME,
  ACTIVE_NAME,
  prefersOpenMetrics,
  PROMETHEUS_CONTENT_TYPE,
  OPENMETRICS_CONTENT_TYPE
} = cjs
export type * from '../index.js'
