// ref-route-hook-only — ad-hoc reference: per-route state closed over by a route-level onRequest
// hook added in onRoute, and no global hook at all (so 404s would go unseen). The cheapest public
// way for a hook to know its route; compare with ref-route-options and ref-route-hook.
import { runServer } from '../lib/server.mjs'

// eslint-disable-next-line no-unused-vars -- written, never read: the hook does the work it measures
let seen = 0

await runServer({
  name: 'ref-route-hook-only',
  register (app) {
    app.addHook('onRoute', (route) => {
      const state = { route: route.url }
      const own = function observeRoute (request, reply, next) { if (state !== undefined) seen++; next() }
      route.onRequest = route.onRequest === undefined ? [own] : [own].concat(route.onRequest)
    })
  }
})
