// ref-route-hook — ad-hoc reference: per-route state closed over by a route-level onRequest hook
// added in onRoute (as @fastify/rate-limit does), plus the global hook that 404s and routes added
// before a plugin would still need (here it only checks the public `request.is404`).
import { runServer } from '../lib/server.mjs'

// eslint-disable-next-line no-unused-vars -- written, never read: the hook does the work it measures
let seen = 0
// eslint-disable-next-line no-unused-vars -- written, never read: the hook does the work it measures
let notFound = 0

await runServer({
  name: 'ref-route-hook',
  register (app) {
    app.addHook('onRoute', (route) => {
      const state = { route: route.url }
      const own = function observeRoute (request, reply, next) { if (state !== undefined) seen++; next() }
      route.onRequest = route.onRequest === undefined ? [own] : [own].concat(route.onRequest)
    })
    app.addHook('onRequest', function unmatched (request, reply, next) {
      if (request.is404) notFound++
      next()
    })
  }
})
