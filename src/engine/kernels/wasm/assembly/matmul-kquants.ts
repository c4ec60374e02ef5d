// Dot products of one K-quant row (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; 256 values per super-block,
// layouts in src/quant/k-quants.ts) with one activation row quantized to Q8_K and expanded to EO
// i16 (quantize.ts). They follow ggml_vec_dot_q{2..6}_K_q8_K (ggml-cpu/quants.c): per block the
// integer sums, times the integer sub-block scales, are exact (i32 lanes); the mins of Q2_K,
// Q4_K and Q5_K are taken from the activation's bsums as ggml does; float32 only for the block
// scale products, applied per lane and summed at the end (another order than ggml's scalar
// loop; tolerance-tested).
//
// Every 32 consecutive values of these layouts sit at the same bit position of 32 consecutive
// bytes, so 2 x 16 bytes read as i16 lanes give the four EO slots with shifts and masks (see
// matmul-legacy.ts). Signature: (w row, qs (nb*256 i16 EO), d (nb f32), bsums (nb*16 i32), nb) -> f32.
import { f16t, hsum } from "./common";

/** Lane sums of slots A, B (the first 16 values of a group of 32) with the activation at a. */
@inline
function dotAB(qA: v128, qB: v128, a: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(qA, v128.load(a)), i32x4.dot_i16x8_s(qB, v128.load(a, 16)));
}

/** Lane sums of slots C, D (the last 16 values of a group of 32). */
@inline
function dotCD(qC: v128, qD: v128, a: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(qC, v128.load(a, 32)), i32x4.dot_i16x8_s(qD, v128.load(a, 48)));
}

/** get_scale_min_k4's scale j (0..7) of the 12 packed bytes at s. */
@inline
function scaleK4(s: usize, j: i32): i32 {
  return j < 4
    ? <i32>load<u8>(s + j) & 63
    : (<i32>load<u8>(s + j + 4) & 0xf) | ((<i32>load<u8>(s + j - 4) >> 6) << 4);
}

/** get_scale_min_k4's min j (0..7). */
@inline
function minK4(s: usize, j: i32): i32 {
  return j < 4
    ? <i32>load<u8>(s + j + 4) & 63
    : (<i32>load<u8>(s + j + 4) >> 4) | ((<i32>load<u8>(s + j) >> 6) << 4);
}

/** Q3_K's 6-bit scale j (0..15), bias removed. */
@inline
function scaleQ3K(s: usize, j: i32): i32 {
  const lo = j < 8 ? <i32>load<u8>(s + j) & 0xf : <i32>load<u8>(s + j - 8) >> 4;
  return (lo | (((<i32>load<u8>(s + 8 + (j & 3)) >> (2 * (j >> 2))) & 3) << 4)) - 32;
}

/** block_q2_K (84 B) row . Q8_K; ggml_vec_dot_q2_K_q8_K. */
export function dotQ2K(w: usize, qs: usize, d: usize, bsums: usize, nb: i32): f32 {
  const m3 = i16x8.splat(3);
  let acc = f32x4.splat(0);
  let accm: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 84;
    const ab = qs + (<usize>b << 9);
    const bs = bsums + (<usize>b << 6);
    let isum = i32x4.splat(0);
    for (let c = 0; c < 2; c++) {
      const q0 = v128.load(p + 16 + 32 * c);
      const q1 = v128.load(p + 32 + 32 * c);
      for (let k = 0; k < 4; k++) {
        const sh = 2 * k;
        const a = ab + (<usize>(4 * c + k) << 6);
        const sAB = dotAB(v128.and(i16x8.shr_u(q0, sh), m3), v128.and(i16x8.shr_u(q0, 8 + sh), m3), a);
        const sCD = dotCD(v128.and(i16x8.shr_u(q1, sh), m3), v128.and(i16x8.shr_u(q1, 8 + sh), m3), a);
        const si = p + 8 * c + 2 * k;
        isum = i32x4.add(isum, i32x4.mul(sAB, i32x4.splat(<i32>load<u8>(si) & 15)));
        isum = i32x4.add(isum, i32x4.mul(sCD, i32x4.splat(<i32>load<u8>(si, 1) & 15)));
      }
    }
    let summs = 0;
    for (let j = 0; j < 16; j++) summs += (<i32>load<u8>(p + j) >> 4) * load<i32>(bs + (<usize>j << 2));
    const d8 = load<f32>(d + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(d8 * f16t(load<u16>(p, 80)))));
    accm += d8 * f16t(load<u16>(p, 82)) * <f32>summs;
  }
  return hsum(acc) - accm;
}

/** block_q3_K (110 B) row . Q8_K; ggml_vec_dot_q3_K_q8_K. */
export function dotQ3K(w: usize, qs: usize, d: usize, bsums: usize, nb: i32): f32 {
  const m3 = i16x8.splat(3);
  const m4 = i16x8.splat(4);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 110;
    const ab = qs + (<usize>b << 9);
    const h0 = v128.load(p);
    const h1 = v128.load(p, 16);
    const h0lo = i16x8.shl(h0, 8);
    const h1lo = i16x8.shl(h1, 8);
    let isum = i32x4.splat(0);
    for (let c = 0; c < 2; c++) {
      const q0 = v128.load(p + 32 + 32 * c);
      const q1 = v128.load(p + 48 + 32 * c);
      for (let k = 0; k < 4; k++) {
        const sh = 2 * k;
        const hs = 4 * c + k + 6; // hmask bit g = 4c + k moved to bit 2
        // value = (2 low bits | high bit << 2) - 4: a clear high bit means -4.
        const qA = i16x8.sub(v128.or(v128.and(i16x8.shr_u(q0, sh), m3), v128.and(i16x8.shr_u(h0lo, hs), m4)), m4);
        const qB = i16x8.sub(v128.or(v128.and(i16x8.shr_u(q0, 8 + sh), m3), v128.and(i16x8.shr_u(h0, hs), m4)), m4);
        const qC = i16x8.sub(v128.or(v128.and(i16x8.shr_u(q1, sh), m3), v128.and(i16x8.shr_u(h1lo, hs), m4)), m4);
        const qD = i16x8.sub(v128.or(v128.and(i16x8.shr_u(q1, 8 + sh), m3), v128.and(i16x8.shr_u(h1, hs), m4)), m4);
        const a = ab + (<usize>(4 * c + k) << 6);
        const j = 8 * c + 2 * k;
        isum = i32x4.add(isum, i32x4.mul(dotAB(qA, qB, a), i32x4.splat(scaleQ3K(p + 96, j))));
        isum = i32x4.add(isum, i32x4.mul(dotCD(qC, qD, a), i32x4.splat(scaleQ3K(p + 96, j + 1))));
      }
    }
    const dd = f16t(load<u16>(p, 108)) * load<f32>(d + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dd)));
  }
  return hsum(acc);
}

/** block_q4_K (144 B) row . Q8_K; ggml_vec_dot_q4_K_q8_K. */
export function dotQ4K(w: usize, qs: usize, d: usize, bsums: usize, nb: i32): f32 {
  const m = i16x8.splat(15);
  let acc = f32x4.splat(0);
  let accm: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 144;
    const ab = qs + (<usize>b << 9);
    const bs = bsums + (<usize>b << 6);
    let isum = i32x4.splat(0);
    let summ = 0;
    for (let j = 0; j < 4; j++) {
      const c0 = v128.load(p + 16 + 32 * j);
      const c1 = v128.load(p + 32 + 32 * j);
      const a = ab + (<usize>j << 7);
      // Group 2j: low nibbles; group 2j + 1: high nibbles.
      let s0 = dotAB(v128.and(c0, m), v128.and(i16x8.shr_u(c0, 8), m), a);
      s0 = i32x4.add(s0, dotCD(v128.and(c1, m), v128.and(i16x8.shr_u(c1, 8), m), a));
      let s1 = dotAB(v128.and(i16x8.shr_u(c0, 4), m), i16x8.shr_u(c0, 12), a + 64);
      s1 = i32x4.add(s1, dotCD(v128.and(i16x8.shr_u(c1, 4), m), i16x8.shr_u(c1, 12), a + 64));
      isum = i32x4.add(isum, i32x4.mul(s0, i32x4.splat(scaleK4(p + 4, 2 * j))));
      isum = i32x4.add(isum, i32x4.mul(s1, i32x4.splat(scaleK4(p + 4, 2 * j + 1))));
      const bo = bs + (<usize>j << 4);
      summ +=
        minK4(p + 4, 2 * j) * (load<i32>(bo) + load<i32>(bo, 4)) +
        minK4(p + 4, 2 * j + 1) * (load<i32>(bo, 8) + load<i32>(bo, 12));
    }
    const d8 = load<f32>(d + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(f16t(load<u16>(p)) * d8)));
    accm += f16t(load<u16>(p, 2)) * d8 * <f32>summ;
  }
  return hsum(acc) - accm;
}

/**
 * dotQ4K of two rows at w and w + rb with the same activation, whose loads they share: y[0], y[1]
 * get exactly what dotQ4K gives for each row (same operations in the same order).
 */
export function dotQ4Kx2(w: usize, rb: usize, qs: usize, d: usize, bsums: usize, nb: i32, y: usize): void {
  const m = i16x8.splat(15);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let accm0: f32 = 0;
  let accm1: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 144;
    const q = p + rb;
    const ab = qs + (<usize>b << 9);
    const bs = bsums + (<usize>b << 6);
    let isum0 = i32x4.splat(0);
    let isum1 = i32x4.splat(0);
    let summ0 = 0;
    let summ1 = 0;
    for (let j = 0; j < 4; j++) {
      const a = ab + (<usize>j << 7);
      const a0 = v128.load(a);
      const a1 = v128.load(a, 16);
      const a2 = v128.load(a, 32);
      const a3 = v128.load(a, 48);
      const a4 = v128.load(a, 64);
      const a5 = v128.load(a, 80);
      const a6 = v128.load(a, 96);
      const a7 = v128.load(a, 112);
      const bo = bs + (<usize>j << 4);
      const bsA = load<i32>(bo) + load<i32>(bo, 4);
      const bsB = load<i32>(bo, 8) + load<i32>(bo, 12);
      let c0 = v128.load(p + 16 + 32 * j);
      let c1 = v128.load(p + 32 + 32 * j);
      let s0 = i32x4.add(i32x4.dot_i16x8_s(v128.and(c0, m), a0), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(c0, 8), m), a1));
      s0 = i32x4.add(s0, i32x4.add(i32x4.dot_i16x8_s(v128.and(c1, m), a2), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(c1, 8), m), a3)));
      let s1 = i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(c0, 4), m), a4), i32x4.dot_i16x8_s(i16x8.shr_u(c0, 12), a5));
      s1 = i32x4.add(s1, i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(c1, 4), m), a6), i32x4.dot_i16x8_s(i16x8.shr_u(c1, 12), a7)));
      isum0 = i32x4.add(isum0, i32x4.mul(s0, i32x4.splat(scaleK4(p + 4, 2 * j))));
      isum0 = i32x4.add(isum0, i32x4.mul(s1, i32x4.splat(scaleK4(p + 4, 2 * j + 1))));
      summ0 += minK4(p + 4, 2 * j) * bsA + minK4(p + 4, 2 * j + 1) * bsB;
      c0 = v128.load(q + 16 + 32 * j);
      c1 = v128.load(q + 32 + 32 * j);
      s0 = i32x4.add(i32x4.dot_i16x8_s(v128.and(c0, m), a0), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(c0, 8), m), a1));
      s0 = i32x4.add(s0, i32x4.add(i32x4.dot_i16x8_s(v128.and(c1, m), a2), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(c1, 8), m), a3)));
      s1 = i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(c0, 4), m), a4), i32x4.dot_i16x8_s(i16x8.shr_u(c0, 12), a5));
      s1 = i32x4.add(s1, i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(c1, 4), m), a6), i32x4.dot_i16x8_s(i16x8.shr_u(c1, 12), a7)));
      isum1 = i32x4.add(isum1, i32x4.mul(s0, i32x4.splat(scaleK4(q + 4, 2 * j))));
      isum1 = i32x4.add(isum1, i32x4.mul(s1, i32x4.splat(scaleK4(q + 4, 2 * j + 1))));
      summ1 += minK4(q + 4, 2 * j) * bsA + minK4(q + 4, 2 * j + 1) * bsB;
    }
    const d8 = load<f32>(d + (<usize>b << 2));
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.convert_i32x4_s(isum0), f32x4.splat(f16t(load<u16>(p)) * d8)));
    accm0 += f16t(load<u16>(p, 2)) * d8 * <f32>summ0;
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.convert_i32x4_s(isum1), f32x4.splat(f16t(load<u16>(q)) * d8)));
    accm1 += f16t(load<u16>(q, 2)) * d8 * <f32>summ1;
  }
  store<f32>(y, hsum(acc0) - accm0);
  store<f32>(y, hsum(acc1) - accm1, 4);
}

/** block_q5_K (176 B) row . Q8_K; ggml_vec_dot_q5_K_q8_K. */
export function dotQ5K(w: usize, qs: usize, d: usize, bsums: usize, nb: i32): f32 {
  const m = i16x8.splat(15);
  const m16 = i16x8.splat(16);
  let acc = f32x4.splat(0);
  let accm: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 176;
    const ab = qs + (<usize>b << 9);
    const bs = bsums + (<usize>b << 6);
    const h0 = v128.load(p, 16);
    const h1 = v128.load(p, 32);
    const h0lo = i16x8.shl(h0, 4);
    const h1lo = i16x8.shl(h1, 4);
    let isum = i32x4.splat(0);
    let summ = 0;
    for (let j = 0; j < 4; j++) {
      const c0 = v128.load(p + 48 + 32 * j);
      const c1 = v128.load(p + 64 + 32 * j);
      const a = ab + (<usize>j << 7);
      // qh bit g of byte l is bit 4 of value 32g + l: low bytes after << 4, high bytes as they are.
      const g0 = 2 * j;
      const g1 = 2 * j + 1;
      let s0 = dotAB(
        v128.or(v128.and(c0, m), v128.and(i16x8.shr_u(h0lo, g0), m16)),
        v128.or(v128.and(i16x8.shr_u(c0, 8), m), v128.and(i16x8.shr_u(h0, g0 + 4), m16)),
        a,
      );
      s0 = i32x4.add(
        s0,
        dotCD(
          v128.or(v128.and(c1, m), v128.and(i16x8.shr_u(h1lo, g0), m16)),
          v128.or(v128.and(i16x8.shr_u(c1, 8), m), v128.and(i16x8.shr_u(h1, g0 + 4), m16)),
          a,
        ),
      );
      let s1 = dotAB(
        v128.or(v128.and(i16x8.shr_u(c0, 4), m), v128.and(i16x8.shr_u(h0lo, g1), m16)),
        v128.or(i16x8.shr_u(c0, 12), v128.and(i16x8.shr_u(h0, g1 + 4), m16)),
        a + 64,
      );
      s1 = i32x4.add(
        s1,
        dotCD(
          v128.or(v128.and(i16x8.shr_u(c1, 4), m), v128.and(i16x8.shr_u(h1lo, g1), m16)),
          v128.or(i16x8.shr_u(c1, 12), v128.and(i16x8.shr_u(h1, g1 + 4), m16)),
          a + 64,
        ),
      );
      isum = i32x4.add(isum, i32x4.mul(s0, i32x4.splat(scaleK4(p + 4, g0))));
      isum = i32x4.add(isum, i32x4.mul(s1, i32x4.splat(scaleK4(p + 4, g1))));
      const bo = bs + (<usize>j << 4);
      summ +=
        minK4(p + 4, g0) * (load<i32>(bo) + load<i32>(bo, 4)) +
        minK4(p + 4, g1) * (load<i32>(bo, 8) + load<i32>(bo, 12));
    }
    const d8 = load<f32>(d + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(f16t(load<u16>(p)) * d8)));
    accm += f16t(load<u16>(p, 2)) * d8 * <f32>summ;
  }
  return hsum(acc) - accm;
}

/** block_q6_K (210 B) row . Q8_K; ggml_vec_dot_q6_K_q8_K. */
export function dotQ6K(w: usize, qs: usize, d: usize, bsums: usize, nb: i32): f32 {
  const m = i16x8.splat(15);
  const m48 = i16x8.splat(0x30);
  const e32 = i16x8.splat(32);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 210;
    const ab = qs + (<usize>b << 9);
    let isum = i32x4.splat(0);
    for (let c = 0; c < 2; c++) {
      const qh0 = v128.load(p + 128 + 32 * c);
      const qh1 = v128.load(p + 144 + 32 * c);
      const qh0lo = i16x8.shl(qh0, 4);
      const qh1lo = i16x8.shl(qh1, 4);
      for (let k = 0; k < 4; k++) {
        // Values 128c + 32k + l: low 4 bits in ql[64c + 32(k&1) + l] at bit 4(k>>1), high 2 bits
        // in qh[32c + l] at bit 2k; scale 8c + 2k (l < 16) and 8c + 2k + 1.
        const qlp = p + 64 * c + 32 * (k & 1);
        const ql0 = v128.load(qlp);
        const ql1 = v128.load(qlp, 16);
        const ns = 4 * (k >> 1);
        const hs = 2 * k;
        const qA = i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql0, ns), m), v128.and(i16x8.shr_u(qh0lo, hs), m48)), e32);
        const qB = i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql0, 8 + ns), m), v128.and(i16x8.shr_u(qh0, 4 + hs), m48)), e32);
        const qC = i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql1, ns), m), v128.and(i16x8.shr_u(qh1lo, hs), m48)), e32);
        const qD = i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql1, 8 + ns), m), v128.and(i16x8.shr_u(qh1, 4 + hs), m48)), e32);
        const a = ab + (<usize>(4 * c + k) << 6);
        const sp = p + 192 + 8 * c + 2 * k;
        isum = i32x4.add(isum, i32x4.mul(dotAB(qA, qB, a), i32x4.splat(<i32>load<i8>(sp))));
        isum = i32x4.add(isum, i32x4.mul(dotCD(qC, qD, a), i32x4.splat(<i32>load<i8>(sp, 1))));
      }
    }
    const dd = f16t(load<u16>(p, 208)) * load<f32>(d + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dd)));
  }
  return hsum(acc);
}
