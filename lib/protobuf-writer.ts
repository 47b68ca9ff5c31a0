// A minimal protocol buffers writer: just the wire types the Prometheus exposition needs (varint,
// zigzag, 64-bit doubles, length-delimited), into one growing buffer.
//
// Nested messages are written in place: begin() reserves one byte for the length and end() widens
// it when the message came out at 128 bytes or more, moving its bytes up (copyWithin). A metric is
// nested four or five deep and mostly small, so this costs a few short moves, where computing
// every size first would walk the data twice.

const WIRE_VARINT = 0
const WIRE_FIXED64 = 1
const WIRE_LEN = 2

/** Bytes of `n` (a non-negative integer) as a varint. */
export function varintSize (n: number): number {
  let size = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    size++
  }
  return size
}

/** Writes `n` (a non-negative integer below 2^64) as a varint at `pos`; returns the position after it. */
export function putVarint (buf: Buffer, pos: number, n: number): number {
  // Division, not shifts: JS bit operations are 32-bit, counts and timestamps are not.
  while (n >= 128) {
    buf[pos++] = (n % 128) | 128
    n = Math.floor(n / 128)
  }
  buf[pos++] = n
  return pos
}

/** A count as protobuf's uint64 wants it: NaN, negatives and fractions never reach the wire. */
export function toUint (n: number): number {
  if (!(n > 0)) return 0
  return Math.min(Math.round(n), 2 ** 64 - 2048) // the largest double below 2^64
}

export class ProtoWriter {
  private buf: Buffer
  pos = 0

  constructor (initial = 1024) {
    this.buf = Buffer.allocUnsafe(initial)
  }

  get capacity (): number {
    return this.buf.length
  }

  reset (): void {
    this.pos = 0
  }

  /** A copy of what was written, of exactly its size (the writer's buffer is reused). */
  finish (): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos))
  }

  private ensure (n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  private tag (field: number, wire: number): void {
    this.ensure(11)
    this.pos = putVarint(this.buf, this.pos, field * 8 + wire)
  }

  private rawVarint (n: number): void {
    this.ensure(10)
    this.pos = putVarint(this.buf, this.pos, n)
  }

  uint (field: number, n: number): void {
    this.tag(field, WIRE_VARINT)
    this.rawVarint(toUint(n))
  }

  /** int64 (timestamps): a negative value is its 64-bit two's complement, ten bytes. */
  int (field: number, n: number): void {
    this.tag(field, WIRE_VARINT)
    if (n >= 0) {
      this.rawVarint(n)
      return
    }
    let v = BigInt.asUintN(64, BigInt(n))
    this.ensure(10)
    while (v >= 128n) {
      this.buf[this.pos++] = Number(v & 127n) | 128
      v >>= 7n
    }
    this.buf[this.pos++] = Number(v)
  }

  /** sint32/sint64: zigzag, so that small negative numbers stay short (exact to ±2^52). */
  sint (field: number, n: number): void {
    this.tag(field, WIRE_VARINT)
    this.rawVarint(zigzag(n))
  }

  double (field: number, v: number): void {
    this.tag(field, WIRE_FIXED64)
    this.ensure(8)
    this.buf.writeDoubleLE(v, this.pos)
    this.pos += 8
  }

  string (field: number, s: string): void {
    const len = Buffer.byteLength(s)
    this.tag(field, WIRE_LEN)
    this.rawVarint(len)
    this.ensure(len)
    this.pos += this.buf.write(s, this.pos, len, 'utf8')
  }

  /** A packed repeated sint64 field (proto2 parsers accept packed and unpacked alike). */
  packedSint (field: number, values: readonly number[]): void {
    if (values.length === 0) return
    const start = this.begin(field)
    for (const v of values) this.rawVarint(zigzag(v))
    this.end(start)
  }

  /**
   * Starts a length-delimited field, or with no field number a delimited message (the length
   * prefix alone, as between MetricFamily messages); pass what it returns to end().
   */
  begin (field?: number): number {
    if (field !== undefined) this.tag(field, WIRE_LEN)
    this.ensure(1)
    return this.pos++
  }

  end (start: number): void {
    const len = this.pos - start - 1
    const size = varintSize(len)
    if (size > 1) {
      this.ensure(size - 1)
      this.buf.copyWithin(start + size, start + 1, this.pos)
      this.pos += size - 1
    }
    putVarint(this.buf, start, len)
  }
}

function zigzag (n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1
}
