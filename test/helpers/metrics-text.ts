// Parse the Prometheus text exposition into samples, so tests assert on values, not on substrings.
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export function parseSamples (text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)/.exec(line)
    if (m === null) throw new Error(`unparsable sample line: ${line}`)
    const labels: Record<string, string> = {}
    if (m[3] !== undefined) {
      for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1')
    }
    out.push({ name: m[1], labels, value: m[4] === '+Inf' ? Infinity : Number(m[4]) })
  }
  return out
}

/** The value of the one sample with this name whose labels include `labels`, or undefined. */
export function sampleValue (text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = parseSamples(text).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value
}

/** Request count recorded for one route/method/status (the histogram's _count). */
export function requestCount (text: string, route: string, method = 'GET', status = '200'): number | undefined {
  return sampleValue(text, 'http_server_request_duration_seconds_count', { http_route: route, http_request_method: method, http_response_status_code: status })
}

export function routesRecorded (text: string): Set<string> {
  return new Set(parseSamples(text).filter((s) => s.name === 'http_server_request_duration_seconds_count').map((s) => s.labels.http_route))
}
