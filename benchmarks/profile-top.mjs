// Summarise V8 .cpuprofile files written by `npm run bench -- --cpu-prof DIR`
// (each covers one measured window and records the requests served in it):
// top frames by self time in µs per request, self time per package/file, and
// with --base, which frames account for the extra CPU per request over the
// base profile (normally `bare`).
//
//   node benchmarks/profile-top.mjs variant.cpuprofile [...] [--base bare.cpuprofile] [--top 20]
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { ROOT_DIR } from './lib/common.mjs'

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)'])

function owner (url) {
  if (!url) return '(native/V8)'
  const u = url.replace(/^file:\/\//, '')
  const nm = u.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = u.slice(nm + 13).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  if (u.startsWith('node:')) return 'node core'
  if (u.startsWith(ROOT_DIR)) return path.relative(ROOT_DIR, u)
  return u
}

/** Self time per frame and per owner, in µs per request (or % of busy time without a request count). */
export function summarise (profile) {
  const { nodes, samples, timeDeltas } = profile
  const byId = new Map(nodes.map((n) => [n.id, n]))
  const selfById = new Map()
  for (let i = 0; i < samples.length; i++) selfById.set(samples[i], (selfById.get(samples[i]) ?? 0) + (timeDeltas[i] ?? 0))
  const frames = new Map()
  const owners = new Map()
  let busy = 0
  for (const [id, t] of selfById) {
    const cf = byId.get(id).callFrame
    const name = cf.functionName || '(anonymous)'
    if (name === '(idle)') continue
    busy += t
    const key = SPECIAL.has(name) ? name : `${name} ${cf.url ? `${owner(cf.url)}:${cf.lineNumber + 1}` : '(native)'}`
    frames.set(key, (frames.get(key) ?? 0) + t)
    const o = SPECIAL.has(name) ? name : owner(cf.url)
    owners.set(o, (owners.get(o) ?? 0) + t)
  }
  const requests = profile.$bench?.requests ?? null
  const per = (t) => (requests ? t / requests : (t / busy) * 100)
  return {
    variant: profile.$bench?.variant ?? null,
    requests,
    unit: requests ? 'µs/req' : '% of busy',
    busyPerReq: requests ? busy / requests : null,
    frames: new Map([...frames].map(([k, t]) => [k, per(t)])),
    owners: new Map([...owners].map(([k, t]) => [k, per(t)]))
  }
}

const f2 = (x) => x.toFixed(2).padStart(7)
const sorted = (m, top) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top)

export function report (file, { base, top = 20 } = {}) {
  const s = summarise(JSON.parse(readFileSync(file, 'utf8')))
  const out = [`## ${s.variant ?? path.basename(file)}${s.requests ? ` — ${s.requests} requests, ${s.busyPerReq.toFixed(2)} µs/req sampled` : ''}`, '']
  out.push(`Top frames by self time (${s.unit}):`)
  for (const [k, v] of sorted(s.frames, top)) out.push(`  ${f2(v)}  ${k}`)
  out.push('', `Self time by package / file (${s.unit}):`)
  for (const [k, v] of sorted(s.owners, Math.min(top, 15))) out.push(`  ${f2(v)}  ${k}`)
  if (base && s.requests) {
    const b = summarise(JSON.parse(readFileSync(base, 'utf8')))
    if (b.requests) {
      out.push('', `Extra over ${b.variant ?? 'base'} (${(s.busyPerReq - b.busyPerReq).toFixed(2)} µs/req sampled), by frame:`)
      const d = new Map()
      for (const [k, v] of s.frames) d.set(k, v - (b.frames.get(k) ?? 0))
      for (const [k, v] of sorted(d, top)) out.push(`  ${f2(v)}  ${k}`)
      out.push('', 'by package / file:')
      const o = new Map()
      for (const [k, v] of s.owners) o.set(k, v - (b.owners.get(k) ?? 0))
      for (const [k, v] of sorted(o, Math.min(top, 12))) out.push(`  ${f2(v)}  ${k}`)
    }
  }
  return out.join('\n') + '\n'
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2)
  let base
  let top = 20
  const files = []
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--base') base = args[++i]
    else if (args[i] === '--top') top = Number(args[++i])
    else files.push(args[i])
  }
  for (const f of files) console.log(report(f, { base, top }))
}
