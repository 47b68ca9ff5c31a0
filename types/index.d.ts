// The package's types for CommonJS consumers (the "require" condition, and "types" for
// moduleResolution node10). `export =` because require('fastify-observability') returns the plugin
// function itself, with .default and every named export on it (lib/index.ts ends with
// `module.exports = Object.assign(plugin, module.exports)`), so `import observability = require(...)`
// is callable, as with every Fastify plugin. ESM consumers get dist/esm/index.d.mts instead.
//
// The names come from lib/index.ts, the one list of the public API:
// - the values (the plugin, .default, the constants, ObservabilityOptionError) through
//   `typeof api`, so a value exported there is here without an edit;
// - the types must be named one by one: TypeScript cannot spread a module's types into an
//   `export =` namespace (`export type *` in a namespace is TS1194, in an augmentation TS2666).
//   test/docs-types.test.ts imports every export of dist/index.d.ts through this file in every
//   resolution mode and names the line to add when a type is missing here.
import * as api from '../dist/index'

declare const observability: typeof api.default & typeof api
declare namespace observability {
  export type ObservabilityOptions = api.ObservabilityOptions
  export type MetricsOptions = api.MetricsOptions
  export type NativeHistogramOptions = api.NativeHistogramOptions
  export type TracingOptions = api.TracingOptions
  export type DiscoveryOptions = api.DiscoveryOptions
  export type MetricsGuard = api.MetricsGuard
  export type PromRegistry = api.PromRegistry
  export type PromClientModule = api.PromClientModule
  export type CustomLabelFn = api.CustomLabelFn
  export type MetricsHandler = api.MetricsHandler
  export type ObservabilityMetrics = api.ObservabilityMetrics
  export type ObservabilityOptionError = api.ObservabilityOptionError
}
export = observability
