// A registry's default labels (registry.setDefaultLabels), read through the public API.
//
// Neither prom-client nor @prometheus-io/client has a getter for them; both apply them when they
// render a metric themselves. So one of the plugin's own metrics is rendered by the registry as a
// single probe sample without labels (getSingleMetricAsString, public in both), and the labels the
// registry added to it are the default labels.
import type { PromRegistry } from './options'

/** A metric of the plugin's that can answer get() with the probe sample once. */
export interface Probeable {
  readonly name: string
  probing: boolean
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
  try {
    // Both clients call the metric's get() synchronously here; the flag is reset either way.
    pending = registry.getSingleMetricAsString(probe.name)
  } finally {
    probe.probing = false
  }
  const text = await pending
  const line = text.split('\n').find((l) => l.startsWith(probe.name + '{') || l.startsWith(probe.name + ' ')) ?? ''
  const open = line.indexOf('{')
  const labelText = open === -1 ? '' : line.slice(open + 1, line.lastIndexOf('}'))
  const seen = lastSeen.get(registry)
  if (seen !== undefined && seen.text === labelText) return seen.labels
  const labels = labelText === '' ? null : parseLabels(labelText)
  lastSeen.set(registry, { text: labelText, labels })
  return labels
}

/** `a="x",b="y \"q\""` (the exposition's escaping: \\, \n, \") to { a: 'x', b: 'y "q"' }. */
export function parseLabels (text: string): Record<string, string> | null {
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
