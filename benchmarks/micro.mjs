// Instructions per operation of one step of the per-request path, in process, without a server:
// `node benchmarks/micro.mjs [--cases a,b] [--counts 20000,100000]`.
//
// The server variants (benchmarks/run.mjs --instructions) move by ~15,000 instructions per request
// between rounds once the OpenTelemetry SDK is in (when its garbage collections fall), which hides
// a step that costs a few hundred. Here each case runs one step in a loop under
// `valgrind --tool=cachegrind --cache-sim=no`, for two iteration counts: the marginal
// (I(n2) - I(n1)) / (n2 - n1) is the step's cost, start-up and warm-up cancelling out. Cases come in
// pairs that differ only in the thing measured (exemplars on/off, log ids on/off), so the pair's
// difference is that thing's cost on the request path; the span cases set the plugin's tracing
// step beside the SDK doing the same work itself (issue #9's floors). A step is not a request:
// the loop has no asynchronous step, so what the context manager costs those is not here. Built
// code (dist/) is measured: build first.
//
// `--check`: run every case briefly without valgrind and print what it did (used by the tests, to
// show each case measures what its name says).
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseCachegrindOut, marginalPerRequest } from './lib/instructions.mjs'

const require = createRequire(import.meta.url)
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const NODE_ARGS = ['--single-threaded', '--predictable-gc-schedule', '--random-seed=1', '--hash-seed=1']
const WARMUP = 5000

// A sampled span as the record step and the announce step see it: only spanContext() is read.
const SC = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 }
const SPAN = { spanContext: () => SC, isRecording: () => true }

/** The record step of a GET on one route, durations spread over the buckets. */
function recordCase (exemplars, nativeHistograms = false) {
  const { HttpMetrics } = require(path.join(ROOT, 'dist/metrics.js'))
  const { resolveOptions } = require(path.join(ROOT, 'dist/options.js'))
  const options = resolveOptions({ metrics: { defaultMetrics: false, exemplars, nativeHistograms } }).metrics
  const series = new HttpMetrics(options).forRoute('/api/users/:id').forMethod('GET')
  const request = {}
  const reply = { statusCode: 200 }
  // performance.now() readings 3 ms to 12 s after a start at 1000 ms.
  const ends = [3, 8, 20, 40, 60, 90, 200, 400, 600, 900, 2000, 4000, 6000, 9000, 12000].map((ms) => 1000 + ms)
  return {
    step (i) {
      series.begin()
      series.end(true, request, reply, 1000, ends[i % ends.length], SPAN)
    },
    report: () => {
      const s = series.forStatus(200)
      return { count: s.count, exemplars: (s.exemplars ?? []).filter((e) => e !== null).length, nativeBuckets: s.native?.bucketCount ?? 0 }
    }
  }
}

/**
 * What a traced request's logging does around the announce step: Fastify's per-request child
 * logger, then one line (`request completed`) at info; with `ids`, the announce step first.
 * `level` 'warn' filters the line out; 'info' writes it (to /dev/null, synchronously).
 */
function logCase (level, ids, bindings = false) {
  const { createAnnounce } = require(path.join(ROOT, 'dist/trace-identity.js'))
  const pino = createRequire(require.resolve('fastify'))('pino')
  const root = pino({ level }, pino.destination({ dest: '/dev/null', sync: true }))
  const announce = ids ? createAnnounce(null, true, root) : null
  const reply = { statusCode: 200 }
  let lines = 0
  let last = null
  return {
    step (i) {
      const log = last = root.child({ reqId: 'req-' + (i & 1023) })
      const request = { log }
      if (announce !== null) announce(SPAN, request, reply)
      if (bindings) log.setBindings({ trace_id: SC.traceId, span_id: SC.spanId, trace_flags: '01' })
      if (log.isLevelEnabled('info')) lines++
      log.info({ res: reply, responseTime: 1.5 }, 'request completed')
    },
    // The fields the last line got from the plugin's mixin (none without ids).
    report: () => ({ lines, fields: Object.keys(last[pino.symbols.mixinSym]?.({}, 30, last) ?? {}) })
  }
}

/**
 * One traced request's span work with the real SDK, set up as NodeSDK does it (sdk-trace-node's
 * NodeTracerProvider, registered: the AsyncLocalStorage context manager, the W3C trace-context and
 * baggage propagators), the sampler keeping every span or none (`sampled` false:
 * ParentBased(TraceIdRatioBased(0)), as the sampled-out server variant). The processor does
 * nothing, the same in every case: what is compared is the span's life, not its export. Every
 * case loads the plugin's modules, so each runs on the same heap. `kind`:
 * - 'span-hook': the floor server variant span-hook: start a SERVER span, run in its context, end;
 * - 'span-semconv': ref-span-attributes: W3C extract, the route's name, every attribute the plugin
 *   sets, with the values it reads from the same request objects (the Host header's address and
 *   port as constants: the plugin parses a server's one Host once);
 * - 'context-with': the sampled-out floor: run in a new context, no span;
 * - 'plugin': the plugin's own Tracing.start / end (lib/tracing.ts), defaults, around the same run.
 * Not here: the response's 'close' listener every variant adds (see ref-close-listener), the
 * asynchronous steps of a real request, each of which the context manager pays for, and
 * Fastify's getters (request.ip, .host, .protocol): the request objects hold plain values.
 */
function spanCase (kind, sampled = true) {
  const api = require('@opentelemetry/api')
  const { NodeTracerProvider, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = require('@opentelemetry/sdk-trace-node')
  const { Tracing, RouteTracing } = require(path.join(ROOT, 'dist/tracing.js'))
  const { resolveOptions } = require(path.join(ROOT, 'dist/options.js'))
  const tracingOptions = resolveOptions({ metrics: false, tracing: {} }).tracing
  let ended = 0
  let last = null
  const processor = { onStart () {}, onEnd (span) { ended++; last = span }, forceFlush: async () => {}, shutdown: async () => {} }
  const sampler = sampled ? new AlwaysOnSampler() : new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) })
  // --check runs every case in one process: each case sets its own globals.
  api.trace.disable(); api.context.disable(); api.propagation.disable()
  new NodeTracerProvider({ sampler, spanProcessors: [processor] }).register()
  const { context, propagation, trace, SpanKind } = api
  // A thousand requests as Fastify hands them over: the fields the plugin reads, plain values.
  const requests = Array.from({ length: 1000 }, (_, i) => ({
    method: 'GET',
    url: `/api/users/${i}`,
    headers: { host: '127.0.0.1:3000', 'user-agent': 'autocannon', connection: 'keep-alive' },
    protocol: 'http',
    host: '127.0.0.1:3000',
    ip: '127.0.0.1',
    raw: { httpVersion: '1.1' },
    log: {}
  }))
  const reply = { statusCode: 200 }
  let inside = 0
  // Steps whose run saw a span (recording or not) in the active context.
  const run = () => { if (trace.getSpan(context.active()) !== undefined) inside++ }
  // The last ended span (of request 999): the floor and the plugin must end the same one.
  const report = () => ({ ended, inside, name: last?.name, kind: last?.kind, attributes: Object.fromEntries(Object.entries(last?.attributes ?? {}).sort()) })
  if (kind === 'plugin') {
    const tracing = new Tracing(tracingOptions, {})
    const route = new RouteTracing('/api/users/:id')
    return {
      step (i) {
        const request = requests[i % 1000]
        const rs = tracing.start(request, reply, route)
        context.with(rs.ctx, run)
        tracing.end(rs, reply)
      },
      report
    }
  }
  const tracer = trace.getTracer('micro')
  if (kind === 'context-with') {
    const key = api.createContextKey('micro')
    return { step () { context.with(context.active().setValue(key, 1), run) }, report }
  }
  if (kind === 'span-hook') {
    return {
      step () {
        const span = tracer.startSpan('GET', { kind: SpanKind.SERVER })
        context.with(trace.setSpan(context.active(), span), run)
        span.end()
      },
      report
    }
  }
  // span-semconv. The start options made once, as the plugin makes them once per route and method.
  const options = { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'http.route': '/api/users/:id' } }
  return {
    step (i) {
      const request = requests[i % 1000]
      const parent = propagation.extract(context.active(), request.headers)
      const span = tracer.startSpan('GET /api/users/:id', options, parent)
      if (span.isRecording()) {
        span.setAttribute('url.path', request.url)
        span.setAttribute('url.scheme', request.protocol)
        span.setAttribute('server.address', '127.0.0.1')
        span.setAttribute('server.port', 3000)
        span.setAttribute('client.address', request.ip)
        span.setAttribute('user_agent.original', request.headers['user-agent'])
        span.setAttribute('network.protocol.version', request.raw.httpVersion)
      }
      context.with(trace.setSpan(parent, span), run)
      span.setAttribute('http.response.status_code', reply.statusCode)
      span.end()
    },
    report
  }
}

export const CASES = {
  record: { make: () => recordCase(false), description: 'record step, sampled span, metrics.exemplars false' },
  'record-exemplar': { make: () => recordCase(true), description: 'record step, sampled span, exemplars on (the default with tracing)' },
  'record-native': { make: () => recordCase(false, true), description: 'as record, with metrics.nativeHistograms on (schema 3): the difference is the native bucket step (issue #14)' },
  'log-filtered': { make: () => logCase('warn', false), description: "child logger + one info line filtered out by level 'warn'" },
  'log-filtered-ids': { make: () => logCase('warn', true), description: 'as log-filtered, with the log ids (tracing.logIds)' },
  'log-written': { make: () => logCase('info', false), description: "child logger + one 'request completed' line written (level info, /dev/null)" },
  'log-written-ids': { make: () => logCase('info', true), description: 'as log-written, with the log ids on the line' },
  // The mechanism not chosen, for comparison: pino's setBindings serializes the fields at once.
  'log-filtered-bindings': { make: () => logCase('warn', false, true), description: 'as log-filtered, the ids set with setBindings instead of a mixin' },
  'log-written-bindings': { make: () => logCase('info', false, true), description: 'as log-written, the ids set with setBindings instead of a mixin' },
  // Issue #9's tracing floors, judged in process (the server variants with the SDK move ±15,000).
  'span-hook': { make: () => spanCase('span-hook'), description: 'floor: a bare SDK SERVER span, run in its context, ended (as the span-hook server)' },
  'span-semconv': { make: () => spanCase('span-semconv'), description: 'span-hook + W3C extract, route name and every semconv attribute the plugin sets' },
  'span-plugin': { make: () => spanCase('plugin'), description: "the plugin's Tracing.start / end (defaults) around the same run" },
  'context-with': { make: () => spanCase('context-with', false), description: 'sampled-out floor: run in a new context, no span' },
  'dropped-semconv': { make: () => spanCase('span-semconv', false), description: 'span-semconv with a sampler that drops every span (the SDK\'s own dropped span + extract)' },
  'dropped-plugin': { make: () => spanCase('plugin', false), description: 'span-plugin with a sampler that drops every span' }
}

/** In the child: warm up, then run `n` steps, and print what the case did. */
function runCase (name, n) {
  const c = CASES[name].make()
  for (let i = 0; i < WARMUP; i++) c.step(i)
  for (let i = 0; i < n; i++) c.step(i)
  process.stdout.write(JSON.stringify({ case: name, n, ...c.report() }) + '\n')
}

function countOnce (name, n, dir) {
  const out = path.join(dir, `${name}-${n}.cgout`)
  const r = spawnSync('valgrind', ['--tool=cachegrind', '--cache-sim=no', `--cachegrind-out-file=${out}`, '--log-file=/dev/null',
    process.execPath, ...NODE_ARGS, fileURLToPath(import.meta.url), '--case', name, String(n)], { encoding: 'utf8', cwd: ROOT })
  if (r.status !== 0) throw new Error(`${name} n=${n}: exit ${r.status}\n${r.stderr}`)
  const { events, compilerIr } = parseCachegrindOut(readFileSync(out, 'utf8'))
  return { requests: n, instructions: events.Ir - compilerIr }
}

function main (argv) {
  const arg = (k, d) => { const i = argv.indexOf(k); return i === -1 ? d : argv[i + 1] }
  if (argv[0] === '--case') return runCase(argv[1], Number(argv[2]))
  const names = arg('--cases', Object.keys(CASES).join(',')).split(',')
  for (const n of names) if (!(n in CASES)) throw new Error(`unknown case ${n}; cases: ${Object.keys(CASES).join(', ')}`)
  if (argv.includes('--check')) {
    for (const n of names) runCase(n, 1000)
    return
  }
  const [n1, n2] = arg('--counts', '20000,100000').split(',').map(Number)
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-micro-'))
  try {
    console.log(`node ${process.version}, ${NODE_ARGS.join(' ')}, counts ${n1} and ${n2}, instructions per step (JIT compilers left out)\n`)
    console.log('| case | instructions/step | what |\n| --- | ---: | --- |')
    for (const n of names) {
      const { perRequest } = marginalPerRequest(countOnce(n, n1, dir), countOnce(n, n2, dir))
      console.log(`| \`${n}\` | ${Math.round(perRequest).toLocaleString('en-US')} | ${CASES[n].description} |`)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

main(process.argv.slice(2))
