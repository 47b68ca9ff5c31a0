// `npm run bench`: every benchmark in this folder, then the results files.
//
//   npm run bench -- [--connections 50] [--duration 5] [--rounds 3] [--mix] [--quick] ...
//   npm run bench -- --instructions [--variants a,b] [--instr-counts 2000,10000] [--rounds 2]
//
// Writes <out>/latest.json and <out>/latest.md (and, for a full run into the
// default folder, node<major>.json/.md, efficiency.svg and the generated
// section of docs/performance.md).
import { writeFileSync, renameSync, mkdirSync, copyFileSync, readFileSync, existsSync } from 'node:fs'
import path from 'node:path'
import { parseArgs, USAGE, DEFAULTS, machineInfo, packageVersions, gitCommit, pinning } from './lib/common.mjs'
import { runThroughput } from './throughput.mjs'
import { runScrape } from './scrape.mjs'
import { runMemory } from './memory.mjs'
import { evaluateTargets, renderMarkdown } from './lib/report.mjs'
import { writeChart, defaultInputs } from './chart.mjs'
import { updateDocs, updateInstructionsDocs } from './update-docs.mjs'
import { runInstructions } from './lib/instructions.mjs'

const opts = parseArgs()
if (opts.help) { console.log(USAGE); process.exit(0) }
// --instructions is a mode of its own: only that part unless --only names others too.
const parts = new Set(opts.only ?? (opts.instructions ? [] : ['throughput', 'scrape', 'memory']))
if (opts.instructions) parts.add('instructions')
for (const p of parts) if (!['throughput', 'scrape', 'memory', 'instructions'].includes(p)) throw new Error(`unknown part ${p}`)

const started = Date.now()
const args = process.argv.slice(2)
const results = {
  meta: {
    date: new Date().toISOString(),
    command: `npm run bench${args.length ? ' -- ' + args.join(' ') : ''}`,
    machine: machineInfo(),
    packages: packageVersions(),
    gitCommit: gitCommit(),
    pinning: pinning()
  },
  options: {
    connections: opts.connections,
    duration: opts.duration,
    warmup: opts.warmup,
    rounds: opts.rounds,
    mix: opts.mix,
    quick: opts.quick,
    retries: opts.retries,
    quietWait: opts.quietWait,
    variants: opts.variants,
    parts: [...parts],
    scrapeRoutes: opts.scrapeRoutes,
    scrapeIterations: opts.scrapeIterations,
    memoryRequests: opts.memoryRequests,
    instrCounts: parts.has('instructions') ? opts.instrCounts : undefined,
    instrWarmup: parts.has('instructions') ? opts.instrWarmup : undefined,
    instrRounds: parts.has('instructions') ? opts.instrRounds : undefined
  },
  throughput: null,
  scrape: null,
  memory: null,
  instructions: null,
  cpuReference: null,
  targets: []
}

console.error(`[bench] Node ${process.version}, ${results.meta.machine.cores} cores, pinning: ${results.meta.pinning.enabled ? 'taskset' : results.meta.pinning.reason}`)
if (parts.has('throughput')) results.throughput = await runThroughput(opts)
if (parts.has('scrape')) results.scrape = await runScrape(opts)
if (parts.has('memory')) results.memory = await runMemory(opts)
if (parts.has('instructions')) {
  results.instructions = await runInstructions(opts)
  if (!results.throughput) results.cpuReference = cpuReference(opts)
}
results.targets = evaluateTargets(results)
results.meta.durationS = Math.round((Date.now() - started) / 1000)
results.meta.loadavgEnd = machineInfo().loadavg

mkdirSync(opts.out, { recursive: true })
const write = (file, text) => {
  const tmp = `${file}.tmp`
  writeFileSync(tmp, text)
  renameSync(tmp, file)
}
const jsonFile = path.join(opts.out, 'latest.json')
const mdFile = path.join(opts.out, 'latest.md')
write(jsonFile, JSON.stringify(results, null, 2) + '\n')
write(mdFile, renderMarkdown(results))

// A full run (all parts, default settings for rounds) into the default folder
// becomes the published run for this Node major.
const major = process.versions.node.split('.')[0]
const full = !opts.quick && !opts.variants && ['throughput', 'scrape', 'memory'].every((p) => parts.has(p)) && opts.rounds >= 3 && opts.out === DEFAULTS.out
if (full) {
  copyFileSync(jsonFile, path.join(opts.out, `node${major}.json`))
  copyFileSync(mdFile, path.join(opts.out, `node${major}.md`))
}
// A full instructions run (every variant, default counts, default folder) is
// the published instructions run for this Node major.
const fullInstr = !!results.instructions && !opts.quick && !opts.variants && opts.instrRounds >= 1 && opts.out === DEFAULTS.out &&
  String(opts.instrCounts) === String(DEFAULTS.instrCounts)
if (fullInstr) {
  copyFileSync(jsonFile, path.join(opts.out, `instructions-node${major}.json`))
  copyFileSync(mdFile, path.join(opts.out, `instructions-node${major}.md`))
}
if (results.throughput) {
  const svg = path.join(opts.out, 'efficiency.svg')
  writeChart(full || opts.out === DEFAULTS.out ? defaultInputs(opts.out) : [jsonFile], svg)
}
if (full) updateDocs({ resultsDir: opts.out }) // includes the instructions section
else if (fullInstr) updateInstructionsDocs({ resultsDir: opts.out })

console.log(renderMarkdown(results))
console.error(`[bench] wrote ${path.relative(process.cwd(), jsonFile)} and ${path.relative(process.cwd(), mdFile)} in ${results.meta.durationS} s`)

// The published CPU-time run of this Node major, shown beside instruction figures measured without
// a throughput part in the same run.
function cpuReference (opts) {
  const major = process.versions.node.split('.')[0]
  for (const dir of [opts.out, DEFAULTS.out]) {
    const file = path.join(dir, `node${major}.json`)
    if (!existsSync(file)) continue
    try {
      const r = JSON.parse(readFileSync(file, 'utf8'))
      const variants = {}
      for (const [n, v] of Object.entries(r.throughput?.variants ?? {})) variants[n] = { median: v.median, ratios: v.ratios }
      return { file: path.relative(process.cwd(), file), date: r.meta.date, node: r.meta.machine.node, gitCommit: r.meta.gitCommit, variants }
    } catch {}
  }
  return null
}
