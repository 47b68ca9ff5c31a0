// Shared by test/dashboard.test.ts (a Prometheus storing the classic duration histogram) and
// test/dashboard-native.test.ts (one storing it as a native histogram): the committed dashboard's
// panel and variable queries, the variables substituted as Grafana does, run against a real
// Prometheus; the app's traffic; and the two forms of the duration histogram in a query.
import type { Test } from 'tap'
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { DASHBOARD_PATH } from '../../tools/dashboard'
import type { PromSample, RunningPrometheus } from './prometheus'

export interface Target { refId: string, expr?: string, exemplar?: boolean, instant?: boolean, datasource?: { type?: string, uid?: string } }
export interface Panel { id: number, type: string, title: string, targets?: Target[], panels?: Panel[], fieldConfig?: { defaults?: { links?: Array<{ title: string, url: string }> } } }
export interface Variable { type: string, name: string, query?: string | { query?: string }, multi?: boolean, includeAll?: boolean, allValue?: string }
export interface Dashboard { panels: Panel[], templating: { list: Variable[] } }

export const committed = JSON.parse(readFileSync(join(__dirname, '..', '..', DASHBOARD_PATH), 'utf8')) as Dashboard

/** Panel titles, in dashboard order (rows left out). */
export const PANELS = [
  'Request rate', 'Error ratio (5xx)', 'p99 latency', 'In flight',
  'Request rate by route', 'Error ratio (5xx) by route', 'Latency by route (p50, p95, p99)', 'Slowest routes',
  'Responses by status code', 'Requests in flight',
  'Event-loop lag', 'CPU', 'Memory', 'Garbage collection'
]
/** The panels of the Node.js process, one line per job and instance. */
export const PROCESS_PANELS = ['Event-loop lag', 'CPU', 'Memory', 'Garbage collection']
/** The app's route patterns, /static/* with a regex character, and the 404s. */
export const ROUTES = ['/api/users/:id', '/api/orders', '/api/slow', '/api/fail', '/static/*', 'unmatched']
/** The routes chosen in the route variable: three, and /static/*, whose `*` Grafana escapes. */
export const CHOSEN_ROUTES = ['/api/users/:id', '/api/fail', '/static/*', 'unmatched']

export const DURATION = 'http_server_request_duration_seconds'

/**
 * The queries (panel and refId) that read the duration histogram, each in both its forms (docs/grafana.md#native-histograms):
 * the classic series (`_bucket`, `_count`) and the native histogram (the bare name).
 */
export const BOTH_FORMS = [
  'Request rate A', 'Error ratio (5xx) A', 'p99 latency A',
  'Request rate by route A', 'Error ratio (5xx) by route A',
  'Latency by route (p50, p95, p99) A', 'Latency by route (p50, p95, p99) B', 'Latency by route (p50, p95, p99) C',
  'Slowest routes A', 'Slowest routes B', 'Slowest routes C',
  'Responses by status code A'
]

export type Form = 'classic' | 'native'
const SELECTORS: Record<Form, RegExp> = {
  classic: new RegExp(`\\b${DURATION}_(?:bucket|count|sum)\\{`, 'g'),
  native: new RegExp(`\\b${DURATION}\\{`, 'g')
}

/** Which forms of the duration histogram the expression reads. */
export function formsRead (expr: string): Form[] {
  return (['classic', 'native'] as const).filter(f => expr.match(SELECTORS[f]) !== null)
}

/**
 * The expression reading one form only: the other form's selectors renamed to a metric that does not
 * exist (`disabled:...`), so that their side of each `or` is empty. What the panel shows from that
 * form alone.
 */
export function onlyForm (expr: string, form: Form): string {
  const other = form === 'classic' ? 'native' : 'classic'
  return expr.replace(SELECTORS[other], m => `disabled:${m}`)
}

export function panelsOf (d: Dashboard): Panel[] {
  return d.panels.flatMap(p => p.type === 'row' ? (p.panels ?? []) : [p])
}

export interface PanelQuery { panel: string, refId: string, key: string, expr: string, exemplar: boolean }
export function panelQueries (d: Dashboard): PanelQuery[] {
  return panelsOf(d).flatMap(p => (p.targets ?? []).map(q =>
    ({ panel: p.title, refId: q.refId, key: `${p.title} ${q.refId}`, expr: q.expr ?? '', exemplar: q.exemplar === true })))
}
export function variableQuery (v: Variable): string {
  return typeof v.query === 'string' ? v.query : (v.query?.query ?? '')
}

export const DURATIONS: Record<string, string> = {
  // Grafana's $__rate_interval is max(4 * scrape interval, $__interval + scrape interval): 10s is
  // well over 4 scrapes of 1 s, and short enough for a Prometheus started seconds ago.
  __rate_interval: '10s',
  __interval: '2s',
  __range: '1m',
  __range_s: '60',
  __range_ms: '60000'
}

/** Grafana's Prometheus escaping of a multi-value / include-All variable's values (a regex). */
export function regexEscape (value: string): string {
  return value.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&')
}

/** 'All', or the chosen values, per dashboard variable. */
export type Selection = Record<string, 'All' | string[]>

/** The expression as Grafana sends it to Prometheus with these variable values. */
export function interpolate (expr: string, selection: Selection, d: Dashboard = committed): string {
  const vars = new Map(d.templating.list.map(v => [v.name, v]))
  return expr.replace(/\$(\w+)|\$\{(\w+)\}/g, (whole, a?: string, b?: string) => {
    const name = (a ?? b)!
    if (DURATIONS[name] !== undefined) return DURATIONS[name]
    const v = vars.get(name)
    const chosen = selection[name]
    if (v === undefined || chosen === undefined) throw new Error(`${whole} in ${expr}: no such variable`)
    if (chosen === 'All') {
      if (v.allValue === undefined) throw new Error(`${name} has no custom All value`)
      return v.allValue
    }
    if (v.multi !== true && v.includeAll !== true) return chosen[0]
    const escaped = chosen.map(regexEscape)
    return escaped.length === 1 ? escaped[0] : `(${escaped.join('|')})`
  })
}

/** Grafana's label_values(<series selector>, <label>) variable query, as Grafana asks Prometheus. */
export async function labelValues (prom: RunningPrometheus, q: string): Promise<string[]> {
  const m = /^label_values\((?:(.+),\s*)?(\w+)\)$/.exec(q)
  if (m === null) throw new Error(`not a label_values query: ${q}`)
  const end = Math.ceil(Date.now() / 1000)
  const params = new URLSearchParams({ start: String(end - 3600), end: String(end) })
  if (m[1] !== undefined) params.append('match[]', m[1])
  const res = await fetch(`${prom.url}/api/v1/label/${m[2]}/values?${params}`, { signal: AbortSignal.timeout(5000) })
  const body = await res.json() as { status: string, error?: string, data?: string[] }
  if (body.status !== 'success' || body.data === undefined) throw new Error(`${q} failed: ${body.error ?? res.status}`)
  return body.data
}

export interface Exemplars { seriesLabels: Record<string, string>, exemplars: Array<{ labels: Record<string, string>, value: string }> }
export async function queryExemplars (prom: RunningPrometheus, expr: string): Promise<Exemplars[]> {
  const end = Date.now() / 1000
  const params = new URLSearchParams({ query: expr, start: String(end - 3600), end: String(end + 60) })
  const res = await fetch(`${prom.url}/api/v1/query_exemplars?${params}`, { signal: AbortSignal.timeout(5000) })
  const body = await res.json() as { status: string, error?: string, data?: Exemplars[] }
  if (body.status !== 'success' || body.data === undefined) throw new Error(`exemplars of ${expr} failed: ${body.error ?? res.status}`)
  return body.data
}

/** Exemplars of the expression, polled for up to 10 s until some are there. */
export async function waitForExemplars (prom: RunningPrometheus, expr: string): Promise<Exemplars[]> {
  let found: Exemplars[] = []
  for (const end = Date.now() + 10_000; Date.now() < end;) {
    found = await queryExemplars(prom, expr)
    if (found.some(s => s.exemplars.length > 0)) break
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  return found
}

/** One request without keep-alive; errors are ignored (the app may be going away). */
export function hit (port: number, method: string, path: string): Promise<void> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve())
      res.on('error', () => resolve())
    })
    req.on('error', () => resolve())
    req.end()
  })
}

/**
 * Traffic until stop(): rounds of a 200, a 201, a slower 200, a 500, a wildcard route's 200 and a
 * 404 (http_route="unmatched"), the routes of test/fixtures/dashboard-app.cjs.
 */
export function startTraffic (port: number): { stop: () => Promise<void> } {
  const traffic = new AbortController()
  let n = 0
  const load = (async () => {
    while (!traffic.signal.aborted) {
      n++
      await Promise.all([
        hit(port, 'GET', `/api/users/${n}`),
        hit(port, 'POST', '/api/orders'),
        hit(port, 'GET', '/api/slow'),
        hit(port, 'GET', '/api/fail'),
        hit(port, 'GET', `/static/app-${n}.js`),
        hit(port, 'GET', `/no/such/page/${n}`)
      ])
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })()
  return { stop: async () => { traffic.abort(); await load } }
}

export const byLabel = (r: PromSample[], label: string): Record<string, number> =>
  Object.fromEntries(r.map(s => [s.metric[label], Number(s.value[1])]))

/** The label sets of a result, sorted (the values move between two queries a moment apart). */
export const labelSets = (r: PromSample[]): string[] => r.map(s => JSON.stringify(Object.entries(s.metric).sort())).sort()

export interface Selections {
  all: Selection
  chosen: Selection
  /** Each query variable's values (with the variables above it chosen). */
  values: Record<string, string[]>
  /** Variable queries run. */
  checked: number
}

/**
 * The dashboard's query variables, evaluated in order, each query seeing the selection of the
 * variables above it, with All and with chosen values (for routes CHOSEN_ROUTES, /static/* with its
 * regex character escaped); each must have values.
 */
export async function selectVariables (t: Test, prom: RunningPrometheus, d: Dashboard = committed): Promise<Selections> {
  const all: Selection = {}
  const chosen: Selection = {}
  const values: Record<string, string[]> = {}
  let checked = 0
  for (const v of d.templating.list.filter(v => v.type === 'query')) {
    for (const [name, selection] of [['All', all], ['chosen', chosen]] as const) {
      const q = interpolate(variableQuery(v), selection, d)
      const got = await labelValues(prom, q)
      checked++
      t.ok(got.length > 0, `variable ${v.name} (${name}): ${q} has values`)
      values[v.name] = got
    }
    all[v.name] = 'All'
    chosen[v.name] = v.name === 'route' ? CHOSEN_ROUTES.filter(r => values.route.includes(r)) : values[v.name]
  }
  return { all, chosen, values, checked }
}

/** An instant query; a failure (not a throw) when it does not run. */
export async function tryQuery (t: Test, prom: RunningPrometheus, expr: string, what: string): Promise<PromSample[] | undefined> {
  try {
    return await prom.query(expr)
  } catch (err) {
    t.fail(`${what} does not run: ${(err as Error).message}`)
    return undefined
  }
}

/**
 * Each query of BOTH_FORMS (All and chosen), read from one form only: the `stored` form's alone
 * must return the series the whole query returns, the other form's alone nothing (`why`).
 * Returns the number of queries run.
 */
export async function checkForms (t: Test, prom: RunningPrometheus, selections: Pick<Selections, 'all' | 'chosen'>, stored: Form, why: string, d: Dashboard = committed): Promise<number> {
  const other: Form = stored === 'classic' ? 'native' : 'classic'
  let checked = 0
  for (const [name, selection] of [['All', selections.all], ['chosen', selections.chosen]] as const) {
    for (const q of panelQueries(d).filter(q => BOTH_FORMS.includes(q.key))) {
      const expr = interpolate(q.expr, selection, d)
      const whole = await tryQuery(t, prom, expr, `${q.key} (${name})`)
      const mine = await tryQuery(t, prom, onlyForm(expr, stored), `${q.key} (${name}, ${stored} only)`)
      const others = await tryQuery(t, prom, onlyForm(expr, other), `${q.key} (${name}, ${other} only)`)
      if (whole === undefined || mine === undefined || others === undefined) continue
      checked += 2
      t.strictSame(labelSets(mine), labelSets(whole), `${q.key} (${name}): its ${stored} part alone returns what the panel shows`)
      t.strictSame(others, [], `${q.key} (${name}): its ${other} part is empty: ${why}`)
    }
  }
  return checked
}

/**
 * What the answers mean, the same whichever form of the duration histogram the server stored:
 * the traffic of test/fixtures/dashboard-app.cjs (and of dashboard-native's app, which copies it).
 */
export function checkMeanings (t: Test, results: Map<string, PromSample[]>, chosenResults: Map<string, PromSample[]>): void {
  const ratio = byLabel(results.get('Error ratio (5xx) by route A')!, 'http_route')
  t.equal(ratio['/api/fail'], 1, 'error ratio of the failing route')
  t.equal(ratio['/api/users/:id'], 0, 'error ratio of a route without errors is 0, not missing')
  t.equal(ratio.unmatched, 0, '404s are not errors')
  const overall = Number(results.get('Error ratio (5xx) A')![0].value[1])
  t.ok(overall > 0.1 && overall < 0.3, `overall error ratio about 1 in 5 or 6 (${overall})`)
  t.strictSame(Object.keys(byLabel(results.get('Responses by status code A')!, 'http_response_status_code')).sort(), ['200', '201', '404', '500'], 'status codes')
  t.strictSame(Object.keys(byLabel(results.get('Request rate by route A')!, 'http_route')).sort(), [...ROUTES].sort(), 'request rate of every route')
  t.strictSame(Object.keys(byLabel(chosenResults.get('Request rate by route A')!, 'http_route')).sort(), [...CHOSEN_ROUTES].sort(),
    'request rate of the chosen routes: /static/* is found through its escaped *')
  const slowest = results.get('Slowest routes A')!.slice().sort((a, b) => Number(b.value[1]) - Number(a.value[1]))
  t.equal(slowest[0]?.metric.http_route, '/api/slow', 'the slowest route first')
  t.ok(Number(byLabel(results.get('Latency by route (p50, p95, p99) C')!, 'http_route')['/api/slow']) >= 0.025, 'p99 of the 30 ms route')
  t.ok(Object.keys(byLabel(results.get('Garbage collection A')!, 'kind')).length > 0, 'GC kinds (prom-client\'s histogram, classic in both)')
}
