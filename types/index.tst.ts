// Type tests (tstyche): the plugin's public types as a TypeScript user sees them.
// Imported from the source (../lib/index) rather than the package name, so the result never
// depends on a stale dist/; the package's .d.ts files are emitted from this very source.
import Fastify from 'fastify'
import type { FastifyContextConfig, FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify'
import { Registry } from 'prom-client'
import { describe, expect, test } from 'tstyche'
import observability, { observability as named } from '../lib/index'
import type { ObservabilityOptions, ObservabilityMetrics, PromRegistry, PromClientModule, MetricsHandler } from '../lib/index'

const app = Fastify()
const handler = async (): Promise<string> => 'ok'

describe('route config', () => {
  test('metrics and tracing are booleans', () => {
    expect(app.get('/x', { config: { metrics: false, tracing: true } }, handler)).type.not.toRaiseError()
    expect(app.route({ method: 'GET', url: '/y', config: { metrics: true }, handler })).type.not.toRaiseError()
    expect(app.get('/z', { config: {} }, handler)).type.not.toRaiseError()
  })

  test('anything else is an error', () => {
    // (Fastify's route overloads report it against their last overload: "... to type 'undefined'".)
    expect(app.get('/x', { config: { metrics: 'no' } }, handler)).type.toRaiseError("Type '{ metrics: string; }' is not assignable")
    expect(app.get('/x', { config: { tracing: 1 } }, handler)).type.toRaiseError("Type '{ tracing: number; }' is not assignable")
    expect(app.route({ method: 'GET', url: '/y', config: { metrics: 'no' }, handler })).type.toRaiseError("Type '{ metrics: string; }' is not assignable")
    // The augmented config type itself says why.
    expect<FastifyContextConfig['metrics']>().type.toBe<boolean | undefined>()
    expect<FastifyContextConfig['tracing']>().type.toBe<boolean | undefined>()
    expect((): FastifyContextConfig => ({ metrics: 'no' })).type.toRaiseError("Type 'string' is not assignable to type 'boolean | undefined'")
  })

  test('the route config type carries them', () => {
    app.get('/r', async (request) => {
      expect(request.routeOptions.config.metrics).type.toBe<boolean | undefined>()
      expect(request.routeOptions.config.tracing).type.toBe<boolean | undefined>()
      return 'r'
    })
  })
})

describe('plugin', () => {
  test('is a FastifyPluginCallback of ObservabilityOptions', () => {
    expect(observability).type.toBeAssignableTo<FastifyPluginCallback<ObservabilityOptions>>()
    expect(named).type.toBe<typeof observability>()
  })

  test('registers with or without options', () => {
    expect(app.register(observability)).type.not.toRaiseError()
    expect(app.register(named, {})).type.not.toRaiseError()
    expect(app.register(observability, {
      include: ['/api/**'],
      exclude: ['/api/health'],
      metrics: {
        endpoint: '/internal/metrics',
        prefix: 'myapp_',
        buckets: [0.01, 0.1, 1],
        groupStatusCodes: true,
        customLabels: { tenant: (request: FastifyRequest) => String(request.headers['x-tenant']), code: (_req, reply) => reply.statusCode },
        defaultMetrics: { prefix: 'myapp_' },
        registry: new Registry()
      },
      tracing: { captureQuery: true, requestHook: (span, request) => { span.setAttribute('x', request.url) } }
    })).type.not.toRaiseError()
    expect(app.register(observability, { metrics: false, tracing: false })).type.not.toRaiseError()
    expect(app.register(observability, { metrics: { endpoint: false } })).type.not.toRaiseError()
    // Fastify's own register options pass through.
    expect(app.register(observability, { prefix: '/v1', logLevel: 'warn' })).type.not.toRaiseError()
  })

  test('options are typed', () => {
    expect(app.register(observability, { include: '/api' })).type.toRaiseError("Type 'string' is not assignable to type 'string[]'")
    expect(app.register(observability, { metrics: { buckets: 'x' } })).type.toRaiseError("Type 'string' is not assignable to type 'number[]'")
    expect(app.register(observability, { metrics: { endpoint: true } })).type.toRaiseError()
    expect(app.register(observability, { tracing: { captureQuery: 'yes' } })).type.toRaiseError()
    expect(app.register(observability, { metrics: { customLabels: { tenant: () => ({}) } } })).type.toRaiseError()
  })

  test('unknown options are errors', () => {
    expect(app.register(observability, { includes: ['/api/**'] })).type.toRaiseError('includes')
    expect(app.register(observability, { metrics: { bucket: [1] } })).type.toRaiseError('bucket')
    expect(app.register(observability, { tracing: { sampler: 1 } })).type.toRaiseError('sampler')
  })
})

describe('app.metrics', () => {
  test('is optional: undefined with `metrics: false`', () => {
    expect(app.metrics).type.toBe<ObservabilityMetrics | undefined>()
    expect<FastifyInstance['metrics']>().type.toBe<ObservabilityMetrics | undefined>()
    expect(app.metrics.registry).type.toRaiseError("'app.metrics' is possibly 'undefined'")
    expect(app.metrics?.registry).type.toBe<PromRegistry | undefined>()
  })

  test('has the registry, client, handler and render', () => {
    const metrics = app.metrics! // registered with metrics on
    expect(metrics.registry).type.toBe<PromRegistry>()
    expect(metrics.client).type.toBe<PromClientModule>()
    expect(metrics.handler).type.toBe<MetricsHandler>()
    expect(metrics.handler).type.toBe<(request: FastifyRequest, reply: FastifyReply) => Promise<Buffer>>()
    expect(metrics.render).type.toBe<(openMetrics?: boolean) => Promise<string>>()
    expect(metrics.registry.metrics()).type.toBe<Promise<string>>()
  })

  test('prom-client registries fit PromRegistry', () => {
    expect<Registry>().type.toBeAssignableTo<PromRegistry>()
    expect(app.register(observability, { metrics: { registry: {} } })).type.toRaiseError()
  })

  test('is on every FastifyInstance, including inside plugins', () => {
    const plugin: FastifyPluginCallback = (instance, _opts, done) => {
      expect(instance.metrics?.registry).type.toBe<PromRegistry | undefined>()
      done()
    }
    expect(app.register(plugin)).type.not.toRaiseError()
    expect<NonNullable<FastifyInstance['metrics']>['render']>().type.toBe<(openMetrics?: boolean) => Promise<string>>()
  })
})
