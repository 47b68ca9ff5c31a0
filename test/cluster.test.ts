// Many processes (#13): node:cluster workers share one port, so each scrape of that port reaches one
// worker. The recipe of docs/reliability.md ("Many processes (node:cluster)"): the workers hand the
// plugin's registry to the client's AggregatorRegistry, the primary serves clusterMetrics() on a
// port of its own. One scrape there is every worker's numbers, summed, with either client module.
import t from 'tap'
import { request } from 'node:http'
import { startNodeApp, childEnv, getText } from './helpers/child'
import { parseSamples, sampleValue, requestCount } from './helpers/metrics-text'

const CLIENTS = ['prom-client', '@prometheus-io/client'] as const
/** Requests to /work; with Connection: close each is a new connection, handed to a worker in turn. */
const N = 200
/** Requests kept in flight while the primary is scraped. */
const HELD = 4

interface Ready { port: number, metricsPort: number, workers: number[] }

/** GET without keep-alive: its answer, and which worker gave it. */
function get (port: number, path: string): Promise<{ status: number, body: string, worker: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, worker: String(res.headers['x-worker']) }))
    })
    req.on('error', reject)
    req.end()
  })
}

function tally (workers: string[]): Record<string, number> {
  const byWorker: Record<string, number> = {}
  for (const w of workers) byWorker[w] = (byWorker[w] ?? 0) + 1
  return byWorker
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

for (const client of CLIENTS) {
  t.test(`${client}: one scrape of the primary is both workers' metrics, summed`, async (t) => {
    const app = startNodeApp<Ready>(t, ['test/fixtures/cluster-app.cjs'], childEnv({ METRICS_CLIENT: client, WORKERS: '2' }))
    const { port, metricsPort, workers } = await app.ready
    t.equal(workers.length, 2, 'two workers')

    const served: Array<{ status: number, worker: string }> = []
    for (let i = 0; i < N; i++) served.push(await get(port, '/work'))
    t.same(served.filter((r) => r.status !== 200), [], 'every /work answered 200')
    const byWorker = tally(served.map((r) => r.worker))
    t.same(Object.keys(byWorker).sort(), ['1', '2'], `both workers served /work: ${JSON.stringify(byWorker)}`)
    t.ok(Object.values(byWorker).every((n) => n > 0 && n < N), 'each served some, neither all')

    // Requests in flight on the workers; the primary says when each has reached its handler. One
    // after the other, so round-robin hands them to the workers in turn (sent together, a worker
    // still busy taking one connection can be skipped for the next).
    const holding: Array<ReturnType<typeof get>> = []
    for (let i = 1; i <= HELD; i++) {
      holding.push(get(port, '/hold'))
      t.equal((await getText(metricsPort, `/held?n=${i}`)).body, String(i), `${i} held`)
    }

    const during = await getText(metricsPort, '/metrics')
    t.equal(during.status, 200, `the aggregate served: ${during.body.slice(0, 200)}`)
    const text = during.body
    t.equal(requestCount(text, '/work'), N, `_count: all ${N} requests, from both workers`)
    t.equal(sampleValue(text, 'http_server_active_requests', { http_request_method: 'GET' }), HELD, 'the active-requests gauge: summed over the workers')

    const buckets = parseSamples(text).filter((s) => s.name === 'http_server_request_duration_seconds_bucket' && s.labels.http_route === '/work')
    t.equal(buckets.length, 15, 'one line per bucket, the workers\' lines merged')
    const counts = buckets.map((s) => s.value)
    t.ok(counts.every((c, i) => i === 0 || c >= counts[i - 1]), `buckets cumulative: ${counts.join(' ')}`)
    t.same(buckets.at(-1)?.labels.le, '+Inf', 'the last bucket is +Inf')
    t.equal(counts.at(-1), N, '+Inf bucket = _count')
    const sum = sampleValue(text, 'http_server_request_duration_seconds_sum', { http_route: '/work' }) ?? 0
    t.ok(sum > 0 && sum < N * 10, `_sum summed: ${sum}`)

    // The default metrics keep the client's own aggregation.
    t.equal(sampleValue(text, 'nodejs_version_info'), 1, 'nodejs_version_info: the first worker\'s, not 2')
    t.equal(sampleValue(text, 'process_start_time_seconds'), undefined, 'process_start_time_seconds: left out, a sum of start times means nothing')
    t.ok((sampleValue(text, 'process_resident_memory_bytes') ?? 0) > 0, 'process_resident_memory_bytes: summed')

    t.equal((await getText(metricsPort, '/release')).body, 'ok')
    const held = await Promise.all(holding)
    t.same(held.map((r) => r.body), Array(HELD).fill('released'))
    const heldBy = tally(held.map((r) => r.worker))
    t.same(Object.keys(heldBy).sort(), ['1', '2'], `requests held on both workers: ${JSON.stringify(heldBy)}`)

    const after = (await getText(metricsPort, '/metrics')).body
    t.equal(requestCount(after, '/hold'), HELD, 'the held requests, recorded once answered')
    t.equal(requestCount(after, '/work'), N, 'still N')
    t.equal(sampleValue(after, 'http_server_active_requests', { http_request_method: 'GET' }), 0, 'none in flight')

    t.match(await app.stop(), { code: 0, signal: null }, 'the primary closed the workers, then exited')
    t.same(workers.filter(alive), [], 'no worker left running')
  })
}
