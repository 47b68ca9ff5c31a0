// Scrape client child process (pinned to core 0, like Prometheus on its own core): receives
// { type: 'get', id, port, path, accept } over IPC, GETs http://127.0.0.1:<port><path> on one
// keep-alive connection, reads the whole body and replies { type: 'got', id, ms, bytes, status }.
// Exits when the IPC channel closes.
import http from 'node:http'

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })

function get ({ port, path, accept }) {
  return new Promise((resolve, reject) => {
    const s0 = process.hrtime.bigint()
    http.get({ host: '127.0.0.1', port, path, headers: { accept }, agent }, (res) => {
      let bytes = 0
      res.on('data', (c) => { bytes += c.length })
      res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - s0) / 1e6, bytes, status: res.statusCode }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

process.on('message', async (msg) => {
  if (msg?.type !== 'get') return
  try {
    process.send({ type: 'got', id: msg.id, ...(await get(msg)) })
  } catch (err) {
    process.send({ type: 'got', id: msg.id, error: err.message })
  }
})
process.on('disconnect', () => { agent.destroy(); process.exit(0) })
process.send({ type: 'ready' })
