// Wall-clock seconds from a performance.now() reading, for exemplar timestamps. The record step
// already has that reading; a Date.now() of its own cost ~310 instructions per sampled request
// (benchmarks/micro.mjs). performance.now() does not follow the wall clock (set after start-up by
// NTP, or stopped by a suspend or a VM pause), so the offset between the two is read again at every
// collection of the histogram, each scrape: a timestamp is then off by at most the clock's change
// within one scrape interval.
import { performance } from 'node:perf_hooks'

let offsetMs = Date.now() - performance.now()

/** Read the offset again (off the hot path: once per collection). */
export function resyncWallClock (): void {
  offsetMs = Date.now() - performance.now()
}

/** Seconds since the epoch at the performance.now() reading `now`. */
export function wallSeconds (now: number): number {
  return (offsetMs + now) / 1000
}
