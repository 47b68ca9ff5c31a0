// Load generator child process (pinned to core 0 by the harness).
// Receives { type: 'run', id, url, paths, connections, duration, amount?, timeout? }
// over IPC, runs autocannon programmatically against 127.0.0.1 and replies
// { type: 'result', id, ... }. Exits when the IPC channel closes.
import autocannon from 'autocannon'

function assertLoopback (url) {
  const u = new URL(url)
  if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost' && u.hostname !== '[::1]') {
    throw new Error(`refusing to load a non-loopback address: ${u.hostname}`)
  }
}

async function run (msg) {
  assertLoopback(msg.url)
  const opts = {
    url: msg.url,
    connections: msg.connections,
    pipelining: 1,
    timeout: msg.timeout ?? 10,
    requests: msg.paths.map((path) => ({ method: 'GET', path }))
  }
  if (msg.rate) opts.overallRate = msg.rate
  if (msg.amount) opts.amount = msg.amount
  else opts.duration = msg.duration
  // autocannon's own latency histogram has 1 ms resolution; keep every
  // response time (float ms) to report sub-millisecond percentiles.
  let lat = new Float64Array(1 << 16)
  let n = 0
  const instance = autocannon(opts)
  instance.on('response', (client, statusCode, bytes, responseTime) => {
    if (n === lat.length) { const a = new Float64Array(lat.length * 2); a.set(lat); lat = a }
    lat[n++] = responseTime
  })
  const r = await instance
  const sorted = lat.subarray(0, n).sort()
  const pct = (p) => (n === 0 ? null : Math.round(sorted[Math.min(n - 1, Math.max(0, Math.ceil(p / 100 * n) - 1))] * 1000) / 1000)
  return {
    requests: r.requests.total,
    rps: r.requests.average,
    durationS: r.duration,
    latency: { p50: pct(50), p90: pct(90), p99: pct(99), mean: r.latency.average, max: n ? sorted[n - 1] : null, samples: n },
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    resets: r.resets ?? 0,
    statusCodes: r.statusCodeStats
  }
}

process.on('message', async (msg) => {
  if (!msg || msg.type !== 'run') return
  try {
    const result = await run(msg)
    process.send({ type: 'result', id: msg.id, result })
  } catch (err) {
    process.send({ type: 'result', id: msg.id, error: err.message })
  }
})
process.on('disconnect', () => process.exit(0))
process.send({ type: 'ready', pid: process.pid, node: process.version })
