// A collector that is down loses spans; it must not do so silently. With the preload and an OTLP
// endpoint nobody listens on: one warning naming the endpoint (not one per failed export), and the
// lost spans counted at /metrics. Without the preload's handle, no such metric.
import t from 'tap'
import Fastify from 'fastify'
import { ROOT_CONTEXT } from '@opentelemetry/api'
import observability from '../lib/index'
import { DROPPED_NAME, EXPORT_FAILED_NAME } from '../lib/export-failures'
import { publishedHandle, publishHandle, TELEMETRY_HANDLE_SYMBOL } from '../lib/telemetry-handle'
import { requireFromSdk } from '../lib/sdk/packages'
import { watchExports } from '../lib/sdk/export-watch'
import { watchQueue } from '../lib/sdk/queue-watch'
import type { SpanLoss } from '../lib/sdk/span-loss'
import type { SpanExporter, SpanProcessor } from '../lib/sdk/options'
import { freePort, promtoolCheckMetrics, skipReasonIfAbsent } from './helpers/prometheus'
import { childEnv, getText, startNodeApp } from './helpers/child'
import { until } from './helpers/events'
import { startOtlpReceiver } from './helpers/otlp-receiver'

const sampleOf = (name: string) => (body: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(body)?.[1] ?? NaN)
const failed = sampleOf(EXPORT_FAILED_NAME)
const dropped = sampleOf(DROPPED_NAME)

t.test('collector down: lost spans counted at /metrics, one warning naming the endpoint', async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}`
  const app = startNodeApp<{ port: number }>(t, ['--require', './dist/register.js', 'test/fixtures/story-app.cjs'],
    childEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: dead, OTEL_SERVICE_NAME: 'dead-collector', OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_EXPORTER_OTLP_TIMEOUT: '300', STORY_DELAY_MS: '0' }))
  const { port } = await app.ready

  // Two rounds of requests, each awaited until its spans' export failed: at least two failed exports.
  let count = 0
  for (const round of [1, 2]) {
    for (let i = 0; i < 5; i++) t.equal((await getText(port, '/api/slow')).status, 200)
    for (let i = 0; i < 200 && count < 5 * round; i++) {
      count = failed((await getText(port, '/metrics')).body)
      if (count < 5 * round) await new Promise(resolve => setTimeout(resolve, 50))
    }
    t.ok(count >= 5 * round, `round ${round}: ${count} spans counted as lost (a SERVER span per request at least)`)
  }
  const text = (await getText(port, '/metrics')).body
  t.match(text, `# TYPE ${EXPORT_FAILED_NAME} counter`)
  const skip = skipReasonIfAbsent()
  if (skip === null) t.same((await promtoolCheckMetrics(text)).lines, [], 'promtool check metrics: clean')

  await app.stop()
  const warnings = app.stderr().split('\n').filter(l => l.includes('FST_OBSERVABILITY_EXPORT_FAILED'))
  t.equal(warnings.length, 1, `one warning for every failed export of the minute:\n${app.stderr()}`)
  t.match(warnings[0], `spans could not be exported to ${dead}/v1/traces`)
})

t.test('no preload, no SDK handle: the counters are there with no sample', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { defaultMetrics: false } })
  const text = (await app.inject('/metrics')).body
  for (const name of [EXPORT_FAILED_NAME, DROPPED_NAME]) {
    t.match(text, `# TYPE ${name} counter`, `${name}: HELP and TYPE`)
    t.notMatch(text, new RegExp(`^${name}[ {]`, 'm'), `${name}: no sample (no count, not a 0)`)
  }
})

t.test('two plugin instances sharing a registry: the counters stay while either serves it', async (t) => {
  const a = Fastify()
  const b = Fastify()
  t.teardown(() => b.close())
  await a.register(observability, { tracing: false, metrics: { defaultMetrics: false } })
  await b.register(observability, { tracing: false, metrics: { defaultMetrics: false, registry: a.metrics!.registry } })
  await a.ready()
  await b.ready()
  await a.close()
  const text = (await b.inject('/metrics')).body
  for (const name of [EXPORT_FAILED_NAME, DROPPED_NAME]) t.match(text, `# TYPE ${name} counter`, `${name}: still served by the instance left`)
  await b.close()
  for (const name of [EXPORT_FAILED_NAME, DROPPED_NAME]) t.equal(b.metrics!.registry.getSingleMetric(name), undefined, `${name}: removed with its last user`)
})

// The SDK handle published after the plugin registered (startTelemetry() called later): the
// counters are decided at each scrape, not at register. Both renderings, the plugin's and the
// client's own (what an aggregator or a route of yours would serve), checked by promtool.
t.test('a handle published after register: the counts appear at the next scrape', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { defaultMetrics: false } })
  t.equal(publishedHandle(), undefined, 'no handle at register')
  const skip = skipReasonIfAbsent()
  const renderings = async (): Promise<string[]> => [(await app.inject('/metrics')).body, await app.metrics!.registry.metrics()]
  for (const text of await renderings()) {
    t.notMatch(text, new RegExp(`^(${EXPORT_FAILED_NAME}|${DROPPED_NAME}) `, 'm'), 'no sample before')
    if (skip === null) t.same((await promtoolCheckMetrics(text)).lines, [], 'promtool check metrics: clean with headers and no sample')
  }

  publishHandle({ failedSpans: 7, droppedSpans: 3 })
  t.teardown(() => { delete (globalThis as Record<symbol, unknown>)[TELEMETRY_HANDLE_SYMBOL] })
  for (const text of await renderings()) {
    t.equal(failed(text), 7, `${EXPORT_FAILED_NAME} read from the handle`)
    t.equal(dropped(text), 3, `${DROPPED_NAME} read from the handle`)
    if (skip === null) t.same((await promtoolCheckMetrics(text)).lines, [], 'promtool check metrics: clean')
  }
})

// The mirror of the batch processor's queue (lib/sdk/queue-watch.ts) against the real
// BatchSpanProcessor of the installed SDK, on a scripted sequence whose drops are known: spans that
// are recorded but not sampled, a batch handed out when the queue reaches the batch size, the queue
// filling while the exporter holds the batch, an export answered, a forceFlush, the shutdown.
t.test('spans dropped by a full batch queue: counted exactly, by the public methods only', async (t) => {
  interface Sdk {
    BatchSpanProcessor: new (o: Record<string, unknown>) => SpanProcessor
    TracerProvider: new (o: Record<string, unknown>) => { getTracer: (name: string) => { startSpan: (name: string, o: object, c: typeof ROOT_CONTEXT) => { end: () => void } }, shutdown: () => Promise<void> }
  }
  const sdk = requireFromSdk<Sdk>('@opentelemetry/sdk-trace', 'the test')
  // The exporter holds every batch until the test answers it (a collector that takes its time).
  const held: Array<{ spans: number, done: (r: { code: number }) => void }> = []
  const exporter: SpanExporter = {
    export: (spans, done) => { held.push({ spans: spans.length, done }) },
    shutdown: async () => {}
  }
  // The SDK's own self-observability count of queue-full drops, where this SDK version has it
  // (an experimental option): a second opinion on the expected figures.
  let sdkDropped: number | undefined
  const meter = {
    createCounter: () => ({ add: (n: number, attrs: Record<string, unknown>) => { if (attrs['error.type'] === 'queue_full') sdkDropped = (sdkDropped ?? 0) + n } }),
    createUpDownCounter: () => ({ add: () => {} }),
    createObservableUpDownCounter: () => ({ addCallback: () => {}, removeCallback: () => {} })
  }
  const loss: SpanLoss = { failedSpans: 0, droppedSpans: 0 }
  const warnings: string[] = []
  const warn = (code: string): void => { warnings.push(code) }
  const processor = watchQueue(watchExports(exporter, 'the test', loss, warn), 10, (e, maxQueueSize) => new sdk.BatchSpanProcessor({
    exporter: e, maxQueueSize, maxExportBatchSize: 4, scheduledDelayMillis: 3_600_000, selfObsMeterProvider: { getMeter: () => meter }
  }), 'the test', loss, warn)
  // RECORD (1) for 'unsampled': ended and seen by onEnd, but not sampled, so never queued.
  const sampler = { shouldSample: (_c: unknown, _t: string, name: string) => ({ decision: name === 'unsampled' ? 1 : 2 }), toString: () => 'scripted' }
  const provider = new sdk.TracerProvider({ sampler, spanProcessors: [processor] })
  const tracer = provider.getTracer('queue-test')
  const end = (n: number, name = 'sampled'): void => { for (let i = 0; i < n; i++) tracer.startSpan(name, {}, ROOT_CONTEXT).end() }

  end(3, 'unsampled')
  end(4) // a full batch: handed to the exporter at once, the queue empty again
  t.same(held.map(h => h.spans), [4], 'the first batch handed out')
  end(12) // the exporter holds its batch: 10 queued, 2 dropped
  t.equal(loss.droppedSpans, 2, '2 dropped with the queue full (10 of 10), none of the unsampled')
  t.same(warnings, ['FST_OBSERVABILITY_SPANS_DROPPED', 'FST_OBSERVABILITY_SPANS_DROPPED'], 'each drop reported (the once-a-minute limit is lossWarning\'s)')
  held[0].done({ code: 0 }) // answered: the next batch of 4 goes out, 6 stay queued
  await until('the next batch handed out', () => held.length === 2)
  end(5) // 4 more fit, 1 dropped
  t.equal(loss.droppedSpans, 3, 'the queue had room for 4 after the batch left')
  await Promise.race([processor.forceFlush(), until('the flush handed out the queue', () => held.length === 5)])
  t.same(held.map(h => h.spans), [4, 4, 4, 4, 2], 'forceFlush hands out the 10 queued in batches of 4')
  for (const h of held.slice(1)) h.done({ code: 1 })
  t.equal(loss.failedSpans, 14, 'the 14 spans of the failed exports counted as failed')
  await provider.shutdown()
  end(2) // after shutdown the processor takes nothing: not a drop
  t.equal(loss.droppedSpans, 3, 'spans ended after the shutdown are not counted as dropped')
  t.equal(loss.droppedSpans, 4 + 12 + 5 - held.reduce((n, h) => n + h.spans, 0), 'dropped = sampled spans ended - handed to the exporter (nothing left queued)')
  if (sdkDropped !== undefined) t.equal(loss.droppedSpans, sdkDropped, `the SDK's own count agrees (${sdkDropped})`)
  else t.comment('this SDK version has no selfObsMeterProvider: no second opinion')
})

// A collector that accepts connections and never answers: the exporter waits for its batch, the
// queue fills, and the spans the processor then drops are counted at /metrics, exactly.
t.test('collector black-holed: spans dropped with the batch queue full counted at /metrics, exactly', async (t) => {
  const hole = await startOtlpReceiver({ blackHole: true })
  t.teardown(() => hole.close())
  const app = startNodeApp<{ port: number }>(t, ['--require', './dist/register.js', 'test/fixtures/story-app.cjs'], childEnv({
    OTEL_EXPORTER_OTLP_ENDPOINT: hole.url,
    OTEL_SERVICE_NAME: 'black-hole',
    // A queue of 10, batches of 5 handed out as soon as they are full, and no timer or timeout that
    // would end an export during the test: the collector's silence alone decides.
    OTEL_BSP_MAX_QUEUE_SIZE: '10',
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '5',
    OTEL_BSP_SCHEDULE_DELAY: '600000',
    OTEL_BSP_EXPORT_TIMEOUT: '600000',
    OTEL_EXPORTER_OTLP_TIMEOUT: '600000',
    STORY_DELAY_MS: '0'
  }))
  const { port } = await app.ready
  const REQUESTS = 40
  for (let i = 0; i < REQUESTS; i++) t.equal((await getText(port, '/api/slow')).status, 200)
  // One SERVER span a request: the 5th fills a batch, handed to the exporter (which waits for
  // ever); the next 10 fill the queue; the other 25 are dropped.
  let text = ''
  await until('25 spans counted as dropped', async () => dropped(text = (await getText(port, '/metrics')).body) >= 25)
  t.equal(dropped(text), REQUESTS - 5 - 10, `${DROPPED_NAME}: 40 ended - 5 handed to the exporter - 10 queued`)
  t.equal(failed(text), 0, 'no export failed: none has ended')
  t.match(text, `# TYPE ${DROPPED_NAME} counter`)
  const skip = skipReasonIfAbsent()
  if (skip === null) t.same((await promtoolCheckMetrics(text)).lines, [], 'promtool check metrics: clean')

  // The preload's shutdown hands the 10 queued spans out (and gives up on the answers after its
  // 5 s bound): every span ended is in the black hole or counted as dropped.
  t.same(await app.stop(), { code: null, signal: 'SIGTERM' })
  await hole.waitFor(spans => spans.length >= 15, 5000).catch(() => {})
  t.equal(hole.spans.length, 15, 'the first batch and the 10 queued reached the collector')
  t.equal(hole.spans.length + dropped(text), REQUESTS, 'received + dropped = every span ended')
  const warnings = app.stderr().split('\n').filter(l => l.includes('FST_OBSERVABILITY_'))
  t.equal(warnings.length, 1, `one warning:\n${app.stderr()}`)
  t.match(warnings[0], 'FST_OBSERVABILITY_SPANS_DROPPED')
  t.match(warnings[0], `the batch span processor's queue for ${hole.url}/v1/traces is full (maxQueueSize 10)`)
})
