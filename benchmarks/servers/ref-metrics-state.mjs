// ref-metrics-state — ad-hoc reference: the plugin's metrics-only hot path (hook, route lookup
// through request.routeOptions.config, start time, series, shared 'close' listener, histogram
// record) with the per-request state kept three ways (REF_STATE): 'decorators' (three
// decorateRequest fields, and the reply in a property of the response), 'one' (one decorated
// field holding a small object per request), 'closure' (a 'close' listener closed over the request
// and its state, no decorated field). Fastify's request constructor writes decorated fields in a
// loop over their keys: with several keys that store site is megamorphic.
import { performance } from 'node:perf_hooks'
import { runServer } from '../lib/server.mjs'

const MODE = process.env.REF_STATE ?? 'decorators'
const kState = Symbol('state')
const kReply = Symbol('reply')
const kA = Symbol('a')
const kB = Symbol('b')
const kStart = Symbol('start')
const bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
function series () { return { counts: new Array(bounds.length + 1).fill(0), sum: 0, count: 0 } }
function record (m, reply, start) {
  const s = m.byStatus[reply.statusCode] ??= series()
  const v = (performance.now() - start) / 1000
  let i = 0
  while (i < bounds.length && v > bounds[i]) i++
  s.counts[i]++
  s.sum += v
  s.count++
  m.active--
}

await runServer({
  name: 'ref-metrics-state',
  register (app) {
    if (MODE === 'decorators') {
      app.decorateRequest(kA, null)
      app.decorateRequest(kB, null)
      app.decorateRequest(kStart, 0)
    } else if (MODE === 'one') {
      app.decorateRequest(kA, null)
    }
    function onClose () {
      const reply = this[kReply]
      if (reply === undefined) return
      this[kReply] = undefined
      const request = reply.request
      if (MODE === 'decorators') record(request[kA], reply, request[kStart])
      else { const o = request[kA]; record(o.series, reply, o.start) }
    }
    app.addHook('onRoute', (route) => { route.config = { ...route.config, [kState]: { route: route.url, byMethod: Object.create(null) } } })
    app.addHook('onRequest', function find (request, reply, next) {
      const state = request.routeOptions.config[kState]
      if (state === undefined) { next(); return }
      const start = performance.now()
      const m = state.byMethod[request.method] ??= { byStatus: [], active: 0 }
      m.active++
      if (MODE === 'closure') {
        reply.raw.prependListener('close', () => record(m, reply, start))
      } else {
        if (MODE === 'decorators') {
          request[kA] = m
          request[kB] = null
          request[kStart] = start
        } else {
          request[kA] = { series: m, span: null, start }
        }
        reply.raw[kReply] = reply
        reply.raw.prependListener('close', onClose)
      }
      next()
    })
  }
})
