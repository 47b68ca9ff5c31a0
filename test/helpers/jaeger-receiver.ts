// A Jaeger receiver for tests, decoding what @opentelemetry/exporter-jaeger really sends:
//   - HTTP collector path: POST /api/traces, application/x-thrift, a Thrift (binary protocol) Batch;
//   - UDP agent path: an Agent.emitBatch oneway message (binary protocol, the port 6832 flavour
//     that jaeger-client's UDPSender speaks).
// Decoding uses the thriftrw library and the Jaeger IDL shipped in jaeger-client, both resolved
// from the exporter's own location, so the receiver reads the bytes with the same definitions
// the sender wrote them with.
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createSocket } from 'node:dgram'
import type { Socket } from 'node:dgram'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { SPAN_KIND_NAMES, SpanCollector, closeServer, listen, readBody, trackServer } from './otlp-receiver'
import type { AttrValue, Attrs, ReceivedSpan } from './otlp-receiver'

// Minimal typing of thriftrw's surface used here.
interface ReadResult<T> { err: Error | null, value: T }
interface RW<T> { readFrom (buf: Buffer, offset: number): ReadResult<T> }
interface ThriftTag { key: string, vType: string, vStr?: string | null, vDouble?: number | null, vBool?: boolean | null, vLong?: Buffer | null, vBinary?: Buffer | null }
interface ThriftLog { timestamp: Buffer, fields: ThriftTag[] }
interface ThriftSpanRef { refType: string, traceIdLow: Buffer, traceIdHigh: Buffer, spanId: Buffer }
interface ThriftSpan {
  traceIdLow: Buffer
  traceIdHigh: Buffer
  spanId: Buffer
  parentSpanId: Buffer
  operationName: string
  references?: ThriftSpanRef[] | null
  flags: number
  startTime: Buffer
  duration: Buffer
  tags?: ThriftTag[] | null
  logs?: ThriftLog[] | null
}
interface ThriftBatch { process: { serviceName: string, tags?: ThriftTag[] | null }, spans: ThriftSpan[] }
interface ThriftCtor { new (opts: Record<string, unknown>): Record<string, unknown> }

function loadThrift (): { batchRW: RW<ThriftBatch>, emitBatchRW: RW<{ body: { batch: ThriftBatch } }> } {
  const fromExporter = createRequire(require.resolve('@opentelemetry/exporter-jaeger'))
  const jaegerClientPkg = fromExporter.resolve('jaeger-client/package.json')
  const fromClient = createRequire(jaegerClientPkg)
  const { Thrift } = fromClient('thriftrw') as { Thrift: ThriftCtor }
  const base = join(dirname(jaegerClientPkg), 'dist', 'src')
  const jaeger = new Thrift({
    source: readFileSync(join(base, 'jaeger-idl', 'thrift', 'jaeger.thrift'), 'ascii'),
    allowOptionalArguments: true
  }) as { Batch: { rw: RW<ThriftBatch> } }
  const agent = new Thrift({
    entryPoint: join(base, 'thriftrw-idl', 'agent.thrift'),
    allowFilesystemAccess: true,
    allowOptionalArguments: true
  }) as { Agent: { emitBatch: { argumentsMessageRW: RW<{ body: { batch: ThriftBatch } }> } } }
  return { batchRW: jaeger.Batch.rw, emitBatchRW: agent.Agent.emitBatch.argumentsMessageRW }
}

let thrift: ReturnType<typeof loadThrift> | undefined
function getThrift (): ReturnType<typeof loadThrift> {
  thrift ??= loadThrift()
  return thrift
}

function i64hex (b: Buffer | null | undefined): string {
  if (!b) return '0000000000000000'
  return Buffer.from(b).toString('hex').padStart(16, '0')
}

function i64 (b: Buffer | null | undefined): bigint {
  if (!b || b.length === 0) return 0n
  return Buffer.from(b).readBigInt64BE(0)
}

function tagValue (t: ThriftTag): AttrValue {
  switch (t.vType) {
    case 'STRING': return t.vStr ?? ''
    case 'DOUBLE': return t.vDouble ?? 0
    case 'BOOL': return t.vBool ?? false
    case 'LONG': {
      const v = i64(t.vLong)
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v
    }
    case 'BINARY': return new Uint8Array(t.vBinary ?? Buffer.alloc(0))
    default: return null
  }
}

function tagsToAttrs (tags: ThriftTag[] | null | undefined): Attrs {
  const out: Attrs = {}
  for (const t of tags ?? []) out[t.key] = tagValue(t)
  return out
}

const STATUS_CODES: Record<string, number> = { UNSET: 0, OK: 1, ERROR: 2 }

/**
 * Flattens a decoded Jaeger Batch into ReceivedSpans.
 * - traceId = traceIdHigh + traceIdLow (hex); parentSpanId from parentSpanId, else a CHILD_OF reference;
 * - kind from the 'span.kind' tag, status from 'otel.status_code' / 'otel.status_description',
 *   scope from 'otel.library.name' / 'otel.library.version' (those tags are removed from attributes);
 * - logs become events (the 'event' field is the name);
 * - resource = { 'service.name': process.serviceName, ...process tags }. Note that the exporter also
 *   copies every resource attribute into each span's tags, so they appear in `attributes` too.
 */
export function flattenJaegerBatch (batch: ThriftBatch, transport: 'jaeger-http' | 'jaeger-udp'): ReceivedSpan[] {
  const resource: Attrs = { 'service.name': batch.process.serviceName, ...tagsToAttrs(batch.process.tags) }
  return batch.spans.map((s) => {
    const attributes = tagsToAttrs(s.tags)
    const kindTag = attributes['span.kind']
    const kindIdx = typeof kindTag === 'string' ? SPAN_KIND_NAMES.indexOf(kindTag.toUpperCase() as typeof SPAN_KIND_NAMES[number]) : 0
    const kind = kindIdx < 0 ? 0 : kindIdx
    const statusTag = attributes['otel.status_code']
    const status = {
      code: typeof statusTag === 'string' ? (STATUS_CODES[statusTag] ?? 0) : 0,
      message: typeof attributes['otel.status_description'] === 'string' ? attributes['otel.status_description'] as string : ''
    }
    const scope = {
      name: String(attributes['otel.library.name'] ?? ''),
      version: String(attributes['otel.library.version'] ?? '')
    }
    for (const k of ['span.kind', 'otel.status_code', 'otel.status_description', 'otel.library.name', 'otel.library.version']) delete attributes[k]

    let parentSpanId = i64hex(s.parentSpanId)
    if (/^0+$/.test(parentSpanId)) {
      const ref = (s.references ?? []).find(r => r.refType === 'CHILD_OF')
      parentSpanId = ref ? i64hex(ref.spanId) : ''
    }
    const links = (s.references ?? []).filter(r => r.refType === 'FOLLOWS_FROM').map(r => ({
      traceId: i64hex(r.traceIdHigh) + i64hex(r.traceIdLow),
      spanId: i64hex(r.spanId),
      attributes: {}
    }))
    const startMicros = i64(s.startTime)
    const durationMicros = i64(s.duration)
    const events = (s.logs ?? []).map((l) => {
      const fields = tagsToAttrs(l.fields)
      const name = String(fields.event ?? '')
      delete fields.event
      return { name, timeUnixNano: i64(l.timestamp) * 1000n, attributes: fields }
    })
    return {
      traceId: i64hex(s.traceIdHigh) + i64hex(s.traceIdLow),
      spanId: i64hex(s.spanId),
      parentSpanId,
      name: s.operationName,
      kind,
      kindName: SPAN_KIND_NAMES[kind],
      startTimeUnixNano: startMicros * 1000n,
      endTimeUnixNano: (startMicros + durationMicros) * 1000n,
      attributes,
      status,
      events,
      links,
      resource,
      scope,
      traceState: '',
      transport
    }
  })
}

/** Decodes the body of POST /api/traces (application/x-thrift, binary protocol Batch). */
export function decodeJaegerHttpBatch (buf: Buffer): ReceivedSpan[] {
  const r = getThrift().batchRW.readFrom(buf, 0)
  if (r.err) throw r.err
  return flattenJaegerBatch(r.value, 'jaeger-http')
}

/** Decodes one UDP datagram (Agent.emitBatch message, binary protocol). */
export function decodeJaegerAgentDatagram (buf: Buffer): ReceivedSpan[] {
  const r = getThrift().emitBatchRW.readFrom(buf, 0)
  if (r.err) throw r.err
  return flattenJaegerBatch(r.value.body.batch, 'jaeger-udp')
}

export interface JaegerReceiver extends SpanCollector {
  /** Collector endpoint for OTEL_EXPORTER_JAEGER_ENDPOINT: http://127.0.0.1:PORT/api/traces */
  readonly endpoint: string
  readonly httpPort: number
  /** UDP agent address (OTEL_EXPORTER_JAEGER_AGENT_HOST / _PORT). */
  readonly agentHost: string
  readonly agentPort: number
  close (): Promise<void>
}

export async function startJaegerReceiver (): Promise<JaegerReceiver> {
  getThrift() // fail early if the IDL cannot be loaded
  const collector = new SpanCollector()

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const path = (req.url ?? '').split('?')[0]
      if (req.method !== 'POST' || path !== '/api/traces') {
        res.writeHead(404).end()
        return
      }
      const contentType = String(req.headers['content-type'] ?? '').split(';')[0].trim()
      try {
        const body = await readBody(req)
        if (contentType !== 'application/x-thrift') {
          res.writeHead(415).end()
          collector.fail(new Error(`unsupported content-type ${contentType}`))
          return
        }
        const spans = decodeJaegerHttpBatch(body)
        collector.add(spans, { path, contentType, contentEncoding: '', bytes: body.length, spanCount: spans.length, receivedAt: Date.now() })
        res.writeHead(202).end()
      } catch (err) {
        collector.fail(err as Error)
        if (!res.headersSent) res.writeHead(400).end()
      }
    })()
  })
  trackServer(server, collector)
  const httpPort = await listen(server)

  const udp: Socket = createSocket('udp4')
  udp.on('message', (msg: Buffer) => {
    try {
      const spans = decodeJaegerAgentDatagram(msg)
      collector.add(spans, { path: 'udp:emitBatch', contentType: 'application/x-thrift', contentEncoding: '', bytes: msg.length, spanCount: spans.length, receivedAt: Date.now() })
    } catch (err) {
      collector.fail(err as Error)
    }
  })
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject)
    udp.bind(0, '127.0.0.1', () => {
      udp.off('error', reject)
      resolve()
    })
  })
  const agentPort = (udp.address() as AddressInfo).port

  return Object.assign(collector, {
    endpoint: `http://127.0.0.1:${httpPort}/api/traces`,
    httpPort,
    agentHost: '127.0.0.1',
    agentPort,
    close: async () => {
      await closeServer(server)
      await new Promise<void>(resolve => udp.close(() => resolve()))
    }
  })
}
