// The plugin: wires options, route policy, metrics, tracing and exposition together.
import type { ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import { context } from '@opentelemetry/api'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import { resolveOptions, ObservabilityOptionError, DEFAULT_BUCKETS } from './options'
import type { ObservabilityOptions, MetricsOptions, TracingOptions, PromRegistry, PromClientModule, CustomLabelFn } from './options'
import { createRoutePolicy } from './route-policy'
import type { RoutePolicyConfig } from './route-policy'
import { HttpMetrics, RouteMetrics, MethodSeries, UNMATCHED_ROUTE, OTHER_METHOD, DURATION_NAME, ACTIVE_NAME } from './metrics'
import { Tracing, RouteTracing } from './tracing'
import type { RequestSpan } from './tracing'
import { createMetricsHandler, createEndpointHandler, render, prefersOpenMetrics, PROMETHEUS_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE } from './exposition'
import type { MetricsHandler } from './exposition'

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
    /** Set by fastify-observability when metrics are on. */
    metrics: ObservabilityMetrics
  }
}

interface RouteState {
  metrics: RouteMetrics | null
  tracing: RouteTracing | null
}

const kRouteState = Symbol('fastify-observability.route')
const kSeries = Symbol('fastify-observability.series')
const kSpan = Symbol('fastify-observability.span')
const kStart = Symbol('fastify-observability.start')
/** On the raw response: the reply it carries, for the shared 'close' listener. */
const kReply = Symbol('fastify-observability.reply')

type ObservedRequest = FastifyRequest & { [kSeries]: MethodSeries | null, [kSpan]: RequestSpan | null, [kStart]: number }
type ObservedResponse = ServerResponse & { [kReply]?: FastifyReply, isLightMyRequest?: boolean }
type StatefulConfig = RoutePolicyConfig & { url?: string, [kRouteState]?: RouteState }

const TELEMETRY = Symbol.for('fastify-observability.telemetry')

function findContextKey (request: FastifyRequest): symbol | null {
  const config = request.routeOptions.config
  for (const key of Object.getOwnPropertySymbols(request)) {
    const value = (request as unknown as Record<symbol, unknown>)[key]
    if (value !== null && typeof value === 'object' && (value as { config?: unknown }).config === config) return key
  }
  return null
}

function checkRouteConfig (config: RoutePolicyConfig | undefined, route: string): void {
  for (const key of ['metrics', 'tracing'] as const) {
    const v = config?.[key]
    if (v !== undefined && typeof v !== 'boolean') {
      throw new ObservabilityOptionError(`config.${key} of route ${route}`, v, 'must be a boolean')
    }
  }
}

function observability (fastify: FastifyInstance, opts: ObservabilityOptions, done: (err?: Error) => void): void {
  let options
  try {
    options = resolveOptions(opts)
  } catch (err) {
    done(err as Error)
    return
  }
  const policy = createRoutePolicy(options.include, options.exclude)
  const metrics = options.metrics === false ? null : new HttpMetrics(options.metrics)
  const tracing = options.tracing === false ? null : new Tracing(options.tracing)
  const customLabels = options.metrics === false ? [] : options.metrics.customLabels

  // Requests that match no route: one fixed route label and span name, whatever the URL.
  const unmatched: RouteState = { metrics: metrics?.unmatched ?? null, tracing: tracing === null ? null : new RouteTracing(undefined) }

  function stateFor (url: string, config: RoutePolicyConfig | undefined): RouteState {
    const decision = policy(url, config)
    return {
      metrics: decision.metrics && metrics !== null ? metrics.forRoute(url) : null,
      tracing: decision.tracing && tracing !== null ? new RouteTracing(url) : null
    }
  }

  fastify.addHook('onRoute', function decideRoute (route: RouteOptions) {
    checkRouteConfig(route.config as RoutePolicyConfig | undefined, `${String(route.method)} ${route.url}`)
    // A fresh object: the user may share one config object between routes.
    const config: StatefulConfig = { ...(route.config as RoutePolicyConfig | undefined), [kRouteState]: stateFor(route.url, route.config as RoutePolicyConfig | undefined) }
    route.config = config as RouteOptions['config']
  })

  // Fastify keeps a request's route context under a private symbol; `request.routeOptions` builds
  // a new object on every access. The symbol is found on the first request and checked against
  // routeOptions; if Fastify ever stores it otherwise, routeOptions is used.
  let contextKey: symbol | null | undefined

  function routeConfig (request: FastifyRequest): StatefulConfig {
    if (contextKey === undefined) contextKey = findContextKey(request)
    if (contextKey === null) return request.routeOptions.config as StatefulConfig
    return (request as unknown as Record<symbol, { config: StatefulConfig }>)[contextKey].config
  }

  /** The route's precomputed state; decided late (once) for routes added before the plugin. */
  function routeState (request: FastifyRequest): RouteState {
    const config = routeConfig(request)
    const state = config[kRouteState]
    if (state !== undefined) return state
    if (config.url === undefined) return unmatched
    // No throwing here: a bad config.metrics/tracing on such a route is ignored (globs decide).
    return (config[kRouteState] = stateFor(config.url, config))
  }

  fastify.decorateRequest(kSeries, null)
  fastify.decorateRequest(kSpan, null)
  fastify.decorateRequest(kStart, 0)

  // Only an onRequest hook. Any onResponse hook makes Fastify add and remove its own 'finish'
  // listeners per request (that is also the only time reply.elapsedTime exists): measured at
  // +0.8 µs, 5% of a bare request. One shared 'close' listener measured within noise of free,
  // and it also sees the requests a client aborts, which never reach onResponse.
  fastify.addHook('onRequest', function observeRequest (req: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction) {
    const request = req as ObservedRequest
    const state = routeState(request)
    const traced = state.tracing !== null && !(tracing as Tracing).idle
    const res = reply.raw as ObservedResponse
    // Not observed, or the client already left while earlier hooks ran ('close' has fired and
    // would never reach our listener).
    if ((state.metrics === null && !traced) || res.destroyed) {
      next()
      return
    }
    request[kStart] = performance.now()
    if (state.metrics !== null) {
      const series = state.metrics.forMethod(request.method)
      series.active.value++
      request[kSeries] = series
    }
    res[kReply] = reply
    // Prepended: instrumentation-http ends a span it owns on this same event.
    res.prependListener('close', finishObservation)
    if (traced) {
      const rs = (tracing as Tracing).start(request, state.tracing as RouteTracing)
      request[kSpan] = rs
      // Later hooks and the handler run inside the span's context, so their spans are children.
      // Fastify's body parsing keeps this context (content-type-parser runs in an AsyncResource).
      context.with(rs.ctx, next)
      return
    }
    next()
  })

  // The response's 'close' comes once per request: right after 'finish' for an answered request,
  // or when the connection goes away first. Answered means fully flushed; app.inject's response
  // never reports writableFinished, so there end() having been called counts.
  function finishObservation (this: ObservedResponse): void {
    const reply = this[kReply]
    if (reply === undefined) return
    this[kReply] = undefined
    const request = reply.request as ObservedRequest
    const answered = this.writableFinished || (this.isLightMyRequest === true && this.writableEnded)
    try {
      record(request, reply, answered)
    } catch (err) {
      // An event listener has no Fastify hook runner around it: a throw (say, from a user's
      // SpanProcessor) must not take the process down or skip the other 'close' listeners.
      request.log.error({ err }, 'fastify-observability: recording the request failed')
    }
  }

  function record (request: ObservedRequest, reply: FastifyReply, answered: boolean): void {
    const series = request[kSeries]
    if (series !== null) {
      request[kSeries] = null
      series.active.value--
      if (answered) {
        const seconds = (performance.now() - request[kStart]) / 1000
        if (customLabels.length === 0) series.forStatus(reply.statusCode).observe(seconds)
        else recordWithCustomLabels(series, request, reply, seconds)
      }
    }
    const rs = request[kSpan]
    if (rs !== null) {
      request[kSpan] = null
      if (answered) (tracing as Tracing).end(rs, reply)
      else (tracing as Tracing).abort(rs)
    }
  }

  if (tracing !== null) {
    fastify.addHook('onError', function recordError (req: FastifyRequest, _reply: FastifyReply, error: Error, next: HookHandlerDoneFunction) {
      const rs = (req as ObservedRequest)[kSpan]
      if (rs !== null) (tracing as Tracing).error(rs, error)
      next()
    })
  }

  function recordWithCustomLabels (series: MethodSeries, request: FastifyRequest, reply: FastifyReply, seconds: number): void {
    const values = [series.method, series.route, (metrics as HttpMetrics).statusLabel(reply.statusCode)]
    for (const [name, fn] of customLabels) {
      let v: string
      try {
        v = String(fn(request, reply))
      } catch (err) {
        request.log.warn({ err }, `fastify-observability: metrics.customLabels.${name} threw; recorded as ""`)
        v = ''
      }
      values.push(v)
    }
    ;(metrics as HttpMetrics).duration.seriesFor(values).observe(seconds)
  }

  if (metrics !== null) {
    const registry = metrics.registry
    const handler = createMetricsHandler(registry)
    fastify.decorate('metrics', {
      registry,
      client: metrics.options.client,
      handler,
      render: (openMetrics = false) => render(registry, openMetrics)
    })
    const endpoint = metrics.options.endpoint
    if (endpoint !== false) {
      // Never observe the scrape itself.
      fastify.route({ method: 'GET', url: endpoint, config: { metrics: false, tracing: false }, handler: createEndpointHandler(registry) })
    }
  }

  fastify.addHook('onClose', async function releaseObservability () {
    metrics?.close()
    // The ./register preload's SDK: flush so a graceful shutdown loses no span.
    const telemetry = (globalThis as Record<symbol, { forceFlush?: () => Promise<void> } | undefined>)[TELEMETRY]
    if (telemetry?.forceFlush !== undefined) await telemetry.forceFlush().catch(() => {})
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
  OPENMETRICS_CONTENT_TYPE
}
export type { ObservabilityOptions, MetricsOptions, TracingOptions, PromRegistry, PromClientModule, CustomLabelFn, MetricsHandler }

// require('fastify-observability') returns the plugin itself, as with every Fastify plugin;
// .default and the named exports stay reachable on it.
module.exports = Object.assign(plugin, module.exports)
