// ref-onrequest — ad-hoc reference (not in the default set): bare Fastify plus one empty
// onRequest hook. `npm run bench -- --only throughput --variants ref-onrequest,ref-onresponse,ref-close-listener`
import { runServer } from '../lib/server.mjs'

await runServer({
  name: 'ref-onrequest',
  register (app) {
    app.addHook('onRequest', function empty (request, reply, next) { next() })
  }
})
