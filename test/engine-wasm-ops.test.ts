/**
 * WasmBackend's non-matmul kernels against plain TypeScript twins (test/helpers/
 * engine-wasm-reference.ts; ggml's float32 order where ggml is exact, float64 otherwise), with
 * explicit tolerances: rmsNorm, rope (normal and NEOX, with and without frequency factors, scaled),
 * attention (causal, GQA, several positions, T = 1 and T > 1, 1 and 2 threads), softmax, swiglu;
 * add, addBias, copy and getRow exactly.
 * Not here: matmul (engine-wasm-matmul.test.ts), activation quantizers (engine-wasm-quantize.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Buf } from "../src/engine/backend.ts";
import { createWasmBackend, type WasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import { KERNELS } from "../src/quant/index.ts";
import type { GgmlTypeName } from "../src/util/ggml-types.ts";
import {
  expectClose,
  quantizeMatrix,
  randomFloats,
  refAttention,
  refRmsNorm,
  refRope,
  refSoftmax,
} from "./helpers/engine-wasm-reference.ts";

const fr = Math.fround;

let b1: WasmBackend;
let b2: WasmBackend;

beforeAll(async () => {
  b1 = await createWasmBackend({ threads: 1 });
  b2 = await createWasmBackend({ threads: 2, minParallelWork: 0 });
});

afterAll(async () => {
  await b1?.dispose();
  await b2?.dispose();
});

function put(b: WasmBackend, a: Float32Array): Buf {
  return b.upload(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

describe("rmsNorm", () => {
  // ggml's own order (float32 squares summed in double): a few ulp apart at most.
  const tol = (want: Float32Array) => (i: number) => 4e-7 * Math.abs(want[i]!) + 1e-30;
  for (const [T, C] of [
    [1, 4096],
    [5, 288],
    [3, 7],
  ] as const) {
    it(`T=${T} C=${C} within 4e-7 relative, in place too`, () => {
      const x = randomFloats(T * C, T * 31 + C, 3);
      const w = randomFloats(C, C, 1);
      const want = refRmsNorm(x, w, T, C, 1e-5);
      const xb = put(b1, x);
      const wb = put(b1, w);
      const ob = b1.alloc(T * C * 4);
      b1.rmsNorm(xb, wb, ob, T, C, 1e-5);
      expectClose("rmsNorm", b1.f32(ob), want, tol(want));
      b1.rmsNorm(xb, wb, xb, T, C, 1e-5);
      expectClose("rmsNorm in place", b1.f32(xb), want, tol(want));
    });
  }
});

describe("rope", () => {
  const cases = [
    { neox: false, ff: false, nRot: 64, headDim: 64, base: 10000, scale: 1 },
    { neox: true, ff: false, nRot: 64, headDim: 64, base: 10000, scale: 1 },
    { neox: false, ff: true, nRot: 128, headDim: 128, base: 500000, scale: 1 },
    { neox: true, ff: true, nRot: 128, headDim: 128, base: 500000, scale: 1 },
    { neox: true, ff: false, nRot: 32, headDim: 80, base: 10000, scale: 0.25 },
    { neox: false, ff: false, nRot: 16, headDim: 48, base: 1e6, scale: 0.5 },
  ];
  for (const c of cases) {
    const name = `${c.neox ? "neox" : "normal"}${c.ff ? " + freq factors" : ""} nRot=${c.nRot} headDim=${c.headDim} scale=${c.scale}`;
    it(`${name} within 2e-6 absolute (inputs ~1)`, () => {
      const T = 5;
      const nHeads = 3;
      const x = randomFloats(T * nHeads * c.headDim, c.nRot + c.headDim, 1);
      const positions = Int32Array.from([0, 1, 17, 1000, 40000]);
      const ff = c.ff
        ? Float32Array.from({ length: c.nRot / 2 }, (_, i) => (i < c.nRot / 8 ? 1 : 1 + i / 4))
        : undefined;
      const want = refRope(x, T, nHeads, c.headDim, positions, c.nRot, c.base, c.scale, c.neox, ff);
      const xb = put(b1, x);
      const ffb = ff ? put(b1, ff) : undefined;
      b1.rope(xb, T, nHeads, c.headDim, positions, {
        nRot: c.nRot,
        freqBase: c.base,
        freqScale: c.scale,
        neox: c.neox,
        ...(ffb ? { freqFactors: ffb } : {}),
      });
      expectClose(`rope ${name}`, b1.f32(xb), want, () => 2e-6);
      // Dimensions past nRot are untouched, bit for bit.
      const got = b1.f32(xb);
      for (let i = 0; i < x.length; i++) if (i % c.headDim >= c.nRot) expect(got[i]).toBe(x[i]);
    });
  }
});

describe("attention", () => {
  const cases = [
    { T: 1, pos0: 0, nHead: 4, nHeadKv: 4, headDim: 64 },
    { T: 1, pos0: 37, nHead: 8, nHeadKv: 2, headDim: 64 },
    { T: 1, pos0: 300, nHead: 6, nHeadKv: 3, headDim: 48 },
    { T: 7, pos0: 0, nHead: 4, nHeadKv: 1, headDim: 32 },
    { T: 7, pos0: 20, nHead: 6, nHeadKv: 2, headDim: 128 },
    { T: 3, pos0: 5, nHead: 2, nHeadKv: 2, headDim: 18 },
  ];
  for (const c of cases) {
    const name = `T=${c.T} pos0=${c.pos0} nHead=${c.nHead} nHeadKv=${c.nHeadKv} headDim=${c.headDim}`;
    it(`${name} within 2e-6 absolute (values ~1), 1 and 2 threads equal`, () => {
      const n = c.pos0 + c.T;
      const nCtx = n + 3;
      const q = randomFloats(c.T * c.nHead * c.headDim, n, 1);
      const k = randomFloats(nCtx * c.nHeadKv * c.headDim, n + 1, 1);
      const v = randomFloats(nCtx * c.nHeadKv * c.headDim, n + 2, 1);
      const want = refAttention(q, k, v, c.T, c.pos0, c.nHead, c.nHeadKv, c.headDim);
      const outs: Float32Array[] = [];
      for (const b of [b1, b2]) {
        const ob = b.alloc(q.byteLength);
        b.attention(put(b, q), put(b, k), put(b, v), ob, c.T, c.pos0, c.nHead, c.nHeadKv, c.headDim);
        outs.push(b.f32(ob).slice());
      }
      expectClose(`attention ${name}`, outs[0]!, want, () => 2e-6);
      expect(Array.from(outs[1]!)).toEqual(Array.from(outs[0]!));
    });
  }

  it("takes an explicit scale", () => {
    const q = randomFloats(2 * 4 * 16, 1, 1);
    const k = randomFloats(5 * 2 * 16, 2, 1);
    const v = randomFloats(5 * 2 * 16, 3, 1);
    const want = refAttention(q, k, v, 2, 3, 4, 2, 16, 0.3);
    const ob = b1.alloc(q.byteLength);
    b1.attention(put(b1, q), put(b1, k), put(b1, v), ob, 2, 3, 4, 2, 16, 0.3);
    expectClose("attention scale 0.3", b1.f32(ob), want, () => 2e-6);
  });
});

describe("softmax", () => {
  for (const [rows, n] of [
    [1, 32000],
    [4, 37],
    [3, 1],
  ] as const) {
    it(`${rows} x ${n} within 1e-6 relative`, () => {
      const x = randomFloats(rows * n, n, 6);
      x[0] = -200; // exp underflows to 0
      const want = refSoftmax(x, rows, n);
      const xb = put(b1, x);
      b1.softmax(xb, rows, n);
      expectClose(`softmax ${rows}x${n}`, b1.f32(xb), want, (i) => 1e-6 * want[i]! + 1e-37);
    });
  }
});

describe("elementwise", () => {
  it("swiglu within 1e-6 relative of silu(g) * u in float64", () => {
    const n = 1027;
    const g = randomFloats(n, 1, 8);
    const u = randomFloats(n, 2, 1);
    g[0] = -100;
    g[1] = 100;
    const want = g.map((v, i) => fr((v / (1 + Math.exp(-v))) * u[i]!));
    const gb = put(b1, g);
    b1.swiglu(gb, put(b1, u), n);
    expectClose("swiglu", b1.f32(gb), want, (i) => 1e-6 * Math.abs(want[i]!) + 1e-30);
  });

  it("add, addBias and copy are exact", () => {
    const T = 3;
    const C = 131;
    const a = randomFloats(T * C, 1, 1);
    const c = randomFloats(T * C, 2, 1);
    const bias = randomFloats(C, 3, 1);
    const ab = put(b1, a);
    b1.add(ab, put(b1, c), T * C);
    expect(Array.from(b1.f32(ab))).toEqual(Array.from(a.map((v, i) => fr(v + c[i]!))));
    const bb = put(b1, a);
    b1.addBias(bb, put(b1, bias), T, C);
    expect(Array.from(b1.f32(bb))).toEqual(Array.from(a.map((v, i) => fr(v + bias[i % C]!))));
    const dst = b1.alloc(T * C * 4);
    b1.copy(ab, dst, 10, 5, 7);
    expect(Array.from(b1.f32(dst).subarray(7, 17))).toEqual(Array.from(b1.f32(ab).subarray(5, 15)));
  });
});

describe("getRow", () => {
  const types: GgmlTypeName[] = [
    "F32",
    "F16",
    "BF16",
    "Q8_0",
    "Q4_0",
    "Q4_1",
    "Q5_0",
    "Q5_1",
    "Q2_K",
    "Q3_K",
    "Q4_K",
    "Q5_K",
    "Q6_K",
  ];
  for (const type of types) {
    it(`${type}: equals src/quant's dequantize bit for bit`, () => {
      const V = 5;
      const C = 512;
      const e = quantizeMatrix(type, randomFloats(V * C, 9, 1), V, C);
      const eb = b1.upload(e);
      const out = b1.alloc((C + 3) * 4);
      b1.getRow(type, eb, 3, C, out, 3);
      const rb = e.length / V;
      const want = new Float32Array(C);
      KERNELS[type]!.dequantize!(e.subarray(3 * rb, 4 * rb), want, C);
      expect(Array.from(b1.f32(out).subarray(3))).toEqual(Array.from(want));
    });
  }
});
