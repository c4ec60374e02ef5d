/**
 * Plain TypeScript reference twins of the WebAssembly kernels (src/engine/kernels/wasm) and the
 * comparison helper of their conformance tests. Matrix products use src/quant's kernels, which
 * are bit-exact with ggml's scalar code (activation quantizers and vec_dot); the other ops follow
 * the ggml CPU ops in float32 (Math.fround) or float64 where ggml uses double.
 * Not here: the tests (test/engine-wasm-*.test.ts).
 */
import { appendFileSync } from "node:fs";
import { type ActivationMode, activationQuantizer } from "../../src/engine/kernels/ref/activations.ts";
import { KERNELS } from "../../src/quant/index.ts";
import type { GgmlTypeName } from "../../src/util/ggml-types.ts";
import { ggmlTypeByName, rowBytes } from "../../src/util/ggml-types.ts";

const fr = Math.fround;

/** mulberry32: a small seeded generator, floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values roughly normal(0, scale) (sum of uniforms), seeded. */
export function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() + r() + r() - 1.5) * 2 * scale;
  return out;
}

/** w (OC,C) floats -> bytes of OC rows stored as `type` (src/quant's ggml quantizers). */
export function quantizeMatrix(type: GgmlTypeName, w: Float32Array, OC: number, C: number): Uint8Array {
  const info = ggmlTypeByName(type)!;
  const rb = rowBytes(info, C);
  const out = new Uint8Array(OC * rb);
  const q = KERNELS[type]!.quantize!;
  for (let r = 0; r < OC; r++) q(w.subarray(r * C, (r + 1) * C), out.subarray(r * rb, (r + 1) * rb), C);
  return out;
}

export interface RefMatmul {
  /** y (T,OC), ggml's scalar vec_dot results. */
  y: Float32Array;
  /** Per output, the sum of |w_i * a_i| over the dequantized row and activation: the error scale. */
  mag: Float64Array;
}

/**
 * y (T,OC) = x (T,C) . w^T with w (OC,C) stored as `type`: the activation quantized to the
 * type's dotActivation (Q8_0 / Q8_1 as ggml-cpu's x86 build or its reference quantizers, `mode`;
 * kernels/ref/activations.ts) and src/quant's dot per row, as ggml's mul_mat does.
 */
export function refMatmul(
  type: GgmlTypeName,
  w: Uint8Array,
  x: Float32Array,
  T: number,
  C: number,
  OC: number,
  mode: ActivationMode = "x86",
): RefMatmul {
  const k = KERNELS[type]!;
  const actType = k.dotActivation!;
  const actInfo = ggmlTypeByName(actType)!;
  const info = ggmlTypeByName(type)!;
  const rb = rowBytes(info, C);
  const ab = rowBytes(actInfo, C);
  const y = new Float32Array(T * OC);
  const mag = new Float64Array(T * OC);
  const wf = new Float32Array(C);
  const af = new Float32Array(C);
  for (let t = 0; t < T; t++) {
    const act = new Uint8Array(ab);
    activationQuantizer(actType, mode)!(x.subarray(t * C, (t + 1) * C), act, C);
    KERNELS[actType]!.dequantize!(act, af, C);
    for (let r = 0; r < OC; r++) {
      const row = w.subarray(r * rb, (r + 1) * rb);
      y[t * OC + r] = k.dot!(row, act, C);
      k.dequantize!(row, wf, C);
      let m = 0;
      for (let i = 0; i < C; i++) m += Math.abs(wf[i]! * af[i]!);
      mag[t * OC + r] = m;
    }
  }
  return { y, mag };
}

/** rmsNorm as ggml: float32 squares summed in double, scale = 1/sqrtf(mean + eps), x*scale*w. */
export function refRmsNorm(
  x: Float32Array,
  w: Float32Array,
  T: number,
  C: number,
  eps: number,
): Float32Array {
  const out = new Float32Array(T * C);
  for (let t = 0; t < T; t++) {
    let sum = 0;
    for (let i = 0; i < C; i++) sum += fr(x[t * C + i]! * x[t * C + i]!);
    const mean = fr(sum / C);
    const scale = fr(1 / fr(Math.sqrt(fr(mean + eps))));
    for (let i = 0; i < C; i++) out[t * C + i] = fr(fr(x[t * C + i]! * scale) * w[i]!);
  }
  return out;
}

/** RoPE as ggml_rope_cache_init + rotate_pairs (ext_factor 0), in float32. */
export function refRope(
  x: Float32Array,
  T: number,
  nHeads: number,
  headDim: number,
  positions: Int32Array,
  nRot: number,
  freqBase: number,
  freqScale: number,
  neox: boolean,
  freqFactors?: Float32Array,
): Float32Array {
  const out = Float32Array.from(x);
  const half = nRot / 2;
  const thetaScale = fr(fr(freqBase) ** fr(-2 / nRot));
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  for (let t = 0; t < T; t++) {
    let theta = fr(positions[t]!);
    for (let i = 0; i < half; i++) {
      const ff = freqFactors ? freqFactors[i]! : 1;
      const th = fr(fr(freqScale) * fr(theta / ff));
      cos[i] = fr(Math.cos(th));
      sin[i] = fr(Math.sin(th));
      theta = fr(theta * thetaScale);
    }
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const i0 = base + (neox ? i : 2 * i);
        const i1 = neox ? i0 + half : i0 + 1;
        const x0 = x[i0]!;
        const x1 = x[i1]!;
        out[i0] = fr(fr(x0 * cos[i]!) - fr(x1 * sin[i]!));
        out[i1] = fr(fr(x0 * sin[i]!) + fr(x1 * cos[i]!));
      }
    }
  }
  return out;
}

/** Softmax of each row: exp(fround(x - max)) (ggml subtracts in float32) in float64. */
export function refSoftmax(x: Float32Array, rows: number, n: number): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) max = Math.max(max, x[r * n + i]!);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.exp(fr(x[r * n + i]! - max));
    for (let i = 0; i < n; i++) out[r * n + i] = Math.exp(fr(x[r * n + i]! - max)) / sum;
  }
  return out;
}

/** Causal GQA attention in float64: q (T,nHead,headDim), k/v (nCtx,nHeadKv,headDim). */
export function refAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  T: number,
  pos0: number,
  nHead: number,
  nHeadKv: number,
  headDim: number,
  scale = 1 / Math.sqrt(headDim),
): Float32Array {
  const out = new Float32Array(T * nHead * headDim);
  const group = nHead / nHeadKv;
  for (let t = 0; t < T; t++) {
    const n = pos0 + t + 1;
    for (let h = 0; h < nHead; h++) {
      const kh = Math.floor(h / group);
      const qo = (t * nHead + h) * headDim;
      const s = new Float64Array(n);
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < n; j++) {
        const ko = (j * nHeadKv + kh) * headDim;
        let d = 0;
        for (let i = 0; i < headDim; i++) d += q[qo + i]! * k[ko + i]!;
        s[j] = d * scale;
        max = Math.max(max, s[j]!);
      }
      let sum = 0;
      for (let j = 0; j < n; j++) {
        s[j] = Math.exp(s[j]! - max);
        sum += s[j]!;
      }
      for (let i = 0; i < headDim; i++) {
        let acc = 0;
        for (let j = 0; j < n; j++) acc += s[j]! * v[(j * nHeadKv + kh) * headDim + i]!;
        out[qo + i] = acc / sum;
      }
    }
  }
  return out;
}

export interface Diff {
  maxAbs: number;
  /** max |got - want| / tol(i): <= 1 passes. */
  worst: number;
}

/**
 * Compares got with want element by element against tol(i) (an absolute bound per element);
 * throws with the max difference and the first differing elements when any exceeds it.
 * Returns the max absolute difference and the worst ratio to the tolerance.
 */
export function expectClose(
  label: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: (i: number) => number,
): Diff {
  if (got.length !== want.length) throw new Error(`${label}: length ${got.length}, expected ${want.length}`);
  let maxAbs = 0;
  let worst = 0;
  const bad: string[] = [];
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const d = Math.abs(g - w);
    const ok = d <= tol(i) || (Number.isNaN(g) && Number.isNaN(w)) || g === w;
    if (!Number.isNaN(d)) {
      maxAbs = Math.max(maxAbs, d);
      worst = Math.max(worst, d / tol(i));
    }
    if (!ok && bad.length < 8) bad.push(`[${i}] got ${g} want ${w} (diff ${d}, tol ${tol(i)})`);
    if (!ok && bad.length === 0) bad.push(`[${i}] got ${g} want ${w}`);
  }
  // OWL_TOLERANCE_LOG=<file>: append each comparison's figures (how the README's numbers were taken).
  const log = process.env.OWL_TOLERANCE_LOG;
  if (log) appendFileSync(log, `${label}\tmax|diff| ${maxAbs.toExponential(2)}\t${worst.toFixed(3)}x tol\n`);
  if (bad.length > 0) {
    throw new Error(
      `${label}: max |diff| ${maxAbs}, ${(worst).toPrecision(3)}x the tolerance; first differing:\n  ${bad.join("\n  ")}`,
    );
  }
  return { maxAbs, worst };
}
