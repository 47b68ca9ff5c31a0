// Reading (and briefly overriding) OTEL_* environment variables.

/** The variable's trimmed value; undefined when unset or blank (as the OpenTelemetry spec reads them). */
export function envString (env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name]
  if (v === undefined) return undefined
  const t = v.trim()
  return t === '' ? undefined : t
}

/** The first of these sources that is set, as [source, value]: an option, then its variables. */
export function firstSet<T> (...sources: Array<[string, T | undefined]>): [string, T] | undefined {
  for (const [source, value] of sources) if (value !== undefined) return [source, value]
  return undefined
}

/** A value as it appears in an error message. */
export function quote (v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v)
}

/** Validates an http(s) URL; returns an issue message or undefined. */
export function checkHttpUrl (value: string, source: string): string | undefined {
  let u: URL
  try {
    u = new URL(value)
  } catch {
    return `${source}=${quote(value)} is not a valid URL`
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return `${source}=${quote(value)} must be an http:// or https:// URL`
  }
  return undefined
}

export function parseBool (env: NodeJS.ProcessEnv, name: string, issues: string[]): boolean | undefined {
  const raw = envString(env, name)
  if (raw === undefined) return undefined
  const v = raw.toLowerCase()
  if (v === 'true') return true
  if (v === 'false') return false
  issues.push(`${name}=${quote(raw)} must be "true" or "false"`)
  return undefined
}

/**
 * Runs fn with some process.env variables set (string) or removed (undefined), then restores
 * them: for SDK constructors that read process.env themselves where an option must win.
 */
export function withEnv<T> (overrides: Record<string, string | undefined>, fn: () => T): T {
  const saved: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(overrides)) {
    saved[k] = process.env[k]
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
  try {
    return fn()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}
