// The package as a user installs it: `npm pack` of the built repo unpacked into a scratch project
// whose node_modules links the dependencies from this repo's node_modules (no install, no
// network), the code blocks of README.md and docs/*.md, and the TypeScript resolution modes they
// are checked under. Used by test/docs-types.test.ts.
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { dirname, join, relative, resolve as resolvePath } from 'node:path'
import ts from 'typescript'

export const ROOT = resolvePath(__dirname, '..', '..')
export const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
export const PACKAGE_NAME = 'fastify-observability'

export interface RunResult { code: number, out: string }

/** Run a command (no shell), never rejecting: the exit code and stdout + stderr. */
export function run (file: string, args: string[], cwd: string, timeout = 120_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : (typeof err.code === 'number' ? err.code : 1)
      resolve({ code, out: String(stdout) + String(stderr) + (err !== null && typeof err.code !== 'number' ? `\n${err.message}` : '') })
    })
  })
}

/** Run the tasks, at most `limit` at a time; the results in task order. */
export async function inParallel<T> (tasks: Array<() => Promise<T>>, limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++
      results[i] = await tasks[i]()
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker))
  return results
}

// ---------------------------------------------------------------------------------------------
// The packed package

export interface PackageJson {
  name: string
  main?: string
  types?: string
  exports?: unknown
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
}

export interface Packed {
  /** The scratch project: node_modules/ and one folder per resolution mode. */
  dir: string
  /** node_modules/fastify-observability, unpacked from the tarball. */
  pkgDir: string
  /** The paths in the tarball, relative to the package root. */
  files: string[]
  pkg: PackageJson
}

/** `npm pack` the repo (dist/ must be built) and unpack it as dir/node_modules/fastify-observability. */
export async function packInto (dir: string): Promise<Packed> {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const packed = await run(npm, ['pack', '--pack-destination', dir, '--json', '--ignore-scripts', '--silent'], ROOT)
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.out}`)
  const json = JSON.parse(packed.out.slice(packed.out.indexOf('['))) as Array<{ filename: string, files: Array<{ path: string }> }>
  const pkgDir = join(dir, 'node_modules', PACKAGE_NAME)
  mkdirSync(pkgDir, { recursive: true })
  const untar = await run('tar', ['-xzf', join(dir, json[0].filename), '-C', pkgDir, '--strip-components=1'], dir)
  if (untar.code !== 0) throw new Error(`tar failed:\n${untar.out}`)
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as PackageJson
  return { dir, pkgDir, files: json[0].files.map((f) => f.path).sort(), pkg }
}

/** The package a specifier names ('@scope/name/sub' -> '@scope/name'), or undefined for relative paths and builtins. */
export function packageOf (specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) return undefined
  const parts = specifier.split('/')
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]
  return builtinModules.includes(name) ? undefined : name
}

/** Module specifiers of a source or declaration file: imports, re-exports, require(), import() types. */
export function specifiersOf (text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName)
}

/**
 * The packages the given declaration files of the package load, following its own relative
 * imports (a bare name is what a user must have installed for these types to resolve).
 */
export function typeDependencies (pkgDir: string, entries: string[]): Set<string> {
  const seen = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    for (const spec of specifiersOf(readFileSync(file, 'utf8'))) {
      const name = packageOf(spec)
      if (name !== undefined) { packages.add(name); continue }
      if (!spec.startsWith('.')) continue
      const base = resolvePath(dirname(file), spec)
      const candidates = [base.replace(/\.m?js$/, (ext) => ext === '.mjs' ? '.d.mts' : '.d.ts'), `${base}.d.ts`, join(base, 'index.d.ts')]
      const found = candidates.find((c) => existsSync(c) && c.endsWith('.ts'))
      if (found !== undefined) visit(found)
    }
  }
  for (const entry of entries) visit(join(pkgDir, entry))
  return packages
}

/** Symlink each package (and its @types/ package, if any) from the repo's node_modules into dir/node_modules. */
export function linkPackages (dir: string, names: Iterable<string>): string[] {
  const linked: string[] = []
  for (const name of names) {
    const typesName = `@types/${name.startsWith('@') ? name.slice(1).replace('/', '__') : name}`
    for (const n of [name, typesName]) {
      const source = join(ROOT, 'node_modules', n)
      const target = join(dir, 'node_modules', n)
      if (!existsSync(source) || existsSync(target)) continue
      mkdirSync(dirname(target), { recursive: true })
      symlinkSync(source, target, 'dir')
      linked.push(n)
    }
  }
  return linked
}

export interface PublicName { name: string, value: boolean, type: boolean }

/** The named exports of the packed dist/index.d.ts (lib/index.ts's export list), and whether each is a value, a type or both. */
export function publicNames (pkgDir: string): PublicName[] {
  const entry = join(pkgDir, 'dist', 'index.d.ts')
  const program = ts.createProgram([entry], { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, noEmit: true, skipLibCheck: true, types: [] })
  const checker = program.getTypeChecker()
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(entry)!)
  if (moduleSymbol === undefined) throw new Error(`${entry} is not a module`)
  return checker.getExportsOfModule(moduleSymbol).map((symbol) => {
    const target = (symbol.flags & ts.SymbolFlags.Alias) !== 0 ? checker.getAliasedSymbol(symbol) : symbol
    return { name: symbol.name, value: (target.flags & ts.SymbolFlags.Value) !== 0, type: (target.flags & ts.SymbolFlags.Type) !== 0 }
  }).sort((a, b) => a.name.localeCompare(b.name))
}

// ---------------------------------------------------------------------------------------------
// Code blocks

export interface CodeBlock {
  /** The Markdown file, relative to the repo root. */
  file: string
  /** 1-based line (in that file) of the block's first code line. */
  line: number
  lang: string
  code: string
  /** The reason given by a `<!-- docs-test: skip (reason) -->` comment right before the fence. */
  skip?: string
}

export const DOC_FILES = (): string[] => ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]

/** Every fenced code block of the given Markdown files (relative to root). */
export function extractBlocks (files: string[], root = ROOT): CodeBlock[] {
  const blocks: CodeBlock[] = []
  for (const file of files) {
    const lines = readFileSync(join(root, file), 'utf8').split('\n')
    for (let i = 0; i < lines.length; i++) {
      const open = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i])
      if (open === null) continue
      const [, indent, fence, lang] = open
      const closes = (l: string): boolean => { const s = l.trim(); return s.length >= fence.length && s === fence[0].repeat(s.length) }
      let j = i + 1
      while (j < lines.length && !closes(lines[j])) j++
      let k = i - 1
      while (k >= 0 && lines[k].trim() === '') k--
      const skip = k >= 0 ? /^\s*<!--\s*docs-test:\s*skip\b\s*(.*?)\s*-->\s*$/.exec(lines[k]) : null
      const code = lines.slice(i + 1, j).map((l) => l.startsWith(indent) ? l.slice(indent.length) : l).join('\n')
      blocks.push({ file, line: i + 2, lang: lang.toLowerCase(), code, ...(skip !== null ? { skip: skip[1].replace(/^\((.*)\)$/, '$1') || 'no reason given' } : {}) })
      i = j
    }
  }
  return blocks
}

export type ModuleKind = 'esm' | 'cjs' | 'both'

/**
 * Which module systems a TypeScript block can be compiled as: 'cjs' when it uses
 * `import x = require()`, `require()` or `export =`; 'esm' when it has a top-level await or
 * import.meta; otherwise 'both'.
 */
export function moduleKindOf (code: string): ModuleKind {
  const source = ts.createSourceFile('block.ts', code, ts.ScriptTarget.Latest, true)
  let cjs = false
  let esm = false
  const visit = (node: ts.Node, inFunction: boolean): void => {
    if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) cjs = true
    else if (ts.isExportAssignment(node) && node.isExportEquals === true) cjs = true
    else if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'require') cjs = true
    else if (ts.isMetaProperty(node) && node.keywordToken === ts.SyntaxKind.ImportKeyword) esm = true
    else if (!inFunction && (ts.isAwaitExpression(node) || (ts.isForOfStatement(node) && node.awaitModifier !== undefined))) esm = true
    const fn = inFunction || ts.isFunctionLike(node) || ts.isClassStaticBlockDeclaration(node)
    ts.forEachChild(node, (child) => visit(child, fn))
  }
  visit(source, false)
  return cjs ? 'cjs' : esm ? 'esm' : 'both'
}

// ---------------------------------------------------------------------------------------------
// Resolution modes

export interface ResolutionMode {
  name: string
  /** What a consumer's tsconfig.json says. */
  compilerOptions: Record<string, unknown>
  /** File extension for an ES module in this mode, or null when ES module files are not checked. */
  esm: string | null
  /** File extension for a CommonJS module in this mode, or null. */
  cjs: string | null
  /** Whether CommonJS-compatible blocks written with `import` are checked as CommonJS too (otherwise only `require` blocks are). */
  importAsCjs: boolean
}

/** The settings every consumer gets: strict, and the package's own declarations checked too. */
export const COMMON_OPTIONS = {
  target: 'ES2022',
  strict: true,
  skipLibCheck: false,
  noEmit: true,
  types: ['node'],
  moduleDetection: 'force',
  noUncheckedSideEffectImports: true
}

export const MODES: ResolutionMode[] = [
  // Node's own resolution: .mts files are ES modules (the "import" condition), .cts files CommonJS ("require").
  { name: 'node16', compilerOptions: { module: 'node16', moduleResolution: 'node16' }, esm: '.mts', cjs: '.cts', importAsCjs: true },
  { name: 'nodenext', compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' }, esm: '.mts', cjs: '.cts', importAsCjs: true },
  // Vite / tsx / Next-style: the "import" condition, no file extensions, type imports spelled out.
  { name: 'bundler', compilerOptions: { module: 'esnext', moduleResolution: 'bundler', verbatimModuleSyntax: true, isolatedModules: true }, esm: '.ts', cjs: null, importAsCjs: false },
  // Classic CommonJS: no "exports" (the top-level "types"), `import x = require()`.
  { name: 'commonjs', compilerOptions: { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true }, esm: null, cjs: '.ts', importAsCjs: false }
]

/** One file of a mode's compilation and where its lines come from. */
export interface Unit {
  /** The file it comes from, relative to the repo root, e.g. 'docs/configuration.md'. */
  file: string
  /** The line of that file that the unit's line 1 is: a doc block's first code line, or 1. */
  firstLine: number
  code: string
  kind: ModuleKind
  /** Only in these modes (default: every mode its kind fits). */
  modes?: string[]
  /** Extra text for a failure message. */
  hint?: (diagnostic: Diagnostic) => string | undefined
}

export interface Diagnostic { file: string, line: number, column: number, code: string, message: string }

/** tsc --pretty false output: `file(line,col): error TSxxxx: message` plus continuation lines. */
export function parseDiagnostics (out: string): { located: Diagnostic[], other: string[] } {
  const located: Diagnostic[] = []
  const other: string[] = []
  for (const line of out.split('\n')) {
    const m = /^(.+?)\((\d+),(\d+)\): error (TS\d+): (.*)$/.exec(line)
    if (m !== null) located.push({ file: m[1], line: Number(m[2]), column: Number(m[3]), code: m[4], message: m[5] })
    else if (/^\s+\S/.test(line) && located.length > 0) located[located.length - 1].message += '\n' + line
    else if (line.trim() !== '') other.push(line)
  }
  return { located, other }
}

export interface ModeResult {
  mode: ResolutionMode
  /** Each unit compiled in this mode, as which module system, and its diagnostics mapped to the origin. */
  units: Array<{ unit: Unit, as: 'esm' | 'cjs', errors: string[] }>
  /** Output tsc printed that belongs to no unit (a broken tsconfig, an error in a node_modules file). */
  other: string[]
  code: number
  ms: number
}

/** Which module systems a unit is compiled as in a mode. */
export function systemsFor (unit: Unit, mode: ResolutionMode): Array<'esm' | 'cjs'> {
  if (unit.modes !== undefined && !unit.modes.includes(mode.name)) return []
  const out: Array<'esm' | 'cjs'> = []
  if (mode.esm !== null && unit.kind !== 'cjs') out.push('esm')
  if (mode.cjs !== null && (unit.kind === 'cjs' || (unit.kind === 'both' && mode.importAsCjs))) out.push('cjs')
  return out
}

/** Write the units of one mode into dir/<mode>/ with its tsconfig.json, run tsc once, map the diagnostics back. */
export async function checkMode (dir: string, mode: ResolutionMode, units: Unit[]): Promise<ModeResult> {
  const modeDir = join(dir, mode.name)
  mkdirSync(modeDir, { recursive: true })
  const byFile = new Map<string, { unit: Unit, as: 'esm' | 'cjs', errors: string[] }>()
  const entries: ModeResult['units'] = []
  units.forEach((unit, i) => {
    for (const as of systemsFor(unit, mode)) {
      const name = `u${String(i).padStart(3, '0')}-${unit.file.replace(/[^\w]+/g, '_')}-${unit.firstLine}-${as}${as === 'esm' ? mode.esm! : mode.cjs!}`
      writeFileSync(join(modeDir, name), unit.code + '\n')
      const entry = { unit, as, errors: [] as string[] }
      byFile.set(name, entry)
      entries.push(entry)
    }
  })
  writeFileSync(join(modeDir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...COMMON_OPTIONS, ...mode.compilerOptions }, files: [...byFile.keys()] }, null, 2))
  const started = Date.now()
  const result = await run(process.execPath, [TSC, '-p', join(modeDir, 'tsconfig.json'), '--pretty', 'false'], modeDir)
  const ms = Date.now() - started
  const { located, other } = parseDiagnostics(result.out)
  for (const d of located) {
    const entry = byFile.get(relative(modeDir, resolvePath(modeDir, d.file)))
    if (entry === undefined) { other.push(`${d.file}(${d.line},${d.column}): ${d.code} ${d.message}`); continue }
    const hint = entry.unit.hint?.(d)
    entry.errors.push(`${entry.unit.file}:${entry.unit.firstLine + d.line - 1}:${d.column} [${mode.name}, as ${entry.as === 'esm' ? 'ES module' : 'CommonJS'}] ${d.code}: ${d.message}${hint !== undefined ? `\n  -> ${hint}` : ''}`)
  }
  if (result.code !== 0 && located.length === 0 && other.length === 0) other.push(`tsc exited with ${result.code}`)
  return { mode, units: entries, other, code: result.code, ms }
}
