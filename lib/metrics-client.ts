// Which Prometheus client module the metrics come from when `metrics.client` is not given: the one
// the application installed. Neither is a dependency of this package, so a fresh install on Node 22+
// brings no deprecated package. On Node 22 and later `@prometheus-io/client` (prom-client's successor)
// comes first; below 22, which it does not support, prom-client does. The lookup is made once per
// process, so registrations without a registry of their own all use the same module.
import type { PromClientModule, PromRegistry } from './options'
import { resolveFrom } from './installed'

const NODE_MAJOR = Number(process.versions.node.split('.')[0])

/** The client packages looked for, in order. */
export const CLIENT_PACKAGES: readonly string[] = NODE_MAJOR >= 22
  ? ['@prometheus-io/client', 'prom-client']
  : ['prom-client', '@prometheus-io/client']

let installed: Array<{ name: string, module: PromClientModule }> | undefined

function installedClients (): Array<{ name: string, module: PromClientModule }> {
  if (installed === undefined) {
    const found: Array<{ name: string, module: PromClientModule }> = []
    for (const name of CLIENT_PACKAGES) {
      if (resolveFrom(require, name) !== undefined) found.push({ name, module: require(name) as PromClientModule })
    }
    installed = found
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
