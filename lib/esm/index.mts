// ESM entry: re-exports the CommonJS build, so ESM and CJS consumers share one module instance
// (one set of symbols and one registry per plugin instance, never two copies of the plugin).
// Nothing is listed here: `export *` takes every named export of lib/index.ts (Node reads
// them from the CommonJS module), and the default export is the plugin, which is also what
// require('fastify-observability') returns. A named import (not `cjs.default`) keeps the emitted
// dist/esm/index.d.mts the same under every moduleResolution.
import { observability } from '../index.js'

export * from '../index.js'
export default observability
