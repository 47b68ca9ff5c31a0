// Whether an optional package is installed, asked before loading it: a package that is there but
// fails to load then shows its own error, and "not installed" needs no parsing of error messages.

/** Where `req` finds the package, undefined when it cannot (not installed there). */
export function resolveFrom (req: NodeJS.Require, name: string): string | undefined {
  try {
    return req.resolve(name)
  } catch {
    return undefined
  }
}
