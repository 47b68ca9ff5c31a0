// recipe — the hand-written "four-step recipe": a prom-client Histogram,
// onRequest records process.hrtime(), onResponse observes the duration
// labelled by method, raw URL (request.url) and status code, and a /metrics
// route. No tracing. The same code as the scrape/memory benches' `recipe`
// subject (benchmarks/lib/subjects.mjs).
import { runServer } from '../lib/server.mjs'
import { SUBJECTS } from '../lib/subjects.mjs'

await runServer({
  name: 'recipe',
  register (app) {
    SUBJECTS.recipe(app)
  }
})
