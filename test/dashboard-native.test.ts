// The Grafana dashboard (docs/grafana/fastify-observability.json) against a real Prometheus started
// with --enable-feature=native-histograms, scraping an app with metrics.nativeHistograms on: that
// Prometheus (2.42 here) stores the duration histogram as a native histogram only, no
// `_bucket`/`_count`/`_sum` (docs/grafana.md#native-histograms). Every panel and variable query of
// the committed JSON, with All and with chosen values, must still return data; the queries reading
// the duration histogram (BOTH_FORMS) show it through their native part, their classic part being
// empty; a few answers are checked for their meaning, and the p99 query's exemplars, stored on the
// native series, name SERVER spans of the app. test/dashboard.test.ts has the classic case.
import t from 'tap'
import Fastify from 'fastify'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { SpanKind } from '@opentelemetry/api'
import observability from '../lib/index'
import { startPrometheus, skipReasonIfAbsent } from './helpers/prometheus'
import type { PromSample } from './helpers/prometheus'
import {
  BOTH_FORMS, DURATION, PANELS, PROCESS_PANELS, ROUTES, byLabel, checkForms, checkMeanings, committed, interpolate, labelValues,
  panelQueries, selectVariables, startTraffic, tryQuery, waitForExemplars
} from './helpers/dashboard-queries'

// Spans of the app, in process: the plugin's exemplars carry their ids.
const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
provider.register()
t.teardown(() => provider.shutdown())

/** Why the classic part of each BOTH_FORMS query is empty here. */
const CLASSIC_EMPTY = 'Prometheus 2.42 with native histograms stores the native histogram only, no classic series'

const skip = skipReasonIfAbsent()

t.test('every query of the dashboard returns data from a Prometheus storing native histograms', skip === null ? {} : { skip }, async (t) => {
  const started = Date.now()
  // The routes of test/fixtures/dashboard-app.cjs (which has the plugin's defaults), native histograms on.
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { nativeHistograms: true } })
  app.get('/api/users/:id', async (request) => {
    // a little garbage, for the GC panel
    const garbage = []
    for (let i = 0; i < 2000; i++) garbage.push({ i, s: 'x'.repeat(64) + i })
    return { id: (request.params as { id: string }).id, n: garbage.length }
  })
  app.post('/api/orders', async (request, reply) => reply.code(201).send({ created: true }))
  app.get('/api/slow', async () => {
    await new Promise((resolve) => setTimeout(resolve, 30))
    return { slow: true }
  })
  app.get('/api/fail', async () => { throw new Error('payment declined') })
  app.get('/static/*', async (request) => ({ file: (request.params as Record<string, string>)['*'] }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port

  const traffic = startTraffic(port)
  t.teardown(() => traffic.stop())

  const prom = await startPrometheus({ targets: [`127.0.0.1:${port}`], features: ['native-histograms', 'exemplar-storage'] })
  t.teardown(() => prom.stop())
  const phases = [`prometheus ready ${Date.now() - started} ms`]

  // Every native series has 3 samples in the last 10s ($__rate_interval): rate() has data.
  const ready = await prom.waitFor(`min(count_over_time(${DURATION}{job="app"}[10s])) >= 3`, r => r.length > 0, 20_000)
  t.equal(ready.length, 1, `Prometheus has scraped the app three times\n${prom.logs()}`)
  const stored = await prom.query(`${DURATION}{job="app"}`)
  t.ok(stored.length > 0 && stored.every(s => (s as unknown as { histogram?: unknown }).histogram !== undefined),
    'the duration histogram is stored as native histograms')
  phases.push(`three scrapes ${Date.now() - started} ms`)

  // Variables: they read the native histogram's name too; the classic _count alone has nothing.
  const { all, chosen, values, checked: variablesChecked } = await selectVariables(t, prom)
  let checked = variablesChecked
  t.strictSame(values.job, ['app'], 'job values')
  t.strictSame(values.instance, [`127.0.0.1:${port}`], 'instance values')
  t.strictSame([...values.route].sort(), [...ROUTES].sort(), 'route values: the route patterns and unmatched')
  t.strictSame(await labelValues(prom, `label_values(${DURATION}_count, job)`), [], `no ${DURATION}_count: ${CLASSIC_EMPTY}`)

  // Panel queries, with All and with the chosen values: none empty.
  const queries = panelQueries(committed)
  t.strictSame([...new Set(queries.map(q => q.panel))], PANELS, 'every panel has its queries checked')
  const results = new Map<string, PromSample[]>()
  const chosenResults = new Map<string, PromSample[]>()
  for (const [name, selection] of [['All', all], ['chosen', chosen]] as const) {
    for (const q of queries) {
      const expr = interpolate(q.expr, selection)
      const r = await tryQuery(t, prom, expr, `${q.key} (${name})`)
      if (r === undefined) continue
      checked++
      ;(name === 'All' ? results : chosenResults).set(q.key, r)
      t.ok(r.length > 0, `${q.key} (${name}) returns data: ${expr}`)
    }
  }
  t.equal(checked, 2 * (Object.keys(values).length + queries.length), `${checked} queries run`)

  // The queries reading the duration histogram show it through their native part.
  const formsChecked = await checkForms(t, prom, { all, chosen }, 'native', CLASSIC_EMPTY)
  t.equal(formsChecked, 2 * 2 * BOTH_FORMS.length, `${formsChecked} queries of one form run`)
  phases.push(`queries ${Date.now() - started} ms`)

  // What some of the answers mean, from the native histogram.
  checkMeanings(t, results, chosenResults)
  const requests = byLabel(results.get('Slowest routes C')!, 'http_route')
  t.strictSame(Object.keys(requests).sort(), [...ROUTES].sort(), 'the request count of every route (6 < 10 routes)')
  t.ok(Object.values(requests).every(n => n > 0), `request counts over the range ${JSON.stringify(requests)}`)
  t.ok(Number(results.get('p99 latency A')![0].value[1]) >= 0.025, 'p99 of all routes: the 30 ms route is one sixth of the requests')
  for (const [key, r] of results) {
    if (PROCESS_PANELS.some(p => key.startsWith(`${p} `))) {
      t.ok(r.every(s => s.metric.job === 'app' && s.metric.instance === `127.0.0.1:${port}`), `${key}: per job and instance`)
    }
  }

  // Exemplars of the latency panel, stored on the native series: SERVER spans of the app.
  for (const q of queries.filter(q => q.exemplar)) {
    const found = await waitForExemplars(prom, interpolate(q.expr, all))
    const series = found.find(s => s.exemplars.length > 0)
    t.equal(series?.seriesLabels.__name__, DURATION, `${q.key}: exemplars of the native histogram series`)
    const exemplar = series?.exemplars[0]
    t.match(exemplar?.labels, { trace_id: /^[0-9a-f]{32}$/, span_id: /^[0-9a-f]{16}$/ }, `${q.key}: exemplars with trace ids`)
    const span = exporter.getFinishedSpans().find(s => s.spanContext().traceId === exemplar?.labels.trace_id)
    t.equal(span?.kind, SpanKind.SERVER, 'the exemplar\'s trace has a SERVER span of the app')
    t.equal(span?.spanContext().spanId ?? 'no span', exemplar?.labels.span_id, 'the exemplar names that span')
  }
  phases.push(`exemplars ${Date.now() - started} ms`)

  await traffic.stop()
  t.comment(`${checked} queries checked, and ${formsChecked} of one form; ${phases.join(', ')}`)
})
