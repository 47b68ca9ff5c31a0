import t from 'tap'
import { createRoutePolicy } from '../lib/route-policy'

t.test('the recipe table: /api/** observed, /actuator/** and /static/** not', async (t) => {
  const decide = createRoutePolicy(['/api/**'], ['/actuator/**', '/static/**'])
  const table: Array<[string, boolean]> = [
    ['/api', true],
    ['/api/users', true],
    ['/api/users/:id', true],
    ['/api/v1/orders/:orderId/items/:itemId', true],
    ['/apix', false],
    ['/actuator/health', false],
    ['/actuator', false],
    ['/static/*', false],
    ['/static/css/app.css', false],
    ['/', false],
    ['/metrics', false]
  ]
  for (const [route, observed] of table) {
    t.same(decide(route, undefined), { metrics: observed, tracing: observed }, route)
  }
})

t.test('* does not cross /, ** does', async (t) => {
  const decide = createRoutePolicy(['/api/*'], [])
  t.equal(decide('/api/users', undefined).metrics, true)
  t.equal(decide('/api/users/:id', undefined).metrics, false)
})

t.test('exclude wins over include', async (t) => {
  const decide = createRoutePolicy(['/api/**'], ['/api/internal/**'])
  t.equal(decide('/api/internal/x', undefined).metrics, false)
  t.equal(decide('/api/public', undefined).metrics, true)
})

t.test('default: every route, including dot segments', async (t) => {
  const decide = createRoutePolicy(undefined, [])
  for (const r of ['/', '/x', '/.well-known/acme', '/a/b/:c']) t.same(decide(r, undefined), { metrics: true, tracing: true }, r)
})

t.test("a route's own config wins over both globs, per half", async (t) => {
  const decide = createRoutePolicy(['/api/**'], ['/api/internal'])
  t.same(decide('/api/users', { metrics: false }), { metrics: false, tracing: true })
  t.same(decide('/api/users', { tracing: false }), { metrics: true, tracing: false })
  t.same(decide('/api/internal', { metrics: true }), { metrics: true, tracing: false }, 'true takes in an excluded route')
  t.same(decide('/other', { tracing: true }), { metrics: false, tracing: true }, 'true takes in a route include leaves out')
  t.same(decide('/api/users', {}), { metrics: true, tracing: true })
})
