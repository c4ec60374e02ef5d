/**
 * C float32 semantics in JavaScript, for kernels that must match ggml bit for bit: the rounding
 * helpers ggml's quantizers use (roundf, nearest_int, float -> int casts), ggml's fp32 -> fp16
 * conversion for block scales, and little-endian field access on block bytes.
 *
 * NOTE: ggml computes in C `float`; JS computes in float64. Every float32 operation (+ - * /) of
 * ggml is reproduced as Math.fround(a op b): a double result rounded once to float32 equals the
 * float32 result for these operations (53 >= 2*24 + 2, so double rounding is innocuous).
 * NOTE: typed-array views over block bytes assume a little-endian host, as ggml's files do (every
 * platform Node runs on in practice).
 * Not here: the kernels (float.ts, legacy.ts, iq.ts).
 */
import { f16FromF32Bits } from "../util/f16.ts";

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/**
 * GGML_FP32_TO_FP16 as libggml-base builds it (the portable ggml_compute_fp32_to_fp16): round to
 * nearest even; a NaN becomes sign | 0x7e00 (f32ToF16 keeps the payload instead, as F16C does).
 */
export function toF16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7e00;
  return f16FromF32Bits(x);
}

/** Writes a little-endian 16-bit pattern at `off`. */
export function writeU16(dst: Uint8Array, off: number, bits: number): void {
  dst[off] = bits & 0xff;
  dst[off + 1] = (bits >>> 8) & 0xff;
}

/** Reads a little-endian 16-bit pattern at `off`. */
export function readU16(src: Uint8Array, off: number): number {
  return src[off]! | (src[off + 1]! << 8);
}

/** Reads a little-endian uint32 at `off` (as a non-negative number). */
export function readU32(src: Uint8Array, off: number): number {
  return (src[off]! | (src[off + 1]! << 8) | (src[off + 2]! << 16) | (src[off + 3]! << 24)) >>> 0;
}

/** Reads a little-endian float32 at `off` (block_q8_K's d). */
export function readF32(src: Uint8Array, off: number): number {
  scratchU32[0] = readU32(src, off);
  return scratchF32[0]!;
}

/**
 * C's float -> int32 conversion as x86 does it (cvttss2si): truncate toward zero; NaN and values
 * out of int32 range give INT32_MIN. ggml's (int8_t)/(uint8_t) casts keep the low byte of this.
 */
export function truncInt32(v: number): number {
  return v >= -2147483648 && v < 2147483648 ? v | 0 : -2147483648;
}

/** (int8_t)(float v): low byte of the truncated int32, sign-extended. */
export function castInt8(v: number): number {
  return (truncInt32(v) << 24) >> 24;
}

/**
 * C roundf of a float32 value: halfway cases away from zero (Math.round rounds them up).
 * NOTE: |v| + 0.5 is exact in float64 for every float32 |v| that could round up, so floor is safe.
 */
export function roundf(v: number): number {
  return v < 0 ? -Math.floor(0.5 - v) : Math.floor(v + 0.5);
}

/**
 * ggml's nearest_int (ggml-quants.c): add 1.5*2^23 in float32 and read the low 23 bits, i.e. round
 * to nearest with ties to even for |v| <= 4194303 (ggml asserts that); done on the bits, so NaN
 * and out-of-range values give what ggml gives too.
 */
export function nearestInt(v: number): number {
  scratchF32[0] = v + 12582912;
  return (scratchU32[0]! & 0x007fffff) - 0x00400000;
}

/**
 * A Float32Array over `bytes` when it is 4-byte aligned (no copy), else a copy. Used for F32 rows,
 * which arrive as bytes.
 */
export function f32View(bytes: Uint8Array, n: number): Float32Array {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Float32Array(n);
  new Uint8Array(out.buffer).set(bytes.subarray(0, n * 4));
  return out;
}
