// Process helpers for tests that run the real Prometheus tools (the `prometheus` server and
// `promtool`). Everything listens on 127.0.0.1; every process started here is stopped by stop().
//
// Binaries: PROMETHEUS_BIN / PROMTOOL_BIN, else `prometheus` / `promtool` on PATH (Debian's
// `prometheus` package puts both in /usr/bin).
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? 'prometheus'
export const PROMTOOL_BIN = process.env.PROMTOOL_BIN ?? 'promtool'

/** `prometheus --version`'s version (e.g. '2.42.0'), or null when the binary is not there. */
export function prometheusVersion (bin = PROMETHEUS_BIN): string | null {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 })
  if (r.error !== undefined || r.status !== 0) return null
  const m = /version (\d+\.\d+\.\d+)/.exec(r.stdout + r.stderr)
  return m === null ? 'unknown' : m[1]
}

/** True when both binaries run. */
export function prometheusAvailable (): boolean {
  return prometheusVersion(PROMETHEUS_BIN) !== null && prometheusVersion(PROMTOOL_BIN) !== null
}

/**
 * How a test should treat a missing binary: skip locally with this message, but never on CI
 * (process.env.CI set), where .ci/run installs Prometheus and absence must fail the run.
 * Returns null when the binaries are there (run the test), or the skip message.
 */
export function skipReasonIfAbsent (): string | null {
  if (prometheusAvailable()) return null
  if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') return null
  return `Prometheus binaries not found (${PROMETHEUS_BIN}, ${PROMTOOL_BIN}): install Debian's 'prometheus' package or set PROMETHEUS_BIN/PROMTOOL_BIN (never skipped when CI is set)`
}

export function versionAtLeast (version: string, wanted: string): boolean {
  const a = version.split('.').map(Number)
  const b = wanted.split('.').map(Number)
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0)
  }
  return true
}

/** A port that was free a moment ago on 127.0.0.1 (the OS picks it). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

export interface PromtoolResult {
  /** promtool's exit code: 0 clean, 3 lint problems only (2.x), 1 parse error. */
  code: number | null
  stdout: string
  stderr: string
  /** Non-empty lines of stdout and stderr (lint findings go to stderr in 2.42, stdout in later versions). */
  lines: string[]
}

/** Pipe an exposition body into `promtool check metrics`. */
export async function promtoolCheckMetrics (text: string): Promise<PromtoolResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL_BIN, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code) => {
      clearTimeout(timer)
      const lines = (stdout + '\n' + stderr).split('\n').map((l) => l.trim()).filter((l) => l !== '')
      resolve({ code, stdout, stderr, lines })
    })
    child.stdin.on('error', () => {}) // EPIPE if promtool exits early; the exit code tells.
    child.stdin.end(text)
  })
}

export interface StartOptions {
  /** host:port targets of the one scrape job (job="app"). Ignored when `config` is given. */
  targets: string[]
  /**
   * The whole prometheus.yml to use instead of the generated one-job config (e.g. the sample in
   * docs/prometheus/ with its paths and ports filled in). `scrapeInterval`, `metricsPath`,
   * `scrapeProtocols` and `targets` are then not used.
   */
  config?: string
  /**
   * scrape_protocols of the job, e.g. ['OpenMetricsText1.0.0'] (Prometheus >= 2.49). On older
   * versions (Debian 12 has 2.42) the option does not exist and the scrape Accept header always
   * prefers OpenMetrics 1.0.0: a list starting with an OpenMetrics protocol is then left out of the
   * config (that default is what it asks for anyway; check the Accept header the app saw), and
   * any other list throws.
   */
  scrapeProtocols?: string[]
  /** metrics_path of the job. Default '/metrics'. */
  metricsPath?: string
  /** Default '1s' (scrape_timeout is the same). */
  scrapeInterval?: string
  /** How long to wait for /-/ready. Default 30 s. */
  readyTimeoutMs?: number
  /** --enable-feature flags, e.g. ['exemplar-storage']. */
  features?: string[]
}

export interface PromSample {
  metric: Record<string, string>
  value: [number, string]
}

export interface RunningPrometheus {
  url: string
  version: string
  /** The config file as written. */
  config: string
  /** Instant query; resolves to the vector/scalar result, rejects on an API error. */
  query: (q: string) => Promise<PromSample[]>
  /** Poll query(q) until check(result) is true; resolves to the last result either way. */
  waitFor: (q: string, check: (r: PromSample[]) => boolean, timeoutMs?: number) => Promise<PromSample[]>
  /** Everything Prometheus logged so far (for failure messages). */
  logs: () => string
  /** SIGTERM, wait for exit (SIGKILL after 10 s), remove the temp dir. Idempotent. */
  stop: () => Promise<void>
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export async function startPrometheus (opts: StartOptions): Promise<RunningPrometheus> {
  const version = prometheusVersion()
  if (version === null) throw new Error(`${PROMETHEUS_BIN} is not installed`)
  const interval = opts.scrapeInterval ?? '1s'

  let protocolsYaml = ''
  if (opts.scrapeProtocols !== undefined) {
    if (version !== 'unknown' && !versionAtLeast(version, '2.49.0')) {
      if (!opts.scrapeProtocols[0].startsWith('OpenMetricsText')) {
        throw new Error(`Prometheus ${version} has no scrape_protocols (added in 2.49) and always prefers OpenMetrics: cannot scrape with ${opts.scrapeProtocols.join(', ')}`)
      }
    } else {
      protocolsYaml = `    scrape_protocols: [${opts.scrapeProtocols.join(', ')}]\n`
    }
  }

  const dir = mkdtempSync(join(tmpdir(), 'fo-prometheus-'))
  const port = await freePort()
  const config = opts.config ??
    'global:\n' +
    `  scrape_interval: ${interval}\n` +
    `  scrape_timeout: ${interval}\n` +
    `  evaluation_interval: ${interval}\n` +
    'scrape_configs:\n' +
    '  - job_name: app\n' +
    `    metrics_path: ${JSON.stringify(opts.metricsPath ?? '/metrics')}\n` +
    protocolsYaml +
    '    static_configs:\n' +
    `      - targets: [${opts.targets.map((t) => JSON.stringify(t)).join(', ')}]\n`
  const configFile = join(dir, 'prometheus.yml')
  writeFileSync(configFile, config)

  let log = ''
  const child: ChildProcess = spawn(PROMETHEUS_BIN, [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
    ...(opts.features ?? []).map((f) => `--enable-feature=${f}`)
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
      throw new Error(`prometheus exited before it was ready:\n${log}\nconfig:\n${config}`)
    }
    try {
      const res = await fetch(url + '/-/ready', { signal: AbortSignal.timeout(2000) })
      await res.text()
      if (res.status === 200) break
    } catch {}
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`prometheus was not ready within the timeout:\n${log}`)
    }
    await sleep(100)
  }

  async function query (q: string): Promise<PromSample[]> {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(5000) })
    const body = await res.json() as { status: string, error?: string, data?: { resultType: string, result: any } }
    if (body.status !== 'success' || body.data === undefined) throw new Error(`query ${q} failed: ${body.error ?? res.status}`)
    if (body.data.resultType === 'scalar') return [{ metric: {}, value: body.data.result }]
    return body.data.result as PromSample[]
  }

  async function waitFor (q: string, check: (r: PromSample[]) => boolean, timeoutMs = 30_000): Promise<PromSample[]> {
    const end = Date.now() + timeoutMs
    let last: PromSample[] = []
    for (;;) {
      last = await query(q)
      if (check(last) || Date.now() > end) return last
      await sleep(250)
    }
  }

  return { url, version, config, query, waitFor, logs: () => log, stop }
}
