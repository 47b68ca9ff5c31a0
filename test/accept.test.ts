// The Accept header parser shared by the OpenMetrics and protobuf negotiations.
import t from 'tap'
import { parseAccept } from '../lib/accept'
import { prefersOpenMetrics } from '../lib/exposition'

t.test('media ranges in order, with q, lower-cased names, unquoted values', async (t) => {
  t.same(parseAccept('Application/OpenMetrics-Text; Version="1.0.0"; q=0.5, text/plain;q=x ,*/*;flag'), [
    { type: 'application/openmetrics-text', params: { version: '1.0.0' }, q: 0.5, at: 0 },
    { type: 'text/plain', params: {}, q: NaN, at: 1 },
    { type: '*/*', params: {}, q: 1, at: 2 }
  ].map((r) => ({ ...r, params: Object.assign(Object.create(null), r.params) })))
})

t.test('OpenMetrics negotiation reads parameter names case-insensitively and quoted versions', async (t) => {
  t.equal(prefersOpenMetrics('application/openmetrics-text; Version=1.0.0'), true)
  t.equal(prefersOpenMetrics('application/openmetrics-text;version="1.0.0";q=0.6,text/plain;q=0.5'), true)
  t.equal(prefersOpenMetrics('application/openmetrics-text;version=2.0.0'), false, 'an unknown version')
  t.equal(prefersOpenMetrics('application/openmetrics-text;q=nope,text/plain'), false, 'an invalid q is not acceptable')
})
