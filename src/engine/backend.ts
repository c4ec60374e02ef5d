/**
 * KernelBackend: the operations a forward pass needs, over buffers that live in the backend's
 * own memory (one ArrayBuffer for the reference backend; one shared WebAssembly.Memory for the
 * WebAssembly backend, so worker threads see the same weights, KV cache and activations).
 * Architectures (arch/*.ts) are written once against this interface; kernels/ref implements it
 * in plain TypeScript (the oracle) and kernels/wasm with SIMD and threads.
 *
 * Conventions: shapes in comments use the vocabulary of src/engine/README.md; every Buf is a byte
 * range of backend memory; float buffers hold float32. Weight matrices keep their stored ggml
 * type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K): `matmul` quantizes the
 * activations to the type's vec_dot activation format (Q8_0, Q8_1, Q8_K) exactly as llama.cpp
 * does before the dot products, so results track llama.cpp's.
 */
import type { GgmlTypeName } from "../util/ggml-types.ts";

/** A byte range of backend memory. */
export interface Buf {
  readonly offset: number;
  readonly bytes: number;
}

export interface RopeParams {
  /** Dimensions rotated per head (rope.dimension_count; <= headDim). */
  nRot: number;
  /** rope.freq_base (theta). */
  freqBase: number;
  /** 1 / rope.scaling.factor for linear scaling, else 1. */
  freqScale: number;
  /** NEOX layout rotates (i, i + nRot/2) pairs; normal rotates adjacent (2i, 2i+1) pairs. */
  neox: boolean;
  /** Optional per-dimension frequency factors (llama3 rope_freqs.weight), nRot/2 floats. */
  freqFactors?: Buf;
}

export interface KernelBackend {
  readonly name: string;
  /** Threads the backend splits work across. */
  readonly threads: number;

  // --- memory ---
  /** Allocate `bytes` (aligned to 64). Memory is never freed individually; see reset(). */
  alloc(bytes: number): Buf;
  /** Allocate and copy `data` in (weights at load time). */
  upload(data: Uint8Array): Buf;
  /** A Float32Array view of a buffer (valid until the next alloc may grow memory). */
  f32(buf: Buf): Float32Array;
  /** A byte view of a buffer (same caveat). */
  u8(buf: Buf): Uint8Array;
  /** Bytes of backend memory in use. */
  usedBytes(): number;
  /** Release worker threads and memory. */
  dispose(): Promise<void>;

  // --- kernels ---
  /** y (T,OC) = x (T,C) · wᵀ, w (OC,C) stored as `type`. */
  matmul(type: GgmlTypeName, w: Buf, x: Buf, y: Buf, T: number, C: number, OC: number): void;
  /** Row `row` of an embedding table e (V,C) stored as `type`, dequantized into out (C). */
  getRow(type: GgmlTypeName, e: Buf, row: number, C: number, out: Buf, outOffsetFloats?: number): void;
  /** out (T,C) = x / sqrt(mean(x²) + eps) * w (C); in place allowed (out == x). */
  rmsNorm(x: Buf, w: Buf, out: Buf, T: number, C: number, eps: number): void;
  /** RoPE in place on x (T, nHeads, headDim) for the given absolute positions (T ints). */
  rope(x: Buf, T: number, nHeads: number, headDim: number, positions: Int32Array, p: RopeParams): void;
  /**
   * Causal attention for T new tokens at positions pos0..pos0+T-1 over the cache.
   * q (T, nHead, headDim); kCache, vCache (nCtx, nHeadKv, headDim) float32 holding positions
   * 0..pos0+T-1 (the new tokens already written); out (T, nHead, headDim).
   * scale = 1/sqrt(headDim) unless given.
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
    scale?: number,
  ): void;
  /** a (n) += b (n). */
  add(a: Buf, b: Buf, n: number): void;
  /** a (n) += bias broadcast over rows: a (T,C) += b (C). */
  addBias(a: Buf, b: Buf, T: number, C: number): void;
  /** gate (n) = silu(gate) * up. */
  swiglu(gate: Buf, up: Buf, n: number): void;
  /** Softmax in place over each of `rows` rows of `n` floats. */
  softmax(x: Buf, rows: number, n: number): void;
  /** Copy n floats. */
  copy(src: Buf, dst: Buf, n: number, srcOffsetFloats?: number, dstOffsetFloats?: number): void;
}
