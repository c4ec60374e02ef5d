/**
 * K-quants (Q2_K..Q6_K, Q8_K): bit-exactness against ggml's reference vectors (quantize bytes,
 * dequantized float bits, Q8_K activations, vec_dot results), hand-computed blocks, the fast dot
 * against its naive twin on seeded random rows, and round-trip error bounds.
 * Not here: the other families (float, legacy, IQ) and the type table (quant-fixtures.test.ts).
 */
import { describe, expect, it } from "vitest";
import { K_QUANTS_KERNELS } from "../src/quant/k-quants.ts";
import type { QuantKernels } from "../src/quant/kernels.ts";
import { f16ToF32 } from "../src/util/f16.ts";
import { loadQuantVectors, type QuantTypeVectors, quantFixturesAvailable } from "./helpers/quant-fixtures.ts";

const DOT_TYPES = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"] as const;
const ALL_TYPES = [...DOT_TYPES, "Q8_K"] as const;
type KType = (typeof ALL_TYPES)[number];
const BLOCK_BYTES: Record<KType, number> = {
  Q2_K: 84,
  Q3_K: 110,
  Q4_K: 144,
  Q5_K: 176,
  Q6_K: 210,
  Q8_K: 292,
};

function kernels(t: KType): Required<QuantKernels> & { dotActivation?: string } {
  return K_QUANTS_KERNELS[t] as Required<QuantKernels>;
}

function quantize(t: KType, x: Float32Array): Uint8Array {
  const q = new Uint8Array((x.length / 256) * BLOCK_BYTES[t]);
  kernels(t).quantize(x, q, x.length);
  return q;
}

function dequantize(t: KType, q: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  kernels(t).dequantize(q, y, n);
  return y;
}

const f32bits = (v: number): number => new Uint32Array(new Float32Array([v]).buffer)[0]!;

/** Throws with the count, first differing index and values when two byte arrays differ. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let first = -1;
  let count = 0;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      if (first < 0) first = i;
      count++;
    }
  }
  if (count > 0) {
    throw new Error(
      `${label}: ${count} of ${actual.length} bytes differ, first at ${first}: got 0x${actual[first]!.toString(16)}, want 0x${expected[first]!.toString(16)}`,
    );
  }
}

/** Throws unless the two float arrays have identical float32 bit patterns everywhere. */
function expectSameFloatBits(actual: Float32Array, expected: Float32Array, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let first = -1;
  let count = 0;
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      if (first < 0) first = i;
      count++;
      maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
    }
  }
  if (count > 0) {
    throw new Error(
      `${label}: ${count} of ${a.length} floats differ (max |diff| ${maxDiff}), first at ${first}: got ${actual[first]}, want ${expected[first]}`,
    );
  }
}

/** Seeded PRNG (mulberry32) and a Box-Muller normal. */
function rng(seed: number): { uniform: () => number; normal: () => number } {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

describe.skipIf(!quantFixturesAvailable())("K-quants against ggml's reference vectors", () => {
  const vectors: Map<string, QuantTypeVectors> = quantFixturesAvailable() ? loadQuantVectors() : new Map();
  const rowsOf = (t: KType) => {
    const v = vectors.get(t);
    if (!v) throw new Error(`no reference vectors for ${t}`);
    expect(v.rows.length).toBe(8);
    return v.rows;
  };

  for (const t of ALL_TYPES) {
    it(`${t}: quantize gives ggml's bytes on every row (quantize_row_${t.toLowerCase()}_ref)`, () => {
      for (const r of rowsOf(t))
        expectSameBytes(quantize(t, r.input), r.quant, `${t} row ${r.index} (${r.distribution})`);
    });

    it(`${t}: dequantize gives ggml's float bits on every row`, () => {
      for (const r of rowsOf(t)) {
        expectSameFloatBits(
          dequantize(t, r.quant, 256),
          r.dequant,
          `${t} row ${r.index} (${r.distribution})`,
        );
      }
    });

    it(`${t}: blocks are independent (8 rows as one 2048-value row)`, () => {
      const rows = rowsOf(t);
      const x = new Float32Array(2048);
      const want = new Uint8Array(8 * BLOCK_BYTES[t]);
      const wantDq = new Float32Array(2048);
      rows.forEach((r, i) => {
        x.set(r.input, 256 * i);
        want.set(r.quant, BLOCK_BYTES[t] * i);
        wantDq.set(r.dequant, 256 * i);
      });
      const q = quantize(t, x);
      expectSameBytes(q, want, `${t} 8 blocks`);
      expectSameFloatBits(dequantize(t, q, 2048), wantDq, `${t} 8 blocks`);
    });
  }

  for (const t of DOT_TYPES) {
    it(`${t}: declares Q8_K activations and quantizes each fixture activation to ggml's bytes`, () => {
      expect(kernels(t).dotActivation).toBe("Q8_K");
      for (const r of rowsOf(t)) {
        const dot = r.dot!;
        expect(dot.activationType).toBe("Q8_K");
        expectSameBytes(
          quantize("Q8_K", dot.activation),
          dot.activationQuant,
          `${t} row ${r.index} activation`,
        );
      }
    });

    it(`${t}: dot equals ggml_vec_dot_${t.toLowerCase()}_q8_K_generic bit for bit (result_scalar)`, () => {
      for (const r of rowsOf(t)) {
        const got = kernels(t).dot(r.quant, r.dot!.activationQuant, 256);
        expect(
          f32bits(got),
          `${t} row ${r.index} (${r.distribution}): ${got} vs ${r.dot!.resultScalar}`,
        ).toBe(f32bits(r.dot!.resultScalar));
      }
    });

    it(`${t}: dot is within 1e-5 relative of ggml's SIMD result, and dotRef of dot`, () => {
      for (const r of rowsOf(t)) {
        const label = `${t} row ${r.index} (${r.distribution})`;
        const got = kernels(t).dot(r.quant, r.dot!.activationQuant, 256);
        expect(Math.abs(got - r.dot!.result), label).toBeLessThanOrEqual(1e-5 * Math.abs(r.dot!.result));
        const ref = kernels(t).dotRef(r.quant, r.dot!.activationQuant, 256);
        expect(Math.abs(got - ref), label).toBeLessThanOrEqual(1e-5 * Math.abs(r.dot!.resultScalar));
      }
    });
  }

  it("Q4_K's round-trip error is below Q4_0's on normal data", () => {
    const q40 = vectors.get("Q4_0")!.rows[0]!;
    expect(q40.distribution).toBe("normal");
    const relRmse = (x: Float32Array, y: Float32Array): number => {
      let e = 0;
      let v = 0;
      for (let i = 0; i < x.length; i++) {
        e += (x[i]! - y[i]!) ** 2;
        v += x[i]! ** 2;
      }
      return Math.sqrt(e / v);
    };
    const q4k = rowsOf("Q4_K")[0]!;
    const rng0 = rng(40);
    const x = Float32Array.from({ length: 256 * 32 }, () => rng0.normal());
    const errQ40 = relRmse(q40.input, q40.dequant);
    expect(relRmse(q4k.input, q4k.dequant)).toBeLessThan(errQ40);
    expect(relRmse(x, dequantize("Q4_K", quantize("Q4_K", x), x.length))).toBeLessThan(errQ40);
  });
});

describe("K-quants: hand-computed blocks", () => {
  it("Q8_K quantizes a worked example (iscale = -127/max, ties to even, bsums)", () => {
    // block_q8_K: f32 d | i8 qs[256] | i16 bsums[16].
    // x[0] = -127 has the largest magnitude, so max = -127, iscale = -127 / max = 1, d = 1 / iscale = 1,
    // and q = nearest_int(x), ties to even: 1.5 -> 2, 2.5 -> 2, -3.5 -> -4, 0.5 -> 0,
    // 126.6 -> 127, 10 -> 10; x[20] = 100.25 -> 100; the rest 0.
    // bsums[0] = -127 + 2 + 2 - 4 + 0 + 127 + 10 = 10, bsums[1] = 100 (x[16..31]), others 0.
    const x = new Float32Array(256);
    x.set([-127, 1.5, 2.5, -3.5, 0.5, 126.6, 10]);
    x[20] = 100.25;
    const q = quantize("Q8_K", x);
    const view = new DataView(q.buffer);
    expect(view.getFloat32(0, true)).toBe(1);
    const qs = new Int8Array(q.buffer, 4, 256);
    expect(Array.from(qs.subarray(0, 8))).toEqual([-127, 2, 2, -4, 0, 127, 10, 0]);
    expect(qs[20]).toBe(100);
    expect(qs.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0)).toBe(7);
    const bsums = Array.from({ length: 16 }, (_, j) => view.getInt16(260 + 2 * j, true));
    expect(bsums).toEqual([10, 100, ...new Array(14).fill(0)]);
    // Dequantize: d * q.
    expect(Array.from(dequantize("Q8_K", q, 256).subarray(0, 8))).toEqual([-127, 2, 2, -4, 0, 127, 10, 0]);
    // A negative max flips the scale's sign: max = 2 -> iscale = -63.5, d = 1 / -63.5.
    const x2 = new Float32Array(256);
    x2[0] = 2;
    x2[1] = -1; // 63.5 -> 64 (tie, even)
    const q2 = quantize("Q8_K", x2);
    expect(new DataView(q2.buffer).getFloat32(0, true)).toBe(Math.fround(1 / Math.fround(-63.5)));
    expect(Array.from(new Int8Array(q2.buffer, 4, 2))).toEqual([-127, 64]);
  });

  it("Q6_K dequantizes and dots a hand-built block", () => {
    // block_q6_K: ql[128] | qh[64] | i8 scales[16] | f16 d. Stored q is 6 bits, value = d*sc*(q-32).
    // Every q = 32 (value 0): ql nibbles 0, qh 2-bit fields 2 -> qh bytes 0b10101010.
    const b = new Uint8Array(210);
    b.fill(0xaa, 128, 192);
    b[208] = 0x00; // d = 1.0 (f16 0x3c00)
    b[209] = 0x3c;
    // Value 0 (chunk 0, k 0, l 0; scale 0): q = 40 -> low nibble 8 in ql[0], high bits 2 kept.
    // sc[0] = 2 -> 1 * 2 * (40 - 32) = 16.
    b[0] = 0x08;
    b[192] = 2;
    // Value 65 (chunk 0, k 2, l 1; scale 65 >> 4 = 4): low nibble in ql[1] high half, high bits in
    // qh[1] bits 4-5. q = 63 -> 1 * (-3) * 31 = -93.
    b[1] = 0xf0;
    b[129] = (0xaa & ~0x30) | (3 << 4);
    b[192 + 4] = 0xfd; // -3
    // Value 255 (chunk 1, k 3, l 31; scale 15): ql[64 + 32 + 31] high nibble, qh[32 + 31] bits 6-7.
    // q = 0 -> sc 1 * (0 - 32) = -32.
    b[192 + 15] = 1;
    b[128 + 63] = 0xaa & 0x3f;
    expect(f16ToF32(0x3c00)).toBe(1);
    const y = dequantize("Q6_K", b, 256);
    const want = new Float32Array(256);
    // NOTE: the other values of group 4 are (-3) * 0 = -0 in float32, as in ggml.
    want.fill(-0, 64, 80);
    want[0] = 16;
    want[65] = -93;
    want[255] = -32;
    expectSameFloatBits(y, want, "hand-built Q6_K");

    // A Q8_K activation with d = 0.5, q[0] = 3, q[65] = -2, q[255] = 1, the rest 0:
    // dot = 0.5 * (16*3 + (-93)(-2) + (-32)(1)) = 0.5 * 202 = 101.
    const act = new Uint8Array(292);
    new DataView(act.buffer).setFloat32(0, 0.5, true);
    const aq = new Int8Array(act.buffer, 4, 256);
    aq[0] = 3;
    aq[65] = -2;
    aq[255] = 1;
    const dv = new DataView(act.buffer);
    dv.setInt16(260, 3, true);
    dv.setInt16(260 + 8, -2, true);
    dv.setInt16(260 + 30, 1, true);
    expect(kernels("Q6_K").dot(b, act, 256)).toBe(101);
    expect(kernels("Q6_K").dotRef(b, act, 256)).toBe(101);
  });
});

describe("K-quants: fast dot against its naive twin on seeded random rows", () => {
  // Both sides see the same quantized bytes; they differ only in float rounding order. The bound
  // is relative to sum |w_i a_i| (observed max about 5e-8 of it), so cancellation cannot fail it.
  const REL_TOL = 1e-6;

  for (const t of DOT_TYPES) {
    it(`${t}: dot vs dotRef within ${REL_TOL} * sum|w*a| on 120 rows of 256..2048 values`, () => {
      const r = rng(1000 + BLOCK_BYTES[t]);
      let worst = 0;
      let worstRow = -1;
      let firstBad = -1;
      const got: number[] = [];
      const want: number[] = [];
      for (let row = 0; row < 120; row++) {
        const n = 256 * (1 + (row % 8));
        const scale = [1, 0.02, 30, 1e-3][row % 4]!;
        const offset = row % 5 === 0 ? 2 : 0;
        const w = Float32Array.from({ length: n }, () => (r.normal() + offset) * scale);
        if (row % 7 === 0) w.fill(0.25, 32, 64); // a constant sub-block
        const a = Float32Array.from({ length: n }, () => r.normal());
        const qw = quantize(t, w);
        const qa = quantize("Q8_K", a);
        const wd = dequantize(t, qw, n);
        const ad = dequantize("Q8_K", qa, n);
        let mag = 0;
        for (let i = 0; i < n; i++) mag += Math.abs(wd[i]! * ad[i]!);
        const d = kernels(t).dot(qw, qa, n);
        const ref = kernels(t).dotRef(qw, qa, n);
        got.push(d);
        want.push(ref);
        const rel = mag > 0 ? Math.abs(d - ref) / mag : Math.abs(d - ref);
        if (rel > worst) {
          worst = rel;
          worstRow = row;
        }
        if (rel > REL_TOL && firstBad < 0) firstBad = row;
      }
      if (firstBad >= 0) {
        throw new Error(
          `${t}: max |dot - dotRef| / sum|w*a| = ${worst} at row ${worstRow}; first row over ${REL_TOL}: ${firstBad} (dot ${got[firstBad]}, dotRef ${want[firstBad]})`,
        );
      }
    });
  }

  it("reads activations at any byte offset and from alternating buffers", () => {
    const r = rng(7);
    const n = 512;
    const w = Float32Array.from({ length: n }, () => r.normal());
    const a1 = Float32Array.from({ length: n }, () => r.normal());
    const a2 = Float32Array.from({ length: n }, () => r.normal());
    for (const t of DOT_TYPES) {
      const qw = quantize(t, w);
      const q1 = quantize("Q8_K", a1);
      const q2 = quantize("Q8_K", a2);
      const d1 = kernels(t).dot(qw, q1, n);
      const d2 = kernels(t).dot(qw, q2, n);
      // The same bytes at an odd offset inside a larger buffer, and the row at an offset too.
      const big = new Uint8Array(q1.length + 13);
      big.set(q1, 7);
      const rowBig = new Uint8Array(qw.length + 5);
      rowBig.set(qw, 3);
      expect(kernels(t).dot(rowBig.subarray(3, 3 + qw.length), big.subarray(7, 7 + q1.length), n), t).toBe(
        d1,
      );
      expect(kernels(t).dot(qw, q2, n), t).toBe(d2);
      expect(kernels(t).dot(qw, q1, n), t).toBe(d1);
      expect(d1).not.toBe(d2);
    }
  });
});

describe("K-quants: byte offsets", () => {
  it("quantizes into and dequantizes from subarrays at odd byte offsets", () => {
    const r = rng(99);
    const n = 768;
    const x = Float32Array.from({ length: n }, () => r.normal());
    for (const t of ALL_TYPES) {
      const q = quantize(t, x);
      const big = new Uint8Array(q.length + 8);
      kernels(t).quantize(x, big.subarray(3, 3 + q.length), n);
      expectSameBytes(big.subarray(3, 3 + q.length), q, `${t} quantize at offset 3`);
      expectSameFloatBits(
        dequantize(t, big.subarray(3, 3 + q.length), n),
        dequantize(t, q, n),
        `${t} at offset 3`,
      );
    }
  });
});

describe("K-quants: round-trip error on normal data", () => {
  const r = rng(2024);
  const n = 256 * 32;
  const x = Float32Array.from({ length: n }, () => r.normal());
  const err: Partial<Record<KType, number>> = {};
  for (const t of ALL_TYPES) {
    const y = dequantize(t, quantize(t, x), n);
    let e = 0;
    for (let i = 0; i < n; i++) e += (x[i]! - y[i]!) ** 2;
    err[t] = Math.sqrt(e / n); // x has unit variance, so this is the relative rmse
  }

  it("stays under per-type bounds (measured: Q2_K .29, Q3_K .15, Q4_K .071, Q5_K .036, Q6_K .018, Q8_K .007)", () => {
    const bound: Record<KType, number> = {
      Q2_K: 0.33,
      Q3_K: 0.17,
      Q4_K: 0.08,
      Q5_K: 0.04,
      Q6_K: 0.02,
      Q8_K: 0.008,
    };
    for (const t of ALL_TYPES) expect(err[t], t).toBeLessThan(bound[t]);
  });

  it("orders Q2_K > Q3_K > Q4_K > Q5_K > Q6_K > Q8_K, each step at least 1.5x", () => {
    for (let i = 1; i < ALL_TYPES.length; i++) {
      const hi = err[ALL_TYPES[i - 1]!]!;
      const lo = err[ALL_TYPES[i]!]!;
      expect(hi / lo, `${ALL_TYPES[i - 1]} / ${ALL_TYPES[i]}`).toBeGreaterThan(1.5);
    }
  });

  it("maps an all-zero row to all-zero bytes and back to zeros", () => {
    for (const t of ALL_TYPES) {
      const q = quantize(t, new Float32Array(512));
      expect(
        q.every((b) => b === 0),
        t,
      ).toBe(true);
      expect(
        dequantize(t, q, 512).every((v) => v === 0),
        t,
      ).toBe(true);
    }
  });
});
