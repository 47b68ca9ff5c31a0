// A registry's default labels (registry.setDefaultLabels), read through the public API.
//
// Neither prom-client nor @prometheus-io/client has a getter for them; both apply them when they
// render a metric themselves. So one of the plugin's own metrics is rendered by the registry as a
// single probe sample without labels (getSingleMetricAsString, public in both), and the labels the
// registry added to it are the default labels.
import type { PromRegistry } from './options'

/** The name the probe sample is rendered under: no real sample of any metric has it. */
const PROBE_SUFFIX = '_fastify_observability_probe'

/** A metric of the plugin's that answers get() with the probe sample while `probing` is set. */
export interface Probeable {
  readonly name: string
  probing: boolean
}

/** What get() returns while probing: one sample without labels, under the probe name. */
export function probeSample (m: Probeable & { help: string, aggregator: string }): { name: string, help: string, type: string, aggregator: string, values: any[] } {
  m.probing = false
  return { name: m.name, help: m.help, type: 'gauge', aggregator: m.aggregator, values: [{ labels: {}, value: 0, metricName: m.name + PROBE_SUFFIX }] }
}

interface Seen { text: string, labels: Record<string, string> | null }
const lastSeen = new WeakMap<PromRegistry, Seen>()

/**
 * The default labels as an object, or null when there are none. The same object is returned as
 * long as they do not change: the exposition cache keys rendered lines on its identity.
 */
export async function defaultLabelsOf (registry: PromRegistry, probe: Probeable): Promise<Record<string, string> | null> {
  probe.probing = true
  let pending: Promise<string>
  let consumed: boolean
  try {
    // Both clients call the metric's get() before their first await; the flag is reset either way,
    // so no later get() (a user's registry.metrics()) can see the probe.
    pending = registry.getSingleMetricAsString(probe.name)
  } finally {
    consumed = !probe.probing
    probe.probing = false
  }
  const text = await pending
  const head = probe.name + PROBE_SUFFIX
  const line = text.split('\n').find((l) => l.startsWith(head + '{') || l.startsWith(head + ' '))
  if (!consumed || line === undefined) {
    throw new Error('fastify-observability: the registry did not render the probe sample its default labels are read from (its getSingleMetricAsString must call the metric\'s get() before awaiting, as prom-client\'s and @prometheus-io/client\'s do)')
  }
  const open = line.indexOf('{')
  const labelText = open === -1 ? '' : line.slice(open + 1, line.lastIndexOf('}'))
  const seen = lastSeen.get(registry)
  if (seen !== undefined && seen.text === labelText) return seen.labels
  const labels = labelText === '' ? null : parseLabels(labelText)
  lastSeen.set(registry, { text: labelText, labels })
  return labels
}

/**
 * `a="x",b="y \"q\""` (the exposition's escaping: \\, \n, \") to { a: 'x', b: 'y "q"' }. The
 * clients escape string values only: a non-string default label value (an array, say) is read
 * back as the client wrote it, as far as it parses.
 */
function parseLabels (text: string): Record<string, string> | null {
  const labels: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('="', i)
    if (eq === -1) break
    const name = text.slice(i, eq).trim()
    let value = ''
    let j = eq + 2
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\' && j + 1 < text.length) {
        j++
        value += text[j] === 'n' ? '\n' : text[j]
      } else {
        value += text[j]
      }
    }
    labels[name] = value
    i = j + 1
    if (text[i] === ',') i++
  }
  return Object.keys(labels).length > 0 ? labels : null
}
