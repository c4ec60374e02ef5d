/**
 * Legacy block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1: hand-computed blocks, quantize ->
 * dequantize error bounds on random rows, dot vs its naive twin on random rows, and ggml's
 * reference vectors (bytes, floats and dot results bit for bit).
 */
import { describe, expect, it } from "vitest";
import { LEGACY_KERNELS } from "../src/quant/legacy.ts";
import { GgmlType } from "../src/util/ggml-types.ts";
import { compareRandomDots, makeRng, normal, randomRow } from "./helpers/quant-assert.ts";
import { loadQuantVectors, quantFixturesAvailable } from "./helpers/quant-fixtures.ts";
import { checkVectors } from "./helpers/quant-vectors.ts";

const Q4_0 = LEGACY_KERNELS.Q4_0!;
const Q4_1 = LEGACY_KERNELS.Q4_1!;
const Q5_0 = LEGACY_KERNELS.Q5_0!;
const Q5_1 = LEGACY_KERNELS.Q5_1!;
const Q8_0 = LEGACY_KERNELS.Q8_0!;
const Q8_1 = LEGACY_KERNELS.Q8_1!;

const BYTES = { Q4_0: 18, Q4_1: 20, Q5_0: 22, Q5_1: 24, Q8_0: 34, Q8_1: 36 } as const;
type Legacy = keyof typeof BYTES;

function quantizeTo(type: Legacy, x: Float32Array): Uint8Array {
  const q = new Uint8Array((x.length / 32) * BYTES[type]);
  LEGACY_KERNELS[type]!.quantize!(x, q, x.length);
  return q;
}

function dequantizeFrom(type: Legacy, q: Uint8Array, n: number): Float32Array {
  const y = new Float32Array(n);
  LEGACY_KERNELS[type]!.dequantize!(q, y, n);
  return y;
}

describe("legacy kernels: the table", () => {
  it("has every legacy type with its activation type", () => {
    expect(Object.keys(LEGACY_KERNELS).sort()).toEqual(["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1"]);
    expect([Q4_0, Q4_1, Q5_0, Q5_1, Q8_0].map((k) => k.dotActivation)).toEqual([
      "Q8_0",
      "Q8_1",
      "Q8_0",
      "Q8_1",
      "Q8_0",
    ]);
    expect(Q8_1.dot).toBeUndefined(); // ggml has no Q8_1 weights dot either
    for (const t of Object.keys(BYTES)) expect(GgmlType[t as Legacy]).toBeGreaterThan(0);
  });
});

describe("legacy kernels: hand-computed blocks", () => {
  it("Q4_0: d = max/-8, q = min(15, trunc(x/d + 8.5)), halves in low/high nibbles", () => {
    // x[j] = -2 + 0.25 j and x[16+j] = 1.75 - 0.25 j (j = 0..15). The largest |x| is x[0] = -2,
    // so d = -2 / -8 = 0.25 (fp16 0x3400) and x/d = -8 + j -> q = trunc(j + 0.5) = j for the low
    // half, x/d = 7 - j -> q = 15 - j for the high half: byte j = j | (15 - j) << 4.
    // x[1] is then moved to -1.375: x/d = -5.5, -5.5 + 8.5 = 3.0 exactly -> q = 3 (the tie
    // rounds up, towards +inf: Q4_0 has no roundf).
    const x = new Float32Array(32);
    for (let j = 0; j < 16; j++) {
      x[j] = -2 + 0.25 * j;
      x[16 + j] = 1.75 - 0.25 * j;
    }
    x[1] = -1.375;
    const q = quantizeTo("Q4_0", x);
    const expected = [0x00, 0x34];
    for (let j = 0; j < 16; j++) expected.push((j === 1 ? 3 : j) | ((15 - j) << 4));
    expect([...q]).toEqual(expected);
    // Dequantize: (q - 8) * 0.25 gives x back, except x[1] -> (3 - 8) * 0.25 = -1.25.
    const y = dequantizeFrom("Q4_0", q, 32);
    const back = Float32Array.from(x);
    back[1] = -1.25;
    expect([...y]).toEqual([...back]);
  });

  it("Q4_0: x/d + 8.5 is rounded to float32 before the truncation (NOTE: the float64 sum would not be)", () => {
    // max = -8 -> d = 1. x[1] = -0.50000006 (float32): -0.50000006 + 8.5 = 7.99999994 in float64,
    // which truncates to 7, but float32 rounds it to 8.0 -> q = 8 (value 0), as ggml computes.
    const x = new Float32Array(32);
    x[0] = -8;
    x[1] = Math.fround(-0.50000006);
    const q = quantizeTo("Q4_0", x);
    expect(q[3]! & 15).toBe(8);
    expect(dequantizeFrom("Q4_0", q, 32)[1]).toBe(0);
  });

  it("Q4_1: d = (max - min)/15, m = min, q = min(15, trunc((x - min)/d + 0.5))", () => {
    // x[j] = x[16+j] = 1 + 0.5 j: min 1 (fp16 0x3c00), d = 7.5/15 = 0.5 (0x3800), q = j.
    const x = new Float32Array(32);
    for (let j = 0; j < 16; j++) x[j] = x[16 + j] = 1 + 0.5 * j;
    const q = quantizeTo("Q4_1", x);
    const expected = [0x00, 0x38, 0x00, 0x3c];
    for (let j = 0; j < 16; j++) expected.push(j | (j << 4));
    expect([...q]).toEqual(expected);
    expect([...dequantizeFrom("Q4_1", q, 32)]).toEqual([...x]);
  });

  it("Q5_0: d = max/-16, 5-bit q = j with bit 4 in qh", () => {
    // x[j] = (j - 16) * 0.125: largest |x| is x[0] = -2 -> d = 0.125 (0x3000), x/d + 16.5 =
    // j + 0.5 -> q = j. Low nibbles j & 15 (byte j holds q[j] and q[j+16], both j & 15), bit 4 set
    // for j >= 16: qh = 0xffff0000.
    const x = new Float32Array(32);
    for (let j = 0; j < 32; j++) x[j] = (j - 16) * 0.125;
    const q = quantizeTo("Q5_0", x);
    const expected = [0x00, 0x30, 0x00, 0x00, 0xff, 0xff];
    for (let j = 0; j < 16; j++) expected.push(j | (j << 4));
    expect([...q]).toEqual(expected);
    expect([...dequantizeFrom("Q5_0", q, 32)]).toEqual([...x]);
  });

  it("Q5_1: d = (max - min)/31, m = min, q = trunc((x - min)/d + 0.5)", () => {
    // x[j] = 0.25 j: min 0, d = 7.75/31 = 0.25 (0x3400), q = j.
    const x = new Float32Array(32);
    for (let j = 0; j < 32; j++) x[j] = 0.25 * j;
    const q = quantizeTo("Q5_1", x);
    const expected = [0x00, 0x34, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff];
    for (let j = 0; j < 16; j++) expected.push(j | (j << 4));
    expect([...q]).toEqual(expected);
    expect([...dequantizeFrom("Q5_1", q, 32)]).toEqual([...x]);
  });

  it("Q8_0 / Q8_1: d = amax/127, q = roundf(x/d) with ties away from zero; s = fp16(d * sum q)", () => {
    // amax 127 -> d = 1 (0x3c00). roundf(2.5) = 3, roundf(-2.5) = -3, roundf(0.5) = 1,
    // roundf(-0.5) = -1 (round-half-even would give 2, -2, 0, -0), roundf(-126.5) = -127.
    const x = new Float32Array(32);
    x.set([127, 2.5, -2.5, 0.5, -0.5, 1.49, -126.5]);
    const q8 = [0x7f, 0x03, 0xfd, 0x01, 0xff, 0x01, 0x81, ...new Array<number>(25).fill(0)];
    expect([...quantizeTo("Q8_0", x)]).toEqual([0x00, 0x3c, ...q8]);
    // sum = 127 + 3 - 3 + 1 - 1 + 1 - 127 = 1 -> s = fp16(1) = 0x3c00.
    expect([...quantizeTo("Q8_1", x)]).toEqual([0x00, 0x3c, 0x00, 0x3c, ...q8]);
    const y = dequantizeFrom("Q8_0", quantizeTo("Q8_0", x), 32);
    expect([...y.subarray(0, 7)]).toEqual([127, 3, -3, 1, -1, 1, -127]);
  });

  it("dots of hand-built blocks: integer sums times the product of the scales", () => {
    // Q4_0 block d = 0.5 with all q = 9 (value +0.5) against a Q8_0 block d = 2, q = 1..32:
    // sumi = 1 * (1 + ... + 32) = 528, dot = 528 * 0.5 * 2 = 528.
    const w = new Uint8Array([0x00, 0x38, ...new Array<number>(16).fill(0x99)]);
    const a = new Uint8Array([0x00, 0x40, ...Array.from({ length: 32 }, (_, j) => j + 1)]);
    expect(Q4_0.dot!(w, a, 32)).toBe(528);
    expect(Q4_0.dotRef!(w, a, 32)).toBe(528);
    // Q8_0 x Q8_0: the same activation against itself: 4 * sum j^2 = 4 * 11440.
    expect(Q8_0.dot!(a, a, 32)).toBe(45760);
    // Q4_1 block d = 1, m = -8 (q = 9 -> value 1) against Q8_1 d = 1, s = 528 (fp16 0x6020), q = 1..32:
    // d*d*sumi + m*s = 9 * 528 - 8 * 528 = 528.
    const w1 = new Uint8Array([0x00, 0x3c, 0x00, 0xc8, ...new Array<number>(16).fill(0x99)]);
    const a1 = new Uint8Array([0x00, 0x3c, 0x20, 0x60, ...Array.from({ length: 32 }, (_, j) => j + 1)]);
    expect(Q4_1.dot!(w1, a1, 32)).toBe(528);
    expect(Q4_1.dotRef!(w1, a1, 32)).toBe(528);
  });
});

describe("legacy kernels: quantize -> dequantize error bounds on random rows", () => {
  const n = 4096;
  const rng = makeRng(0x5eed);
  const rows = ["normal", "uniform", "outliers", "small", "sparse"].map((d) =>
    randomRow(rng, n, d as "normal"),
  );

  // Per block: the largest |x - dequantized x| allowed, from the block's values.
  // NOTE: the scales are stored as fp16 (relative error <= 2^-11), which the bounds include.
  const bounds: Record<Legacy, (b: Float32Array) => number> = {
    // The value of largest magnitude maps to q = 0 or 16 -> clamped to 15: error up to |d| = amax/8.
    Q4_0: (b) => (amax(b) / 8) * (1 + 2 ** -8),
    Q4_1: (b) => minMaxBound(b, 15),
    Q5_0: (b) => (amax(b) / 16) * (1 + 2 ** -7),
    Q5_1: (b) => minMaxBound(b, 31),
    Q8_0: (b) => (amax(b) / 127) * (0.5 + 128 * 2 ** -11) + 1e-30,
    Q8_1: (b) => (amax(b) / 127) * (0.5 + 128 * 2 ** -11) + 1e-30,
  };

  for (const type of Object.keys(BYTES) as Legacy[]) {
    it(`${type} stays within its per-block bound`, () => {
      for (const [r, x] of rows.entries()) {
        const y = dequantizeFrom(type, quantizeTo(type, x), n);
        for (let b = 0; b < n; b += 32) {
          const block = x.subarray(b, b + 32);
          const bound = bounds[type](block);
          for (let j = 0; j < 32; j++) {
            const err = Math.abs(x[b + j]! - y[b + j]!);
            if (!(err <= bound)) {
              throw new Error(
                `${type} row ${r} value ${b + j}: |${x[b + j]} - ${y[b + j]}| = ${err} > ${bound}`,
              );
            }
          }
        }
      }
    });
  }

  function amax(b: Float32Array): number {
    let m = 0;
    for (const v of b) m = Math.max(m, Math.abs(v));
    return m;
  }

  // Step d = (max - min)/levels: half a step from rounding, plus the fp16 error of d (times q <= levels)
  // and of m.
  function minMaxBound(b: Float32Array, levels: number): number {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const v of b) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    const d = (max - min) / levels;
    return d * 0.5 + (max - min) * 2 ** -10 + Math.abs(min) * 2 ** -10 + 1e-30;
  }

  it("keeps the relative RMS error of normal rows near the format's resolution", () => {
    const x = rows[0]!;
    const rms = (type: Legacy) => {
      const y = dequantizeFrom(type, quantizeTo(type, x), n);
      let e = 0;
      let s = 0;
      for (let i = 0; i < n; i++) {
        e += (x[i]! - y[i]!) ** 2;
        s += x[i]! ** 2;
      }
      return Math.sqrt(e / s);
    };
    // Measured on this seed: 0.086, 0.077, 0.043, 0.038, 0.0054; the bounds leave ~20%.
    expect(rms("Q4_0")).toBeLessThan(0.1);
    expect(rms("Q4_1")).toBeLessThan(0.09);
    expect(rms("Q5_0")).toBeLessThan(0.05);
    expect(rms("Q5_1")).toBeLessThan(0.045);
    expect(rms("Q8_0")).toBeLessThan(0.0065);
    expect(rms("Q4_0")).toBeGreaterThan(rms("Q5_0"));
  });
});

describe("legacy kernels: dot vs dotRef on random rows", () => {
  const act = {
    Q8_0: {
      quantizeAct: Q8_0.quantize!,
      dequantizeAct: Q8_0.dequantize!,
      actBytes: (n: number) => (n / 32) * 34,
    },
    Q8_1: {
      quantizeAct: Q8_1.quantize!,
      dequantizeAct: Q8_1.dequantize!,
      actBytes: (n: number) => (n / 32) * 36,
    },
  };
  for (const type of ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"] as const) {
    it(`${type}`, () => {
      const k = LEGACY_KERNELS[type]!;
      const c = {
        kernels: k,
        rowBytes: (n: number) => (n / 32) * BYTES[type],
        steps: (n: number) => n / 32,
        ...act[k.dotActivation as "Q8_0" | "Q8_1"],
      };
      compareRandomDots(c, 32, 20, 1, type);
      compareRandomDots(c, 1024, 20, 2, type);
      compareRandomDots(c, 4096, 4, 3, type);
    });
  }

  it("a dot of rows far apart in one big buffer reads the right bytes", () => {
    // The kernels read int8 quants through Int8Array views at the rows' byte offsets.
    const rng = makeRng(7);
    const n = 256;
    const buf = new Uint8Array(1 << 16);
    const x = Float32Array.from({ length: n }, () => normal(rng));
    const a = Float32Array.from({ length: n }, () => normal(rng));
    const row = buf.subarray(40001, 40001 + (n / 32) * 34);
    const act = buf.subarray(777, 777 + (n / 32) * 34);
    Q8_0.quantize!(x, row, n);
    Q8_0.quantize!(a, act, n);
    const other = new Uint8Array((n / 32) * 34);
    Q8_0.quantize!(a, other, n);
    expect(Q8_0.dot!(row, act, n)).toBe(Q8_0.dot!(row.slice(), other, n));
    expect(Q4_0.dot!(quantizeTo("Q4_0", x), act, n)).toBe(Q4_0.dot!(quantizeTo("Q4_0", x), other, n));
  });
});

describe.skipIf(!quantFixturesAvailable())("legacy kernels: ggml reference vectors", () => {
  const vectors = quantFixturesAvailable() ? loadQuantVectors() : new Map();
  for (const type of ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1"] as const) {
    describe(type, () => {
      const k = LEGACY_KERNELS[type]!;
      checkVectors(vectors.get(type)!, k, {
        ...(k.dotActivation ? { activation: LEGACY_KERNELS[k.dotActivation as "Q8_0" | "Q8_1"]! } : {}),
        steps: 256 / 32,
      });
    });
  }
});
