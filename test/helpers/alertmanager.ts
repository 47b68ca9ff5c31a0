// Process helpers for tests that run a real Alertmanager, and the webhook receiver its
// notifications go to. Everything listens on 127.0.0.1; every process started here is stopped by
// stop(), every server closed by close().
//
// Binaries: ALERTMANAGER_BIN / AMTOOL_BIN, else `prometheus-alertmanager` (Debian's name for it,
// /usr/bin) or upstream's `alertmanager`, and `amtool`, on PATH.
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './prometheus'

/** `<bin> --version`'s version (e.g. '0.25.0'), or null when the binary is not there. */
export function toolVersion (bin: string): string | null {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 })
  if (r.error !== undefined || r.status !== 0) return null
  const m = /version (\d+\.\d+\.\d+)/.exec(r.stdout + r.stderr)
  return m === null ? 'unknown' : m[1]
}

export const ALERTMANAGER_BIN = process.env.ALERTMANAGER_BIN ??
  (toolVersion('prometheus-alertmanager') !== null ? 'prometheus-alertmanager' : 'alertmanager')
export const AMTOOL_BIN = process.env.AMTOOL_BIN ?? 'amtool'

/**
 * Like skipReasonIfAbsent() of ./prometheus for Alertmanager and amtool: null when both run (run
 * the test) or when CI is set (.ci/run installs them: absence must fail the run), else the skip
 * message.
 */
export function alertmanagerSkipReason (): string | null {
  if (toolVersion(ALERTMANAGER_BIN) !== null && toolVersion(AMTOOL_BIN) !== null) return null
  if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') return null
  return `Alertmanager binaries not found (${ALERTMANAGER_BIN}, ${AMTOOL_BIN}): install Debian's 'prometheus-alertmanager' package or set ALERTMANAGER_BIN/AMTOOL_BIN (never skipped when CI is set)`
}

export interface AlertmanagerAlert {
  labels: Record<string, string>
  annotations: Record<string, string>
  status: { state: string, inhibitedBy: string[], silencedBy: string[] }
  receivers: Array<{ name: string }>
}

export interface RunningAlertmanager {
  /** http://127.0.0.1:<port> */
  url: string
  /** host:port, as Prometheus' alerting.alertmanagers targets want it. */
  address: string
  version: string
  /** The config file as written. */
  config: string
  /** GET /api/v2/alerts: the alerts Alertmanager holds (for failure messages). */
  alerts: () => Promise<AlertmanagerAlert[]>
  /** Everything Alertmanager logged so far (for failure messages). */
  logs: () => string
  /** SIGTERM, wait for exit (SIGKILL after 10 s), remove the temp dir. Idempotent. */
  stop: () => Promise<void>
}

export interface StartAlertmanagerOptions {
  /** The whole alertmanager.yml. */
  config: string
  /** How long to wait for /-/ready. Default 30 s. */
  readyTimeoutMs?: number
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Alertmanager on a free port, no clustering, its storage in a temp dir; resolves once /-/ready answers 200. */
export async function startAlertmanager (opts: StartAlertmanagerOptions): Promise<RunningAlertmanager> {
  const version = toolVersion(ALERTMANAGER_BIN)
  if (version === null) throw new Error(`${ALERTMANAGER_BIN} is not installed`)
  const dir = mkdtempSync(join(tmpdir(), 'fo-alertmanager-'))
  const port = await freePort()
  const configFile = join(dir, 'alertmanager.yml')
  writeFileSync(configFile, opts.config)

  let log = ''
  const child: ChildProcess = spawn(ALERTMANAGER_BIN, [
    `--config.file=${configFile}`,
    `--storage.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--cluster.listen-address=', // empty: no gossip port, no peers
    '--log.level=info'
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { log += d })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { log += d })
  let exited = false
  const exit = new Promise<void>((resolve) => {
    child.on('exit', () => { exited = true; resolve() })
    child.on('error', (err) => { log += String(err); exited = true; resolve() })
  })

  let stopped = false
  async function stop (): Promise<void> {
    if (!stopped) {
      stopped = true
      if (!exited) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => { if (!exited) child.kill('SIGKILL') }, 10_000)
        await exit
        clearTimeout(timer)
      }
    }
    rmSync(dir, { recursive: true, force: true })
  }

  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000)
  for (;;) {
    if (exited) {
      await stop()
      throw new Error(`alertmanager exited before it was ready:\n${log}\nconfig:\n${opts.config}`)
    }
    try {
      const res = await fetch(url + '/-/ready', { signal: AbortSignal.timeout(2000) })
      await res.text()
      if (res.status === 200) break
    } catch {}
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`alertmanager was not ready within the timeout:\n${log}`)
    }
    await sleep(100)
  }

  async function alerts (): Promise<AlertmanagerAlert[]> {
    const res = await fetch(url + '/api/v2/alerts', { signal: AbortSignal.timeout(5000) })
    return await res.json() as AlertmanagerAlert[]
  }

  return { url, address: `127.0.0.1:${port}`, version, config: opts.config, alerts, logs: () => log, stop }
}

/** One alert of a webhook notification (Alertmanager's webhook payload, version 4). */
export interface WebhookAlert {
  status: 'firing' | 'resolved'
  labels: Record<string, string>
  annotations: Record<string, string>
  startsAt: string
  endsAt: string
  generatorURL: string
  fingerprint: string
}

/** One POST Alertmanager made to the receiver. */
export interface WebhookNotification {
  /** The request's path: which webhook_configs url it was sent to. */
  path: string
  version: string
  groupKey: string
  status: 'firing' | 'resolved'
  /** The name of the Alertmanager receiver that sent it. */
  receiver: string
  groupLabels: Record<string, string>
  commonLabels: Record<string, string>
  commonAnnotations: Record<string, string>
  externalURL: string
  alerts: WebhookAlert[]
}

export interface WebhookReceiver {
  /** http://127.0.0.1:<port>, to which webhook_configs append their path. */
  url: string
  /** Every notification received so far, in order. */
  notifications: WebhookNotification[]
  /**
   * Resolves with the first notification, received before or after the call, for which match()
   * is true. Rejects after timeoutMs (default 90 s) with the message describe() returns then, so
   * that a test that waits in vain fails with the state of the processes rather than by timeout.
   */
  waitFor: (match: (n: WebhookNotification) => boolean, describe: () => Promise<string>, timeoutMs?: number) => Promise<WebhookNotification>
  /** Close the server (and its open connections). Idempotent. */
  close: () => Promise<void>
}

async function readBody (req: IncomingMessage): Promise<string> {
  let body = ''
  req.setEncoding('utf8')
  for await (const chunk of req) body += chunk as string
  return body
}

/** An HTTP server that records each JSON POST as a notification and answers 200. */
export async function startWebhookReceiver (): Promise<WebhookReceiver> {
  const notifications: WebhookNotification[] = []
  const waiters = new Set<() => void>()
  const server = createServer((req, res) => {
    readBody(req).then((body) => {
      if (req.method !== 'POST') {
        res.writeHead(405).end()
        return
      }
      notifications.push({ ...JSON.parse(body) as Omit<WebhookNotification, 'path'>, path: req.url ?? '' })
      res.writeHead(200).end()
      for (const wake of waiters) wake()
    }).catch(() => { res.writeHead(400).end() })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  function waitFor (match: (n: WebhookNotification) => boolean, describe: () => Promise<string>, timeoutMs = 90_000): Promise<WebhookNotification> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = notifications.find(match)
        if (found === undefined) return false
        waiters.delete(wake)
        clearTimeout(timer)
        resolve(found)
        return true
      }
      const wake = (): void => { check() }
      const timer = setTimeout(() => {
        waiters.delete(wake)
        describe().then(
          (state) => reject(new Error(`no matching notification within ${timeoutMs} ms; received:\n${JSON.stringify(notifications, null, 2)}\n${state}`)),
          (err: unknown) => reject(new Error(`no matching notification within ${timeoutMs} ms (and describing the state failed: ${String(err)})`))
        )
      }, timeoutMs)
      waiters.add(wake)
      check()
    })
  }

  let closed: Promise<void> | undefined
  function close (): Promise<void> {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
    return closed
  }

  return { url: `http://127.0.0.1:${port}`, notifications, waitFor, close }
}
