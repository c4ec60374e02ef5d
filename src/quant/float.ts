/**
 * Kernels of the plain float types: F32, F16 and BF16 (dequantize, quantize, dot).
 *
 * Layouts (little endian, one value per "block"): F32 = float32 | F16 = IEEE binary16 |
 * BF16 = the high 16 bits of a float32.
 * Quantize follows ggml_fp32_to_fp16_row (round to nearest even, NaN -> sign|0x7e00, the portable
 * conversion libggml-base uses) and ggml_fp32_to_bf16_row_ref (round to nearest even, NaN quieted).
 * Dot follows the non-SIMD branch of ggml_vec_dot_f32/_f16/_bf16 (vec.cpp): each product in
 * float32, the products summed in float64 in index order, the sum cast to float32. That is the
 * reference vectors' `result_scalar`; ggml's SIMD kernels (`result`) sum in another order, and
 * the AVX512-FP16 F16 kernel even accumulates in half precision.
 * Not here: the block-quantized types (legacy.ts, k-quants.ts, iq.ts).
 */
import { bf16FromF32Bits, f16BitsTable, f16FromF32Bits, f16Table } from "../util/f16.ts";
import { f32View, readU16, writeU16 } from "./c-float.ts";
import type { KernelTable } from "./kernels.ts";

const fround = Math.fround;

// bf16 pattern -> float32 value; 256 KiB, like f16Table (a lookup beats a bit cast through a
// scratch array in the dot loop).
const BF16_TABLE = buildBf16Table();

function buildBf16Table(): Float32Array {
  const t = new Float32Array(65536);
  const bits = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) bits[h] = h << 16;
  return t;
}

/** 16-bit views of `bytes` (n values) when 2-byte aligned, else undefined (callers go bytewise). */
function u16View(bytes: Uint8Array, n: number): Uint16Array | undefined {
  return bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : undefined;
}

function u32Of(f: Float32Array, n: number): Uint32Array {
  return new Uint32Array(f.buffer, f.byteOffset, n);
}

// ---------------------------------------------------------------------------------------- F32

/** src (n*4 bytes) -> dst (n). */
export function dequantizeF32(src: Uint8Array, dst: Float32Array, n: number): void {
  new Uint8Array(dst.buffer, dst.byteOffset, n * 4).set(src.subarray(0, n * 4));
}

/** src (n) -> dst (n*4 bytes). */
export function quantizeF32(src: Float32Array, dst: Uint8Array, n: number): void {
  dst.set(new Uint8Array(src.buffer, src.byteOffset, n * 4));
}

/** row (n F32), act (n F32) -> float32: sum in float64 of float32 products (ggml_vec_dot_f32, scalar). */
export function dotF32(row: Uint8Array, act: Uint8Array, n: number): number {
  const x = f32View(row, n);
  const y = f32View(act, n);
  let sum = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    sum += fround(x[i]! * y[i]!);
    sum += fround(x[i + 1]! * y[i + 1]!);
    sum += fround(x[i + 2]! * y[i + 2]!);
    sum += fround(x[i + 3]! * y[i + 3]!);
  }
  for (; i < n; i++) sum += fround(x[i]! * y[i]!);
  return fround(sum);
}

/** Naive twin of dotF32: exact products, float64 sum. */
export function dotRefF32(row: Uint8Array, act: Uint8Array, n: number): number {
  const x = f32View(row, n);
  const y = f32View(act, n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i]! * y[i]!;
  return fround(sum);
}

// ---------------------------------------------------------------------------------------- F16

/** src (n halves) -> dst (n); copies float32 bit patterns, so NaN payloads survive. */
export function dequantizeF16(src: Uint8Array, dst: Float32Array, n: number): void {
  const out = u32Of(dst, n);
  const h = u16View(src, n);
  if (h) {
    const T = f16BitsTable;
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      out[i] = T[h[i]!]!;
      out[i + 1] = T[h[i + 1]!]!;
      out[i + 2] = T[h[i + 2]!]!;
      out[i + 3] = T[h[i + 3]!]!;
    }
    for (; i < n; i++) out[i] = T[h[i]!]!;
  } else {
    for (let i = 0; i < n; i++) out[i] = f16BitsTable[src[2 * i]! | (src[2 * i + 1]! << 8)]!;
  }
}

/** src (n) -> dst (n halves), ggml_fp32_to_fp16_row semantics. */
export function quantizeF16(src: Float32Array, dst: Uint8Array, n: number): void {
  const x = u32Of(src, n);
  const h = u16View(dst, n);
  if (h) {
    for (let i = 0; i < n; i++) h[i] = halfOfBits(x[i]!);
  } else {
    for (let i = 0; i < n; i++) writeU16(dst, 2 * i, halfOfBits(x[i]!));
  }
}

// NOTE: ggml's portable conversion maps every NaN to sign | 0x7e00 (payload dropped).
function halfOfBits(b: number): number {
  return (b & 0x7fffffff) > 0x7f800000 ? ((b >>> 16) & 0x8000) | 0x7e00 : f16FromF32Bits(b);
}

/**
 * row (n halves), act (n halves) -> float32. A product of two halves is exact in float32, so
 * this is the float64 sum of the exact products, in index order (`result_scalar`).
 */
export function dotF16(row: Uint8Array, act: Uint8Array, n: number): number {
  const T = f16Table;
  const x = u16View(row, n);
  const y = u16View(act, n);
  let sum = 0;
  if (x && y) {
    // NOTE: one accumulator, in index order: that order is what makes the result bit-exact.
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      sum += T[x[i]!]! * T[y[i]!]!;
      sum += T[x[i + 1]!]! * T[y[i + 1]!]!;
      sum += T[x[i + 2]!]! * T[y[i + 2]!]!;
      sum += T[x[i + 3]!]! * T[y[i + 3]!]!;
    }
    for (; i < n; i++) sum += T[x[i]!]! * T[y[i]!]!;
  } else {
    for (let i = 0; i < n; i++) sum += T[readU16(row, 2 * i)]! * T[readU16(act, 2 * i)]!;
  }
  return fround(sum);
}

/** Naive twin of dotF16: dequantize both rows, sum the products in float64. */
export function dotRefF16(row: Uint8Array, act: Uint8Array, n: number): number {
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  dequantizeF16(row, x, n);
  dequantizeF16(act, y, n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i]! * y[i]!;
  return fround(sum);
}

// --------------------------------------------------------------------------------------- BF16

/** src (n bf16) -> dst (n): the bf16 bits become the high half of the float32. */
export function dequantizeBF16(src: Uint8Array, dst: Float32Array, n: number): void {
  const out = u32Of(dst, n);
  const h = u16View(src, n);
  if (h) {
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      out[i] = h[i]! << 16;
      out[i + 1] = h[i + 1]! << 16;
      out[i + 2] = h[i + 2]! << 16;
      out[i + 3] = h[i + 3]! << 16;
    }
    for (; i < n; i++) out[i] = h[i]! << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = (src[2 * i]! << 16) | (src[2 * i + 1]! << 24);
  }
}

/** src (n) -> dst (n bf16), ggml_fp32_to_bf16_row_ref semantics (nearest even, NaN quieted). */
export function quantizeBF16(src: Float32Array, dst: Uint8Array, n: number): void {
  const x = u32Of(src, n);
  const h = u16View(dst, n);
  if (h) {
    for (let i = 0; i < n; i++) h[i] = bf16FromF32Bits(x[i]!);
  } else {
    for (let i = 0; i < n; i++) writeU16(dst, 2 * i, bf16FromF32Bits(x[i]!));
  }
}

/**
 * row (n bf16), act (n bf16) -> float32: float32 products (they can under- or overflow, so
 * rounded), summed in float64 in index order (`result_scalar`).
 */
export function dotBF16(row: Uint8Array, act: Uint8Array, n: number): number {
  const T = BF16_TABLE;
  const x = u16View(row, n);
  const y = u16View(act, n);
  let sum = 0;
  if (x && y) {
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      sum += fround(T[x[i]!]! * T[y[i]!]!);
      sum += fround(T[x[i + 1]!]! * T[y[i + 1]!]!);
      sum += fround(T[x[i + 2]!]! * T[y[i + 2]!]!);
      sum += fround(T[x[i + 3]!]! * T[y[i + 3]!]!);
    }
    for (; i < n; i++) sum += fround(T[x[i]!]! * T[y[i]!]!);
  } else {
    for (let i = 0; i < n; i++) sum += fround(T[readU16(row, 2 * i)]! * T[readU16(act, 2 * i)]!);
  }
  return fround(sum);
}

/** Naive twin of dotBF16: dequantize both rows, sum the exact products in float64. */
export function dotRefBF16(row: Uint8Array, act: Uint8Array, n: number): number {
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  dequantizeBF16(row, x, n);
  dequantizeBF16(act, y, n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i]! * y[i]!;
  return fround(sum);
}

export const FLOAT_KERNELS: KernelTable = {
  F32: {
    dequantize: dequantizeF32,
    quantize: quantizeF32,
    dotActivation: "F32",
    dot: dotF32,
    dotRef: dotRefF32,
  },
  F16: {
    dequantize: dequantizeF16,
    quantize: quantizeF16,
    dotActivation: "F16",
    dot: dotF16,
    dotRef: dotRefF16,
  },
  BF16: {
    dequantize: dequantizeBF16,
    quantize: quantizeBF16,
    dotActivation: "BF16",
    dot: dotBF16,
    dotRef: dotRefBF16,
  },
};
