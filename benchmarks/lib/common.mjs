// Shared helpers: CLI options, statistics, machine/package metadata, pinned
// child processes, and the request workload.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { USER_IDS } from './server.mjs'

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const ROOT_DIR = path.resolve(BENCH_DIR, '..')
const require = createRequire(path.join(ROOT_DIR, 'package.json'))

// ---------------------------------------------------------------- options

export const DEFAULTS = {
  connections: 50,
  rate: 0, // 0: closed loop, as fast as the server answers; N: fixed N req/s in total
  duration: 5,
  warmup: 2,
  rounds: 3,
  mix: false,
  quick: false,
  variants: null,
  only: null, // 'throughput' | 'scrape' | 'memory' (comma list)
  out: path.join(BENCH_DIR, 'results'),
  scrapeRoutes: 500,
  scrapeIterations: 30,
  memoryRequests: 100_000,
  cpuProf: null,
  retries: 2, // re-measure a variant whose server core was disturbed by other processes
  quietWait: 30, // seconds to wait for an idle machine before each measurement (0: don't)
  instructions: false, // the instructions-per-request part (valgrind), see lib/instructions.mjs
  instrCounts: [4000, 16000], // the two request counts whose difference gives instructions/request
  instrWarmup: 2000 // requests before the counted ones, in both runs
}

export const QUICK = {
  connections: 8,
  duration: 1,
  warmup: 0.25,
  rounds: 1,
  scrapeRoutes: 50,
  scrapeIterations: 3,
  memoryRequests: 2_000,
  retries: 0,
  quietWait: 0,
  instrCounts: [200, 600],
  instrWarmup: 100
}

const NUMERIC = new Set(['rate', 'retries', 'quietWait', 'connections', 'duration', 'warmup', 'rounds', 'scrapeRoutes', 'scrapeIterations', 'memoryRequests', 'instrWarmup'])

const camel = (s) => s.replace(/-([a-z])/g, (_, c) => c.toUpperCase())

export function parseArgs (argv = process.argv.slice(2)) {
  const given = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`)
    let [k, v] = a.slice(2).split(/=(.*)/s)
    k = camel(k)
    if (k === 'help') { given.help = true; continue }
    if (k === 'quick' || k === 'mix' || k === 'instructions') { given[k] = v === undefined ? true : v !== 'false'; continue }
    if (v === undefined) v = argv[++i]
    if (v === undefined) throw new Error(`--${k} needs a value`)
    if (!(k in DEFAULTS)) throw new Error(`unknown option --${k}`)
    if (NUMERIC.has(k)) {
      const n = Number(v)
      if (!Number.isFinite(n) || n < 0 || (n === 0 && !['retries', 'quietWait', 'rate', 'instrWarmup'].includes(k))) throw new Error(`--${k} must be a positive number`)
      given[k] = n
    } else if (k === 'variants' || k === 'only') {
      given[k] = v.split(',').map((s) => s.trim()).filter(Boolean)
    } else if (k === 'instrCounts') {
      const ns = v.split(',').map(Number)
      if (ns.length !== 2 || !ns.every((n) => Number.isInteger(n) && n > 0) || ns[0] === ns[1]) throw new Error('--instr-counts needs two different positive integers, e.g. 2000,10000')
      given[k] = ns.sort((a, b) => a - b)
    } else {
      given[k] = v
    }
  }
  const opts = { ...DEFAULTS, ...(given.quick ? QUICK : {}), ...given }
  opts.out = path.resolve(opts.out)
  opts.connections = Math.round(opts.connections)
  opts.rounds = Math.round(opts.rounds)
  // Two rounds by default (one in --quick): a run sometimes executes extra instructions, and the
  // figure takes the lowest run per request count over the rounds (lib/instructions.mjs).
  opts.instrRounds = given.rounds != null ? opts.rounds : 2
  opts.instrWarmup = Math.round(opts.instrWarmup)
  // Bounds: this suite never runs unbounded load.
  if (opts.duration > 120) throw new Error('--duration is capped at 120 s')
  if (opts.rounds > 20) throw new Error('--rounds is capped at 20')
  if (opts.connections > 1000) throw new Error('--connections is capped at 1000')
  if (opts.memoryRequests > 1_000_000) throw new Error('--memory-requests is capped at 1,000,000')
  if (opts.instrCounts[1] > 200_000 || opts.instrWarmup > 100_000) throw new Error('--instr-counts / --instr-warmup are capped at 200,000 / 100,000 (node under valgrind is ~50x slower)')
  return opts
}

export const USAGE = `Usage: npm run bench -- [options]
  --connections N       autocannon connections (default 50)
  --rate N              fixed total request rate (req/s) instead of closed loop; CPU/req
                        then compares every variant at the same throughput
  --duration S          measured seconds per variant per round (default 5)
  --warmup S            warm-up seconds before each measurement (default 2)
  --rounds N            rounds; variants alternate within each round (default 3)
  --mix                 mixed workload: parametric + static route + 5% unmatched
  --variants a,b        only these throughput variants (bare is always added); any other
                        file name in benchmarks/servers/ runs as an ad-hoc variant (ref-*)
  --only x,y            only these parts: throughput, scrape, memory
  --scrape-routes N     routes for the scrape bench (default 500 -> 5,000 series)
  --scrape-iterations N scrapes per format (default 30)
  --memory-requests N   requests for the memory bench (default 100000)
  --out DIR             results directory (default benchmarks/results)
  --retries N           re-measure a disturbed measurement up to N times (default 2)
  --quiet-wait S        wait up to S s for an idle machine before each measurement (default 30)
  --cpu-prof DIR        profile each server over its measured window, write .cpuprofile files to DIR
                        (the profiler's own cost inflates the figures of such a run)
  --instructions        instructions per request under valgrind (cachegrind) instead of the other
                        parts (add them with --only); every variant incl. the sampling ones
  --instr-counts N1,N2  the two request counts; instructions/req = ΔI / ΔN (default 4000,16000)
  --instr-warmup N      requests before the counted ones in both runs (default 2000)
                        (--rounds defaults to 1 for --instructions; --quick: 200,600, 100)
  --quick               smoke test: 1 round, 1 s, 8 connections, small scrape/memory
`

// ---------------------------------------------------------------- stats

export function median (xs) {
  const a = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((x, y) => x - y)
  if (a.length === 0) return null
  const m = a.length >> 1
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2
}

export function percentile (xs, p) {
  const a = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y)
  if (a.length === 0) return null
  const idx = Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))
  return a[idx]
}

export const round = (x, d = 3) => (x == null || !Number.isFinite(x) ? null : Math.round(x * 10 ** d) / 10 ** d)

// ---------------------------------------------------------------- metadata

export function pkgVersion (name) {
  try {
    return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version
  } catch {
    // Packages whose exports map hides package.json: walk up from the entry point.
    try {
      let dir = path.dirname(require.resolve(name))
      for (let i = 0; i < 6; i++) {
        try {
          const pj = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'))
          if (pj.name === name) return pj.version
        } catch {}
        dir = path.dirname(dir)
      }
    } catch {}
    return null
  }
}

export function packageVersions () {
  const names = [
    'fastify', 'prom-client', 'fastify-metrics', '@fastify/otel', 'autocannon',
    '@opentelemetry/api', '@opentelemetry/sdk-node', '@opentelemetry/sdk-trace-base',
    '@opentelemetry/sdk-trace-node', '@opentelemetry/instrumentation-http'
  ]
  const out = {}
  for (const n of names) out[n] = pkgVersion(n)
  try {
    out['fastify-observability'] = JSON.parse(readFileSync(path.join(ROOT_DIR, 'package.json'), 'utf8')).version
  } catch { out['fastify-observability'] = null }
  return out
}

export function gitCommit () {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT_DIR, encoding: 'utf8' })
  if (r.status !== 0) return null
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'lib'], { cwd: ROOT_DIR, encoding: 'utf8' })
  return r.stdout.trim() + (dirty.stdout && dirty.stdout.trim() ? '+dirty(lib)' : '')
}

export function machineInfo () {
  const cpus = os.cpus()
  return {
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    loadavg: os.loadavg().map((x) => round(x, 2))
  }
}

// ---------------------------------------------------------------- pinning

let pinningCache
/**
 * Decide how to pin: `taskset -c 1` for servers, `taskset -c 0` for the load
 * generator, when taskset exists and the machine has at least 2 cores.
 */
export function pinning () {
  if (pinningCache) return pinningCache
  const cores = os.cpus().length
  let reason = null
  if (cores < 2) reason = `only ${cores} core(s)`
  else {
    const r = spawnSync('taskset', ['-c', '1', process.execPath, '-e', '0'], { stdio: 'ignore' })
    if (r.error) reason = `taskset not available (${r.error.code})`
    else if (r.status !== 0) reason = `taskset -c 1 failed (exit ${r.status})`
  }
  pinningCache = reason
    ? { enabled: false, reason, server: 'none', load: 'none' }
    : { enabled: true, reason: null, server: 'taskset -c 1', load: 'taskset -c 0' }
  return pinningCache
}

const children = new Set()
let cleanupInstalled = false
function installCleanup () {
  if (cleanupInstalled) return
  cleanupInstalled = true
  const killAll = () => { for (const c of children) { try { c.kill('SIGKILL') } catch {} } }
  process.on('exit', killAll)
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => { killAll(); process.exit(130) })
  }
}

/**
 * Spawn `node script` with an IPC channel, pinned to `core` when pinning is on
 * (and `core` is not null). `wrapper` is a command to run node under (e.g.
 * valgrind and its options); the IPC channel's fd is inherited through it.
 */
export function spawnNode (script, { core, nodeArgs = [], args = [], env = {}, wrapper = [] } = {}) {
  installCleanup()
  const pin = pinning()
  const nodeCmd = [...wrapper, process.execPath, ...nodeArgs, script, ...args]
  const [cmd, ...argv] = pin.enabled && core != null ? ['taskset', '-c', String(core), ...nodeCmd] : nodeCmd
  const child = spawn(cmd, argv, {
    cwd: ROOT_DIR,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env }
  })
  children.add(child)
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => { children.delete(child); resolve({ code, signal }) }))
  return child
}

/** Wait for the next IPC message matching `pred`, or reject on exit/timeout. */
export function nextMessage (child, pred, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const onMsg = (m) => { if (pred(m)) { done(); resolve(m) } }
    const onExit = (code, signal) => { done(); reject(new Error(`child exited (code ${code}, signal ${signal}) before replying`)) }
    const timer = setTimeout(() => { done(); reject(new Error(`no reply within ${timeoutMs} ms`)) }, timeoutMs)
    function done () {
      clearTimeout(timer)
      child.off('message', onMsg)
      child.off('exit', onExit)
    }
    child.on('message', onMsg)
    child.once('exit', onExit)
  })
}

/** Ask a child to shut down; SIGKILL it if it has not exited in `graceMs`. */
export async function stopChild (child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited
  try { child.send({ type: 'shutdown' }) } catch {}
  const t = setTimeout(() => { try { child.kill('SIGKILL') } catch {} }, graceMs)
  const r = await child.exited
  clearTimeout(t)
  return r
}

// ---------------------------------------------------------------- workload

/** Deterministic PRNG (mulberry32) so every variant sees the same sequence. */
export function prng (seed = 42) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The request paths each connection cycles through.
 * Default: GET /api/users/:id over 1,000 ids (shuffled).
 * --mix: 80% parametric, 15% static /api/health, 5% unmatched paths.
 */
export function workloadPaths ({ mix = false } = {}) {
  const rnd = prng(1234)
  const paths = []
  for (let i = 0; i < USER_IDS; i++) paths.push(`/api/users/${i + 1}`)
  for (let i = paths.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [paths[i], paths[j]] = [paths[j], paths[i]]
  }
  if (!mix) return paths
  return paths.map((p, i) => {
    const r = i % 20
    if (r === 0) return `/nope/${Math.floor(rnd() * 1e9).toString(36)}` // 5% unmatched
    if (r === 1 || r === 7 || r === 13) return '/api/health' // 15% static
    return p
  })
}

// ---------------------------------------------------------------- one-shot children

/**
 * Run `script` in a pinned child with BENCH_CHILD_PARAMS (JSON) in its
 * environment and wait for its { type: 'result' } or { type: 'error' } message.
 */
export async function runChild (script, params, { core = 1, nodeArgs = [], timeoutMs = 300_000 } = {}) {
  const child = spawnNode(script, { core, nodeArgs, env: { BENCH_CHILD_PARAMS: JSON.stringify(params) } })
  try {
    const m = await nextMessage(child, (x) => x?.type === 'result' || x?.type === 'error', timeoutMs)
    if (m.type === 'error') return { ok: false, error: m.message }
    return { ok: true, ...m.result }
  } catch (err) {
    return { ok: false, error: err.message }
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const t = setTimeout(() => { try { child.kill('SIGKILL') } catch {} }, 5000)
      try { child.disconnect() } catch {}
      await child.exited
      clearTimeout(t)
    }
  }
}

/** In a child started by runChild: its params, or null when run directly. */
export function childParams () {
  return process.env.BENCH_CHILD_PARAMS ? JSON.parse(process.env.BENCH_CHILD_PARAMS) : null
}

/** In a child started by runChild: run fn(params) and send its result, then exit. */
export async function childMain (fn) {
  const params = childParams()
  try {
    const result = await fn(params)
    process.send({ type: 'result', result })
  } catch (err) {
    process.send({ type: 'error', message: err && err.stack ? err.stack.split('\n').slice(0, 3).join(' | ') : String(err) })
  }
  process.disconnect()
}

/** Lines of a Prometheus/OpenMetrics exposition that are samples (not comments/blank/EOF). */
export function countSamples (text) {
  let n = 0
  for (const line of text.split('\n')) if (line && line[0] !== '#') n++
  return n
}

// ---------------------------------------------------------------- interference

/** Busy and total jiffies per CPU from /proc/stat (Linux), or null. */
export function cpuTimes () {
  try {
    const out = {}
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line)
      if (!m) continue
      const v = m[2].trim().split(/\s+/).map(Number)
      const idle = v[3] + (v[4] || 0)
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
      out[m[1]] = { busy: total - idle, total }
    }
    return out
  } catch {
    return null
  }
}

/** Busy fraction of `core` between two cpuTimes() snapshots. */
export function coreBusy (a, b, core) {
  if (!a || !b || !a[core] || !b[core]) return null
  const total = b[core].total - a[core].total
  return total > 0 ? (b[core].busy - a[core].busy) / total : null
}

/**
 * Wait until the machine is idle (every core under `threshold` busy over a
 * 500 ms sample), for at most `maxWaitS` seconds. Other work on this machine
 * (builds, tests) would otherwise share the cores with the measurement.
 */
export async function waitQuiet ({ threshold = 0.15, maxWaitS = 30 } = {}) {
  const start = Date.now()
  let last = null
  while (true) {
    const a = cpuTimes()
    if (!a) return { quiet: null, waitedS: 0 }
    await new Promise((resolve) => setTimeout(resolve, 500))
    const b = cpuTimes()
    last = Math.max(...Object.keys(b).map((c) => coreBusy(a, b, c) ?? 0))
    const waitedS = (Date.now() - start) / 1000
    if (last < threshold) return { quiet: true, waitedS: round(waitedS, 1), busy: round(last, 3) }
    if (waitedS >= maxWaitS) return { quiet: false, waitedS: round(waitedS, 1), busy: round(last, 3) }
  }
}
