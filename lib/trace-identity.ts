// The request's trace, told to its log lines and to its caller. Log lines: `trace_id`, `span_id` and
// `trace_flags` on every line of request.log, Fastify's per-request child logger, which is also
// reply.log, so the handler's lines, the plugin's and Fastify's "request completed" carry them. The caller:
// the W3C Trace Context Level 2 `traceresponse` header, or a header of the user's with the trace id.
import { createRequire } from 'node:module'
import { INVALID_TRACEID } from '@opentelemetry/api'
import type { Span } from '@opentelemetry/api'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'

/** What is used of a logger: pino's setBindings, for loggers of a pino other than Fastify's. */
interface BindableLogger {
  setBindings?: (bindings: Record<string, string>) => void
  level?: string
}

type Mixin = (mergeObject: object, level: number, logger: unknown) => object

export type Announce = (span: Span, request: FastifyRequest, reply: FastifyReply) => void

/**
 * pino's mixin symbol (public, in `pino.symbols`) when `log` comes from the pino Fastify uses: pino
 * calls `logger[mixinSym]` for each line it writes, after the level check, as instrumentation-pino
 * relies on too.
 */
function pinoMixinSymbol (log: FastifyBaseLogger): symbol | undefined {
  try {
    const sym = createRequire(require.resolve('fastify'))('pino').symbols?.mixinSym as symbol | undefined
    return sym !== undefined && sym in (log as object) ? sym : undefined
  } catch {
    return undefined
  }
}

/**
 * The per-request step, or null when neither the log fields nor a response header are wanted.
 * Log fields: a mixin on the request's own child logger, over the one it inherits (a user's, or
 * instrumentation-pino's: their objects merge, so no key is written twice), so it costs a closure
 * per request and runs only for lines that pass the level. Loggers of another pino get
 * setBindings. Nothing is set on the instance's own logger (a childLoggerFactory returning it),
 * or every request's ids would pile up there.
 */
export function createAnnounce (responseHeader: string | null, logIds: boolean, rootLog: FastifyBaseLogger): Announce | null {
  if (responseHeader === null && !logIds) return null
  const mixinSym = logIds ? pinoMixinSymbol(rootLog) : undefined
  return function announce (span, request, reply) {
    // Fastify's logger when disabled is neither pino nor bindable; a silent one prints nothing.
    // Checked first: with no logger and no header this is all a request pays.
    const log = request.log as unknown as BindableLogger & Record<symbol, Mixin | undefined>
    const tellLog = logIds && log.level !== 'silent' && request.log !== rootLog &&
      (mixinSym !== undefined || typeof log.setBindings === 'function')
    if (!tellLog && responseHeader === null) return
    const sc = span.spanContext()
    if (sc.traceId === INVALID_TRACEID) return // a no-op span: no trace to tell
    const traceId = sc.traceId
    const spanId = sc.spanId
    const flags = traceFlagsHex(sc.traceFlags)
    if (responseHeader !== null) {
      reply.header(responseHeader, responseHeader === 'traceresponse' ? `00-${traceId}-${spanId}-${flags}` : traceId)
    }
    if (!tellLog) return
    if (mixinSym !== undefined) {
      const inherited = log[mixinSym]
      log[mixinSym] = inherited === undefined
        ? () => ({ trace_id: traceId, span_id: spanId, trace_flags: flags })
        : (o, n, l) => ({ ...inherited(o, n, l), trace_id: traceId, span_id: spanId, trace_flags: flags })
    } else {
      (log.setBindings as NonNullable<BindableLogger['setBindings']>)({ trace_id: traceId, span_id: spanId, trace_flags: flags })
    }
  }
}

/** Two lower-case hex digits, as in traceparent. */
function traceFlagsHex (flags: number): string {
  return flags === 1 ? '01' : flags === 0 ? '00' : (flags & 0xff).toString(16).padStart(2, '0')
}
