/**
 * `s` cut to at most `max` UTF-16 code units, never between the halves of a surrogate pair (a lone
 * half is not valid UTF-8, which the exposition and OTLP are).
 */
export function truncate (s: string, max: number): string {
  if (s.length <= max) return s
  const c = s.charCodeAt(max - 1)
  return s.slice(0, c >= 0xd800 && c <= 0xdbff ? max - 1 : max)
}
