// The discovery section of the options (discovery.*), checked against the resolved metrics.
import { accessSync, constants as fsConstants, statSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import { parseAddress } from './discovery'
import { ObservabilityOptionError } from './errors'
import { checkKeys, isPlainObject, LABEL_NAME } from './option-checks'
import type { DiscoveryOptions, ResolvedDiscovery, ResolvedMetrics } from './options'

const DISCOVERY_KEYS = ['directory', 'labels', 'address']

export function resolveDiscovery (value: unknown, metrics: ResolvedMetrics | false): ResolvedDiscovery | false {
  if (value === undefined || value === false) return false
  if (!isPlainObject(value)) throw new ObservabilityOptionError('discovery', value, 'must be false or an object { directory, labels?, address? }')
  checkKeys(value, DISCOVERY_KEYS, 'discovery.')
  // Nothing to scrape: better said at register than found out as a target that never comes up.
  if (metrics === false) {
    throw new ObservabilityOptionError('discovery', value, 'needs the metrics endpoint, but metrics is false: there is nothing to scrape')
  }
  if (metrics.endpoint === false) {
    throw new ObservabilityOptionError('discovery', value, 'needs the metrics endpoint, but metrics.endpoint is false: there is nothing to scrape here (announce the route or port that serves app.metrics.handler with a file_sd entry of your own)')
  }
  const o = value as Partial<DiscoveryOptions>
  return {
    directory: resolveDirectory(o.directory),
    labels: resolveTargetLabels(o.labels),
    ...resolveAddress(o.address),
    endpoint: metrics.endpoint
  }
}

// Checked at register so that a typo fails the start-up, not a write after listen that only logs.
function resolveDirectory (value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new ObservabilityOptionError('discovery.directory', value, 'must be a non-empty path to a directory')
  }
  const directory = resolvePath(value)
  let isDirectory: boolean
  try {
    isDirectory = statSync(directory).isDirectory()
  } catch (err) {
    throw new ObservabilityOptionError('discovery.directory', value, `must be an existing directory (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  if (!isDirectory) throw new ObservabilityOptionError('discovery.directory', value, 'must be a directory (it is a file)')
  try {
    // W for the temp file and the rename, X to reach entries in it.
    accessSync(directory, fsConstants.W_OK | fsConstants.X_OK)
  } catch (err) {
    throw new ObservabilityOptionError('discovery.directory', value, `must be a directory this process can write to (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  return directory
}

function resolveTargetLabels (value: unknown): Record<string, string> {
  if (value === undefined) return {}
  if (!isPlainObject(value)) throw new ObservabilityOptionError('discovery.labels', value, 'must be an object of label name to string value')
  const labels: Record<string, string> = {}
  for (const [name, v] of Object.entries(value)) {
    // __-prefixed labels are Prometheus' own (__metrics_path__, __scheme__, ...): set by the plugin.
    if (!LABEL_NAME.test(name) || name.startsWith('__')) {
      throw new ObservabilityOptionError(`discovery.labels.${name}`, name, 'must be a valid Prometheus label name (letters, digits and _, not starting with a digit or __)')
    }
    if (typeof v !== 'string') throw new ObservabilityOptionError(`discovery.labels.${name}`, v, 'must be a string')
    labels[name] = v
  }
  return labels
}

// The address rules are discovery's (lib/discovery.ts, with the target they make); the error is the options'.
function resolveAddress (value: unknown): { host: string | undefined, port: number | undefined } {
  if (value === undefined) return { host: undefined, port: undefined }
  const parsed = parseAddress(value)
  if ('invalid' in parsed) throw new ObservabilityOptionError('discovery.address', value, parsed.invalid)
  return parsed
}
