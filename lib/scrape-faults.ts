// Scrapes that always answer: a metric whose get() throws, rejects or does not settle within the
// scrape timeout is left out of that scrape, and the rest is served. Each such metric is counted in
// the plugin's own counter and logged at most once a minute.
//
// Left out rather than its last value kept: Prometheus then marks its series stale, so a graph shows
// a gap where the value is unknown instead of a flat line that looks current, and nothing has to be
// kept per metric between scrapes.
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'
import type { PromRegistry } from './options'

export const SCRAPE_ERRORS_NAME = 'fastify_observability_scrape_errors_total'
const SCRAPE_ERRORS_HELP = 'Metrics left out of a scrape because their collection failed (reason="error") or did not finish within metrics.scrapeTimeout (reason="timeout").'
/** One log line per metric per minute: a broken gauge scraped every 15 s must not flood the log. */
const LOG_EVERY_MS = 60_000

export type FaultReason = 'error' | 'timeout'

const CUT_OFF = Symbol('cut off')

/** The counter of left-out metrics, by metric name and reason. Duck-typed like lib/instruments.ts. */
export class ScrapeErrors {
  readonly type = 'counter'
  readonly aggregator = 'sum'
  readonly series = new Map<string, { labels: { metric: string, reason: FaultReason }, value: number }>()
  /** Plugin instances counting into it (they may share a registry). */
  users = 0

  constructor (readonly name: string, readonly help: string) {}

  inc (metric: string, reason: FaultReason): void {
    const key = metric + '\u0000' + reason
    const s = this.series.get(key)
    if (s === undefined) this.series.set(key, { labels: { metric, reason }, value: 1 })
    else s.value++
  }

  reset (): void {
    for (const s of this.series.values()) s.value = 0
  }

  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: any[] }> {
    const values: any[] = []
    for (const s of this.series.values()) values.push({ labels: { ...s.labels }, value: s.value })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}

/** One scrape's deadline: reached when the timeout fires, or at once when the app closes. */
export interface Deadline {
  readonly reached: Promise<typeof CUT_OFF>
  /** Milliseconds it allows (for the log line). */
  readonly ms: number
  end: () => void
}

/** Share of the scraper's own timeout given to collection: the rest is for rendering and the transfer. */
const SCRAPER_TIMEOUT_SHARE = 0.8

/**
 * The collection deadline of one scrape: metrics.scrapeTimeout, or 80% of the scraper's own timeout
 * when that is sooner. Prometheus sends its scrape_timeout as X-Prometheus-Scrape-Timeout-Seconds;
 * a collect still running when Prometheus gives up would cost the whole scrape, not one metric. A
 * header that is not a positive finite number of seconds is ignored.
 */
export function scrapeDeadlineMs (header: string | string[] | undefined, configured: number): number {
  if (typeof header !== 'string') return configured
  const seconds = Number(header)
  if (!(seconds > 0 && Number.isFinite(seconds))) return configured
  return Math.min(configured, seconds * 1000 * SCRAPER_TIMEOUT_SHARE)
}

/**
 * A metric's get() still pending from an earlier scrape is awaited again rather than called again:
 * a collect that never settles then costs one pending call, not one more per scrape. Each scrape
 * waits through a waiter it removes at its deadline, so a get that never settles holds no more
 * than the scrapes in flight (a race on the pending promise itself would add a reaction to it per
 * scrape, kept for as long as the get stays pending: for ever).
 */
type Settled = { ok: true, data: any } | { ok: false, err: unknown }
const pendingGets = new WeakMap<object, Set<(s: Settled) => void>>()

/** Waiters on the metric's pending get: for tests. */
export function waitersOn (metric: object): number {
  return pendingGets.get(metric)?.size ?? 0
}

function getWithin (metric: any, deadline: Deadline): Promise<any> {
  let waiters = pendingGets.get(metric)
  if (waiters === undefined) {
    const these = waiters = new Set()
    pendingGets.set(metric, these)
    const settle = (s: Settled): void => {
      pendingGets.delete(metric)
      for (const w of these) w(s)
      these.clear()
    }
    // A synchronous throw becomes a rejection.
    ;(async () => await metric.get())().then((data) => settle({ ok: true, data }), (err) => settle({ ok: false, err }))
  }
  const set = waiters
  return new Promise((resolve, reject) => {
    const waiter = (s: Settled): void => { if (s.ok) resolve(s.data); else reject(s.err) }
    set.add(waiter)
    deadline.reached.then(() => {
      if (set.delete(waiter)) resolve(CUT_OFF)
    }, () => {})
  })
}

export class ScrapeFaults {
  private readonly inFlight = new Set<() => void>()
  /** Set at the app's preClose: scrapes answered from then on close their keep-alive connection. */
  closing = false
  private readonly logged = new Map<string, { at: number, suppressed: number }>()
  /**
   * Not under metrics.prefix: like fastify_observability_spans_export_failed_total, one name to alert
   * on across every app; instances sharing a registry share the counter.
   */
  private readonly errorsName = SCRAPE_ERRORS_NAME
  /** undefined: not registered yet (on the first fault); null: not countable (name taken, or closed). */
  private errors: ScrapeErrors | null | undefined

  constructor (
    private readonly registry: PromRegistry,
    readonly timeout: number,
    private readonly log: FastifyBaseLogger | null,
    private readonly now: () => number = () => performance.now()
  ) {}

  begin (ms = this.timeout): Deadline {
    let fire!: () => void
    const reached = new Promise<typeof CUT_OFF>((resolve) => { fire = () => resolve(CUT_OFF) })
    // Not unref'd: a render() awaited with nothing else alive (a script) would end the process mid-scrape.
    const timer = setTimeout(fire, ms)
    this.inFlight.add(fire)
    return {
      reached,
      ms,
      end: () => {
        clearTimeout(timer)
        this.inFlight.delete(fire)
      }
    }
  }

  /** The counter, once a fault registered it; null before (and after release). */
  get counter (): ScrapeErrors | null {
    return this.errors ?? null
  }

  /** A generic metric's get() under the deadline, rendered; null when it is left out of this scrape. */
  async collect (metric: any, render: (data: any) => Buffer | Promise<Buffer>, deadline: Deadline): Promise<Buffer | null> {
    try {
      const data = await getWithin(metric, deadline)
      if (data === CUT_OFF) {
        this.fault(metric, 'timeout', undefined, deadline.ms)
        return null
      }
      // The data got under the deadline, formatted as any other metric's.
      return await render(data)
    } catch (err) {
      this.fault(metric, 'error', err)
      return null
    }
  }

  /** The app is closing: every scrape in flight is answered now, without what it still waits for. */
  abort (): void {
    this.closing = true
    for (const fire of this.inFlight) fire()
  }

  /** The app closed: the counter leaves the registry (which may outlive the app) with its last user. */
  release (): void {
    const errors = this.errors
    this.errors = null
    if (errors == null) return
    if (--errors.users === 0 && this.registry.getSingleMetric(errors.name) === errors) this.registry.removeSingleMetric(errors.name)
  }

  private fault (metric: any, reason: FaultReason, err?: unknown, ms?: number): void {
    const name = String(metric?.name ?? '(unnamed)')
    this.registerCounter()?.inc(name, reason)
    const now = this.now()
    const seen = this.logged.get(name)
    if (seen !== undefined && now - seen.at < LOG_EVERY_MS) {
      seen.suppressed++
      return
    }
    this.logged.set(name, { at: now, suppressed: 0 })
    const why = reason === 'timeout' ? `did not collect within ${ms === this.timeout ? 'metrics.scrapeTimeout' : 'the scraper\'s timeout (X-Prometheus-Scrape-Timeout-Seconds)'} (${ms ?? this.timeout} ms)` : 'failed to collect'
    const more = seen === undefined || seen.suppressed === 0 ? '' : ` (${seen.suppressed} more since the last line)`
    this.log?.warn({ err, metric: name, reason }, `fastify-observability: metric "${name}" ${why}; left out of the scrape${more}, counted in ${this.errorsName}`)
  }

  /**
   * Registered with the first fault, so an app whose metrics never fail serves the same
   * exposition as before; a metric's series appears with its first fault either way, and in the
   * scrape that had it (the exposition renders the counter last).
   */
  private registerCounter (): ScrapeErrors | null {
    if (this.errors !== undefined) return this.errors
    const existing = this.registry.getSingleMetric(this.errorsName)
    if (existing instanceof ScrapeErrors) {
      this.errors = existing
    } else if (existing === undefined) {
      this.errors = new ScrapeErrors(this.errorsName, SCRAPE_ERRORS_HELP)
      this.registry.registerMetric(this.errors)
    } else {
      this.log?.warn(`fastify-observability: the registry has a metric of its own named "${this.errorsName}": scrape faults are logged, not counted`)
      this.errors = null
      return null
    }
    this.errors.users++
    return this.errors
  }
}

/** For render() called without the plugin's instance (tests): the default timeout, no log. */
const standalone = new WeakMap<PromRegistry, ScrapeFaults>()
export function standaloneFaults (registry: PromRegistry, timeout: number): ScrapeFaults {
  let f = standalone.get(registry)
  if (f === undefined) {
    f = new ScrapeFaults(registry, timeout, null)
    standalone.set(registry, f)
  }
  return f
}
