// Native histograms end to end (docs/native-histograms.md): an app with metrics.nativeHistograms
// on, scraped at the same time by two real Prometheus servers (Debian's 2.42 here):
// - one with --enable-feature=native-histograms asks for the protobuf exposition and stores the
//   duration histogram as a native histogram: histogram_count() is exactly the requests made, and
//   histogram_quantile(0.9, ...) of requests with known delays is within the schema's error bound
//   of the true 0.9 quantile of what was observed;
// - one without the flag asks for OpenMetrics and stores the classic series, exactly as today.
import t from 'tap'
import Fastify from 'fastify'
import { request } from 'node:http'
import observability from '../lib/index'
import { PROTOBUF_CONTENT_TYPE } from '../lib/exposition-protobuf'
import { startPrometheus, skipReasonIfAbsent, versionAtLeast } from './helpers/prometheus'

const skipReason = skipReasonIfAbsent()
const ROUTE = '/api/delay/:ms'
/** 10 requests each of 100, 200, ... 1000 ms: the 0.9 quantile is the 90th value, a 900 ms one. */
const DELAYS = Array.from({ length: 100 }, (_, i) => 100 * (1 + Math.floor(i / 10)))
const SCHEMA = 3

function get (port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)) })
      .on('error', reject).end()
  })
}

/** Prometheus' quantile of a sorted sample: the value of rank ceil(q * n) (what its buckets approximate). */
function quantile (sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]
}

t.test('a real Prometheus stores the duration histogram as a native histogram; without the feature flag, as today', skipReason === null ? { timeout: 90_000 } : { skip: skipReason }, async (t) => {
  const accepts: string[] = []
  const observed: number[] = []
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, {
    tracing: false,
    // The guard sees every scrape: the formats the two servers asked for.
    metrics: { nativeHistograms: { schema: SCHEMA }, guard: async (req) => { accepts.push(String(req.headers.accept)) } }
  })
  // A classic histogram of the user's, with a whole-number bound: its `le` as each server stores it.
  const mine = new (app.metrics!.client as any).Histogram({ name: 'shop_checkout_seconds', help: 'Checkouts.', buckets: [0.5, 1], registers: [app.metrics!.registry] })
  mine.observe(0.7)
  app.get(ROUTE, async (req) => {
    await new Promise((resolve) => setTimeout(resolve, Number((req.params as { ms: string }).ms)))
    return 'ok'
  })
  // Fastify's own measure of each request, for the true quantile (the plugin's clock is read a
  // hook apart, microseconds from this one).
  app.addHook('onResponse', async (req, reply) => { if (req.routeOptions.url === ROUTE) observed.push(reply.elapsedTime / 1000) })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port

  const statuses = await Promise.all(DELAYS.map((ms) => get(port, `/api/delay/${ms}`)))
  t.same(new Set(statuses), new Set([200]), 'all answered')
  t.equal(observed.length, DELAYS.length)

  const [native, classic] = await Promise.all([
    startPrometheus({ targets: [`127.0.0.1:${port}`], features: ['native-histograms'] }),
    startPrometheus({ targets: [`127.0.0.1:${port}`] })
  ])
  t.teardown(() => native.stop())
  t.teardown(() => classic.stop())

  const selector = `http_server_request_duration_seconds{http_route="${ROUTE}"}`
  const count = await native.waitFor(`histogram_count(sum(${selector}))`, (r) => r.length === 1, 30_000)
  t.equal(count[0]?.value[1], String(DELAYS.length), `histogram_count() is exactly the requests made\n${native.logs()}`)

  const stored = await native.query(selector)
  t.equal(stored.length, 1, 'one series (one status code)')
  t.ok((stored[0] as any)?.histogram, 'stored as a native histogram (the API answers `histogram`, not `value`)')
  t.same(await native.query('{__name__=~"http_server_request_duration_seconds_(bucket|count|sum)"}'), [],
    'Prometheus 2.42 with native histograms keeps the native histogram only, not the classic series')

  const q90 = Number((await native.query(`histogram_quantile(0.9, sum(${selector}))`))[0]?.value[1])
  const truth = quantile([...observed].sort((a, b) => a - b), 0.9)
  // The estimate lies in the bucket of the true value: off by less than one bucket's growth factor.
  const bound = 2 ** (2 ** -SCHEMA) - 1
  t.ok(Math.abs(q90 / truth - 1) <= bound, `histogram_quantile(0.9) ${q90} s within ${(bound * 100).toFixed(2)}% of the true ${truth} s`)

  // The PromQL of docs/native-histograms.md, on what was stored. 0.5 s is a bucket boundary at
  // every schema (a power of two) and a classic bound: the share of requests of 0.5 s or less is
  // exact in both forms, and the same (the 500 ms requests fall either side: timers fire early).
  const classicReady = await classic.waitFor(`sum(${selector.replace('{', '_count{')})`, (r) => r[0]?.value[1] === String(DELAYS.length), 30_000)
  t.equal(classicReady.length, 1, `the classic server has every request\n${classic.logs()}`)
  const share = await classic.query(`sum(${selector.replace('{', '_bucket{le="0.5",')}) / sum(${selector.replace('{', '_count{')})`)
  const fraction = await native.query(`histogram_fraction(0, 0.5, sum(${selector}))`)
  t.equal(fraction[0]?.value[1], share[0]?.value[1], `histogram_fraction(0, 0.5) is the classic le="0.5" share, exactly (${String(share[0]?.value[1])})`)
  t.ok(Number(share[0]?.value[1]) >= 0.4 && Number(share[0]?.value[1]) <= 0.5, 'the 100-400 ms requests, and none of 600 ms or more')
  for (const q of [
    `histogram_quantile(0.99, sum(rate(${selector}[1m])))`,
    `histogram_count(sum by (http_route) (rate(${selector}[1m])))`,
    `histogram_sum(sum by (http_route) (rate(${selector}[1m])))`
  ]) {
    const r = await native.waitFor(q, (r) => r.length === 1, 30_000)
    t.equal(r.length, 1, `${q} answers`)
  }

  // The server without the flag: the classic series, from a text scrape.
  const classicCount = await classic.waitFor(`sum(${selector.replace('{', '_count{')})`, (r) => r.length === 1, 30_000)
  t.equal(classicCount[0]?.value[1], String(DELAYS.length), `classic _count\n${classic.logs()}`)
  const buckets = await classic.query(`${selector.replace('{', '_bucket{')}`)
  t.equal(buckets.length, 15, 'the 14 default buckets and +Inf, as today')
  const classicSum = await classic.query(`sum(${selector.replace('{', '_sum{')})`)
  const nativeSum = await native.query(`histogram_sum(sum(${selector}))`)
  t.equal(nativeSum[0]?.value[1], classicSum[0]?.value[1], 'histogram_sum() is the classic _sum: the same observations')

  // Prometheus 2.x formats a protobuf bucket's bound as a float: le="1.0", where the text gave "1"
  // (docs/native-histograms.md, Prometheus 2.x).
  const les = async (p: typeof native): Promise<string[]> => (await p.query('shop_checkout_seconds_bucket')).map((r) => r.metric.le).sort()
  const v3 = versionAtLeast(native.version, '3.0.0') // 3.x writes 1.0 from every format
  t.same(await les(classic), ['+Inf', '0.5', v3 ? '1.0' : '1'], 'classic server: le as the text exposition writes it')
  t.same(await les(native), ['+Inf', '0.5', '1.0'], 'native server (protobuf): le written as a float')

  t.ok(accepts.some((a) => a.startsWith('application/vnd.google.protobuf')), 'the native server asked for protobuf')
  t.ok(accepts.some((a) => !a.includes('protobuf')), 'the other one did not')
  t.match(PROTOBUF_CONTENT_TYPE, /^application\/vnd\.google\.protobuf; proto=io\.prometheus\.client\.MetricFamily; encoding=delimited$/)
})
