// Which routes are observed: decided once per route (in onRoute), never per request.
//
// Precedence, highest first:
//   1. the route's own config.metrics / config.tracing (true or false)
//   2. exclude globs (a match leaves the route out)
//   3. include globs (when given, only matches are observed)
//   4. default: observed
import picomatch from 'picomatch'

export interface RouteDecision {
  metrics: boolean
  tracing: boolean
}

export interface RoutePolicyConfig {
  metrics?: unknown
  tracing?: unknown
}

export type RoutePolicy = (url: string, config: RoutePolicyConfig | undefined) => RouteDecision

const GLOB_OPTIONS = { dot: true, strictBrackets: true }

export function createRoutePolicy (include: string[] | undefined, exclude: string[]): RoutePolicy {
  const isIncluded = include === undefined ? null : picomatch(include, GLOB_OPTIONS)
  const isExcluded = exclude.length === 0 ? null : picomatch(exclude, GLOB_OPTIONS)

  return function decideRoute (url, config) {
    const byGlob = (isExcluded === null || !isExcluded(url)) && (isIncluded === null || isIncluded(url))
    return {
      metrics: typeof config?.metrics === 'boolean' ? config.metrics : byGlob,
      tracing: typeof config?.tracing === 'boolean' ? config.tracing : byGlob
    }
  }
}
