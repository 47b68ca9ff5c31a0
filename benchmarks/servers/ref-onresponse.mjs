// ref-onresponse — ad-hoc reference: empty onRequest and onResponse hooks. The onResponse hook
// is what makes Fastify add (and remove) its own 'finish'/'error' listeners per request.
import { runServer } from '../lib/server.mjs'

await runServer({
  name: 'ref-onresponse',
  register (app) {
    app.addHook('onRequest', function empty (request, reply, next) { next() })
    app.addHook('onResponse', function emptyToo (request, reply, next) { next() })
  }
})
