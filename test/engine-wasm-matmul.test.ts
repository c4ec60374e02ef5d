/**
 * WasmBackend.matmul against src/quant's ggml-exact scalar dot products, for every weight type
 * with a kernel, at T = 1 and T > 1, odd sizes (OC not a multiple of the thread count), on 1 and
 * 2 threads. Tolerance: |got - want| <= RTOL * sum_i |w_i a_i| + ATOL per output (w, a the
 * dequantized row and activation): the integer block sums are exact, only the float order
 * differs from ggml's scalar loop. 1 and 2 threads must agree bit for bit. Activations are
 * quantized as ggml-cpu's x86 build does (the default), or with ggml's reference quantizers.
 * Not here: the other kernels (engine-wasm-ops.test.ts), activation quantizers (engine-wasm-quantize.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWasmBackend, type WasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import type { GgmlTypeName } from "../src/util/ggml-types.ts";
import { expectClose, quantizeMatrix, randomFloats, refMatmul } from "./helpers/engine-wasm-reference.ts";

const RTOL = 4e-7;
const ATOL = 1e-6;

const FLOAT_TYPES: GgmlTypeName[] = ["F32", "F16", "BF16"];
const LEGACY_TYPES: GgmlTypeName[] = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"];
const K_TYPES: GgmlTypeName[] = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"];

// [T, C, OC]
const COMMON: [number, number, number][] = [
  [1, 256, 13],
  [7, 256, 13],
  [1, 4096, 67],
  [7, 1024, 37],
  [3, 768, 5],
];
// T > 1 runs in tiles of 4 tokens x 2 (float) or 4 (quantized) rows: partial tiles of both, and C
// not a multiple of 4 for the float types.
const FLOAT_EXTRA: [number, number, number][] = [
  [1, 100, 9],
  [5, 36, 3],
  [6, 30, 7],
  [9, 33, 5],
];
const LEGACY_EXTRA: [number, number, number][] = [
  [2, 96, 11],
  [9, 64, 6],
];
// A few tokens (2 <= T <= 8: matmul-small.ts for the legacy types, the K-quants, F16 / BF16):
// one and two groups of 4 tokens, full and partial, odd row counts (C a multiple of 256 for the
// K-quants).
const SMALL_T: [number, number, number][] = [
  [2, 256, 3],
  [3, 512, 5],
  [4, 256, 7],
  [5, 768, 9],
  [6, 256, 1],
  [8, 512, 11],
];

let b1: WasmBackend;
let b2: WasmBackend;

beforeAll(async () => {
  b1 = await createWasmBackend({ threads: 1 });
  b2 = await createWasmBackend({ threads: 2, minParallelWork: 0, adaptive: false });
});

afterAll(async () => {
  await b1?.dispose();
  await b2?.dispose();
});

function run(
  b: WasmBackend,
  type: GgmlTypeName,
  w: Uint8Array,
  x: Float32Array,
  T: number,
  C: number,
  OC: number,
) {
  const wb = b.upload(w);
  const xb = b.upload(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  const yb = b.alloc(T * OC * 4);
  b.matmul(type, wb, xb, yb, T, C, OC);
  return b.f32(yb).slice();
}

function check(type: GgmlTypeName, T: number, C: number, OC: number, seed: number) {
  // Weights with a spread of row scales, activations with a few large values (outliers are
  // what per-block scales must survive).
  const wf = randomFloats(OC * C, seed, 0.5);
  for (let r = 0; r < OC; r++) for (let i = 0; i < C; i++) wf[r * C + i]! *= 1 + (r % 5);
  const x = randomFloats(T * C, seed + 1, 1);
  for (let i = 0; i < x.length; i += 97) x[i]! *= 8;
  const w = quantizeMatrix(type, wf, OC, C);
  const want = refMatmul(type, w, x, T, C, OC);
  const got1 = run(b1, type, w, x, T, C, OC);
  const got2 = run(b2, type, w, x, T, C, OC);
  const d = expectClose(`${type} T=${T} C=${C} OC=${OC}`, got1, want.y, (i) => RTOL * want.mag[i]! + ATOL);
  expect(Array.from(got2)).toEqual(Array.from(got1));
  return d;
}

describe("WasmBackend.matmul", () => {
  for (const type of [...FLOAT_TYPES, ...LEGACY_TYPES, ...K_TYPES]) {
    const cases = [
      ...COMMON,
      ...(FLOAT_TYPES.includes(type) ? FLOAT_EXTRA : []),
      ...(LEGACY_TYPES.includes(type) ? LEGACY_EXTRA : []),
      ...SMALL_T,
    ];
    it(`${type}: matches ggml's scalar dot within ${RTOL} x sum|w a|`, () => {
      let seed = 1000;
      for (const [T, C, OC] of cases) check(type, T, C, OC, seed++);
    });
  }

  it("T > 1: a token's outputs do not depend on the other tokens of the call", () => {
    // Tokens go 4 to a tile with one lane or accumulator each: token t's row of y must be the same
    // bits whether it shares its tile with 3 other tokens, with padding, or with different tokens,
    // and whether a few tokens (matmul-small.ts) or many (the tiles) are multiplied.
    const [C, OC] = [256, 9];
    for (const type of [...FLOAT_TYPES, ...LEGACY_TYPES, ...K_TYPES]) {
      const w = quantizeMatrix(type, randomFloats(OC * C, 501, 1), OC, C);
      const x = randomFloats(9 * C, 502, 1);
      const all = run(b2, type, w, x.subarray(0, 8 * C), 8, C, OC);
      // T = 9 takes the tiles where T = 8 takes the small-T path (the legacy types, the K-quants,
      // F16, BF16): same bits.
      const nine = run(b1, type, w, x, 9, C, OC);
      expect(Array.from(nine.subarray(0, 8 * OC)), type).toEqual(Array.from(all));
      const first5 = run(b2, type, w, x.subarray(0, 5 * C), 5, C, OC);
      const last3 = run(b1, type, w, x.subarray(5 * C), 3, C, OC);
      expect(Array.from(first5), type).toEqual(Array.from(all.subarray(0, 5 * OC)));
      expect(Array.from(last3), type).toEqual(Array.from(all.subarray(5 * OC)));
    }
  });

  it("Q4_K / Q5_K, one token: nibbles, fifth bits and 6-bit scales at their largest, and random bytes", () => {
    // The one-token dots narrow each 16-value sub-block sum to i16 before scaling it (exact while
    // |sum| <= 4 * 31 * 127): rows of all-ones bits with activations at +-127 reach that bound.
    const C = 512;
    const OC = 5; // two pairs of rows and one alone
    for (const type of ["Q4_K", "Q5_K"] as GgmlTypeName[]) {
      const bb = type === "Q4_K" ? 144 : 176;
      const w = new Uint8Array(OC * (C / 256) * bb);
      let s = 12345;
      for (let i = 0; i < w.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        w[i] = s >>> 24;
      }
      for (let blk = 0; blk < w.length / bb; blk++) {
        const o = blk * bb;
        if (blk < 2 * (C / 256)) w.fill(0xff, o + 4, o + bb); // rows 0 and 1: every bit set
        // d and dmin: small positive halves.
        w[o] = 0x00;
        w[o + 1] = 0x20 + (blk % 3);
        w[o + 2] = 0x00;
        w[o + 3] = 0x1c + (blk % 2);
      }
      for (const sign of [1, -1, 0]) {
        const x = new Float32Array(C);
        for (let i = 0; i < C; i++) x[i] = sign === 0 ? (i % 3) - 1 : sign * (1 + (i % 7) / 1000);
        const want = refMatmul(type, w, x, 1, C, OC);
        const got = run(b1, type, w, x, 1, C, OC);
        expectClose(`${type} extremes sign ${sign}`, got, want.y, (i) => RTOL * want.mag[i]! + ATOL);
        expect(Array.from(run(b2, type, w, x, 1, C, OC))).toEqual(Array.from(got));
      }
    }
  });

  it("Q6_K, T = 1..5: 6-bit values and i8 scales at their extremes, and random bytes", () => {
    // The one-token dot sums the values unsigned (0..63), narrows each 16-value sub-block sum to
    // i16 (exact while |sum| <= 4 * 63 * 127) and takes the -32 from the bsums; its activation
    // holds B - 256 A per EO pair (|B - 256 A| <= 127 + 256 * 127). Row 0: every quant bit set,
    // scales 127 / -128 alternating; row 1: every quant bit clear, scales -128 / 127; rows 2..4
    // random bytes. Activations at +-127 (one sign), mixed, and alternating +-127.
    const C = 512;
    const OC = 5; // two pairs of rows and one alone
    const bb = 210;
    const nb = C / 256;
    const w = new Uint8Array(OC * nb * bb);
    let s = 777;
    for (let i = 0; i < w.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      w[i] = s >>> 24;
    }
    for (let r = 0; r < OC; r++) {
      for (let b = 0; b < nb; b++) {
        const o = (r * nb + b) * bb;
        if (r < 2) {
          w.fill(r === 0 ? 0xff : 0x00, o, o + 192);
          for (let j = 0; j < 16; j++) w[o + 192 + j] = (j % 2 === 0) === (r === 0) ? 0x7f : 0x80;
        }
        // d: a small positive half.
        w[o + 208] = 0x00;
        w[o + 209] = 0x20 + (b % 3);
      }
    }
    // sign 2: -127, +127 alternating, the largest |B - 256 A|.
    for (const sign of [1, -1, 0, 2]) {
      const x = new Float32Array(5 * C);
      for (let i = 0; i < x.length; i++)
        x[i] =
          sign === 2 ? (i % 2 === 0 ? -1 : 1) : sign === 0 ? ((i * 7) % 5) - 2 : sign * (1 + (i % 7) / 1000);
      for (const T of [1, 2, 5]) {
        const xt = x.subarray(0, T * C);
        const want = refMatmul("Q6_K", w, xt, T, C, OC);
        const got = run(b1, "Q6_K", w, xt, T, C, OC);
        expectClose(`Q6_K extremes sign ${sign} T=${T}`, got, want.y, (i) => RTOL * want.mag[i]! + ATOL);
        expect(Array.from(run(b2, "Q6_K", w, xt, T, C, OC))).toEqual(Array.from(got));
      }
    }
  });

  it("Q2_K / Q3_K, T = 1..9: values, third bits and scales at their extremes, and random bytes", () => {
    // One token and a few multiply each value by its sub-block scale in i16 (Q3_K: (-4) * (-32) =
    // 128 at the extreme) before dotting it with every token (matmul-small.ts). Per block: Q2_K scales
    // (low nibble scale, high nibble min) at 0, quants at 16, d, dmin at 80; Q3_K hmask at 0,
    // quants at 32, 12 scale bytes at 96, d at 108. Row 0: every bit set (values 3, scales 15 / 31,
    // mins 15); row 1: every bit clear (Q3_K: values -4, scales -32); rows 2, 3: the quants set and
    // the rest clear, and the reverse; rows 4..6 random bytes. T = 1..8 (one token takes the
    // 2-token kernel) must give the same bits as the first rows of T = 9 (the tiles).
    const [C, OC] = [512, 7];
    const nb = C / 256;
    for (const [type, bb, qAt, qEnd, dAt] of [
      ["Q2_K", 84, 16, 80, 80],
      ["Q3_K", 110, 32, 96, 108],
    ] as [GgmlTypeName, number, number, number, number][]) {
      const w = new Uint8Array(OC * nb * bb);
      let s = 9191;
      for (let i = 0; i < w.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        w[i] = s >>> 24;
      }
      for (let r = 0; r < OC; r++) {
        for (let b = 0; b < nb; b++) {
          const o = (r * nb + b) * bb;
          if (r < 4) {
            const quants = r === 0 || r === 2 ? 0xff : 0x00;
            const rest = r === 0 || r === 3 ? 0xff : 0x00;
            w.fill(rest, o, o + dAt);
            w.fill(quants, o + qAt, o + qEnd);
          }
          // d (and Q2_K's dmin): small positive halves.
          w[o + dAt] = 0x00;
          w[o + dAt + 1] = 0x20 + (b % 3);
          if (type === "Q2_K") {
            w[o + 82] = 0x00;
            w[o + 83] = 0x1c + (r % 2);
          }
        }
      }
      for (const sign of [1, -1, 0, 2]) {
        const x = new Float32Array(9 * C);
        for (let i = 0; i < x.length; i++)
          x[i] =
            sign === 2
              ? i % 2 === 0
                ? -1
                : 1
              : sign === 0
                ? ((i * 7) % 5) - 2
                : sign * (1 + (i % 7) / 1000);
        const nine = run(b1, type, w, x, 9, C, OC);
        for (const T of [1, 2, 3, 4, 5, 8]) {
          const xt = x.subarray(0, T * C);
          const want = refMatmul(type, w, xt, T, C, OC);
          const got = run(b1, type, w, xt, T, C, OC);
          expectClose(`${type} extremes sign ${sign} T=${T}`, got, want.y, (i) => RTOL * want.mag[i]! + ATOL);
          expect(Array.from(run(b2, type, w, xt, T, C, OC))).toEqual(Array.from(got));
          expect(Array.from(got), `${type} sign ${sign} T=${T} vs T=9`).toEqual(
            Array.from(nine.subarray(0, T * OC)),
          );
        }
      }
    }
  });

  it("legacy types, T = 1..8: nibbles and fifth bits at their extremes, and random bytes", () => {
    // Per block: d (and Q4_1 / Q5_1 m) f16, then (Q5_0 / Q5_1) qh, then the quants. Rows 0..3:
    // every quant byte 0xff / 0x00, with every fifth bit set / clear crosswise; the rest random.
    // Activations of one sign (every quant at +-127), mixed, and alternating +-127.
    const [C, OC] = [256, 7];
    const layout: [GgmlTypeName, number, number, number][] = [
      // type, block bytes, qh offset (-1: none), quants offset
      ["Q8_0", 34, -1, 2],
      ["Q4_0", 18, -1, 2],
      ["Q4_1", 20, -1, 4],
      ["Q5_0", 22, 2, 6],
      ["Q5_1", 24, 4, 8],
    ];
    for (const [type, bb, qhAt, qAt] of layout) {
      const nb = C / 32;
      const w = new Uint8Array(OC * nb * bb);
      let s = 4242;
      for (let i = 0; i < w.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        w[i] = s >>> 24;
      }
      for (let r = 0; r < OC; r++) {
        for (let b = 0; b < nb; b++) {
          const o = (r * nb + b) * bb;
          if (r < 4) w.fill(r % 2 === 0 ? 0xff : 0x00, o + qAt, o + bb);
          if (r < 4 && qhAt >= 0) w.fill(r < 2 === (r % 2 === 0) ? 0x00 : 0xff, o + qhAt, o + qhAt + 4);
          // d: small positive halves; m (Q4_1 / Q5_1): small halves of either sign.
          w[o] = 0x00;
          w[o + 1] = 0x20 + (b % 3);
          if (qAt === 4 || qAt === 8) {
            w[o + 2] = 0x00;
            w[o + 3] = (b % 2 === 0 ? 0x1c : 0x9c) + (r % 2);
          }
        }
      }
      // sign 2: -127, +127 alternating (the one-token Q5_0 / Q5_1 dots' largest |B - 256 A|).
      for (const sign of [1, -1, 0, 2]) {
        const x = new Float32Array(8 * C);
        for (let i = 0; i < x.length; i++)
          x[i] =
            sign === 2
              ? i % 2 === 0
                ? -1
                : 1
              : sign === 0
                ? ((i * 7) % 5) - 2
                : sign * (1 + (i % 7) / 1000);
        for (const T of [1, 2, 3, 4, 5, 8]) {
          const xt = x.subarray(0, T * C);
          const want = refMatmul(type, w, xt, T, C, OC);
          const got = run(b1, type, w, xt, T, C, OC);
          expectClose(`${type} extremes sign ${sign} T=${T}`, got, want.y, (i) => RTOL * want.mag[i]! + ATOL);
          expect(Array.from(run(b2, type, w, xt, T, C, OC))).toEqual(Array.from(got));
        }
      }
    }
  });

  it('activations: "ref" quantizes Q8_0 / Q8_1 activations with the reference quantizers', async () => {
    const b = await createWasmBackend({ threads: 1, activations: "ref" });
    try {
      for (const type of ["Q4_0", "Q4_1", "Q5_1", "Q8_0"] as GgmlTypeName[]) {
        const [T, C, OC] = [3, 512, 7];
        const w = quantizeMatrix(type, randomFloats(OC * C, 77, 1), OC, C);
        const x = randomFloats(T * C, 78, 1);
        const want = refMatmul(type, w, x, T, C, OC, "ref");
        const got = run(b, type, w, x, T, C, OC);
        expectClose(`${type} ref activations`, got, want.y, (i) => RTOL * want.mag[i]! + ATOL);
      }
    } finally {
      await b.dispose();
    }
  });

  it("F16: subnormal, zero and largest weights on the fast path; inf and NaN weights on the exact one", () => {
    const [C, OC] = [64, 3];
    for (const special of [false, true]) {
      for (const T of [1, 5]) {
        const h = new Uint16Array(OC * C);
        for (let i = 0; i < h.length; i++) h[i] = (i * 2654435761) & 0x7bff; // finite, both signs
        // subnormals, zeros, the largest half, in rows 0 and 1
        h.set([0x0001, 0x83ff, 0x0000, 0x8000, 0x7bff, 0xfbff, 0x0400, 0x8400], 0);
        h.set([0x03ff, 0x8001], C + 9);
        if (special) h.set([0x7c00, 0xfc00, 0x7e00], 2 * C + 5); // +inf, -inf, NaN in row 2
        const w = new Uint8Array(h.buffer);
        const x = randomFloats(T * C, 91 + T, 1);
        const want = refMatmul("F16", w, x, T, C, OC);
        const got = run(b1, "F16", w, x, T, C, OC);
        for (let i = 0; i < got.length; i++) {
          const wi = want.y[i]!;
          if (Number.isFinite(wi))
            expect(Math.abs(got[i]! - wi)).toBeLessThanOrEqual(RTOL * want.mag[i]! + ATOL);
          else expect(got[i]).toBe(wi);
        }
        expect(Array.from(run(b2, "F16", w, x, T, C, OC))).toEqual(Array.from(got));
      }
    }
  });

  it("rejects a type without a kernel and a C that is not a multiple of the block size", () => {
    const w = b1.alloc(1024);
    const x = b1.alloc(1024);
    const y = b1.alloc(1024);
    expect(() => b1.matmul("IQ4_NL", w, x, y, 1, 32, 1)).toThrow(/no WebAssembly kernel/);
    expect(() => b1.matmul("Q4_K", w, x, y, 1, 32, 1)).toThrow(/multiple of 256/);
    expect(() => b1.matmul("F32", w, x, y, 1, 512, 1)).toThrow(/needs 2048 bytes/);
    expect(() => b1.matmul("F32", w, x, x, 1, 32, 2)).toThrow(/overlaps/);
  });
});
