/**
 * IEEE-754 half precision (F16) and bfloat16 (BF16) conversions, bit-exact with ggml.
 *
 * F16: round to nearest, ties to even, with subnormals, infinities and NaN, as the hardware
 * conversion (F16C / vcvtps2ph) and ggml's portable fallback both do.
 * BF16: ggml_compute_fp32_to_bf16 rounds to nearest even and turns a NaN into a quiet NaN.
 * Not here: bulk row conversion (see quant/float.ts); the *Bits variants below are its building blocks.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 value -> 16-bit pattern of the nearest half (ties to even). */
export function f32ToF16(value: number): number {
  f32[0] = value;
  return f16FromF32Bits(u32[0]!);
}

/** float32 bit pattern (uint32) -> 16-bit pattern of the nearest half; f32ToF16 without the scratch. */
export function f16FromF32Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Inf or NaN; keep NaN quiet and non-zero.
    return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  }
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    // Subnormal half or zero.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1) !== 0)) r += 1;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) !== 0)) r += 1; // may carry into exponent: correct
  return sign | r;
}

const F16_TABLE = buildF16Table();

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = mant * 2 ** -24;
    else if (exp === 0x1f) v = mant === 0 ? Number.POSITIVE_INFINITY : Number.NaN;
    else v = (1 + mant / 1024) * 2 ** (exp - 15);
    table[h] = sign * v;
  }
  // NOTE: a JS NaN stored into a Float32Array becomes the canonical 0x7fc00000. Keep the sign and
  // payload instead (quieted, as vcvtph2ps and ggml's portable conversion both do), so a kernel
  // that copies the table's bits reproduces ggml's NaNs too.
  const bits = new Uint32Array(table.buffer);
  for (let m = 1; m < 0x400; m++) {
    bits[0x7c00 | m] = 0x7fc00000 | (m << 13);
    bits[0xfc00 | m] = 0xffc00000 | (m << 13);
  }
  return table;
}

/** 16-bit half pattern -> float32 value (exact). */
export function f16ToF32(bits: number): number {
  return F16_TABLE[bits & 0xffff]!;
}

/** The whole 65536-entry half -> float table, for kernels that index it directly. */
export const f16Table: Float32Array = F16_TABLE;

/** The same table as float32 bit patterns, for kernels that copy bits (NaN payloads survive). */
export const f16BitsTable: Uint32Array = new Uint32Array(F16_TABLE.buffer);

/** float32 value -> bfloat16 bit pattern, ggml_compute_fp32_to_bf16 semantics. */
export function f32ToBf16(value: number): number {
  f32[0] = value;
  return bf16FromF32Bits(u32[0]!);
}

/** float32 bit pattern (uint32) -> bfloat16 bit pattern; f32ToBf16 without the scratch. */
export function bf16FromF32Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 64) & 0xffff; // quiet NaN
  return ((x + (0x7fff + ((x >>> 16) & 1))) >>> 16) & 0xffff;
}

/** bfloat16 bit pattern -> float32 value (exact). */
export function bf16ToF32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}
