// Scrape cost: time to render /metrics with N routes x 5 status codes x 2
// methods of HTTP series (500 routes -> 5,000 label sets), in the Prometheus
// text format and in OpenMetrics: scraped over HTTP on 127.0.0.1 as Prometheus does (the
// figure), and for reference through app.inject and as a bare render.
// Between scrapes a few requests touch random series, so every scrape renders
// values that changed. Each subject runs in its own child process.
import path from 'node:path'
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
  await app.listen({ host: '127.0.0.1', port: 0 })
  // The scraper is its own process on the other core, as Prometheus is. (A client inside the
  // server's process stalls the transfer: on Node 24 a third of 12 MB transfers then took ~40 ms
  // more, the plain route's as much as ours.)
  const client = spawnNode(path.join(BENCH_DIR, 'lib', 'scrape-client.mjs'), { core: 0 })
  await nextMessage(client, (m) => m?.type === 'ready')
  let seq = 0
  const httpGet = async (url, accept) => {
    const id = ++seq
    const reply = nextMessage(client, (m) => m?.type === 'got' && m.id === id, 60_000)
    client.send({ type: 'get', id, port: app.server.address().port, path: url, accept })
    const m = await reply
    if (m.error || m.status !== 200) throw new Error(`GET ${url}: ${m.error ?? m.status}`)
    return m
  }

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
    for (let k = 0; k < iterations; k++) {
      await touch(50)
      const { ms, bytes } = await httpGet(info.endpoint, accept)
      times.push(ms)
      if (bytes < 1000) throw new Error(`${format} scrape over HTTP returned ${bytes} bytes`)
    }
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
    for (let k = 0; k < Math.min(iterations, 15); k++) bt.push((await httpGet('/__blob', accept)).ms)
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
      bytes: Buffer.byteLength(res.body),
      samples: countSamples(res.body),
      labelSets: labelSets(res.body),
      iterations
    }
  }
  await stopChild(client, 2000)
  await app.close()
  return { subject, config: info.config, routes, populateRequests: reqs.length, populateMs: round(populateMs, 1), formats }
}

export async function runScrape (opts, log = console.error) {
  const out = { routes: opts.scrapeRoutes, seriesTarget: opts.scrapeRoutes * STATUS.length * METHODS.length, iterations: opts.scrapeIterations, targetMs: SCRAPE_TARGET_MS, subjects: {} }
  for (const subject of SCRAPE_SUBJECTS) {
    if (opts.quietWait > 0) await waitQuiet({ maxWaitS: opts.quietWait })
    const r = await runChild(SELF, { subject, routes: opts.scrapeRoutes, iterations: opts.scrapeIterations }, { core: 1 })
    out.subjects[subject] = r
    if (!r.ok) log(`[scrape] ${subject}: FAILED: ${r.error}`)
    else {
      for (const [f, x] of Object.entries(r.formats)) {
        log(`[scrape] ${subject.padEnd(16)} ${f.padEnd(12)} over HTTP median ${x.medianMs} ms  p90 ${x.p90Ms} ms  app.inject ${x.injectMedianMs} ms  render ${x.renderMedianMs ?? '–'} ms  same bytes from a plain route ${x.transportBaselineMs} ms  ${x.samples} samples  ${x.bytes} B  (${x.contentType})`)
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
