// ref-route-options — ad-hoc reference: one onRequest hook that finds per-route state the way the
// plugin does, through the public `request.routeOptions.config` (a getter that builds an object on
// every access). Compare with ref-onrequest (the empty hook) and ref-route-hook.
import { runServer } from '../lib/server.mjs'

const kState = Symbol('state')
// eslint-disable-next-line no-unused-vars -- written, never read: the hook does the work it measures
let seen = 0

await runServer({
  name: 'ref-route-options',
  register (app) {
    app.addHook('onRoute', (route) => { route.config = { ...route.config, [kState]: { route: route.url } } })
    app.addHook('onRequest', function find (request, reply, next) {
      if (request.routeOptions.config[kState] !== undefined) seen++
      next()
    })
  }
})
