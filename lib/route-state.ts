// What the hot path needs of a route, decided once per route (in onRoute) and found at request
// time through public route config: `request.routeOptions.config` is the object Fastify keeps
// for the route, and onRoute may put what it likes in a route's config.
import type { FastifyRequest, RouteOptions } from 'fastify'
import { ObservabilityOptionError } from './errors'
import type { RoutePolicy, RoutePolicyConfig } from './route-policy'
import type { HttpMetrics, RouteMetrics } from './metrics'
import { RouteTracing } from './tracing'
import type { Tracing } from './tracing'

export interface RouteState {
  /** null: not measured. */
  metrics: RouteMetrics | null
  /** null: not traced. */
  tracing: RouteTracing | null
}

type StatefulConfig = RoutePolicyConfig & { url?: string } & Record<symbol, RouteState | undefined>

function checkRouteConfig (config: RoutePolicyConfig | undefined, route: string): void {
  for (const key of ['metrics', 'tracing'] as const) {
    const v = config?.[key]
    if (v !== undefined && typeof v !== 'boolean') {
      throw new ObservabilityOptionError(`config.${key} of route ${route}`, v, 'must be a boolean')
    }
  }
}

export interface RouteStates {
  /** The onRoute hook: validates the route's config and attaches its state. */
  onRoute: (route: RouteOptions) => void
  /** The state of the route a request matched (the unmatched state for 404s). */
  of: (request: FastifyRequest) => RouteState
}

export function createRouteStates (policy: RoutePolicy, metrics: HttpMetrics | null, tracing: Tracing | null): RouteStates {
  // One key per plugin instance: two instances (two apps, or nested registrations) never read
  // each other's state from a route config.
  const kRouteState = Symbol('fastify-observability.route')
  // Requests that match no route: one fixed route label and span name, whatever the URL.
  const unmatched: RouteState = { metrics: metrics?.unmatched ?? null, tracing: tracing === null ? null : new RouteTracing(undefined) }

  function stateFor (url: string, config: RoutePolicyConfig | undefined): RouteState {
    const decision = policy(url, config)
    return {
      metrics: decision.metrics && metrics !== null ? metrics.forRoute(url) : null,
      tracing: decision.tracing && tracing !== null ? new RouteTracing(url) : null
    }
  }

  return {
    onRoute: function decideRoute (route) {
      const config = route.config as RoutePolicyConfig | undefined
      checkRouteConfig(config, `${String(route.method)} ${route.url}`)
      // A fresh object: the user may share one config object between routes.
      route.config = { ...config, [kRouteState]: stateFor(route.url, config) } as RouteOptions['config']
    },

    of: function routeState (request) {
      const config = request.routeOptions.config as unknown as StatefulConfig
      const state = config[kRouteState]
      if (state !== undefined) return state
      // 404s: Fastify's not-found route has no url. Nothing is cached on its config: that is the
      // user's own object (setNotFoundHandler's config, not copied by Fastify), maybe frozen or shared.
      if (config.url === undefined) return unmatched
      // A route added before the plugin (onRoute never saw it): decided on its first request, by
      // the same rules. No throwing here: a bad config.metrics/tracing is ignored (globs decide).
      return (config[kRouteState] = stateFor(config.url, config))
    }
  }
}
