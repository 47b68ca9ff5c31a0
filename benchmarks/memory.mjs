// Memory / cardinality: RSS, heap and the number of exposed series before and
// after N requests (default 100,000) to random unmatched paths with random
// methods, including tokens no HTTP parser would accept (FOO, random X-...),
// sent with app.inject({ validate: false }) so they reach Fastify. A share of
// the requests also goes over real sockets (methods Node's parser accepts).
// Each subject runs in its own child process with --expose-gc.
import http from 'node:http'
import { pathToFileURL, fileURLToPath } from 'node:url'
import { round, parseArgs, runChild, childMain, childParams, countSamples, prng, USAGE } from './lib/common.mjs'
import { buildApp } from './lib/subjects.mjs'

const SELF = fileURLToPath(import.meta.url)
export const MEMORY_SUBJECTS = ['plugin', 'fastify-metrics', 'recipe']
const STD_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PURGE', 'PROPFIND', 'MKCOL', 'LOCK', 'SEARCH', 'REPORT']
const ODD_METHODS = ['FOO', 'BREW', 'WHEN', 'get-ish']
const RAW_SHARE = 0.1

function gcNow () {
  if (global.gc) { global.gc(); global.gc() }
}

function seriesKeys (text) {
  const keys = new Set()
  for (const line of text.split('\n')) if (line && line[0] !== '#') keys.add(line.slice(0, line.lastIndexOf(' ')))
  return keys
}

function snapshot (text) {
  gcNow()
  const m = process.memoryUsage()
  let httpSeries = 0
  for (const line of text.split('\n')) if (line && line[0] !== '#' && !/^(nodejs_|process_)/.test(line)) httpSeries++
  // series: every sample line; httpSeries: without prom-client's default process/Node.js metrics
  return { rssMB: round(m.rss / 2 ** 20, 1), heapUsedMB: round(m.heapUsed / 2 ** 20, 2), series: countSamples(text), httpSeries }
}

async function measureSubject ({ subject, requests }) {
  const { app, info } = await buildApp(subject, 'memory')
  app.get('/api/users/:id', async (request) => ({ id: Number(request.params.id) }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = app.server.address().port
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
  const scrape = async () => (await app.inject({ method: 'GET', url: info.endpoint, headers: { accept: 'text/plain' } })).body

  const rnd = prng(99)
  const pick = (a) => a[Math.floor(rnd() * a.length)]
  const randomMethod = () => {
    const r = rnd()
    if (r < 0.6) return pick(STD_METHODS)
    if (r < 0.8) return pick(ODD_METHODS)
    return `X${Math.floor(rnd() * 1e9).toString(36).toUpperCase()}` // a new token almost every time
  }
  const randomPath = () => `/${Math.floor(rnd() * 1e12).toString(36)}/${Math.floor(rnd() * 1e6)}`
  const statuses = {}

  const raw = (method, path) => new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
    })
    req.on('error', () => resolve('error'))
    req.end()
  })

  async function send (n) {
    const BATCH = 100
    for (let i = 0; i < n; i += BATCH) {
      const batch = []
      for (let k = i; k < Math.min(n, i + BATCH); k++) {
        const path = randomPath()
        if (rnd() < RAW_SHARE) batch.push(raw(pick(STD_METHODS), path))
        else batch.push(app.inject({ method: randomMethod(), url: path, validate: false }).then((r) => r.statusCode, () => 'error'))
      }
      for (const s of await Promise.all(batch)) statuses[s] = (statuses[s] ?? 0) + 1
    }
  }

  const fresh = snapshot(await scrape())
  // A first batch establishes the constant set of series that unmatched
  // traffic may create (one per method label and status code); after it, the
  // count should not move. It sends every method once each way, then random ones.
  for (const m of [...STD_METHODS, ...ODD_METHODS, 'XWARMUP']) {
    const r = await app.inject({ method: m, url: randomPath(), validate: false })
    statuses[r.statusCode] = (statuses[r.statusCode] ?? 0) + 1
  }
  for (const m of STD_METHODS) {
    const s = await raw(m, randomPath())
    statuses[s] = (statuses[s] ?? 0) + 1
  }
  let warmN = Math.min(1000, Math.max(100, Math.floor(requests / 100)))
  await send(warmN)
  warmN += STD_METHODS.length * 2 + ODD_METHODS.length + 1
  const beforeText = await scrape()
  const before = snapshot(beforeText)
  const t0 = process.hrtime.bigint()
  await send(requests)
  const sendS = Number(process.hrtime.bigint() - t0) / 1e9
  const afterText = await scrape()
  const after = snapshot(afterText)
  const beforeKeys = seriesKeys(beforeText)
  const newSeries = []
  for (const k of seriesKeys(afterText)) if (!beforeKeys.has(k)) newSeries.push(k)
  agent.destroy()
  await app.close()
  return {
    subject,
    config: info.config,
    requests,
    warmupRequests: warmN,
    rawHttpShare: RAW_SHARE,
    durationS: round(sendS, 2),
    fresh,
    before,
    after,
    seriesGrowth: after.series - before.series,
    httpSeriesGrowth: after.httpSeries - before.httpSeries,
    newSeriesFamilies: [...new Set(newSeries.map((k) => k.split('{')[0].replace(/_(bucket|sum|count)$/, '')))].slice(0, 20),
    newSeriesSample: newSeries.slice(0, 5),
    rssGrowthMB: round(after.rssMB - before.rssMB, 1),
    heapGrowthMB: round(after.heapUsedMB - before.heapUsedMB, 2),
    statusCodes: statuses
  }
}

export async function runMemory (opts, log = console.error) {
  const out = { requests: opts.memoryRequests, method: 'random unmatched paths; 60% standard methods, 20% odd tokens (FOO, BREW, ...), 20% fresh random tokens; 10% over real HTTP, the rest app.inject({ validate: false })', subjects: {} }
  for (const subject of MEMORY_SUBJECTS) {
    const r = await runChild(SELF, { subject, requests: opts.memoryRequests }, { core: 1, nodeArgs: ['--expose-gc', '--max-old-space-size=2048'], timeoutMs: 600_000 })
    out.subjects[subject] = r
    if (!r.ok) log(`[memory] ${subject}: FAILED: ${r.error}`)
    else log(`[memory] ${subject.padEnd(16)} series ${r.fresh.series} -> ${r.before.series} (after ${r.warmupRequests}) -> ${r.after.series} (after ${r.requests}), http series growth ${r.httpSeriesGrowth}  heap ${r.before.heapUsedMB} -> ${r.after.heapUsedMB} MB  rss ${r.before.rssMB} -> ${r.after.rssMB} MB  (${r.durationS} s)`)
  }
  return out
}

if (childParams()) {
  await childMain(measureSubject)
} else if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = parseArgs()
  if (opts.help) { console.log(USAGE); process.exit(0) }
  console.log(JSON.stringify(await runMemory(opts), null, 2))
}
