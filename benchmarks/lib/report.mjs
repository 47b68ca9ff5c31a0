// Markdown rendering and target evaluation for a results object.
import { targetFor, VARIANTS } from '../throughput.mjs'
import { SCRAPE_TARGET_MS, SCRAPE_BLOCK_TARGET_MS, SCRAPE_BLOCK_WORST_TARGET_MS, SCRAPE_P99_RATIO_TARGET } from '../scrape.mjs'
import { evaluateInstructionTargets, renderInstructionsMarkdown } from './instructions.mjs'

const fmt = (x, d = 2) => (x == null ? '–' : Number(x).toFixed(d))
const fmtInt = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'))
const ratio = (x) => (x == null ? '' : ` (${Number(x).toFixed(2)}×)`)

/** Evaluate the project's performance targets against a results object. */
export function evaluateTargets (results) {
  const out = []
  const node = results.meta.machine.node
  // CPU-time targets from this run's throughput part, or else (an instructions-only run) from the
  // published CPU-time run it shows beside its figures.
  const v = results.throughput?.variants ?? results.cpuReference?.variants ?? {}
  const cpuFrom = results.throughput ? '' : results.cpuReference ? ` (CPU time, ${results.cpuReference.file})` : ''
  const eff = (n) => v[n]?.ratios?.efficiency ?? null
  for (const name of ['plugin-metrics', 'plugin-nosdk', 'plugin-full-sdk', 'plugin-full-sdk-http']) {
    const target = targetFor(name, node)
    if (target == null || !v[name]) continue
    const value = eff(name)
    out.push({ id: `${name}.efficiency`, description: `${name} efficiency ≥ ${target}${cpuFrom}`, target, value, met: value == null ? null : value >= target })
    const peer = VARIANTS.find((x) => x.name === name)?.peer
    if (peer && v[peer]) {
      const pv = eff(peer)
      out.push({ id: `${name}.vs.${peer}`, description: `${name} ahead of ${peer}${cpuFrom}`, target: pv, value, met: value == null || pv == null ? null : value > pv })
    }
  }
  const s = results.scrape?.subjects?.plugin
  if (s) {
    for (const f of ['prometheus', 'openmetrics']) {
      const value = s.ok ? s.formats?.[f]?.medianMs ?? null : null
      out.push({
        id: `scrape.${f}`,
        description: `${results.scrape.routes}-route scrape over HTTP (${f}) < ${SCRAPE_TARGET_MS} ms`,
        target: SCRAPE_TARGET_MS,
        value,
        met: value == null ? null : value < SCRAPE_TARGET_MS && (f !== 'openmetrics' || s.formats[f].negotiated)
      })
      const render = s.ok ? s.formats?.[f]?.renderMedianMs ?? null : null
      if (render != null) {
        out.push({ id: `scrape.${f}.render`, description: `${results.scrape.routes}-route render only (${f}, app.metrics.render) < ${SCRAPE_TARGET_MS} ms`, target: SCRAPE_TARGET_MS, value: render, met: render < SCRAPE_TARGET_MS })
      }
      // What a scrape does to the server: its longest event-loop stall (median over scrapes, worst)
      // and the p99 of a light load's requests during scrapes ÷ between scrapes.
      const x = s.ok ? s.formats?.[f] : null
      const stalls = [
        [`scrape.${f}.block`, `scrape (${f}) stalls the event loop ≤ ${SCRAPE_BLOCK_TARGET_MS} ms (median per-scrape max)`, SCRAPE_BLOCK_TARGET_MS, x?.blockMedianMs],
        [`scrape.${f}.blockWorst`, `scrape (${f}) stalls the event loop ≤ ${SCRAPE_BLOCK_WORST_TARGET_MS} ms (worst scrape)`, SCRAPE_BLOCK_WORST_TARGET_MS, x?.blockMaxMs],
        [`scrape.${f}.p99Ratio`, `light load p99 during ÷ between scrapes (${f}) ≤ ${SCRAPE_P99_RATIO_TARGET}`, SCRAPE_P99_RATIO_TARGET, x?.light?.p99Ratio]
      ]
      for (const [id, description, target, value] of stalls) {
        if (value === undefined) continue
        out.push({ id, description, target, value, met: value == null ? null : value <= target })
      }
    }
  }
  const m = results.memory?.subjects?.plugin
  if (m?.ok) {
    out.push({ id: 'memory.series', description: 'HTTP series unchanged by random unmatched paths/methods', target: 0, value: m.httpSeriesGrowth, met: m.httpSeriesGrowth === 0 })
  }
  // Judged on instructions per request (the repeatable figure), beside the CPU-time ones above.
  if (results.instructions) out.unshift(...evaluateInstructionTargets(results.instructions))
  return out
}

export function throughputTable (results) {
  const t = results.throughput
  if (!t) return ''
  const rows = [
    '| Variant | CPU µs/req | Efficiency | req/s | p50 ms | p99 ms | Peak RSS MB | Spans/req | Target |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |'
  ]
  for (const [name, v] of Object.entries(t.variants)) {
    if (!v.median) {
      rows.push(`| \`${name}\` | ${v.status}: ${String(v.error ?? '').replace(/\|/g, '\\|').slice(0, 100)} | | | | | | | |`)
      continue
    }
    const m = v.median
    const r = v.ratios ?? {}
    const target = v.target == null ? '' : `≥ ${v.target} ${r.efficiency >= v.target ? '✅' : '❌'}`
    rows.push(`| \`${name}\` | ${fmt(m.cpuPerReqUs)} | **${fmt(r.efficiency)}** | ${fmtInt(m.rps)}${ratio(r.rps)} | ${fmt(m.latencyP50Ms, 3)}${ratio(r.latencyP50)} | ${fmt(m.latencyP99Ms, 3)}${ratio(r.latencyP99)} | ${fmt(m.peakRssMB, 1)}${ratio(r.peakRss)} | ${m.spansPerReq == null ? '–' : fmt(m.spansPerReq, 2)} | ${target} |`)
  }
  return rows.join('\n')
}

export function scrapeTable (results) {
  const s = results.scrape
  if (!s) return ''
  const rows = [
    '| Subject | Format | Scrape over HTTP, median ms | p90 ms | app.inject median ms | Render only ms | Same bytes from a plain route ms | Samples | Size | Served as |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |'
  ]
  for (const [name, x] of Object.entries(s.subjects)) {
    if (!x.ok) { rows.push(`| ${name} | failed: ${String(x.error).slice(0, 100)} | | | | | | | | |`); continue }
    for (const [f, y] of Object.entries(x.formats)) {
      rows.push(`| ${name} | ${f} | ${fmt(y.medianMs)} | ${fmt(y.p90Ms)} | ${fmt(y.injectMedianMs)} | ${fmt(y.renderMedianMs)} | ${fmt(y.transportBaselineMs)} | ${fmtInt(y.samples)} | ${(y.bytes / 2 ** 20).toFixed(2)} MiB | \`${y.contentType.split(';')[0]}\`${y.negotiated ? '' : ' (not negotiated)'} |`)
    }
  }
  return rows.join('\n')
}

export function scrapeStallTable (results) {
  const s = results.scrape
  if (!s) return ''
  const rows = [
    '| Subject | Format | Loop stall per scrape, median ms | worst ms | worst without a GC in it, ms (scrapes with a GC) | CPU-time stall, median ms | Stall unloaded, median ms | Between scrapes, median / worst ms | Longest GC between scrapes, ms | Plain route, median ms | Light p99 during ms | Light p99 between ms | Ratio | Light p99 during GC-free scrapes, ms (ratio) | Requests during / between |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const [name, x] of Object.entries(s.subjects)) {
    if (!x.ok) continue
    for (const [f, y] of Object.entries(x.formats)) {
      if (!y.light) continue
      const noGc = (y.gcPerScrape ?? []).filter((g) => (g.gcTotalMs ?? g.gcMs) === 0)
      const withGc = (y.gcPerScrape ?? []).length - noGc.length
      const noGcWorst = y.gcPerScrape ? `${noGc.length ? fmt(Math.max(...noGc.map((g) => g.blockMs))) : '–'} (${withGc} of ${y.gcPerScrape.length})` : '–'
      rows.push(`| ${name} | ${f} | ${fmt(y.blockMedianMs)} | ${fmt(y.blockMaxMs)} | ${noGcWorst} | ${fmt(y.blockCpuMedianMs)} | ${fmt(y.blockUnloadedMedianMs)} | ${fmt(y.blockBetweenScrapesMedianMs)}${y.blockBetweenScrapesMaxMs == null ? '' : ` / ${fmt(y.blockBetweenScrapesMaxMs)}`} | ${y.gcBetweenScrapesMaxMs == null ? '–' : fmt(y.gcBetweenScrapesMaxMs)} | ${fmt(y.transportBaselineBlockMedianMs)} | ${fmt(y.light.during.p99Ms)} | ${fmt(y.light.between.p99Ms)} | ${fmt(y.light.p99Ratio)} | ${y.light.duringNoGc?.p99Ms == null ? '–' : `${fmt(y.light.duringNoGc.p99Ms)} (${fmt(y.light.duringNoGc.p99Ms / y.light.between.p99Ms)})`} | ${fmtInt(y.light.during.requests)} / ${fmtInt(y.light.between.requests)} |`)
    }
  }
  return rows.length > 2 ? rows.join('\n') : ''
}

export function memoryTable (results) {
  const m = results.memory
  if (!m) return ''
  const rows = [
    '| Subject | Series fresh → after warm-up → after | HTTP series growth | Heap MB before → after | RSS MB before → after |',
    '| --- | --- | ---: | --- | --- |'
  ]
  for (const [name, x] of Object.entries(m.subjects)) {
    if (!x.ok) { rows.push(`| ${name} | failed: ${String(x.error).slice(0, 100)} | | | |`); continue }
    rows.push(`| ${name} | ${fmtInt(x.fresh.series)} → ${fmtInt(x.before.series)} → ${fmtInt(x.after.series)} | ${fmtInt(x.httpSeriesGrowth)} | ${fmt(x.before.heapUsedMB, 1)} → ${fmt(x.after.heapUsedMB, 1)} | ${fmt(x.before.rssMB, 0)} → ${fmt(x.after.rssMB, 0)} |`)
  }
  return rows.join('\n')
}

export function targetsTable (results) {
  const rows = ['| Target | Value | Met |', '| --- | ---: | :---: |']
  for (const t of results.targets ?? []) {
    rows.push(`| ${t.description} | ${t.value == null ? '–' : t.value}${t.id.includes('.vs.') && t.target != null ? ` vs ${t.target}` : ''} | ${t.met == null ? '–' : t.met ? '✅' : '❌'} |`)
  }
  return rows.join('\n')
}

export function renderMarkdown (results) {
  const { meta, options } = results
  const pk = meta.packages
  const lines = []
  lines.push(`### Node ${meta.machine.node} — ${meta.date.slice(0, 10)}`)
  lines.push('')
  lines.push(`- Machine: ${meta.machine.cpuModel}, ${meta.machine.cores} cores, ${meta.machine.memoryGiB} GiB, ${meta.machine.platform}; load average at start ${meta.machine.loadavg.join(' / ')}`)
  lines.push(`- Node ${meta.machine.node} (V8 ${meta.machine.v8}); fastify ${pk.fastify}, prom-client ${pk['prom-client']}, fastify-metrics ${pk['fastify-metrics']}, @fastify/otel ${pk['@fastify/otel']}, @opentelemetry/sdk-node ${pk['@opentelemetry/sdk-node']}, sdk-trace-base ${pk['@opentelemetry/sdk-trace-base']}, instrumentation-http ${pk['@opentelemetry/instrumentation-http']}, autocannon ${pk.autocannon}; fastify-observability ${pk['fastify-observability']} @ ${meta.gitCommit ?? '?'}`)
  lines.push(`- Command: \`${meta.command}\``)
  if (results.throughput) {
    const t = results.throughput
    lines.push(`- Throughput: ${t.options.workload}; ${options.connections} connections, ${options.warmup} s warm-up + ${options.duration} s measured, ${options.rounds} round(s), medians; pinning: ${t.pinning.enabled ? `server \`${t.pinning.server}\`, autocannon \`${t.pinning.load}\`` : `none (${t.pinning.reason})`}`)
  }
  lines.push('')
  if (results.throughput) {
    lines.push('Efficiency = bare CPU µs/req ÷ variant CPU µs/req (higher is better, 1.00 = free). Ratios in brackets are to `bare` in the same run.')
    lines.push('')
    lines.push(throughputTable(results))
    lines.push('')
    const tv = results.throughput.variants
    const floor = tv['span-hook']?.median
    if (floor && tv.bare?.median) {
      const extra = (n) => (tv[n]?.median ? `\`${n}\` +${fmt(tv[n].median.cpuPerReqUs - floor.cpuPerReqUs)}` : null)
      const items = ['plugin-full-sdk', 'plugin-full-sdk-http', 'fastify-otel'].map(extra).filter(Boolean)
      lines.push(`Tracing floor: \`span-hook\` (a bare SDK span per request) costs ${fmt(floor.cpuPerReqUs - tv.bare.median.cpuPerReqUs)} µs/req over bare (efficiency ${fmt(tv['span-hook'].ratios?.efficiency)}); over that floor, in µs/req: ${items.join(', ')}.`)
      lines.push('')
    }
    const left = Object.entries(results.throughput.variants)
      .filter(([, v]) => v.roundsUsed && v.roundsUsed.length < v.roundsOk)
      .map(([n, v]) => `\`${n}\` (used rounds ${v.roundsUsed.join(', ')})`)
    if (left.length) {
      lines.push(`Rounds still disturbed by other processes after the retries, left out of the medians: ${left.join('; ')}.`)
      lines.push('')
    }
  }
  if (results.instructions) {
    lines.push(renderInstructionsMarkdown(results))
  }
  if (results.scrape) {
    lines.push(`Scrape of ${results.scrape.routes} routes × 5 status codes × 2 methods (${fmtInt(results.scrape.seriesTarget)} label sets), ${results.scrape.iterations} scrapes over HTTP on 127.0.0.1 (50 requests touch random series before each), median and p90; for reference the median through \`app.inject\` (which copies the body into a string), of rendering alone, and of a plain route sending the same bytes over HTTP:`)
    lines.push('')
    lines.push(scrapeTable(results))
    lines.push('')
    const stalls = scrapeStallTable(results)
    if (stalls) {
      lines.push(`What the same scrapes do to the server: the longest gap between ticks of a 1 ms timer in the server (\`monitorEventLoopDelay\`, so ≥ ~1 ms), per scrape, while another process sends ${fmtInt(results.scrape.lightRate)} small requests/s; median over the scrapes and the worst; the same counted in CPU time (the main thread's where Node has \`process.threadCpuUsage\`, 23.9+, else the process's, which includes GC helper threads): the server's own work, not another process's turn on the core; without the light load; over ${results.scrape.iterations} 200 ms pauses between scrapes (the machine's own noise); for a plain route sending the same bytes; and the p99 latency of the light load's requests (from their scheduled send time) that overlapped a scrape vs those between scrapes:`)
      lines.push('')
      lines.push(stalls)
      lines.push('')
    }
  }
  if (results.memory) {
    lines.push(`Memory after ${fmtInt(results.memory.requests)} requests to random unmatched paths with random methods (after GC):`)
    lines.push('')
    lines.push(memoryTable(results))
    lines.push('')
  }
  if (results.targets?.length) {
    lines.push('Targets:')
    lines.push('')
    lines.push(targetsTable(results))
    lines.push('')
  }
  return lines.join('\n')
}
