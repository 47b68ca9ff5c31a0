// Where two variants' instructions per request differ, function by function.
//
//   BENCH_INSTR_KEEP_DIR=/tmp/cg npm run bench -- --instructions --variants ref-onrequest --rounds 1
//   node benchmarks/instr-diff.mjs /tmp/cg bare ref-onrequest [--round 1] [--top 25]
//
// Reads the kept cachegrind outputs (<variant>-r<round>-n<count>.cgout, two request counts) and
// prints each function's marginal instructions per request in both variants and the difference.
// V8's embedded builtins and Node's C++ are named; JIT-compiled JavaScript is one '???' entry.
// V8's optimizing compilers are left out of the figure, as in the harness, and summed on a line
// of their own (--all lists their functions too); the garbage collector's share of the figure is
// summed on another, with the figure without it.
import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { functionTotals, isCompilerFunction, isGcFunction } from './lib/instructions.mjs'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { round: { type: 'string', default: '1' }, top: { type: 'string', default: '25' }, all: { type: 'boolean', default: false } } })
const [dir, a, b] = positionals
if (!dir || !a || !b) {
  console.error('usage: node benchmarks/instr-diff.mjs DIR VARIANT_A VARIANT_B [--round N] [--top N] [--all]')
  process.exit(2)
}

/** Marginal instructions per request of each function, from the variant's two request counts. */
function marginal (variant) {
  const re = new RegExp(`^${variant}-r${values.round}-n(\\d+)\\.cgout$`)
  const runs = readdirSync(dir).map((f) => [f, re.exec(f)]).filter(([, m]) => m).map(([f, m]) => [Number(m[1]), functionTotals(readFileSync(path.join(dir, f), 'utf8'))]).sort((x, y) => x[0] - y[0])
  if (runs.length < 2) throw new Error(`${variant}: need two request counts of round ${values.round} in ${dir}`)
  const [[n1, f1], [n2, f2]] = [runs[0], runs[runs.length - 1]]
  const m = new Map()
  for (const k of new Set([...f1.keys(), ...f2.keys()])) m.set(k, ((f2.get(k) ?? 0) - (f1.get(k) ?? 0)) / (n2 - n1))
  return m
}

const ma = marginal(a)
const mb = marginal(b)
const keys = [...new Set([...ma.keys(), ...mb.keys()])]
const sum = (m, pick) => keys.filter(pick).reduce((s, k) => s + (m.get(k) ?? 0), 0)
const main = (k) => !isCompilerFunction(k)
console.log(`marginal instructions per request: ${a} ${Math.round(sum(ma, main))}, ${b} ${Math.round(sum(mb, main))}, difference ${Math.round(sum(mb, main) - sum(ma, main))}`)
console.log(`V8's optimizing compilers, per request (not in the figure): ${a} ${Math.round(sum(ma, isCompilerFunction))}, ${b} ${Math.round(sum(mb, isCompilerFunction))}`)
// The figure without the garbage collector's share, which is what moves between rounds.
const gc = (k) => main(k) && isGcFunction(k)
const mutator = (k) => main(k) && !isGcFunction(k)
console.log(`garbage collection, per request (in the figure): ${a} ${Math.round(sum(ma, gc))}, ${b} ${Math.round(sum(mb, gc))}; the figure without it: ${a} ${Math.round(sum(ma, mutator))}, ${b} ${Math.round(sum(mb, mutator))}, difference ${Math.round(sum(mb, mutator) - sum(ma, mutator))}`)
const rows = keys.filter((k) => values.all || main(k)).map((k) => [k, ma.get(k) ?? 0, mb.get(k) ?? 0])
console.log(`\n${'difference'.padStart(10)} ${a.padStart(12)} ${b.padStart(12)}  function`)
for (const [k, x, y] of rows.sort((p, q) => Math.abs(q[2] - q[1]) - Math.abs(p[2] - p[1])).slice(0, Number(values.top))) {
  console.log(`${Math.round(y - x).toString().padStart(10)} ${Math.round(x).toString().padStart(12)} ${Math.round(y).toString().padStart(12)}  ${k}`)
}
