/**
 * Plain float types F32, F16, BF16: hand-computed rows, round-trip error bounds, the fp16
 * conversion against an emulation of ggml's portable one, the C rounding helpers, dot vs its
 * naive twin on random rows, and ggml's reference vectors bit for bit.
 */
import { describe, expect, it } from "vitest";
import { castInt8, nearestInt, roundf, toF16Bits, truncInt32 } from "../src/quant/c-float.ts";
import { FLOAT_KERNELS } from "../src/quant/float.ts";
import { f16ToF32 } from "../src/util/f16.ts";
import { compareRandomDots, f32Bits, makeRng, randomRow } from "./helpers/quant-assert.ts";
import { loadQuantVectors, quantFixturesAvailable } from "./helpers/quant-fixtures.ts";
import { checkVectors } from "./helpers/quant-vectors.ts";

const F32 = FLOAT_KERNELS.F32!;
const F16 = FLOAT_KERNELS.F16!;
const BF16 = FLOAT_KERNELS.BF16!;

function bytesOf(k: typeof F16, x: number[], width: number): Uint8Array {
  const q = new Uint8Array(x.length * width);
  k.quantize!(Float32Array.from(x), q, x.length);
  return q;
}

function u16s(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 2) out.push(b[i]! | (b[i + 1]! << 8));
  return out;
}

describe("float kernels: hand-computed rows", () => {
  it("F16: quantize rounds to nearest even, dequantize is exact", () => {
    // 1 = 0x3c00, -2 = 0xc000, 65504 = max half 0x7bff, 0.1 -> 0x2e66 (= 0.0999755859375),
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10 -> even 0x3c00, 2^-24 = smallest subnormal 0x0001,
    // 1e-8 < 2^-25 -> +0, 1e6 -> inf 0x7c00, -0 -> 0x8000.
    const x = [1, -2, 65504, 0.1, 1 + 2 ** -11, 2 ** -24, 1e-8, 1e6, -0];
    const h = u16s(bytesOf(F16, x, 2));
    expect(h).toEqual([0x3c00, 0xc000, 0x7bff, 0x2e66, 0x3c00, 0x0001, 0x0000, 0x7c00, 0x8000]);
    const y = new Float32Array(x.length);
    F16.dequantize!(bytesOf(F16, x, 2), y, x.length);
    expect([...y]).toEqual([1, -2, 65504, 0.0999755859375, 1, 2 ** -24, 0, Number.POSITIVE_INFINITY, -0]);
  });

  it("F16: NaN becomes sign | 0x7e00 as in ggml's portable conversion; dequantize keeps NaN bits", () => {
    const nan = new Float32Array(2);
    new Uint32Array(nan.buffer).set([0x7f800001, 0xffc01234]);
    const q = new Uint8Array(4);
    F16.quantize!(nan, q, 2);
    expect(u16s(q)).toEqual([0x7e00, 0xfe00]);
    const y = new Float32Array(1);
    F16.dequantize!(new Uint8Array([0x01, 0xfd]), y, 1); // half 0xfd01: negative signalling NaN
    expect(new Uint32Array(y.buffer)[0]).toBe((0xffc00000 | (0x101 << 13)) >>> 0);
  });

  it("BF16: quantize rounds to nearest even, dequantize appends 16 zero bits", () => {
    // 1 = 0x3f80; pi = 0x40490fdb -> 0x4049 (3.140625); 1 + 2^-8 is a tie -> even 0x3f80;
    // 1 + 3 * 2^-8 is a tie -> even 0x3f82; NaN 0x7f800001 -> quieted 0x7fc0.
    const x = new Float32Array([1, Math.PI, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 0]);
    new Uint32Array(x.buffer)[4] = 0x7f800001;
    const q = new Uint8Array(10);
    BF16.quantize!(x, q, 5);
    expect(u16s(q)).toEqual([0x3f80, 0x4049, 0x3f80, 0x3f82, 0x7fc0]);
    const y = new Float32Array(5);
    BF16.dequantize!(q, y, 5);
    expect([...y.subarray(0, 4)]).toEqual([1, 3.140625, 1, 1 + 2 ** -6]);
  });

  it("dots of short rows: float32 products summed in float64", () => {
    // [1, 2, 3] . [4, -5, 0.5] = 4 - 10 + 1.5 = -4.5 in every float type.
    const x = [1, 2, 3];
    const a = [4, -5, 0.5];
    expect(F16.dot!(bytesOf(F16, x, 2), bytesOf(F16, a, 2), 3)).toBe(-4.5);
    expect(BF16.dot!(bytesOf(BF16, x, 2), bytesOf(BF16, a, 2), 3)).toBe(-4.5);
    expect(F32.dot!(bytesOf(F32, x, 4), bytesOf(F32, a, 4), 3)).toBe(-4.5);
    // Float64 accumulation: 2^24 + 1 - 2^24 is 1 (a float32 sum would lose the 1).
    const big = [2 ** 24, 1, -(2 ** 24)];
    const ones = [1, 1, 1];
    expect(F32.dot!(bytesOf(F32, big, 4), bytesOf(F32, ones, 4), 3)).toBe(1);
    // BF16 products are rounded to float32: 2^-100 * 2^-100 underflows to 0 (float32 has no 2^-200).
    expect(BF16.dot!(bytesOf(BF16, [2 ** -100], 2), bytesOf(BF16, [2 ** -100], 2), 1)).toBe(0);
  });

  it("F32 quantize and dequantize are byte copies", () => {
    const x = new Float32Array([1.5, -0, Number.NaN, 3e38]);
    const q = new Uint8Array(16);
    F32.quantize!(x, q, 4);
    expect([...q]).toEqual([...new Uint8Array(x.buffer)]);
    const y = new Float32Array(4);
    F32.dequantize!(q.subarray(0), y, 4);
    expect([...new Uint32Array(y.buffer)]).toEqual([...new Uint32Array(x.buffer)]);
  });
});

describe("float kernels: conversions and C rounding helpers", () => {
  // ggml_compute_fp32_to_fp16 (ggml-impl.h), its float32 steps emulated with Math.fround.
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  function ggmlPortableF16(bits: number): number {
    u[0] = bits;
    const x = f[0]!;
    const fromBits = (b: number) => {
      u[0] = b >>> 0;
      return f[0]!;
    };
    let base = Math.fround(Math.fround(Math.abs(x) * 2 ** 112) * 2 ** -110);
    const shl1 = (bits * 2) >>> 0;
    const sign = bits & 0x80000000;
    let bias = (shl1 & 0xff000000) >>> 0;
    if (bias < 0x71000000) bias = 0x71000000;
    base = Math.fround(fromBits((bias >>> 1) + 0x07800000) + base);
    const b = f32Bits(base);
    const nonsign = ((b >>> 13) & 0x7c00) + (b & 0xfff);
    return ((sign >>> 16) | (shl1 > 0xff000000 ? 0x7e00 : nonsign)) & 0xffff;
  }

  it("toF16Bits equals ggml's portable fp32 -> fp16 on 2^19 bit patterns", () => {
    // Every (2^13 + 1)th pattern (all exponents, both signs, NaNs), plus the 2^13 patterns after 1,
    // after 2^-20 (a subnormal half) and after -2^-20: every rounding case of one half ulp.
    const patterns: number[] = [];
    for (let b = 0; b < 2 ** 32; b += 2 ** 13 + 1) patterns.push(b);
    for (let m = 0; m < 2 ** 13; m++) patterns.push(0x3f800000 + m, 0x35800000 + m, 0xb5800000 + m);
    for (const b of patterns) {
      u[0] = b;
      const got = toF16Bits(f[0]!);
      const want = ggmlPortableF16(b);
      if (got !== want)
        throw new Error(`fp32 0x${b.toString(16)}: 0x${got.toString(16)} vs ggml 0x${want.toString(16)}`);
    }
  });

  it("roundf rounds halfway away from zero; nearestInt to even; casts keep the low byte", () => {
    expect([2.5, -2.5, 0.5, -0.5, 0.49999997, 1.5, 8388609].map(roundf)).toEqual([
      3, -3, 1, -1, 0, 2, 8388609,
    ]);
    expect([2.5, -2.5, 0.5, 3.5, -3.5, 1.4].map(nearestInt)).toEqual([2, -2, 0, 4, -4, 1]);
    expect([127.9, -128.5, 200, -1, Number.NaN, Number.POSITIVE_INFINITY].map(castInt8)).toEqual([
      127, -128, -56, -1, 0, 0,
    ]);
    expect(truncInt32(3e9)).toBe(-2147483648); // cvttss2si's "integer indefinite"
  });

  it("f16 round trip: |x - f16(x)| <= 2^-11 |x| in the normal half range", () => {
    const rng = makeRng(11);
    const x = randomRow(rng, 4096, "outliers");
    const q = new Uint8Array(8192);
    F16.quantize!(x, q, 4096);
    const y = new Float32Array(4096);
    F16.dequantize!(q, y, 4096);
    for (let i = 0; i < 4096; i++) {
      const ok = Math.abs(x[i]!) < 2 ** -14 || Math.abs(x[i]! - y[i]!) <= 2 ** -11 * Math.abs(x[i]!);
      if (!ok) throw new Error(`F16 round trip of ${x[i]} gave ${y[i]}`);
      expect(f16ToF32(q[2 * i]! | (q[2 * i + 1]! << 8))).toBe(y[i]);
    }
    BF16.quantize!(x, q, 4096);
    BF16.dequantize!(q, y, 4096);
    for (let i = 0; i < 4096; i++) {
      if (!(Math.abs(x[i]! - y[i]!) <= 2 ** -8 * Math.abs(x[i]!))) {
        throw new Error(`BF16 round trip of ${x[i]} gave ${y[i]}`);
      }
    }
  });
});

describe("float kernels: dot vs dotRef on random rows (aligned and odd offsets)", () => {
  for (const [name, k, width] of [
    ["F32", F32, 4],
    ["F16", F16, 2],
    ["BF16", BF16, 2],
  ] as const) {
    it(name, () => {
      const c = {
        kernels: k,
        rowBytes: (n: number) => n * width,
        actBytes: (n: number) => n * width,
        quantizeAct: k.quantize!,
        dequantizeAct: k.dequantize!,
        steps: () => 1,
      };
      compareRandomDots(c, 7, 10, 1, name);
      compareRandomDots(c, 1024, 10, 2, name);
    });
  }
});

describe.skipIf(!quantFixturesAvailable())("float kernels: ggml reference vectors", () => {
  const vectors = quantFixturesAvailable() ? loadQuantVectors() : new Map();
  describe("F16", () => {
    checkVectors(vectors.get("F16")!, F16, {
      activation: F16,
      steps: 1,
      // NOTE: ggml's AVX512-FP16 kernel accumulates in half precision (README): its `result` is only
      // good to about 2^-10 of the scale (and the smallest half subnormal in absolute terms).
      simdTolerance: (_r, scale) => 2 ** -10 * scale + 2 ** -24,
    });
  });
  describe("BF16", () => {
    checkVectors(vectors.get("BF16")!, BF16, { activation: BF16, steps: 1 });
  });
});
