// The bucket math of Prometheus native histograms (#14), as client_golang's
// prometheus/histogram.go does it: the same observations give the same schema, zero bucket,
// spans and deltas as a Go service would expose.
//
// Data model: at schema s (-4..8) the base is 2^(2^-s) and bucket i holds (base^(i-1), base^i];
// [-zeroThreshold, zeroThreshold] is the zero bucket, negative values count by their absolute
// value. client_golang keys by math.Frexp (v = frac·2^exp, frac in [0.5, 1)): for s > 0 a binary
// search of frac in nativeHistogramBounds, for s <= 0 exp (exp - 1 for a power of two) divided by
// 2^-s, rounding up.
//
// Hot path (node 20, 10M log-uniform values in 1e-5..10 s, 2 shared cores, so ±30%):
// - frexp reads the exponent bits through a shared Float64Array/Uint32Array, no allocation
//   (subnormals scaled by 2^64 first); Math.log2 with a correction was 2-3x slower.
// - for s > 0, a lookup by the top s+1 mantissa bits plus one comparison (a slice of [0.5, 1) is
//   0.25/2^s wide, the narrowest bucket 0.35/2^s: one bound per slice at most): 11-17 ns at
//   schema 3, 14-19 at 8; Go's binary search 32-35 and 70-73 ns (mispredicted branches).
// - counts in a dense Float64Array window: observe() 15-20 ns in all at schema 3 (the classic
//   14-bucket HistogramSeries.observe: ~18 ns in the same loop); in a Map<number, number>, ~60 ns.
//   The window is capped at 4·maxBuckets slots, keys beyond it go to a Map: populated buckets are
//   bounded, their spread is not (1e-9 s and 1e4 s are 350 keys apart at schema 3, 11,000 at 8).
//
// Limiting buckets: of client_golang's strategies (reset after NativeHistogramMinResetDuration,
// widen the zero bucket up to NativeHistogramMaxZeroThreshold, halve the resolution), only the
// last is here; the other two are off by default there too. Go halves once per observation while
// over the limit; looping reaches the same schema at once and keeps the bound between observations.

export interface NativeHistogramConfig { schema: number, zeroThreshold: number, maxBuckets: number }

export const MIN_SCHEMA = -4
export const MAX_SCHEMA = 8

/**
 * Schema 3 (8 buckets per power of two, 9% wide): client_golang's doc calls a bucket factor of
 * 1.1, which picks schema 3, "a generally good trade-off". zeroThreshold 2^-128:
 * client_golang's DefNativeHistogramZeroThreshold, a bucket boundary at every schema. maxBuckets
 * 160: client_java's default (DEFAULT_NATIVE_MAX_NUMBER_OF_BUCKETS) and OpenTelemetry's for
 * exponential histograms; client_golang has no default (0, unbounded). 160 covers 1e-5..10 s
 * (20 powers of two) at schema 3 before any reduction.
 */
export const DEFAULT_NATIVE_CONFIG: Readonly<NativeHistogramConfig> = Object.freeze({ schema: 3, zeroThreshold: 2 ** -128, maxBuckets: 160 })

// client_golang's nativeHistogramBounds[8] verbatim (2^(j/256 - 1) as Go computed them; Prometheus
// uses the same table for bucket bounds). Schema s < 8 takes every 2^(8-s)th entry: Go built each
// table from the one below it, and the test checks that these equal its schema 3 table.
const BOUNDS_8 = [
  0.5, 0.5013556375251013, 0.5027149505564014, 0.5040779490592088, 0.5054446430258502, 0.5068150424757447, 0.5081891574554764, 0.509566998038869,
  0.5109485743270583, 0.5123338964485679, 0.5137229745593818, 0.5151158188430205, 0.5165124395106142, 0.5179128468009786, 0.5193170509806894, 0.520725062344158,
  0.5221368912137069, 0.5235525479396449, 0.5249720429003435, 0.526395386502313, 0.5278225891802786, 0.5292536613972564, 0.5306886136446309, 0.5321274564422321,
  0.5335702003384117, 0.5350168559101208, 0.5364674337629877, 0.5379219445313954, 0.5393803988785598, 0.5408428074966075, 0.5423091811066545, 0.5437795304588847,
  0.5452538663326288, 0.5467321995364429, 0.5482145409081883, 0.549700901315111, 0.5511912916539204, 0.5526857228508706, 0.5541842058618393, 0.5556867516724088,
  0.5571933712979462, 0.5587040757836845, 0.5602188762048033, 0.5617377836665098, 0.5632608093041209, 0.564787964283144, 0.5663192597993595, 0.5678547070789026,
  0.5693943173783458, 0.5709381019847808, 0.572486072215902, 0.5740382394200894, 0.5755946149764913, 0.5771552102951081, 0.5787200368168754, 0.5802891060137493,
  0.5818624293887887, 0.5834400184762408, 0.585021884841625, 0.5866080400818185, 0.5881984958251406, 0.5897932637314379, 0.5913923554921704, 0.5929957828304968,
  0.5946035575013605, 0.5962156912915756, 0.5978321960199137, 0.5994530835371903, 0.6010783657263515, 0.6027080545025619, 0.6043421618132907, 0.6059806996384005,
  0.6076236799902344, 0.6092711149137041, 0.6109230164863786, 0.6125793968185725, 0.6142402680534349, 0.6159056423670379, 0.6175755319684665, 0.6192499490999082,
  0.620928906036742, 0.622612415087629, 0.6243004885946023, 0.6259931389331581, 0.6276903785123455, 0.6293922197748583, 0.6310986751971253, 0.6328097572894031,
  0.6345254785958666, 0.6362458516947014, 0.637970889198196, 0.6397006037528346, 0.6414350080393891, 0.6431741147730128, 0.6449179367033329, 0.6466664866145447,
  0.6484197773255048, 0.6501778216898253, 0.6519406325959679, 0.6537082229673385, 0.6554806057623822, 0.6572577939746774, 0.659039800633032, 0.6608266388015788,
  0.6626183215798706, 0.6644148621029772, 0.6662162735415805, 0.6680225691020727, 0.6698337620266515, 0.6716498655934177, 0.6734708931164728, 0.6752968579460171,
  0.6771277734684463, 0.6789636531064505, 0.6808045103191123, 0.6826503586020058, 0.6845012114872953, 0.6863570825438342, 0.688217985377265, 0.690083933630119,
  0.6919549409819159, 0.6938310211492645, 0.6957121878859629, 0.6975984549830999, 0.6994898362691555, 0.7013863456101023, 0.7032879969095076, 0.7051948041086352,
  0.7071067811865475, 0.7090239421602076, 0.7109463010845827, 0.7128738720527471, 0.7148066691959849, 0.7167447066838943, 0.718687998724491, 0.7206365595643126,
  0.7225904034885232, 0.7245495448210174, 0.7265139979245261, 0.7284837772007218, 0.7304588970903234, 0.7324393720732029, 0.7344252166684908, 0.7364164454346837,
  0.7384130729697496, 0.7404151139112358, 0.7424225829363761, 0.7444354947621984, 0.7464538641456323, 0.7484777058836176, 0.7505070348132126, 0.7525418658117031,
  0.7545822137967112, 0.7566280937263048, 0.7586795205991071, 0.7607365094544071, 0.762799075372269, 0.7648672334736434, 0.7669409989204777, 0.7690203869158282,
  0.7711054127039704, 0.7731960915705107, 0.7752924388424999, 0.7773944698885442, 0.7795022001189185, 0.7816156449856788, 0.7837348199827764, 0.7858597406461707,
  0.7879904225539431, 0.7901268813264122, 0.7922691326262467, 0.7944171921585818, 0.7965710756711334, 0.7987307989543135, 0.8008963778413465, 0.8030678282083853,
  0.805245165974627, 0.8074284071024302, 0.8096175675974316, 0.8118126635086642, 0.8140137109286738, 0.8162207259936375, 0.8184337248834821, 0.820652723822003,
  0.8228777390769823, 0.8251087869603088, 0.8273458838280969, 0.8295890460808079, 0.8318382901633681, 0.8340936325652911, 0.8363550898207981, 0.8386226785089391,
  0.8408964152537144, 0.8431763167241966, 0.8454623996346523, 0.8477546807446661, 0.8500531768592616, 0.8523579048290255, 0.8546688815502312, 0.8569861239649629,
  0.8593096490612387, 0.8616394738731368, 0.8639756154809185, 0.8663180910111553, 0.8686669176368529, 0.871022112577578, 0.8733836930995842, 0.8757516765159389,
  0.8781260801866495, 0.8805069215187917, 0.8828942179666361, 0.8852879870317771, 0.8876882462632604, 0.890095013257712, 0.8925083056594671, 0.8949281411607002,
  0.8973545375015533, 0.8997875124702672, 0.9022270839033115, 0.9046732696855155, 0.9071260877501991, 0.909585556079304, 0.9120516927035263, 0.9145245157024483,
  0.9170040432046711, 0.9194902933879467, 0.9219832844793128, 0.9244830347552253, 0.9269895625416926, 0.92950288621441, 0.9320230241988943, 0.9345499949706191,
  0.9370838170551498, 0.93962450902828, 0.9421720895161669, 0.9447265771954693, 0.9472879907934827, 0.9498563490882775, 0.9524316709088368, 0.9550139751351947,
  0.9576032806985735, 0.9601996065815236, 0.9628029718180622, 0.9654133954938133, 0.9680308967461471, 0.9706554947643201, 0.9732872087896164, 0.9759260581154889,
  0.9785720620876999, 0.9812252401044634, 0.9838856116165875, 0.9865531961276168, 0.9892280131939752, 0.9919100824251095, 0.9945994234836328, 0.9972960560854698
]

// Per schema 1..8: the bounds (and 1.0, above every frac) and, per top s+1 mantissa bits, how
// many bounds lie below that slice of [0.5, 1).
const BOUNDS: Float64Array[] = []
const SLICES: Uint16Array[] = []
for (let s = 1; s <= MAX_SCHEMA; s++) {
  const n = 1 << s
  const b = BOUNDS[s] = Float64Array.from({ length: n + 1 }, (_, j) => j === n ? 1 : BOUNDS_8[j << (MAX_SCHEMA - s)])
  const slices = SLICES[s] = new Uint16Array(2 * n)
  for (let m = 0, c = 0; m < 2 * n; m++) {
    while (b[c] < 0.5 + m / (4 * n)) c++
    slices[m] = c
  }
}

const F64 = new Float64Array(1)
const U32 = new Uint32Array(F64.buffer)
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0 // the word with sign and exponent
const LO = 1 - HI

/** The key of a finite v > 0. */
function keyOf (v: number, schema: number): number {
  F64[0] = v
  let hi = U32[HI]
  let exp = (hi >>> 20) - 1022 // frexp's exponent
  if (exp === -1022) { // subnormal: scale into the normal range first
    F64[0] = v * 2 ** 64
    hi = U32[HI]
    exp = (hi >>> 20) - 1022 - 64
  }
  if (schema <= 0) {
    // An exact power of two (frac 0.5) is the upper bound of the bucket below.
    if ((hi & 0xfffff) === 0 && U32[LO] === 0) exp--
    return (exp + (1 << -schema) - 1) >> -schema // Go's: >> floors, so this rounds up
  }
  U32[HI] = (hi & 0xfffff) | 0x3fe00000 // frac: the same mantissa with frexp's exponent
  const frac = F64[0]
  const b = BOUNDS[schema]
  let i = SLICES[schema][(hi & 0xfffff) >>> (19 - schema)]
  if (b[i] < frac) i++ // same as Go's sort.SearchFloat64s: a frac equal to a bound stays below it
  return i + ((exp - 1) << schema)
}

/** ±Infinity: one past the key of ±Number.MAX_VALUE, as client_golang does. */
const infKey = (schema: number): number => keyOf(Number.MAX_VALUE, schema) + 1

/** The bucket holding |value| at this schema; -Infinity for 0 (the zero bucket's), NaN for NaN. */
export function bucketKey (value: number, schema: number): number {
  const v = Math.abs(value)
  if (v === Infinity) return infKey(schema)
  return v > 0 ? keyOf(v, schema) : v === 0 ? -Infinity : NaN
}

/** The upper bound of bucket `key` (client_golang's getLe): Number.MAX_VALUE for the last finite one. */
export function upperBound (key: number, schema: number): number {
  if (schema <= 0) {
    const exp = key * 2 ** -schema
    return exp === 1024 ? Number.MAX_VALUE : 2 ** exp
  }
  const n = 1 << schema
  const exp = Math.floor(key / n) + 1
  const frac = BOUNDS[schema][key - (exp - 1) * n]
  // 2 ** 1024 is already Infinity: scale by 2 ** (exp - 1) (both exact, so one rounding at most)
  return frac === 0.5 && exp === 1025 ? Number.MAX_VALUE : frac * 2 * 2 ** (exp - 1)
}

export interface BucketSpan { offset: number, length: number }

const EMPTY = new Float64Array(0)

/** The buckets of one sign: a dense window of counts around the keys seen, a Map beyond it. */
class Side {
  counts = EMPTY // counts[i]: the bucket of key base + i
  base = 0
  outliers: Map<number, number> | null = null
  populated = 0
  constructor (private readonly cap: number) {}

  /** Adds n to a bucket; true if it was empty. */
  add (key: number, n: number): boolean {
    const i = key - this.base
    const counts = this.counts
    if (i >= 0 && i < counts.length) {
      const c = counts[i]
      counts[i] = c + n
      if (c !== 0) return false
      this.populated++
      return true
    }
    return this.addOutside(key, n)
  }

  private addOutside (key: number, n: number): boolean {
    const old = this.counts
    const lo = old.length === 0 ? key : Math.min(key, this.base)
    const hi = old.length === 0 ? key : Math.max(key, this.base + old.length - 1)
    if (hi - lo + 1 > this.cap) {
      const outliers = this.outliers ??= new Map()
      const c = outliers.get(key) ?? 0
      outliers.set(key, c + n)
      if (c !== 0) return false
      this.populated++
      return true
    }
    // Twice what is needed, the room on the side that grew: a drifting latency reallocates rarely.
    const len = Math.min(this.cap, Math.max(16, 2 * (hi - lo + 1)))
    const base = old.length === 0 ? key - (len >> 1) : key < this.base ? hi - len + 1 : lo
    const counts = new Float64Array(len)
    if (old.length > 0) counts.set(old, this.base - base)
    this.counts = counts
    this.base = base
    // No outlier can fall inside: it lay more than cap keys from an end of the old window, and
    // every later window contains the old one within cap keys.
    return this.add(key, n)
  }

  /** [key, count] of the populated buckets, ascending. */
  entries (): Array<[number, number]> {
    const out: Array<[number, number]> = []
    for (let i = 0; i < this.counts.length; i++) if (this.counts[i] !== 0) out.push([this.base + i, this.counts[i]])
    if (this.outliers !== null && this.outliers.size > 0) {
      out.push(...this.outliers)
      out.sort((a, b) => a[0] - b[0])
    }
    return out
  }

  /** Empties it; `drop` gives up the window too (its keys belong to another schema). */
  clear (drop: boolean): void {
    if (drop) this.counts = EMPTY
    else this.counts.fill(0)
    this.outliers = null
    this.populated = 0
  }

  /** Merges into the buckets of schema - 1, as client_golang's doubleBucketWidth. */
  halve (): void {
    const entries = this.entries()
    this.clear(true)
    // Go: `if key > 0 { key++ }; key /= 2`, integer division truncating toward zero (| 0 does, and
    // gives 0, not -0); both branches are ceil(key / 2).
    for (const [k, c] of entries) this.add(k > 0 ? (k + 1) >> 1 : (k / 2) | 0, c)
  }
}

/** client_golang's makeBuckets: gaps of one or two empty buckets stay inside a span (as zero deltas). */
function spansOf (entries: Array<[number, number]>): { spans: BucketSpan[], deltas: number[] } {
  const spans: BucketSpan[] = []
  const deltas: number[] = []
  let span: BucketSpan = { offset: 0, length: 0 }
  let prev = 0
  let next = 0
  for (const [key, count] of entries) {
    const gap = key - next
    if (spans.length === 0 || gap > 2) spans.push(span = { offset: gap, length: 0 })
    else for (let j = 0; j < gap; j++) { span.length++; deltas.push(0 - prev); prev = 0 } // not -prev: no -0
    span.length++
    deltas.push(count - prev)
    prev = count
    next = key + 1
  }
  return { spans, deltas }
}

/**
 * The first setting that is not valid, and what it must be; null when all are. One check for the
 * plugin's option (lib/metrics-options.ts, which names the option) and for this module's own callers.
 */
export function invalidSetting (config: Record<keyof NativeHistogramConfig, unknown>): { setting: keyof NativeHistogramConfig, expected: string } | null {
  const { schema, zeroThreshold, maxBuckets } = config
  if (typeof schema !== 'number' || !Number.isInteger(schema) || schema < MIN_SCHEMA || schema > MAX_SCHEMA) {
    return { setting: 'schema', expected: `must be an integer from ${MIN_SCHEMA} to ${MAX_SCHEMA}` }
  }
  if (typeof zeroThreshold !== 'number' || !Number.isFinite(zeroThreshold) || zeroThreshold < 0) {
    return { setting: 'zeroThreshold', expected: 'must be a finite number >= 0' }
  }
  if (typeof maxBuckets !== 'number' || !Number.isSafeInteger(maxBuckets) || maxBuckets < 1) {
    return { setting: 'maxBuckets', expected: 'must be a positive integer' }
  }
  return null
}

/** Most slots of a dense count window (8 bytes each): 32 KiB. */
const MAX_WINDOW = 4096

/** The native buckets of one histogram series. Count and sum stay with the caller. */
export class NativeBuckets {
  /** Current; lowered by resolution reduction, restored by reset(). */
  schema: number
  readonly zeroThreshold: number
  zeroCount = 0
  private readonly initialSchema: number
  private readonly maxBuckets: number
  private readonly pos: Side
  private readonly neg: Side

  constructor (config: NativeHistogramConfig) {
    const { schema, zeroThreshold, maxBuckets } = config
    const wrong = invalidSetting(config)
    if (wrong !== null) throw new RangeError(`native histogram ${wrong.setting} ${wrong.expected}, got ${String(config[wrong.setting])}`)
    this.schema = this.initialSchema = schema
    this.zeroThreshold = zeroThreshold
    this.maxBuckets = maxBuckets
    // The dense window: 4 x maxBuckets slots, at most MAX_WINDOW (a huge maxBuckets must not make
    // every series allocate megabytes); keys beyond it go to the Map.
    const window = Math.max(64, Math.min(4 * maxBuckets, MAX_WINDOW))
    this.pos = new Side(window)
    this.neg = new Side(window)
  }

  /** Populated buckets, positive and negative (the zero bucket not included). */
  get bucketCount (): number { return this.pos.populated + this.neg.populated }

  observe (value: number): void {
    const z = this.zeroThreshold
    if (value > z) {
      if (this.pos.add(value === Infinity ? infKey(this.schema) : keyOf(value, this.schema), 1)) this.limit()
    } else if (value < -z) {
      if (this.neg.add(value === -Infinity ? infKey(this.schema) : keyOf(-value, this.schema), 1)) this.limit()
    } else if (value === value) { // eslint-disable-line no-self-compare -- NaN lands in no bucket, as in client_golang
      this.zeroCount++
    }
  }

  private limit (): void {
    while (this.pos.populated + this.neg.populated > this.maxBuckets && this.schema > MIN_SCHEMA) {
      this.schema--
      this.pos.halve()
      this.neg.halve()
    }
  }

  reset (): void {
    const drop = this.schema !== this.initialSchema
    this.schema = this.initialSchema
    this.pos.clear(drop)
    this.neg.clear(drop)
    this.zeroCount = 0
  }

  /** positive_span/positive_delta of io.prometheus.client.Histogram. */
  positive (): { spans: BucketSpan[], deltas: number[] } { return spansOf(this.pos.entries()) }
  /** negative_span/negative_delta; keys are those of the absolute values. */
  negative (): { spans: BucketSpan[], deltas: number[] } { return spansOf(this.neg.entries()) }
}
