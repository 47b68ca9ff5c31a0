// Scrape cost: time to render /metrics with N routes x 5 status codes x 2
// methods of HTTP series (500 routes -> 5,000 label sets), in the Prometheus
// text format and in OpenMetrics: scraped over HTTP on 127.0.0.1 as Prometheus does (the
// figure), and for reference through app.inject and as a bare render.
// Between scrapes a few requests touch random series, so every scrape renders
// values that changed. Each subject runs in its own child process.
//
// Stalls: the server process watches its own event loop (perf_hooks.monitorEventLoopDelay, 1 ms
// resolution) during every scrape, and a second series of scrapes runs while another process
// (lib/scrape-load.mjs) sends a steady light load of small requests, whose latency during
// scrapes is compared with their latency between scrapes.
import path from 'node:path'
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks'
import { pathToFileURL, fileURLToPath } from 'node:url'
import {
  median, percentile, round, waitQuiet, parseArgs, runChild, childMain, childParams, countSamples, prng, USAGE,
  spawnNode, nextMessage, stopChild, BENCH_DIR
} from './lib/common.mjs'
import { buildApp } from './lib/subjects.mjs'

const SELF = fileURLToPath(import.meta.url)
const STATUS = [200, 201, 400, 404, 500]
const METHODS = ['GET', 'POST']
const FORMATS = {
  prometheus: 'text/plain',
  openmetrics: 'application/openmetrics-text; version=1.0.0'
}
export const SCRAPE_SUBJECTS = ['plugin', 'fastify-metrics']
export const SCRAPE_TARGET_MS = 25
/** Targets for what a scrape does to the server: its longest event-loop stall, median over scrapes and worst. */
export const SCRAPE_BLOCK_TARGET_MS = 5
export const SCRAPE_BLOCK_WORST_TARGET_MS = 15
/** p99 of the light load's requests during scrapes ÷ their p99 between scrapes. */
export const SCRAPE_P99_RATIO_TARGET = 1.2
/** The light load: a fixed rate of small requests from another process, at most LIGHT_MAX_S seconds per format. */
export const LIGHT_RATE = 500
const LIGHT_MAX_S = 120
const LIGHT_PATH = '/__light'
/** Pause before each scrape of the loaded series, so that "between scrapes" has samples. */
const GAP_MS = 200
const ELD_RESOLUTION_MS = 1

/** PerformanceEntry detail.kind of a 'gc' entry (perf_hooks constants NODE_PERFORMANCE_GC_*). */
const GC_KINDS = { 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weakcb' }
const nowMs = () => Number(process.hrtime.bigint()) / 1e6
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const overlaps = (a0, a1, windows) => windows.some(([w0, w1]) => a0 <= w1 && a1 >= w0)

/** Distinct label sets (without le/quantile) of every family that carries our routes. */
function labelSets (text) {
  const fams = {}
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#' || !line.includes('/api/r')) continue
    const brace = line.indexOf('{')
    const name = line.slice(0, brace).replace(/_(bucket|sum|count|created)$/, '')
    const labels = line.slice(brace, line.lastIndexOf('}') + 1)
      .replace(/(le|quantile)="[^"]*"/g, '').replace(/\{,/, '{').replace(/,,/g, ',').replace(/,\}/, '}')
    ;(fams[name] ??= new Set()).add(labels)
  }
  return Object.fromEntries(Object.entries(fams).map(([k, v]) => [k, v.size]))
}

async function measureSubject ({ subject, routes, iterations }) {
  const { app, info } = await buildApp(subject, 'scrape')
  for (let i = 0; i < routes; i++) {
    app.route({
      method: METHODS,
      url: `/api/r${i}/items/:id`,
      handler: async (request, reply) => {
        reply.code(Number(request.query.code) || 200)
        return { ok: true }
      }
    })
  }
  // Transport baseline: the same bytes from a plain route, to tell the
  // exposition's own time from what carrying ~12 MB costs.
  let blob = Buffer.alloc(0)
  app.get('/__blob', (request, reply) => { reply.type('text/plain; version=0.0.4; charset=utf-8').send(blob) })
  // The light load's route: a small answer, observed like any route.
  app.get(LIGHT_PATH, async () => 'ok')
  await app.listen({ host: '127.0.0.1', port: 0 })
  // The longest gap between the ticks of a 1 ms timer, i.e. how long the loop was blocked (plus
  // up to the 1 ms tick itself), reset before each scrape and read once the scraper has it all.
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS })
  eld.enable()
  // The same gaps counted in CPU time: the part of a stall that is our own work, not time the OS
  // gave the core to another process (this machine is shared). The main thread's CPU time where
  // Node has process.threadCpuUsage (23.9+), else the process's (which also counts GC helper threads).
  const cpuUsage = typeof process.threadCpuUsage === 'function' ? () => process.threadCpuUsage() : () => process.cpuUsage()
  let tickCpu = cpuUsage()
  let maxCpuGap = 0
  const cpuTicks = setInterval(() => {
    const c = cpuUsage()
    maxCpuGap = Math.max(maxCpuGap, (c.user - tickCpu.user + c.system - tickCpu.system) / 1000)
    tickCpu = c
  }, ELD_RESOLUTION_MS)
  // The scraper is its own process on the other core, as Prometheus is. (A client inside the
  // server's process stalls the transfer: on Node 24 a third of 12 MB transfers then took ~40 ms
  // more, the plain route's as much as ours.)
  const client = spawnNode(path.join(BENCH_DIR, 'lib', 'scrape-client.mjs'), { core: 0 })
  const load = spawnNode(path.join(BENCH_DIR, 'lib', 'scrape-load.mjs'), { core: 0 })
  await Promise.all([nextMessage(client, (m) => m?.type === 'ready'), nextMessage(load, (m) => m?.type === 'ready')])
  let seq = 0
  const httpGet = async (url, accept) => {
    const id = ++seq
    const reply = nextMessage(client, (m) => m?.type === 'got' && m.id === id, 60_000)
    client.send({ type: 'get', id, port: app.server.address().port, path: url, accept })
    const m = await reply
    if (m.error || m.status !== 200) throw new Error(`GET ${url}: ${m.error ?? m.status}`)
    return m
  }
  // Garbage collections, to tell a stall that is a GC pause from one that is the scrape's own
  // work: [start, end] on the nowMs() clock, and the pause.
  const gcs = []
  const perfToNow = nowMs() - performance.now()
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push([e.startTime + perfToNow, e.startTime + perfToNow + e.duration, e.duration, GC_KINDS[e.detail?.kind] ?? String(e.detail?.kind)])
  })
  gcObserver.observe({ entryTypes: ['gc'] })
  const longestGc = ([w0, w1]) => gcs.reduce((m, [g0, g1, d]) => (g0 <= w1 && g1 >= w0 ? Math.max(m, d) : m), 0)
  const gcTotal = ([w0, w1]) => gcs.reduce((m, [g0, g1, d]) => (g0 <= w1 && g1 >= w0 ? m + d : m), 0)
  const gcKindsIn = ([w0, w1]) => [...new Set(gcs.filter(([g0, g1]) => g0 <= w1 && g1 >= w0).map((g) => g[3]))].join('+')
  /** One scrape over HTTP, with the longest event-loop stall of the server while it ran. */
  const scrapeWatched = async (url, accept) => {
    eld.reset()
    maxCpuGap = 0
    const s0 = nowMs()
    const m = await httpGet(url, accept)
    const s1 = nowMs()
    // A stall that ended just before the reply is recorded at the timer's next tick.
    await sleep(2 * ELD_RESOLUTION_MS)
    return { ...m, blockMs: eld.max / 1e6, blockCpuMs: maxCpuGap, window: [s0, s1], watched: [s0, nowMs()] }
  }
  // GC entries reach the observer asynchronously: the pauses of a window are looked up once the
  // whole series of scrapes is over, not when the window closes.
  const gcIn = (w) => ({ gcMs: round(longestGc(w), 2), gcTotalMs: round(gcTotal(w), 2), gcKinds: gcKindsIn(w) })

  // Populate every route x method x status once.
  const t0 = process.hrtime.bigint()
  const reqs = []
  for (let i = 0; i < routes; i++) for (const m of METHODS) for (const c of STATUS) reqs.push({ method: m, url: `/api/r${i}/items/${i}?code=${c}` })
  for (let i = 0; i < reqs.length; i += 200) await Promise.all(reqs.slice(i, i + 200).map((r) => app.inject(r)))
  const populateMs = Number(process.hrtime.bigint() - t0) / 1e6

  const rnd = prng(7)
  const touch = async (n) => {
    const batch = []
    for (let k = 0; k < n; k++) batch.push(app.inject(reqs[Math.floor(rnd() * reqs.length)]))
    await Promise.all(batch)
  }

  const formats = {}
  for (const [format, accept] of Object.entries(FORMATS)) {
    // Warm-up scrapes (JIT), not timed.
    let res
    for (let k = 0; k < 3; k++) res = await app.inject({ method: 'GET', url: info.endpoint, headers: { accept } })
    if (res.statusCode !== 200) throw new Error(`${format} scrape returned ${res.statusCode}`)
    for (let k = 0; k < 2; k++) await httpGet(info.endpoint, accept)
    // The figure: a scrape over a real socket, timed by the scraper from request to last byte.
    const times = []
    const blocks = []
    for (let k = 0; k < iterations; k++) {
      await touch(50)
      const { ms, bytes, blockMs } = await scrapeWatched(info.endpoint, accept)
      times.push(ms)
      blocks.push(blockMs)
      if (bytes < 1000) throw new Error(`${format} scrape over HTTP returned ${bytes} bytes`)
    }
    // The same scrapes while another process sends LIGHT_RATE small requests per second.
    load.send({ type: 'start', port: app.server.address().port, path: LIGHT_PATH, rate: LIGHT_RATE, maxSeconds: LIGHT_MAX_S })
    await nextMessage(load, (m) => m?.type === 'started')
    await sleep(200) // the load's sockets are open
    const scrapeWindows = []
    const touchWindows = []
    const loadedTimes = []
    const loadedBlocks = []
    const loadedCpuBlocks = []
    const gapBlocks = []
    const gapWindows = []
    const watchedWindows = []
    for (let k = 0; k < iterations; k++) {
      const t0 = nowMs()
      await touch(50)
      touchWindows.push([t0, nowMs()])
      eld.reset()
      const g0 = nowMs()
      await sleep(GAP_MS)
      gapBlocks.push(eld.max / 1e6)
      gapWindows.push([g0, nowMs()])
      const { ms, blockMs, blockCpuMs, window, watched } = await scrapeWatched(info.endpoint, accept)
      watchedWindows.push(watched)
      loadedTimes.push(ms)
      loadedBlocks.push(blockMs)
      loadedCpuBlocks.push(blockCpuMs)
      scrapeWindows.push(window)
    }
    await sleep(GAP_MS)
    load.send({ type: 'stop' })
    const samples = await nextMessage(load, (m) => m?.type === 'samples', 60_000)
    const gapGcs = gapWindows.map(longestGc)
    const loadedGcs = watchedWindows.map((w, k) => ({ blockMs: round(loadedBlocks[k], 2), ...gcIn(w) }))
    // A request that overlapped a scrape counts as during; one that overlapped the app.inject
    // requests touching series (in this process, not a scrape) counts as neither.
    const during = []
    const between = []
    // The same split for the scrapes no garbage collection ran in, and the gaps none ran in: what
    // the scrape costs its neighbours by its own work, apart from the process's GC pauses.
    const quietScrapes = scrapeWindows.filter((w, k) => loadedGcs[k].gcTotalMs === 0)
    const gcScrapes = scrapeWindows.filter((w, k) => loadedGcs[k].gcTotalMs > 0)
    const duringQuiet = []
    for (let i = 0; i < samples.at.length; i++) {
      const a0 = samples.at[i]
      const a1 = a0 + samples.ms[i]
      if (overlaps(a0, a1, scrapeWindows)) {
        during.push(samples.ms[i])
        if (overlaps(a0, a1, quietScrapes) && !overlaps(a0, a1, gcScrapes)) duringQuiet.push(samples.ms[i])
      } else if (!overlaps(a0, a1, touchWindows)) {
        between.push(samples.ms[i])
      }
    }
    const duringP99 = percentile(during, 99)
    const betweenP99 = percentile(between, 99)
    // The same through app.inject, which copies the body into a string (tests, not Prometheus).
    const it = []
    for (let k = 0; k < Math.min(iterations, 15); k++) {
      await touch(50)
      const s0 = process.hrtime.bigint()
      res = await app.inject({ method: 'GET', url: info.endpoint, headers: { accept } })
      it.push(Number(process.hrtime.bigint() - s0) / 1e6)
    }
    // Render only (no HTTP): the plugin exposes app.metrics.render(openMetrics).
    let renderMedianMs = null
    if (typeof app.metrics?.render === 'function') {
      const rt = []
      for (let k = 0; k < Math.min(iterations, 15); k++) {
        await touch(50)
        const s0 = process.hrtime.bigint()
        await app.metrics.render(format === 'openmetrics')
        rt.push(Number(process.hrtime.bigint() - s0) / 1e6)
      }
      renderMedianMs = round(median(rt), 3)
    }
    // Transport baseline: the same bytes from a plain route, over HTTP.
    blob = res.rawPayload
    const bt = []
    const bb = []
    for (let k = 0; k < Math.min(iterations, 15); k++) {
      const { ms, blockMs } = await scrapeWatched('/__blob', accept)
      bt.push(ms)
      bb.push(blockMs)
    }
    const contentType = String(res.headers['content-type'] ?? '')
    formats[format] = {
      accept,
      contentType,
      negotiated: format === 'openmetrics' ? contentType.startsWith('application/openmetrics-text') : contentType.startsWith('text/plain'),
      medianMs: round(median(times), 3),
      p90Ms: round(percentile(times, 90), 3),
      minMs: round(Math.min(...times), 3),
      maxMs: round(Math.max(...times), 3),
      injectMedianMs: round(median(it), 3),
      renderMedianMs,
      transportBaselineMs: round(median(bt), 3),
      // Event-loop stalls of the server, per scrape: the longest gap between ticks of a 1 ms timer
      // (so at least ~1 ms). Median over the scrapes and the worst scrape; 'unloaded' are the
      // timed scrapes above, the target figures are those under the light load.
      blockResolutionMs: ELD_RESOLUTION_MS,
      blockMedianMs: round(median(loadedBlocks), 3),
      blockMaxMs: round(Math.max(...loadedBlocks), 3),
      blockUnloadedMedianMs: round(median(blocks), 3),
      blockUnloadedMaxMs: round(Math.max(...blocks), 3),
      blockBetweenScrapesMedianMs: round(median(gapBlocks), 3),
      blockBetweenScrapesMaxMs: round(Math.max(...gapBlocks), 3),
      // The longest gap between 1 ms ticks in this process's CPU time (user + system, all threads).
      blockCpuClock: typeof process.threadCpuUsage === 'function' ? 'main thread' : 'process',
      blockCpuMedianMs: round(median(loadedCpuBlocks), 3),
      blockCpuMaxMs: round(Math.max(...loadedCpuBlocks), 3),
      // Per loaded scrape: its longest stall and the longest GC pause during it.
      gcPerScrape: loadedGcs,
      gcMaxMs: round(Math.max(...loadedGcs.map((g) => g.gcMs)), 3),
      // The same between scrapes (the light load and nothing else): GC pauses the scrape did not cause.
      gcBetweenScrapesMaxMs: round(Math.max(...gapGcs), 3),
      transportBaselineBlockMedianMs: round(median(bb), 3),
      loadedMedianMs: round(median(loadedTimes), 3),
      // Latency of the light load's requests (from their scheduled send time) during and between scrapes.
      light: {
        rate: LIGHT_RATE,
        path: LIGHT_PATH,
        errors: samples.errors,
        during: { requests: during.length, p50Ms: round(median(during), 3), p99Ms: round(duringP99, 3), maxMs: round(during.length ? Math.max(...during) : null, 3) },
        between: { requests: between.length, p50Ms: round(median(between), 3), p99Ms: round(betweenP99, 3), maxMs: round(between.length ? Math.max(...between) : null, 3) },
        p99Ratio: duringP99 != null && betweenP99 ? round(duringP99 / betweenP99, 3) : null,
        duringNoGc: { scrapes: quietScrapes.length, requests: duringQuiet.length, p99Ms: round(percentile(duringQuiet, 99), 3) }
      },
      bytes: Buffer.byteLength(res.body),
      samples: countSamples(res.body),
      labelSets: labelSets(res.body),
      iterations
    }
  }
  await stopChild(client, 2000)
  await stopChild(load, 2000)
  eld.disable()
  gcObserver.disconnect()
  clearInterval(cpuTicks)
  await app.close()
  return { subject, config: info.config, routes, populateRequests: reqs.length, populateMs: round(populateMs, 1), formats }
}

export async function runScrape (opts, log = console.error) {
  const out = { routes: opts.scrapeRoutes, seriesTarget: opts.scrapeRoutes * STATUS.length * METHODS.length, iterations: opts.scrapeIterations, targetMs: SCRAPE_TARGET_MS, blockTargetMs: SCRAPE_BLOCK_TARGET_MS, blockWorstTargetMs: SCRAPE_BLOCK_WORST_TARGET_MS, p99RatioTarget: SCRAPE_P99_RATIO_TARGET, lightRate: LIGHT_RATE, subjects: {} }
  for (const subject of SCRAPE_SUBJECTS) {
    if (opts.quietWait > 0) await waitQuiet({ maxWaitS: opts.quietWait })
    const r = await runChild(SELF, { subject, routes: opts.scrapeRoutes, iterations: opts.scrapeIterations }, { core: 1 })
    out.subjects[subject] = r
    if (!r.ok) log(`[scrape] ${subject}: FAILED: ${r.error}`)
    else {
      for (const [f, x] of Object.entries(r.formats)) {
        log(`[scrape] ${subject.padEnd(16)} ${f.padEnd(12)} over HTTP median ${x.medianMs} ms  p90 ${x.p90Ms} ms  app.inject ${x.injectMedianMs} ms  render ${x.renderMedianMs ?? '–'} ms  same bytes from a plain route ${x.transportBaselineMs} ms  ${x.samples} samples  ${x.bytes} B  (${x.contentType})`)
        log(`[scrape] ${subject.padEnd(16)} ${f.padEnd(12)} loop stall per scrape under ${x.light.rate} req/s: median ${x.blockMedianMs} ms  worst ${x.blockMaxMs} ms (CPU ${x.blockCpuMedianMs}/${x.blockCpuMaxMs} ms, unloaded ${x.blockUnloadedMedianMs}/${x.blockUnloadedMaxMs} ms, between scrapes ${x.blockBetweenScrapesMedianMs}/${x.blockBetweenScrapesMaxMs} ms, plain route ${x.transportBaselineBlockMedianMs} ms)  light p99 during ${x.light.during.p99Ms} ms (${x.light.during.requests}) vs between ${x.light.between.p99Ms} ms (${x.light.between.requests}) = ${x.light.p99Ratio}x`)
      }
    }
  }
  return out
}

if (childParams()) {
  await childMain(measureSubject)
} else if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseArgs()
  if (opts.help) { console.log(USAGE); process.exit(0) }
  console.log(JSON.stringify(await runScrape(opts), null, 2))
}
