// Shared by the tests that start app processes (sdk, wire): starting one, its environment and
// plain HTTP gets.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { resolve as resolvePath } from 'node:path'
import type { Test } from 'tap'

const ROOT = resolvePath(__dirname, '..', '..')

type Exit = { code: number | null, signal: NodeJS.Signals | null }

export interface NodeApp<Ready> {
  child: ChildProcess
  /** The app's first stdout line starting with {"port":, parsed. */
  ready: Promise<Ready>
  exited: Promise<Exit>
  stdout: () => string
  stderr: () => string
  /** SIGTERM and wait for the exit. */
  stop: () => Promise<Exit>
}

/** `node <args>` in the repo root, killed at the test's teardown if it is still running. */
export function startNodeApp<Ready> (t: Test, args: string[], env: NodeJS.ProcessEnv): NodeApp<Ready> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr!.on('data', (d: Buffer) => { err += String(d) })
  const exited = new Promise<Exit>(resolve => {
    child.on('exit', (code, signal) => resolve({ code, signal }))
  })
  const ready = new Promise<Ready>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += String(d)
      const line = out.split('\n').find(l => l.startsWith('{"port":'))
      if (line !== undefined) resolve(JSON.parse(line) as Ready)
    })
    void exited.then(({ code, signal }) => reject(new Error(`app exited (code ${code}, signal ${signal}) before listening; stderr:\n${err}`)))
  })
  ready.catch(() => {}) // observed by the tests that need it
  const running = (): boolean => child.exitCode === null && child.signalCode === null
  t.teardown(async () => {
    if (running()) {
      child.kill('SIGKILL')
      await exited
    }
  })
  return {
    child,
    ready,
    exited,
    stdout: () => out,
    stderr: () => err,
    stop: () => {
      if (running()) child.kill('SIGTERM')
      return exited
    }
  }
}

/**
 * The first stdout line of the app that is a JSON object with `key`, parsed (its value): what the
 * app printed when the event happened. Rejects if the app exits first.
 */
export function stdoutEvent<T> (app: NodeApp<unknown>, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const prefix = `{${JSON.stringify(key)}:`
    const check = (): boolean => {
      const line = app.stdout().split('\n').find(l => l.startsWith(prefix) && l.endsWith('}'))
      if (line === undefined) return false
      app.child.stdout!.off('data', onData)
      resolve((JSON.parse(line) as Record<string, T>)[key])
      return true
    }
    // After the app's own listener (registered by startNodeApp), which appends to stdout().
    const onData = (): void => { check() }
    app.child.stdout!.on('data', onData)
    if (!check()) void app.exited.then(() => { if (!check()) reject(new Error(`app exited without printing ${prefix}...`)) })
  })
}

/** The parent's env without OTEL_*, npm_package_* and tap's NODE_OPTIONS / coverage. */
export function childEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('OTEL_') || k.startsWith('npm_package_') || k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE') continue
    if (k.startsWith('TAP') || k.startsWith('_TAPJS')) continue
    env[k] = v
  }
  return { ...env, OTEL_LOG_LEVEL: 'error', ...extra }
}

/** GET on 127.0.0.1 without keep-alive (a child's shutdown must not wait for idle sockets). */
export function getText (port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}
