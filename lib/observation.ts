// A request's observation from start to finish: started in onRequest, finished by a listener on
// the response's 'close'.
//
// Only an onRequest hook. Any onResponse hook makes Fastify add and remove its own 'finish'
// listeners per request (unless its logger is on). The 'close' listener also sees the requests a
// client aborts, which never reach onResponse.
import { Server as HttpServer } from 'node:http'
import type { ServerResponse } from 'node:http'
import { Server as HttpsServer } from 'node:https'
import { performance } from 'node:perf_hooks'
import { context } from '@opentelemetry/api'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { MethodSeries } from './metrics'
import type { RouteStates } from './route-state'
import type { RequestSpan, Tracing } from './tracing'

/** The request's span, for the onError hook (only decorated when tracing is on). */
const kSpan = Symbol('fastify-observability.span')

type ObservedRequest = FastifyRequest & { [kSpan]: RequestSpan | null }

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

/**
 * wasAnswered for a server that may answer over HTTP/2. An HTTP/2 compat response reports its
 * stream's writableFinished, true as well on a stream the client reset (RST_STREAM) before the
 * response was ended: only an ended response counts. (HTTP/1.1 never finishes unended, so this
 * is right there too; HTTP/1.1-only servers keep the one-read wasAnswered.)
 */
function wasAnsweredOrReset (res: ServerResponse): boolean {
  if (res.writableFinished) return res.writableEnded
  return wasAnswered(res)
}

export function observeRequests (fastify: FastifyInstance, routes: RouteStates, tracing: Tracing | null): void {
  // Metrics keep nothing on the request: Fastify's request constructor writes every decorated
  // field through one store site keyed by the field, which several keys make megamorphic; three
  // decorated fields measured 600-1,200 instructions per request more than this closure (1-2% of a
  // bare request; benchmarks/servers/ref-metrics-state.mjs).
  if (tracing !== null) fastify.decorateRequest(kSpan, null)
  // Chosen once: an HTTP/2 server (http2: true, or a serverFactory's; allowHTTP1 too) needs the
  // reset check, an HTTP/1.1 server keeps its per-request cost.
  const server: unknown = fastify.server
  const answered = server instanceof HttpServer || server instanceof HttpsServer ? wasAnswered : wasAnsweredOrReset

  fastify.addHook('onRequest', function observeRequest (request: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction) {
    const state = routes.of(request)
    const traced = state.tracing !== null && !(tracing as Tracing).idle
    const res = reply.raw
    // Not observed, or the client already left while earlier hooks ran ('close' has fired and
    // would never reach our listener).
    if ((state.metrics === null && !traced) || res.destroyed) {
      next()
      return
    }
    const start = performance.now()
    let series: MethodSeries | null = null
    if (state.metrics !== null) {
      series = state.metrics.forMethod(request.method)
      series.begin()
    }
    let rs: RequestSpan | null = null
    // One listener per request, closed over what the end needs (cheaper than finding it again
    // through fields on the request or the response). Prepended: instrumentation-http ends a span
    // it owns on this same event.
    res.prependListener('close', function finishObservation () {
      const s = series
      const r = rs
      series = null
      rs = null
      try {
        finish(request as ObservedRequest, reply, s, r, start, answered(res))
      } catch (err) {
        // An event listener has no Fastify hook runner around it: a throw (say, from a user's
        // SpanProcessor) must not take the process down or skip the other 'close' listeners.
        request.log.error({ err }, 'fastify-observability: recording the request failed')
      }
    })
    if (traced) {
      rs = (tracing as Tracing).start(request, reply, state.tracing!)
      ;(request as ObservedRequest)[kSpan] = rs
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

  // Runs once per request, from the response's 'close': right after 'finish' for an answered
  // request, or when the connection goes away first.
  function finish (request: ObservedRequest, reply: FastifyReply, series: MethodSeries | null, rs: RequestSpan | null, start: number, answered: boolean): void {
    if (series !== null) series.end(answered, request, reply, start, performance.now(), rs === null ? null : rs.span)
    if (rs !== null) {
      request[kSpan] = null
      if (answered) (tracing as Tracing).end(rs, reply)
      else (tracing as Tracing).abort(rs)
    }
  }
}
