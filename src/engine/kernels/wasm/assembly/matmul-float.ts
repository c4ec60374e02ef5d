// Dot products of float rows (F32, F16, BF16 weights) with a float32 activation row. For F16 and
// BF16 the caller has rounded the activation to the weight's type (quantize.ts), as ggml's
// vec_dot_f16 / vec_dot_bf16 read a converted activation: products of two halves are exact in
// float32, so only the summation order differs from ggml_vec_dot_f16/_bf16 (vec.cpp), which
// sums in another order again in its SIMD paths. These are the one-token (T = 1) dots; T > 1
// goes through the tiles of matmul-tiles.ts.
// Signature of the dots: (w row, x (n f32), n) -> f32.
import { bf16Hi, bf16Lo, f16, f16x4, halvesHi, halvesLo, hsum } from "./common";

/** w (n f32) . x (n f32). */
export function dotF32(w: usize, x: usize, n: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const o = (<usize>i) << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(w + o), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(w + o, 16), v128.load(x + o, 16)));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(w + o, 32), v128.load(x + o, 32)));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(w + o, 48), v128.load(x + o, 48)));
  }
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(w + o), v128.load(x + o)));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; i < n; i++) s += load<f32>(w + ((<usize>i) << 2)) * load<f32>(x + ((<usize>i) << 2));
  return s;
}

/** w (n f16) . x (n f32, already rounded to f16). */
export function dotF16(w: usize, x: usize, n: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(w + ((<usize>i) << 1));
    const o = (<usize>i) << 2;
    a0 = f32x4.add(a0, f32x4.mul(f16x4(halvesLo(v)), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(f16x4(halvesHi(v)), v128.load(x + o, 16)));
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; i < n; i++) s += f16(load<u16>(w + ((<usize>i) << 1))) * load<f32>(x + ((<usize>i) << 2));
  return s;
}

/** Halves 0..3 of v, finite, as float32 times 2^-112: the bits moved into float32 position. */
@inline
function f16sLo(v: v128): v128 {
  return v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(v), 13), i32x4.splat(0x8fffe000));
}

/** Halves 4..7 of v as f16sLo. */
@inline
function f16sHi(v: v128): v128 {
  return v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(v), 13), i32x4.splat(0x8fffe000));
}

/**
 * w (n f16, no inf/NaN) . x (n f32, rounded to f16, times 2^112): each weight read as its value
 * times 2^-112 (the sign-extended bits shifted by 13, bits 28..30 cleared), which is exact (f16
 * subnormals become float32 subnormals), so every product equals the unscaled one bit for bit.
 * Four independent sums of 4 lanes each.
 */
export function dotF16S(w: usize, x: usize, n: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  const keep = i16x8.splat(<i16>0x8fff);
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    // High halves of the floats: sign, 3 zero bits, exponent, top 7 mantissa bits; low halves:
    // the last 3 mantissa bits at the top; interleaved into float32 lanes.
    const v = v128.load(w + ((<usize>i) << 1));
    const u = v128.load(w + ((<usize>i) << 1), 16);
    const vh = v128.and(i16x8.shr_s(v, 3), keep);
    const vl = i16x8.shl(v, 13);
    const uh = v128.and(i16x8.shr_s(u, 3), keep);
    const ul = i16x8.shl(u, 13);
    const o = (<usize>i) << 2;
    a0 = f32x4.add(a0, f32x4.mul(i16x8.shuffle(vl, vh, 0, 8, 1, 9, 2, 10, 3, 11), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(i16x8.shuffle(vl, vh, 4, 12, 5, 13, 6, 14, 7, 15), v128.load(x + o, 16)));
    a2 = f32x4.add(a2, f32x4.mul(i16x8.shuffle(ul, uh, 0, 8, 1, 9, 2, 10, 3, 11), v128.load(x + o, 32)));
    a3 = f32x4.add(a3, f32x4.mul(i16x8.shuffle(ul, uh, 4, 12, 5, 13, 6, 14, 7, 15), v128.load(x + o, 48)));
  }
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(w + ((<usize>i) << 1));
    const o = (<usize>i) << 2;
    a0 = f32x4.add(a0, f32x4.mul(f16sLo(v), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(f16sHi(v), v128.load(x + o, 16)));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; i < n; i++) {
    const h = <i32>load<i16>(w + ((<usize>i) << 1));
    s += reinterpret<f32>((h << 13) & 0x8fffe000) * load<f32>(x + ((<usize>i) << 2));
  }
  return s;
}

/** True when none of the n halves at w is inf or NaN (exponent bits all set). */
export function f16AllFinite(w: usize, n: i32): bool {
  const e = i16x8.splat(0x7c00);
  let any = i16x8.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) any = v128.or(any, i16x8.eq(v128.and(v128.load(w + ((<usize>i) << 1)), e), e));
  if (v128.any_true(any)) return false;
  for (; i < n; i++) if ((load<u16>(w + ((<usize>i) << 1)) & 0x7c00) == 0x7c00) return false;
  return true;
}

/** w (n bf16) . x (n f32, already rounded to bf16). */
export function dotBF16(w: usize, x: usize, n: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(w + ((<usize>i) << 1));
    const o = (<usize>i) << 2;
    a0 = f32x4.add(a0, f32x4.mul(bf16Lo(v), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(bf16Hi(v), v128.load(x + o, 16)));
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; i < n; i++)
    s += reinterpret<f32>((<u32>load<u16>(w + ((<usize>i) << 1))) << 16) * load<f32>(x + ((<usize>i) << 2));
  return s;
}

