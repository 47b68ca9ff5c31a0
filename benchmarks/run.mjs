// `npm run bench`: every benchmark in this folder, then the results files.
//
//   npm run bench -- [--connections 50] [--duration 5] [--rounds 3] [--mix] [--quick] ...
//
// Writes <out>/latest.json and <out>/latest.md (and, for a full run into the
// default folder, node<major>.json/.md, efficiency.svg and the generated
// section of docs/performance.md).
import { writeFileSync, renameSync, mkdirSync, copyFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs, USAGE, DEFAULTS, machineInfo, packageVersions, gitCommit, pinning } from './lib/common.mjs'
import { runThroughput } from './throughput.mjs'
import { runScrape } from './scrape.mjs'
import { runMemory } from './memory.mjs'
import { evaluateTargets, renderMarkdown } from './lib/report.mjs'
import { writeChart, defaultInputs } from './chart.mjs'
import { updateDocs } from './update-docs.mjs'

const opts = parseArgs()
if (opts.help) { console.log(USAGE); process.exit(0) }
const parts = new Set(opts.only ?? ['throughput', 'scrape', 'memory'])
for (const p of parts) if (!['throughput', 'scrape', 'memory'].includes(p)) throw new Error(`unknown part ${p}`)

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
    memoryRequests: opts.memoryRequests
  },
  throughput: null,
  scrape: null,
  memory: null,
  targets: []
}

console.error(`[bench] Node ${process.version}, ${results.meta.machine.cores} cores, pinning: ${results.meta.pinning.enabled ? 'taskset' : results.meta.pinning.reason}`)
if (parts.has('throughput')) results.throughput = await runThroughput(opts)
if (parts.has('scrape')) results.scrape = await runScrape(opts)
if (parts.has('memory')) results.memory = await runMemory(opts)
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
const full = !opts.quick && !opts.variants && parts.size === 3 && opts.rounds >= 3 && opts.out === DEFAULTS.out
if (full) {
  const major = process.versions.node.split('.')[0]
  copyFileSync(jsonFile, path.join(opts.out, `node${major}.json`))
  copyFileSync(mdFile, path.join(opts.out, `node${major}.md`))
}
if (results.throughput) {
  const svg = path.join(opts.out, 'efficiency.svg')
  writeChart(full || opts.out === DEFAULTS.out ? defaultInputs(opts.out) : [jsonFile], svg)
}
if (full) updateDocs({ resultsDir: opts.out })

console.log(renderMarkdown(results))
console.error(`[bench] wrote ${path.relative(process.cwd(), jsonFile)} and ${path.relative(process.cwd(), mdFile)} in ${results.meta.durationS} s`)
