// The plugin: wires options, route policy, metrics, tracing and exposition together.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { resolveOptions, DEFAULT_BUCKETS } from './options'
import { ObservabilityOptionError, AlreadyRegisteredError } from './errors'
import type { ObservabilityOptions, MetricsOptions, NativeHistogramOptions, MetricsGuard, TracingOptions, DiscoveryOptions, PromRegistry, PromClientModule, CustomLabelFn } from './options'
import { createRoutePolicy } from './route-policy'
import { createRouteStates } from './route-state'
import { observeRequests } from './observation'
import { HttpMetrics, UNMATCHED_ROUTE, OTHER_METHOD, DURATION_NAME, ACTIVE_NAME } from './metrics'
import { Tracing } from './tracing'
import { publishedHandle, shutdownOnClose } from './telemetry-handle'
import { announceTarget } from './discovery'
import { serveExportFailures } from './export-failures'
import { ScrapeFaults } from './scrape-faults'
import { createMetricsHandler, createEndpointHandler, render, prefersOpenMetrics, PROMETHEUS_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE } from './exposition'
import type { MetricsHandler } from './exposition'
import { PROTOBUF_CONTENT_TYPE } from './exposition-protobuf'

/** What the plugin decorates the Fastify instance with (as `fastify.metrics`) when metrics are on. */
export interface ObservabilityMetrics {
  /** The registry the plugin's metrics live in; register your own metrics here to serve them too. */
  registry: PromRegistry
  /** The client module the instruments were created from. */
  client: PromClientModule
  /** A route handler serving the registry with content negotiation, for a route of your own. */
  handler: MetricsHandler
  /** Render the registry: Prometheus text 0.0.4, or OpenMetrics 1.0.0 when `openMetrics` is true. */
  render: (openMetrics?: boolean) => Promise<string>
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: this route is not measured; true: measured even if the globs leave it out. */
    metrics?: boolean
    /** false: this route is not traced; true: traced even if the globs leave it out. */
    tracing?: boolean
  }
  interface FastifyInstance {
    /**
     * Set by fastify-observability when metrics are on; `undefined` with `metrics: false` (and
     * before the plugin is registered), hence optional: `app.metrics?.registry`.
     */
    metrics?: ObservabilityMetrics
  }
}

/** Marks an instance (and, through inheritance, its children) as observed by this plugin. */
const kRegistered = Symbol('fastify-observability.registered')

function observability (fastify: FastifyInstance, opts: ObservabilityOptions, done: (err?: Error) => void): void {
  // A second registration would observe each request twice (and clash on decorators).
  if (fastify.hasDecorator(kRegistered)) {
    done(new AlreadyRegisteredError())
    return
  }
  let options
  try {
    options = resolveOptions(opts)
  } catch (err) {
    done(err as Error)
    return
  }
  fastify.decorate(kRegistered, true)
  const metrics = options.metrics === false ? null : new HttpMetrics(options.metrics)
  const tracing = options.tracing === false ? null : new Tracing(options.tracing, fastify.log)
  const routes = createRouteStates(createRoutePolicy(options.include, options.exclude), metrics, tracing)

  fastify.addHook('onRoute', routes.onRoute)
  observeRequests(fastify, routes, tracing)

  let releaseExportFailures = (): void => {}
  if (metrics !== null) {
    const registry = metrics.registry
    releaseExportFailures = serveExportFailures(registry)
    const faults = new ScrapeFaults(registry, metrics.options.scrapeTimeout, fastify.log)
    // preClose: before the server waits for the requests in flight, a hung scrape among them.
    fastify.addHook('preClose', function answerScrapesNow (done) { faults.abort(); done() })
    fastify.addHook('onClose', async function releaseScrapeFaults () { faults.release() })
    const protobuf = metrics.options.nativeHistograms !== null
    const handler = createMetricsHandler(registry, faults, protobuf)
    fastify.decorate('metrics', {
      registry,
      client: metrics.options.client,
      handler,
      render: (openMetrics = false) => render(registry, openMetrics, faults)
    })
    const endpoint = metrics.options.endpoint
    if (endpoint !== false) {
      // Never observe the scrape itself.
      fastify.route({
        method: 'GET',
        url: endpoint,
        config: { metrics: false, tracing: false },
        // The user's guard (token, allow-list) runs before the scrape is rendered.
        ...(metrics.options.guard.length > 0 ? { onRequest: metrics.options.guard } : {}),
        handler: createEndpointHandler(registry, faults, protobuf)
      })
    }
  }

  if (options.discovery !== false) announceTarget(fastify, options.discovery)

  fastify.addHook('onClose', async function releaseObservability () {
    metrics?.close()
    releaseExportFailures()
    // The ./register preload's SDK: flush so a graceful shutdown loses no span; after a signal the
    // app handles itself, shut it down (lib/telemetry-handle.ts, requestShutdownOnClose).
    const telemetry = publishedHandle()
    const end = shutdownOnClose() ? telemetry?.shutdown : telemetry?.forceFlush
    if (end !== undefined) await end.call(telemetry).catch(() => {})
  })

  done()
}

const plugin = fp(observability, {
  fastify: '5.x',
  name: 'fastify-observability'
})

export default plugin
export {
  plugin as observability,
  ObservabilityOptionError,
  DEFAULT_BUCKETS,
  UNMATCHED_ROUTE,
  OTHER_METHOD,
  DURATION_NAME,
  ACTIVE_NAME,
  prefersOpenMetrics,
  PROMETHEUS_CONTENT_TYPE,
  OPENMETRICS_CONTENT_TYPE,
  PROTOBUF_CONTENT_TYPE
}
export type { ObservabilityOptions, MetricsOptions, NativeHistogramOptions, MetricsGuard, TracingOptions, DiscoveryOptions, PromRegistry, PromClientModule, CustomLabelFn, MetricsHandler }

// require('fastify-observability') returns the plugin itself, as with every Fastify plugin;
// .default and the named exports stay reachable on it.
module.exports = Object.assign(plugin, module.exports)
