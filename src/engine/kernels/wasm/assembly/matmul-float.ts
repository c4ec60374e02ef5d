// Dot products of float rows (F32, F16, BF16 weights) with a float32 activation row. For F16 and
// BF16 the caller has rounded the activation to the weight's type (quantize.ts), as ggml's
// vec_dot_f16 / vec_dot_bf16 read a converted activation: products of two halves are exact in
// float32, so only the summation order differs from ggml_vec_dot_f16/_bf16 (vec.cpp), which
// sums in another order again in its SIMD paths. Also a 1-row x 4-token F32 kernel for T > 1
// (one weight load feeds four tokens) and row conversions to float32 for it.
// Signature of the single dots: (w row, x (n f32), n) -> f32.
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

/** w (n f16) -> out (n f32). */
export function f16RowToF32(w: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(w + ((<usize>i) << 1));
    v128.store(out + ((<usize>i) << 2), f16x4(halvesLo(v)));
    v128.store(out + ((<usize>i) << 2), f16x4(halvesHi(v)), 16);
  }
  for (; i < n; i++) store<f32>(out + ((<usize>i) << 2), f16(load<u16>(w + ((<usize>i) << 1))));
}

/** w (n bf16) -> out (n f32). */
export function bf16RowToF32(w: usize, out: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const v = v128.load(w + ((<usize>i) << 1));
    v128.store(out + ((<usize>i) << 2), bf16Lo(v));
    v128.store(out + ((<usize>i) << 2), bf16Hi(v), 16);
  }
  for (; i < n; i++) store<u32>(out + ((<usize>i) << 2), (<u32>load<u16>(w + ((<usize>i) << 1))) << 16);
}

/**
 * w (n f32) . x_t (n f32) for 4 tokens t at x, x + xs, x + 2 xs, x + 3 xs (xs in bytes); the 4
 * results go to y, y + ys, y + 2 ys, y + 3 ys.
 */
export function dot4F32(w: usize, x: usize, xs: usize, n: i32, y: usize, ys: usize): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0);
  let b1 = f32x4.splat(0);
  let b2 = f32x4.splat(0);
  let b3 = f32x4.splat(0);
  const x1 = x + xs;
  const x2 = x1 + xs;
  const x3 = x2 + xs;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = (<usize>i) << 2;
    const v = v128.load(w + o);
    const u = v128.load(w + o, 16);
    a0 = f32x4.add(a0, f32x4.mul(v, v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(v, v128.load(x1 + o)));
    a2 = f32x4.add(a2, f32x4.mul(v, v128.load(x2 + o)));
    a3 = f32x4.add(a3, f32x4.mul(v, v128.load(x3 + o)));
    b0 = f32x4.add(b0, f32x4.mul(u, v128.load(x + o, 16)));
    b1 = f32x4.add(b1, f32x4.mul(u, v128.load(x1 + o, 16)));
    b2 = f32x4.add(b2, f32x4.mul(u, v128.load(x2 + o, 16)));
    b3 = f32x4.add(b3, f32x4.mul(u, v128.load(x3 + o, 16)));
  }
  let s0 = hsum(f32x4.add(a0, b0));
  let s1 = hsum(f32x4.add(a1, b1));
  let s2 = hsum(f32x4.add(a2, b2));
  let s3 = hsum(f32x4.add(a3, b3));
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const v = load<f32>(w + o);
    s0 += v * load<f32>(x + o);
    s1 += v * load<f32>(x1 + o);
    s2 += v * load<f32>(x2 + o);
    s3 += v * load<f32>(x3 + o);
  }
  store<f32>(y, s0);
  store<f32>(y + ys, s1);
  store<f32>(y + 2 * ys, s2);
  store<f32>(y + 3 * ys, s3);
}
