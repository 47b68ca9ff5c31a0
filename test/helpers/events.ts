// Waiting for the event a test needs instead of sleeping a fixed time and hoping it happened.
import type { Server, ServerResponse } from 'node:http'

/** Polls `check` every few ms until it holds; rejects after timeoutMs naming what was awaited. */
export async function until (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/**
 * Counts the server's responses that emitted 'close' (answered or aborted). Install before the
 * requests: the listener is added on the server's 'request' event, after the plugin's own
 * (prepended) one and after instrumentation-http's 'finish', so once `closed(n)` resolves every
 * span those requests end has ended.
 */
export function closedResponses (server: Server): { closed: (n: number, timeoutMs?: number) => Promise<void> } {
  let count = 0
  server.on('request', (_req, res: ServerResponse) => { res.once('close', () => { count++ }) })
  return { closed: (n, timeoutMs) => until(`${n} closed response(s), ${count} so far`, () => count >= n, timeoutMs) }
}

/** One turn of the event loop: whatever the current callback scheduled synchronously or on nextTick has run. */
export function nextTurn (): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}
