// The request's trace, told to its log lines and to its caller. Log lines: `trace_id`, `span_id` and
// `trace_flags` bound on request.log, Fastify's per-request child logger, which is also reply.log,
// so the handler's lines, the plugin's and Fastify's "request completed" carry them. The caller:
// the W3C Trace Context Level 2 `traceresponse` header, or a header of the user's with the trace id.
import { createRequire } from 'node:module'
import { INVALID_TRACEID, ROOT_CONTEXT, TraceFlags, context, trace } from '@opentelemetry/api'
import type { Span } from '@opentelemetry/api'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'

/** What is used of a logger: pino's setBindings (Fastify's default logger is pino). */
interface BindableLogger {
  setBindings?: (bindings: Record<string, string>) => void
  level?: string
}

export type Announce = (span: Span, request: FastifyRequest, reply: FastifyReply) => void

const PROBE = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED })

/**
 * Whether the logger's pino mixin already adds a span's ids to every line (instrumentation-pino,
 * whoever started it): binding them too would print each key twice. Asked the public way: the mixin
 * (pino.symbols.mixinSym of the pino Fastify uses) is called as pino calls it, inside a span.
 */
function mixinAddsIds (log: FastifyBaseLogger): boolean {
  let mixinSym: symbol | undefined
  try {
    mixinSym = createRequire(require.resolve('fastify'))('pino').symbols?.mixinSym
  } catch {
    return false
  }
  const mixin = mixinSym === undefined ? undefined : (log as unknown as Record<symbol, unknown>)[mixinSym]
  if (typeof mixin !== 'function') return false
  try {
    const added = context.with(PROBE, () => mixin({}, 30, log)) as Record<string, unknown> | undefined
    return added != null && Object.values(added).includes('0af7651916cd43dd8448eb211c80319c')
  } catch {
    return false
  }
}

/**
 * The per-request step, or null when neither the log fields nor a response header are wanted.
 * `rootLog` is the Fastify instance's logger: a request whose log is that very logger (a custom
 * childLoggerFactory returning it) is not bound, or every request's ids would pile up on it.
 */
export function createAnnounce (responseHeader: string | null, logIds: boolean, rootLog: FastifyBaseLogger): Announce | null {
  const bindLogs = logIds && !mixinAddsIds(rootLog)
  if (responseHeader === null && !bindLogs) return null
  return function announce (span, request, reply) {
    // Fastify's logger when disabled has no setBindings; a silent one would print nothing. Checked
    // first: with no logger and no header this is all a request pays.
    const log = request.log as unknown as BindableLogger
    const bind = bindLogs && typeof log.setBindings === 'function' && log.level !== 'silent' && request.log !== rootLog
    if (!bind && responseHeader === null) return
    const sc = span.spanContext()
    if (sc.traceId === INVALID_TRACEID) return // a no-op span: no trace to tell
    const flags = traceFlagsHex(sc.traceFlags)
    if (responseHeader !== null) {
      reply.header(responseHeader, responseHeader === 'traceresponse' ? `00-${sc.traceId}-${sc.spanId}-${flags}` : sc.traceId)
    }
    if (bind) (log.setBindings as NonNullable<BindableLogger['setBindings']>)({ trace_id: sc.traceId, span_id: sc.spanId, trace_flags: flags })
  }
}

/** Two lower-case hex digits, as in traceparent. */
function traceFlagsHex (flags: number): string {
  return flags === 1 ? '01' : flags === 0 ? '00' : (flags & 0xff).toString(16).padStart(2, '0')
}
