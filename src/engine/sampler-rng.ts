/**
 * The random numbers of llama.cpp's samplers, bit for bit: std::mt19937 (the 32-bit Mersenne
 * Twister of the C++ standard, [rand.eng.mers] / [rand.predef]) and the two uniform draws the
 * samplers make from it with libstdc++ (GCC, the compiler of node-llama-cpp's prebuilt binaries):
 *
 * - llama_sampler_dist: std::uniform_real_distribution<double>(0, 1), which is
 *   std::generate_canonical<double, 53>: two 32-bit outputs, (lo + hi * 2^32) / 2^64 rounded to
 *   double, and 1 - 2^-53 in place of 1.0 (libstdc++'s fix of LWG 2524). nextDouble() below.
 * - llama_sampler_xtc: std::uniform_real_distribution<float>(0, 1): one output, float(g) / 2^32,
 *   and 1 - 2^-24 in place of 1.0. nextFloat() below.
 *
 * Not here: the seed choice (sampler.ts) and the samplers that draw (sampler-stages.ts).
 */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER = 0x80000000;
const LOWER = 0x7fffffff;

/** The C++ standard's default seed of std::mt19937 (std::mt19937::default_seed). */
export const MT19937_DEFAULT_SEED = 5489;

const TWO_32 = 4294967296;
const TWO_64 = 2 ** 64;
/** std::nextafter(1.0, 0.0) and std::nextafter(1.0f, 0.0f). */
const BELOW_ONE_DOUBLE = 1 - 2 ** -53;
const BELOW_ONE_FLOAT = 1 - 2 ** -24;

export class Mt19937 {
  private readonly mt = new Uint32Array(N);
  private index = N;

  constructor(seed: number = MT19937_DEFAULT_SEED) {
    this.seed(seed);
  }

  /** std::mersenne_twister_engine::seed(value): the standard's initialization by 1812433253. */
  seed(seed: number): void {
    const mt = this.mt;
    mt[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]!;
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
    this.index = N;
  }

  /** The next 32-bit output (operator()). */
  next(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Skip `n` outputs (discard(n)). */
  discard(n: number): void {
    for (let i = 0; i < n; i++) this.next();
  }

  /** std::uniform_real_distribution<double>(0, 1)(rng) as libstdc++ computes it: two outputs. */
  nextDouble(): number {
    const lo = this.next();
    const hi = this.next();
    // NOTE: lo + hi * 2^32 is rounded to 53 bits here exactly as the double sum in
    // generate_canonical is; the division by 2^64 is exact.
    const r = (lo + hi * TWO_32) / TWO_64;
    return r >= 1 ? BELOW_ONE_DOUBLE : r;
  }

  /** std::uniform_real_distribution<float>(0, 1)(rng) as libstdc++ computes it: one output. */
  nextFloat(): number {
    const r = Math.fround(this.next()) / TWO_32;
    return r >= 1 ? BELOW_ONE_FLOAT : r;
  }

  /** A copy with the same state. */
  clone(): Mt19937 {
    const c = new Mt19937(0);
    c.mt.set(this.mt);
    c.index = this.index;
    return c;
  }

  private twist(): void {
    const mt = this.mt;
    for (let k = 0; k < N; k++) {
      const y = (mt[k]! & UPPER) | (mt[(k + 1) % N]! & LOWER);
      let v = mt[(k + M) % N]! ^ (y >>> 1);
      if (y & 1) v ^= MATRIX_A;
      mt[k] = v >>> 0;
    }
    this.index = 0;
  }
}
