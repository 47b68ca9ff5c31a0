// benchmarks/micro.mjs measures one step per case, in pairs that differ only in what a pair's
// difference is reported as (docs/fusion.md#cost): this checks, without valgrind, that each case
// does what its name says, so a figure cannot come from a case that measures something else.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import path from 'node:path'

const ROOT = path.resolve(__dirname, '..')

t.test('micro cases do what their names say', async (t) => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'benchmarks', 'micro.mjs'), '--check'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
  t.equal(r.status, 0, r.stderr)
  const cases = Object.fromEntries(r.stdout.trim().split('\n').map(l => JSON.parse(l) as { case: string } & Record<string, unknown>).map(c => [c.case, c]))
  const ids = ['trace_id', 'span_id', 'trace_flags']
  // 1,000 steps after 5,000 of warm-up, over 15 durations that land in the 15 buckets.
  t.match(cases.record, { count: 6000, exemplars: 0 }, 'exemplars off: recorded, no exemplar')
  t.match(cases['record-exemplar'], { count: 6000, exemplars: 15 }, 'exemplars on: one per bucket')
  t.match(cases.record, { nativeBuckets: 0 }, 'native histograms off: no native bucket')
  t.match(cases['record-native'], { count: 6000, exemplars: 0, nativeBuckets: 15 }, 'native histograms on: the 15 durations in 15 native buckets')
  t.match(cases['log-filtered'], { lines: 0, fields: [] })
  t.match(cases['log-filtered-ids'], { lines: 0, fields: ids }, 'the ids are set, the line is filtered')
  t.match(cases['log-written'], { lines: 6000, fields: [] })
  t.match(cases['log-written-ids'], { lines: 6000, fields: ids }, 'the ids are on the written lines')
  t.match(cases['log-written-bindings'], { lines: 6000, fields: [] }, 'the alternative sets no mixin')
  // Issue #9's tracing floors: every step runs inside a span's context (none for context-with);
  // the semconv floor and the plugin end the same span (request 999's): name, kind, attributes.
  t.same(cases['span-hook'], { case: 'span-hook', n: 1000, ended: 6000, inside: 6000, name: 'GET', kind: 1, attributes: {} }, 'the bare span: a SERVER span, ended, no attribute')
  t.same(cases['span-semconv'], {
    case: 'span-semconv',
    n: 1000,
    ended: 6000,
    inside: 6000,
    name: 'GET /api/users/:id',
    kind: 1,
    attributes: {
      'client.address': '127.0.0.1',
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'http.route': '/api/users/:id',
      'network.protocol.version': '1.1',
      'server.address': '127.0.0.1',
      'server.port': 3000,
      'url.path': '/api/users/999',
      'url.scheme': 'http',
      'user_agent.original': 'autocannon'
    }
  }, 'the floor sets every attribute the plugin does')
  t.same(cases['span-plugin'], { ...cases['span-semconv'], case: 'span-plugin' }, 'the plugin ends the same span')
  t.same(cases['context-with'], { case: 'context-with', n: 1000, ended: 0, inside: 0, attributes: {} }, 'no span at all')
  t.same(cases['dropped-semconv'], { case: 'dropped-semconv', n: 1000, ended: 0, inside: 6000, attributes: {} }, 'dropped: a non-recording span in the context, never ended to the processor')
  t.same(cases['dropped-plugin'], { ...cases['dropped-semconv'], case: 'dropped-plugin' }, 'the plugin, dropped: the same')
})
