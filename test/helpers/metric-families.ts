// Decoding the protobuf exposition with an independent decoder (protobufjs, against the published
// metrics.proto in test/fixtures), and comparing it with a text exposition sample by sample.
import * as protobuf from 'protobufjs'
import { join } from 'node:path'

export const root = protobuf.loadSync(join(__dirname, '..', 'fixtures', 'metrics.proto'))
export const MetricFamily = root.lookupType('io.prometheus.client.MetricFamily')
export const Metric = root.lookupType('io.prometheus.client.Metric')

/** Every delimited MetricFamily in the bytes, in order, as plain objects (64-bit integers as numbers). */
export function decode (parts: Buffer | Buffer[]): any[] {
  const bytes = Buffer.isBuffer(parts) ? parts : Buffer.concat(parts)
  const reader = protobuf.Reader.create(bytes)
  const out: any[] = []
  while (reader.pos < reader.len) out.push(MetricFamily.toObject(MetricFamily.decodeDelimited(reader), { longs: Number, enums: String, arrays: true }))
  return out
}

export function formatNumber (v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  return String(v)
}

export function sample (name: string, labels: Array<{ name: string, value: string }>, value: number): string {
  const l = labels.map((p) => p.name + '="' + p.value + '"').sort().join(',')
  return name + '{' + l + '} ' + formatNumber(value)
}

/**
 * The samples a decoded family stands for, as Prometheus 2.42's protobuf parser makes them: a
 * counter's or gauge's named after the family, a histogram's buckets (the +Inf one from
 * sample_count when it is left out), _sum and _count, a summary's quantiles, _sum and _count.
 * `le` and `quantile` are written as the text exposition writes them (JavaScript's String()), to
 * compare with it; Prometheus 2.x itself writes them as floats (`1.0`: see
 * native-histograms-prometheus.test.ts).
 */
export function samplesOf (family: any): string[] {
  const out: string[] = []
  for (const m of family.metric) {
    const labels = m.label ?? []
    if (family.type === 'COUNTER') out.push(sample(family.name, labels, m.counter.value))
    else if (family.type === 'GAUGE') out.push(sample(family.name, labels, m.gauge.value))
    else if (family.type === 'UNTYPED') out.push(sample(family.name, labels, m.untyped.value))
    else if (family.type === 'SUMMARY') {
      for (const q of m.summary.quantile) out.push(sample(family.name, [...labels, { name: 'quantile', value: formatNumber(q.quantile) }], q.value))
      out.push(sample(family.name + '_sum', labels, m.summary.sampleSum), sample(family.name + '_count', labels, m.summary.sampleCount))
    } else {
      const h = m.histogram
      for (const b of h.bucket) out.push(sample(family.name + '_bucket', [...labels, { name: 'le', value: formatNumber(b.upperBound) }], b.cumulativeCount))
      if (h.bucket.at(-1)?.upperBound !== Infinity) out.push(sample(family.name + '_bucket', [...labels, { name: 'le', value: '+Inf' }], h.sampleCount))
      out.push(sample(family.name + '_sum', labels, h.sampleSum), sample(family.name + '_count', labels, h.sampleCount))
    }
  }
  return out.sort()
}

/** The samples of one family in a text exposition, in the same canonical form. */
export function textSamples (text: string, family: string): string[] {
  const out: string[] = []
  const names = new Set([family, family + '_bucket', family + '_sum', family + '_count'])
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line)
    if (m === null || !names.has(m[1])) continue
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map((l) => ({ name: l[1], value: l[2].replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1') }))
    const v = m[3].toLowerCase() === 'nan' ? NaN : m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3])
    out.push(sample(m[1], labels, v))
  }
  return out.sort()
}
