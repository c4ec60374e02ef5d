// AssemblyScript helpers shared by the kernels: half-precision decoding (scalar and 4 lanes),
// horizontal sums, a SIMD expf, and C's float-to-int conversions. Compiled by ../build.mjs, not
// type-checked by tsc (i32, v128 and friends are AssemblyScript types).
// Not here: kernels (matmul-*.ts, ops.ts), quantizers (quantize.ts).

/** f16 bit pattern -> float32, exact (normals, subnormals, inf, NaN); ggml's GGML_FP16_TO_FP32. */
@inline
export function f16(h: u32): f32 {
  const e = (h & 0x7fff) << 13;
  // The magnitude bits moved into float32 position are the value times 2^-112; exact, subnormals included.
  let f = reinterpret<f32>(e) * reinterpret<f32>(0x77800000);
  if (e >= 0x0f800000) f = reinterpret<f32>(e | 0x7f800000); // inf / NaN
  return reinterpret<f32>(reinterpret<u32>(f) | ((h & 0x8000) << 16));
}

/**
 * f16 -> f32 lookup table (65536 floats, 256 KiB) at the first 64-byte aligned address past the
 * module's static data, filled once by initTables(); the JS allocator starts past it (heapBase()).
 * Block scales go through it: one L2 load instead of a dozen bit operations per block.
 */
export const F16_TABLE: usize = (__heap_base + 63) & ~(<usize>63);
export const TABLES_END: usize = F16_TABLE + (<usize>65536 << 2);

/** Fills the tables; the main thread calls it once (workers share the memory). */
export function initTables(): void {
  for (let h: u32 = 0; h < 65536; h++) store<f32>(F16_TABLE + (<usize>h << 2), f16(h));
}

/** f16 bit pattern -> float32 through the table (same values as f16()). */
@inline
export function f16t(h: u32): f32 {
  return load<f32>(F16_TABLE + (<usize>h << 2));
}

/** Four f16 patterns (zero-extended in i32 lanes) -> f32x4; f16() in SIMD. */
@inline
export function f16x4(h: v128): v128 {
  const e = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const f = f32x4.mul(e, f32x4.splat(reinterpret<f32>(0x77800000)));
  const special = i32x4.gt_s(e, i32x4.splat(0x0f7fffff));
  const m = v128.bitselect(v128.or(e, i32x4.splat(0x7f800000)), f, special);
  return v128.or(m, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

/** Lanes 0..3 of the 8 halves in v, zero-extended to i32 lanes. */
@inline
export function halvesLo(v: v128): v128 {
  return i8x16.shuffle(v, i32x4.splat(0), 0, 1, 16, 16, 2, 3, 16, 16, 4, 5, 16, 16, 6, 7, 16, 16);
}

/** Lanes 4..7 of the 8 halves in v, zero-extended to i32 lanes. */
@inline
export function halvesHi(v: v128): v128 {
  return i8x16.shuffle(v, i32x4.splat(0), 8, 9, 16, 16, 10, 11, 16, 16, 12, 13, 16, 16, 14, 15, 16, 16);
}

/** bf16 lanes 0..3 of v -> f32x4 (the bits become the high half of each float). */
@inline
export function bf16Lo(v: v128): v128 {
  return i8x16.shuffle(i32x4.splat(0), v, 0, 0, 16, 17, 0, 0, 18, 19, 0, 0, 20, 21, 0, 0, 22, 23);
}

/** bf16 lanes 4..7 of v -> f32x4. */
@inline
export function bf16Hi(v: v128): v128 {
  return i8x16.shuffle(i32x4.splat(0), v, 0, 0, 24, 25, 0, 0, 26, 27, 0, 0, 28, 29, 0, 0, 30, 31);
}

/** Sum of the 4 float lanes ((l0 + l1) + (l2 + l3)). */
@inline
export function hsum(v: v128): f32 {
  return (
    f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3))
  );
}

/** Sum of the 4 i32 lanes. */
@inline
export function hsumI(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

/** Largest of the 4 float lanes. */
@inline
export function hmax(v: v128): f32 {
  return max(max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

/**
 * expf on 4 lanes, within 2 ulp: x = n ln2 + r (|r| <= ln2/2, ln2 split in two for an exact
 * product), exp(r) = 1 + r + r^2 P(r) with Cephes' expf polynomial, times 2^n built in the
 * exponent bits. Below -87.3 the result is 0 (ggml's SIMD expf flushes there too); above 88.72
 * inf; NaN stays NaN. NOTE: pmin/pmax and the 1.5 * 2^23 rounding trick instead of f32x4.min,
 * max, nearest and trunc_sat: those carry NaN / -0 / range handling that costs 5-10 x86
 * instructions each, and made this function 4x slower.
 */
@inline
export function expv(x: v128): v128 {
  const hiLimit = f32x4.splat(88.72283);
  const loLimit = f32x4.splat(-87.33654);
  const magic = f32x4.splat(12582912.0);
  const xc = f32x4.pmax(f32x4.pmin(x, hiLimit), loLimit);
  // t = round(x / ln2) + 1.5 * 2^23, whose low mantissa bits are the integer n.
  const t = f32x4.add(f32x4.mul(xc, f32x4.splat(1.44269504)), magic);
  const n = f32x4.sub(t, magic);
  const ni = i32x4.sub(t, i32x4.splat(0x4b400000));
  let r = f32x4.sub(xc, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  const r2 = f32x4.mul(r, r);
  const e = f32x4.add(f32x4.add(f32x4.mul(p, r2), r), f32x4.splat(1.0));
  // 2^n as two factors so that n = 128 (x near 88.7) does not overflow the exponent field.
  const h = i32x4.shr_s(ni, 1);
  const s1 = i32x4.shl(i32x4.add(h, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(i32x4.sub(ni, h), i32x4.splat(127)), 23);
  let y = f32x4.mul(f32x4.mul(e, s1), s2);
  y = v128.bitselect(f32x4.splat(Infinity), y, f32x4.gt(x, hiLimit));
  return v128.andnot(y, f32x4.lt(x, loLimit));
}

/**
 * exp(x) on 4 lanes for x <= 0 (softmax: values minus their max), within 2 ulp: ggml_v_expf's
 * algorithm (ggml-cpu/vec.h, which llama.cpp's softmax runs) with separate multiplies and adds:
 * x = n ln2 + b, exp(b) by a degree-5 polynomial evaluated as two halves (shorter dependency
 * chains than Horner's: 1.2x expv's throughput here), times 2^n built in the exponent bits; 0
 * below -87.3 (as expv), NaN stays NaN. Not for x > 0: 2^n overflows the exponent field past 127.
 */
@inline
export function expNeg(x: v128): v128 {
  const r = f32x4.splat(12582912.0); // 1.5 * 2^23: round to integer
  const z = f32x4.add(f32x4.mul(x, f32x4.splat(1.44269502)), r);
  const n = f32x4.sub(z, r);
  const b = f32x4.sub(f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693145752))), f32x4.mul(n, f32x4.splat(1.42860677e-6)));
  const k = i32x4.add(i32x4.shl(z, 23), f32x4.splat(1));
  const u = f32x4.mul(b, b);
  const p1 = f32x4.add(f32x4.mul(f32x4.splat(0.00824901182), b), f32x4.splat(0.0418978221));
  const p2 = f32x4.add(f32x4.mul(f32x4.splat(0.166676521), b), f32x4.splat(0.499991506));
  const j = f32x4.add(f32x4.mul(f32x4.add(f32x4.mul(p1, u), p2), u), f32x4.mul(f32x4.splat(0.999999642), b));
  return v128.andnot(f32x4.add(f32x4.mul(j, k), k), f32x4.lt(x, f32x4.splat(-87.33654)));
}

/** expf of one value through the 4-lane version (same results as the SIMD loops). */
@inline
export function expf1(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

/**
 * C's (int)(float) for in-range values. The conversion is saturating (nontrapping-f2i, on by
 * default in AssemblyScript): NaN gives 0 where x86 gives INT_MIN; both have low byte 0.
 */
@inline
export function truncI32(v: f32): i32 {
  return <i32>v;
}

/** C's roundf: halfway cases away from zero (in float64, where |v| + 0.5 is exact). */
@inline
export function roundf(v: f32): f32 {
  const a = Math.floor(<f64>Mathf.abs(v) + 0.5);
  return <f32>(v < 0 ? -a : a);
}

/** ggml's nearest_int: round to nearest, ties to even, through the 1.5 * 2^23 trick. */
@inline
export function nearestInt(v: f32): i32 {
  const f = v + <f32>12582912.0;
  return (reinterpret<i32>(f) & 0x007fffff) - 0x00400000;
}

/** float32 -> f16 bits, round to nearest even; NaN -> sign | 0x7e00 (ggml_compute_fp32_to_fp16). */
export function toF16Bits(v: f32): u32 {
  const x = reinterpret<u32>(v);
  const sign = (x >> 16) & 0x8000;
  const exp = <i32>((x >> 23) & 0xff);
  let mant = x & 0x7fffff;
  if (exp == 0xff) return mant != 0 ? sign | 0x7e00 : sign | 0x7c00;
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = <u32>(14 - e);
    const half: u32 = 1 << (shift - 1);
    let r = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem == half && (r & 1) != 0)) r += 1;
    return sign | r;
  }
  let r = (<u32>e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1) != 0)) r += 1;
  return sign | r;
}

/**
 * f16(toF16Bits(x)) on 4 lanes: each value rounded to the nearest half (ties to even) and back.
 * |x| >= 2^-14: the float32 bits rounded at bit 13 (a carry into the exponent is the right
 * result; 65520 and up become inf); below: (|x| + 0.5) - 0.5, which rounds to a multiple of
 * 2^-24, the half subnormals' step. NaN stays NaN, the sign is kept.
 */
@inline
export function roundF16x4(x: v128): v128 {
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  const odd = v128.and(i32x4.shr_u(a, 13), i32x4.splat(1));
  let r = v128.and(i32x4.add(i32x4.add(a, i32x4.splat(0x0fff)), odd), i32x4.splat(0xffffe000));
  r = v128.bitselect(i32x4.splat(0x7f800000), r, i32x4.gt_s(r, i32x4.splat(0x477fffff)));
  r = v128.bitselect(i32x4.splat(0x7fc00000), r, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  const sub = f32x4.sub(f32x4.add(a, f32x4.splat(0.5)), f32x4.splat(0.5));
  r = v128.bitselect(sub, r, i32x4.lt_s(a, i32x4.splat(0x38800000)));
  return v128.or(r, v128.and(x, i32x4.splat(0x80000000)));
}

/** float32 -> bf16 bits, round to nearest even, NaN quieted (ggml_compute_fp32_to_bf16). */
@inline
export function toBf16Bits(v: f32): u32 {
  const u = reinterpret<u32>(v);
  if ((u & 0x7fffffff) > 0x7f800000) return (u >> 16) | 64;
  return (u + (0x7fff + ((u >> 16) & 1))) >> 16;
}
