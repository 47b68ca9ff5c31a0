// The Prometheus files of docs/prometheus/ against the real tools: `promtool check rules` on the
// rule files, `promtool check config` on the sample prometheus.yml, `amtool check-config` on the
// sample alertmanager.yml, and `promtool test rules` on each unit-test file of
// docs/prometheus/tests/. Plus what the tools cannot see: one latency threshold throughout, and
// it is a bucket boundary; every alert fires in some unit test and stays quiet in another; every
// alert is documented where its runbook_url points; the unit tests evaluate the recording rules
// before the alerts.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { DEFAULT_BUCKETS } from '../lib/index'
import { PROMTOOL_BIN, skipReasonIfAbsent } from './helpers/prometheus'
import { AMTOOL_BIN, alertmanagerSkipReason } from './helpers/alertmanager'

const ROOT = resolve(__dirname, '..')
const DOCS = join(ROOT, 'docs', 'prometheus')
const promSkip = skipReasonIfAbsent()
const amSkip = alertmanagerSkipReason()

interface Run { code: number | null, output: string }

/** Run a tool in the repository root; resolves with its exit code and stdout + stderr. */
function run (bin: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.stdout.setEncoding('utf8').on('data', (d: string) => { output += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { output += d })
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, output }) })
  })
}

const read = (file: string): string => readFileSync(join(DOCS, file), 'utf8')
const unitTestFiles = readdirSync(join(DOCS, 'tests')).filter((f) => f.endsWith('.yml')).sort()

t.test('promtool check rules', promSkip === null ? {} : { skip: promSkip }, async (t) => {
  for (const file of ['recording-rules.yml', 'alerting-rules.yml']) {
    const r = await run(PROMTOOL_BIN, ['check', 'rules', `docs/prometheus/${file}`])
    t.equal(r.code, 0, `${file} passes`, { output: r.output })
    t.match(r.output, /SUCCESS: \d+ rules found/, file)
  }
})

t.test('promtool check config on the sample prometheus.yml', promSkip === null ? {} : { skip: promSkip }, async (t) => {
  const r = await run(PROMTOOL_BIN, ['check', 'config', 'docs/prometheus/prometheus.yml'])
  t.equal(r.code, 0, 'passes', { output: r.output })
  t.match(r.output, /SUCCESS: 2 rule files found/, 'with both rule files, checked too')
})

t.test('amtool check-config on the sample alertmanager.yml', amSkip === null ? {} : { skip: amSkip }, async (t) => {
  const r = await run(AMTOOL_BIN, ['check-config', 'docs/prometheus/alertmanager.yml'])
  t.equal(r.code, 0, 'passes', { output: r.output })
})

t.test('promtool test rules', promSkip === null ? {} : { skip: promSkip }, async (t) => {
  t.ok(unitTestFiles.length > 0, 'docs/prometheus/tests has unit tests')
  // One promtool per file, all at once (the day-long series take promtool a second or two each).
  const results = await Promise.all(unitTestFiles.map((file) => run(PROMTOOL_BIN, ['test', 'rules', `docs/prometheus/tests/${file}`])))
  unitTestFiles.forEach((file, i) => {
    t.equal(results[i].code, 0, `${file} passes`, { output: results[i].output })
    t.match(results[i].output, /SUCCESS/, file)
  })
})

/** [alertname, severity] of each rule of alerting-rules.yml, in order. */
function alertRules (): Array<{ alert: string, severity: string, runbook: string }> {
  const out: Array<{ alert: string, severity: string, runbook: string }> = []
  for (const block of read('alerting-rules.yml').split(/^ {6}- alert: /m).slice(1)) {
    const severity = /^ {10}severity: (\S+)$/m.exec(block)
    const runbook = /^ {10}runbook_url: "([^"]+)"$/m.exec(block)
    out.push({ alert: block.split('\n')[0].trim(), severity: severity?.[1] ?? '', runbook: runbook?.[1] ?? '' })
  }
  return out
}

t.test('one latency threshold, a bucket boundary', async (t) => {
  const rules = read('recording-rules.yml')
  const code = rules.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n') // not the header's mention
  const les = [...code.matchAll(/le="([^"]*)"/g)].map((m) => m[1])
  t.equal(les.length, 7, 'one le matcher in each of the seven slow-ratio windows')
  t.same([...new Set(les)], ['0.5'], 'the same threshold in every window (docs/alerting.md documents 0.5 s)')
  // As Prometheus stores the le label: the exposition's String(b) under Prometheus 2 ("1"), with a
  // ".0" on integer boundaries under Prometheus 3 ("1.0"); "0.5" either way.
  const stored = DEFAULT_BUCKETS.flatMap((b) => Number.isInteger(b) ? [String(b), `${b}.0`] : [String(b)])
  t.ok(stored.includes(les[0]), `${les[0]} is one of the default bucket boundaries, as Prometheus stores it`)
  t.equal([...rules.matchAll(/# LATENCY THRESHOLD$/gm)].length, 7, 'each is marked')
  const doc = readFileSync(join(ROOT, 'docs', 'alerting.md'), 'utf8')
  t.match(doc, 'le="0.5"', 'docs/alerting.md names the threshold as it is')
})

t.test('every alert fires in a unit test and stays quiet in another', async (t) => {
  // "alertname severity" -> the unit-test files it fires in; alertname -> the files it is quiet in.
  const fired = new Map<string, string[]>()
  const quiet = new Map<string, string[]>()
  const add = (map: Map<string, string[]>, key: string, file: string): void => { map.set(key, [...(map.get(key) ?? []), file]) }
  for (const file of unitTestFiles) {
    let alertname = ''
    for (const line of read(join('tests', file)).split('\n')) {
      const name = /^\s+alertname: (\S+)$/.exec(line)
      if (name !== null) alertname = name[1]
      if (/^\s+exp_alerts: \[\]$/.test(line)) add(quiet, alertname, file)
      const severity = /^\s+- exp_labels: \{.*severity: (\w+)/.exec(line)
      if (severity !== null) add(fired, `${alertname} ${severity[1]}`, file)
    }
  }
  const rules = alertRules()
  t.ok(rules.length >= 9, `${rules.length} alerting rules`)
  for (const { alert, severity } of rules) {
    t.ok(fired.has(`${alert} ${severity}`), `${alert} (${severity}) fires in a test`)
    t.ok(quiet.has(alert), `${alert} stays quiet in a test`)
  }
  // The meta-alert on the objectives: the burn-rate alerts compare with scalar() of them, NaN
  // when they are not loaded. It must fire in a test without recording-rules.yml (where the
  // objectives do not exist) and stay quiet in one with it (where they always do).
  t.ok(rules.some((r) => r.alert === 'SloObjectiveMissing' && r.severity === 'ticket'), 'SloObjectiveMissing (ticket) is among the alerts')
  const loadsRecording = (file: string): boolean => read(join('tests', file)).includes('- ../recording-rules.yml\n')
  t.ok((fired.get('SloObjectiveMissing ticket') ?? []).some((f) => !loadsRecording(f)), 'SloObjectiveMissing fires in a test that loads alerting-rules.yml alone', { files: fired.get('SloObjectiveMissing ticket') })
  t.ok((quiet.get('SloObjectiveMissing') ?? []).some(loadsRecording), 'SloObjectiveMissing stays quiet in a test that loads recording-rules.yml', { files: quiet.get('SloObjectiveMissing') })
})

/** The group names of a rule file, in order. */
function groupsOf (file: string): string[] {
  return [...read(file).matchAll(/^ {2}- name: (\S+)$/gm)].map((m) => m[1])
}

t.test('each unit-test file orders the groups: recording rules first', async (t) => {
  // Without group_eval_order promtool evaluates the groups of a time step in a random order, and
  // an alert may read the recording rules of the step before: flaky tests.
  for (const file of unitTestFiles) {
    const text = read(join('tests', file))
    const listed = /^group_eval_order:\n((?: {2}- \S+\n)+)/m.exec(text)?.[1].split('\n').filter((l) => l !== '').map((l) => l.slice(4)) ?? []
    const loaded = ['recording-rules.yml', 'alerting-rules.yml'].filter((f) => text.includes(`- ../${f}\n`))
    t.same(listed, loaded.flatMap(groupsOf), `${file}: every group of ${loaded.join(' and ')}, in file order`)
  }
})

t.test('every alert is documented where its runbook_url points', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs', 'alerting.md'), 'utf8')
  for (const { alert, runbook } of alertRules()) {
    t.equal(runbook, `https://github.com/fastify-observability/fastify-observability/blob/main/docs/alerting.md#${alert.toLowerCase()}`, `${alert}: runbook_url`)
    t.match(doc, new RegExp(`^### ${alert}$`, 'm'), `${alert}: a section in docs/alerting.md`)
  }
})
