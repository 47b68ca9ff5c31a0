// Checks shared by the option resolvers (lib/options.ts and the section resolvers next to it).
import picomatch from 'picomatch'
import { ObservabilityOptionError } from './errors'

export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

export function checkKeys (obj: Record<string, unknown>, allowed: string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new ObservabilityOptionError(path + key, obj[key], `is not a known option (known: ${allowed.join(', ')})`)
    }
  }
}

export function checkBoolean (value: unknown, name: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') throw new ObservabilityOptionError(name, value, 'must be a boolean')
  return value as boolean | undefined
}

export function resolveGlobs (value: unknown, name: string): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value)) throw new ObservabilityOptionError(name, value, 'must be an array of glob strings')
  value.forEach((glob, i) => {
    if (typeof glob !== 'string' || glob.length === 0) {
      throw new ObservabilityOptionError(`${name}[${i}]`, glob, 'must be a non-empty glob string')
    }
    // Route patterns always start with '/', so a glob that does not can never match: a typo.
    if (glob[0] !== '/' && glob[0] !== '*') {
      throw new ObservabilityOptionError(`${name}[${i}]`, glob, "must start with '/' or '*' (globs match route patterns like /api/users/:id)")
    }
    try {
      picomatch.makeRe(glob, { strictBrackets: true, dot: true })
    } catch (err) {
      throw new ObservabilityOptionError(`${name}[${i}]`, glob, `is not a valid glob (${(err as Error).message})`)
    }
  })
  return [...value]
}
