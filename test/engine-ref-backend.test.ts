/**
 * RefBackend kernels against hand-computed values and float64 formulas: memory, matmul for every
 * weight type (through the activation quantizers), embedding rows, RMS norm, RoPE (normal, NEOX,
 * frequency factors, linear scaling), causal GQA attention, softmax, SwiGLU, add, bias, copy; and
 * the x86 activation quantizers against ggml's reference ones.
 */
import { describe, expect, it } from "vitest";
import type { Buf } from "../src/engine/backend.ts";
import {
  activationQuantizer,
  quantizeQ8_0X86,
  quantizeQ8_1X86,
} from "../src/engine/kernels/ref/activations.ts";
import { RefBackend } from "../src/engine/kernels/ref/backend.ts";
import { dequantize, KERNELS, quantize } from "../src/quant/index.ts";
import { bytesOf } from "../src/util/bytes.ts";
import { GgmlType, type GgmlTypeName, requireGgmlType } from "../src/util/ggml-types.ts";
import { normalRng } from "./helpers/engine-tiny-model.ts";

const upload = (be: RefBackend, a: Float32Array): Buf => be.upload(bytesOf(a));
const randn = (n: number, seed: number, std = 1) => {
  const r = normalRng(seed);
  return Float32Array.from({ length: n }, () => r() * std);
};
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("memory", () => {
  it("aligns allocations to 64 bytes and keeps data when it grows", () => {
    const be = new RefBackend();
    const a = be.upload(Uint8Array.of(1, 2, 3));
    const b = be.alloc(10);
    expect(a.offset % 64).toBe(0);
    expect(b.offset % 64).toBe(0);
    expect(b.offset).toBeGreaterThanOrEqual(a.offset + 3);
    be.alloc(3 << 20); // forces growth
    expect([...be.u8(a)]).toEqual([1, 2, 3]);
    expect(be.usedBytes()).toBeGreaterThanOrEqual(3 << 20);
  });
});

describe("matmul", () => {
  const C = 256;
  const OC = 7;
  const T = 3;
  const TYPES: GgmlTypeName[] = [
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
    "IQ4_NL",
    "IQ4_XS",
  ];
  it.each(TYPES)("%s: equals the float64 dot of the dequantized weight and quantized activation", (type) => {
    const be = new RefBackend();
    const info = requireGgmlType(GgmlType[type]);
    const w = randn(OC * C, 1, 0.1);
    const x = randn(T * C, 2);
    const wBytes = type === "F32" ? bytesOf(w) : quantize(info, w);
    const wDeq = dequantize(info, wBytes, OC * C);
    const y = be.alloc(T * OC * 4);
    be.matmul(type, be.upload(wBytes), upload(be, x), y, T, C, OC);
    const got = be.f32(y);
    const act = KERNELS[type]!.dotActivation!;
    const actInfo = requireGgmlType(GgmlType[act]);
    for (let t = 0; t < T; t++) {
      const xr = x.subarray(t * C, (t + 1) * C);
      // The activation as the dot sees it (F32 weights: not rounded at all).
      const xBytes = act === "F32" ? bytesOf(xr) : qAct(act, xr);
      const xq = act === "F32" ? xr : dequantize(actInfo, xBytes, C);
      for (let o = 0; o < OC; o++) {
        let ref = 0;
        for (let i = 0; i < C; i++) ref += wDeq[o * C + i]! * xq[i]!;
        if (act === "Q8_1") {
          // Q4_1/Q5_1 dots add min * s, s = fp16(d * sum(q)) of the activation block, not the
          // exact block sum: correct the float64 reference by the rounding of s.
          for (let b = 0; b < C / 32; b++) {
            const min = f16At(wBytes, o * (C / 32) * info.bytesPerBlock + b * info.bytesPerBlock + 2);
            let sum = 0;
            for (let i = 0; i < 32; i++) sum += xq[b * 32 + i]!;
            ref += min * (f16At(xBytes, b * 36 + 2) - sum);
          }
        }
        expect(Math.abs(got[t * OC + o]! - ref), `${type} t ${t} o ${o}`).toBeLessThan(
          2e-5 * (1 + Math.abs(ref)),
        );
      }
    }
  });

  function f16At(b: Uint8Array, off: number): number {
    return dequantize(requireGgmlType(GgmlType.F16), b.subarray(off, off + 2), 1)[0]!;
  }

  function qAct(act: GgmlTypeName, x: Float32Array): Uint8Array {
    const info = requireGgmlType(GgmlType[act]);
    const out = new Uint8Array(info.bytesPerBlock * (x.length / info.blockSize));
    activationQuantizer(act, "x86")!(x, out, x.length);
    return out;
  }

  it("rejects a type without a dot kernel", () => {
    const be = new RefBackend();
    const b = be.alloc(1024);
    expect(() => be.matmul("I8", b, b, b, 1, 32, 1)).toThrow(/I8/);
  });
});

describe("activation quantizers", () => {
  it("x86 Q8_0/Q8_1 round halves to even with id = 127/amax; the reference rounds them away from zero", () => {
    // amax 127 gives d = 1 and id = 1 on both paths, so 52.5 and -3.5 are exact ties.
    const x = new Float32Array(32);
    x[0] = 127;
    x[1] = 52.5;
    x[2] = -3.5;
    x[3] = 2.4;
    const ref = quantize(requireGgmlType(GgmlType.Q8_0), x);
    const x86 = new Uint8Array(34);
    quantizeQ8_0X86(x, x86, 32);
    const qs = (b: Uint8Array) => [...new Int8Array(b.buffer, b.byteOffset + 2, 4)];
    expect(qs(ref)).toEqual([127, 53, -4, 2]);
    expect(qs(x86)).toEqual([127, 52, -4, 2]);
    const x86q1 = new Uint8Array(36);
    quantizeQ8_1X86(x, x86q1, 32);
    expect([...new Int8Array(x86q1.buffer, 4, 4)]).toEqual([127, 52, -4, 2]);
    // s = d * sum(q) as f16: 127 + 52 - 4 + 2 = 177
    expect(dequantize(requireGgmlType(GgmlType.F16), x86q1.subarray(2, 4), 1)[0]).toBe(177);
  });

  it("x86 and reference agree away from ties", () => {
    const x = randn(4096, 3);
    for (const [act, bytes] of [
      ["Q8_0", 34],
      ["Q8_1", 36],
    ] as const) {
      const a = new Uint8Array((4096 / 32) * bytes);
      const b = new Uint8Array((4096 / 32) * bytes);
      activationQuantizer(act, "x86")!(x, a, 4096);
      activationQuantizer(act, "ref")!(x, b, 4096);
      let differ = 0;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differ++;
      expect(differ).toBeLessThan(4);
    }
  });
});

describe("elementwise kernels", () => {
  it("getRow dequantizes one embedding row", () => {
    const be = new RefBackend();
    const info = requireGgmlType(GgmlType.Q4_K);
    const e = randn(5 * 256, 4);
    const bytes = quantize(info, e);
    const out = be.alloc(2 * 256 * 4);
    be.getRow("Q4_K", be.upload(bytes), 3, 256, out, 256);
    expect(be.f32(out).subarray(256)).toEqual(dequantize(info, bytes, 5 * 256).subarray(3 * 256, 4 * 256));
  });

  it("rmsNorm: x / sqrt(mean(x²) + eps) * w", () => {
    const be = new RefBackend();
    const x = upload(be, Float32Array.of(1, 2, 3, 4, -1, 0, 0, 1));
    const w = upload(be, Float32Array.of(1, 0.5, 2, 1));
    const out = be.alloc(32);
    be.rmsNorm(x, w, out, 2, 4, 1e-5);
    const s1 = 1 / Math.sqrt(30 / 4 + 1e-5);
    const s2 = 1 / Math.sqrt(2 / 4 + 1e-5);
    const want = [1 * s1, 2 * s1 * 0.5, 3 * s1 * 2, 4 * s1, -1 * s2, 0, 0, s2];
    expect(maxAbsDiff(be.f32(out), want)).toBeLessThan(1e-6);
    be.rmsNorm(x, w, x, 2, 4, 1e-5); // in place
    expect(maxAbsDiff(be.f32(x), want)).toBeLessThan(1e-6);
  });

  /** RoPE in float64: the formula, not ggml's float32 recurrence. */
  function ropeRef(
    x: Float32Array,
    nHeads: number,
    headDim: number,
    pos: number[],
    nRot: number,
    base: number,
    scale: number,
    neox: boolean,
    ff?: Float32Array,
  ) {
    const y = Float64Array.from(x);
    for (let t = 0; t < pos.length; t++) {
      for (let h = 0; h < nHeads; h++) {
        for (let i = 0; i < nRot / 2; i++) {
          const theta = (scale * pos[t]! * base ** ((-2 * i) / nRot)) / (ff ? ff[i]! : 1);
          const o = (t * nHeads + h) * headDim;
          const i0 = o + (neox ? i : 2 * i);
          const i1 = neox ? i0 + nRot / 2 : i0 + 1;
          const a = x[i0]!;
          const b = x[i1]!;
          y[i0] = a * Math.cos(theta) - b * Math.sin(theta);
          y[i1] = a * Math.sin(theta) + b * Math.cos(theta);
        }
      }
    }
    return y;
  }

  it.each([
    { neox: false, nRot: 16, scale: 1, ff: false },
    { neox: true, nRot: 16, scale: 1, ff: false },
    { neox: false, nRot: 8, scale: 0.25, ff: false },
    { neox: true, nRot: 16, scale: 1, ff: true },
  ])("rope neox=$neox nRot=$nRot scale=$scale factors=$ff", ({ neox, nRot, scale, ff }) => {
    const be = new RefBackend();
    const T = 3;
    const nHeads = 2;
    const headDim = 16;
    const x = randn(T * nHeads * headDim, 5);
    const pos = [0, 7, 100];
    const factors = ff ? Float32Array.from({ length: nRot / 2 }, (_, i) => 1 + i) : undefined;
    const buf = upload(be, x);
    be.rope(buf, T, nHeads, headDim, Int32Array.from(pos), {
      nRot,
      freqBase: 10000,
      freqScale: scale,
      neox,
      ...(factors ? { freqFactors: upload(be, factors) } : {}),
    });
    const want = ropeRef(x, nHeads, headDim, pos, nRot, 10000, scale, neox, factors);
    expect(maxAbsDiff(be.f32(buf), want)).toBeLessThan(1e-4);
    // position 0 is the identity; dimensions past nRot are untouched
    expect(be.f32(buf).subarray(0, nHeads * headDim)).toEqual(x.subarray(0, nHeads * headDim));
    if (nRot < headDim) expect(be.f32(buf)[headDim * nHeads + nRot]).toBe(x[headDim * nHeads + nRot]);
  });

  it("attention: causal, GQA head mapping, against float64", () => {
    const be = new RefBackend();
    const nHead = 4;
    const nHeadKv = 2;
    const headDim = 8;
    const nCtx = 16;
    const pos0 = 3;
    const T = 4;
    const kvDim = nHeadKv * headDim;
    const q = randn(T * nHead * headDim, 6);
    const k = randn(nCtx * kvDim, 7);
    const v = randn(nCtx * kvDim, 8);
    const out = be.alloc(T * nHead * headDim * 4);
    const kb = upload(be, k);
    const vb = upload(be, v);
    be.attention(upload(be, q), kb, vb, out, T, pos0, nHead, nHeadKv, headDim);
    const want = new Float64Array(T * nHead * headDim);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < nHead; h++) {
        const kvh = Math.floor(h / 2);
        const s: number[] = [];
        for (let j = 0; j <= pos0 + t; j++) {
          let d = 0;
          for (let i = 0; i < headDim; i++)
            d += q[(t * nHead + h) * headDim + i]! * k[j * kvDim + kvh * headDim + i]!;
          s.push(d / Math.sqrt(headDim));
        }
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j < e.length; j++) {
          for (let i = 0; i < headDim; i++) {
            want[(t * nHead + h) * headDim + i]! += (e[j]! / sum) * v[j * kvDim + kvh * headDim + i]!;
          }
        }
      }
    }
    const got = be.f32(out).slice();
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
    // Future positions of the cache do not matter.
    be.f32(kb).fill(99, (pos0 + T) * kvDim);
    be.f32(vb).fill(99, (pos0 + T) * kvDim);
    be.attention(upload(be, q), kb, vb, out, T, pos0, nHead, nHeadKv, headDim);
    expect(be.f32(out)).toEqual(got);
  });

  it("softmax, swiglu, add, addBias, copy", () => {
    const be = new RefBackend();
    const x = upload(be, Float32Array.of(1, 2, 3, 0, 0, 1000));
    be.softmax(x, 2, 3);
    const e = [Math.exp(-2), Math.exp(-1), 1];
    const z = e[0]! + e[1]! + e[2]!;
    expect(maxAbsDiff(be.f32(x), [e[0]! / z, e[1]! / z, e[2]! / z, 0, 0, 1])).toBeLessThan(1e-7);

    const g = upload(be, Float32Array.of(-2, 0, 1, 3));
    const u = upload(be, Float32Array.of(1, 5, 2, -1));
    be.swiglu(g, u, 4);
    const silu = (v: number) => v / (1 + Math.exp(-v));
    expect(maxAbsDiff(be.f32(g), [silu(-2), 0, 2 * silu(1), -silu(3)])).toBeLessThan(1e-6);

    const a = upload(be, Float32Array.of(1, 2, 3, 4, 5, 6));
    be.add(a, upload(be, Float32Array.of(1, 1, 1, 1, 1, 1)), 6);
    be.addBias(a, upload(be, Float32Array.of(10, 20, 30)), 2, 3);
    expect([...be.f32(a)]).toEqual([12, 23, 34, 15, 26, 37]);
    const dst = be.alloc(6 * 4);
    be.copy(a, dst, 2, 1, 3);
    expect([...be.f32(dst)]).toEqual([0, 0, 0, 23, 34, 0]);
  });
});
