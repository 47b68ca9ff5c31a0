// fastify-otel — @fastify/otel with @opentelemetry/instrumentation-http and the
// same SDK set-up as plugin-full-sdk (NodeSDK, AlwaysOn, BatchSpanProcessor,
// dropping exporter). Registered through the NodeSDK with
// registerOnInitialization, as its README shows.
import { runServer } from '../lib/server.mjs'
import { startSdk } from '../lib/otel-sdk.mjs'

await runServer({
  name: 'fastify-otel',
  setup: () => startSdk({
    http: true,
    async extraInstrumentations () {
      const mod = await import('@fastify/otel')
      const FastifyOtelInstrumentation = mod.default?.FastifyOtelInstrumentation ?? mod.FastifyOtelInstrumentation ?? mod.default
      return [new FastifyOtelInstrumentation({ registerOnInitialization: true })]
    }
  })
})
