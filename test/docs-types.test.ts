// The package as a user installs it (`npm pack` of the built repo, unpacked into a scratch project
// whose node_modules links this repo's dependencies), checked the way users consume it:
// - every ```ts block of README.md and docs/*.md, the consumer fixtures of test/fixtures/types/
//   and every public name are type-checked (strict, skipLibCheck false) under each resolution
//   mode: node16 and nodenext (as ES module and, when the code can be one, as CommonJS), bundler,
//   and classic CommonJS (node10, `import x = require()`); tsc runs once per mode, the modes in
//   parallel, and a failure names the doc file and line;
// - ```js/```mjs/```cjs blocks pass `node --check`;
// - the tarball holds every file package.json points at, its source maps resolve, and the main
//   entry's types load no optional package.
// A block that is deliberately a fragment is left out with `<!-- docs-test: skip (reason) -->`
// on the line before its fence. dist/ must be built (npm test builds first). DOCS_TYPES_KEEP=1
// keeps the scratch project (its path is printed) to rerun tsc there by hand.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import {
  DOC_FILES, MODES, PACKAGE_NAME, ROOT, checkMode, extractBlocks, inParallel, linkPackages, moduleKindOf, packInto, packageOf,
  publicNames, run, specifiersOf, systemsFor, typeDependencies
} from './helpers/packed'
import type { ModuleKind, Packed, PublicName, Unit } from './helpers/packed'

const TS_LANGS: Record<string, ModuleKind | undefined> = { ts: undefined, typescript: undefined, mts: 'esm', cts: 'cjs' }
const JS_LANGS: Record<string, string | undefined> = { js: undefined, javascript: undefined, mjs: '.mjs', cjs: '.cjs' }
/** Of the optional OpenTelemetry peers a user of ./sdk or ./register installs, the Jaeger exporter is only for `jaeger` (and SDK 2.x): the types must not need it. */
const NOT_LINKED = new Set(['@opentelemetry/exporter-jaeger'])

const blocks = extractBlocks(DOC_FILES())
const dir = mkdtempSync(join(tmpdir(), 'fastify-observability-packed-'))
t.teardown(() => { if (process.env.DOCS_TYPES_KEEP === undefined) rmSync(dir, { recursive: true, force: true }) })

if (!existsSync(join(ROOT, 'dist', 'index.js'))) throw new Error('dist/ is not built: run `npm run build` (npm test does) first')

let packed: Packed
let names: PublicName[]
t.before(async () => {
  packed = await packInto(dir)
  names = publicNames(packed.pkgDir)
})

/** Every public name reachable, as a value or a type, through the package's own types; app.metrics optional. */
function publicNameUnits (exported: PublicName[]): Unit[] {
  const lines = (ns: string): string[] => [
    ...exported.filter((n) => n.value).map((n) => `export const value_${n.name} = ${ns}.${n.name}`),
    ...exported.filter((n) => n.type).map((n) => `export type Type_${n.name} = ${ns}.${n.name}`),
    'const app = Fastify()',
    `export const registry: ${ns}.PromRegistry | undefined = app.metrics?.registry`,
    '// @ts-expect-error app.metrics is undefined with `metrics: false`',
    'app.metrics.registry.metrics()'
  ]
  const hint = (code: string) => (d: { line: number }) => {
    const name = /\b(?:value|Type)_(\w+) = /.exec(code.split('\n')[d.line - 1] ?? '')?.[1]
    if (name === undefined) return undefined
    return code.includes('require(') && /Type_/.test(code.split('\n')[d.line - 1])
      ? `lib/index.ts exports the type ${name}: add \`export type ${name} = api.${name}\` to the namespace in types/index.d.ts`
      : `lib/index.ts exports ${name}, which this entry's types do not`
  }
  const esm = [
    '// Every named export of lib/index.ts, through the package\'s ES module types.',
    "import Fastify from 'fastify'",
    "import type { FastifyPluginCallback } from 'fastify'",
    `import observability, * as pkg from '${PACKAGE_NAME}'`,
    'export const plugin: FastifyPluginCallback<pkg.ObservabilityOptions> = observability',
    ...lines('pkg')
  ].join('\n')
  const cjs = [
    '// Every named export of lib/index.ts, through the package\'s CommonJS types (`export =`).',
    "import Fastify = require('fastify')",
    "import type { FastifyPluginCallback } from 'fastify'",
    `import pkg = require('${PACKAGE_NAME}')`,
    'export const plugin: FastifyPluginCallback<pkg.ObservabilityOptions> = pkg',
    ...lines('pkg')
  ].join('\n')
  return [
    { file: 'lib/index.ts (public names, ES module)', firstLine: 1, code: esm, kind: 'esm', hint: hint(esm) },
    { file: 'lib/index.ts (public names, CommonJS)', firstLine: 1, code: cjs, kind: 'cjs', hint: hint(cjs) },
    // The preload is imported for its side effect (noUncheckedSideEffectImports makes an unresolved one an error).
    { file: 'package.json exports["./register"]', firstLine: 1, code: `import '${PACKAGE_NAME}/register'`, kind: 'both', modes: ['node16', 'nodenext', 'bundler'] }
  ]
}

function docUnits (): Unit[] {
  return blocks.filter((b) => b.lang in TS_LANGS && b.skip === undefined)
    .map((b) => ({ file: b.file, firstLine: b.line, code: b.code, kind: TS_LANGS[b.lang] ?? moduleKindOf(b.code) }))
}

function fixtureUnits (): Unit[] {
  const folder = join('test', 'fixtures', 'types')
  return readdirSync(join(ROOT, folder)).filter((f) => /\.[mc]ts$/.test(f)).sort().map((f) => ({
    file: `${folder}/${f}`, firstLine: 1, code: readFileSync(join(ROOT, folder, f), 'utf8'), kind: f.endsWith('.mts') ? 'esm' : 'cjs'
  }))
}

/** What the scratch project's node_modules links: what a user of these units has installed. */
function packagesFor (units: Unit[]): string[] {
  const pkg = packed.pkg
  const optional = (name: string): boolean => pkg.peerDependenciesMeta?.[name]?.optional === true
  const wanted = new Set(['fastify', '@types/node', ...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {}).filter((n) => !optional(n))])
  let sdk = false
  for (const unit of units) {
    for (const spec of specifiersOf(unit.code)) {
      const name = packageOf(spec)
      if (name === PACKAGE_NAME) sdk ||= /\/(sdk|register)$/.test(spec)
      else if (name !== undefined) wanted.add(name)
    }
  }
  if (sdk) for (const name of Object.keys(pkg.peerDependencies ?? {})) if (name.startsWith('@opentelemetry/') && optional(name) && !NOT_LINKED.has(name)) wanted.add(name)
  return [...wanted].sort()
}

t.test('the tarball holds what package.json points at, and its source maps resolve', async (t) => {
  const has = (p: string): boolean => existsSync(join(packed.pkgDir, p))
  const targets: string[] = []
  const walk = (v: unknown): void => {
    if (typeof v === 'string') targets.push(v)
    else if (v !== null && typeof v === 'object') Object.values(v).forEach(walk)
  }
  walk(packed.pkg.exports)
  for (const p of [packed.pkg.main, packed.pkg.types, ...targets]) {
    if (p !== undefined && !p.includes('*')) t.ok(has(p), `${p} is in the tarball`)
  }
  const maps = packed.files.filter((f) => f.endsWith('.map'))
  t.ok(maps.length > 0, 'source maps are shipped')
  const unresolved: string[] = []
  for (const map of maps) {
    const { sources = [], sourceRoot = '' } = JSON.parse(readFileSync(join(packed.pkgDir, map), 'utf8')) as { sources?: string[], sourceRoot?: string }
    for (const source of sources) if (!existsSync(join(packed.pkgDir, dirname(map), sourceRoot, source))) unresolved.push(`${map} -> ${source}`)
  }
  t.same(unresolved, [], 'every source of every map is in the tarball')
  t.notOk(packed.files.some((f) => f.startsWith('test/') || f.endsWith('.tst.ts')), 'no tests in the tarball')
})

t.test('the main entry\'s types load only packages every user has', async (t) => {
  const pkg = packed.pkg
  const allowed = new Set(['fastify', ...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {}).filter((n) => pkg.peerDependenciesMeta?.[n]?.optional !== true)])
  const entries = ['types/index.d.ts', 'dist/esm/index.d.mts']
  const used = [...typeDependencies(packed.pkgDir, entries)].sort()
  t.same(used.filter((n) => !allowed.has(n)), [], `${entries.join(', ')} import only ${[...allowed].sort().join(', ')} (they import ${used.join(', ')})`)
})

t.test('TypeScript blocks of README.md and docs/, the consumer fixtures and every public name type-check against the packed package', async (t) => {
  const docs = docUnits()
  t.ok(docs.some((u) => u.file === 'README.md'), 'README.md has TypeScript blocks')
  const units = [...docs, ...fixtureUnits(), ...publicNameUnits(names)]
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'docs-consumer', private: true }))
  const linked = linkPackages(dir, packagesFor(units))
  t.comment(`scratch project ${dir}, node_modules: ${PACKAGE_NAME} (packed), ${linked.join(', ')}`)
  for (const b of blocks.filter((b) => b.skip !== undefined)) t.comment(`skipped ${b.file}:${b.line} (${b.skip})`)

  // One tsc per mode, as many at a time as there are cores (more only thrash).
  const results = await inParallel(MODES.map((mode) => () => checkMode(dir, mode, units)), Math.max(1, availableParallelism()))
  for (const r of results) {
    t.test(`moduleResolution ${r.mode.name} (${Object.entries(r.mode.compilerOptions).map(([k, v]) => `${k}: ${String(v)}`).join(', ')}), tsc ${r.ms} ms`, async (t) => {
      t.same(r.other, [], 'no diagnostics outside the checked files')
      for (const { unit, as, errors } of r.units) {
        t.same(errors, [], `${unit.file}${unit.firstLine > 1 ? `:${unit.firstLine}` : ''} as ${as === 'esm' ? 'an ES module' : 'CommonJS'}`)
      }
      if (r.other.length === 0 && r.units.every((u) => u.errors.length === 0)) t.equal(r.code, 0, 'tsc exits 0')
    })
  }
  // Every doc block is checked somewhere.
  for (const unit of docs) t.ok(MODES.some((m) => systemsFor(unit, m).length > 0), `${unit.file}:${unit.firstLine} is checked in some mode`)
})

t.test('at run time the ES module entry has the same names as require(), and as lib/index.ts exports', async (t) => {
  // (Run in the scratch project, whose node_modules the previous test linked.)
  const script = `import * as esm from '${PACKAGE_NAME}'
import { createRequire } from 'node:module'
const cjs = createRequire(import.meta.url)('${PACKAGE_NAME}')
console.log(JSON.stringify({ esm: Object.keys(esm).sort(), cjs: Object.keys(cjs).sort(), same: esm.default === cjs && esm.observability === cjs }))`
  const r = await run(process.execPath, ['--input-type=module', '-e', script], dir)
  t.equal(r.code, 0, r.out)
  const { esm, cjs, same } = JSON.parse(r.out.trim().split('\n').pop() as string) as { esm: string[], cjs: string[], same: boolean }
  const values = names.filter((n) => n.value).map((n) => n.name).sort()
  // `export *` from the CommonJS build also passes on what Node adds to a CommonJS module's namespace:
  // __esModule, and from Node 23 on 'module.exports'.
  t.same(esm.filter((n) => n !== '__esModule' && n !== 'module.exports'), values, 'import * as m: the value exports of lib/index.ts')
  // fastify-plugin itself adds .fastifyObservability (its camel-cased name) to the function; not in the types.
  t.same(cjs.filter((n) => n !== 'fastifyObservability'), values, 'require(): the plugin function carrying the value exports of lib/index.ts')
  t.equal(same, true, 'the default export is require()\'s plugin itself')
})

t.test('JavaScript blocks of README.md and docs/ pass node --check', async (t) => {
  const js = blocks.filter((b) => b.lang in JS_LANGS && b.skip === undefined)
  if (js.length === 0) { t.pass('no JavaScript blocks'); return }
  for (const [i, b] of js.entries()) {
    const ext = JS_LANGS[b.lang] ?? (/^\s*(import|export)\b/m.test(b.code) ? '.mjs' : '.cjs')
    const file = join(dir, `js-${i}${ext}`)
    writeFileSync(file, b.code + '\n')
    const r = await run(process.execPath, ['--check', file], dir)
    t.equal(r.code, 0, `${b.file}:${b.line} (${ext})${r.code !== 0 ? `\n${r.out.replaceAll(file, `${b.file} block`)}` : ''}`)
  }
})
