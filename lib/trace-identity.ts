// The request's trace, told to its log lines and to its caller. Log lines: `trace_id`, `span_id` and
// `trace_flags` bound on request.log, Fastify's per-request child logger, which is also reply.log,
// so the handler's lines, the plugin's and Fastify's "request completed" carry them. The caller:
// the W3C Trace Context Level 2 `traceresponse` header, or a header of the user's with the trace id.
import { INVALID_TRACEID } from '@opentelemetry/api'
import type { Span } from '@opentelemetry/api'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { publishedHandle } from './telemetry-handle'

/** What is used of a logger: pino's setBindings (Fastify's default logger is pino). */
interface BindableLogger {
  setBindings?: (bindings: Record<string, string>) => void
  level?: string
}

export type Announce = (span: Span, request: FastifyRequest, reply: FastifyReply) => void

/**
 * instrumentation-pino, when the preload (or startTelemetry) enabled it, adds the same fields from
 * the active span to every pino line: binding them too would print each key twice.
 */
function pinoInstrumentedByPreload (): boolean {
  const handle = publishedHandle<{ forceFlush?: () => Promise<void>, instrumentations?: string[] }>()
  return handle?.instrumentations?.includes('@opentelemetry/instrumentation-pino') === true
}

/** The per-request step, or null when neither the log fields nor a response header are wanted. */
export function createAnnounce (responseHeader: string | null, logIds: boolean): Announce | null {
  const bindLogs = logIds && !pinoInstrumentedByPreload()
  if (responseHeader === null && !bindLogs) return null
  return function announce (span, request, reply) {
    // Fastify's logger when disabled has no setBindings; a silent one would print nothing. Checked
    // first: with no logger and no header this is all a request pays.
    const log = request.log as unknown as BindableLogger
    const bind = bindLogs && typeof log.setBindings === 'function' && log.level !== 'silent'
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
