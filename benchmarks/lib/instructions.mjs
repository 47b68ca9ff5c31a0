// Instructions per request: `npm run bench -- --instructions`.
//
// CPU time per request on a shared machine moves by ±30% between rounds; the number of
// instructions the server executes per request repeats within ~1%. For each variant this runs the
// variant's server under `valgrind --tool=cachegrind --cache-sim=no` (which counts every
// instruction the process executes, all threads, JIT code included), sends it a fixed number of
// requests with autocannon (`amount`, 10 connections, the throughput workload's paths), shuts it
// down so cachegrind writes its totals, and does that for two request counts N1 < N2. Start-up,
// warm-up and shutdown are the same in both runs, so
//
//   instructions per request = (I(N2) - I(N1)) / (requests served(N2) - requests served(N1))
//
// The pure parts (parsing cachegrind's output, the marginal, the summary, the targets and the
// Markdown) are exported for the tests; runInstructions() needs valgrind.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { median, round, spawnNode, nextMessage, stopChild, workloadPaths } from './common.mjs'
import { VARIANTS, serverFile, LoadGenerator } from '../throughput.mjs'

export const INSTR_CONNECTIONS = 10
export const INSTR_DEFAULTS = { counts: [2000, 10000], warmup: 2000, rounds: 2 }
export const INSTR_QUICK = { counts: [200, 600], warmup: 100, rounds: 1 }

/** Reference and sampling variants measured in instructions only (not in the CPU-time set). */
export const INSTR_EXTRA_VARIANTS = [
  { name: 'plugin-metrics-native', kind: 'plugin', description: 'as plugin-metrics with metrics.nativeHistograms on: the difference is the native bucket step per request (issue #14)' },
  { name: 'plugin-metrics-nodefaults', kind: 'plugin', description: "this plugin, metrics only, prom-client's default metrics off: the hot path without their 10 ms event-loop-delay timer, whose share per request valgrind's slowdown inflates ~50x" },
  { name: 'context-with', kind: 'reference', description: 'floor for a request the sampler drops: same SDK set-up, one onRequest hook running the request in context.with(active().setValue(key, 1)), one shared \'close\' listener' },
  { name: 'plugin-full-sdk-sampled-out', kind: 'plugin', description: 'as plugin-full-sdk with ParentBased(TraceIdRatioBased(0)): every request dropped by the sampler' },
  { name: 'plugin-full-sdk-10pct', kind: 'plugin', description: 'as plugin-full-sdk with ParentBased(TraceIdRatioBased(0.1)): 10% of requests sampled' },
  { name: 'plugin-full-sdk-no-exemplars', kind: 'plugin', description: 'as plugin-full-sdk with metrics.exemplars false: the difference is the cost of the exemplars (issue #11)' },
  { name: 'plugin-full-sdk-logger', kind: 'plugin', description: "as plugin-full-sdk with Fastify's logger on (info, to /dev/null): trace ids bound on request.log (tracing.logIds, the default)" },
  { name: 'plugin-full-sdk-logger-no-ids', kind: 'plugin', description: 'as plugin-full-sdk-logger with tracing.logIds false: the difference is the cost of the log fields (issue #11)' }
]

/** The floor each tracing variant is compared with: one variant, or a weighted mix of two. */
export const FLOORS = {
  'plugin-full-sdk': { 'span-hook': 1 },
  'plugin-full-sdk-http': { 'span-hook': 1 },
  'fastify-otel': { 'span-hook': 1 },
  'plugin-full-sdk-sampled-out': { 'context-with': 1 },
  'plugin-full-sdk-10pct': { 'context-with': 0.9, 'span-hook': 0.1 }
}

/** The targets judged on instructions (issue #9). */
export const INSTR_TARGETS = [
  { id: 'instructions.plugin-metrics.efficiency', variant: 'plugin-metrics', min: 0.98, description: 'plugin-metrics instructions efficiency (bare ÷ variant) ≥ 0.98' },
  { id: 'instructions.plugin-full-sdk.floor', variant: 'plugin-full-sdk', max: 1.10, description: 'plugin-full-sdk instructions ≤ 1.10× span-hook' },
  { id: 'instructions.plugin-full-sdk-sampled-out.floor', variant: 'plugin-full-sdk-sampled-out', max: 1.10, description: 'plugin-full-sdk-sampled-out instructions ≤ 1.10× context-with' }
]

export function defaultInstrVariants () {
  return [...VARIANTS.map((v) => v.name), ...INSTR_EXTRA_VARIANTS.map((v) => v.name)]
}

export function instrVariantMeta (name) {
  const v = VARIANTS.find((x) => x.name === name) ?? INSTR_EXTRA_VARIANTS.find((x) => x.name === name)
  if (v) return { name, kind: v.kind, description: v.description }
  serverFile(name) // throws for a name without a server file
  return { name, kind: 'ad-hoc', description: `ad-hoc: servers/${name}` }
}

// ---------------------------------------------------------------- pure parts

/**
 * Totals of a cachegrind output file: { events: { Ir: n, ... } } from its `events:` line and its
 * `summary:` line (`totals:` in some versions).
 */
export function parseCachegrindOut (text) {
  let names = null
  let values = null
  for (const line of text.split('\n')) {
    if (line.startsWith('events:')) names = line.slice(7).trim().split(/\s+/)
    else if (line.startsWith('summary:') || line.startsWith('totals:')) values = line.slice(line.indexOf(':') + 1).trim().split(/\s+/).map(Number)
  }
  if (!names || !values) throw new Error('not a cachegrind output file: no events:/summary: line')
  const events = {}
  names.forEach((n, i) => { events[n] = values[i] ?? 0 })
  if (!Number.isFinite(events.Ir)) throw new Error('cachegrind output has no Ir total')
  return { events, compilerIr: compilerInstructions(text) }
}

/**
 * V8's optimizing compilers (TurboFan, with Turboshaft, and Maglev): a function whose qualified
 * name (before its parameter list, so a compiler type among the arguments does not count) is in
 * their namespaces.
 */
const COMPILER_FN = /v8::internal::(compiler|maglev)::/
export function isCompilerFunction (name) {
  const paren = name.indexOf('(')
  return COMPILER_FN.test(paren === -1 ? name : name.slice(0, paren))
}

/**
 * V8's garbage collector: scavenges, marking, sweeping, evacuation, their visitors, the write
 * barrier's slow path (RecordWrite, WriteBarrier, MarkBit) and allocation-site pretenuring; also,
 * loosely, the heap's own allocation slow paths (Heap::, free lists), a few dozen per request. Under `--single-threaded
 * --predictable-gc-schedule` a run does it all on the main thread, and when a full collection
 * falls inside the counted requests (or not) moves a tracing variant by ±15,000 instructions per
 * request between rounds: instr-diff shows it apart, so the rest can be compared.
 */
const GC_FN = /v8::internal::(Heap::|Scavenge|MarkCompact|Marking|MainMarking|ConcurrentMarking|IncrementalMarking|MinorMarkSweep|MinorMarkCompact|Sweeper|Evacuat|LiveObject|RecordMigratedSlot|RememberedSet|BodyDescriptor|HeapObject::SizeFromMap|GCTracer|PretenuringHandler|IterateObjectCache|[A-Za-z]*StringTableCleaner|SemiSpaceNewSpace::ShouldBePromoted|FreeList|WriteBarrier::|MarkBit::|[A-Za-z]*Visitor)|heap::base::|cppgc::/
export function isGcFunction (name) {
  const plain = name.replaceAll('(anonymous namespace)::', '')
  const paren = plain.indexOf('(')
  const head = paren === -1 ? plain : plain.slice(0, paren)
  return head.startsWith('Builtins_RecordWrite') || GC_FN.test(head)
}

/** Instructions per function name, from the per-function lines of a cachegrind output (`fn=` then `line Ir` rows). */
export function functionTotals (text) {
  const out = new Map()
  let fn = '?'
  for (const line of text.split('\n')) {
    if (line.startsWith('fn=')) fn = line.slice(3)
    else if (line.charCodeAt(0) >= 48 && line.charCodeAt(0) <= 57) out.set(fn, (out.get(fn) ?? 0) + Number(line.split(' ')[1]))
  }
  return out
}

/**
 * Instructions spent in V8's optimizing compilers. A normal process compiles on background
 * threads, off the event loop; the servers run --single-threaded (for repeatable counts), which
 * puts that work on the main thread, and on Node 24 it went on through the counted requests
 * (41,000 of bare's 105,000 instructions per request, against 1,500 on Node 20): counted per
 * request, it was warm-up, not the request's cost.
 */
export function compilerInstructions (text) {
  let sum = 0
  for (const [fn, ir] of functionTotals(text)) if (isCompilerFunction(fn)) sum += ir
  return sum
}

/**
 * Marginal instructions per request from two runs of the same server that differ only in the
 * number of requests: (I2 - I1) / (R2 - R1), and the intercept (start-up + shutdown + warm-up
 * compilation, what a run of 0 requests would cost).
 * @param {{ requests: number, instructions: number }} a
 * @param {{ requests: number, instructions: number }} b
 */
export function marginalPerRequest (a, b) {
  const dr = b.requests - a.requests
  if (!(dr > 0)) throw new Error(`the second run must serve more requests (${a.requests} -> ${b.requests})`)
  const perRequest = (b.instructions - a.instructions) / dr
  return { perRequest, fixed: a.instructions - perRequest * a.requests }
}

/** Median, min, max and relative spread ((max - min) / median) of the rounds' marginals. */
export function spreadOf (xs) {
  const ok = xs.filter((x) => Number.isFinite(x))
  if (ok.length === 0) return { median: null, min: null, max: null, spread: null, n: 0 }
  const m = median(ok)
  const min = Math.min(...ok)
  const max = Math.max(...ok)
  return { median: m, min, max, spread: m ? (max - min) / m : null, n: ok.length }
}

/**
 * For each request count, the run with the fewest instructions over the rounds (null when the
 * rounds did not serve the same numbers of requests). The harness's noise is additive: a run
 * sometimes executes a few hundred million extra instructions (seen on both counts, more on a busy
 * machine: bare 3,288 M vs 3,122 M for the same 6,000 requests while both 18,000-request runs
 * agreed within 0.03%), never fewer, so the lowest total per count is the clean one.
 */
export function lowestPoints (rounds) {
  const byCount = runsByCount(rounds)
  if (byCount === null || byCount[0].length === 0) return null
  return byCount.map((ps) => ps.reduce((a, b) => (b.instructions < a.instructions ? b : a)))
}

/** The good rounds' runs, grouped by request count ([small runs, large runs]); null if the rounds served different numbers of requests. */
function runsByCount (rounds) {
  const ok = rounds.filter((r) => r.ok && r.points?.length === 2)
  const byCount = [0, 1].map((i) => ok.map((r) => r.points[i]))
  return byCount.some((ps) => ps.some((p) => p.requests !== ps[0].requests)) ? null : byCount
}

/** A lowest total is confirmed by another run of the same request count within this share of it. */
export const CONFIRM_WITHIN = 0.003
/** Rounds a variant may get in all while its lowest totals are not confirmed. */
export const INSTR_MAX_ROUNDS = 5

/**
 * True when, for each request count, the lowest total over the rounds was seen twice (another run
 * within CONFIRM_WITHIN of it; clean runs agree within ~0.2%). The figure then rests on two runs
 * per count that the extra instructions missed, not on the least hit of several hit ones.
 */
export function confirmed (rounds) {
  const byCount = runsByCount(rounds)
  if (byCount === null || byCount[0].length < 2) return false
  return byCount.every((ps) => {
    const xs = ps.map((p) => p.instructions).sort((a, b) => a - b)
    return xs[1] - xs[0] <= CONFIRM_WITHIN * xs[0]
  })
}

/**
 * Fill in per-variant figures, spreads and ratios from the rounds. The figure is the marginal of
 * the lowest run per request count (lowestPoints); min, max and spread are those of the rounds'
 * own marginals.
 * variants: { [name]: { rounds: [{ ok, perRequest, ... }], ... } }. Mutates and returns it.
 */
export function summarizeInstructions (variants) {
  for (const v of Object.values(variants)) {
    const s = spreadOf(v.rounds.filter((r) => r.ok).map((r) => r.perRequest))
    const lowest = lowestPoints(v.rounds)
    v.perRequest = lowest !== null ? round(marginalPerRequest(lowest[0], lowest[1]).perRequest, 0) : s.median == null ? null : round(s.median, 0)
    v.min = s.min == null ? null : round(s.min, 0)
    v.max = s.max == null ? null : round(s.max, 0)
    v.spread = round(s.spread, 4)
    v.roundsOk = s.n
    v.confirmed = confirmed(v.rounds)
    const jit = v.rounds.filter((r) => r.ok && r.compilerPerRequest != null).map((r) => r.compilerPerRequest)
    v.compilerPerRequest = jit.length ? round(median(jit), 0) : null
    const spans = v.rounds.filter((r) => r.ok && r.spansPerReq != null).map((r) => r.spansPerReq)
    v.spansPerReq = spans.length ? round(median(spans), 3) : null
    if (v.status === 'ok' && s.n === 0) v.status = 'failed'
  }
  const bare = variants.bare?.perRequest ?? null
  for (const [name, v] of Object.entries(variants)) {
    v.ratios = null
    if (v.perRequest == null) continue
    v.ratios = {
      efficiency: bare ? round(bare / v.perRequest, 4) : null,
      overBare: bare ? round(v.perRequest - bare, 0) : null,
      floor: null,
      overFloor: null,
      floorName: null
    }
    const f = FLOORS[name]
    if (f && Object.keys(f).every((n) => variants[n]?.perRequest != null)) {
      const floor = Object.entries(f).reduce((acc, [n, w]) => acc + w * variants[n].perRequest, 0)
      v.ratios.floorName = Object.entries(f).map(([n, w]) => (w === 1 ? n : `${w} × ${n}`)).join(' + ')
      v.ratios.floorPerRequest = round(floor, 0)
      v.ratios.floor = round(v.perRequest / floor, 4)
      v.ratios.overFloor = round(v.perRequest - floor, 0)
    }
  }
  return variants
}

/**
 * A target against its value: met (true/false), or null when there is no value or when a variant
 * the figure rests on (its own, and bare or the floor's) had several rounds without a confirmed
 * figure, listed in `unconfirmed`: an unconfirmed floor can be far off (context-with 276,806
 * once, against ~80,000).
 */
function judge (variants, t, value) {
  const refs = t.min != null ? ['bare'] : Object.keys(FLOORS[t.variant] ?? {})
  const unconfirmed = [t.variant, ...refs].filter((n) => variants[n] != null && variants[n].roundsOk > 1 && variants[n].confirmed === false)
  const met = value == null || unconfirmed.length > 0 ? null : t.min != null ? value >= t.min : value <= t.max
  return { met, unconfirmed }
}

/** The instruction targets against an instructions section ({ variants }). */
export function evaluateInstructionTargets (instructions) {
  const out = []
  const v = instructions?.variants ?? {}
  for (const t of INSTR_TARGETS) {
    const x = v[t.variant]
    if (!x) continue
    const value = t.min != null ? x.ratios?.efficiency ?? null : x.ratios?.floor ?? null
    const target = t.min ?? t.max
    const { met, unconfirmed } = judge(v, t, value)
    out.push({ id: t.id, description: t.description + (unconfirmed.length > 0 ? ` (not judged: ${unconfirmed.join(', ')} unconfirmed)` : ''), target, value, met })
  }
  return out
}

// ---------------------------------------------------------------- Markdown

const fmtInt = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'))
const fmt = (x, d = 2) => (x == null ? '–' : Number(x).toFixed(d))
const pct = (x) => (x == null ? '–' : `${(x * 100).toFixed(1)}%`)

/**
 * The instructions table. CPU-time columns come from the same run's throughput section, or else
 * from `results.cpuReference` (the published CPU-time run for the same Node major).
 */
export function instructionsTable (results) {
  const ins = results.instructions
  if (!ins) return ''
  const cpu = results.throughput?.variants ?? results.cpuReference?.variants ?? {}
  const targets = new Map(INSTR_TARGETS.map((t) => [t.variant, t]))
  const rows = [
    '| Variant | Instructions/req | Spread (min – max) | Efficiency (bare ÷ variant) | Over bare | vs floor | JIT compilers/req | CPU µs/req | CPU efficiency | Spans/req | Target (instructions) |',
    '| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |'
  ]
  for (const [name, v] of Object.entries(ins.variants)) {
    if (v.perRequest == null) {
      rows.push(`| \`${name}\` | ${v.status}: ${String(v.error ?? '').replace(/\|/g, '\\|').slice(0, 100)} | | | | | | | | | |`)
      continue
    }
    const r = v.ratios ?? {}
    const c = cpu[name]
    const floor = r.floor == null ? '' : `${fmt(r.floor, 3)}× \`${r.floorName}\` (+${fmtInt(r.overFloor)})`
    const t = targets.get(name)
    let target = ''
    if (t) {
      const value = t.min != null ? r.efficiency : r.floor
      const { met, unconfirmed } = judge(ins.variants, t, value)
      target = `${t.min != null ? `≥ ${t.min}` : `≤ ${t.max.toFixed(2)}× floor`} ${unconfirmed.length > 0 ? 'not judged (unconfirmed)' : met == null ? '–' : met ? '✅' : '❌'}`
    }
    const spread = v.roundsOk > 1 ? `${pct(v.spread)} (${fmtInt(v.min)} – ${fmtInt(v.max)}), ${v.roundsOk} rounds${v.confirmed ? '' : ', **unconfirmed**'}` : '1 round'
    rows.push(`| \`${name}\` | ${fmtInt(v.perRequest)} | ${spread} | **${fmt(r.efficiency, 3)}** | ${name === 'bare' ? '' : `${r.overBare >= 0 ? '+' : ''}${fmtInt(r.overBare)}`} | ${floor} | ${v.compilerPerRequest == null ? '–' : fmtInt(v.compilerPerRequest)} | ${fmt(c?.median?.cpuPerReqUs)} | ${fmt(c?.ratios?.efficiency)} | ${v.spansPerReq == null ? '–' : fmt(v.spansPerReq, 2)} | ${target} |`)
  }
  return rows.join('\n')
}

export function renderInstructionsMarkdown (results) {
  const ins = results.instructions
  if (!ins) return ''
  const o = ins.options
  const lines = []
  lines.push(`Instructions per request: each variant's server under \`${o.tool}\` (${ins.valgrind ?? 'valgrind ?'}), ${fmtInt(o.warmup)} warm-up requests then ${o.counts.map(fmtInt).join(' or ')} counted requests (autocannon \`amount\`, ${o.connections} connections, ${o.workload}); instructions/req = (I(N2) − I(N1)) ÷ (requests(N2) − requests(N1)), so start-up, warm-up and shutdown cancel; I counts the server's instructions outside V8's optimizing compilers (TurboFan, Maglev), whose work a normal process does on background threads and which \`--single-threaded\` puts on the main thread: shown apart as JIT compilers/req. ${o.rounds} round(s); the figure is the marginal of the lowest run per request count over the rounds (the noise only ever adds instructions); a variant gets more rounds, up to ${INSTR_MAX_ROUNDS}, until each count's lowest total is seen twice within ${CONFIRM_WITHIN * 100}% (else it is marked unconfirmed); the spread is (max − min) ÷ median of the rounds' own marginals. Efficiency = bare ÷ variant instructions/req. ${results.throughput ? 'CPU columns: the same run.' : results.cpuReference ? `CPU columns: the published CPU-time run \`${results.cpuReference.file}\` (${results.cpuReference.date?.slice(0, 10)}, ${results.cpuReference.node}, @ ${results.cpuReference.gitCommit ?? '?'}), for comparison.` : 'No CPU-time figures in this run.'}`)
  lines.push('')
  lines.push(instructionsTable(results))
  lines.push('')
  const fixed = Object.entries(ins.variants).filter(([, v]) => v.rounds.some((r) => r.ok))
  if (fixed.length) {
    const b = ins.variants.bare
    const fixedOf = (v) => median(v.rounds.filter((r) => r.ok).map((r) => r.fixed))
    lines.push(`Fixed cost (start-up, ${fmtInt(o.warmup)} warm-up requests, shutdown; the intercept), in millions of instructions: ${fixed.map(([n, v]) => `\`${n}\` ${fmt(fixedOf(v) / 1e6, 0)}`).join(', ')}.${b?.rounds?.length ? ` Wall time under valgrind per run of ${fmtInt(o.counts[o.counts.length - 1])} requests, \`bare\`: ${fmt(median(b.rounds.filter((r) => r.ok).map((r) => r.points[r.points.length - 1].wallS)), 0)} s.` : ''}`)
    lines.push('')
  }
  return lines.join('\n')
}

// ---------------------------------------------------------------- running

export function valgrindVersion () {
  const r = spawnSync('valgrind', ['--version'], { encoding: 'utf8' })
  if (r.error || r.status !== 0) return null
  return r.stdout.trim()
}

const VALGRIND_ARGS = ['--tool=cachegrind', '--cache-sim=no']
// Node/V8 flags for the servers under valgrind, space-separated. By default V8 runs single-threaded
// (no background compiling or GC threads finishing at timing-dependent points) on a fixed GC
// schedule (heap growth not tuned to wall-clock allocation rates, which valgrind's slowdown and the
// machine's load distort): with them the same run repeats within ~0.1% (span-hook 120,717 vs
// 120,853), without them rounds differed by up to 26%. Fixed random and hash seeds: V8 draws its
// hash seeds at start-up with a primality search of random length (5.5-15.6 M instructions for
// `node -e 1`, 6.0 vs 15.6 M in two server runs), and string hashes, hence hash-table probing,
// follow the seed; with both fixed, `node -e 1` repeats within 300 instructions of 510 M.
// BENCH_INSTR_NODE_ARGS='' runs without any.
const SEQUENTIAL = process.env.BENCH_INSTR_SEQUENTIAL === '1'
const NODE_ARGS = (process.env.BENCH_INSTR_NODE_ARGS ?? '--single-threaded --predictable-gc-schedule --random-seed=1 --hash-seed=1').split(/\s+/).filter(Boolean)

/** One server run under cachegrind: warm-up, `count` requests, shutdown; its instruction total. */
async function countOnce (name, count, { warmup, paths, load, dir, tag, nodeArgs = [] }) {
  const outFile = path.join(dir, `${tag}.cgout`)
  const logFile = path.join(dir, `${tag}.log`)
  const server = spawnNode(serverFile(name), {
    core: null,
    nodeArgs,
    wrapper: ['valgrind', ...VALGRIND_ARGS, `--cachegrind-out-file=${outFile}`, `--log-file=${logFile}`]
  })
  const t0 = Date.now()
  try {
    const ready = await nextMessage(server, (m) => m?.type === 'ready' || m?.type === 'error', 600_000)
    if (ready.type === 'error') return { ok: false, error: ready.message, code: ready.code ?? null }
    const url = `http://127.0.0.1:${ready.port}`
    // Generous: node under valgrind is ~50x slower, and a cold server compiles as it goes.
    const timeoutFor = (n) => 120_000 + n * 50
    server.send({ type: 'start' })
    await nextMessage(server, (m) => m?.type === 'started', 120_000)
    const w = warmup > 0 ? await load.run({ url, paths, connections: INSTR_CONNECTIONS, amount: warmup, timeout: 60 }, timeoutFor(warmup)) : null
    const ac = await load.run({ url, paths, connections: INSTR_CONNECTIONS, amount: count, timeout: 60 }, timeoutFor(count))
    server.send({ type: 'stop' })
    const s = await nextMessage(server, (m) => m?.type === 'stopped', 120_000)
    // stopChild sends the 'shutdown' (sending it here too ran the server's shutdown twice at once).
    const exit = await stopChild(server, 600_000)
    const wallS = (Date.now() - t0) / 1000
    if (exit.code !== 0) return { ok: false, error: `server exited with ${exit.code ?? exit.signal} (valgrind log ${logFile})` }
    if (!existsSync(outFile)) return { ok: false, error: `no cachegrind output (${outFile})` }
    const { events, compilerIr } = parseCachegrindOut(readFileSync(outFile, 'utf8'))
    const errors = (w ? w.errors + w.timeouts + w.non2xx : 0) + ac.errors + ac.timeouts + ac.non2xx
    return {
      ok: errors === 0,
      error: errors === 0 ? undefined : `${errors} errors/timeouts/non-2xx`,
      count,
      requests: s.requests,
      clientRequests: (w?.requests ?? 0) + ac.requests,
      // The figure: the server's instructions without the optimizing compilers' (see compilerInstructions).
      instructions: events.Ir - compilerIr,
      compilerInstructions: compilerIr,
      spans: s.spansExported,
      wallS: round(wallS, 1)
    }
  } catch (err) {
    return { ok: false, error: err.message }
  } finally {
    if (server.exitCode === null && server.signalCode === null) await stopChild(server, 5000)
  }
}

/**
 * Measure every variant's marginal instructions per request.
 * @param {object} opts parsed options: variants, instrCounts, instrWarmup, instrRounds, mix
 */
export async function runInstructions (opts, log = console.error) {
  const valgrind = valgrindVersion()
  if (!valgrind) throw new Error('valgrind not found: install it (Debian: apt-get install valgrind) to run --instructions')
  const counts = [...opts.instrCounts].sort((a, b) => a - b)
  if (counts.length !== 2 || counts[0] === counts[1]) throw new Error('--instr-counts needs two different request counts, e.g. 2000,10000')
  const names = opts.variants ? [...opts.variants] : defaultInstrVariants()
  if (!names.includes('bare')) names.unshift('bare')
  const metas = names.map(instrVariantMeta)
  const paths = workloadPaths({ mix: opts.mix })
  // BENCH_INSTR_KEEP_DIR keeps the cachegrind outputs there, for per-function comparisons
  // (benchmarks/instr-diff.mjs).
  const keep = process.env.BENCH_INSTR_KEEP_DIR
  if (keep) mkdirSync(keep, { recursive: true })
  const dir = keep || mkdtempSync(path.join(os.tmpdir(), 'bench-instr-'))
  const removeDir = () => { if (!keep) rmSync(dir, { recursive: true, force: true }) }
  process.on('exit', removeDir) // also when the harness is interrupted (SIGINT/SIGTERM exit)
  const variants = {}
  for (const m of metas) variants[m.name] = { description: m.description, kind: m.kind, rounds: [], status: 'ok', error: null }
  const unavailable = new Set()
  const load = new LoadGenerator()
  const started = Date.now()
  try {
    const measureRound = async (n, r) => {
      // Both counts at once, one per core (BENCH_INSTR_SEQUENTIAL=1: one after the other, which
      // takes twice as long and showed the same occasional extra instructions).
      const run = (count) => countOnce(n, count, { warmup: opts.instrWarmup, paths, load, dir, tag: `${n}-r${r + 1}-n${count}`, nodeArgs: NODE_ARGS })
      const points = SEQUENTIAL ? [await run(counts[0]), await run(counts[1])] : await Promise.all(counts.map(run))
      const failed = points.find((p) => !p.ok) ?? null
      if (failed) {
        log(`[instructions] round ${r + 1} ${n}: FAILED: ${failed.error}`)
        variants[n].rounds.push({ round: r + 1, ok: false, error: failed.error, points })
        if (failed.code === 'PLUGIN_NOT_BUILT' || /cannot import|not supported|ERR_REQUIRE|SyntaxError/i.test(failed.error ?? '')) {
          unavailable.add(n)
          variants[n].status = 'unavailable'
        }
        variants[n].error = failed.error
        return
      }
      const [a, b] = points
      const { perRequest, fixed } = marginalPerRequest(a, b)
      const spansPerReq = a.spans == null || b.spans == null ? null : round((b.spans - a.spans) / (b.requests - a.requests), 3)
      const compilerPerRequest = round((b.compilerInstructions - a.compilerInstructions) / (b.requests - a.requests), 1)
      variants[n].rounds.push({ round: r + 1, ok: true, perRequest: round(perRequest, 1), compilerPerRequest, fixed: Math.round(fixed), spansPerReq, points })
      log(`[instructions] round ${r + 1} ${n.padEnd(28)} ${Math.round(perRequest).toLocaleString('en-US').padStart(9)} instructions/req, +${Math.round(compilerPerRequest).toLocaleString('en-US')} in the JIT compilers  (fixed ${(fixed / 1e6).toFixed(0)} M; ${points.map((p) => `${p.requests} req ${p.wallS} s`).join(', ')}; ${((Date.now() - started) / 1000).toFixed(0)} s so far)`)
    }
    for (let r = 0; r < opts.instrRounds; r++) {
      for (let i = 0; i < names.length; i++) {
        const n = names[(i + r) % names.length] // rotated: no variant always first
        if (!unavailable.has(n)) await measureRound(n, r)
      }
    }
    // More rounds, up to INSTR_MAX_ROUNDS, for the variants whose lowest totals are not yet confirmed.
    for (let r = opts.instrRounds; opts.instrRounds >= 2 && r < INSTR_MAX_ROUNDS; r++) {
      const pending = names.filter((n) => !unavailable.has(n) && !confirmed(variants[n].rounds))
      if (pending.length === 0) break
      log(`[instructions] round ${r + 1} for the unconfirmed: ${pending.join(', ')}`)
      for (const n of pending) await measureRound(n, r)
    }
  } finally {
    await load.close()
    removeDir()
    process.off('exit', removeDir)
  }
  summarizeInstructions(variants)
  return {
    valgrind,
    options: {
      tool: `valgrind ${VALGRIND_ARGS.join(' ')}`,
      nodeArgs: NODE_ARGS,
      counts,
      warmup: opts.instrWarmup,
      connections: INSTR_CONNECTIONS,
      rounds: opts.instrRounds,
      mix: opts.mix,
      workload: opts.mix ? 'mix: 80% GET /api/users/:id (1,000 ids), 15% GET /api/health, 5% unmatched' : 'GET /api/users/:id over 1,000 ids'
    },
    durationS: Math.round((Date.now() - started) / 1000),
    variants
  }
}
