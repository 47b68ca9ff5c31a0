// bare — Fastify 5 with the benchmark routes and nothing else (reference 1.00).
import { runServer } from '../lib/server.mjs'

await runServer({ name: 'bare' })
