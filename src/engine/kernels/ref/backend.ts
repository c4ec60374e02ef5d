/**
 * RefBackend: the reference KernelBackend, plain TypeScript over one ArrayBuffer that grows by
 * copying (NOTE: not a resizable ArrayBuffer: V8 in Node 20 runs loops over views of those about
 * 3x slower). It is
 * the oracle the WebAssembly kernels (kernels/wasm) are tested against, so it favours clarity
 * over speed, and it follows the float32 arithmetic of ggml's CPU kernels step by step (each
 * function names the ggml-cpu function it follows). Where ggml's SIMD code sums in a different
 * order (f32 dot products, the exp approximation of ggml_v_expf), results differ in the last
 * bits; everything else is float32-exact.
 *
 * Not here: the forward pass (forward.ts), quantization kernels (src/quant, used for every
 * matrix product and embedding row).
 */
import { KERNELS } from "../../../quant/index.ts";
import type { QuantKernels } from "../../../quant/kernels.ts";
import { assert, OwlError } from "../../../util/errors.ts";
import { GgmlType, type GgmlTypeName, requireGgmlType, rowBytes } from "../../../util/ggml-types.ts";
import type { Buf, KernelBackend, RopeParams } from "../../backend.ts";
import { type ActivationMode, activationQuantizer } from "./activations.ts";

const fround = Math.fround;
const ALIGN = 64;

export interface RefBackendOptions {
  /** Upper bound of backend memory in bytes (default and maximum 4 GiB, V8's limit in Node 20). */
  maxBytes?: number;
  /** Bytes to allocate up front, so that loading does not copy memory while growing. */
  initialBytes?: number;
  /**
   * How activation rows are quantized before the dots: "x86" (default) as ggml-cpu's x86 build,
   * "ref" with ggml's reference quantizers; see activations.ts.
   */
  activations?: ActivationMode;
}

/** The kernels of a weight type that matmul needs, or an error naming what is missing. */
interface MatmulKernels {
  act: GgmlTypeName;
  quantizeAct: NonNullable<QuantKernels["quantize"]>;
  dot: NonNullable<QuantKernels["dot"]>;
}

export class RefBackend implements KernelBackend {
  readonly name = "ref";
  readonly threads = 1;
  private mem: ArrayBuffer;
  private readonly maxBytes: number;
  private used = 0;
  private readonly matmulKernels = new Map<GgmlTypeName, MatmulKernels>();
  private readonly activations: ActivationMode;
  /** Attention scores of one query row (grown on demand; JS memory, not backend memory). */
  private scores = new Float32Array(0);
  /** Output accumulator of one attention head (float64, as the sum is exact-ish). */
  private acc = new Float64Array(0);

  constructor(options: RefBackendOptions = {}) {
    this.maxBytes = Math.min(options.maxBytes ?? 2 ** 32, 2 ** 32);
    this.mem = new ArrayBuffer(
      Math.min(Math.ceil((options.initialBytes ?? 0) / ALIGN) * ALIGN, this.maxBytes),
    );
    this.activations = options.activations ?? "x86";
  }

  // ------------------------------------------------------------------------------- memory

  alloc(bytes: number): Buf {
    assert(Number.isInteger(bytes) && bytes >= 0, `alloc of ${bytes} bytes`);
    const offset = this.used;
    const end = offset + Math.ceil(bytes / ALIGN) * ALIGN;
    if (end > this.mem.byteLength) {
      if (end > this.maxBytes) {
        throw new OwlError(
          "ERR_INVALID_ARGUMENT",
          `the reference backend needs ${end} bytes but may use at most ${this.maxBytes}`,
          { hint: "use a smaller model or context", details: { need: end, max: this.maxBytes } },
        );
      }
      // Grow geometrically by copying: views taken before this call are stale afterwards.
      const grown = new ArrayBuffer(Math.min(this.maxBytes, Math.max(end, this.mem.byteLength * 2, 1 << 20)));
      new Uint8Array(grown).set(new Uint8Array(this.mem, 0, this.used));
      this.mem = grown;
    }
    this.used = end;
    return { offset, bytes };
  }

  upload(data: Uint8Array): Buf {
    const buf = this.alloc(data.byteLength);
    this.u8(buf).set(data);
    return buf;
  }

  f32(buf: Buf): Float32Array {
    return new Float32Array(this.mem, buf.offset, buf.bytes >>> 2);
  }

  u8(buf: Buf): Uint8Array {
    return new Uint8Array(this.mem, buf.offset, buf.bytes);
  }

  usedBytes(): number {
    return this.used;
  }

  async dispose(): Promise<void> {
    this.mem = new ArrayBuffer(0);
    this.used = 0;
  }

  /** A float view of `n` floats starting `offsetFloats` floats into `buf`. */
  private floats(buf: Buf, n: number, offsetFloats = 0): Float32Array {
    assert(
      (offsetFloats + n) * 4 <= buf.bytes,
      `view of ${n} floats at ${offsetFloats} in a ${buf.bytes}-byte buffer`,
    );
    return new Float32Array(this.mem, buf.offset + offsetFloats * 4, n);
  }

  // ------------------------------------------------------------------------------ kernels

  private kernelsOf(type: GgmlTypeName): MatmulKernels {
    let k = this.matmulKernels.get(type);
    if (k) return k;
    const w = KERNELS[type];
    const act = w?.dotActivation;
    const quantizeAct = act ? activationQuantizer(act, this.activations) : undefined;
    if (!w?.dot || !act || !quantizeAct) {
      throw new OwlError(
        "ERR_QUANT_UNSUPPORTED_TYPE",
        `matrix products with ${type} weights are not implemented`,
        {
          details: { type },
        },
      );
    }
    k = { act, quantizeAct, dot: w.dot };
    this.matmulKernels.set(type, k);
    return k;
  }

  /**
   * y (T,OC) = x (T,C) · wᵀ, w (OC,C) stored as `type`. Each activation row is first converted
   * to the weight type's vec_dot activation type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32) as
   * ggml-cpu's from_float does (activations.ts), then dotted with each weight row by the quant
   * module's dot: ggml_compute_forward_mul_mat's from_float + vec_dot (ggml-cpu.c).
   */
  matmul(type: GgmlTypeName, w: Buf, x: Buf, y: Buf, T: number, C: number, OC: number): void {
    if (type === "F32") {
      this.matmulF32(w, x, y, T, C, OC);
      return;
    }
    const k = this.kernelsOf(type);
    const info = requireGgmlType(GgmlType[type]);
    const wRow = rowBytes(info, C);
    const actInfo = requireGgmlType(GgmlType[k.act]);
    const act = new Uint8Array(rowBytes(actInfo, C));
    assert(wRow * OC <= w.bytes, `matmul ${type}: ${OC} rows of ${wRow} bytes exceed ${w.bytes}`);
    const wBytes = this.u8(w);
    for (let t = 0; t < T; t++) {
      k.quantizeAct(this.floats(x, C, t * C), act, C);
      const out = this.floats(y, OC, t * OC);
      for (let o = 0; o < OC; o++) {
        out[o] = k.dot(wBytes.subarray(o * wRow, (o + 1) * wRow), act, C);
      }
    }
  }

  /**
   * F32 weights: a plain loop, float32 products summed in float64, as ggml's scalar
   * ggml_vec_dot_f32 (bit-exact with ggml's generic CPU build). NOTE: its SIMD builds sum in
   * float32 lanes (and tinyBLAS for batches), so they agree to float rounding only.
   */
  private matmulF32(w: Buf, x: Buf, y: Buf, T: number, C: number, OC: number): void {
    const wv = this.floats(w, OC * C);
    for (let t = 0; t < T; t++) {
      const xv = this.floats(x, C, t * C);
      const out = this.floats(y, OC, t * OC);
      for (let o = 0, base = 0; o < OC; o++, base += C) {
        let sum = 0;
        for (let i = 0; i < C; i++) sum += fround(wv[base + i]! * xv[i]!);
        out[o] = sum;
      }
    }
  }

  /** out (C) = row `row` of e (V,C) stored as `type`, dequantized (ggml_compute_forward_get_rows). */
  getRow(type: GgmlTypeName, e: Buf, row: number, C: number, out: Buf, outOffsetFloats = 0): void {
    const dequantize = KERNELS[type]?.dequantize;
    if (!dequantize) {
      throw new OwlError("ERR_QUANT_UNSUPPORTED_TYPE", `cannot read embedding rows stored as ${type}`, {
        details: { type },
      });
    }
    const n = rowBytes(requireGgmlType(GgmlType[type]), C);
    assert((row + 1) * n <= e.bytes, `getRow ${row} past the end of the table`);
    dequantize(this.u8(e).subarray(row * n, (row + 1) * n), this.floats(out, C, outOffsetFloats), C);
  }

  /**
   * out (T,C) = x / sqrt(mean(x²) + eps) * w (C). ggml_compute_forward_rms_norm_f32: the squares
   * are float32, summed in float64; mean and scale are float32; then ggml_mul by the weight.
   */
  rmsNorm(x: Buf, w: Buf, out: Buf, T: number, C: number, eps: number): void {
    const wv = this.floats(w, C);
    const epsF = fround(eps);
    for (let t = 0; t < T; t++) {
      const xv = this.floats(x, C, t * C);
      const yv = this.floats(out, C, t * C);
      let sum = 0;
      for (let i = 0; i < C; i++) sum += fround(xv[i]! * xv[i]!);
      const mean = fround(sum / C);
      const scale = fround(1 / fround(Math.sqrt(fround(mean + epsF))));
      for (let i = 0; i < C; i++) yv[i] = fround(xv[i]! * scale) * wv[i]!;
    }
  }

  /**
   * RoPE in place on x (T, nHeads, headDim), following ggml_compute_forward_rope_flt and
   * ggml_rope_cache_init (ggml-cpu/ops.cpp) with ext_factor 0 and attn_factor 1:
   * theta_i = pos * theta_scale^i accumulated in float32, theta_scale = powf(base, -2/nRot),
   * divided by the frequency factor (llama3 rope_freqs) and multiplied by freqScale.
   * Normal mode rotates pairs (2i, 2i+1); NEOX rotates (i, i + nRot/2). Dimensions past nRot are
   * left as they are.
   */
  rope(x: Buf, T: number, nHeads: number, headDim: number, positions: Int32Array, p: RopeParams): void {
    const { nRot, neox } = p;
    assert(nRot % 2 === 0 && nRot <= headDim, `rope: nRot ${nRot} with headDim ${headDim}`);
    const half = nRot / 2;
    const thetaScale = fround(fround(p.freqBase) ** fround(-2 / nRot));
    const freqScale = fround(p.freqScale);
    const factors = p.freqFactors ? this.floats(p.freqFactors, half) : undefined;
    const cos = new Float32Array(half);
    const sin = new Float32Array(half);
    for (let t = 0; t < T; t++) {
      let theta = fround(positions[t]!);
      for (let i = 0; i < half; i++) {
        const ff = factors ? factors[i]! : 1;
        const angle = fround(freqScale * fround(theta / ff));
        cos[i] = Math.cos(angle);
        sin[i] = Math.sin(angle);
        theta = fround(theta * thetaScale);
      }
      const row = this.floats(x, nHeads * headDim, t * nHeads * headDim);
      for (let h = 0; h < nHeads; h++) {
        const base = h * headDim;
        for (let i = 0; i < half; i++) {
          // normal: (2i, 2i+1); neox: (i, i + nRot/2)
          const i0 = neox ? base + i : base + 2 * i;
          const i1 = neox ? i0 + half : i0 + 1;
          const x0 = row[i0]!;
          const x1 = row[i1]!;
          const c = cos[i]!;
          const s = sin[i]!;
          row[i0] = fround(x0 * c) - fround(x1 * s);
          row[i1] = fround(x0 * s) + fround(x1 * c);
        }
      }
    }
  }

  /**
   * Causal attention with GQA, as llama.cpp's non-flash path (build_attn_mha): kq = K·q,
   * soft_max_ext(kq * scale, causal mask), kqv = V·softmax. Query head h reads KV head
   * h / (nHead / nHeadKv). q (T, nHead, headDim); kCache, vCache (nCtx, nHeadKv, headDim) with
   * positions 0..pos0+T-1 filled; out (T, nHead, headDim).
   */
  attention(
    q: Buf,
    kCache: Buf,
    vCache: Buf,
    out: Buf,
    T: number,
    pos0: number,
    nHead: number,
    nHeadKv: number,
    headDim: number,
    scale = fround(1 / fround(Math.sqrt(headDim))), // llama.cpp: 1.0f/sqrtf(float(n_embd_head))
  ): void {
    assert(nHead % nHeadKv === 0, `attention: nHead ${nHead} is not a multiple of nHeadKv ${nHeadKv}`);
    const group = nHead / nHeadKv;
    const kvDim = nHeadKv * headDim;
    const nKv = pos0 + T;
    const k = this.floats(kCache, nKv * kvDim);
    const v = this.floats(vCache, nKv * kvDim);
    const scaleF = fround(scale);
    if (this.scores.length < nKv) this.scores = new Float32Array(nKv);
    if (this.acc.length < headDim) this.acc = new Float64Array(headDim);
    const s = this.scores;
    const acc = this.acc;
    for (let t = 0; t < T; t++) {
      const visible = pos0 + t + 1; // causal: positions 0..pos0+t
      const qRow = this.floats(q, nHead * headDim, t * nHead * headDim);
      const oRow = this.floats(out, nHead * headDim, t * nHead * headDim);
      for (let h = 0; h < nHead; h++) {
        const qo = h * headDim;
        const ko = Math.floor(h / group) * headDim;
        // scores: float32 products summed in float64 (ggml_vec_dot_f32, scalar), then * scale
        let max = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < visible; j++) {
          const kj = j * kvDim + ko;
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += fround(qRow[qo + d]! * k[kj + d]!);
          const sj = fround(fround(dot) * scaleF);
          s[j] = sj;
          if (sj > max) max = sj;
        }
        // ggml_vec_soft_max_f32: float32 exps, float64 sum, then scaled by float32(1/sum)
        let sum = 0;
        for (let j = 0; j < visible; j++) {
          const e = fround(Math.exp(s[j]! - max));
          s[j] = e;
          sum += e;
        }
        const inv = fround(1 / sum);
        acc.fill(0, 0, headDim);
        for (let j = 0; j < visible; j++) {
          const pj = fround(s[j]! * inv);
          const vj = j * kvDim + ko;
          for (let d = 0; d < headDim; d++) acc[d]! += fround(pj * v[vj + d]!);
        }
        for (let d = 0; d < headDim; d++) oRow[qo + d] = acc[d]!;
      }
    }
  }

  /** a (n) += b (n) (ggml_compute_forward_add, float32). */
  add(a: Buf, b: Buf, n: number): void {
    const av = this.floats(a, n);
    const bv = this.floats(b, n);
    for (let i = 0; i < n; i++) av[i] = av[i]! + bv[i]!;
  }

  /** a (T,C) += b (C) broadcast over rows (ggml_add with a broadcast bias). */
  addBias(a: Buf, b: Buf, T: number, C: number): void {
    const bv = this.floats(b, C);
    for (let t = 0; t < T; t++) {
      const av = this.floats(a, C, t * C);
      for (let i = 0; i < C; i++) av[i] = av[i]! + bv[i]!;
    }
  }

  /** gate (n) = silu(gate) * up, silu(x) = x / (1 + exp(-x)) in float32 (ggml_vec_swiglu_f32). */
  swiglu(gate: Buf, up: Buf, n: number): void {
    const g = this.floats(gate, n);
    const u = this.floats(up, n);
    for (let i = 0; i < n; i++) {
      const x = g[i]!;
      const silu = fround(x / fround(1 + fround(Math.exp(-x))));
      g[i] = silu * u[i]!;
    }
  }

  /** Softmax in place over `rows` rows of `n` floats (ggml_compute_forward_soft_max_f32, scale 1). */
  softmax(x: Buf, rows: number, n: number): void {
    for (let r = 0; r < rows; r++) {
      const xv = this.floats(x, n, r * n);
      let max = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < n; i++) if (xv[i]! > max) max = xv[i]!;
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const e = fround(Math.exp(xv[i]! - max));
        xv[i] = e;
        sum += e;
      }
      const inv = fround(1 / sum);
      for (let i = 0; i < n; i++) xv[i] = xv[i]! * inv;
    }
  }

  /** dst[dstOffset..+n) = src[srcOffset..+n) (floats). */
  copy(src: Buf, dst: Buf, n: number, srcOffsetFloats = 0, dstOffsetFloats = 0): void {
    this.floats(dst, n, dstOffsetFloats).set(this.floats(src, n, srcOffsetFloats));
  }
}
