// Soak: `node benchmarks/soak.mjs [--minutes 5] [--connections 20]` (not in the test suite). An app
// with the SDK preload exporting to a collector that is down (a port nobody listens on), under mixed
// load for a fixed time: answered, failing, unmatched and hostile requests, scrapes. Every 10 s the
// app reports its heap after a full GC, so a leak shows as a slope, not as one high reading. Prints
// the samples, the trend of the second half (MiB per minute) and the lost spans the app counted.
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const arg = (k, d) => { const i = process.argv.indexOf(k); return i === -1 ? d : process.argv[i + 1] }

if (process.argv.includes('--app')) {
  // The app, run with --require ./dist/register.js --expose-gc.
  const { default: Fastify } = await import('fastify')
  const { default: observability } = await import('fastify-observability')
  const app = Fastify()
  await app.register(observability, { include: ['/api/**'], metrics: { customLabels: { tenant: (req) => String(req.headers['x-tenant'] ?? 'none') } } })
  app.get('/api/users/:id', async (request) => ({ id: request.params.id }))
  app.get('/api/fail', async () => { throw new Error('always fails') })
  await app.listen({ host: '127.0.0.1', port: 0 })
  process.stdout.write(JSON.stringify({ port: app.server.address().port }) + '\n')
  setInterval(() => {
    globalThis.gc()
    const m = process.memoryUsage()
    process.stdout.write(JSON.stringify({ heapMiB: m.heapUsed / 2 ** 20, rssMiB: m.rss / 2 ** 20 }) + '\n')
  }, 10_000)
  process.on('SIGTERM', async () => { await app.close(); process.exit(0) })
} else {
  await main()
}

async function freePort () {
  return await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

async function main () {
  const minutes = Number(arg('--minutes', '5'))
  const dead = `http://127.0.0.1:${await freePort()}`
  const child = spawn(process.execPath, ['--require', './dist/register.js', '--expose-gc', fileURLToPath(import.meta.url), '--app'], {
    cwd: ROOT,
    env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: dead, OTEL_EXPORTER_OTLP_TIMEOUT: '1000', OTEL_SERVICE_NAME: 'soak' },
    stdio: ['ignore', 'pipe', 'ignore']
  })
  const samples = []
  const port = await new Promise((resolve, reject) => {
    let buf = ''
    child.stdout.on('data', (d) => {
      buf += d
      let nl
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = JSON.parse(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        if (line.port) resolve(line.port)
        else samples.push({ t: samples.length * 10, ...line })
      }
    })
    child.on('exit', (code) => reject(new Error(`app exited ${code}`)))
  })
  const base = `http://127.0.0.1:${port}`
  const long = 'x'.repeat(8192)
  // Mixed: answered (a few tenants: a custom label), failing, unmatched, hostile headers, scrapes.
  const requests = [
    { path: '/api/users/1', headers: { 'x-tenant': 't1' } },
    { path: '/api/users/2', headers: { 'x-tenant': 't2' } },
    { path: '/api/fail' },
    { path: '/nope/abc' },
    { path: '/api/users/3', headers: { traceparent: '00-zz-bad-01', 'user-agent': long, 'x-tenant': 't7' } },
    { path: '/metrics' }
  ]
  const result = await autocannon({ url: base, connections: Number(arg('--connections', '20')), duration: minutes * 60, requests })
  const failed = Number(/^fastify_observability_spans_export_failed_total (\d+)$/m.exec(await (await fetch(base + '/metrics')).text())?.[1] ?? NaN)
  await new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM') })

  console.log(`soak: ${minutes} min, ${result.requests.total} requests (${Math.round(result.requests.average)}/s), ${result.errors} errors, ${result.non2xx} non-2xx (the failing and unmatched routes), collector down at ${dead}`)
  console.log(`spans lost (counted by the app): ${failed}`)
  console.log('| t (s) | heap after GC (MiB) | RSS (MiB) |\n| ---: | ---: | ---: |')
  for (const s of samples) console.log(`| ${s.t} | ${s.heapMiB.toFixed(1)} | ${s.rssMiB.toFixed(1)} |`)
  // Least-squares slope over the second half: start-up and JIT warm-up left out.
  const half = samples.slice(Math.floor(samples.length / 2))
  const n = half.length
  const mx = half.reduce((a, s) => a + s.t, 0) / n
  const my = half.reduce((a, s) => a + s.heapMiB, 0) / n
  const slope = half.reduce((a, s) => a + (s.t - mx) * (s.heapMiB - my), 0) / half.reduce((a, s) => a + (s.t - mx) ** 2, 0)
  console.log(`heap trend over the second half: ${(slope * 60).toFixed(3)} MiB/min`)
}
