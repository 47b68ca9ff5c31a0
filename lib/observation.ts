// A request's observation from start to finish: started in onRequest, finished by one shared
// listener on the response's 'close'.
//
// Only an onRequest hook. Any onResponse hook makes Fastify add and remove its own 'finish'
// listeners per request (that is also the only time reply.elapsedTime exists): measured at +0.8 µs,
// 5% of a bare request. One shared 'close' listener measured within noise of free, and it also
// sees the requests a client aborts, which never reach onResponse.
import type { ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import { context } from '@opentelemetry/api'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { MethodSeries } from './metrics'
import type { RouteStates } from './route-state'
import type { RequestSpan, Tracing } from './tracing'

const kSeries = Symbol('fastify-observability.series')
const kSpan = Symbol('fastify-observability.span')
const kStart = Symbol('fastify-observability.start')
/** On the raw response: the reply it carries, for the shared 'close' listener. */
const kReply = Symbol('fastify-observability.reply')

type ObservedRequest = FastifyRequest & { [kSeries]: MethodSeries | null, [kSpan]: RequestSpan | null, [kStart]: number }
type ObservedResponse = ServerResponse & { [kReply]?: FastifyReply }

/**
 * Fully sent: flushed to the socket, or (app.inject, whose response has no real socket and never
 * reports writableFinished) ended on a socket that is still alive. A real response whose socket
 * died mid-body is ended on a destroyed socket: aborted.
 */
function wasAnswered (res: ServerResponse): boolean {
  if (res.writableFinished) return true
  // An HTTP/2 compat response has no socket (undefined) once its stream closed.
  const socket = res.socket as ServerResponse['socket'] | undefined
  return res.writableEnded && socket != null && !socket.destroyed
}

export function observeRequests (fastify: FastifyInstance, routes: RouteStates, tracing: Tracing | null): void {
  fastify.decorateRequest(kSeries, null)
  fastify.decorateRequest(kSpan, null)
  fastify.decorateRequest(kStart, 0)

  fastify.addHook('onRequest', function observeRequest (req: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction) {
    const request = req as ObservedRequest
    const state = routes.of(request)
    const traced = state.tracing !== null && !(tracing as Tracing).idle
    const res = reply.raw as ObservedResponse
    // Not observed, or the client already left while earlier hooks ran ('close' has fired and
    // would never reach our listener).
    if ((state.metrics === null && !traced) || res.destroyed) {
      next()
      return
    }
    request[kStart] = performance.now()
    if (state.metrics !== null) {
      const series = state.metrics.forMethod(request.method)
      series.begin()
      request[kSeries] = series
    }
    res[kReply] = reply
    // Prepended: instrumentation-http ends a span it owns on this same event.
    res.prependListener('close', finishObservation)
    if (traced) {
      const rs = (tracing as Tracing).start(request, state.tracing!)
      request[kSpan] = rs
      // Later hooks and the handler run inside the span's context, so their spans are children.
      // Fastify's body parsing keeps this context (content-type-parser runs in an AsyncResource).
      context.with(rs.ctx, next)
      return
    }
    next()
  })

  if (tracing !== null) {
    fastify.addHook('onError', function recordError (req: FastifyRequest, _reply: FastifyReply, error: Error, next: HookHandlerDoneFunction) {
      const rs = (req as ObservedRequest)[kSpan]
      if (rs !== null) tracing.error(rs, error)
      next()
    })
  }

  // The response's 'close' comes once per request: right after 'finish' for an answered request,
  // or when the connection goes away first.
  function finishObservation (this: ObservedResponse): void {
    const reply = this[kReply]
    if (reply === undefined) return
    this[kReply] = undefined
    const request = reply.request as ObservedRequest
    try {
      finish(request, reply, wasAnswered(this))
    } catch (err) {
      // An event listener has no Fastify hook runner around it: a throw (say, from a user's
      // SpanProcessor) must not take the process down or skip the other 'close' listeners.
      request.log.error({ err }, 'fastify-observability: recording the request failed')
    }
  }

  function finish (request: ObservedRequest, reply: FastifyReply, answered: boolean): void {
    const series = request[kSeries]
    if (series !== null) {
      request[kSeries] = null
      series.end(answered, request, reply, (performance.now() - request[kStart]) / 1000)
    }
    const rs = request[kSpan]
    if (rs !== null) {
      request[kSpan] = null
      if (answered) (tracing as Tracing).end(rs, reply)
      else (tracing as Tracing).abort(rs)
    }
  }
}
