// A line for the operator: in the app's log, or, when the logger is off or its level hides the
// line (where it would go nowhere), as a process warning on stderr with a code.
import type { FastifyBaseLogger } from 'fastify'

function shown (log: FastifyBaseLogger, level: 'error' | 'warn'): boolean {
  const l = log as FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean }
  if (typeof l.isLevelEnabled === 'function') return l.isLevelEnabled(level)
  return log.level !== undefined && log.level !== 'silent'
}

export function tellOperator (log: FastifyBaseLogger, level: 'error' | 'warn', fields: object, message: string, code: string): void {
  log[level](fields, message)
  if (!shown(log, level)) process.emitWarning(message, { code })
}
