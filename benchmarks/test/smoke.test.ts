// Run by `npm run test:bench` (the last step of `npm test`), not by tap with the unit and end-to-end
// tests: its load runs would compete for the cores with their timing-sensitive children.
// Smoke test of the benchmark suite: runs `benchmarks/run.mjs --quick` (about
// 1 s per variant, 1 round, a few connections, small scrape and memory runs)
// into a temporary folder and checks that every variant produced figures and
// that the results files have every field. No timing is asserted: the figures
// of a quick run on a shared machine mean nothing.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const ROOT = path.resolve(__dirname, '..', '..')
const VARIANTS = [
  'bare', 'plugin-metrics', 'plugin-nosdk', 'plugin-full-sdk', 'plugin-full-sdk-http',
  'fastify-metrics', 'fastify-otel', 'recipe'
]
const PEERS = new Set(['fastify-metrics', 'fastify-otel', 'recipe'])

function run (args: string[], timeoutMs: number): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'benchmarks', 'run.mjs'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    // The harness kills its own children on SIGTERM.
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

t.test('npm run bench -- --quick', async (t) => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'bench-test-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))

  const r = await run(['--quick', '--out', out], 100_000)
  t.equal(r.code, 0, 'harness exits 0', { stderr: r.stderr.slice(-4000) })

  const jsonFile = path.join(out, 'latest.json')
  t.ok(existsSync(jsonFile), 'latest.json written')
  t.ok(existsSync(path.join(out, 'latest.md')), 'latest.md written')
  t.ok(existsSync(path.join(out, 'efficiency.svg')), 'efficiency.svg written')
  if (!existsSync(jsonFile)) return
  const res = JSON.parse(readFileSync(jsonFile, 'utf8'))

  t.test('meta', async (t) => {
    const { meta } = res
    t.type(meta.date, 'string')
    t.ok(!Number.isNaN(Date.parse(meta.date)), 'date is ISO')
    t.type(meta.command, 'string')
    t.type(meta.machine.cpuModel, 'string')
    t.ok(meta.machine.cores >= 1, 'cores')
    t.equal(meta.machine.node, process.version, 'node version')
    for (const p of ['fastify', 'prom-client', 'fastify-metrics', '@fastify/otel', '@opentelemetry/sdk-node', '@opentelemetry/sdk-trace-base', 'fastify-observability']) {
      t.match(meta.packages[p], /^\d+\.\d+\.\d+/, `version of ${p}`)
    }
    t.type(meta.pinning.enabled, 'boolean')
    if (!meta.pinning.enabled) t.type(meta.pinning.reason, 'string', 'reason recorded when not pinned')
  })

  t.test('options', async (t) => {
    t.match(res.options, { connections: Number, duration: Number, warmup: Number, rounds: 1, quick: true, mix: false })
  })

  t.test('throughput', async (t) => {
    const tp = res.throughput
    t.ok(tp, 'throughput section')
    t.match(tp.options, { connections: Number, duration: Number, rounds: Number, workload: String })
    const names = Object.keys(tp.variants)
    for (const name of VARIANTS) t.ok(names.includes(name), `variant ${name} reported`)
    for (const name of names) {
      const v = tp.variants[name]
      if (PEERS.has(name) && v.status === 'unavailable') {
        // A peer that cannot run on this Node version is reported, not fatal.
        t.type(v.error, 'string', `${name} unavailable with a reason`)
        t.comment(`${name} unavailable: ${v.error}`)
        continue
      }
      t.equal(v.status, 'ok', `${name} ran`, { error: v.error })
      t.equal(v.rounds.length, 1, `${name}: one round`)
      const round = v.rounds[0]
      t.ok(round.ok, `${name}: round ok`)
      for (const f of ['requests', 'rps', 'cpuPerReqUs', 'cpuUserUs', 'latencyP50Ms', 'latencyP99Ms', 'peakRssMB', 'elapsedMs']) {
        t.type(round[f], 'number', `${name}: round.${f}`)
      }
      t.ok(v.median.rps > 0, `${name}: positive req/s (${v.median.rps})`)
      t.ok(v.median.cpuPerReqUs > 0, `${name}: positive CPU/request (${v.median.cpuPerReqUs} µs)`)
      t.ok(v.median.peakRssMB > 0, `${name}: peak RSS`)
      t.ok(v.median.latencyP99Ms >= v.median.latencyP50Ms, `${name}: p99 >= p50`)
      for (const f of ['efficiency', 'cpuPerReq', 'rps', 'latencyP99', 'peakRss']) {
        t.type(v.ratios[f], 'number', `${name}: ratios.${f}`)
      }
      t.ok(v.ratios.efficiency > 0, `${name}: efficiency > 0`)
    }
    t.equal(tp.variants.bare.ratios.efficiency, 1, 'bare is the reference')
    // Tracing variants really traced: about one span per request (several for @fastify/otel).
    for (const name of ['plugin-full-sdk', 'plugin-full-sdk-http']) {
      t.ok(tp.variants[name].median.spansPerReq > 0.5, `${name} exported spans (${tp.variants[name].median.spansPerReq}/req)`)
    }
    t.equal(tp.variants['plugin-nosdk'].median.spansPerReq, null, 'no SDK, no span counter')
  })

  t.test('scrape', async (t) => {
    const s = res.scrape
    t.ok(s, 'scrape section')
    t.equal(s.seriesTarget, s.routes * 10, 'routes x 5 codes x 2 methods')
    for (const subject of ['plugin', 'fastify-metrics']) {
      const x = s.subjects[subject]
      t.ok(x.ok, `${subject} scraped`, { error: x.error })
      if (!x.ok) continue
      for (const f of ['prometheus', 'openmetrics']) {
        t.ok(x.formats[f].medianMs > 0, `${subject} ${f}: median time over HTTP`)
        t.ok(x.formats[f].injectMedianMs > 0, `${subject} ${f}: median time through app.inject`)
        t.ok(x.formats[f].samples > 0, `${subject} ${f}: samples`)
        t.type(x.formats[f].contentType, 'string')
        // What the scrape did to the server's event loop, and to a light load of small requests.
        const y = x.formats[f]
        for (const k of ['blockMedianMs', 'blockMaxMs', 'blockCpuMedianMs', 'blockCpuMaxMs', 'blockUnloadedMedianMs', 'blockUnloadedMaxMs', 'blockBetweenScrapesMedianMs', 'transportBaselineBlockMedianMs', 'loadedMedianMs']) {
          t.type(y[k], 'number', `${subject} ${f}: ${k}`)
        }
        t.ok(y.blockMaxMs >= y.blockMedianMs, `${subject} ${f}: worst stall >= median`)
        t.match(y.light, { rate: Number, errors: 0, during: { requests: Number }, between: { requests: Number, p99Ms: Number } }, `${subject} ${f}: light load during and between scrapes`)
        t.ok(y.light.between.requests > 0, `${subject} ${f}: light requests between scrapes (${y.light.between.requests}; during: ${y.light.during.requests})`)
        // A quick run's scrapes are short: few or no light requests may fall inside one.
        t.ok(y.light.during.requests === 0 ? y.light.p99Ratio === null : typeof y.light.p99Ratio === 'number', `${subject} ${f}: p99 ratio when there were requests during scrapes`)
      }
    }
    const p = s.subjects.plugin
    if (p.ok) {
      t.equal(p.formats.prometheus.labelSets.http_server_request_duration_seconds, s.seriesTarget, 'plugin exposes every populated label set')
      t.ok(p.formats.openmetrics.negotiated, 'plugin serves OpenMetrics when asked')
    }
  })

  t.test('memory', async (t) => {
    const m = res.memory
    t.ok(m, 'memory section')
    for (const subject of ['plugin', 'fastify-metrics', 'recipe']) {
      const x = m.subjects[subject]
      t.ok(x.ok, `${subject} ran`, { error: x.error })
      if (!x.ok) continue
      for (const snap of ['fresh', 'before', 'after']) {
        t.match(x[snap], { rssMB: Number, heapUsedMB: Number, series: Number, httpSeries: Number }, `${subject}.${snap}`)
      }
    }
    t.equal(m.subjects.plugin.httpSeriesGrowth, 0, 'random unmatched paths and methods add no plugin series')
    t.ok(m.subjects.recipe.httpSeriesGrowth > 0, 'the raw-URL recipe grows (the case the plugin avoids)')
  })

  t.test('targets', async (t) => {
    t.ok(Array.isArray(res.targets) && res.targets.length > 0, 'targets evaluated')
    for (const f of ['prometheus', 'openmetrics']) {
      for (const id of [`scrape.${f}.block`, `scrape.${f}.blockWorst`, `scrape.${f}.p99Ratio`]) {
        t.ok(res.targets.some((x: { id: string }) => x.id === id), `target ${id} evaluated`)
      }
    }
    for (const x of res.targets) t.match(x, { id: String, description: String }, x.id)
  })

  t.test('markdown and chart', async (t) => {
    const md = readFileSync(path.join(out, 'latest.md'), 'utf8')
    for (const name of Object.keys(res.throughput.variants)) t.match(md, `\`${name}\``, `table row for ${name}`)
    const svg = readFileSync(path.join(out, 'efficiency.svg'), 'utf8')
    t.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, 'svg root')
    t.match(svg, 'plugin-metrics')
  })
})
