// Formatting exposition lines, in the Prometheus text format 0.0.4 or OpenMetrics 1.0.0.
//
// prom-client renders one format per registry (and its OpenMetrics mode renames counters in place,
// which then breaks the text format), so both formats are rendered here from metric.get(). The
// plugin's own instruments are rendered straight from their series.
import type { SeriesGauge } from './instruments'

function escapeHelp (s: string, openMetrics: boolean): string {
  s = s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
  return openMetrics ? s.replace(/"/g, '\\"') : s
}

function escapeLabelValue (s: unknown): string {
  return String(s).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

export function formatValue (v: number): string {
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  if (Number.isNaN(v)) return 'NaN'
  return String(v)
}

export function formatLabels (labels: Record<string, unknown> | undefined, defaults: Record<string, unknown> | null): string {
  let out = ''
  if (labels !== undefined) {
    for (const k in labels) {
      const v = labels[k]
      if (v === undefined) continue
      out += (out === '' ? '' : ',') + k + '="' + escapeLabelValue(v) + '"'
    }
  }
  if (defaults !== null) {
    for (const k in defaults) {
      if (labels !== undefined && labels[k] !== undefined) continue
      out += (out === '' ? '' : ',') + k + '="' + escapeLabelValue(defaults[k]) + '"'
    }
  }
  return out === '' ? '' : '{' + out + '}'
}

export function formatExemplar (e: { labelSet: Record<string, unknown>, value: number, timestamp: number } | null | undefined): string {
  if (e == null) return ''
  return ' # ' + formatLabels(e.labelSet, null) + ' ' + formatValue(e.value) + ' ' + e.timestamp
}

export function header (name: string, help: string, type: string, openMetrics: boolean): string {
  return '# HELP ' + name + ' ' + escapeHelp(help, openMetrics) + '\n# TYPE ' + name + ' ' + type + '\n'
}

export function renderGauge (m: SeriesGauge, openMetrics: boolean, defaults: Record<string, unknown> | null): string {
  let out = header(m.name, m.help, 'gauge', openMetrics)
  for (const s of m.series.values()) out += m.name + formatLabels(s.labels, defaults) + ' ' + formatValue(s.value) + '\n'
  return out
}

/** Any other prom-client metric, from its get() (the API every prom-client metric has). */
export async function renderGeneric (metric: any, openMetrics: boolean, defaults: Record<string, unknown> | null): Promise<string> {
  const data = await metric.get()
  const type: string = data.type
  let family: string = data.name
  if (openMetrics && type === 'counter' && family.endsWith('_total')) family = family.slice(0, -6)
  // OpenMetrics has no 'untyped'; 'unknown' is its name.
  const shownType = openMetrics && type === 'untyped' ? 'unknown' : type
  let out = header(family, data.help ?? '', shownType, openMetrics)
  for (const v of data.values ?? []) {
    let name: string = v.metricName ?? data.name
    if (openMetrics && type === 'counter' && !name.endsWith('_total')) name += '_total'
    const labels = v.sharedLabels !== undefined ? { ...v.sharedLabels, ...v.labels } : v.labels
    out += name + formatLabels(labels, defaults) + ' ' + formatValue(v.value)
    if (openMetrics) out += formatExemplar(v.exemplar)
    out += '\n'
  }
  return out
}
