// An OTLP/HTTP trace receiver for tests: POST /v1/traces with application/x-protobuf
// (ExportTraceServiceRequest, decoded here from the wire format) or application/json,
// optionally gzip-compressed. Spans are flattened into ReceivedSpan objects.
//
// The protobuf decoder is self-contained (the OTLP trace.proto field numbers are listed
// next to each message), so it does not depend on any exporter-internal code.
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'

export type AttrValue = string | number | boolean | bigint | Uint8Array | null | AttrValue[] | { [key: string]: AttrValue }
export type Attrs = Record<string, AttrValue>

/** @opentelemetry/api SpanKind numbering. */
export const SPAN_KIND_NAMES = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'] as const
export type SpanKindName = typeof SPAN_KIND_NAMES[number]

/** The flat span shape shared by the OTLP and Jaeger receivers. */
export interface ReceivedSpan {
  traceId: string
  spanId: string
  /** '' for a root span. */
  parentSpanId: string
  name: string
  /** @opentelemetry/api SpanKind number (INTERNAL 0, SERVER 1, CLIENT 2, PRODUCER 3, CONSUMER 4). */
  kind: number
  kindName: SpanKindName
  startTimeUnixNano: bigint
  endTimeUnixNano: bigint
  attributes: Attrs
  /** code: @opentelemetry/api SpanStatusCode (UNSET 0, OK 1, ERROR 2). */
  status: { code: number, message: string }
  events: Array<{ name: string, timeUnixNano: bigint, attributes: Attrs }>
  links: Array<{ traceId: string, spanId: string, attributes: Attrs }>
  resource: Attrs
  scope: { name: string, version: string }
  traceState: string
  /** Which receiver / transport delivered it. */
  transport: 'otlp-protobuf' | 'otlp-json' | 'jaeger-http' | 'jaeger-udp'
}

// ---------------------------------------------------------------------------------------
// Protobuf wire format
// ---------------------------------------------------------------------------------------

class Reader {
  pos = 0
  constructor (readonly buf: Uint8Array, readonly end = buf.length) {}

  atEnd (): boolean { return this.pos >= this.end }

  varint (): bigint {
    let result = 0n
    let shift = 0n
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint')
      const b = this.buf[this.pos++]
      result |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return result
      shift += 7n
      if (shift > 63n) throw new Error('varint too long')
    }
  }

  tag (): { field: number, wire: number } {
    const t = Number(this.varint())
    return { field: t >>> 3, wire: t & 7 }
  }

  bytes (): Uint8Array {
    const len = Number(this.varint())
    if (this.pos + len > this.end) throw new Error('truncated length-delimited field')
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }

  sub (): Reader {
    const b = this.bytes()
    return new Reader(b)
  }

  string (): string { return Buffer.from(this.bytes()).toString('utf8') }

  fixed64 (): bigint {
    if (this.pos + 8 > this.end) throw new Error('truncated fixed64')
    const v = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, 8).readBigUInt64LE(0)
    this.pos += 8
    return v
  }

  double (): number {
    if (this.pos + 8 > this.end) throw new Error('truncated double')
    const v = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, 8).readDoubleLE(0)
    this.pos += 8
    return v
  }

  fixed32 (): number {
    if (this.pos + 4 > this.end) throw new Error('truncated fixed32')
    const v = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, 4).readUInt32LE(0)
    this.pos += 4
    return v
  }

  skip (wire: number): void {
    switch (wire) {
      case 0: this.varint(); break
      case 1: this.pos += 8; break
      case 2: this.bytes(); break
      case 5: this.pos += 4; break
      default: throw new Error(`unsupported wire type ${wire}`)
    }
  }
}

function hex (b: Uint8Array): string { return Buffer.from(b).toString('hex') }

function int64 (v: bigint): number | bigint {
  const signed = BigInt.asIntN(64, v)
  return signed >= BigInt(Number.MIN_SAFE_INTEGER) && signed <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(signed) : signed
}

// AnyValue: 1 string_value, 2 bool_value, 3 int_value (int64), 4 double_value,
//           5 array_value (ArrayValue{1 values}), 6 kvlist_value (KeyValueList{1 values}), 7 bytes_value
function readAnyValue (r: Reader): AttrValue {
  let value: AttrValue = null
  while (!r.atEnd()) {
    const { field, wire } = r.tag()
    switch (field) {
      case 1: value = r.string(); break
      case 2: value = r.varint() !== 0n; break
      case 3: value = int64(r.varint()); break
      case 4: value = r.double(); break
      case 5: {
        const arr: AttrValue[] = []
        const a = r.sub()
        while (!a.atEnd()) {
          const t = a.tag()
          if (t.field === 1) arr.push(readAnyValue(a.sub()))
          else a.skip(t.wire)
        }
        value = arr
        break
      }
      case 6: {
        const kv = r.sub()
        const obj: Attrs = {}
        while (!kv.atEnd()) {
          const t = kv.tag()
          if (t.field === 1) readKeyValue(kv.sub(), obj)
          else kv.skip(t.wire)
        }
        value = obj
        break
      }
      case 7: value = new Uint8Array(r.bytes()); break
      default: r.skip(wire)
    }
  }
  return value
}

// KeyValue: 1 key, 2 value (AnyValue)
function readKeyValue (r: Reader, into: Attrs): void {
  let key = ''
  let value: AttrValue = null
  while (!r.atEnd()) {
    const { field, wire } = r.tag()
    if (field === 1) key = r.string()
    else if (field === 2) value = readAnyValue(r.sub())
    else r.skip(wire)
  }
  into[key] = value
}

// Resource: 1 attributes, 2 dropped_attributes_count
function readResource (r: Reader): Attrs {
  const attrs: Attrs = {}
  while (!r.atEnd()) {
    const { field, wire } = r.tag()
    if (field === 1) readKeyValue(r.sub(), attrs)
    else r.skip(wire)
  }
  return attrs
}

// InstrumentationScope: 1 name, 2 version, 3 attributes, 4 dropped_attributes_count
function readScope (r: Reader): { name: string, version: string } {
  const scope = { name: '', version: '' }
  while (!r.atEnd()) {
    const { field, wire } = r.tag()
    if (field === 1) scope.name = r.string()
    else if (field === 2) scope.version = r.string()
    else r.skip(wire)
  }
  return scope
}

function kindFromOtlp (otlpKind: number): number {
  // OTLP: 0 UNSPECIFIED, 1 INTERNAL, 2 SERVER, 3 CLIENT, 4 PRODUCER, 5 CONSUMER
  return otlpKind <= 1 ? 0 : otlpKind - 1
}

// Span: 1 trace_id, 2 span_id, 3 trace_state, 4 parent_span_id, 5 name, 6 kind,
//       7 start_time_unix_nano (fixed64), 8 end_time_unix_nano (fixed64), 9 attributes,
//       10 dropped_attributes_count, 11 events, 12 dropped_events_count, 13 links,
//       14 dropped_links_count, 15 status, 16 flags (fixed32)
// Status: 2 message, 3 code
// Event: 1 time_unix_nano (fixed64), 2 name, 3 attributes, 4 dropped_attributes_count
// Link: 1 trace_id, 2 span_id, 3 trace_state, 4 attributes, 5 dropped, 6 flags
function readSpan (r: Reader, resource: Attrs, scope: { name: string, version: string }): ReceivedSpan {
  const span: ReceivedSpan = {
    traceId: '',
    spanId: '',
    parentSpanId: '',
    name: '',
    kind: 0,
    kindName: 'INTERNAL',
    startTimeUnixNano: 0n,
    endTimeUnixNano: 0n,
    attributes: {},
    status: { code: 0, message: '' },
    events: [],
    links: [],
    resource,
    scope,
    traceState: '',
    transport: 'otlp-protobuf'
  }
  while (!r.atEnd()) {
    const { field, wire } = r.tag()
    switch (field) {
      case 1: span.traceId = hex(r.bytes()); break
      case 2: span.spanId = hex(r.bytes()); break
      case 3: span.traceState = r.string(); break
      case 4: span.parentSpanId = hex(r.bytes()); break
      case 5: span.name = r.string(); break
      case 6: span.kind = kindFromOtlp(Number(r.varint())); break
      case 7: span.startTimeUnixNano = r.fixed64(); break
      case 8: span.endTimeUnixNano = r.fixed64(); break
      case 9: readKeyValue(r.sub(), span.attributes); break
      case 11: {
        const e = r.sub()
        const event = { name: '', timeUnixNano: 0n, attributes: {} as Attrs }
        while (!e.atEnd()) {
          const t = e.tag()
          if (t.field === 1) event.timeUnixNano = e.fixed64()
          else if (t.field === 2) event.name = e.string()
          else if (t.field === 3) readKeyValue(e.sub(), event.attributes)
          else e.skip(t.wire)
        }
        span.events.push(event)
        break
      }
      case 13: {
        const l = r.sub()
        const link = { traceId: '', spanId: '', attributes: {} as Attrs }
        while (!l.atEnd()) {
          const t = l.tag()
          if (t.field === 1) link.traceId = hex(l.bytes())
          else if (t.field === 2) link.spanId = hex(l.bytes())
          else if (t.field === 4) readKeyValue(l.sub(), link.attributes)
          else l.skip(t.wire)
        }
        span.links.push(link)
        break
      }
      case 15: {
        const s = r.sub()
        while (!s.atEnd()) {
          const t = s.tag()
          if (t.field === 2) span.status.message = s.string()
          else if (t.field === 3) span.status.code = Number(s.varint())
          else s.skip(t.wire)
        }
        break
      }
      case 16: r.fixed32(); break
      default: r.skip(wire)
    }
  }
  span.kindName = SPAN_KIND_NAMES[span.kind] ?? 'INTERNAL'
  return span
}

/**
 * Decodes an ExportTraceServiceRequest (1 resource_spans) into flat spans.
 * ResourceSpans: 1 resource, 2 scope_spans, 3 schema_url. ScopeSpans: 1 scope, 2 spans, 3 schema_url.
 */
export function decodeExportTraceServiceRequest (buf: Uint8Array): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  const r = new Reader(buf)
  while (!r.atEnd()) {
    const { field, wire } = r.tag()
    if (field !== 1) { r.skip(wire); continue }
    const rs = r.sub()
    let resource: Attrs = {}
    const scopeSpanBufs: Reader[] = []
    while (!rs.atEnd()) {
      const t = rs.tag()
      if (t.field === 1) resource = readResource(rs.sub())
      else if (t.field === 2) scopeSpanBufs.push(rs.sub())
      else rs.skip(t.wire)
    }
    for (const ss of scopeSpanBufs) {
      let scope = { name: '', version: '' }
      const spanBufs: Reader[] = []
      while (!ss.atEnd()) {
        const t = ss.tag()
        if (t.field === 1) scope = readScope(ss.sub())
        else if (t.field === 2) spanBufs.push(ss.sub())
        else ss.skip(t.wire)
      }
      for (const sb of spanBufs) out.push(readSpan(sb, resource, scope))
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------
// OTLP/JSON (ids are hex per the OTLP/JSON spec; base64 accepted too)
// ---------------------------------------------------------------------------------------

interface JsonAnyValue {
  stringValue?: string
  boolValue?: boolean
  intValue?: string | number
  doubleValue?: number | string
  arrayValue?: { values?: JsonAnyValue[] }
  kvlistValue?: { values?: JsonKeyValue[] }
  bytesValue?: string
}
interface JsonKeyValue { key: string, value?: JsonAnyValue }

function jsonId (v: unknown): string {
  if (typeof v !== 'string' || v === '') return ''
  if (/^[0-9a-f]+$/i.test(v) && (v.length === 32 || v.length === 16)) return v.toLowerCase()
  return Buffer.from(v, 'base64').toString('hex')
}

function jsonValue (v: JsonAnyValue | undefined): AttrValue {
  if (v === undefined) return null
  if (v.stringValue !== undefined) return v.stringValue
  if (v.boolValue !== undefined) return v.boolValue
  if (v.intValue !== undefined) return int64(BigInt(v.intValue))
  if (v.doubleValue !== undefined) return Number(v.doubleValue)
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(jsonValue)
  if (v.kvlistValue !== undefined) return jsonAttrs(v.kvlistValue.values)
  if (v.bytesValue !== undefined) return new Uint8Array(Buffer.from(v.bytesValue, 'base64'))
  return null
}

function jsonAttrs (list: JsonKeyValue[] | undefined): Attrs {
  const out: Attrs = {}
  for (const kv of list ?? []) out[kv.key] = jsonValue(kv.value)
  return out
}

function jsonNano (v: unknown): bigint {
  if (typeof v === 'string' || typeof v === 'number') return BigInt(v)
  if (v !== null && typeof v === 'object' && 'low' in v && 'high' in v) {
    const { low, high } = v as { low: number, high: number }
    return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0)
  }
  return 0n
}

export function decodeOtlpJson (body: any): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  for (const rs of body?.resourceSpans ?? []) {
    const resource = jsonAttrs(rs.resource?.attributes)
    for (const ss of rs.scopeSpans ?? []) {
      const scope = { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '' }
      for (const s of ss.spans ?? []) {
        const kind = kindFromOtlp(Number(s.kind ?? 0))
        out.push({
          traceId: jsonId(s.traceId),
          spanId: jsonId(s.spanId),
          parentSpanId: jsonId(s.parentSpanId),
          name: s.name ?? '',
          kind,
          kindName: SPAN_KIND_NAMES[kind] ?? 'INTERNAL',
          startTimeUnixNano: jsonNano(s.startTimeUnixNano),
          endTimeUnixNano: jsonNano(s.endTimeUnixNano),
          attributes: jsonAttrs(s.attributes),
          status: { code: Number(s.status?.code ?? 0), message: s.status?.message ?? '' },
          events: (s.events ?? []).map((e: any) => ({
            name: e.name ?? '',
            timeUnixNano: jsonNano(e.timeUnixNano),
            attributes: jsonAttrs(e.attributes)
          })),
          links: (s.links ?? []).map((l: any) => ({
            traceId: jsonId(l.traceId),
            spanId: jsonId(l.spanId),
            attributes: jsonAttrs(l.attributes)
          })),
          resource,
          scope,
          traceState: s.traceState ?? '',
          transport: 'otlp-json'
        })
      }
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------
// Shared collector (also used by the Jaeger receiver)
// ---------------------------------------------------------------------------------------

export interface RequestRecord {
  path: string
  contentType: string
  contentEncoding: string
  bytes: number
  spanCount: number
  receivedAt: number
}

export class SpanCollector {
  readonly spans: ReceivedSpan[] = []
  readonly requests: RequestRecord[] = []
  readonly errors: Error[] = []
  private waiters = new Set<() => void>()
  /** Open connections and requests still being read or decoded (see trackServer). */
  private busy = 0

  /** Counts a connection or a request as busy until done() is called. */
  hold (): () => void {
    this.busy++
    let once = false
    return () => {
      if (once) return
      once = true
      this.busy--
      for (const w of [...this.waiters]) w()
    }
  }

  /**
   * Resolves once no connection is open and no request is being read: after the exporting
   * process has exited, everything it sent has been recorded (the event a fixed sleep after
   * waitFor used to stand for). Rejects after timeoutMs.
   */
  settled (timeoutMs = 5000): Promise<void> {
    return this.waitFor(() => this.busy === 0, timeoutMs).then(() => {})
  }

  add (spans: ReceivedSpan[], record: RequestRecord): void {
    this.spans.push(...spans)
    this.requests.push(record)
    for (const w of [...this.waiters]) w()
  }

  fail (err: Error): void {
    this.errors.push(err)
    for (const w of [...this.waiters]) w()
  }

  /**
   * Resolves with all spans received so far once predicate(spans) is true; rejects after
   * timeoutMs (message includes what was received) or on a decode error.
   */
  waitFor (predicate: (spans: ReceivedSpan[]) => boolean, timeoutMs = 5000): Promise<ReceivedSpan[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (this.errors.length > 0) {
          cleanup()
          reject(this.errors[0])
          return true
        }
        if (predicate(this.spans)) {
          cleanup()
          resolve(this.spans)
          return true
        }
        return false
      }
      const timer = setTimeout(() => {
        cleanup()
        const seen = this.spans.map(s => `${s.kindName} ${JSON.stringify(s.name)}`).join(', ')
        reject(new Error(`timed out after ${timeoutMs} ms waiting for spans; received ${this.spans.length} span(s) in ${this.requests.length} request(s): [${seen}]`))
      }, timeoutMs)
      const waiter = (): void => { check() }
      const cleanup = (): void => {
        clearTimeout(timer)
        this.waiters.delete(waiter)
      }
      this.waiters.add(waiter)
      check()
    })
  }

  /** Waits for one span matching predicate and returns it. */
  async waitForSpan (predicate: (span: ReceivedSpan) => boolean, timeoutMs = 5000): Promise<ReceivedSpan> {
    const spans = await this.waitFor(all => all.some(predicate), timeoutMs)
    return spans.find(predicate)!
  }
}

export function readBody (req: IncomingMessage, limit = 16 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > limit) {
        reject(new Error('request body too large'))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

export function listen (server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

/** Makes collector.settled() wait for the server's open connections and requests in progress. */
export function trackServer (server: Server, collector: SpanCollector): void {
  server.on('connection', (socket) => { socket.once('close', collector.hold()) })
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    const done = collector.hold()
    res.once('close', done)
    res.once('finish', done)
  })
}

export function closeServer (server: Server): Promise<void> {
  return new Promise(resolve => {
    if (!server.listening) { resolve(); return }
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

// ---------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------

export interface OtlpReceiver extends SpanCollector {
  /** Base URL, e.g. http://127.0.0.1:4318 (for OTEL_EXPORTER_OTLP_ENDPOINT). */
  readonly url: string
  /** url + '/v1/traces' (for OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). */
  readonly tracesUrl: string
  readonly port: number
  close (): Promise<void>
}

/**
 * `blackHole`: a collector that is there but never answers (accepts the connection, reads and
 * records each export request, sends nothing back), as a hung or overloaded one does: the
 * exporter waits for its own timeout.
 */
export async function startOtlpReceiver (options: { blackHole?: boolean } = {}): Promise<OtlpReceiver> {
  const collector = new SpanCollector()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const path = (req.url ?? '').split('?')[0]
      if (req.method !== 'POST' || path !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      const contentType = String(req.headers['content-type'] ?? '').split(';')[0].trim()
      const contentEncoding = String(req.headers['content-encoding'] ?? '')
      let body: Buffer
      try {
        body = await readBody(req)
        if (contentEncoding === 'gzip') body = gunzipSync(body)
        let spans: ReceivedSpan[]
        if (contentType === 'application/x-protobuf') {
          spans = decodeExportTraceServiceRequest(body)
        } else if (contentType === 'application/json') {
          spans = decodeOtlpJson(JSON.parse(body.toString('utf8')))
        } else {
          res.writeHead(415).end()
          collector.fail(new Error(`unsupported content-type ${contentType}`))
          return
        }
        collector.add(spans, { path, contentType, contentEncoding, bytes: body.length, spanCount: spans.length, receivedAt: Date.now() })
        if (options.blackHole === true) return
        // An empty ExportTraceServiceResponse is success in both encodings.
        if (contentType === 'application/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
        else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
      } catch (err) {
        collector.fail(err as Error)
        if (!res.headersSent) res.writeHead(400).end()
      }
    })()
  })
  trackServer(server, collector)
  const port = await listen(server)
  const url = `http://127.0.0.1:${port}`
  return Object.assign(collector, {
    url,
    tracesUrl: `${url}/v1/traces`,
    port,
    close: () => closeServer(server)
  })
}
