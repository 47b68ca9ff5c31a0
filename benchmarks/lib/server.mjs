// Common app factory and child-process runtime for the throughput variants.
//
// Every file in benchmarks/servers/ calls runServer(): it builds the same
// Fastify 5 app (same routes, same handlers, logger off) after the variant's
// own set-up, listens on 127.0.0.1 on a free port and answers control
// messages from the harness over the IPC channel:
//
//   -> { type: 'start' }     begin a measurement window
//   <- { type: 'started' }
//   -> { type: 'stop' }      end it
//   <- { type: 'stopped', cpuUserUs, cpuSystemUs, elapsedMs, requests, ... }
//   -> { type: 'shutdown' }  close the app and exit
//
// The figures are the server's own process.cpuUsage() deltas, so the load
// generator's CPU is never counted.
import { performance } from 'node:perf_hooks'
import { writeFileSync } from 'node:fs'
import path from 'node:path'

// With BENCH_CPU_PROF_DIR set, the V8 CPU profiler runs over exactly the
// measured window (start..stop) and the profile is written to that folder,
// with the number of requests served in a "$bench" field.
const PROF_DIR = process.env.BENCH_CPU_PROF_DIR
let inspector = null
async function profilerSession () {
  if (!inspector) {
    const { Session } = await import('node:inspector')
    inspector = new Session()
    inspector.connect()
  }
  return inspector
}
function post (session, method, params) {
  return new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))))
}

export const USER_IDS = 1000

const userSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    email: { type: 'string' },
    active: { type: 'boolean' }
  }
}

/** Routes shared by every variant. Registered after the variant's plugins. */
export function addRoutes (app) {
  app.get('/api/users/:id', {
    schema: { response: { 200: userSchema } }
  }, async (request) => {
    const id = Number(request.params.id)
    return { id, name: `user-${id}`, email: `user-${id}@example.test`, active: (id & 1) === 0 }
  })
  app.get('/api/health', async () => ({ status: 'ok' }))
}

/** Import the plugin under test by its package name (self-reference via the exports map). */
export async function loadPlugin () {
  let mod
  try {
    mod = await import('fastify-observability')
  } catch (err) {
    const e = new Error(`cannot import 'fastify-observability' (run \`npm run build\` first): ${err.message}`)
    e.code = 'PLUGIN_NOT_BUILT'
    throw e
  }
  const plugin = mod.default?.default ?? mod.default ?? mod
  if (typeof plugin !== 'function') throw new Error('fastify-observability has no default export function')
  return plugin
}

function send (msg) {
  if (process.send) process.send(msg)
  else console.log(JSON.stringify(msg))
}

/**
 * @param {object} v
 * @param {string} v.name variant name
 * @param {() => Promise<object|void>} [v.setup] runs before fastify is imported; may return { info, stats }
 * @param {(app: any, ctx: object) => Promise<void>|void} [v.register] registers plugins/hooks before the routes
 */
export async function runServer ({ name, setup, register, fastifyOptions }) {
  let app
  let ctx = {}
  try {
    ctx = (setup ? await setup() : undefined) ?? {}
    const { default: Fastify } = await import('fastify')
    app = Fastify({ logger: false, ...fastifyOptions })
    if (register) await register(app, ctx)
    addRoutes(app)
    await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? 0) })
  } catch (err) {
    send({ type: 'error', variant: name, message: err && err.message ? err.message : String(err), code: err?.code })
    // Give the IPC message a moment to flush, then leave.
    setTimeout(() => process.exit(3), 50)
    return
  }

  let served = 0
  app.server.on('request', () => { served++ })

  let window = null
  let shuttingDown = false
  const port = app.server.address().port

  async function onMessage (msg) {
    if (!msg || typeof msg !== 'object') return
    if (msg.type === 'start') {
      if (PROF_DIR) {
        const session = await profilerSession()
        await post(session, 'Profiler.enable')
        await post(session, 'Profiler.setSamplingInterval', { interval: 100 })
        await post(session, 'Profiler.start')
      }
      window = {
        cpu: process.cpuUsage(),
        t0: process.hrtime.bigint(),
        served,
        elu: performance.eventLoopUtilization(),
        stats: ctx.stats ? ctx.stats() : null
      }
      send({ type: 'started' })
    } else if (msg.type === 'stop') {
      if (!window) return send({ type: 'stopped', error: 'no window' })
      const cpu = process.cpuUsage(window.cpu)
      const elapsedMs = Number(process.hrtime.bigint() - window.t0) / 1e6
      const elu = performance.eventLoopUtilization(window.elu)
      const mem = process.memoryUsage()
      const ru = process.resourceUsage()
      const stats = ctx.stats ? ctx.stats() : null
      const spans = stats && window.stats ? stats.spansExported - window.stats.spansExported : null
      if (PROF_DIR) {
        const { profile } = await post(await profilerSession(), 'Profiler.stop')
        profile.$bench = { variant: name, requests: served - window.served, node: process.version, cpuUs: cpu.user + cpu.system }
        writeFileSync(path.join(PROF_DIR, `${name}-${Date.now()}.cpuprofile`), JSON.stringify(profile))
      }
      send({
        type: 'stopped',
        cpuUserUs: cpu.user,
        cpuSystemUs: cpu.system,
        elapsedMs,
        requests: served - window.served,
        eventLoopUtilization: elu.utilization,
        maxRssBytes: ru.maxRSS * 1024,
        rssBytes: mem.rss,
        heapUsedBytes: mem.heapUsed,
        spansExported: spans
      })
      window = null
    } else if (msg.type === 'shutdown') {
      if (shuttingDown) return // once: a second run would race the first to process.exit()
      shuttingDown = true
      try { await app.close() } catch {}
      try { if (ctx.sdk) await ctx.sdk.shutdown() } catch {}
      process.exit(0)
    }
  }

  if (process.send) {
    process.on('message', (m) => { onMessage(m) })
    process.on('disconnect', () => process.exit(0))
  } else {
    process.on('SIGINT', () => onMessage({ type: 'shutdown' }))
    process.on('SIGTERM', () => onMessage({ type: 'shutdown' }))
  }
  send({ type: 'ready', variant: name, port, pid: process.pid, node: process.version, info: ctx.info ?? null })
}
