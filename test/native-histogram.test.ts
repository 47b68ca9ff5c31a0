// The bucket math of native histograms (#14): keys against hand-computed values and against an
// exact BigInt reference, the zero bucket, spans and deltas as client_golang's makeBuckets writes
// them, resolution reduction when maxBuckets is hit, and reset.
import t from 'tap'
import { bucketKey, upperBound, NativeBuckets, DEFAULT_NATIVE_CONFIG, MIN_SCHEMA, MAX_SCHEMA } from '../lib/native-histogram'
import type { BucketSpan } from '../lib/native-histogram'

const view = new DataView(new ArrayBuffer(8))
/** The neighbouring double of a positive finite v, away from (+1) or towards (-1) zero. */
function step (v: number, dir: 1 | -1): number {
  view.setFloat64(0, v)
  view.setBigUint64(0, view.getBigUint64(0) + BigInt(dir))
  return view.getFloat64(0)
}
const nextUp = (v: number): number => step(v, 1)
const nextDown = (v: number): number => step(v, -1)

/** v = m·2^e exactly, m an integer. */
function decompose (v: number): [bigint, number] {
  view.setFloat64(0, v)
  const bits = view.getBigUint64(0)
  const biased = Number((bits >> 52n) & 0x7ffn)
  const mantissa = bits & ((1n << 52n) - 1n)
  return biased === 0 ? [mantissa, -1074] : [mantissa | (1n << 52n), biased - 1075]
}

/** The key by the data model, in exact arithmetic: the least k with v <= 2^(k·2^-s). */
function referenceKey (v: number, s: number): number {
  const n = 2 ** Math.max(s, 0)
  const [m, e] = decompose(v)
  const mn = m ** BigInt(n)
  // v^n <= 2^K, K = k·2^max(-s, 0): m^n·2^(e·n) <= 2^K
  const atMost = (k: number): boolean => {
    const shift = e * n - k * 2 ** Math.max(-s, 0)
    return shift >= 0 ? (mn << BigInt(shift)) <= 1n : mn <= (1n << BigInt(-shift))
  }
  let k = Math.ceil(Math.log2(v) * 2 ** s)
  while (!atMost(k)) k++
  while (atMost(k - 1)) k--
  return k
}

let seed = 20260514
function random (): number { // xorshift32: the same values every run
  seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5
  return (seed >>> 0) / 2 ** 32
}

/** key -> count again from spans and deltas. */
function decode ({ spans, deltas }: { spans: BucketSpan[], deltas: number[] }): Map<number, number> {
  const out = new Map<number, number>()
  let key = 0
  let count = 0
  let d = 0
  for (const span of spans) {
    key += span.offset
    for (let i = 0; i < span.length; i++, key++) {
      count += deltas[d++]
      if (count !== 0) out.set(key, count)
    }
  }
  return out
}

t.test('defaults and limits', async (t) => {
  t.same(DEFAULT_NATIVE_CONFIG, { schema: 3, zeroThreshold: 2 ** -128, maxBuckets: 160 })
  t.equal(DEFAULT_NATIVE_CONFIG.zeroThreshold, 2.938735877055719e-39, "client_golang's DefNativeHistogramZeroThreshold")
  t.ok(Object.isFrozen(DEFAULT_NATIVE_CONFIG))
  t.equal(MIN_SCHEMA, -4)
  t.equal(MAX_SCHEMA, 8)
  const bad: Array<[Partial<typeof DEFAULT_NATIVE_CONFIG>, RegExp]> = [
    [{ schema: -5 }, /schema/], [{ schema: 9 }, /schema/], [{ schema: 1.5 }, /schema/], [{ schema: NaN }, /schema/],
    [{ zeroThreshold: -1 }, /zeroThreshold/], [{ zeroThreshold: NaN }, /zeroThreshold/], [{ zeroThreshold: Infinity }, /zeroThreshold/],
    [{ maxBuckets: 0 }, /maxBuckets/], [{ maxBuckets: 2.5 }, /maxBuckets/], [{ maxBuckets: NaN }, /maxBuckets/]
  ]
  for (const [change, message] of bad) t.throws(() => new NativeBuckets({ ...DEFAULT_NATIVE_CONFIG, ...change }), { name: 'RangeError', message }, JSON.stringify(change))
  for (const schema of [MIN_SCHEMA, 0, MAX_SCHEMA]) t.equal(new NativeBuckets({ ...DEFAULT_NATIVE_CONFIG, schema }).schema, schema)
})

t.test("bounds: client_golang's nativeHistogramBounds, within 1e-15 of 2^(k/2^s)", async (t) => {
  // Copied from client_golang's table for schemas 1, 2, 3 and the ends of 8; the module keeps only
  // schema 8's and strides through it for the others.
  const golang: Record<number, number[]> = {
    1: [0.5, 0.7071067811865475],
    2: [0.5, 0.5946035575013605, 0.7071067811865475, 0.8408964152537144],
    3: [0.5, 0.5452538663326288, 0.5946035575013605, 0.6484197773255048, 0.7071067811865475, 0.7711054127039704, 0.8408964152537144, 0.9170040432046711]
  }
  for (const [s, fracs] of Object.entries(golang)) t.same(fracs.map((_, j) => upperBound(j, Number(s)) / 2), fracs, `schema ${s}`)
  t.equal(upperBound(1, 8) / 2, 0.5013556375251013)
  t.equal(upperBound(255, 8) / 2, 0.9972960560854698)
  for (let s = MIN_SCHEMA; s <= MAX_SCHEMA; s++) {
    for (let k = -3 * 2 ** Math.max(s, 0); k <= 3 * 2 ** Math.max(s, 0); k++) {
      const exact = 2 ** (k / 2 ** s)
      if (Math.abs(upperBound(k, s) / exact - 1) > 1e-15) t.fail(`upperBound(${k}, ${s}) = ${upperBound(k, s)}, not ${exact}`)
    }
  }
  t.equal(upperBound(0, -4), 1)
  t.equal(upperBound(-1, -4), 2 ** -16)
  t.equal(upperBound(64, -4), Number.MAX_VALUE, 'the last finite bucket ends at MAX_VALUE (getLe)')
  t.equal(upperBound(1024 * 256, 8), Number.MAX_VALUE)
  t.equal(upperBound(1024 * 256 + 1, 8), Infinity, 'the ±Inf bucket')
})

t.test('bucketKey: known values', async (t) => {
  const cases: Record<number, Array<[number, number]>> = {
    [-4]: [[1, 0], [0.5, 0], [2, 1], [65536, 1], [65537, 2], [2 ** -16, -1], [nextUp(2 ** -16), 0], [1e-5, -1], [2 ** -32, -2]],
    [-1]: [[1, 0], [0.5, 0], [0.25, -1], [nextUp(0.25), 0], [0.2, -1], [2, 1], [4, 1], [nextUp(4), 2], [16, 2]],
    0: [[1, 0], [nextDown(1), 0], [nextUp(1), 1], [2, 1], [1.5, 1], [3, 2], [4, 2], [0.5, -1], [0.75, 0], [0.25, -2], [1e-3, -9], [10, 4]],
    // base 2^(1/2); client_golang's bound 0.7071067811865475·2 lies below Math.SQRT2, which is above √2 too
    1: [[1, 0], [2, 2], [0.5, -2], [1.4, 1], [1.414213562373095, 1], [Math.SQRT2, 2], [1.5, 2], [nextUp(1), 1], [3, 4]],
    // base 2^(1/8) = 1.0905077326652577
    3: [[1, 0], [2, 8], [0.5, -8], [1.09, 1], [1.0905077326652577, 1], [1.0905077326652579, 2], [1e-3, -79], [10, 27], [2 ** -128, -1024], [5e-5, -114]],
    8: [[1, 0], [2, 256], [0.5, -256], [10, 851], [1e-3, -2551], [nextUp(1), 1], [nextDown(2), 256], [nextUp(2), 257]]
  }
  for (const [s, pairs] of Object.entries(cases)) {
    for (const [v, key] of pairs) {
      t.equal(bucketKey(v, Number(s)), key, `schema ${s}: ${v}`)
      t.equal(bucketKey(-v, Number(s)), key, `schema ${s}: ${-v} (absolute value)`)
    }
  }
  // tiny (subnormal) and huge; ±Inf one past MAX_VALUE's bucket, as client_golang
  t.equal(bucketKey(Number.MIN_VALUE, 0), -1074, '2^-1074 is a power of two: upper bound of its bucket')
  t.equal(bucketKey(Number.MIN_VALUE, 3), -1074 * 8)
  t.equal(bucketKey(Number.MIN_VALUE, 8), -1074 * 256)
  t.equal(bucketKey(Number.MIN_VALUE, -4), -67)
  t.equal(bucketKey(1.5 * 2 ** -1060, 0), -1059)
  t.equal(bucketKey(3 * Number.MIN_VALUE, 1), referenceKey(3 * Number.MIN_VALUE, 1))
  for (const [s, key] of [[-4, 64], [-1, 512], [0, 1024], [3, 8192], [8, 262144]]) {
    t.equal(bucketKey(Number.MAX_VALUE, s), key, `MAX_VALUE at schema ${s}`)
    t.equal(bucketKey(Infinity, s), key + 1)
    t.equal(bucketKey(-Infinity, s), key + 1)
  }
  t.equal(bucketKey(0, 3), -Infinity)
  t.ok(Number.isNaN(bucketKey(NaN, 3)))
})

t.test('bucketKey: every bound is in the bucket it ends, the next double in the next one', async (t) => {
  for (let s = MIN_SCHEMA; s <= MAX_SCHEMA; s++) {
    const n = 2 ** Math.max(s, 0)
    const keys: number[] = []
    for (let k = -4 * n; k <= 4 * n; k++) keys.push(k)
    const top = bucketKey(Number.MAX_VALUE, s)
    const bottom = bucketKey(Number.MIN_VALUE, s)
    for (let k = top - n; k <= top; k++) keys.push(k)
    for (let k = bottom; k < bottom + n; k++) keys.push(k)
    for (const k of keys) {
      const le = upperBound(k, s)
      if (le < 2 ** -1022) continue // subnormal bounds are rounded: no longer one double per bound
      if (bucketKey(le, s) !== k) t.fail(`schema ${s}: bucketKey(${le}) = ${bucketKey(le, s)}, not ${k}`)
      if (bucketKey(nextUp(le), s) !== k + 1) t.fail(`schema ${s}: bucketKey(nextUp(${le})) = ${bucketKey(nextUp(le), s)}, not ${k + 1}`)
    }
    t.pass(`schema ${s}: ${keys.length} bounds`)
  }
})

t.test('bucketKey: random values against the exact reference, at every schema', async (t) => {
  for (let s = MIN_SCHEMA; s <= MAX_SCHEMA; s++) {
    let bad = 0
    for (let i = 0; i < 1500; i++) {
      // half spread over all doubles, half over request durations (1e-5..10 s)
      const v = i % 2 === 0 ? 2 ** (random() * 2098 - 1074) * (1 + random()) : 1e-5 * 1e6 ** random()
      if (!(v > 0 && v < Infinity)) continue
      const want = referenceKey(v, s)
      if (bucketKey(v, s) !== want && bad++ < 5) t.fail(`schema ${s}: bucketKey(${v}) = ${bucketKey(v, s)}, want ${want}`)
    }
    t.equal(bad, 0, `schema ${s}`)
  }
})

t.test('zero bucket, negative values, NaN and ±Inf', async (t) => {
  const h = new NativeBuckets(DEFAULT_NATIVE_CONFIG)
  for (const v of [0, -0, 2 ** -128, -(2 ** -128), 2 ** -129, 1e-300]) h.observe(v)
  t.equal(h.zeroCount, 6)
  t.equal(h.bucketCount, 0)
  h.observe(NaN)
  t.equal(h.zeroCount, 6, 'NaN: in no bucket')
  t.equal(h.bucketCount, 0)
  h.observe(nextUp(2 ** -128))
  t.same(decode(h.positive()), new Map([[-1023, 1]]), 'just above the threshold: the bucket above -1024')
  h.observe(-2)
  h.observe(-2)
  h.observe(-0.5)
  h.observe(-Infinity)
  t.same(decode(h.negative()), new Map([[-8, 1], [8, 2], [8193, 1]]), 'negative values by their absolute value')
  h.observe(Infinity)
  t.same(decode(h.positive()), new Map([[-1023, 1], [8193, 1]]))
  t.equal(h.bucketCount, 5)

  const wide = new NativeBuckets({ schema: 0, zeroThreshold: 1e-3, maxBuckets: 10 })
  for (const v of [1e-3, -1e-3, 5e-4, -5e-4]) wide.observe(v)
  wide.observe(nextUp(1e-3))
  wide.observe(-2e-3)
  t.equal(wide.zeroCount, 4)
  t.same(decode(wide.positive()), new Map([[-9, 1]]))
  t.same(decode(wide.negative()), new Map([[-8, 1]]))

  const none = new NativeBuckets({ schema: 0, zeroThreshold: 0, maxBuckets: 10 })
  for (const v of [0, -0, Number.MIN_VALUE, -Number.MIN_VALUE]) none.observe(v)
  t.equal(none.zeroCount, 2, 'zeroThreshold 0: only zero itself')
  t.same(decode(none.positive()), new Map([[-1074, 1]]))
  t.same(decode(none.negative()), new Map([[-1074, 1]]))
})

t.test('spans and deltas, gaps of up to two buckets bridged as client_golang does', async (t) => {
  const observe = (schema: number, values: number[]): NativeBuckets => {
    const h = new NativeBuckets({ schema, zeroThreshold: 2 ** -128, maxBuckets: 1000 })
    for (const v of values) h.observe(v)
    return h
  }
  t.same(observe(0, []).positive(), { spans: [], deltas: [] })
  // keys -1:1, 0:2, 1:1, (2 empty), 3:3, then 10:1 after a gap of six
  const h = observe(0, [0.5, 1, 1, 2, 8, 8, 8, 1024, -1, -1, -4])
  t.same(h.positive(), { spans: [{ offset: -1, length: 5 }, { offset: 6, length: 1 }], deltas: [1, 1, -1, -1, 3, -2] })
  t.same(h.negative(), { spans: [{ offset: 0, length: 3 }], deltas: [2, -2, 1] })
  t.same(observe(0, [1, 8]).positive(), { spans: [{ offset: 0, length: 4 }], deltas: [1, -1, 0, 1] }, 'gap of two: bridged')
  t.same(observe(0, [1, 16]).positive(), { spans: [{ offset: 0, length: 1 }, { offset: 3, length: 1 }], deltas: [1, 0] }, 'gap of three: a new span')
  t.same(observe(3, [1.5, 1.5, 3]).positive(), { spans: [{ offset: 5, length: 1 }, { offset: 7, length: 1 }], deltas: [2, -1] }, 'keys 5 and 13')

  // many random values: the spans decode to what bucketKey counts, no span follows a gap under 3
  const values = Array.from({ length: 3000 }, () => (random() < 0.2 ? -1 : 1) * 1e-5 * 1e6 ** random())
  const r = observe(3, values)
  for (const [side, sign] of [[r.positive(), 1], [r.negative(), -1]] as const) {
    const want = new Map<number, number>()
    for (const v of values) if (Math.sign(v) === sign) want.set(bucketKey(v, 3), (want.get(bucketKey(v, 3)) ?? 0) + 1)
    t.same(decode(side), want)
    t.equal(side.deltas.length, side.spans.reduce((n, s) => n + s.length, 0))
    t.ok(side.spans.slice(1).every(s => s.offset > 2))
  }
})

t.test('resolution reduction when maxBuckets is hit', async (t) => {
  // schema 0, keys -3, -2, -1, 1, 2, 3: six buckets, the limit; key 0 makes seven
  const h = new NativeBuckets({ schema: 0, zeroThreshold: 2 ** -128, maxBuckets: 6 })
  for (const v of [0.125, 0.25, 0.5, 2, 4, 8]) h.observe(v)
  t.equal(h.schema, 0)
  t.equal(h.bucketCount, 6)
  h.observe(1)
  t.equal(h.schema, -1, 'halved once')
  // Go's merge: k > 0 -> (k+1)/2, else k/2 truncated: -3,-2 -> -1; -1,0 -> 0; 1,2 -> 1; 3 -> 2
  t.same(h.positive(), { spans: [{ offset: -1, length: 4 }], deltas: [2, 0, 0, -1] })
  t.equal(h.bucketCount, 4)

  const many = new NativeBuckets({ schema: 8, zeroThreshold: 2 ** -128, maxBuckets: 2 })
  for (const v of [1, 2, 4]) many.observe(v)
  t.equal(many.schema, -1, 'keys 0, 256, 512 at schema 8 share buckets first at schema -1: halved nine times at once')
  t.same(decode(many.positive()), new Map([[0, 1], [1, 2]]))

  const both = new NativeBuckets({ schema: 3, zeroThreshold: 2 ** -128, maxBuckets: 2 })
  for (const v of [1.5, -1.5, 0]) both.observe(v)
  t.equal(both.schema, 3, 'two buckets: the zero bucket does not count')
  both.observe(2)
  t.equal(both.schema, 1, 'negative buckets count: 1.5 and 2 share a bucket first at schema 1')
  t.same(both.positive(), { spans: [{ offset: 2, length: 1 }], deltas: [2] })
  t.same(both.negative(), { spans: [{ offset: 2, length: 1 }], deltas: [1] })
  t.equal(both.zeroCount, 1)

  const floor = new NativeBuckets({ schema: -3, zeroThreshold: 2 ** -128, maxBuckets: 1 })
  floor.observe(1)
  floor.observe(2 ** 100)
  t.equal(floor.schema, MIN_SCHEMA, 'never below -4')
  t.equal(floor.bucketCount, 2, 'over the limit then, as client_golang')

  // random values, both signs, spread wide: whatever the schema reached, every count is where
  // bucketKey puts the value at that schema, none is lost, and the limit holds
  for (const [schema, maxBuckets] of [[8, 160], [3, 20], [5, 12]]) {
    const r = new NativeBuckets({ schema, zeroThreshold: 1e-6, maxBuckets })
    const values = Array.from({ length: 5000 }, () => (random() < 0.3 ? -1 : 1) * 1e-7 * 1e12 ** random())
    for (const v of values) r.observe(v)
    t.ok(r.schema < schema, `schema ${schema} -> ${r.schema}`)
    t.ok(r.bucketCount <= maxBuckets)
    const pos = decode(r.positive())
    const neg = decode(r.negative())
    const want = [new Map<number, number>(), new Map<number, number>()]
    let zero = 0
    for (const v of values) {
      if (Math.abs(v) <= 1e-6) { zero++; continue }
      const m = want[v > 0 ? 0 : 1]
      m.set(bucketKey(v, r.schema), (m.get(bucketKey(v, r.schema)) ?? 0) + 1)
    }
    t.same(pos, want[0])
    t.same(neg, want[1])
    t.equal(r.zeroCount, zero)
    const total = [...pos.values(), ...neg.values()].reduce((a, b) => a + b, r.zeroCount)
    t.equal(total, values.length, 'total count preserved')
    t.equal(r.bucketCount, pos.size + neg.size)
  }
})

t.test('buckets far apart: outside the dense window, still counted and in order', async (t) => {
  // maxBuckets 4: a window of at most 64 keys; keys -100 and 50 lie beyond it
  const h = new NativeBuckets({ schema: 0, zeroThreshold: 2 ** -128, maxBuckets: 4 })
  for (const v of [1, 2 ** -30, 2 ** 50, 2 ** -100, 2 ** 50, 2 ** -100, 1]) h.observe(v)
  t.equal(h.schema, 0)
  t.equal(h.bucketCount, 4)
  t.same(h.positive(), { spans: [{ offset: -100, length: 1 }, { offset: 69, length: 1 }, { offset: 29, length: 1 }, { offset: 49, length: 1 }], deltas: [2, -1, 1, 0] })
  h.observe(2 ** -29) // key -29: five buckets; -30 and -29 share one first at schema -2
  t.equal(h.schema, -2, 'reduced with outliers')
  t.same(decode(h.positive()), new Map([[-25, 2], [-7, 2], [0, 2], [13, 2]]))
  t.equal(h.bucketCount, 4)
})

t.test('the dense window: at most 4·maxBuckets slots, every key within them in it', async (t) => {
  // white box: the window is the memory bound, and a key in the Map costs ~3x more per observe
  const h = new NativeBuckets({ schema: 0, zeroThreshold: 2 ** -128, maxBuckets: 4 })
  const pos = (h as any).pos
  h.observe(1)
  h.observe(2 ** -56) // keys -56..7: exactly 64, the cap
  t.equal(pos.outliers, null)
  t.equal(pos.counts.length, 64)
  h.observe(2 ** 8)
  t.same([...pos.outliers], [[8, 1]], 'one past the cap: in the Map')
  t.equal(pos.counts.length, 64)

  // after a reduction, reset() gives up the window made for the lower schema
  const r = new NativeBuckets({ schema: 0, zeroThreshold: 2 ** -128, maxBuckets: 4 })
  const rpos = (r as any).pos
  for (const e of [40, 41, 42, 43, 44]) r.observe(2 ** e) // schema -1, keys 20..22
  t.equal(r.schema, -1)
  r.reset()
  r.observe(2 ** -40)
  t.equal(rpos.outliers, null, 'key -40 at schema 0: a new window, not the Map')
  t.same(decode(r.positive()), new Map([[-40, 1]]))
})

t.test('reset: the configured schema, every count 0', async (t) => {
  const h = new NativeBuckets({ schema: 2, zeroThreshold: 2 ** -128, maxBuckets: 3 })
  for (const v of [0, 1, 1.3, 1.9, 3, -1, 7]) h.observe(v)
  t.ok(h.schema < 2)
  h.reset()
  t.equal(h.schema, 2)
  t.equal(h.zeroCount, 0)
  t.equal(h.bucketCount, 0)
  t.same(h.positive(), { spans: [], deltas: [] })
  t.same(h.negative(), { spans: [], deltas: [] })
  for (const v of [1.3, 1.3, -1]) h.observe(v)
  t.same(h.positive(), { spans: [{ offset: 2, length: 1 }], deltas: [2] }, 'keys at the configured schema again')
  t.same(h.negative(), { spans: [{ offset: 0, length: 1 }], deltas: [1] })
  h.reset()
  h.observe(1.3)
  t.same(h.positive(), { spans: [{ offset: 2, length: 1 }], deltas: [1] }, 'reset without a reduction between')
})
