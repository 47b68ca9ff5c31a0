// Prometheus file-based service discovery: after listen, the instance announces its scrape target
// in a file_sd JSON file of its own in the configured directory; the file goes when the app closes.
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { isIPv4, isIPv6 } from 'node:net'
import type { AddressInfo } from 'node:net'
import { createServer as createH2cServer } from 'node:http2'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import type { ResolvedDiscovery } from './options'
import { tellOperator } from './tell-operator'

/** One entry of a file_sd file: `[{ "targets": ["host:port"], "labels": { ... } }]`. */
export interface TargetGroup {
  targets: string[]
  labels: Record<string, string>
}

/** A DNS name or an IPv4 address (underscores allowed: container and Consul names have them). */
const HOST_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/

/** What `discovery.address` says: the host (IPv6 without brackets), and the port if one was given. */
export interface ParsedAddress {
  host: string
  port: number | undefined
}

/**
 * `discovery.address`: `host`, `host:port`, `[ipv6]` or `[ipv6]:port`, as Prometheus reads a target.
 * A bare IPv6 address is the host, all of it: its last group is never a port. When the value is
 * none of these, or has an IPv6 zone id (`fe80::1%eth0`), `invalid` says what it must be (discovery-options.ts
 * makes the option error of it).
 */
export function parseAddress (value: unknown): ParsedAddress | { invalid: string } {
  const bad = { invalid: 'must be a host or host:port without a scheme or path (an IPv6 address in brackets: [2001:db8::1]:3000)' }
  if (typeof value !== 'string') return bad
  let host: string
  let port: string | undefined
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value)
  if (bracketed !== null) {
    [, host, port] = bracketed
    if (!isIPv6(host)) return bad
  } else if (isIPv6(value)) {
    host = value // a bare IPv6 literal: its colons are not a port
  } else {
    const m = /^([^:]+)(?::(\d+))?$/.exec(value)
    if (m === null || !HOST_NAME.test(m[1])) return bad
    ;[, host, port] = m
    // Looks like a dotted quad but is not one (e.g. 300.1.1.1): a typo, not a host name.
    if (/^[\d.]+$/.test(host) && !isIPv4(host)) return bad
  }
  // fe80::1%eth0: Node's isIPv6 takes a zone id, Prometheus does not (no valid URL host with it).
  const zone = host.indexOf('%')
  if (zone !== -1) {
    return { invalid: `must not have an IPv6 zone id (${host.slice(zone)}), which Prometheus cannot parse in a target: announce a host name or an address that needs no zone` }
  }
  if (port === undefined) return { host, port: undefined }
  const n = Number(port)
  if (!Number.isInteger(n) || n < 1 || n > 65535) return bad
  return { host, port: n }
}

/** `host:port` as Prometheus reads a target: IPv6 literals in brackets. */
export function hostPort (host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

/**
 * The target to announce: `address` (its port, else the listening one), else the listening address.
 * A wildcard (0.0.0.0, ::) is no address to scrape: the machine's host name is what a Prometheus
 * on another machine, a Compose network or a VM's DNS most often resolves to this one.
 * Undefined when there is nothing to say (a pipe or socket and no host:port to announce).
 */
export function announcedTarget (discovery: ResolvedDiscovery, listening: AddressInfo | undefined): string | undefined {
  const port = discovery.port ?? listening?.port
  if (port === undefined) return undefined
  if (discovery.host !== undefined) return hostPort(discovery.host, port)
  if (listening === undefined) return undefined
  const wildcard = listening.address === '0.0.0.0' || listening.address === '::'
  return hostPort(wildcard ? hostname() : listening.address, port)
}

/** The file's one target group: the user's labels, and Prometheus' own for a path or scheme not the default. */
export function targetGroup (target: string, discovery: ResolvedDiscovery, metricsPath: string, https: boolean): TargetGroup {
  const labels: Record<string, string> = { ...discovery.labels }
  if (metricsPath !== '/metrics') labels.__metrics_path__ = metricsPath
  if (https) labels.__scheme__ = 'https'
  return { targets: [target], labels }
}

/**
 * host-pid-port-random.json: the host name for a directory shared between machines (pids repeat),
 * the pid between processes, the port and the random part between apps of one process (a port
 * is reused once its app closed). Readable, so that a stale file names the instance that left it.
 */
export function discoveryFileName (port: number): string {
  return `${hostname().replace(/[^A-Za-z0-9._-]/g, '_')}-${process.pid}-${port}-${randomBytes(4).toString('hex')}.json`
}

/**
 * Write then rename in the same directory (rename is atomic within a file system): Prometheus
 * never reads a half-written file. The temp name is hidden and ends in .tmp, so no `*.json`
 * glob matches it. No fsync: after a power loss the instance is gone and so is its target.
 */
export function writeAtomically (directory: string, name: string, content: string): string {
  const file = join(directory, name)
  const temp = join(directory, `.${name}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    writeFileSync(temp, content, { mode: 0o644 })
    renameSync(temp, file)
  } catch (err) {
    rmSync(temp, { force: true })
    throw err
  }
  return file
}

// Files still announced by this process, removed on a process.exit() that skips app.close(): one
// listener for all instances (one per app would trip MaxListenersExceededWarning in big test suites).
const announced = new Set<string>()
let exitListener = false

function removeOnExit (file: string): void {
  announced.add(file)
  if (exitListener) return
  exitListener = true
  process.on('exit', () => {
    for (const f of announced) {
      try { unlinkSync(f) } catch {}
    }
  })
}

/** A warning in the app's log, or on stderr with Fastify's logger off (lib/tell-operator.ts). */
function warn (fastify: FastifyInstance, message: string, code: string): void {
  tellOperator(fastify.log, 'warn', {}, message, code)
}

// node:cluster (and PM2's cluster mode, which is node:cluster): the workers share the port, and each
// announces the same host:port in a file of its own. Prometheus merges them into one target and
// each scrape reaches whichever worker accepts the connection: a counter of one worker, then of
// another, reads as resets. Said once per process, at register.
let clusterWarned = false

function warnInClusterWorker (fastify: FastifyInstance): void {
  if (!cluster.isWorker || clusterWarned) return
  clusterWarned = true
  warn(fastify, 'fastify-observability: discovery in a cluster worker (node:cluster, PM2 cluster mode): every worker announces the same host:port, ' +
    'Prometheus merges them into one target and scrapes whichever worker accepts the connection, so its counters look like resets. ' +
    'Announce from the primary, or give each worker a port of its own to be scraped on (docs/discovery.md, "Cluster mode")',
  'FST_OBSERVABILITY_DISCOVERY_CLUSTER_WORKER')
}

// Node's HTTP/2 cleartext server class (Fastify's `http2: true` without `https`) is not exported:
// taken from a server made once, never listening.
let h2cServerClass: Function | undefined

/**
 * An HTTP/2 server without TLS (h2c). Prometheus scrapes over HTTP/1.1, or HTTP/2 over TLS only (ALPN):
 * it cannot scrape such a server, and an h2c server does not answer HTTP/1.1.
 */
export function isH2cServer (server: unknown): boolean {
  h2cServerClass ??= createH2cServer().constructor
  return server instanceof h2cServerClass && !(server instanceof TlsServer)
}

/** Announce the instance after listen, withdraw it on close. */
export function announceTarget (fastify: FastifyInstance, discovery: ResolvedDiscovery): void {
  // The route is mounted under the prefix of the context the plugin is registered in.
  const metricsPath = fastify.prefix + discovery.endpoint
  let file: string | undefined
  let closing = false
  warnInClusterWorker(fastify)

  // Synchronous, and an error logged rather than thrown: Fastify runs onListen hooks after listen()
  // resolved and only logs what they throw, so no rejection could reach the caller. Written
  // synchronously, the file is there when `await app.listen()` returns (unless an async onListen
  // hook of the app's runs first). The app serves either way: a discovery file is not worth an outage.
  fastify.addHook('onListen', function writeDiscoveryFile () {
    if (closing) return // close() began before the hook ran: announcing now would leave a stale file
    try {
      const address = fastify.server.address()
      // A pipe or Unix socket (behind a proxy, say) has no port: then discovery.address says where.
      const listening = address !== null && typeof address === 'object' ? address : undefined
      const target = announcedTarget(discovery, listening)
      if (target === undefined) {
        throw new Error(`the server listens on ${String(address)}, not on a TCP port: set discovery.address to the host:port that reaches it`)
      }
      const group = targetGroup(target, discovery, metricsPath, fastify.server instanceof TlsServer)
      file = writeAtomically(discovery.directory, discoveryFileName(listening?.port ?? discovery.port ?? 0), JSON.stringify([group], null, 2) + '\n')
      removeOnExit(file)
      if (isH2cServer(fastify.server)) {
        warn(fastify, `fastify-observability: discovery announces ${target}, an HTTP/2 server without TLS (h2c): Prometheus speaks HTTP/1.1, or HTTP/2 over TLS only, ` +
          'so every scrape of this target fails (up == 0). Serve HTTP/1.1 (no http2), or HTTP/2 over TLS (https too)',
        'FST_OBSERVABILITY_DISCOVERY_H2C')
      }
    } catch (err) {
      const message = `fastify-observability: no discovery file written in ${discovery.directory}, Prometheus will not find this instance: ${(err as Error).message}`
      tellOperator(fastify.log, 'error', { err }, message, 'FST_OBSERVABILITY_DISCOVERY_WRITE_FAILED')
    }
  })

  // preClose, not onClose: the first thing close() runs, so the target is withdrawn as early as
  // close allows. That narrows the window in which Prometheus scrapes an instance going away, it does
  // not prevent it: Fastify answers 503 from the start of close() and stops accepting connections
  // right after preClose, while Prometheus applies file_sd changes in batches (about 5 s), so a scrape
  // in between fails (up == 0 for a sample or two). docs/discovery.md, "A shutdown without a failed
  // scrape": remove the file, wait 5 s and a scrape_interval, then close.
  fastify.addHook('preClose', async function removeDiscoveryFile () {
    closing = true
    if (file === undefined) return
    const own = file
    file = undefined
    announced.delete(own)
    // Only ever this instance's own file: other instances' files are theirs to remove.
    await rm(own, { force: true }).catch((err: Error) => {
      fastify.log.warn({ err }, `fastify-observability: discovery file ${own} not removed: ${err.message}`)
    })
  })
}
