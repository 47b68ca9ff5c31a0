// Which Prometheus client module the metrics come from when `metrics.client` is not given: the one
// the application installed. `@prometheus-io/client` (prom-client's successor, Node 22+) first, then
// prom-client (Node 20). Neither is a dependency of this package, so a fresh install on Node 22+
// brings no deprecated package. The choice is made once per process: every registration uses the
// same module, so their metrics and default metrics never mix two clients.
import type { PromClientModule, PromRegistry } from './options'

/** The client packages looked for, in order. */
export const CLIENT_PACKAGES = ['@prometheus-io/client', 'prom-client'] as const

let installed: Array<{ name: string, module: PromClientModule }> | undefined

function installedClients (): Array<{ name: string, module: PromClientModule }> {
  if (installed === undefined) {
    installed = []
    for (const name of CLIENT_PACKAGES) {
      try {
        installed.push({ name, module: require(name) as PromClientModule })
      } catch (err) {
        const e = err as NodeJS.ErrnoException
        if (e?.code !== 'MODULE_NOT_FOUND' || !String(e.message).includes(`'${name}'`)) throw err
      }
    }
  }
  return installed
}

/**
 * The client module for a registration without `metrics.client`: the one whose Registry `registry`
 * is, when it is one of them; else the first installed. undefined when none is installed.
 */
export function installedClient (registry?: PromRegistry): PromClientModule | undefined {
  const clients = installedClients()
  if (registry !== undefined) {
    const owner = clients.find(c => registry instanceof c.module.Registry)
    if (owner !== undefined) return owner.module
  }
  return clients[0]?.module
}
