// Light steady load for the scrape benchmark, in its own process (pinned to core 0, next to the
// scraper): on { type: 'start', port, path, rate, maxSeconds } it sends GET <path> at a fixed
// rate (req/s) over keep-alive sockets until { type: 'stop' } or maxSeconds (bounded either way),
// waits for the requests in flight and replies { type: 'samples', at, ms }: each request's
// scheduled send time (ms on process.hrtime's clock, CLOCK_MONOTONIC, the same in every process
// on the machine) and its latency from that scheduled time to the last byte. Measuring from the
// scheduled time, not the actual send, keeps requests queued behind a stalled server in the
// figures (no coordinated omission). Exits when the IPC channel closes.
import http from 'node:http'

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
const nowMs = () => Number(process.hrtime.bigint()) / 1e6

let run = null

function once (port, path) {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode === 200))
      res.on('error', () => resolve(false))
    }).on('error', () => resolve(false))
  })
}

function start ({ port, path, rate, maxSeconds }) {
  const at = []
  const ms = []
  const inflight = new Set()
  let errors = 0
  let sent = 0
  let stopped = false
  const t0 = nowMs()
  const limit = Math.round(rate * maxSeconds)
  const tick = () => {
    if (stopped) return
    const due = Math.min(limit, Math.floor((nowMs() - t0) * rate / 1000))
    for (; sent < due; sent++) {
      const scheduled = t0 + (sent * 1000) / rate
      const p = once(port, path).then((ok) => {
        inflight.delete(p)
        if (!ok) errors++
        at.push(scheduled)
        ms.push(nowMs() - scheduled)
      })
      inflight.add(p)
    }
    if (sent >= limit) stopped = true
    else setTimeout(tick, 1)
  }
  tick()
  return {
    async stop () {
      stopped = true
      await Promise.all([...inflight])
      return { at, ms, errors }
    }
  }
}

process.on('message', async (msg) => {
  if (msg?.type === 'start') {
    run = start(msg)
    process.send({ type: 'started' })
  } else if (msg?.type === 'stop' && run !== null) {
    const r = await run.stop()
    run = null
    process.send({ type: 'samples', ...r })
  }
})
process.on('disconnect', () => { agent.destroy(); process.exit(0) })
process.send({ type: 'ready' })
