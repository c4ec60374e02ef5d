// The T > 1 path of the K-quant matrix products (the legacy types have theirs in matmul-tiles.ts):
// each weight row is decoded once into a per-thread scratch (EO i16 quants with their offsets
// applied, integer sub-block scales and mins, float block scales), then dotted with every token's
// activation. The integer sums and their scaling are the same as the fused single-token dots
// (matmul-kquants.ts) and ggml's vec_dot: decoding once instead of once per token is what this buys.
//
// K-quant rows are stored with each quant already times its sub-block scale (|q sc| <= 4096 fits
// i16), so their dots need no per-16 multiply; the integer block sums are unchanged.
// Tokens come four at a time (dotDecoded*4): each decoded vector is loaded once for four tokens
// and the four block sums are added across lanes together before their one conversion to float.
//
// Decoded row (C values) at `dec`: q i16[C] EO | sc i32[C/16] (scale per 16 values) |
// fd f32[C/32 or C/256] (block scale; C/32 slots kept for the layout) | mn i32[C/16] (min per 16) |
// md f32[C/256] (dmin). decodedBytes(C) bytes in all.
import { f16t, hsum } from "./common";
import { T_Q2_K, T_Q3_K, T_Q4_K, T_Q5_K } from "./types";

@inline function scOff(C: i32): usize {
  return <usize>C << 1;
}
@inline function fdOff(C: i32): usize {
  return scOff(C) + (<usize>(C >> 4) << 2);
}
@inline function mnOff(C: i32): usize {
  return fdOff(C) + (<usize>(C >> 5) << 2);
}
@inline function mdOff(C: i32): usize {
  return mnOff(C) + (<usize>(C >> 4) << 2);
}

/** Bytes of a decoded row of C values. */
export function decodedBytes(C: i32): i32 {
  return <i32>mdOff(C) + ((C >> 8) << 2) + 64;
}

@inline
function store4(q: usize, a: v128, b: v128, c: v128, d: v128): void {
  v128.store(q, a);
  v128.store(q, b, 16);
  v128.store(q, c, 32);
  v128.store(q, d, 48);
}

/** Decodes row w (C values stored as K-quant `type`) into dec. */
export function decodeRow(type: i32, w: usize, C: i32, dec: usize): void {
  const m = i16x8.splat(15);
  const fd = dec + fdOff(C);
  const mn = dec + mnOff(C);
  const sc = dec + scOff(C);
  const md = dec + mdOff(C);
  const nb = C >> 8;
  const m3 = i16x8.splat(3);
  for (let b = 0; b < nb; b++) {
    const qb = dec + (<usize>b << 9);
    const scb = sc + (<usize>b << 6);
    const mnb = mn + (<usize>b << 6);
    const bo = <usize>b << 2;
    if (type == T_Q2_K) {
      const p = w + <usize>b * 84;
      for (let c = 0; c < 2; c++) {
        const q0 = v128.load(p + 16 + 32 * c);
        const q1 = v128.load(p + 32 + 32 * c);
        for (let k = 0; k < 4; k++) {
          const sh = 2 * k;
          store4(
            qb + (<usize>(4 * c + k) << 6),
            v128.and(i16x8.shr_u(q0, sh), m3),
            v128.and(i16x8.shr_u(q0, 8 + sh), m3),
            v128.and(i16x8.shr_u(q1, sh), m3),
            v128.and(i16x8.shr_u(q1, 8 + sh), m3),
          );
        }
      }
      for (let j = 0; j < 16; j++) {
        const s = <i32>load<u8>(p + j);
        store<i32>(scb + (<usize>j << 2), s & 15);
        store<i32>(mnb + (<usize>j << 2), s >> 4);
      }
      store<f32>(fd + bo, f16t(load<u16>(p, 80)));
      store<f32>(md + bo, f16t(load<u16>(p, 82)));
    } else if (type == T_Q3_K) {
      const p = w + <usize>b * 110;
      const m4 = i16x8.splat(4);
      const h0 = v128.load(p);
      const h1 = v128.load(p, 16);
      const h0lo = i16x8.shl(h0, 8);
      const h1lo = i16x8.shl(h1, 8);
      for (let c = 0; c < 2; c++) {
        const q0 = v128.load(p + 32 + 32 * c);
        const q1 = v128.load(p + 48 + 32 * c);
        for (let k = 0; k < 4; k++) {
          const sh = 2 * k;
          const hs = 4 * c + k + 6;
          store4(
            qb + (<usize>(4 * c + k) << 6),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(q0, sh), m3), v128.and(i16x8.shr_u(h0lo, hs), m4)), m4),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(q0, 8 + sh), m3), v128.and(i16x8.shr_u(h0, hs), m4)), m4),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(q1, sh), m3), v128.and(i16x8.shr_u(h1lo, hs), m4)), m4),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(q1, 8 + sh), m3), v128.and(i16x8.shr_u(h1, hs), m4)), m4),
          );
        }
      }
      const s = p + 96;
      for (let j = 0; j < 16; j++) {
        const lo = j < 8 ? <i32>load<u8>(s + j) & 0xf : <i32>load<u8>(s + j - 8) >> 4;
        store<i32>(scb + (<usize>j << 2), (lo | (((<i32>load<u8>(s + 8 + (j & 3)) >> (2 * (j >> 2))) & 3) << 4)) - 32);
      }
      store<f32>(fd + bo, f16t(load<u16>(p, 108)));
    } else if (type == T_Q4_K || type == T_Q5_K) {
      const five = type == T_Q5_K;
      const p = w + <usize>b * (five ? 176 : 144);
      const qs = p + (five ? 48 : 16);
      const m16 = i16x8.splat(16);
      const h0 = v128.load(p, 16);
      const h1 = v128.load(p, 32);
      const h0lo = i16x8.shl(h0, 4);
      const h1lo = i16x8.shl(h1, 4);
      const zero = i16x8.splat(0);
      for (let j = 0; j < 4; j++) {
        const c0 = v128.load(qs + 32 * j);
        const c1 = v128.load(qs + 32 * j + 16);
        const g0 = 2 * j;
        const g1 = 2 * j + 1;
        store4(
          qb + (<usize>g0 << 6),
          v128.or(v128.and(c0, m), five ? v128.and(i16x8.shr_u(h0lo, g0), m16) : zero),
          v128.or(v128.and(i16x8.shr_u(c0, 8), m), five ? v128.and(i16x8.shr_u(h0, g0 + 4), m16) : zero),
          v128.or(v128.and(c1, m), five ? v128.and(i16x8.shr_u(h1lo, g0), m16) : zero),
          v128.or(v128.and(i16x8.shr_u(c1, 8), m), five ? v128.and(i16x8.shr_u(h1, g0 + 4), m16) : zero),
        );
        store4(
          qb + (<usize>g1 << 6),
          v128.or(v128.and(i16x8.shr_u(c0, 4), m), five ? v128.and(i16x8.shr_u(h0lo, g1), m16) : zero),
          v128.or(i16x8.shr_u(c0, 12), five ? v128.and(i16x8.shr_u(h0, g1 + 4), m16) : zero),
          v128.or(v128.and(i16x8.shr_u(c1, 4), m), five ? v128.and(i16x8.shr_u(h1lo, g1), m16) : zero),
          v128.or(i16x8.shr_u(c1, 12), five ? v128.and(i16x8.shr_u(h1, g1 + 4), m16) : zero),
        );
      }
      // get_scale_min_k4: 8 scales and 8 mins of 6 bits, each for 32 values (two entries of 16).
      const s = p + 4;
      for (let j = 0; j < 8; j++) {
        const scv =
          j < 4 ? <i32>load<u8>(s + j) & 63 : (<i32>load<u8>(s + j + 4) & 0xf) | ((<i32>load<u8>(s + j - 4) >> 6) << 4);
        const mnv =
          j < 4 ? <i32>load<u8>(s + j + 4) & 63 : (<i32>load<u8>(s + j + 4) >> 4) | ((<i32>load<u8>(s + j) >> 6) << 4);
        store<i32>(scb + (<usize>(2 * j) << 2), scv);
        store<i32>(scb + (<usize>(2 * j + 1) << 2), scv);
        store<i32>(mnb + (<usize>(2 * j) << 2), mnv);
        store<i32>(mnb + (<usize>(2 * j + 1) << 2), mnv);
      }
      store<f32>(fd + bo, f16t(load<u16>(p)));
      store<f32>(md + bo, f16t(load<u16>(p, 2)));
    } else {
      // Q6_K
      const p = w + <usize>b * 210;
      const m48 = i16x8.splat(0x30);
      const e32 = i16x8.splat(32);
      for (let c = 0; c < 2; c++) {
        const qh0 = v128.load(p + 128 + 32 * c);
        const qh1 = v128.load(p + 144 + 32 * c);
        const qh0lo = i16x8.shl(qh0, 4);
        const qh1lo = i16x8.shl(qh1, 4);
        for (let k = 0; k < 4; k++) {
          const qlp = p + 64 * c + 32 * (k & 1);
          const ql0 = v128.load(qlp);
          const ql1 = v128.load(qlp, 16);
          const ns = 4 * (k >> 1);
          const hs = 2 * k;
          store4(
            qb + (<usize>(4 * c + k) << 6),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql0, ns), m), v128.and(i16x8.shr_u(qh0lo, hs), m48)), e32),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql0, 8 + ns), m), v128.and(i16x8.shr_u(qh0, 4 + hs), m48)), e32),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql1, ns), m), v128.and(i16x8.shr_u(qh1lo, hs), m48)), e32),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql1, 8 + ns), m), v128.and(i16x8.shr_u(qh1, 4 + hs), m48)), e32),
          );
        }
      }
      for (let j = 0; j < 16; j++) store<i32>(scb + (<usize>j << 2), <i32>load<i8>(p + 192 + j));
      store<f32>(fd + bo, f16t(load<u16>(p, 208)));
    }
    // Quants times their sub-block scale: sub-block j is the 16 EO values at qb + 32 j.
    for (let j = 0; j < 16; j++) {
      const sv = i16x8.splat(<i16>load<i32>(scb + (<usize>j << 2)));
      const qj = qb + (<usize>j << 5);
      v128.store(qj, i16x8.mul(v128.load(qj), sv));
      v128.store(qj, i16x8.mul(v128.load(qj, 16), sv), 16);
    }
  }
}

/** Lane sums of the 32 decoded quants at q times the 32 EO activation values at a: (A+B, C+D). */
@inline
function dotHalf(q: usize, a: usize, off: u32): v128 {
  return i32x4.add(
    i32x4.dot_i16x8_s(v128.load(q + off), v128.load(a + off)),
    i32x4.dot_i16x8_s(v128.load(q + off + 16), v128.load(a + off + 16)),
  );
}

/**
 * A decoded K-quant row (nb blocks of 256) . one token's Q8_K activation (qs EO, d per block,
 * bsums per 16); hasMin: Q2_K / Q4_K / Q5_K (subtracts dmin * d8 * sum(min * bsum) per block).
 */
export function dotDecodedK(dec: usize, C: i32, hasMin: bool, qs: usize, d: usize, bsums: usize): f32 {
  const nb = C >> 8;
  const fd = dec + fdOff(C);
  const mn = dec + mnOff(C);
  const md = dec + mdOff(C);
  let acc = f32x4.splat(0);
  let accm: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const qb = dec + (<usize>b << 9);
    const ab = qs + (<usize>b << 9);
    let isum = i32x4.splat(0);
    for (let g = 0; g < 8; g++) {
      const q = qb + (<usize>g << 6);
      const a = ab + (<usize>g << 6);
      isum = i32x4.add(isum, i32x4.add(dotHalf(q, a, 0), dotHalf(q, a, 32)));
    }
    const bo = <usize>b << 2;
    const d8 = load<f32>(d + bo);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(load<f32>(fd + bo) * d8)));
    if (hasMin) {
      const mnb = mn + (<usize>b << 6);
      const bs = bsums + (<usize>b << 6);
      let summ = 0;
      for (let j = 0; j < 16; j++) summ += load<i32>(mnb + (<usize>j << 2)) * load<i32>(bs + (<usize>j << 2));
      accm += load<f32>(md + bo) * d8 * <f32>summ;
    }
  }
  return hsum(acc) - accm;
}

/** The four i32 lane vectors s0..s3 summed across lanes: [sum s0, sum s1, sum s2, sum s3]. */
@inline
function reduce4(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const a = i32x4.add(i32x4.shuffle(s0, s1, 0, 4, 1, 5), i32x4.shuffle(s0, s1, 2, 6, 3, 7));
  const b = i32x4.add(i32x4.shuffle(s2, s3, 0, 4, 1, 5), i32x4.shuffle(s2, s3, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(a, b, 0, 1, 4, 5), i32x4.shuffle(a, b, 2, 3, 6, 7));
}

/** The float at p, p + stride, p + 2 stride, p + 3 stride as one vector. */
@inline
function gather4(p: usize, stride: usize): v128 {
  let v = f32x4.splat(load<f32>(p));
  v = f32x4.replace_lane(v, 1, load<f32>(p + stride));
  v = f32x4.replace_lane(v, 2, load<f32>(p + 2 * stride));
  return f32x4.replace_lane(v, 3, load<f32>(p + 3 * stride));
}

/** Lane sums of the 32 quants q0..q3 (EO slots, in registers) times 32 EO activation values at a. */
@inline
function dot32(q0: v128, q1: v128, q2: v128, q3: v128, a: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(q0, v128.load(a)), i32x4.dot_i16x8_s(q1, v128.load(a, 16))),
    i32x4.add(i32x4.dot_i16x8_s(q2, v128.load(a, 32)), i32x4.dot_i16x8_s(q3, v128.load(a, 48))),
  );
}

/** Stores the 4 lanes of v to y, y + ys, y + 2 ys, y + 3 ys. */
@inline
function scatter4(v: v128, y: usize, ys: usize): void {
  store<f32>(y, f32x4.extract_lane(v, 0));
  store<f32>(y + ys, f32x4.extract_lane(v, 1));
  store<f32>(y + 2 * ys, f32x4.extract_lane(v, 2));
  store<f32>(y + 3 * ys, f32x4.extract_lane(v, 3));
}

/**
 * dotDecodedK for 4 tokens at once: token i's activation at qs + i qsStride, d + i dStride,
 * bsums + i bStride (bytes); results to y + i ys. Per token and block: the integer block sum
 * times (row scale * token scale); the min terms (Q2_K, Q4_K, Q5_K) as dmin * d8 * sum(min * bsum).
 */
export function dotDecodedK4(
  dec: usize,
  C: i32,
  hasMin: bool,
  qs: usize,
  qsStride: usize,
  d: usize,
  dStride: usize,
  bsums: usize,
  bStride: usize,
  y: usize,
  ys: usize,
): void {
  const nb = C >> 8;
  const fd = dec + fdOff(C);
  const mn = dec + mnOff(C);
  const md = dec + mdOff(C);
  let acc = f32x4.splat(0);
  let accm = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const qb = dec + (<usize>b << 9);
    const ab = qs + (<usize>b << 9);
    let s0 = i32x4.splat(0);
    let s1 = i32x4.splat(0);
    let s2 = i32x4.splat(0);
    let s3 = i32x4.splat(0);
    for (let g = 0; g < 8; g++) {
      const q = qb + (<usize>g << 6);
      const q0 = v128.load(q);
      const q1 = v128.load(q, 16);
      const q2 = v128.load(q, 32);
      const q3 = v128.load(q, 48);
      const a = ab + (<usize>g << 6);
      s0 = i32x4.add(s0, dot32(q0, q1, q2, q3, a));
      s1 = i32x4.add(s1, dot32(q0, q1, q2, q3, a + qsStride));
      s2 = i32x4.add(s2, dot32(q0, q1, q2, q3, a + 2 * qsStride));
      s3 = i32x4.add(s3, dot32(q0, q1, q2, q3, a + 3 * qsStride));
    }
    const bo = <usize>b << 2;
    const dv = gather4(d + bo, dStride);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(reduce4(s0, s1, s2, s3)), f32x4.mul(f32x4.splat(load<f32>(fd + bo)), dv)));
    if (hasMin) {
      const mnb = mn + (<usize>b << 6);
      const m0 = v128.load(mnb);
      const m1 = v128.load(mnb, 16);
      const m2 = v128.load(mnb, 32);
      const m3 = v128.load(mnb, 48);
      const bs = bsums + (<usize>b << 6);
      const r = reduce4(
        minSum(m0, m1, m2, m3, bs),
        minSum(m0, m1, m2, m3, bs + bStride),
        minSum(m0, m1, m2, m3, bs + 2 * bStride),
        minSum(m0, m1, m2, m3, bs + 3 * bStride),
      );
      accm = f32x4.add(accm, f32x4.mul(f32x4.mul(f32x4.splat(load<f32>(md + bo)), dv), f32x4.convert_i32x4_s(r)));
    }
  }
  scatter4(hasMin ? f32x4.sub(acc, accm) : acc, y, ys);
}

/** Lanes of sum(min_j * bsum_j) over the 16 i32 mins m0..m3 and the 16 i32 bsums at bs. */
@inline
function minSum(m0: v128, m1: v128, m2: v128, m3: v128, bs: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.mul(m0, v128.load(bs)), i32x4.mul(m1, v128.load(bs, 16))),
    i32x4.add(i32x4.mul(m2, v128.load(bs, 32)), i32x4.mul(m3, v128.load(bs, 48))),
  );
}

/** Whether K-quant `type` takes the decoded path's min terms. */
export function decodedHasMin(type: i32): bool {
  return type == T_Q2_K || type == T_Q4_K || type == T_Q5_K;
}
