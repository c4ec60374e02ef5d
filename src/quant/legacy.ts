/**
 * Kernels of the legacy block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1: dequantize, quantize
 * (ggml's quantize_row_*_ref, bit-exact) and dot with a Q8_0 / Q8_1 activation row (ggml's
 * ggml_vec_dot_*_generic, bit-exact: same float32 operations in the same order).
 *
 * Block layouts (32 values per block, little endian, f16 = IEEE half):
 *   block_q4_0 (18 B): f16 d | u8 qs[16]        value = d * (q - 8), q 0..15
 *   block_q4_1 (20 B): f16 d | f16 m | u8 qs[16] value = d * q + m,   q 0..15
 *   block_q5_0 (22 B): f16 d | u32 qh | u8 qs[16]        value = d * (q - 16), q 0..31
 *   block_q5_1 (24 B): f16 d | f16 m | u32 qh | u8 qs[16] value = d * q + m,  q 0..31
 *   block_q8_0 (34 B): f16 d | i8 qs[32]         value = d * q
 *   block_q8_1 (36 B): f16 d | f16 s | i8 qs[32] value = d * q; s = fp16(d * sum(qs))
 * 4-bit nibbles: byte j holds value j in its low nibble and value j + 16 in its high nibble.
 * 5-bit types: bit j of qh is bit 4 of value j (j = 0..31).
 *
 * NOTE: ggml has no Q8_1 dequantizer (to_float is NULL); ours is d * q, as the reference vectors
 * compute it. Q8_1 exists as the activation format of the Q4_1 and Q5_1 dots.
 * Not here: K-quants (k-quants.ts), IQ types (iq.ts), plain floats (float.ts).
 */
import { f16Table } from "../util/f16.ts";
import { castInt8, readU32, roundf, toF16Bits, truncInt32, writeU16 } from "./c-float.ts";
import type { KernelTable } from "./kernels.ts";

const fround = Math.fround;
const QK = 32;
const FLT_MAX = 3.4028234663852886e38;

// ================================================================================ quantize

/** x (n) -> Q4_0 blocks; quantize_row_q4_0_ref. */
export function quantizeQ4_0(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let ib = 0, o = 0, s = 0; ib < n / QK; ib++, o += QK, s += 18) {
    // The value of largest magnitude, first one on ties, keeps its sign: d = max / -8 maps it to -8.
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[o + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fround(max / -8);
    const id = d !== 0 ? fround(1 / d) : 0; // NOTE: C's `d ? 1.0f/d : 0.0f`; `d ?` would be false for NaN in JS
    writeU16(dst, s, toF16Bits(d));
    for (let j = 0; j < QK / 2; j++) {
      const x0 = fround(x[o + j]! * id);
      const x1 = fround(x[o + 16 + j]! * id);
      // NOTE: (int8_t)(x + 8.5f) truncates the float32 sum; rounding the sum first matters.
      const q0 = Math.min(15, castInt8(fround(x0 + 8.5))) & 0xff;
      const q1 = Math.min(15, castInt8(fround(x1 + 8.5))) & 0xff;
      dst[s + 2 + j] = q0 | (q1 << 4);
    }
  }
}

/** x (n) -> Q4_1 blocks; quantize_row_q4_1_ref. */
export function quantizeQ4_1(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let ib = 0, o = 0, s = 0; ib < n / QK; ib++, o += QK, s += 20) {
    let min = FLT_MAX;
    let max = -FLT_MAX;
    for (let j = 0; j < QK; j++) {
      const v = x[o + j]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = fround(fround(max - min) / 15);
    const id = d !== 0 ? fround(1 / d) : 0;
    writeU16(dst, s, toF16Bits(d));
    writeU16(dst, s + 2, toF16Bits(min));
    for (let j = 0; j < QK / 2; j++) {
      const x0 = fround(fround(x[o + j]! - min) * id);
      const x1 = fround(fround(x[o + 16 + j]! - min) * id);
      const q0 = Math.min(15, castInt8(fround(x0 + 0.5))) & 0xff;
      const q1 = Math.min(15, castInt8(fround(x1 + 0.5))) & 0xff;
      dst[s + 4 + j] = q0 | (q1 << 4);
    }
  }
}

/** x (n) -> Q5_0 blocks; quantize_row_q5_0_ref. */
export function quantizeQ5_0(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let ib = 0, o = 0, s = 0; ib < n / QK; ib++, o += QK, s += 22) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = x[o + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fround(max / -16);
    const id = d !== 0 ? fround(1 / d) : 0;
    writeU16(dst, s, toF16Bits(d));
    let qh = 0;
    for (let j = 0; j < QK / 2; j++) {
      const x0 = fround(x[o + j]! * id);
      const x1 = fround(x[o + 16 + j]! * id);
      const q0 = Math.min(31, castInt8(fround(x0 + 16.5))) & 0xff;
      const q1 = Math.min(31, castInt8(fround(x1 + 16.5))) & 0xff;
      dst[s + 6 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
      qh |= ((q0 & 0x10) >>> 4) << j;
      qh |= ((q1 & 0x10) >>> 4) << (j + 16);
    }
    writeU32(dst, s + 2, qh);
  }
}

/** x (n) -> Q5_1 blocks; quantize_row_q5_1_ref. */
export function quantizeQ5_1(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let ib = 0, o = 0, s = 0; ib < n / QK; ib++, o += QK, s += 24) {
    let min = FLT_MAX;
    let max = -FLT_MAX;
    for (let j = 0; j < QK; j++) {
      const v = x[o + j]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = fround(fround(max - min) / 31);
    const id = d !== 0 ? fround(1 / d) : 0;
    writeU16(dst, s, toF16Bits(d));
    writeU16(dst, s + 2, toF16Bits(min));
    let qh = 0;
    for (let j = 0; j < QK / 2; j++) {
      const x0 = fround(fround(x[o + j]! - min) * id);
      const x1 = fround(fround(x[o + 16 + j]! - min) * id);
      // (uint8_t)(x + 0.5f): no clamp in ggml here (the values stay within 0..31).
      const q0 = truncInt32(fround(x0 + 0.5)) & 0xff;
      const q1 = truncInt32(fround(x1 + 0.5)) & 0xff;
      dst[s + 8 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
      qh |= ((q0 & 0x10) >>> 4) << j;
      qh |= ((q1 & 0x10) >>> 4) << (j + 16);
    }
    writeU32(dst, s + 4, qh);
  }
}

/** x (n) -> Q8_0 blocks; quantize_row_q8_0_ref (also the activation format of several dots). */
export function quantizeQ8_0(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let ib = 0, o = 0, s = 0; ib < n / QK; ib++, o += QK, s += 34) {
    let amax = 0;
    for (let j = 0; j < QK; j++) {
      const a = Math.abs(x[o + j]!);
      // biome-ignore lint/complexity/useMathMinMax: C's MAX(amax, fabsf(v)); Math.max differs on NaN.
      amax = amax > a ? amax : a;
    }
    const d = fround(amax / 127);
    const id = d !== 0 ? fround(1 / d) : 0;
    writeU16(dst, s, toF16Bits(d));
    for (let j = 0; j < QK; j++) dst[s + 2 + j] = castInt8(roundf(fround(x[o + j]! * id)));
  }
}

/** x (n) -> Q8_1 blocks; quantize_row_q8_1_ref (the activation format of the Q4_1/Q5_1 dots). */
export function quantizeQ8_1(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let ib = 0, o = 0, s = 0; ib < n / QK; ib++, o += QK, s += 36) {
    let amax = 0;
    for (let j = 0; j < QK; j++) {
      const a = Math.abs(x[o + j]!);
      // biome-ignore lint/complexity/useMathMinMax: C's MAX, as above.
      amax = amax > a ? amax : a;
    }
    const d = fround(amax / 127);
    const id = d !== 0 ? fround(1 / d) : 0;
    writeU16(dst, s, toF16Bits(d));
    let sum = 0;
    for (let j = 0; j < QK; j++) {
      const q = castInt8(roundf(fround(x[o + j]! * id)));
      dst[s + 4 + j] = q;
      sum += q;
    }
    writeU16(dst, s + 2, toF16Bits(fround(sum * d)));
  }
}

function writeU32(dst: Uint8Array, off: number, v: number): void {
  dst[off] = v & 0xff;
  dst[off + 1] = (v >>> 8) & 0xff;
  dst[off + 2] = (v >>> 16) & 0xff;
  dst[off + 3] = (v >>> 24) & 0xff;
}

// ============================================================================== dequantize
// NOTE: a quant (at most 5 bits) times an f16 scale (11 bits) is exact in float32, and the store
// into the Float32Array rounds `q*d + m` once, exactly as ggml's float32 add does, so no fround.
// The block bodies are unrolled by hand: V8 runs them about 1.7x faster than the j loops.

/** Q4_0 blocks -> y (n); dequantize_row_q4_0. */
export function dequantizeQ4_0(src: Uint8Array, y: Float32Array, n: number): void {
  const T = f16Table;
  for (let s = 0, o = 0; o < n; s += 18, o += QK) {
    const d = T[src[s]! | (src[s + 1]! << 8)]!;
    const b0 = src[s + 2]!;
    const b1 = src[s + 3]!;
    const b2 = src[s + 4]!;
    const b3 = src[s + 5]!;
    const b4 = src[s + 6]!;
    const b5 = src[s + 7]!;
    const b6 = src[s + 8]!;
    const b7 = src[s + 9]!;
    const b8 = src[s + 10]!;
    const b9 = src[s + 11]!;
    const b10 = src[s + 12]!;
    const b11 = src[s + 13]!;
    const b12 = src[s + 14]!;
    const b13 = src[s + 15]!;
    const b14 = src[s + 16]!;
    const b15 = src[s + 17]!;
    y[o + 0] = ((b0 & 15) - 8) * d;
    y[o + 1] = ((b1 & 15) - 8) * d;
    y[o + 2] = ((b2 & 15) - 8) * d;
    y[o + 3] = ((b3 & 15) - 8) * d;
    y[o + 4] = ((b4 & 15) - 8) * d;
    y[o + 5] = ((b5 & 15) - 8) * d;
    y[o + 6] = ((b6 & 15) - 8) * d;
    y[o + 7] = ((b7 & 15) - 8) * d;
    y[o + 8] = ((b8 & 15) - 8) * d;
    y[o + 9] = ((b9 & 15) - 8) * d;
    y[o + 10] = ((b10 & 15) - 8) * d;
    y[o + 11] = ((b11 & 15) - 8) * d;
    y[o + 12] = ((b12 & 15) - 8) * d;
    y[o + 13] = ((b13 & 15) - 8) * d;
    y[o + 14] = ((b14 & 15) - 8) * d;
    y[o + 15] = ((b15 & 15) - 8) * d;
    y[o + 16] = ((b0 >> 4) - 8) * d;
    y[o + 17] = ((b1 >> 4) - 8) * d;
    y[o + 18] = ((b2 >> 4) - 8) * d;
    y[o + 19] = ((b3 >> 4) - 8) * d;
    y[o + 20] = ((b4 >> 4) - 8) * d;
    y[o + 21] = ((b5 >> 4) - 8) * d;
    y[o + 22] = ((b6 >> 4) - 8) * d;
    y[o + 23] = ((b7 >> 4) - 8) * d;
    y[o + 24] = ((b8 >> 4) - 8) * d;
    y[o + 25] = ((b9 >> 4) - 8) * d;
    y[o + 26] = ((b10 >> 4) - 8) * d;
    y[o + 27] = ((b11 >> 4) - 8) * d;
    y[o + 28] = ((b12 >> 4) - 8) * d;
    y[o + 29] = ((b13 >> 4) - 8) * d;
    y[o + 30] = ((b14 >> 4) - 8) * d;
    y[o + 31] = ((b15 >> 4) - 8) * d;
  }
}

/** Q4_1 blocks -> y (n); dequantize_row_q4_1. */
export function dequantizeQ4_1(src: Uint8Array, y: Float32Array, n: number): void {
  const T = f16Table;
  for (let s = 0, o = 0; o < n; s += 20, o += QK) {
    const d = T[src[s]! | (src[s + 1]! << 8)]!;
    const m = T[src[s + 2]! | (src[s + 3]! << 8)]!;
    const b0 = src[s + 4]!;
    const b1 = src[s + 5]!;
    const b2 = src[s + 6]!;
    const b3 = src[s + 7]!;
    const b4 = src[s + 8]!;
    const b5 = src[s + 9]!;
    const b6 = src[s + 10]!;
    const b7 = src[s + 11]!;
    const b8 = src[s + 12]!;
    const b9 = src[s + 13]!;
    const b10 = src[s + 14]!;
    const b11 = src[s + 15]!;
    const b12 = src[s + 16]!;
    const b13 = src[s + 17]!;
    const b14 = src[s + 18]!;
    const b15 = src[s + 19]!;
    y[o + 0] = (b0 & 15) * d + m;
    y[o + 1] = (b1 & 15) * d + m;
    y[o + 2] = (b2 & 15) * d + m;
    y[o + 3] = (b3 & 15) * d + m;
    y[o + 4] = (b4 & 15) * d + m;
    y[o + 5] = (b5 & 15) * d + m;
    y[o + 6] = (b6 & 15) * d + m;
    y[o + 7] = (b7 & 15) * d + m;
    y[o + 8] = (b8 & 15) * d + m;
    y[o + 9] = (b9 & 15) * d + m;
    y[o + 10] = (b10 & 15) * d + m;
    y[o + 11] = (b11 & 15) * d + m;
    y[o + 12] = (b12 & 15) * d + m;
    y[o + 13] = (b13 & 15) * d + m;
    y[o + 14] = (b14 & 15) * d + m;
    y[o + 15] = (b15 & 15) * d + m;
    y[o + 16] = (b0 >> 4) * d + m;
    y[o + 17] = (b1 >> 4) * d + m;
    y[o + 18] = (b2 >> 4) * d + m;
    y[o + 19] = (b3 >> 4) * d + m;
    y[o + 20] = (b4 >> 4) * d + m;
    y[o + 21] = (b5 >> 4) * d + m;
    y[o + 22] = (b6 >> 4) * d + m;
    y[o + 23] = (b7 >> 4) * d + m;
    y[o + 24] = (b8 >> 4) * d + m;
    y[o + 25] = (b9 >> 4) * d + m;
    y[o + 26] = (b10 >> 4) * d + m;
    y[o + 27] = (b11 >> 4) * d + m;
    y[o + 28] = (b12 >> 4) * d + m;
    y[o + 29] = (b13 >> 4) * d + m;
    y[o + 30] = (b14 >> 4) * d + m;
    y[o + 31] = (b15 >> 4) * d + m;
  }
}

/** Q5_0 blocks -> y (n); dequantize_row_q5_0 (bit 4 of value j is bit j of qh). */
export function dequantizeQ5_0(src: Uint8Array, y: Float32Array, n: number): void {
  const T = f16Table;
  for (let s = 0, o = 0; o < n; s += 22, o += QK) {
    const d = T[src[s]! | (src[s + 1]! << 8)]!;
    const qh = src[s + 2]! | (src[s + 3]! << 8) | (src[s + 4]! << 16) | (src[s + 5]! << 24);
    const b0 = src[s + 6]!;
    const b1 = src[s + 7]!;
    const b2 = src[s + 8]!;
    const b3 = src[s + 9]!;
    const b4 = src[s + 10]!;
    const b5 = src[s + 11]!;
    const b6 = src[s + 12]!;
    const b7 = src[s + 13]!;
    const b8 = src[s + 14]!;
    const b9 = src[s + 15]!;
    const b10 = src[s + 16]!;
    const b11 = src[s + 17]!;
    const b12 = src[s + 18]!;
    const b13 = src[s + 19]!;
    const b14 = src[s + 20]!;
    const b15 = src[s + 21]!;
    y[o + 0] = (((b0 & 15) | ((qh << 4) & 16)) - 16) * d;
    y[o + 1] = (((b1 & 15) | ((qh << 3) & 16)) - 16) * d;
    y[o + 2] = (((b2 & 15) | ((qh << 2) & 16)) - 16) * d;
    y[o + 3] = (((b3 & 15) | ((qh << 1) & 16)) - 16) * d;
    y[o + 4] = (((b4 & 15) | (qh & 16)) - 16) * d;
    y[o + 5] = (((b5 & 15) | ((qh >>> 1) & 16)) - 16) * d;
    y[o + 6] = (((b6 & 15) | ((qh >>> 2) & 16)) - 16) * d;
    y[o + 7] = (((b7 & 15) | ((qh >>> 3) & 16)) - 16) * d;
    y[o + 8] = (((b8 & 15) | ((qh >>> 4) & 16)) - 16) * d;
    y[o + 9] = (((b9 & 15) | ((qh >>> 5) & 16)) - 16) * d;
    y[o + 10] = (((b10 & 15) | ((qh >>> 6) & 16)) - 16) * d;
    y[o + 11] = (((b11 & 15) | ((qh >>> 7) & 16)) - 16) * d;
    y[o + 12] = (((b12 & 15) | ((qh >>> 8) & 16)) - 16) * d;
    y[o + 13] = (((b13 & 15) | ((qh >>> 9) & 16)) - 16) * d;
    y[o + 14] = (((b14 & 15) | ((qh >>> 10) & 16)) - 16) * d;
    y[o + 15] = (((b15 & 15) | ((qh >>> 11) & 16)) - 16) * d;
    y[o + 16] = (((b0 >> 4) | ((qh >>> 12) & 16)) - 16) * d;
    y[o + 17] = (((b1 >> 4) | ((qh >>> 13) & 16)) - 16) * d;
    y[o + 18] = (((b2 >> 4) | ((qh >>> 14) & 16)) - 16) * d;
    y[o + 19] = (((b3 >> 4) | ((qh >>> 15) & 16)) - 16) * d;
    y[o + 20] = (((b4 >> 4) | ((qh >>> 16) & 16)) - 16) * d;
    y[o + 21] = (((b5 >> 4) | ((qh >>> 17) & 16)) - 16) * d;
    y[o + 22] = (((b6 >> 4) | ((qh >>> 18) & 16)) - 16) * d;
    y[o + 23] = (((b7 >> 4) | ((qh >>> 19) & 16)) - 16) * d;
    y[o + 24] = (((b8 >> 4) | ((qh >>> 20) & 16)) - 16) * d;
    y[o + 25] = (((b9 >> 4) | ((qh >>> 21) & 16)) - 16) * d;
    y[o + 26] = (((b10 >> 4) | ((qh >>> 22) & 16)) - 16) * d;
    y[o + 27] = (((b11 >> 4) | ((qh >>> 23) & 16)) - 16) * d;
    y[o + 28] = (((b12 >> 4) | ((qh >>> 24) & 16)) - 16) * d;
    y[o + 29] = (((b13 >> 4) | ((qh >>> 25) & 16)) - 16) * d;
    y[o + 30] = (((b14 >> 4) | ((qh >>> 26) & 16)) - 16) * d;
    y[o + 31] = (((b15 >> 4) | ((qh >>> 27) & 16)) - 16) * d;
  }
}

/** Q5_1 blocks -> y (n); dequantize_row_q5_1. */
export function dequantizeQ5_1(src: Uint8Array, y: Float32Array, n: number): void {
  const T = f16Table;
  for (let s = 0, o = 0; o < n; s += 24, o += QK) {
    const d = T[src[s]! | (src[s + 1]! << 8)]!;
    const m = T[src[s + 2]! | (src[s + 3]! << 8)]!;
    const qh = src[s + 4]! | (src[s + 5]! << 8) | (src[s + 6]! << 16) | (src[s + 7]! << 24);
    const b0 = src[s + 8]!;
    const b1 = src[s + 9]!;
    const b2 = src[s + 10]!;
    const b3 = src[s + 11]!;
    const b4 = src[s + 12]!;
    const b5 = src[s + 13]!;
    const b6 = src[s + 14]!;
    const b7 = src[s + 15]!;
    const b8 = src[s + 16]!;
    const b9 = src[s + 17]!;
    const b10 = src[s + 18]!;
    const b11 = src[s + 19]!;
    const b12 = src[s + 20]!;
    const b13 = src[s + 21]!;
    const b14 = src[s + 22]!;
    const b15 = src[s + 23]!;
    y[o + 0] = ((b0 & 15) | ((qh << 4) & 16)) * d + m;
    y[o + 1] = ((b1 & 15) | ((qh << 3) & 16)) * d + m;
    y[o + 2] = ((b2 & 15) | ((qh << 2) & 16)) * d + m;
    y[o + 3] = ((b3 & 15) | ((qh << 1) & 16)) * d + m;
    y[o + 4] = ((b4 & 15) | (qh & 16)) * d + m;
    y[o + 5] = ((b5 & 15) | ((qh >>> 1) & 16)) * d + m;
    y[o + 6] = ((b6 & 15) | ((qh >>> 2) & 16)) * d + m;
    y[o + 7] = ((b7 & 15) | ((qh >>> 3) & 16)) * d + m;
    y[o + 8] = ((b8 & 15) | ((qh >>> 4) & 16)) * d + m;
    y[o + 9] = ((b9 & 15) | ((qh >>> 5) & 16)) * d + m;
    y[o + 10] = ((b10 & 15) | ((qh >>> 6) & 16)) * d + m;
    y[o + 11] = ((b11 & 15) | ((qh >>> 7) & 16)) * d + m;
    y[o + 12] = ((b12 & 15) | ((qh >>> 8) & 16)) * d + m;
    y[o + 13] = ((b13 & 15) | ((qh >>> 9) & 16)) * d + m;
    y[o + 14] = ((b14 & 15) | ((qh >>> 10) & 16)) * d + m;
    y[o + 15] = ((b15 & 15) | ((qh >>> 11) & 16)) * d + m;
    y[o + 16] = ((b0 >> 4) | ((qh >>> 12) & 16)) * d + m;
    y[o + 17] = ((b1 >> 4) | ((qh >>> 13) & 16)) * d + m;
    y[o + 18] = ((b2 >> 4) | ((qh >>> 14) & 16)) * d + m;
    y[o + 19] = ((b3 >> 4) | ((qh >>> 15) & 16)) * d + m;
    y[o + 20] = ((b4 >> 4) | ((qh >>> 16) & 16)) * d + m;
    y[o + 21] = ((b5 >> 4) | ((qh >>> 17) & 16)) * d + m;
    y[o + 22] = ((b6 >> 4) | ((qh >>> 18) & 16)) * d + m;
    y[o + 23] = ((b7 >> 4) | ((qh >>> 19) & 16)) * d + m;
    y[o + 24] = ((b8 >> 4) | ((qh >>> 20) & 16)) * d + m;
    y[o + 25] = ((b9 >> 4) | ((qh >>> 21) & 16)) * d + m;
    y[o + 26] = ((b10 >> 4) | ((qh >>> 22) & 16)) * d + m;
    y[o + 27] = ((b11 >> 4) | ((qh >>> 23) & 16)) * d + m;
    y[o + 28] = ((b12 >> 4) | ((qh >>> 24) & 16)) * d + m;
    y[o + 29] = ((b13 >> 4) | ((qh >>> 25) & 16)) * d + m;
    y[o + 30] = ((b14 >> 4) | ((qh >>> 26) & 16)) * d + m;
    y[o + 31] = ((b15 >> 4) | ((qh >>> 27) & 16)) * d + m;
  }
}

/** Q8_0 blocks -> y (n); dequantize_row_q8_0. */
export function dequantizeQ8_0(src: Uint8Array, y: Float32Array, n: number): void {
  const T = f16Table;
  const q = new Int8Array(src.buffer, src.byteOffset, src.length);
  for (let s = 0, o = 0, k = 2; o < n; s += 34, o += QK, k += 34) {
    const d = T[src[s]! | (src[s + 1]! << 8)]!;
    y[o + 0] = q[k + 0]! * d;
    y[o + 1] = q[k + 1]! * d;
    y[o + 2] = q[k + 2]! * d;
    y[o + 3] = q[k + 3]! * d;
    y[o + 4] = q[k + 4]! * d;
    y[o + 5] = q[k + 5]! * d;
    y[o + 6] = q[k + 6]! * d;
    y[o + 7] = q[k + 7]! * d;
    y[o + 8] = q[k + 8]! * d;
    y[o + 9] = q[k + 9]! * d;
    y[o + 10] = q[k + 10]! * d;
    y[o + 11] = q[k + 11]! * d;
    y[o + 12] = q[k + 12]! * d;
    y[o + 13] = q[k + 13]! * d;
    y[o + 14] = q[k + 14]! * d;
    y[o + 15] = q[k + 15]! * d;
    y[o + 16] = q[k + 16]! * d;
    y[o + 17] = q[k + 17]! * d;
    y[o + 18] = q[k + 18]! * d;
    y[o + 19] = q[k + 19]! * d;
    y[o + 20] = q[k + 20]! * d;
    y[o + 21] = q[k + 21]! * d;
    y[o + 22] = q[k + 22]! * d;
    y[o + 23] = q[k + 23]! * d;
    y[o + 24] = q[k + 24]! * d;
    y[o + 25] = q[k + 25]! * d;
    y[o + 26] = q[k + 26]! * d;
    y[o + 27] = q[k + 27]! * d;
    y[o + 28] = q[k + 28]! * d;
    y[o + 29] = q[k + 29]! * d;
    y[o + 30] = q[k + 30]! * d;
    y[o + 31] = q[k + 31]! * d;
  }
}

/** Q8_1 blocks -> y (n): d * q (ggml has none; see the module comment). */
export function dequantizeQ8_1(src: Uint8Array, y: Float32Array, n: number): void {
  const T = f16Table;
  const q = new Int8Array(src.buffer, src.byteOffset, src.length);
  for (let s = 0, o = 0, k = 4; o < n; s += 36, o += QK, k += 36) {
    const d = T[src[s]! | (src[s + 1]! << 8)]!;
    y[o + 0] = q[k + 0]! * d;
    y[o + 1] = q[k + 1]! * d;
    y[o + 2] = q[k + 2]! * d;
    y[o + 3] = q[k + 3]! * d;
    y[o + 4] = q[k + 4]! * d;
    y[o + 5] = q[k + 5]! * d;
    y[o + 6] = q[k + 6]! * d;
    y[o + 7] = q[k + 7]! * d;
    y[o + 8] = q[k + 8]! * d;
    y[o + 9] = q[k + 9]! * d;
    y[o + 10] = q[k + 10]! * d;
    y[o + 11] = q[k + 11]! * d;
    y[o + 12] = q[k + 12]! * d;
    y[o + 13] = q[k + 13]! * d;
    y[o + 14] = q[k + 14]! * d;
    y[o + 15] = q[k + 15]! * d;
    y[o + 16] = q[k + 16]! * d;
    y[o + 17] = q[k + 17]! * d;
    y[o + 18] = q[k + 18]! * d;
    y[o + 19] = q[k + 19]! * d;
    y[o + 20] = q[k + 20]! * d;
    y[o + 21] = q[k + 21]! * d;
    y[o + 22] = q[k + 22]! * d;
    y[o + 23] = q[k + 23]! * d;
    y[o + 24] = q[k + 24]! * d;
    y[o + 25] = q[k + 25]! * d;
    y[o + 26] = q[k + 26]! * d;
    y[o + 27] = q[k + 27]! * d;
    y[o + 28] = q[k + 28]! * d;
    y[o + 29] = q[k + 29]! * d;
    y[o + 30] = q[k + 30]! * d;
    y[o + 31] = q[k + 31]! * d;
  }
}

// ===================================================================================== dot
// Fast kernels: an integer sum per block (unrolled, as above), then ggml's float32 block update
// in ggml's operation order. NOTE: the sums are written `let s0 = 0; s0 += ...`: V8 (Node 20) runs
// that about 1.5x faster than `const s0 = ...`, measured.

/** row (n, Q4_0), act (n, Q8_0) -> float32; ggml_vec_dot_q4_0_q8_0_generic. */
export function dotQ4_0(row: Uint8Array, act: Uint8Array, n: number): number {
  const T = f16Table;
  const a = new Int8Array(act.buffer, act.byteOffset, act.length);
  const end = n * (34 / QK);
  let sumf = 0;
  for (let x = 0, y = 0, k = 2; y < end; x += 18, y += 34, k += 34) {
    const b0 = row[x + 2]!;
    const b1 = row[x + 3]!;
    const b2 = row[x + 4]!;
    const b3 = row[x + 5]!;
    const b4 = row[x + 6]!;
    const b5 = row[x + 7]!;
    const b6 = row[x + 8]!;
    const b7 = row[x + 9]!;
    const b8 = row[x + 10]!;
    const b9 = row[x + 11]!;
    const b10 = row[x + 12]!;
    const b11 = row[x + 13]!;
    const b12 = row[x + 14]!;
    const b13 = row[x + 15]!;
    const b14 = row[x + 16]!;
    const b15 = row[x + 17]!;
    let s0 = 0;
    let s1 = 0;
    s0 +=
      ((b0 & 15) - 8) * a[k + 0]! +
      ((b1 & 15) - 8) * a[k + 1]! +
      ((b2 & 15) - 8) * a[k + 2]! +
      ((b3 & 15) - 8) * a[k + 3]! +
      ((b4 & 15) - 8) * a[k + 4]! +
      ((b5 & 15) - 8) * a[k + 5]! +
      ((b6 & 15) - 8) * a[k + 6]! +
      ((b7 & 15) - 8) * a[k + 7]! +
      ((b8 & 15) - 8) * a[k + 8]! +
      ((b9 & 15) - 8) * a[k + 9]! +
      ((b10 & 15) - 8) * a[k + 10]! +
      ((b11 & 15) - 8) * a[k + 11]! +
      ((b12 & 15) - 8) * a[k + 12]! +
      ((b13 & 15) - 8) * a[k + 13]! +
      ((b14 & 15) - 8) * a[k + 14]! +
      ((b15 & 15) - 8) * a[k + 15]!;
    s1 +=
      ((b0 >> 4) - 8) * a[k + 16]! +
      ((b1 >> 4) - 8) * a[k + 17]! +
      ((b2 >> 4) - 8) * a[k + 18]! +
      ((b3 >> 4) - 8) * a[k + 19]! +
      ((b4 >> 4) - 8) * a[k + 20]! +
      ((b5 >> 4) - 8) * a[k + 21]! +
      ((b6 >> 4) - 8) * a[k + 22]! +
      ((b7 >> 4) - 8) * a[k + 23]! +
      ((b8 >> 4) - 8) * a[k + 24]! +
      ((b9 >> 4) - 8) * a[k + 25]! +
      ((b10 >> 4) - 8) * a[k + 26]! +
      ((b11 >> 4) - 8) * a[k + 27]! +
      ((b12 >> 4) - 8) * a[k + 28]! +
      ((b13 >> 4) - 8) * a[k + 29]! +
      ((b14 >> 4) - 8) * a[k + 30]! +
      ((b15 >> 4) - 8) * a[k + 31]!;
    const sumi = s0 + s1;
    const dx = T[row[x]! | (row[x + 1]! << 8)]!;
    const dy = T[act[y]! | (act[y + 1]! << 8)]!;
    sumf = fround(sumf + fround(fround(sumi * dx) * dy)); // sumi*dx*dy, left to right
  }
  return sumf;
}

/** row (n, Q4_1), act (n, Q8_1) -> float32; ggml_vec_dot_q4_1_q8_1_generic. */
export function dotQ4_1(row: Uint8Array, act: Uint8Array, n: number): number {
  const T = f16Table;
  const a = new Int8Array(act.buffer, act.byteOffset, act.length);
  const end = n * (36 / QK);
  let sumf = 0;
  for (let x = 0, y = 0, k = 4; y < end; x += 20, y += 36, k += 36) {
    const b0 = row[x + 4]!;
    const b1 = row[x + 5]!;
    const b2 = row[x + 6]!;
    const b3 = row[x + 7]!;
    const b4 = row[x + 8]!;
    const b5 = row[x + 9]!;
    const b6 = row[x + 10]!;
    const b7 = row[x + 11]!;
    const b8 = row[x + 12]!;
    const b9 = row[x + 13]!;
    const b10 = row[x + 14]!;
    const b11 = row[x + 15]!;
    const b12 = row[x + 16]!;
    const b13 = row[x + 17]!;
    const b14 = row[x + 18]!;
    const b15 = row[x + 19]!;
    let s0 = 0;
    let s1 = 0;
    s0 +=
      (b0 & 15) * a[k + 0]! +
      (b1 & 15) * a[k + 1]! +
      (b2 & 15) * a[k + 2]! +
      (b3 & 15) * a[k + 3]! +
      (b4 & 15) * a[k + 4]! +
      (b5 & 15) * a[k + 5]! +
      (b6 & 15) * a[k + 6]! +
      (b7 & 15) * a[k + 7]! +
      (b8 & 15) * a[k + 8]! +
      (b9 & 15) * a[k + 9]! +
      (b10 & 15) * a[k + 10]! +
      (b11 & 15) * a[k + 11]! +
      (b12 & 15) * a[k + 12]! +
      (b13 & 15) * a[k + 13]! +
      (b14 & 15) * a[k + 14]! +
      (b15 & 15) * a[k + 15]!;
    s1 +=
      (b0 >> 4) * a[k + 16]! +
      (b1 >> 4) * a[k + 17]! +
      (b2 >> 4) * a[k + 18]! +
      (b3 >> 4) * a[k + 19]! +
      (b4 >> 4) * a[k + 20]! +
      (b5 >> 4) * a[k + 21]! +
      (b6 >> 4) * a[k + 22]! +
      (b7 >> 4) * a[k + 23]! +
      (b8 >> 4) * a[k + 24]! +
      (b9 >> 4) * a[k + 25]! +
      (b10 >> 4) * a[k + 26]! +
      (b11 >> 4) * a[k + 27]! +
      (b12 >> 4) * a[k + 28]! +
      (b13 >> 4) * a[k + 29]! +
      (b14 >> 4) * a[k + 30]! +
      (b15 >> 4) * a[k + 31]!;
    const sumi = s0 + s1;
    const dx = T[row[x]! | (row[x + 1]! << 8)]!;
    const mx = T[row[x + 2]! | (row[x + 3]! << 8)]!;
    const dy = T[act[y]! | (act[y + 1]! << 8)]!;
    const sy = T[act[y + 2]! | (act[y + 3]! << 8)]!;
    sumf = fround(sumf + fround(fround(fround(dx * dy) * sumi) + fround(mx * sy)));
  }
  return sumf;
}

/** row (n, Q5_0), act (n, Q8_0) -> float32; ggml_vec_dot_q5_0_q8_0_generic. */
export function dotQ5_0(row: Uint8Array, act: Uint8Array, n: number): number {
  const T = f16Table;
  const a = new Int8Array(act.buffer, act.byteOffset, act.length);
  const end = n * (34 / QK);
  let sumf = 0;
  for (let x = 0, y = 0, k = 2; y < end; x += 22, y += 34, k += 34) {
    const qh = row[x + 2]! | (row[x + 3]! << 8) | (row[x + 4]! << 16) | (row[x + 5]! << 24);
    const b0 = row[x + 6]!;
    const b1 = row[x + 7]!;
    const b2 = row[x + 8]!;
    const b3 = row[x + 9]!;
    const b4 = row[x + 10]!;
    const b5 = row[x + 11]!;
    const b6 = row[x + 12]!;
    const b7 = row[x + 13]!;
    const b8 = row[x + 14]!;
    const b9 = row[x + 15]!;
    const b10 = row[x + 16]!;
    const b11 = row[x + 17]!;
    const b12 = row[x + 18]!;
    const b13 = row[x + 19]!;
    const b14 = row[x + 20]!;
    const b15 = row[x + 21]!;
    let s0 = 0;
    let s1 = 0;
    s0 +=
      (((b0 & 15) | ((qh << 4) & 16)) - 16) * a[k + 0]! +
      (((b1 & 15) | ((qh << 3) & 16)) - 16) * a[k + 1]! +
      (((b2 & 15) | ((qh << 2) & 16)) - 16) * a[k + 2]! +
      (((b3 & 15) | ((qh << 1) & 16)) - 16) * a[k + 3]! +
      (((b4 & 15) | (qh & 16)) - 16) * a[k + 4]! +
      (((b5 & 15) | ((qh >>> 1) & 16)) - 16) * a[k + 5]! +
      (((b6 & 15) | ((qh >>> 2) & 16)) - 16) * a[k + 6]! +
      (((b7 & 15) | ((qh >>> 3) & 16)) - 16) * a[k + 7]! +
      (((b8 & 15) | ((qh >>> 4) & 16)) - 16) * a[k + 8]! +
      (((b9 & 15) | ((qh >>> 5) & 16)) - 16) * a[k + 9]! +
      (((b10 & 15) | ((qh >>> 6) & 16)) - 16) * a[k + 10]! +
      (((b11 & 15) | ((qh >>> 7) & 16)) - 16) * a[k + 11]! +
      (((b12 & 15) | ((qh >>> 8) & 16)) - 16) * a[k + 12]! +
      (((b13 & 15) | ((qh >>> 9) & 16)) - 16) * a[k + 13]! +
      (((b14 & 15) | ((qh >>> 10) & 16)) - 16) * a[k + 14]! +
      (((b15 & 15) | ((qh >>> 11) & 16)) - 16) * a[k + 15]!;
    s1 +=
      (((b0 >> 4) | ((qh >>> 12) & 16)) - 16) * a[k + 16]! +
      (((b1 >> 4) | ((qh >>> 13) & 16)) - 16) * a[k + 17]! +
      (((b2 >> 4) | ((qh >>> 14) & 16)) - 16) * a[k + 18]! +
      (((b3 >> 4) | ((qh >>> 15) & 16)) - 16) * a[k + 19]! +
      (((b4 >> 4) | ((qh >>> 16) & 16)) - 16) * a[k + 20]! +
      (((b5 >> 4) | ((qh >>> 17) & 16)) - 16) * a[k + 21]! +
      (((b6 >> 4) | ((qh >>> 18) & 16)) - 16) * a[k + 22]! +
      (((b7 >> 4) | ((qh >>> 19) & 16)) - 16) * a[k + 23]! +
      (((b8 >> 4) | ((qh >>> 20) & 16)) - 16) * a[k + 24]! +
      (((b9 >> 4) | ((qh >>> 21) & 16)) - 16) * a[k + 25]! +
      (((b10 >> 4) | ((qh >>> 22) & 16)) - 16) * a[k + 26]! +
      (((b11 >> 4) | ((qh >>> 23) & 16)) - 16) * a[k + 27]! +
      (((b12 >> 4) | ((qh >>> 24) & 16)) - 16) * a[k + 28]! +
      (((b13 >> 4) | ((qh >>> 25) & 16)) - 16) * a[k + 29]! +
      (((b14 >> 4) | ((qh >>> 26) & 16)) - 16) * a[k + 30]! +
      (((b15 >> 4) | ((qh >>> 27) & 16)) - 16) * a[k + 31]!;
    const sumi = s0 + s1;
    const dx = T[row[x]! | (row[x + 1]! << 8)]!;
    const dy = T[act[y]! | (act[y + 1]! << 8)]!;
    sumf = fround(sumf + fround(fround(dx * dy) * sumi));
  }
  return sumf;
}

/** row (n, Q5_1), act (n, Q8_1) -> float32; ggml_vec_dot_q5_1_q8_1_generic. */
export function dotQ5_1(row: Uint8Array, act: Uint8Array, n: number): number {
  const T = f16Table;
  const a = new Int8Array(act.buffer, act.byteOffset, act.length);
  const end = n * (36 / QK);
  let sumf = 0;
  for (let x = 0, y = 0, k = 4; y < end; x += 24, y += 36, k += 36) {
    const qh = row[x + 4]! | (row[x + 5]! << 8) | (row[x + 6]! << 16) | (row[x + 7]! << 24);
    const b0 = row[x + 8]!;
    const b1 = row[x + 9]!;
    const b2 = row[x + 10]!;
    const b3 = row[x + 11]!;
    const b4 = row[x + 12]!;
    const b5 = row[x + 13]!;
    const b6 = row[x + 14]!;
    const b7 = row[x + 15]!;
    const b8 = row[x + 16]!;
    const b9 = row[x + 17]!;
    const b10 = row[x + 18]!;
    const b11 = row[x + 19]!;
    const b12 = row[x + 20]!;
    const b13 = row[x + 21]!;
    const b14 = row[x + 22]!;
    const b15 = row[x + 23]!;
    let s0 = 0;
    let s1 = 0;
    s0 +=
      ((b0 & 15) | ((qh << 4) & 16)) * a[k + 0]! +
      ((b1 & 15) | ((qh << 3) & 16)) * a[k + 1]! +
      ((b2 & 15) | ((qh << 2) & 16)) * a[k + 2]! +
      ((b3 & 15) | ((qh << 1) & 16)) * a[k + 3]! +
      ((b4 & 15) | (qh & 16)) * a[k + 4]! +
      ((b5 & 15) | ((qh >>> 1) & 16)) * a[k + 5]! +
      ((b6 & 15) | ((qh >>> 2) & 16)) * a[k + 6]! +
      ((b7 & 15) | ((qh >>> 3) & 16)) * a[k + 7]! +
      ((b8 & 15) | ((qh >>> 4) & 16)) * a[k + 8]! +
      ((b9 & 15) | ((qh >>> 5) & 16)) * a[k + 9]! +
      ((b10 & 15) | ((qh >>> 6) & 16)) * a[k + 10]! +
      ((b11 & 15) | ((qh >>> 7) & 16)) * a[k + 11]! +
      ((b12 & 15) | ((qh >>> 8) & 16)) * a[k + 12]! +
      ((b13 & 15) | ((qh >>> 9) & 16)) * a[k + 13]! +
      ((b14 & 15) | ((qh >>> 10) & 16)) * a[k + 14]! +
      ((b15 & 15) | ((qh >>> 11) & 16)) * a[k + 15]!;
    s1 +=
      ((b0 >> 4) | ((qh >>> 12) & 16)) * a[k + 16]! +
      ((b1 >> 4) | ((qh >>> 13) & 16)) * a[k + 17]! +
      ((b2 >> 4) | ((qh >>> 14) & 16)) * a[k + 18]! +
      ((b3 >> 4) | ((qh >>> 15) & 16)) * a[k + 19]! +
      ((b4 >> 4) | ((qh >>> 16) & 16)) * a[k + 20]! +
      ((b5 >> 4) | ((qh >>> 17) & 16)) * a[k + 21]! +
      ((b6 >> 4) | ((qh >>> 18) & 16)) * a[k + 22]! +
      ((b7 >> 4) | ((qh >>> 19) & 16)) * a[k + 23]! +
      ((b8 >> 4) | ((qh >>> 20) & 16)) * a[k + 24]! +
      ((b9 >> 4) | ((qh >>> 21) & 16)) * a[k + 25]! +
      ((b10 >> 4) | ((qh >>> 22) & 16)) * a[k + 26]! +
      ((b11 >> 4) | ((qh >>> 23) & 16)) * a[k + 27]! +
      ((b12 >> 4) | ((qh >>> 24) & 16)) * a[k + 28]! +
      ((b13 >> 4) | ((qh >>> 25) & 16)) * a[k + 29]! +
      ((b14 >> 4) | ((qh >>> 26) & 16)) * a[k + 30]! +
      ((b15 >> 4) | ((qh >>> 27) & 16)) * a[k + 31]!;
    const sumi = s0 + s1;
    const dx = T[row[x]! | (row[x + 1]! << 8)]!;
    const mx = T[row[x + 2]! | (row[x + 3]! << 8)]!;
    const dy = T[act[y]! | (act[y + 1]! << 8)]!;
    const sy = T[act[y + 2]! | (act[y + 3]! << 8)]!;
    sumf = fround(sumf + fround(fround(fround(dx * dy) * sumi) + fround(mx * sy)));
  }
  return sumf;
}

/** row (n, Q8_0), act (n, Q8_0) -> float32; ggml_vec_dot_q8_0_q8_0_generic. */
export function dotQ8_0(row: Uint8Array, act: Uint8Array, n: number): number {
  const T = f16Table;
  const w = new Int8Array(row.buffer, row.byteOffset, row.length);
  const a = new Int8Array(act.buffer, act.byteOffset, act.length);
  const end = n * (34 / QK);
  let sumf = 0;
  for (let y = 0, kx = 2, ky = 2; y < end; y += 34, kx += 34, ky += 34) {
    let s0 = 0;
    let s1 = 0;
    s0 +=
      w[kx + 0]! * a[ky + 0]! +
      w[kx + 1]! * a[ky + 1]! +
      w[kx + 2]! * a[ky + 2]! +
      w[kx + 3]! * a[ky + 3]! +
      w[kx + 4]! * a[ky + 4]! +
      w[kx + 5]! * a[ky + 5]! +
      w[kx + 6]! * a[ky + 6]! +
      w[kx + 7]! * a[ky + 7]! +
      w[kx + 8]! * a[ky + 8]! +
      w[kx + 9]! * a[ky + 9]! +
      w[kx + 10]! * a[ky + 10]! +
      w[kx + 11]! * a[ky + 11]! +
      w[kx + 12]! * a[ky + 12]! +
      w[kx + 13]! * a[ky + 13]! +
      w[kx + 14]! * a[ky + 14]! +
      w[kx + 15]! * a[ky + 15]!;
    s1 +=
      w[kx + 16]! * a[ky + 16]! +
      w[kx + 17]! * a[ky + 17]! +
      w[kx + 18]! * a[ky + 18]! +
      w[kx + 19]! * a[ky + 19]! +
      w[kx + 20]! * a[ky + 20]! +
      w[kx + 21]! * a[ky + 21]! +
      w[kx + 22]! * a[ky + 22]! +
      w[kx + 23]! * a[ky + 23]! +
      w[kx + 24]! * a[ky + 24]! +
      w[kx + 25]! * a[ky + 25]! +
      w[kx + 26]! * a[ky + 26]! +
      w[kx + 27]! * a[ky + 27]! +
      w[kx + 28]! * a[ky + 28]! +
      w[kx + 29]! * a[ky + 29]! +
      w[kx + 30]! * a[ky + 30]! +
      w[kx + 31]! * a[ky + 31]!;
    const sumi = s0 + s1;
    const dx = T[row[y]! | (row[y + 1]! << 8)]!;
    const dy = T[act[y]! | (act[y + 1]! << 8)]!;
    sumf = fround(sumf + fround(sumi * fround(dx * dy)));
  }
  return sumf;
}

// ================================================================== reference twins of dot
// Readable: decode each block into its scale(s) and integer quants, then sum the products of
// the dequantized values in float64 (Q8_1's s stands for d * sum(q), as ggml uses it).

interface Block {
  d: number;
  m: number;
  q: number[];
}

function f16At(b: Uint8Array, off: number): number {
  return f16Table[b[off]! | (b[off + 1]! << 8)]!;
}

function nibble(qs: Uint8Array, off: number, i: number): number {
  return i < 16 ? qs[off + i]! & 15 : qs[off + i - 16]! >> 4;
}

function fifthBit(b: Uint8Array, off: number, i: number): number {
  return ((readU32(b, off) >>> i) & 1) << 4;
}

function blockQ4_0(b: Uint8Array, ib: number): Block {
  const s = ib * 18;
  return { d: f16At(b, s), m: 0, q: Array.from({ length: QK }, (_, i) => nibble(b, s + 2, i) - 8) };
}

function blockQ4_1(b: Uint8Array, ib: number): Block {
  const s = ib * 20;
  return { d: f16At(b, s), m: f16At(b, s + 2), q: Array.from({ length: QK }, (_, i) => nibble(b, s + 4, i)) };
}

function blockQ5_0(b: Uint8Array, ib: number): Block {
  const s = ib * 22;
  const q = Array.from({ length: QK }, (_, i) => (nibble(b, s + 6, i) | fifthBit(b, s + 2, i)) - 16);
  return { d: f16At(b, s), m: 0, q };
}

function blockQ5_1(b: Uint8Array, ib: number): Block {
  const s = ib * 24;
  const q = Array.from({ length: QK }, (_, i) => nibble(b, s + 8, i) | fifthBit(b, s + 4, i));
  return { d: f16At(b, s), m: f16At(b, s + 2), q };
}

function blockQ8_0(b: Uint8Array, ib: number): Block {
  const s = ib * 34;
  return { d: f16At(b, s), m: 0, q: Array.from(b.subarray(s + 2, s + 34), (v) => (v << 24) >> 24) };
}

/** For Q8_1, `m` carries s = fp16(d * sum(q)). */
function blockQ8_1(b: Uint8Array, ib: number): Block {
  const s = ib * 36;
  return {
    d: f16At(b, s),
    m: f16At(b, s + 2),
    q: Array.from(b.subarray(s + 4, s + 36), (v) => (v << 24) >> 24),
  };
}

/** sum over blocks of sum_j (dx*qx_j) * (dy*qy_j) [+ mx * sy], in float64. */
function dotBlocks(
  row: Uint8Array,
  act: Uint8Array,
  n: number,
  wBlock: (b: Uint8Array, ib: number) => Block,
  aBlock: (b: Uint8Array, ib: number) => Block,
  withMin: boolean,
): number {
  let sum = 0;
  for (let ib = 0; ib < n / QK; ib++) {
    const w = wBlock(row, ib);
    const a = aBlock(act, ib);
    for (let j = 0; j < QK; j++) sum += w.d * w.q[j]! * (a.d * a.q[j]!);
    if (withMin) sum += w.m * a.m;
  }
  return fround(sum);
}

export const dotRefQ4_0 = (r: Uint8Array, a: Uint8Array, n: number): number =>
  dotBlocks(r, a, n, blockQ4_0, blockQ8_0, false);
export const dotRefQ4_1 = (r: Uint8Array, a: Uint8Array, n: number): number =>
  dotBlocks(r, a, n, blockQ4_1, blockQ8_1, true);
export const dotRefQ5_0 = (r: Uint8Array, a: Uint8Array, n: number): number =>
  dotBlocks(r, a, n, blockQ5_0, blockQ8_0, false);
export const dotRefQ5_1 = (r: Uint8Array, a: Uint8Array, n: number): number =>
  dotBlocks(r, a, n, blockQ5_1, blockQ8_1, true);
export const dotRefQ8_0 = (r: Uint8Array, a: Uint8Array, n: number): number =>
  dotBlocks(r, a, n, blockQ8_0, blockQ8_0, false);

export const LEGACY_KERNELS: KernelTable = {
  Q4_0: {
    dequantize: dequantizeQ4_0,
    quantize: quantizeQ4_0,
    dotActivation: "Q8_0",
    dot: dotQ4_0,
    dotRef: dotRefQ4_0,
  },
  Q4_1: {
    dequantize: dequantizeQ4_1,
    quantize: quantizeQ4_1,
    dotActivation: "Q8_1",
    dot: dotQ4_1,
    dotRef: dotRefQ4_1,
  },
  Q5_0: {
    dequantize: dequantizeQ5_0,
    quantize: quantizeQ5_0,
    dotActivation: "Q8_0",
    dot: dotQ5_0,
    dotRef: dotRefQ5_0,
  },
  Q5_1: {
    dequantize: dequantizeQ5_1,
    quantize: quantizeQ5_1,
    dotActivation: "Q8_1",
    dot: dotQ5_1,
    dotRef: dotRefQ5_1,
  },
  Q8_0: {
    dequantize: dequantizeQ8_0,
    quantize: quantizeQ8_0,
    dotActivation: "Q8_0",
    dot: dotQ8_0,
    dotRef: dotRefQ8_0,
  },
  Q8_1: { dequantize: dequantizeQ8_1, quantize: quantizeQ8_1 },
};
