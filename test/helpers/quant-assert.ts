/**
 * Assertions and data for the quantization kernel tests: bit-level comparisons that report the
 * first differing element, a tolerance check for dot products that reports the max difference,
 * and a seeded PRNG for random rows. Not here: loading the reference vectors (quant-fixtures.ts).
 */
import type { QuantKernels } from "../../src/quant/kernels.ts";

/** Float32 bit patterns of a value. */
export function f32Bits(v: number): number {
  const f = new Float32Array([v]);
  return new Uint32Array(f.buffer)[0]!;
}

function hex(v: number): string {
  return `0x${v.toString(16).padStart(8, "0")}`;
}

/**
 * Throws unless `actual` and `expected` hold the same float32 bit patterns. With `zeroSignFree`,
 * +0 and -0 count as equal (only where the reference leaves the sign undefined).
 */
export function assertSameBits(
  actual: Float32Array,
  expected: Float32Array,
  label: string,
  zeroSignFree = false,
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length}, expected ${expected.length}`);
  }
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let first = -1;
  let count = 0;
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === e[i]) continue;
    if (zeroSignFree && ((a[i]! | e[i]!) & 0x7fffffff) === 0) continue;
    if (first < 0) first = i;
    count++;
    maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
  }
  if (first >= 0) {
    throw new Error(
      `${label}: ${count} of ${a.length} values differ (max |diff| ${maxDiff}); first at [${first}]: ` +
        `${actual[first]} (${hex(a[first]!)}) vs expected ${expected[first]} (${hex(e[first]!)})`,
    );
  }
}

/** Throws unless the bytes are equal, ignoring the [offset, length] ranges in `skip`. */
export function assertSameBytes(
  actual: Uint8Array,
  expected: Uint8Array,
  label: string,
  skip: readonly (readonly [number, number])[] = [],
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: ${actual.length} bytes, expected ${expected.length}`);
  }
  let first = -1;
  let count = 0;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] === expected[i] || skip.some(([o, l]) => i >= o && i < o + l)) continue;
    if (first < 0) first = i;
    count++;
  }
  if (first >= 0) {
    throw new Error(
      `${label}: ${count} of ${actual.length} bytes differ; first at byte ${first}: ` +
        `0x${actual[first]!.toString(16)} vs expected 0x${expected[first]!.toString(16)}`,
    );
  }
}

/** Throws unless two float32 results have the same bits. */
export function assertSameFloat(actual: number, expected: number, label: string): void {
  if (f32Bits(actual) !== f32Bits(expected)) {
    throw new Error(
      `${label}: ${actual} (${hex(f32Bits(actual))}) vs expected ${expected} (${hex(f32Bits(expected))}); ` +
        `relative difference ${Math.abs(actual - expected) / Math.abs(expected)}`,
    );
  }
}

/**
 * Compares pairs of dot results: |actual - expected| <= tol[i] for every i, else throws with the
 * max difference (relative to its tolerance) and the first pair out of tolerance.
 */
export function assertDotsClose(
  actual: readonly number[],
  expected: readonly number[],
  tol: readonly number[],
  label: string,
): void {
  let first = -1;
  let worst = 0;
  let worstAt = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    const r = d / tol[i]!;
    if (!(d <= tol[i]!) && first < 0) first = i;
    if (r > worst || Number.isNaN(d)) {
      worst = r;
      worstAt = i;
    }
  }
  if (first >= 0) {
    throw new Error(
      `${label}: ${actual.length} dots; first out of tolerance at [${first}]: ${actual[first]} vs ${expected[first]} ` +
        `(|diff| ${Math.abs(actual[first]! - expected[first]!)} > tol ${tol[first]}); max |diff|/tol ${worst} ` +
        `at [${worstAt}]: ${actual[worstAt]} vs ${expected[worstAt]}`,
    );
  }
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function makeRng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws (Box-Muller) from a uniform generator. */
export function normal(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

export type Distribution = "normal" | "uniform" | "outliers" | "small" | "sparse";

/** n float32 values of a distribution; "outliers" plants a few large values, "sparse" many zeros. */
export function randomRow(rng: () => number, n: number, dist: Distribution): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    switch (dist) {
      case "normal":
        x[i] = normal(rng);
        break;
      case "uniform":
        x[i] = 2 * rng() - 1;
        break;
      case "outliers":
        x[i] = rng() < 0.01 ? 40 * normal(rng) : normal(rng);
        break;
      case "small":
        x[i] = 0.02 * normal(rng);
        break;
      case "sparse":
        x[i] = rng() < 0.7 ? 0 : normal(rng);
        break;
    }
  }
  return x;
}

/** The kernel entry a test needs, or a thrown error naming what is missing. */
export function need<K extends keyof QuantKernels>(
  k: QuantKernels,
  key: K,
  type: string,
): NonNullable<QuantKernels[K]> {
  const f = k[key];
  if (f === undefined) throw new Error(`${type} has no ${String(key)}`);
  return f as NonNullable<QuantKernels[K]>;
}

/** Sum over i of |a_i| times max |w|: the scale dot tolerances are relative to (type-agnostic). */
export function dotScale(w: Float32Array, a: Float32Array): number {
  let wmax = 0;
  for (const v of w) wmax = Math.max(wmax, Math.abs(v));
  let s = 0;
  for (const v of a) s += Math.abs(v);
  return s * wmax;
}

/**
 * Tolerance of a float32 dot against a float64 twin: each of the `steps` float32 accumulations
 * (blocks, or 1 for plain floats whose sum is float64) and the few per-block roundings can each
 * cost 2^-24 of the scale; doubled for slack.
 */
export function dotTolerance(steps: number, scale: number): number {
  return (steps + 4) * 2 ** -23 * scale;
}

export interface RandomDotCase {
  kernels: QuantKernels;
  /** Bytes of a row of n values of the weight type and of the activation type. */
  rowBytes: (n: number) => number;
  actBytes: (n: number) => number;
  /** Activation floats -> activation bytes (n values). */
  quantizeAct: (x: Float32Array, dst: Uint8Array, n: number) => void;
  dequantizeAct: (src: Uint8Array, dst: Float32Array, n: number) => void;
  /** Float32 accumulation steps of `dot` for n values. */
  steps: (n: number) => number;
}

/**
 * dot vs dotRef over `rows` seeded random rows per distribution, each of length n; also checks
 * that dot gives the same bits when both rows sit at odd byte offsets of larger buffers.
 */
export function compareRandomDots(
  c: RandomDotCase,
  n: number,
  rows: number,
  seed: number,
  label: string,
): void {
  const { quantize, dequantize, dot, dotRef } = c.kernels;
  if (!quantize || !dequantize || !dot || !dotRef) throw new Error(`${label}: kernels missing`);
  const rng = makeRng(seed);
  const fast: number[] = [];
  const ref: number[] = [];
  const tol: number[] = [];
  const dists: Distribution[] = ["normal", "uniform", "outliers", "small", "sparse"];
  for (const dist of dists) {
    for (let r = 0; r < rows; r++) {
      const x = randomRow(rng, n, dist);
      const act = randomRow(rng, n, r % 2 ? "normal" : "outliers");
      // Odd offsets: the kernels must not assume aligned views.
      const wBuf = new Uint8Array(c.rowBytes(n) + 3);
      const aBuf = new Uint8Array(c.actBytes(n) + 5);
      const wq = wBuf.subarray(1 + (r % 3), 1 + (r % 3) + c.rowBytes(n));
      const aq = aBuf.subarray(3, 3 + c.actBytes(n));
      quantize(x, wq, n);
      c.quantizeAct(act, aq, n);
      const w = new Float32Array(n);
      const a = new Float32Array(n);
      dequantize(wq, w, n);
      c.dequantizeAct(aq, a, n);
      const d = dot(wq, aq, n);
      const aligned = dot(wq.slice(), aq.slice(), n);
      if (f32Bits(d) !== f32Bits(aligned)) {
        throw new Error(
          `${label}: dot at odd offsets ${d} differs from aligned ${aligned} (${dist} row ${r})`,
        );
      }
      fast.push(d);
      ref.push(dotRef(wq, aq, n));
      tol.push(dotTolerance(c.steps(n), dotScale(w, a)));
    }
  }
  assertDotsClose(fast, ref, tol, `${label} dot vs dotRef on random rows (n=${n}, seed ${seed})`);
}
