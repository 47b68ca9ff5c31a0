// ref-metrics-steps — ad-hoc reference: the plugin's metrics-only hot path rebuilt one step at a
// time (REF_STEP=1..5), to see which step costs what. 1: hook + route lookup through
// request.routeOptions.config; 2: + one shared 'close' listener; 3: + performance.now() at start
// and end; 4: + three decorated request fields written; 5: + series lookup and histogram record.
// REF_CLOSE (step 2 on) picks how the end is seen: 'prop' (the listener finds the reply in a
// property of the response), 'closure' (a listener closed over the reply, per request), 'noprop'
// (the shared listener, nothing stored: what the listener alone costs), 'onresponse' (an onResponse
// hook instead of any listener).
import { performance } from 'node:perf_hooks'
import { runServer } from '../lib/server.mjs'

const STEP = Number(process.env.REF_STEP ?? 5)
const CLOSE = process.env.REF_CLOSE ?? 'prop'
const kState = Symbol('state')
const kReply = Symbol('reply')
const kA = Symbol('a')
const kB = Symbol('b')
const kStart = Symbol('start')
// eslint-disable-next-line no-unused-vars -- written, never read: the hook does the work it measures
let seen = 0
let sum = 0
const bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
function series () { return { counts: new Array(bounds.length + 1).fill(0), sum: 0, count: 0 } }

await runServer({
  name: 'ref-metrics-steps',
  register (app) {
    if (STEP >= 4) {
      app.decorateRequest(kA, null)
      app.decorateRequest(kB, null)
      app.decorateRequest(kStart, 0)
    }
    function onClose () {
      if (CLOSE === 'noprop') { seen++; return }
      const reply = this[kReply]
      if (reply === undefined) return
      this[kReply] = undefined
      end(reply)
    }
    function end (reply) {
      const request = reply.request
      if (STEP >= 3) sum += performance.now() - (STEP >= 4 ? request[kStart] : 0)
      if (STEP >= 5) {
        const byStatus = request[kA].byStatus
        const s = byStatus[reply.statusCode] ??= series()
        const v = sum / 1000
        let i = 0
        while (i < bounds.length && v > bounds[i]) i++
        s.counts[i]++
        s.sum += v
        s.count++
        request[kA].active--
      }
      seen++
    }
    if (STEP >= 2 && CLOSE === 'onresponse') {
      app.addHook('onResponse', function ended (request, reply, next) {
        if (request.routeOptions.config[kState] !== undefined) end(reply)
        next()
      })
    }
    app.addHook('onRoute', (route) => { route.config = { ...route.config, [kState]: { route: route.url, byMethod: Object.create(null) } } })
    app.addHook('onRequest', function find (request, reply, next) {
      const state = request.routeOptions.config[kState]
      if (state === undefined) { next(); return }
      if (STEP >= 2) {
        if (CLOSE === 'prop') reply.raw[kReply] = reply
        if (CLOSE === 'closure') reply.raw.prependListener('close', () => end(reply))
        else if (CLOSE !== 'onresponse') reply.raw.prependListener('close', onClose)
      }
      if (STEP >= 3) {
        const t = performance.now()
        if (STEP >= 4) request[kStart] = t
      }
      if (STEP >= 4) {
        const m = STEP >= 5 ? (state.byMethod[request.method] ??= { byStatus: [], active: 0 }) : state
        if (STEP >= 5) m.active++
        request[kA] = m
        request[kB] = null
      }
      next()
    })
  }
})
