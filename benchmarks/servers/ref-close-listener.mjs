// ref-close-listener — ad-hoc reference: an onRequest hook that puts one shared listener on the
// response's 'close', the way the plugin ends its observation.
import { runServer } from '../lib/server.mjs'

const kRequest = Symbol('request')
// eslint-disable-next-line no-unused-vars -- written, never read: the hook does the work it measures
let closed = 0
function onClose () { if (this[kRequest] !== undefined) closed++ }

await runServer({
  name: 'ref-close-listener',
  register (app) {
    app.addHook('onRequest', function listen (request, reply, next) {
      reply.raw[kRequest] = request
      reply.raw.on('close', onClose)
      next()
    })
  }
})
