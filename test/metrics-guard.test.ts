// /metrics protected: behind the user's guard (metrics.guard, onRequest hooks of the exposition
// route only), or on a port of its own bound to an internal address (metrics.endpoint false and
// app.metrics.handler on a second server), as docs/reliability.md#a-protected-metrics-endpoint says.
import t from 'tap'
import Fastify from 'fastify'
import type { FastifyReply, FastifyRequest } from 'fastify'
import observability from '../lib/index'
import type { ObservabilityOptions } from '../lib/index'

const TOKEN = 's3cret'

async function bearer (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.headers.authorization !== `Bearer ${TOKEN}`) await reply.code(401).send({ error: 'unauthorized' })
}

function internalOnly (request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  if (!request.ip.startsWith('10.') && request.ip !== '127.0.0.1') {
    reply.code(403).send({ error: 'forbidden' })
    return
  }
  done()
}

async function appWith (t: Tap.Test, metrics: Record<string, unknown>) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(observability, { metrics: { defaultMetrics: false, ...metrics } } as ObservabilityOptions)
  app.get('/api/users/:id', async () => ({ ok: true }))
  return app
}

t.test('a bearer token guard: no token, no scrape; the rest of the app untouched', async (t) => {
  const app = await appWith(t, { guard: bearer })
  t.equal((await app.inject('/api/users/1')).statusCode, 200, 'app routes need no token')
  const denied = await app.inject('/metrics')
  t.equal(denied.statusCode, 401)
  t.notMatch(denied.body, /http_server_request_duration_seconds/, 'nothing of the exposition')
  const wrong = await app.inject({ url: '/metrics', headers: { authorization: 'Bearer nope' } })
  t.equal(wrong.statusCode, 401)
  const ok = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(ok.statusCode, 200)
  t.match(ok.body, /http_server_request_duration_seconds_count\{http_request_method="GET",http_route="\/api\/users\/:id",http_response_status_code="200"\} 1\n/,
    'the app request only: refused scrapes are not recorded')
})

t.test('an IP allow-list (callback style), and several guards in order', async (t) => {
  const seen: string[] = []
  const first = (_req: FastifyRequest, _reply: FastifyReply, done: () => void): void => { seen.push('first'); done() }
  const app = await appWith(t, { guard: [first, internalOnly] })
  t.equal((await app.inject({ url: '/metrics', remoteAddress: '203.0.113.9' })).statusCode, 403)
  t.equal((await app.inject({ url: '/metrics', remoteAddress: '10.1.2.3' })).statusCode, 200)
  t.same(seen, ['first', 'first'], 'each guard runs, in order')
})

t.test('invalid guards fail at register, naming the option and the value', async (t) => {
  for (const [metrics, message] of [
    [{ guard: 'token' }, /option "metrics\.guard" must be an onRequest hook .*got "token"/],
    [{ guard: [bearer, 42] }, /option "metrics\.guard" must be an onRequest hook/],
    [{ guard: bearer, endpoint: false }, /option "metrics\.guard" guards the metrics route, but metrics\.endpoint is false/]
  ] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(observability, { metrics: { defaultMetrics: false, ...metrics } } as ObservabilityOptions) },
      { code: 'FST_OBSERVABILITY_INVALID_OPTION', message })
  }
})

t.test('a port of its own on an internal address: the public port has no /metrics', async (t) => {
  const app = await appWith(t, { endpoint: false })
  const admin = Fastify()
  t.teardown(() => admin.close())
  admin.get('/metrics', app.metrics!.handler)
  await app.listen({ host: '127.0.0.1', port: 0 })
  await admin.listen({ host: '127.0.0.1', port: 0 })
  const port = (f: typeof app): number => (f.server.address() as { port: number }).port
  t.equal((await fetch(`http://127.0.0.1:${port(app)}/api/users/1`)).status, 200)
  t.equal((await fetch(`http://127.0.0.1:${port(app)}/metrics`)).status, 404, 'not on the public port')
  const res = await fetch(`http://127.0.0.1:${port(admin)}/metrics`)
  t.equal(res.status, 200)
  t.match(await res.text(), /http_route="\/api\/users\/:id",http_response_status_code="200"\} 1\n/, "the app's requests, on the admin port")
})
