// discovery: the instance's scrape target in a Prometheus file_sd file of its own, written after
// listen, removed on close. The file (name, content, atomic write, removal, other instances' files
// untouched), the announced address, the option errors, and end to end a real Prometheus that
// finds two app processes through file_sd_configs and drops the one that closed.
import t from 'tap'
import type { Test } from 'tap'
import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, watch, writeFileSync } from 'node:fs'
import * as fs from 'node:fs'
import cluster from 'node:cluster'
import { createSecureServer as createHttp2SecureServer } from 'node:http2'
import { createServer as createHttpsServer } from 'node:https'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import observability from '../lib/index'
import type { DiscoveryOptions, ObservabilityOptions } from '../lib/index'
import { startPrometheus, skipReasonIfAbsent } from './helpers/prometheus'
import type { RunningPrometheus } from './helpers/prometheus'
import { childEnv, startNodeApp } from './helpers/child'

const skip = skipReasonIfAbsent()
const FILE_NAME = /^(.+)-(\d+)-(\d+)-[0-9a-f]{8}\.json$/

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'fo-discovery-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A started app with discovery, closed at teardown. */
async function listening (t: Test, discovery: DiscoveryOptions, options: ObservabilityOptions = {}, host = '127.0.0.1', fastify: FastifyInstance = Fastify()): Promise<FastifyInstance> {
  t.teardown(() => fastify.close())
  await fastify.register(observability, { tracing: false, metrics: { defaultMetrics: false }, discovery, ...options })
  await fastify.listen({ port: 0, host })
  return fastify
}

function jsonFiles (dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
}

function readGroups (dir: string, file: string): unknown {
  return JSON.parse(readFileSync(join(dir, file), 'utf8'))
}

function portOf (app: FastifyInstance): number {
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on a port')
  return address.port
}

/** The one file of an app in dir: named hostname-pid-port-random.json. */
function fileOf (dir: string, app: FastifyInstance): string {
  const port = portOf(app)
  const files = jsonFiles(dir).filter((f) => FILE_NAME.exec(f)?.[3] === String(port))
  if (files.length !== 1) throw new Error(`expected one file for port ${port} in ${dir}, found ${JSON.stringify(readdirSync(dir))}`)
  return files[0]
}

t.test('after listen: a file of its own with the target; removed on close', async (t) => {
  const dir = tempDir(t)
  const app = await listening(t, { directory: dir })
  const port = portOf(app)
  t.same(readdirSync(dir), [fileOf(dir, app)], 'one file, nothing else (no temp file left)')
  const [, host, pid, filePort] = FILE_NAME.exec(fileOf(dir, app)) ?? []
  t.equal(host, hostname().replace(/[^A-Za-z0-9._-]/g, '_'), 'named by host name')
  t.equal(pid, String(process.pid), 'pid')
  t.equal(filePort, String(port), 'and port')
  t.same(readGroups(dir, fileOf(dir, app)), [{ targets: [`127.0.0.1:${port}`], labels: {} }],
    'Prometheus file_sd: the listening address; no __metrics_path__ for /metrics')
  await app.close()
  t.same(readdirSync(dir), [], 'removed on close')
})

t.test('no file before listen, nor for an app closed without listening', async (t) => {
  const dir = tempDir(t)
  const app = Fastify()
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false }, discovery: { directory: dir } })
  await app.ready()
  t.equal((await app.inject('/metrics')).statusCode, 200)
  t.same(readdirSync(dir), [])
  await app.close()
  t.same(readdirSync(dir), [])
})

t.test('the write is atomic: the file appears complete under its .json name, through a temp file in the same directory', async (t) => {
  const dir = tempDir(t)
  // inotify reports a write into a file as 'change' and a create or rename as 'rename', in order:
  // a *.json name never 'change'd was only ever renamed into place.
  const events: Array<[string, string]> = []
  let sentinelSeen: () => void
  const sentinel = new Promise<void>((resolve) => { sentinelSeen = resolve })
  const watcher = watch(dir, (type, name) => {
    events.push([type, String(name)])
    if (name === 'sentinel') sentinelSeen()
  })
  t.teardown(() => watcher.close())
  const app = await listening(t, { directory: dir })
  writeFileSync(join(dir, 'sentinel'), '') // its event comes after every event of the write
  await sentinel
  const file = fileOf(dir, app)
  const temps = [...new Set(events.map(([, name]) => name).filter((name) => name !== file && name !== 'sentinel'))]
  t.ok(temps.length > 0, `a temp file in the same directory first (events: ${JSON.stringify(events)})`)
  t.same(temps.filter((name) => name.endsWith('.json')), [], 'whose name no *.json glob matches')
  t.same(events.filter(([type, name]) => type === 'change' && name.endsWith('.json')), [], 'nothing is written into a *.json name')
  t.ok(events.some(([type, name]) => type === 'rename' && name === file), 'the file arrives by rename')
  t.same(readdirSync(dir).sort(), [file, 'sentinel'].sort(), 'no temp file left')
})

t.test('two apps in one directory: two files; closing one leaves the other, and files of others are never touched', async (t) => {
  const dir = tempDir(t)
  const foreign = 'otherhost-4242-9100-0123abcd.json'
  writeFileSync(join(dir, foreign), '[{"targets":["otherhost:9100"],"labels":{}}]')
  const a = await listening(t, { directory: dir })
  const b = await listening(t, { directory: dir })
  const fileA = fileOf(dir, a)
  const fileB = fileOf(dir, b)
  t.not(fileA, fileB)
  t.same(jsonFiles(dir), [fileA, fileB, foreign].sort(), 'one file each, next to the foreign one')
  await a.close()
  t.same(jsonFiles(dir), [fileB, foreign].sort(), "a's file went, b's stays")
  t.same(readGroups(dir, fileB), [{ targets: [`127.0.0.1:${portOf(b)}`], labels: {} }], "b's file unchanged")
  await b.close()
  t.same(jsonFiles(dir), [foreign], 'the foreign file is left alone')
})

t.test('labels, and __metrics_path__ for another endpoint (under the register prefix too)', async (t) => {
  const dir = tempDir(t)
  const app = await listening(t, { directory: dir, labels: { service: 'shop', env: 'prod' } }, { metrics: { endpoint: '/internal/metrics', defaultMetrics: false } })
  t.same(readGroups(dir, fileOf(dir, app)), [{
    targets: [`127.0.0.1:${portOf(app)}`],
    labels: { service: 'shop', env: 'prod', __metrics_path__: '/internal/metrics' }
  }])

  const prefixed = Fastify()
  t.teardown(() => prefixed.close())
  prefixed.register(async (child) => {
    await child.register(observability, { tracing: false, metrics: { defaultMetrics: false }, discovery: { directory: dir } })
  }, { prefix: '/v1' })
  await prefixed.listen({ port: 0, host: '127.0.0.1' })
  t.equal((await prefixed.inject('/v1/metrics')).statusCode, 200, 'the route is under the prefix')
  t.match(readGroups(dir, fileOf(dir, prefixed)), [{ labels: { __metrics_path__: '/v1/metrics' } }], 'and so is the announced path')
})

t.test('an https server: __scheme__ https', async (t) => {
  const dir = tempDir(t)
  // No certificate is needed to listen; nothing here connects.
  const app = await listening(t, { directory: dir }, {}, '127.0.0.1', Fastify({ serverFactory: (handler) => createHttpsServer({}, handler) }))
  t.match(readGroups(dir, fileOf(dir, app)), [{ labels: { __scheme__: 'https' } }])
})

t.test('HTTP/2 without TLS (h2c), which Prometheus cannot scrape: announced, with a warning; HTTP/2 over TLS: none', async (t) => {
  const dir = tempDir(t)
  const warnings: Array<Error & { code?: string }> = []
  const onWarning = (w: Error & { code?: string }): void => { warnings.push(w) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const h2cWarnings = async (): Promise<string[]> => {
    await new Promise((resolve) => setImmediate(resolve)) // warnings are emitted on the next tick
    return warnings.splice(0).filter((w) => w.code === 'FST_OBSERVABILITY_DISCOVERY_H2C').map((w) => w.message)
  }

  const h2c = await listening(t, { directory: dir }, {}, '127.0.0.1', Fastify({ http2: true }))
  t.same(readGroups(dir, fileOf(dir, h2c)), [{ targets: [`127.0.0.1:${portOf(h2c)}`], labels: {} }], 'announced all the same')
  const [message, ...more] = await h2cWarnings()
  t.match(message, new RegExp(`discovery announces 127\\.0\\.0\\.1:${portOf(h2c)}, an HTTP/2 server without TLS \\(h2c\\): Prometheus .* every scrape .* fails`), 'a process warning (the logger is off)')
  t.same(more, [], 'one')
  await h2c.close()

  let logged = ''
  const stream = new Writable({ write (chunk, _enc, cb) { logged += String(chunk); cb() } })
  await listening(t, { directory: dir }, {}, '127.0.0.1', Fastify({ http2: true, logger: { level: 'warn', stream } }))
  t.match(logged.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown), [{ level: 40, msg: /an HTTP\/2 server without TLS \(h2c\)/ }], 'with a logger: a warn log line')
  t.same(await h2cWarnings(), [], 'and no process warning')

  // No certificate is needed to listen; nothing here connects.
  const h2 = await listening(t, { directory: dir }, {}, '127.0.0.1', Fastify({ serverFactory: (handler) => createHttp2SecureServer({}, handler) }))
  t.match(readGroups(dir, fileOf(dir, h2)), [{ labels: { __scheme__: 'https' } }], 'HTTP/2 over TLS: https')
  t.same(await h2cWarnings(), [], 'and no warning')
  const h1 = await listening(t, { directory: dir })
  t.ok(fileOf(dir, h1))
  t.same(await h2cWarnings(), [], 'HTTP/1.1: no warning')
})

t.test('the announced address: override, wildcard, IPv6', async (t) => {
  const dir = tempDir(t)
  const cases: Array<[string | undefined, string, (port: number) => string]> = [
    ['shop.internal:9100', '127.0.0.1', () => 'shop.internal:9100'],
    ['shop.internal', '127.0.0.1', (port) => `shop.internal:${port}`],
    ['10.0.0.7:8080', '127.0.0.1', () => '10.0.0.7:8080'],
    ['[2001:db8::1]:9000', '127.0.0.1', () => '[2001:db8::1]:9000'],
    ['2001:db8::1', '127.0.0.1', (port) => `[2001:db8::1]:${port}`],
    // A bare IPv6 address is the host, all of it: its last group is no port (brackets give one).
    ['2001:db8::1:3000', '127.0.0.1', (port) => `[2001:db8::1:3000]:${port}`],
    [undefined, '0.0.0.0', (port) => `${hostname()}:${port}`]
  ]
  for (const [address, host, expected] of cases) {
    const app = await listening(t, { directory: dir, ...(address === undefined ? {} : { address }) }, {}, host)
    t.same(readGroups(dir, fileOf(dir, app)), [{ targets: [expected(portOf(app))], labels: {} }], `address ${address ?? '(none)'}, listening on ${host}`)
    await app.close()
  }
  // Where the host has IPv6: the wildcard :: and the loopback ::1 (bracketed).
  for (const [host, expected] of [['::', (port: number) => `${hostname()}:${port}`], ['::1', (port: number) => `[::1]:${port}`]] as const) {
    const app = Fastify()
    const ok = await listening(t, { directory: dir }, {}, host, app).then(() => true, (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EADDRNOTAVAIL' && err.code !== 'EAFNOSUPPORT') throw err
      return false
    })
    if (!ok) { t.comment(`no IPv6 here: ${host} not checked`); continue }
    t.same(readGroups(dir, fileOf(dir, app)), [{ targets: [expected(portOf(app))], labels: {} }], `listening on ${host}`)
    await app.close()
  }
})

t.test('a Unix socket: announced only with a host:port address', async (t) => {
  const dir = tempDir(t)
  const socket = join(dir, 'app.sock')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false }, discovery: { directory: dir, address: 'shop.internal:9100' } })
  await app.listen({ path: socket })
  t.same(readGroups(dir, jsonFiles(dir)[0]), [{ targets: ['shop.internal:9100'], labels: {} }], 'the address given')
  t.match(jsonFiles(dir), [new RegExp(`-${process.pid}-9100-[0-9a-f]{8}\\.json$`)], 'named by the announced port')
  await app.close()

  let logged = ''
  const stream = new Writable({ write (chunk, _enc, cb) { logged += String(chunk); cb() } })
  const bare = Fastify({ logger: { level: 'error', stream } })
  t.teardown(() => bare.close())
  await bare.register(observability, { tracing: false, metrics: { defaultMetrics: false }, discovery: { directory: dir, address: 'shop.internal' } })
  await bare.listen({ path: socket })
  t.same(jsonFiles(dir), [], 'no port to announce: no file')
  t.match(logged, /no discovery file written in .*: the server listens on .*app\.sock, not on a TCP port: set discovery.address to the host:port/)
})

t.test('a write failure at listen: the app serves, the error is logged (or, with the logger off, a process warning)', async (t) => {
  let logged = ''
  const stream = new Writable({ write (chunk, _enc, cb) { logged += String(chunk); cb() } })
  const dir = tempDir(t)
  const gone = join(dir, 'gone')
  mkdirSync(gone)
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  await app.register(observability, { tracing: false, metrics: { defaultMetrics: false }, discovery: { directory: gone } })
  rmSync(gone, { recursive: true }) // after the register-time check
  await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await fetch(`http://127.0.0.1:${portOf(app)}/metrics`)
  t.equal(res.status, 200, 'listen resolved and the app serves')
  await res.text()
  const line = logged.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { level: number, msg: string }).find((l) => /discovery/.test(l.msg))
  t.equal(line?.level, 50, 'at level error')
  t.match(line?.msg, /no discovery file written in .*gone, Prometheus will not find this instance: ENOENT/)
  await app.close()

  const quiet = Fastify()
  t.teardown(() => quiet.close())
  mkdirSync(gone)
  await quiet.register(observability, { tracing: false, metrics: { defaultMetrics: false }, discovery: { directory: gone } })
  rmSync(gone, { recursive: true })
  const warnings: Array<Error & { code?: string }> = []
  const onWarning = (w: Error & { code?: string }): void => { warnings.push(w) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  await quiet.listen({ port: 0, host: '127.0.0.1' })
  await new Promise((resolve) => setImmediate(resolve)) // warnings are emitted on the next tick
  const warning = warnings.find((w) => w.code === 'FST_OBSERVABILITY_DISCOVERY_WRITE_FAILED')
  t.ok(warning, `a process warning (got ${JSON.stringify(warnings.map((w) => w.message))})`)
  t.match(warning?.message, /no discovery file written in .*gone/)
})

t.test('discovery: false is off', async (t) => {
  const dir = tempDir(t)
  await listening(t, false as unknown as DiscoveryOptions)
  t.same(readdirSync(dir), [])
})

// Each bad option fails register with the option error, naming the option and the value.
t.test('option errors', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'a-file')
  writeFileSync(file, '')
  const bad: Array<[string, unknown, Partial<ObservabilityOptions>, RegExp]> = [
    ['not an object', 'yes', {}, /option "discovery" must be false or an object \{ directory, labels\?, address\? \}, got "yes"/],
    ['an unknown key', { directory: dir, path: '/x' }, {}, /option "discovery.path" is not a known option \(known: directory, labels, address\), got "\/x"/],
    ['no directory', {}, {}, /option "discovery.directory" must be a non-empty path to a directory, got undefined/],
    ['an empty directory', { directory: '' }, {}, /option "discovery.directory" must be a non-empty path to a directory, got ""/],
    ['a missing directory', { directory: join(dir, 'nope') }, {}, /option "discovery.directory" must be an existing directory \(ENOENT\), got ".*nope"/],
    ['a file for a directory', { directory: file }, {}, /option "discovery.directory" must be a directory \(it is a file\), got ".*a-file"/],
    ['labels not an object', { directory: dir, labels: ['a'] }, {}, /option "discovery.labels" must be an object of label name to string value, got \["a"\]/],
    ['an invalid label name', { directory: dir, labels: { 'bad-name': 'x' } }, {}, /option "discovery.labels.bad-name" must be a valid Prometheus label name .*, got "bad-name"/],
    ['a label name with __', { directory: dir, labels: { __scheme__: 'https' } }, {}, /option "discovery.labels.__scheme__" must be a valid Prometheus label name \(.*not starting with a digit or __\), got "__scheme__"/],
    ['a label value not a string', { directory: dir, labels: { team: 1 } }, {}, /option "discovery.labels.team" must be a string, got 1/],
    ['an empty address', { directory: dir, address: '' }, {}, /option "discovery.address" must be a host or host:port .*, got ""/],
    ['an address with a scheme', { directory: dir, address: 'http://shop:3000' }, {}, /option "discovery.address" must be a host or host:port without a scheme or path .*, got "http:\/\/shop:3000"/],
    ['an address with a path', { directory: dir, address: 'shop/metrics' }, {}, /option "discovery.address" .*, got "shop\/metrics"/],
    ['port 0', { directory: dir, address: 'shop:0' }, {}, /option "discovery.address" .*, got "shop:0"/],
    ['a port too big', { directory: dir, address: 'shop:65536' }, {}, /option "discovery.address" .*, got "shop:65536"/],
    ['a bad IPv4', { directory: dir, address: '300.1.1.1:80' }, {}, /option "discovery.address" .*, got "300.1.1.1:80"/],
    ['brackets around no IPv6', { directory: dir, address: '[shop]:80' }, {}, /option "discovery.address" .*, got "\[shop\]:80"/],
    // Prometheus cannot parse a target with a zone id.
    ['an IPv6 zone id', { directory: dir, address: 'fe80::1%eth0' }, {}, /option "discovery.address" must not have an IPv6 zone id \(%eth0\), which Prometheus cannot parse in a target: .*, got "fe80::1%eth0"/],
    ['a % in a host name', { directory: dir, address: 'shop%20a' }, {}, /option "discovery.address" must be a host or host:port without a scheme or path .*, got "shop%20a"/],
    ['an IPv6 zone id in brackets', { directory: dir, address: '[fe80::1%25eth0]:3000' }, {}, /option "discovery.address" must not have an IPv6 zone id \(%25eth0\).*, got "\[fe80::1%25eth0\]:3000"/],
    ['an address not a string', { directory: dir, address: 3000 }, {}, /option "discovery.address" .*, got 3000/],
    ['an address true', { directory: dir, address: true }, {}, /option "discovery.address" .*, got true/],
    ['metrics off', { directory: dir }, { metrics: false }, /option "discovery" needs the metrics endpoint, but metrics is false: there is nothing to scrape, got \{"directory":".*"\}/],
    ['no metrics endpoint', { directory: dir }, { metrics: { endpoint: false, defaultMetrics: false } }, /option "discovery" needs the metrics endpoint, but metrics.endpoint is false: there is nothing to scrape here .*, got \{"directory":".*"\}/]
  ]
  for (const [what, discovery, options, message] of bad) {
    const app = Fastify()
    t.teardown(() => app.close())
    const err = await app.register(observability, { tracing: false, metrics: { defaultMetrics: false }, ...options, discovery } as ObservabilityOptions).ready().then(() => null, (e: Error & { code?: string }) => e)
    t.equal(err?.code, 'FST_OBSERVABILITY_INVALID_OPTION', `${what}: the option error`)
    t.match(err?.message, message, `${what}: names the option and the value`)
  }
})

t.test('option errors: a directory this process cannot write to', async (t) => {
  const dir = tempDir(t)
  const expected = /option "discovery.directory" must be a directory this process can write to \(EACCES\), got ".*"/
  // Root writes anywhere: the check is seen through a file system that refuses.
  const { resolveOptions } = t.mockRequire<typeof import('../lib/options')>('../lib/options', {
    'node:fs': { ...fs, accessSync: () => { throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }) } }
  })
  const err = (() => { try { resolveOptions({ discovery: { directory: dir } }) } catch (e) { return e as Error & { code?: string } } })()
  t.equal(err?.code, 'FST_OBSERVABILITY_INVALID_OPTION')
  t.match(err?.message, expected)
  if (process.getuid?.() === 0) return
  const readOnly = join(dir, 'read-only')
  mkdirSync(readOnly, { mode: 0o555 })
  chmodSync(readOnly, 0o555)
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(app.register(observability, { tracing: false, discovery: { directory: readOnly } }).ready(), expected, 'a read-only directory, for real')
})

t.test('processes: SIGTERM (close) removes the file, process.exit() without close too, a crash (SIGKILL) leaves it', async (t) => {
  const dir = tempDir(t)
  const env = childEnv({ DISCOVERY_DIR: dir })
  const owned = (pid: number | undefined): string[] => jsonFiles(dir).filter((f) => FILE_NAME.exec(f)?.[2] === String(pid))

  const closed = startNodeApp<{ port: number }>(t, ['test/fixtures/discovery-app.cjs'], env)
  const exiting = startNodeApp<{ port: number }>(t, ['test/fixtures/discovery-app.cjs'], { ...env, EXIT_AFTER_LISTEN: '1' })
  const crashed = startNodeApp<{ port: number }>(t, ['test/fixtures/discovery-app.cjs'], env)
  await Promise.all([closed.ready, exiting.ready, crashed.ready])
  t.equal(owned(closed.child.pid).length, 1, 'written by the time the app says it listens')

  t.match(await closed.stop(), { code: 0 })
  t.same(owned(closed.child.pid), [], 'SIGTERM: app.close() removed it')
  t.notMatch(closed.stderr(), /FST_OBSERVABILITY_DISCOVERY_CLUSTER_WORKER/, 'no cluster warning outside a cluster worker')
  t.match(await exiting.exited, { code: 0 })
  t.same(owned(exiting.child.pid), [], 'process.exit() without close: removed on exit')
  crashed.child.kill('SIGKILL')
  await crashed.exited
  t.equal(owned(crashed.child.pid).length, 1, 'a crash leaves the file (Prometheus then sees up == 0)')
})

t.test('a node:cluster worker: a process warning at register, once (every worker announces the same host:port)', async (t) => {
  const dir = tempDir(t)
  const app = startNodeApp<{ port: number }>(t, ['test/fixtures/discovery-app.cjs'], childEnv({ DISCOVERY_DIR: dir, CLUSTER_WORKER: '1' }))
  const { port } = await app.ready
  t.same(jsonFiles(dir).map((f) => readGroups(dir, f)), [[{ targets: [`127.0.0.1:${port}`], labels: {} }]], 'the worker announces itself all the same')
  t.match(await app.stop(), { code: 0 })
  t.same(jsonFiles(dir), [], 'SIGTERM on to the worker: its file went on close')
  const warnings = app.stderr().match(/\[FST_OBSERVABILITY_DISCOVERY_CLUSTER_WORKER\] Warning: .*/g) ?? []
  t.equal(warnings.length, 1, `one warning on stderr (the logger is off)\n${app.stderr()}`)
  t.match(warnings[0], /discovery in a cluster worker .*: every worker announces the same host:port, .*counters look like resets/)
})

t.test('the cluster warning: once per process however many apps, logged at warn with a logger', async (t) => {
  const dir = tempDir(t)
  const { announceTarget } = t.mockRequire<typeof import('../lib/discovery')>('../lib/discovery', {
    'node:cluster': { ...cluster, isWorker: true, isPrimary: false }
  })
  const warnings: Array<Error & { code?: string }> = []
  const onWarning = (w: Error & { code?: string }): void => { warnings.push(w) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  let logged = ''
  const stream = new Writable({ write (chunk, _enc, cb) { logged += String(chunk); cb() } })
  const apps = [Fastify({ logger: { level: 'warn', stream } }), Fastify(), Fastify()]
  for (const app of apps) {
    t.teardown(() => app.close())
    announceTarget(app, { directory: dir, labels: {}, host: undefined, port: undefined, endpoint: '/metrics' })
  }
  await new Promise((resolve) => setImmediate(resolve)) // warnings are emitted on the next tick
  const lines = logged.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { level: number, msg: string })
  t.match(lines, [{ level: 40, msg: /discovery in a cluster worker/ }], 'the first app: a warn log line')
  t.equal(lines.length, 1, 'once')
  t.same(warnings.filter((w) => w.code === 'FST_OBSERVABILITY_DISCOVERY_CLUSTER_WORKER'), [], 'no process warning: it was logged, and the other apps are not told again')
})

interface ActiveTarget { labels: Record<string, string>, scrapeUrl: string, health: string }

async function activeTargets (prom: RunningPrometheus): Promise<ActiveTarget[]> {
  const res = await fetch(`${prom.url}/api/v1/targets?state=active`, { signal: AbortSignal.timeout(5000) })
  const body = await res.json() as { data: { activeTargets: ActiveTarget[] } }
  return body.data.activeTargets
}

/** Poll until check passes (Prometheus applies discovery changes in 5 s steps); the last value either way. */
async function pollTargets (prom: RunningPrometheus, check: (targets: ActiveTarget[]) => boolean): Promise<ActiveTarget[]> {
  const end = Date.now() + 60_000
  for (;;) {
    const targets = await activeTargets(prom)
    if (check(targets) || Date.now() > end) return targets
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

t.test('a real Prometheus finds two app processes through file_sd_configs, and drops the one that closed', skip === null ? {} : { skip }, async (t) => {
  const dir = tempDir(t)
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    '  - job_name: discovered',
    '    file_sd_configs:',
    `      - files: [${JSON.stringify(join(dir, '*.json'))}]`,
    '        refresh_interval: 1s', // besides the directory watch, should inotify be missing
    ''
  ].join('\n')
  const started = startPrometheus({ targets: [], config })
  t.teardown(async () => { await (await started.catch(() => null))?.stop() })
  const a = startNodeApp<{ port: number }>(t, ['test/fixtures/discovery-app.cjs'], childEnv({ DISCOVERY_DIR: dir, DISCOVERY_LABELS: '{"app":"a"}' }))
  const b = startNodeApp<{ port: number }>(t, ['test/fixtures/discovery-app.cjs'], childEnv({ DISCOVERY_DIR: dir, DISCOVERY_LABELS: '{"app":"b"}', METRICS_ENDPOINT: '/internal/metrics' }))
  const [prom, { port: portA }, { port: portB }] = await Promise.all([started, a.ready, b.ready])
  const instanceA = `127.0.0.1:${portA}`
  const instanceB = `127.0.0.1:${portB}`

  const up = await prom.waitFor('up{job="discovered"} == 1', (r) => r.length === 2, 60_000)
  t.same(up.map((s) => `${s.metric.instance} ${s.metric.app}`).sort(), [`${instanceA} a`, `${instanceB} b`].sort(),
    `both instances up == 1, with their labels\n${prom.logs()}`)
  const targets = await activeTargets(prom)
  t.equal(targets.find((x) => x.labels.instance === instanceB)?.scrapeUrl, `http://${instanceB}/internal/metrics`, "b scraped at its endpoint (the file's __metrics_path__)")

  t.match(await a.stop(), { code: 0 }, 'a closed')
  const after = await pollTargets(prom, (ts) => !ts.some((x) => x.labels.instance === instanceA))
  t.notOk(after.some((x) => x.labels.instance === instanceA), `a's target is gone from /api/v1/targets\n${JSON.stringify(after)}`)
  t.ok(after.some((x) => x.labels.instance === instanceB), "b's target stays")
  const stillUp = await prom.waitFor(`up{instance="${instanceB}"}`, (r) => r.length === 1 && r[0].value[1] === '1')
  t.equal(stillUp[0]?.value[1], '1', 'and b is still up')
  await b.stop()
})
