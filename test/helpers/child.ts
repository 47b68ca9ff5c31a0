// Shared by the tests that start app processes (sdk, wire): their environment and plain HTTP gets.
import { request } from 'node:http'

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
