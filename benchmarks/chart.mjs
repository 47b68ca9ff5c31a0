// Bar chart (SVG, no dependencies) of the efficiency ratios in one or more
// results files: one group of bars per variant, one bar per file (Node version).
//
//   node benchmarks/chart.mjs [results.json ...] [--out file.svg]
//
// Without files it uses benchmarks/results/node*.json when there are any,
// else benchmarks/results/latest.json.
import { readFileSync, writeFileSync, readdirSync, existsSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { BENCH_DIR } from './lib/common.mjs'

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])

const PALETTE = [
  { plugin: '#2563eb', peer: '#9ca3af', reference: '#374151' },
  { plugin: '#93c5fd', peer: '#d1d5db', reference: '#6b7280' },
  { plugin: '#1e3a8a', peer: '#6b7280', reference: '#111827' }
]

export function renderChart (runs) {
  const names = []
  for (const r of runs) for (const n of Object.keys(r.throughput?.variants ?? {})) if (!names.includes(n)) names.push(n)
  const series = runs.map((r) => ({
    label: `Node ${r.meta.machine.node}`,
    variants: r.throughput?.variants ?? {}
  }))
  const barH = 16
  const gap = 4
  const groupGap = 14
  const left = 170
  const plotW = 520
  const right = 50
  const top = 56
  const groupH = series.length * (barH + gap) - gap
  const height = top + names.length * (groupH + groupGap) + 48
  const width = left + plotW + right
  let max = 1.1
  for (const s of series) for (const v of Object.values(s.variants)) if (v.ratios?.efficiency > max) max = v.ratios.efficiency
  max = Math.ceil(max * 5 - 1e-9) / 5
  const x = (val) => left + (val / max) * plotW

  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`)
  out.push('<rect width="100%" height="100%" fill="#ffffff"/>')
  out.push('<text x="12" y="20" font-size="14" font-weight="600">Efficiency = bare CPU per request ÷ variant CPU per request (higher is better, 1.0 = free)</text>')
  // legend
  let lx = 12
  series.forEach((s, i) => {
    const c = PALETTE[i % PALETTE.length]
    out.push(`<rect x="${lx}" y="32" width="12" height="12" fill="${c.plugin}"/><rect x="${lx + 13}" y="32" width="12" height="12" fill="${c.peer}"/>`)
    out.push(`<text x="${lx + 30}" y="42">${esc(s.label)}</text>`)
    lx += 150
  })
  out.push(`<text x="${lx}" y="42" fill="#6b7280">blue: this plugin · grey: peers · dark: bare Fastify · red tick: target</text>`)
  // grid
  for (let g = 0; g <= max + 1e-9; g += 0.2) {
    const gx = x(g)
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${height - 36}" stroke="${Math.abs(g - 1) < 1e-9 ? '#111827' : '#e5e7eb'}" stroke-width="1"${Math.abs(g - 1) < 1e-9 ? ' stroke-dasharray="4 3"' : ''}/>`)
    out.push(`<text x="${gx}" y="${height - 20}" text-anchor="middle" fill="#6b7280">${g.toFixed(1)}</text>`)
  }
  names.forEach((name, gi) => {
    const gy = top + gi * (groupH + groupGap)
    out.push(`<text x="${left - 8}" y="${gy + groupH / 2 + 4}" text-anchor="end">${esc(name)}</text>`)
    series.forEach((s, si) => {
      const v = s.variants[name]
      const y = gy + si * (barH + gap)
      const c = PALETTE[si % PALETTE.length]
      if (!v || !v.ratios) {
        out.push(`<text x="${left + 4}" y="${y + barH - 4}" fill="#b91c1c">${esc(v ? v.status : 'not run')}</text>`)
        return
      }
      const e = v.ratios.efficiency
      const fill = c[v.kind] ?? c.peer
      out.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(e) - left).toFixed(1)}" height="${barH}" fill="${fill}"><title>${esc(`${name} on ${s.label}: ${e} (${v.median.cpuPerReqUs} µs CPU/req)`)}</title></rect>`)
      // Keep the value clear of the target tick.
      const labelX = v.target != null && Math.abs(x(e) - x(v.target)) < 34 ? Math.max(x(e), x(v.target)) + 5 : x(e) + 4
      out.push(`<text x="${labelX.toFixed(1)}" y="${y + barH - 4}">${e.toFixed(2)}</text>`)
      if (v.target != null) {
        const tx = x(v.target)
        out.push(`<line x1="${tx}" y1="${y - 1}" x2="${tx}" y2="${y + barH + 1}" stroke="#dc2626" stroke-width="2"><title>target ${v.target}</title></line>`)
      }
    })
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}

export function defaultInputs (dir = path.join(BENCH_DIR, 'results')) {
  const perNode = existsSync(dir) ? readdirSync(dir).filter((f) => /^node\d+\.json$/.test(f)).sort((a, b) => parseInt(a.slice(4)) - parseInt(b.slice(4))) : []
  if (perNode.length) return perNode.map((f) => path.join(dir, f))
  return [path.join(dir, 'latest.json')]
}

export function writeChart (inputs, outFile) {
  const runs = inputs.map((f) => JSON.parse(readFileSync(f, 'utf8')))
  writeFileSync(outFile, renderChart(runs))
  return outFile
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2)
  let out = path.join(BENCH_DIR, 'results', 'efficiency.svg')
  const files = []
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--out') out = path.resolve(args[++i])
    else files.push(path.resolve(args[i]))
  }
  const f = writeChart(files.length ? files : defaultInputs(), out)
  console.error(`wrote ${path.relative(process.cwd(), f)}`)
}
