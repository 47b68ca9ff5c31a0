// Generates docs/grafana/fastify-observability.json, the Grafana dashboard for the plugin's metrics,
// from typed builders of @grafana/grafana-foundation-sdk (docs/grafana.md describes every panel).
//
//   ts-node --project tools/tsconfig.json tools/dashboard.ts           # write the JSON
//   ts-node --project tools/tsconfig.json tools/dashboard.ts --check   # exit 1 when the JSON is stale
//
// test/dashboard.test.ts fails when the committed JSON differs from what this file generates, and
// runs every query of the JSON against a real Prometheus; test/dashboard-native.test.ts runs them
// against one that stores the duration histogram as a native histogram.
//
// Grafana's variables are written `${name}` in plain strings: they are not template literals.
/* eslint-disable no-template-curly-in-string */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as common from '@grafana/grafana-foundation-sdk/common'
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus'
import * as stat from '@grafana/grafana-foundation-sdk/stat'
import * as table from '@grafana/grafana-foundation-sdk/table'
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries'

/** The committed dashboard, relative to the repository root. */
export const DASHBOARD_PATH = 'docs/grafana/fastify-observability.json'
/** The command that rewrites it (the npm script runs the same). */
export const REGENERATE_COMMAND = 'npm run dashboard'

const DURATION = 'http_server_request_duration_seconds'
const ACTIVE = 'http_server_active_requests'

/** Dashboard variables, as written in queries. */
const PROM: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' }

/** Label matchers of the job and instance variables (both multi-value, hence =~). */
const TARGET = 'job=~"$job", instance=~"$instance"'
/** ... and of the route variable, for the duration histogram. */
const ROUTE = `${TARGET}, http_route=~"$route"`
const ERRORS = `${ROUTE}, http_response_status_code=~"5.."`

const RATE = '$__rate_interval'

/**
 * Legend of a process series: its job and instance, since two jobs may scrape one instance (the
 * process panels keep both labels, one line per scrape target).
 */
const PROCESS = '{{job}} {{instance}}'

// The duration histogram is stored in one of two forms, or both (docs/grafana.md#native-histograms):
// classic (`_bucket`, `_count`, `_sum`) or, scraped with native histograms on, one native histogram
// series under the name itself (Prometheus 2.42 then keeps no classic series for the job). Every
// query reads both, so that a panel shows whichever is stored, with no choice to make.

/**
 * Requests per second (`increase` for a count over the window), summed by `by`. The forms are
 * joined series by series, before the sum: a target storing both is counted once, and targets
 * storing different forms add up.
 */
function requestRate (by: string, matchers = ROUTE, window = RATE, fn = 'rate'): string {
  return `sum${by} (histogram_count(${fn}(${DURATION}{${matchers}}[${window}])) or ${fn}(${DURATION}_count{${matchers}}[${window}]))`
}

/**
 * The q-quantile by `by`, from the native histogram where stored, else from the classic buckets
 * (native first: a finer estimate). Buckets of the two forms cannot be summed together, so they are
 * joined after aggregation; parenthesized, as `and` binds tighter than `or`.
 */
function quantile (q: number, by: string, window = RATE): string {
  const native = `histogram_quantile(${q}, sum${by === '' ? '' : ` by (${by})`} (rate(${DURATION}{${ROUTE}}[${window}])))`
  const classic = `histogram_quantile(${q}, sum by (${['le', ...by === '' ? [] : [by]].join(', ')}) (rate(${DURATION}_bucket{${ROUTE}}[${window}])))`
  return `(${native} or ${classic})`
}

function query (refId: string, expr: string, legend?: string): prometheus.DataqueryBuilder {
  const q = new prometheus.DataqueryBuilder().refId(refId).datasource(PROM).expr(expr)
  return legend === undefined ? q : q.legendFormat(legend)
}

function thresholds (...steps: Array<[number | null, string]>): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps(steps.map(([value, color]) => ({ value, color })))
}

function legend (): common.VizLegendOptionsBuilder {
  return new common.VizLegendOptionsBuilder()
    .showLegend(true)
    .displayMode(common.LegendDisplayMode.Table)
    .placement(common.LegendPlacement.Bottom)
    .calcs(['mean', 'max', 'lastNotNull'])
}

function tooltip (): common.VizTooltipOptionsBuilder {
  return new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending)
}

function series (id: number, title: string, description: string, unit: string, w = 12): timeseries.PanelBuilder {
  return new timeseries.PanelBuilder()
    .id(id)
    .title(title)
    .description(description)
    .datasource(PROM)
    .unit(unit)
    .span(w)
    .height(8)
    .fillOpacity(10)
    .showPoints(common.VisibilityMode.Never)
    .legend(legend())
    .tooltip(tooltip())
}

function single (id: number, title: string, description: string, unit: string, expr: string): stat.PanelBuilder {
  return new stat.PanelBuilder()
    .id(id)
    .title(title)
    .description(description)
    .datasource(PROM)
    .unit(unit)
    .span(6)
    .height(4)
    .graphMode(common.BigValueGraphMode.Area)
    .colorMode(common.BigValueColorMode.Value)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .withTarget(query('A', expr))
}

/** Variables of a data link: the route of the series clicked, and the dashboard's time range. */
const LINK_ROUTE = '${__field.labels.http_route}'
const LINK_RANGE = { from: '${__from}', to: '${__to}' }

/**
 * The latency panel's data links to Grafana Explore, one per trace backend, each on the data source
 * of its variable (a data source variable lists one type): `tempo`, searching with TraceQL, and
 * `jaeger`, searching the `service` variable's spans by tags. Both find the plugin's SERVER spans of
 * the series' route in the dashboard's time range. The exemplar dots link to their own trace through
 * the Prometheus data source's exemplar setting (docs/grafana.md).
 */
function tracesLinks (): dashboard.DashboardLinkBuilder[] {
  const tempo = {
    datasource: '${tempo}',
    queries: [{
      refId: 'A',
      datasource: { type: 'tempo', uid: '${tempo}' },
      queryType: 'traceql',
      query: `{ span.http.route = "${LINK_ROUTE}" && kind = server }`
    }],
    range: LINK_RANGE
  }
  const jaeger = {
    datasource: '${jaeger}',
    queries: [{
      refId: 'A',
      datasource: { type: 'jaeger', uid: '${jaeger}' },
      queryType: 'search',
      service: '${service}',
      // logfmt, as Grafana's Jaeger search form writes its tags
      tags: `http.route="${LINK_ROUTE}" span.kind=server`
    }],
    range: LINK_RANGE
  }
  return [
    link('Traces of ' + LINK_ROUTE + ' (Tempo: ${tempo:text})', exploreUrl({ traces: tempo })),
    link('Traces of ' + LINK_ROUTE + ' (Jaeger: ${jaeger:text})', exploreUrl({ traces: jaeger }))
  ]
}

function link (title: string, url: string): dashboard.DashboardLinkBuilder {
  return new dashboard.DashboardLinkBuilder(title)
    .type(dashboard.DashboardLinkType.Link)
    .url(url)
    .targetBlank(true)
}

/**
 * The URL of Grafana Explore with these panes: their JSON percent-encoded as one query parameter (a
 * TraceQL `&&` would otherwise end it), except the `${...}` variables, left as they are for Grafana
 * to replace when the link is clicked (it percent-encodes their values then).
 */
function exploreUrl (panes: Record<string, unknown>): string {
  return '/explore?schemaVersion=1&panes=' + encodeURIComponent(JSON.stringify(panes)).replace(/%24%7B(.*?)%7D/g, '${$1}')
}

function labelValues (name: string, label: string, title: string, description: string, matchers = ''): dashboard.QueryVariableBuilder {
  // Either form's series: the classic _count, or the native histogram under the bare name.
  const q = `label_values({${[`__name__=~"${DURATION}(_count)?"`, ...matchers === '' ? [] : [matchers]].join(', ')}}, ${label})`
  return new dashboard.QueryVariableBuilder(name)
    .label(title)
    .description(description)
    .datasource(PROM)
    .query(q)
    .definition(q)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.*')
    .current({ selected: true, text: ['All'], value: ['$__all'] })
}

export function buildDashboard (): dashboard.Dashboard {
  const overview = new dashboard.RowBuilder('Overview').id(100)
  const red = new dashboard.RowBuilder('Requests per route (RED)').id(200)
  const process = new dashboard.RowBuilder('Node.js process').id(300)

  const builder = new dashboard.DashboardBuilder('Fastify observability')
    .uid('fastify-observability')
    .description('Requests, errors and latency per route, requests in flight and the Node.js process, from the metrics of fastify-observability (docs/grafana.md).')
    .tags(['fastify', 'fastify-observability', 'prometheus', 'opentelemetry'])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: 'now-1h', to: 'now' })
    .refresh('30s')
    .annotation(new dashboard.AnnotationQueryBuilder()
      .name('Annotations & Alerts')
      .builtIn(1)
      .type('dashboard')
      .datasource({ type: 'grafana', uid: '-- Grafana --' })
      .enable(true)
      .hide(true)
      .iconColor('rgba(0, 211, 255, 1)'))
    .link(new dashboard.DashboardLinkBuilder('fastify-observability')
      .type(dashboard.DashboardLinkType.Link)
      .url('https://github.com/fastify-observability/fastify-observability/blob/main/docs/grafana.md')
      .icon('doc')
      .tooltip('What each panel shows')
      .targetBlank(true))

    .withVariable(new dashboard.DatasourceVariableBuilder('datasource')
      .label('Prometheus')
      .description('The Prometheus data source that scrapes the app.')
      .type('prometheus'))
    .withVariable(labelValues('job', 'job', 'Job', 'Scrape jobs with the plugin\'s request histogram (classic or native).'))
    .withVariable(labelValues('instance', 'instance', 'Instance', 'Scraped instances of the selected jobs.', 'job=~"$job"'))
    .withVariable(labelValues('route', 'http_route', 'Route', 'Route patterns (unmatched: requests that matched no route, the 404s).', TARGET))
    .withVariable(new dashboard.DatasourceVariableBuilder('tempo')
      .label('Tempo')
      .description('The Tempo data source of the latency panel\'s link "in Tempo" (empty without one: ignore that link).')
      .type('tempo'))
    .withVariable(new dashboard.DatasourceVariableBuilder('jaeger')
      .label('Jaeger')
      .description('The Jaeger data source of the latency panel\'s link "in Jaeger" (empty without one: ignore that link).')
      .type('jaeger'))
    .withVariable(new dashboard.TextBoxVariableBuilder('service')
      .label('Service (Jaeger)')
      .description('The service.name of the app\'s spans (OTEL_SERVICE_NAME), which the Jaeger link searches: Jaeger searches one service.')
      .defaultValue(''))

    .withRow(overview)
    .withPanel(single(1, 'Request rate', 'Requests per second, all selected routes.', 'reqps', requestRate('')))
    .withPanel(single(2, 'Error ratio (5xx)', 'Share of requests answered with a 5xx status, all selected routes.', 'percentunit',
      `(${requestRate('', ERRORS)} or vector(0)) / ${requestRate('')}`)
      .thresholds(thresholds([null, 'green'], [0.01, 'orange'], [0.05, 'red'])))
    .withPanel(single(3, 'p99 latency', '99th percentile of the request duration, all selected routes (estimated from the histogram buckets: the native histogram\'s where Prometheus stores one, else the classic ones).', 's',
      quantile(0.99, '')))
    .withPanel(single(4, 'In flight', 'Requests being handled right now (not filtered by route: the gauge has only a method label).', 'short',
      `sum (${ACTIVE}{${TARGET}})`))

    .withRow(red)
    .withPanel(series(10, 'Request rate by route', 'Requests per second per route pattern (the rate of the duration histogram\'s count: histogram_count() of the native histogram, or the classic _count).', 'reqps')
      .withTarget(query('A', requestRate(' by (http_route)'), '{{http_route}}')))
    .withPanel(series(11, 'Error ratio (5xx) by route', 'Share of each route\'s requests answered with a 5xx status; 0 for routes without errors.', 'percentunit')
      .min(0)
      .max(1)
      .withTarget(query('A',
        `(${requestRate(' by (http_route)', ERRORS)} or 0 * ${requestRate(' by (http_route)')}) / ${requestRate(' by (http_route)')}`,
        '{{http_route}}')))
    .withPanel(series(12, 'Latency by route (p50, p95, p99)', 'Request duration percentiles per route, estimated from the histogram buckets (native where stored, else classic). The dots are exemplars: the trace of a recent sampled request in a bucket (needs tracing and Prometheus exemplar storage). Each line links to the route\'s traces in Tempo and in Jaeger (the variables of the same names).', 's')
      .dataLinks(tracesLinks())
      .withTarget(query('A', quantile(0.5, 'http_route'), 'p50 {{http_route}}').exemplar(false))
      .withTarget(query('B', quantile(0.95, 'http_route'), 'p95 {{http_route}}').exemplar(false))
      .withTarget(query('C', quantile(0.99, 'http_route'), 'p99 {{http_route}}').exemplar(true)))
    .withPanel(new table.PanelBuilder()
      .id(13)
      .title('Slowest routes')
      .description('The 10 routes with the highest p95 over the dashboard\'s time range, with their p99 and request count.')
      .datasource(PROM)
      .span(12)
      .height(8)
      .withTarget(query('A', `topk(10, ${quantile(0.95, 'http_route', '$__range')})`).instant().format(prometheus.PromQueryFormat.Table))
      .withTarget(query('B', `${quantile(0.99, 'http_route', '$__range')} and on (http_route) topk(10, ${quantile(0.95, 'http_route', '$__range')})`)
        .instant().format(prometheus.PromQueryFormat.Table))
      .withTarget(query('C', `${requestRate(' by (http_route)', ROUTE, '$__range', 'increase')} and on (http_route) topk(10, ${quantile(0.95, 'http_route', '$__range')})`)
        .instant().format(prometheus.PromQueryFormat.Table))
      .withTransformation({ id: 'merge', options: {} })
      .withTransformation({
        id: 'organize',
        options: {
          excludeByName: { Time: true },
          indexByName: { http_route: 0, 'Value #A': 1, 'Value #B': 2, 'Value #C': 3 },
          renameByName: { http_route: 'Route', 'Value #A': 'p95', 'Value #B': 'p99', 'Value #C': 'Requests' }
        }
      })
      .sortBy([new common.TableSortByFieldStateBuilder().displayName('p95').desc(true)])
      .overrideByName('p95', [{ id: 'unit', value: 's' }])
      .overrideByName('p99', [{ id: 'unit', value: 's' }])
      .overrideByName('Requests', [{ id: 'unit', value: 'short' }, { id: 'decimals', value: 0 }]))
    .withPanel(series(14, 'Responses by status code', 'Requests per second by HTTP status code, stacked.', 'reqps')
      .stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal))
      .withTarget(query('A', requestRate(' by (http_response_status_code)'), '{{http_response_status_code}}')))
    .withPanel(series(15, 'Requests in flight', 'Requests being handled, by method (http_server_active_requests; it has no route label).', 'short')
      .withTarget(query('A', `sum by (http_request_method) (${ACTIVE}{${TARGET}})`, '{{http_request_method}}')))

    .withRow(process)
    .withPanel(series(20, 'Event-loop lag', 'How late the event loop runs timers (prom-client\'s monitorEventLoopDelay percentiles since the previous scrape).', 's')
      .withTarget(query('A', `nodejs_eventloop_lag_p50_seconds{${TARGET}}`, `p50 ${PROCESS}`))
      .withTarget(query('B', `nodejs_eventloop_lag_p99_seconds{${TARGET}}`, `p99 ${PROCESS}`))
      .withTarget(query('C', `nodejs_eventloop_lag_max_seconds{${TARGET}}`, `max ${PROCESS}`)))
    .withPanel(series(21, 'CPU', 'CPU time per second of the process, user + system (1 = one core).', 'percentunit')
      .min(0)
      .withTarget(query('A', `rate(process_cpu_seconds_total{${TARGET}}[${RATE}])`, PROCESS)))
    .withPanel(series(22, 'Memory', 'Resident set size of the process, and V8 heap used and allocated.', 'bytes')
      .min(0)
      .withTarget(query('A', `process_resident_memory_bytes{${TARGET}}`, `RSS ${PROCESS}`))
      .withTarget(query('B', `nodejs_heap_size_total_bytes{${TARGET}}`, `heap total ${PROCESS}`))
      .withTarget(query('C', `nodejs_heap_size_used_bytes{${TARGET}}`, `heap used ${PROCESS}`)))
    .withPanel(series(23, 'Garbage collection', 'Share of time spent in garbage collection, by kind (major, minor, incremental, weakcb).', 'percentunit')
      .min(0)
      .stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal))
      .withTarget(query('A', `sum by (job, instance, kind) (rate(nodejs_gc_duration_seconds_sum{${TARGET}}[${RATE}]))`, `{{kind}} ${PROCESS}`)))

  return builder.build()
}

/** The dashboard as the committed file holds it. */
export function renderDashboard (): string {
  return JSON.stringify(buildDashboard(), null, 2) + '\n'
}

if (require.main === module) {
  const file = join(__dirname, '..', DASHBOARD_PATH)
  const json = renderDashboard()
  if (process.argv.includes('--check')) {
    let current = ''
    try { current = readFileSync(file, 'utf8') } catch {}
    if (current !== json) {
      process.stderr.write(`${DASHBOARD_PATH} is stale: run \`${REGENERATE_COMMAND}\`\n`)
      process.exitCode = 1
    }
  } else {
    writeFileSync(file, json)
    process.stdout.write(`wrote ${DASHBOARD_PATH}\n`)
  }
}
