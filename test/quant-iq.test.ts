/**
 * Non-linear 4-bit types IQ4_NL and IQ4_XS: hand-computed blocks, quantize -> dequantize error
 * on random rows, dot vs its naive twin on random rows, and ggml's reference vectors (including
 * the ggml_quantize_chunk variant of IQ4_NL and its undefined bytes).
 */
import { describe, expect, it } from "vitest";
import { readF32 } from "../src/quant/c-float.ts";
import { bestIndex, bestIndexSearch, IQ_KERNELS, KVALUES, quantizeIQ4_NLChunk } from "../src/quant/iq.ts";
import { LEGACY_KERNELS } from "../src/quant/legacy.ts";
import {
  assertSameBits,
  assertSameBytes,
  compareRandomDots,
  makeRng,
  normal,
  randomRow,
} from "./helpers/quant-assert.ts";
import { loadQuantVectors, quantFixturesAvailable } from "./helpers/quant-fixtures.ts";
import { checkVectors } from "./helpers/quant-vectors.ts";

const NL = IQ_KERNELS.IQ4_NL!;
const XS = IQ_KERNELS.IQ4_XS!;
const Q8_0 = LEGACY_KERNELS.Q8_0!;

/** block_q8_K value i = d * qs[i] (f32 d | i8 qs[256] | i16 bsums[16]). */
function dequantizeQ8K(src: Uint8Array, dst: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const s = Math.floor(i / 256) * 292;
    dst[i] = readF32(src, s) * ((src[s + 4 + (i % 256)]! << 24) >> 24);
  }
}

/**
 * A Q8_K activation for tests: random int8 quants scaled by amax/127, bsums filled in. Not ggml's
 * quantizer (that is k-quants.ts); the dot only needs valid bytes of the layout.
 */
function makeQ8K(x: Float32Array, dst: Uint8Array, n: number): void {
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  for (let b = 0; b < n / 256; b++) {
    let amax = 0;
    for (let j = 0; j < 256; j++) amax = Math.max(amax, Math.abs(x[256 * b + j]!));
    const d = Math.fround(amax / 127);
    view.setFloat32(292 * b, d, true);
    for (let g = 0; g < 16; g++) {
      let sum = 0;
      for (let j = 16 * g; j < 16 * g + 16; j++) {
        const q = d ? Math.max(-127, Math.min(127, Math.round(x[256 * b + j]! / d))) : 0;
        view.setInt8(292 * b + 4 + j, q);
        sum += q;
      }
      view.setInt16(292 * b + 260 + 2 * g, sum, true);
    }
  }
}

describe("iq kernels: the table", () => {
  it("has IQ4_NL (x Q8_0) and IQ4_XS (x Q8_K) with all kernels", () => {
    expect(Object.keys(IQ_KERNELS).sort()).toEqual(["IQ4_NL", "IQ4_XS"]);
    expect(NL.dotActivation).toBe("Q8_0");
    expect(XS.dotActivation).toBe("Q8_K");
    for (const k of [NL, XS]) {
      for (const f of [k.dequantize, k.quantize, k.dot, k.dotRef]) expect(f).toBeTypeOf("function");
    }
  });
});

describe("iq kernels: level search", () => {
  it("the table lookup equals ggml's binary search with float32 differences", () => {
    // Every float32 within 2^12 ulps of each midpoint between levels and of each level, the ends,
    // random values, NaN and infinities.
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    const xs: number[] = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      0,
      -0,
      1e-30,
      -1e-30,
    ];
    const centres: number[] = [...KVALUES];
    for (let i = 0; i < 15; i++) centres.push((KVALUES[i]! + KVALUES[i + 1]!) / 2);
    for (const c of centres) {
      f[0] = c;
      const b = u[0]!;
      for (let k = -4096; k <= 4096; k++) {
        u[0] = b + k;
        xs.push(f[0]!);
      }
    }
    const rng = makeRng(3);
    for (let i = 0; i < 100000; i++) xs.push(Math.fround(300 * (rng() - 0.5)));
    for (const x of xs) {
      if (bestIndex(x) !== bestIndexSearch(x))
        throw new Error(`level of ${x}: ${bestIndex(x)} vs ${bestIndexSearch(x)}`);
    }
  });
});

describe("iq kernels: hand-computed blocks", () => {
  it("IQ4_NL dequantize and dot: value = d * KVALUES[index]", () => {
    // d = 0.5 (0x3800); byte j = 0x8f: value j = KVALUES[15] * 0.5 = 56.5, value j+16 =
    // KVALUES[8] * 0.5 = 0.5.
    const w = new Uint8Array([0x00, 0x38, ...new Array<number>(16).fill(0x8f)]);
    const y = new Float32Array(32);
    NL.dequantize!(w, y, 32);
    expect([...y]).toEqual([...new Array<number>(16).fill(56.5), ...new Array<number>(16).fill(0.5)]);
    // Against Q8_0 d = 1 with q = 1 for the first half and 2 for the second:
    // sumi = 16 * 113 * 1 + 16 * 1 * 2 = 1840, dot = (1 * 0.5) * 1840 = 920.
    const a = new Uint8Array([
      0x00,
      0x3c,
      ...new Array<number>(16).fill(1),
      ...new Array<number>(16).fill(2),
    ]);
    expect(NL.dot!(w, a, 32)).toBe(920);
    expect(NL.dotRef!(w, a, 32)).toBe(920);
  });

  it("IQ4_NL quantize of a block already on the grid reproduces it", () => {
    // x[j] = KVALUES[j % 16] / 127: max |x| is x[0] = -1, so the _ref scale is d = max / -127 =
    // 1/127 and every x/d lands exactly on its level; the least-squares refit keeps d (all
    // weights agree), stored as fp16(1/127) = 0x2008. Index j % 16 goes to nibble j < 16 ? low : high.
    const x = new Float32Array(32);
    for (let j = 0; j < 32; j++) x[j] = KVALUES[j % 16]! / 127;
    const q = new Uint8Array(18);
    NL.quantize!(x, q, 32);
    expect(q[0]! | (q[1]! << 8)).toBe(0x2008);
    expect([...q.subarray(2)]).toEqual(Array.from({ length: 16 }, (_, j) => j | (j << 4)));
  });

  it("IQ4_NL writes index 8 (+1 * d = 0) for an all-zero block, where ggml's _ref leaves garbage", () => {
    const q = new Uint8Array(18).fill(0x55);
    NL.quantize!(new Float32Array(32), q, 32);
    expect([...q]).toEqual([0, 0, ...new Array<number>(16).fill(0x88)]);
  });

  it("IQ4_XS dequantize: 6-bit sub-block scales split over scales_l and scales_h", () => {
    // d = 1; sub-block b gets ls = 32 + b + 1 (scale b + 1): low nibbles (b + 1) & 15 in scales_l,
    // high bits ((33 + b) >> 4) & 3 = 2 in scales_h (bits 2b..2b+1): scales_h = 0xaaaa.
    // All indices 9 (KVALUES[9] = 13): value in sub-block b = (b + 1) * 13.
    const w = new Uint8Array(136);
    w.set([0x00, 0x3c, 0xaa, 0xaa]);
    for (let b = 0; b < 8; b++) w[4 + (b >> 1)]! |= ((33 + b) & 15) << (4 * (b & 1));
    w.fill(0x99, 8);
    const y = new Float32Array(256);
    XS.dequantize!(w, y, 256);
    for (let i = 0; i < 256; i++) expect(y[i]).toBe((Math.floor(i / 32) + 1) * 13);
  });
});

describe("iq kernels: quantize -> dequantize error on random rows", () => {
  const n = 4096;
  const rng = makeRng(0x1a4);
  for (const [name, k, bytes] of [
    ["IQ4_NL", NL, (n / 32) * 18],
    ["IQ4_XS", XS, (n / 256) * 136],
    ["IQ4_NL chunk", { ...NL, quantize: quantizeIQ4_NLChunk }, (n / 32) * 18],
  ] as const) {
    it(`${name}: relative RMS error of normal rows under 0.09, each value within 20% of its block amax`, () => {
      for (const dist of ["normal", "uniform", "outliers", "small"] as const) {
        const x = randomRow(rng, n, dist);
        const q = new Uint8Array(bytes);
        k.quantize!(x, q, n);
        const y = new Float32Array(n);
        k.dequantize!(q, y, n);
        let e = 0;
        let s = 0;
        for (let b = 0; b < n; b += 32) {
          let amax = 0;
          for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(x[j]!));
          // NOTE: IQ4_XS stores each sub-block scale as a 6-bit multiple of d = (largest scale)/32:
          // rounding it costs up to d/2 per unit of level, i.e. about the super-block's amax/64.
          let superMax = 0;
          const sb = b - (b % 256);
          for (let j = sb; j < sb + 256; j++) superMax = Math.max(superMax, Math.abs(x[j]!));
          const bound = 0.2 * amax + (name === "IQ4_XS" ? (1.1 * superMax) / 64 : 0);
          for (let j = b; j < b + 32; j++) {
            const err = Math.abs(x[j]! - y[j]!);
            // The grid's widest gap is 24 of 127 (about amax/10 around it), plus the fp16 scale.
            if (!(err <= bound)) throw new Error(`${name} ${dist} [${j}]: ${x[j]} -> ${y[j]}`);
            e += err ** 2;
            s += x[j]! ** 2;
          }
        }
        // Measured 0.078 (IQ4_NL), 0.077 (IQ4_XS) on normal rows.
        if (dist === "normal") expect(Math.sqrt(e / s)).toBeLessThan(0.09);
      }
    });
  }

  it("the chunk variant (scale search) has no larger squared error than _ref on a normal row", () => {
    const x = randomRow(rng, n, "normal");
    const err = (quantize: (x: Float32Array, q: Uint8Array, n: number) => void) => {
      const q = new Uint8Array((n / 32) * 18);
      quantize(x, q, n);
      const y = new Float32Array(n);
      NL.dequantize!(q, y, n);
      return x.reduce((acc, v, i) => acc + (v - y[i]!) ** 2, 0);
    };
    expect(err(quantizeIQ4_NLChunk)).toBeLessThanOrEqual(err(NL.quantize!));
  });
});

describe("iq kernels: dot vs dotRef on random rows", () => {
  it("IQ4_NL x Q8_0", () => {
    const c = {
      kernels: NL,
      rowBytes: (n: number) => (n / 32) * 18,
      actBytes: (n: number) => (n / 32) * 34,
      quantizeAct: Q8_0.quantize!,
      dequantizeAct: Q8_0.dequantize!,
      steps: (n: number) => n / 32,
    };
    compareRandomDots(c, 32, 20, 1, "IQ4_NL");
    compareRandomDots(c, 2048, 8, 2, "IQ4_NL");
  });

  it("IQ4_XS x Q8_K", () => {
    const c = {
      kernels: XS,
      rowBytes: (n: number) => (n / 256) * 136,
      actBytes: (n: number) => (n / 256) * 292,
      quantizeAct: makeQ8K,
      dequantizeAct: dequantizeQ8K,
      steps: (n: number) => n / 32,
    };
    compareRandomDots(c, 256, 10, 1, "IQ4_XS");
    compareRandomDots(c, 2048, 6, 2, "IQ4_XS");
  });

  it("IQ4_XS against a hand-made Q8_K row: d4d8 * (ls - 32) * sumi per sub-block", () => {
    const rng = makeRng(5);
    const x = Float32Array.from({ length: 256 }, () => normal(rng));
    const w = new Uint8Array(136);
    XS.quantize!(x, w, 256);
    // Activation: d = 0.5, all quants 2 -> every value 1: the dot is the sum of the dequantized row.
    const a = new Uint8Array(292);
    new DataView(a.buffer).setFloat32(0, 0.5, true);
    a.fill(2, 4, 260);
    const y = new Float32Array(256);
    XS.dequantize!(w, y, 256);
    const sum = y.reduce((s, v) => s + v, 0);
    expect(Math.abs(XS.dot!(w, a, 256) - sum)).toBeLessThan(1e-5 * y.reduce((s, v) => s + Math.abs(v), 0));
  });
});

describe.skipIf(!quantFixturesAvailable())("iq kernels: ggml reference vectors", () => {
  const vectors = quantFixturesAvailable() ? loadQuantVectors() : new Map();
  describe("IQ4_NL", () => {
    checkVectors(vectors.get("IQ4_NL")!, NL, { activation: Q8_0, steps: 256 / 32 });
    it("quantizeIQ4_NLChunk gives ggml_quantize_chunk's bytes and floats", () => {
      for (const r of vectors.get("IQ4_NL")!.rows) {
        const q = new Uint8Array(144);
        quantizeIQ4_NLChunk(r.input, q, 256);
        assertSameBytes(q, r.quantChunk!, `IQ4_NL row ${r.index} chunk`);
        const y = new Float32Array(256);
        NL.dequantize!(q, y, 256);
        assertSameBits(y, r.dequantChunk!, `IQ4_NL row ${r.index} chunk dequantize`);
      }
    });
  });
  describe("IQ4_XS", () => {
    checkVectors(vectors.get("IQ4_XS")!, XS, { activationDequantize: dequantizeQ8K, steps: 256 / 32 });
  });
});
