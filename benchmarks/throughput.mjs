// Throughput / CPU-per-request benchmark.
//
// For each round, for each variant (order rotated every round): start the
// variant's server in its own process pinned to core 1, warm it up with
// autocannon (pinned to core 0), then measure: the server reports its own
// process.cpuUsage() delta over the window, which divided by the requests it
// served gives the primary figure, CPU time per request.
import { readdirSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  BENCH_DIR, median, round, cpuTimes, coreBusy, waitQuiet, parseArgs, pinning, spawnNode, nextMessage, stopChild, workloadPaths, USAGE
} from './lib/common.mjs'

export const VARIANTS = [
  { name: 'bare', kind: 'reference', description: 'bare Fastify 5, same routes (reference 1.00)' },
  { name: 'plugin-metrics', kind: 'plugin', peer: 'fastify-metrics', target: 0.95, description: 'this plugin, metrics only: { tracing: false }' },
  { name: 'plugin-nosdk', kind: 'plugin', target: 0.97, description: 'this plugin, tracing on, metrics off, no OpenTelemetry SDK started (API no-op)' },
  { name: 'plugin-full-sdk', kind: 'plugin', peer: 'fastify-otel', target: { 20: 0.72, 24: 0.80, default: 0.80 }, description: 'this plugin, metrics + tracing; NodeSDK 100% sampling, BatchSpanProcessor, dropping exporter; no instrumentation-http' },
  { name: 'plugin-full-sdk-http', kind: 'plugin', peer: 'fastify-otel', target: { 20: 0.72, 24: 0.80, default: 0.80 }, description: 'as plugin-full-sdk, with instrumentation-http on (plugin enriches its span)' },
  { name: 'fastify-metrics', kind: 'peer', description: 'fastify-metrics@13 on its defaults, endpoint /metrics' },
  { name: 'fastify-otel', kind: 'peer', description: '@fastify/otel + instrumentation-http, same SDK set-up as plugin-full-sdk' },
  { name: 'span-hook', kind: 'reference', description: 'floor for tracing: bare hooks starting/ending a SERVER span in its context, same SDK set-up, nothing else' },
  { name: 'recipe', kind: 'peer', description: 'hand-written onRequest/onResponse hooks + prom-client Histogram labelled by raw URL' }
]

export function targetFor (variant, nodeVersion = process.version) {
  const v = VARIANTS.find((x) => x.name === variant)
  if (!v || v.target == null) return null
  if (typeof v.target === 'number') return v.target
  const major = Number(nodeVersion.replace(/^v/, '').split('.')[0])
  return v.target[major] ?? v.target.default
}

export function serverFile (name) {
  const dir = path.join(BENCH_DIR, 'servers')
  const file = readdirSync(dir).find((f) => f === `${name}.mjs` || f === `${name}.cjs` || f === `${name}.js`)
  if (!file) throw new Error(`no server file for variant ${name}`)
  return path.join(dir, file)
}

export class LoadGenerator {
  constructor () {
    this.child = spawnNode(path.join(BENCH_DIR, 'lib', 'load.mjs'), { core: 0 })
    this.ready = nextMessage(this.child, (m) => m?.type === 'ready')
    this.seq = 0
  }

  async run (params, timeoutMs) {
    await this.ready
    const id = ++this.seq
    const reply = nextMessage(this.child, (m) => m?.type === 'result' && m.id === id, timeoutMs)
    this.child.send({ type: 'run', id, ...params })
    const m = await reply
    if (m.error) throw new Error(`autocannon: ${m.error}`)
    return m.result
  }

  close () { return stopChild(this.child, 2000) }
}

async function measureOnce (name, opts, load, paths) {
  const env = {}
  if (opts.cpuProf) {
    mkdirSync(opts.cpuProf, { recursive: true })
    env.BENCH_CPU_PROF_DIR = path.resolve(opts.cpuProf)
  }
  const server = spawnNode(serverFile(name), { core: 1, env })
  try {
    const ready = await nextMessage(server, (m) => m?.type === 'ready' || m?.type === 'error', 60_000)
    if (ready.type === 'error') return { ok: false, error: ready.message, code: ready.code ?? null }
    const url = `http://127.0.0.1:${ready.port}`
    const loadTimeout = (Math.max(opts.duration, opts.warmup) + 30) * 1000

    if (opts.warmup > 0) {
      await load.run({ url, paths, connections: opts.connections, duration: opts.warmup, rate: opts.rate }, loadTimeout)
    }
    server.send({ type: 'start' })
    await nextMessage(server, (m) => m?.type === 'started')
    const stat0 = cpuTimes()
    const ac = await load.run({ url, paths, connections: opts.connections, duration: opts.duration, rate: opts.rate }, loadTimeout)
    const stat1 = cpuTimes()
    server.send({ type: 'stop' })
    const s = await nextMessage(server, (m) => m?.type === 'stopped')
    // How busy the server's core was with anything other than the server:
    // other processes on this machine disturb the figures.
    const core1 = coreBusy(stat0, stat1, '1')
    const serverUtil = (s.cpuUserUs + s.cpuSystemUs) / 1000 / s.elapsedMs

    const cpuUs = s.cpuUserUs + s.cpuSystemUs
    const requests = s.requests
    return {
      ok: requests > 0,
      error: requests > 0 ? undefined : 'no requests served',
      requests,
      clientRequests: ac.requests,
      rps: round(requests / (s.elapsedMs / 1000), 1),
      clientRps: round(ac.requests / ac.durationS, 1),
      cpuUserUs: s.cpuUserUs,
      cpuSystemUs: s.cpuSystemUs,
      cpuPerReqUs: round(cpuUs / requests, 3),
      cpuUtilization: round(cpuUs / 1000 / s.elapsedMs, 3),
      eventLoopUtilization: round(s.eventLoopUtilization, 3),
      otherLoadOnServerCore: core1 == null ? null : round(Math.max(0, core1 - serverUtil), 3),
      loadCoreBusy: round(coreBusy(stat0, stat1, '0'), 3),
      elapsedMs: round(s.elapsedMs, 1),
      latencyP50Ms: ac.latency.p50,
      latencyP99Ms: ac.latency.p99,
      latencyMeanMs: round(ac.latency.mean, 3),
      peakRssMB: round(s.maxRssBytes / 2 ** 20, 1),
      heapUsedMB: round(s.heapUsedBytes / 2 ** 20, 1),
      spansPerReq: s.spansExported == null ? null : round(s.spansExported / requests, 3),
      non2xx: ac.non2xx,
      errors: ac.errors + ac.timeouts,
      serverInfo: ready.info ?? null
    }
  } catch (err) {
    return { ok: false, error: err.message }
  } finally {
    await stopChild(server)
  }
}

// A measurement whose server core was more than this busy with other processes is re-measured.
const DISTURBED = 0.05

const FIGURES = ['cpuPerReqUs', 'rps', 'latencyP50Ms', 'latencyP99Ms', 'peakRssMB', 'spansPerReq', 'cpuUtilization', 'otherLoadOnServerCore', 'loadCoreBusy']

/**
 * @returns {{ options, pinning, variants: Record<string, {...}> }}
 */
export async function runThroughput (opts, log = console.error) {
  const names = opts.variants ? [...opts.variants] : VARIANTS.map((v) => v.name)
  if (!names.includes('bare')) names.unshift('bare')
  // A name that is not in VARIANTS but has a file in servers/ runs as an ad-hoc variant (experiments).
  const variantMeta = (n) => VARIANTS.find((v) => v.name === n) ?? (serverFile(n) && { name: n, kind: 'ad-hoc', description: `ad-hoc: servers/${n}` })
  for (const n of names) variantMeta(n)
  const paths = workloadPaths({ mix: opts.mix })
  const pin = pinning()
  if (!pin.enabled) log(`[throughput] WARNING: no CPU pinning (${pin.reason}); figures are noisier`)

  const variants = {}
  for (const n of names) {
    const meta = variantMeta(n)
    variants[n] = { description: meta.description, kind: meta.kind, peer: meta.peer ?? null, target: targetFor(n), rounds: [], status: 'ok', error: null }
  }
  const unavailable = new Set()
  const load = new LoadGenerator()
  try {
    for (let r = 0; r < opts.rounds; r++) {
      // Rotate the order every round so no variant always runs first or last.
      const order = names.map((_, i) => names[(i + r) % names.length])
      for (const n of order) {
        if (unavailable.has(n)) continue
        const t0 = Date.now()
        let res
        const attempts = []
        for (let a = 0; a <= opts.retries; a++) {
          const quiet = opts.quietWait > 0 ? await waitQuiet({ maxWaitS: opts.quietWait }) : null
          res = await measureOnce(n, opts, load, paths)
          res.quietWait = quiet
          attempts.push(res)
          // Re-measure when something else took a share of the server's core.
          if (!res.ok || res.otherLoadOnServerCore == null || res.otherLoadOnServerCore <= DISTURBED) break
          log(`[throughput] round ${r + 1} ${n}: disturbed (other load on server core ${res.otherLoadOnServerCore}), ${a < opts.retries ? 're-measuring' : 'keeping least disturbed attempt'}`)
        }
        if (attempts.length > 1 && res.ok) {
          res = attempts.filter((x) => x.ok).sort((x, y) => x.otherLoadOnServerCore - y.otherLoadOnServerCore)[0]
          res.attempts = attempts.length
        }
        res.round = r + 1
        variants[n].rounds.push(res)
        if (!res.ok) {
          log(`[throughput] round ${r + 1} ${n}: FAILED: ${res.error}`)
          // A variant that cannot even start (missing build, incompatible peer) is not retried.
          if (res.code === 'PLUGIN_NOT_BUILT' || /cannot import|not supported|ERR_REQUIRE|SyntaxError/i.test(res.error ?? '')) {
            unavailable.add(n)
            variants[n].status = 'unavailable'
            variants[n].error = res.error
          }
        } else {
          log(`[throughput] round ${r + 1}/${opts.rounds} ${n.padEnd(21)} ${String(res.rps).padStart(9)} req/s  ${res.cpuPerReqUs.toFixed(2).padStart(7)} µs CPU/req  p99 ${res.latencyP99Ms} ms  rss ${res.peakRssMB} MB  srv-core ${res.cpuUtilization} other ${res.otherLoadOnServerCore} load-core ${res.loadCoreBusy}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
        }
      }
    }
  } finally {
    await load.close()
  }

  // Medians over the rounds that succeeded.
  for (const n of names) {
    const v = variants[n]
    const ok = v.rounds.filter((x) => x.ok)
    if (ok.length === 0) {
      if (v.status === 'ok') { v.status = 'failed'; v.error = v.rounds[0]?.error ?? 'no successful round' }
      v.median = null
      continue
    }
    // Rounds still disturbed after the retries are left out of the medians
    // as long as at least one clean round remains.
    const clean = ok.filter((x) => x.otherLoadOnServerCore == null || x.otherLoadOnServerCore <= DISTURBED)
    const use = clean.length ? clean : ok
    v.median = {}
    for (const f of FIGURES) v.median[f] = round(median(use.map((x) => x[f])), 3)
    v.roundsOk = ok.length
    v.roundsUsed = use.map((x) => x.round)
  }

  // Ratios to bare, from the medians; efficiency also paired per round.
  const bare = variants.bare
  for (const n of names) {
    const v = variants[n]
    if (!v.median || !bare.median) { v.ratios = null; continue }
    const m = v.median
    const b = bare.median
    const paired = []
    for (const rr of v.rounds) {
      const br = bare.rounds.find((x) => x.round === rr.round && x.ok)
      if (rr.ok && br && v.roundsUsed.includes(rr.round) && bare.roundsUsed.includes(br.round)) paired.push(br.cpuPerReqUs / rr.cpuPerReqUs)
    }
    v.ratios = {
      efficiency: round(b.cpuPerReqUs / m.cpuPerReqUs, 3),
      efficiencyPairedMedian: round(median(paired), 3),
      cpuPerReq: round(m.cpuPerReqUs / b.cpuPerReqUs, 3),
      rps: round(m.rps / b.rps, 3),
      latencyP50: b.latencyP50Ms > 0 ? round(m.latencyP50Ms / b.latencyP50Ms, 3) : null,
      latencyP99: b.latencyP99Ms > 0 ? round(m.latencyP99Ms / b.latencyP99Ms, 3) : null,
      peakRss: round(m.peakRssMB / b.peakRssMB, 3)
    }
  }

  return {
    options: { connections: opts.connections, rate: opts.rate || null, duration: opts.duration, warmup: opts.warmup, rounds: opts.rounds, mix: opts.mix, retries: opts.retries, quietWait: opts.quietWait, disturbedThreshold: DISTURBED, workload: opts.mix ? 'mix: 80% GET /api/users/:id (1,000 ids), 15% GET /api/health, 5% unmatched' : 'GET /api/users/:id over 1,000 ids' },
    pinning: pin,
    variants
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseArgs()
  if (opts.help) { console.log(USAGE); process.exit(0) }
  const res = await runThroughput(opts)
  console.log(JSON.stringify(res, null, 2))
}
