// The Accept header, parsed once for the exposition's content negotiation (lib/exposition.ts for
// OpenMetrics and text, lib/exposition-protobuf.ts for protobuf).

/** One media range of an Accept header, in the order listed. */
export interface MediaRange {
  /** Lower-cased `type/subtype`. */
  type: string
  /** Parameters other than q, names lower-cased, a quoted value unquoted. */
  params: Record<string, string>
  /** The q parameter (1 when absent; NaN when not a number). */
  q: number
  /** Position in the header: at equal q, the earlier range is preferred. */
  at: number
}

export function parseAccept (accept: string): MediaRange[] {
  const ranges: MediaRange[] = []
  const parts = accept.split(',')
  for (let at = 0; at < parts.length; at++) {
    const fields = parts[at].split(';')
    const params: Record<string, string> = Object.create(null)
    let q = 1
    for (let i = 1; i < fields.length; i++) {
      const eq = fields[i].indexOf('=')
      if (eq < 0) continue // a parameter without a value says nothing here
      const name = fields[i].slice(0, eq).trim().toLowerCase()
      const value = fields[i].slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')
      if (name === 'q') q = Number(value)
      else params[name] = value
    }
    ranges.push({ type: fields[0].trim().toLowerCase(), params, q, at })
  }
  return ranges
}
