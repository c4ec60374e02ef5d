// Dot products of one K-quant row (Q4_K, Q5_K, Q6_K; 256 values per super-block, layouts in
// src/quant/k-quants.ts) with one activation row quantized to Q8_K and expanded to i16
// (quantize.ts). They follow ggml_vec_dot_q{4,5,6}_K_q8_K (ggml-cpu/quants.c): per block the
// integer sums, times the integer sub-block scales, are exact (i32 lanes); the mins of Q4_K and
// Q5_K are taken from the activation's bsums as ggml does; float32 only for the block scale
// products, applied per lane and summed at the end (another order than ggml's scalar loop;
// tolerance-tested). Each has its own activation layout (dotQ4K's halves, dotQ6K's steps).
// Not here: Q2_K and Q3_K, whose one token takes the 2-token kernels of matmul-small.ts (faster
// than the ggml-shaped dots that were here: see its useSmallT).
import { f16t, hsum } from "./common";

/**
 * The 12 packed scale bytes of a Q4_K / Q5_K block at p (its bytes 4..15) -> bytes [sc0..sc7,
 * m0..m7] (get_scale_min_k4 for j = 0..7): with u0, u1, u2 the three little-endian words, sc0..3
 * = u0 & 0x3f.., m0..3 = u1 & 0x3f.., sc4..7 = (u2 & 0x0f..) | ((u0 >> 2) & 0x30..), m4..7 =
 * ((u2 >> 4) & 0x0f..) | ((u1 >> 2) & 0x30..) (ggml's kmask decoding, in the lanes).
 */
@inline
function scalesK4(p: usize): v128 {
  const v = v128.load(p, 4); // [u0, u1, u2, (4 quant bytes)]
  const x = i32x4.shuffle(v, v, 0, 2, 1, 2); // [u0, u2, u1, u2]
  const lo = i32x4.shuffle(x, i32x4.shr_u(x, 4), 0, 1, 2, 7); // [u0, u2, u1, u2 >> 4]
  const hi = i32x4.shr_u(i32x4.shuffle(v, v, 0, 0, 1, 1), 2); // [., u0 >> 2, ., u1 >> 2]
  return v128.or(
    v128.and(lo, i32x4(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f)),
    v128.and(hi, i32x4(0, 0x30303030, 0, 0x30303030)),
  );
}

/**
 * Per block of n/256 the i16x8 of its pair sums of bsums (bsums[2g] + bsums[2g + 1], g = 0..7:
 * the activation sums of the 32-value sub-blocks; |sum| <= 32 * 127, exact in i16) at out + 16 b,
 * for the Q4_K / Q5_K mins (dotQ4K).
 */
export function pairBsums(bsums: usize, nb: i32, out: usize): void {
  for (let b = 0; b < nb; b++) {
    const s = bsums + (<usize>b << 6);
    const l0 = v128.load(s);
    const l1 = v128.load(s, 16);
    const l2 = v128.load(s, 32);
    const l3 = v128.load(s, 48);
    const e0 = i32x4.add(i32x4.shuffle(l0, l1, 0, 2, 4, 6), i32x4.shuffle(l0, l1, 1, 3, 5, 7));
    const e1 = i32x4.add(i32x4.shuffle(l2, l3, 0, 2, 4, 6), i32x4.shuffle(l2, l3, 1, 3, 5, 7));
    v128.store(out + (<usize>b << 4), i16x8.narrow_i32x4_s(e0, e1));
  }
}

/**
 * The scales of a Q4_K / Q5_K block (bytes sc0..sc7 of scalesK4) as the i16x8 vectors [sc[2j] x 4,
 * sc[2j + 1] x 4], j = 0..3, each stored twice (once per 16 quant bytes): 128 bytes at out.
 */
@inline
function storeScales(sm: v128, out: usize): void {
  const s16 = i16x8.extend_low_i8x16_u(sm); // sc0..sc7
  const lo = i16x8.shuffle(s16, s16, 0, 0, 1, 1, 2, 2, 3, 3);
  const hi = i16x8.shuffle(s16, s16, 4, 4, 5, 5, 6, 6, 7, 7);
  const v0 = i32x4.shuffle(lo, lo, 0, 0, 1, 1);
  const v1 = i32x4.shuffle(lo, lo, 2, 2, 3, 3);
  const v2 = i32x4.shuffle(hi, hi, 0, 0, 1, 1);
  const v3 = i32x4.shuffle(hi, hi, 2, 2, 3, 3);
  v128.store(out, v0);
  v128.store(out, v0, 16);
  v128.store(out, v1, 32);
  v128.store(out, v1, 48);
  v128.store(out, v2, 64);
  v128.store(out, v2, 80);
  v128.store(out, v3, 96);
  v128.store(out, v3, 112);
}

/**
 * The integer sum of 16 quant bytes v of a Q4_K row (low nibbles: 16 values of sub-block 2j, high
 * nibbles: the same 16 of sub-block 2j + 1) with the activation at a (halves layout, see dotQ4K),
 * times their scales sc ([sc[2j] x 4, sc[2j + 1] x 4]): the two i32x4 sub-block sums, |lane| <=
 * 4 * 31 * 127, narrowed to i16 (exact) and dotted with sc.
 */
@inline
function q4Half(v: v128, m: v128, x0: v128, x1: v128, x2: v128, x3: v128, sc: v128): v128 {
  const h0 = i32x4.add(i32x4.dot_i16x8_s(v128.and(v, m), x0), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 8), m), x1));
  const h1 = i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 4), m), x2), i32x4.dot_i16x8_s(i16x8.shr_u(v, 12), x3));
  return i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(h0, h1), sc);
}

/**
 * One Q4_K / Q5_K block's float terms, lanes: float(isum) * (d * d8) - float(summ) * (dmin * d8),
 * as ggml's per-block sumf += d * isum; sumf -= dmin * summ (the lanes are summed at the end).
 */
@inline
function blockK4(isum: v128, summ: v128, p: usize, d8: f32): v128 {
  const t = f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(f16t(load<u16>(p)) * d8));
  return f32x4.sub(t, f32x4.mul(f32x4.convert_i32x4_s(summ), f32x4.splat(f16t(load<u16>(p, 2)) * d8)));
}

/**
 * block_q4_K (144 B) row . Q8_K; ggml_vec_dot_q4_K_q8_K. The activation comes in the halves
 * layout (quantize.ts expandQ8K): per 64 values the EO slots A, B of sub-block 2j, A, B of 2j + 1,
 * then C, D of 2j, C, D of 2j + 1, so each 16 quant bytes meet 64 consecutive activation bytes;
 * bp: per block the i16x8 pair sums of its bsums (pairBsums); scr: 128 bytes of scratch. Per
 * block blockK4 (lanes), summed at the end.
 */
export function dotQ4K(w: usize, qs: usize, d: usize, bp: usize, nb: i32, scr: usize): f32 {
  const m = i16x8.splat(15);
  let acc = f32x4.splat(0);
  let p = w;
  let a = qs;
  let dp = d;
  let bpp = bp;
  const end = w + <usize>nb * 144;
  while (p < end) {
    const sm = scalesK4(p);
    storeScales(sm, scr);
    const summ = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm), v128.load(bpp));
    let isum = i32x4.splat(0);
    let c = p + 16;
    let sp = scr;
    const ce = p + 144;
    while (c < ce) {
      const s = q4Half(v128.load(c), m, v128.load(a), v128.load(a, 16), v128.load(a, 32), v128.load(a, 48), v128.load(sp));
      isum = i32x4.add(isum, s);
      c += 16;
      a += 64;
      sp += 16;
    }
    acc = f32x4.add(acc, blockK4(isum, summ, p, load<f32>(dp)));
    p += 144;
    dp += 4;
    bpp += 16;
  }
  return hsum(acc);
}

/**
 * dotQ4K of two rows at w and w + rb (any distance) with the same activation, whose loads they
 * share: y and y1 get exactly what dotQ4K gives for each row (same operations in the same order).
 * scr: 256 bytes.
 */
export function dotQ4Kx2(w: usize, rb: usize, qs: usize, d: usize, bp: usize, nb: i32, y: usize, y1: usize, scr: usize): void {
  const m = i16x8.splat(15);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let p = w;
  let a = qs;
  let dp = d;
  let bpp = bp;
  const end = w + <usize>nb * 144;
  while (p < end) {
    const q = p + rb;
    const sm0 = scalesK4(p);
    const sm1 = scalesK4(q);
    storeScales(sm0, scr);
    storeScales(sm1, scr + 128);
    const bpv = v128.load(bpp);
    const summ0 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm0), bpv);
    const summ1 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm1), bpv);
    let isum0 = i32x4.splat(0);
    let isum1 = i32x4.splat(0);
    let c = p + 16;
    let sp = scr;
    const ce = p + 144;
    while (c < ce) {
      const x0 = v128.load(a);
      const x1 = v128.load(a, 16);
      const x2 = v128.load(a, 32);
      const x3 = v128.load(a, 48);
      isum0 = i32x4.add(isum0, q4Half(v128.load(c), m, x0, x1, x2, x3, v128.load(sp)));
      isum1 = i32x4.add(isum1, q4Half(v128.load(c + rb), m, x0, x1, x2, x3, v128.load(sp, 128)));
      c += 16;
      a += 64;
      sp += 16;
    }
    const d8 = load<f32>(dp);
    acc0 = f32x4.add(acc0, blockK4(isum0, summ0, p, d8));
    acc1 = f32x4.add(acc1, blockK4(isum1, summ1, q, d8));
    p += 144;
    dp += 4;
    bpp += 16;
  }
  store<f32>(y, hsum(acc0));
  store<f32>(y1, hsum(acc1));
}

/**
 * The integer sum of 16 quant bytes v of a Q5_K row (as q4Half) with their fifth bits: t = the 16
 * qh bytes read as i16 lanes and shifted right by 2j (bits 0, 1: even values, 8, 9: odd values).
 */
@inline
function q5Half(v: v128, t: v128, m: v128, m16: v128, x0: v128, x1: v128, x2: v128, x3: v128, sc: v128): v128 {
  const q0 = v128.or(v128.and(v, m), v128.and(i16x8.shl(t, 4), m16));
  const q2 = v128.or(v128.and(i16x8.shr_u(v, 8), m), v128.and(i16x8.shr_u(t, 4), m16));
  const q1 = v128.or(v128.and(i16x8.shr_u(v, 4), m), v128.and(i16x8.shl(t, 3), m16));
  const q3 = v128.or(i16x8.shr_u(v, 12), v128.and(i16x8.shr_u(t, 5), m16));
  const h0 = i32x4.add(i32x4.dot_i16x8_s(q0, x0), i32x4.dot_i16x8_s(q2, x1));
  const h1 = i32x4.add(i32x4.dot_i16x8_s(q1, x2), i32x4.dot_i16x8_s(q3, x3));
  return i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(h0, h1), sc);
}

/**
 * block_q5_K (176 B) row . Q8_K; ggml_vec_dot_q5_K_q8_K, as dotQ4K (halves layout, pair sums, 128
 * bytes of scratch). Per 16 quant bytes k = 2j + e (values 64 j + 16 e + l and 64 j + 32 + 16 e +
 * l) the fifth bits are bits 2j and 2j + 1 of qh[16 e + l].
 */
export function dotQ5K(w: usize, qs: usize, d: usize, bp: usize, nb: i32, scr: usize): f32 {
  const m = i16x8.splat(15);
  const m16 = i16x8.splat(16);
  let acc = f32x4.splat(0);
  let p = w;
  let a = qs;
  let dp = d;
  let bpp = bp;
  const end = w + <usize>nb * 176;
  while (p < end) {
    const sm = scalesK4(p);
    storeScales(sm, scr);
    const summ = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm), v128.load(bpp));
    let isum = i32x4.splat(0);
    let k: u32 = 0;
    let c = p + 48;
    let sp = scr;
    const ce = p + 176;
    while (c < ce) {
      const t = i16x8.shr_u(v128.load(p + 16 + ((<usize>k & 1) << 4)), k & ~1);
      const s = q5Half(v128.load(c), t, m, m16, v128.load(a), v128.load(a, 16), v128.load(a, 32), v128.load(a, 48), v128.load(sp));
      isum = i32x4.add(isum, s);
      k++;
      c += 16;
      a += 64;
      sp += 16;
    }
    acc = f32x4.add(acc, blockK4(isum, summ, p, load<f32>(dp)));
    p += 176;
    dp += 4;
    bpp += 16;
  }
  return hsum(acc);
}

/**
 * dotQ5K of two rows at w and w + rb (any distance) with the same activation, whose loads they
 * share: y and y1 get exactly what dotQ5K gives for each row. scr: 256 bytes.
 */
export function dotQ5Kx2(w: usize, rb: usize, qs: usize, d: usize, bp: usize, nb: i32, y: usize, y1: usize, scr: usize): void {
  const m = i16x8.splat(15);
  const m16 = i16x8.splat(16);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let p = w;
  let a = qs;
  let dp = d;
  let bpp = bp;
  const end = w + <usize>nb * 176;
  while (p < end) {
    const q = p + rb;
    const sm0 = scalesK4(p);
    const sm1 = scalesK4(q);
    storeScales(sm0, scr);
    storeScales(sm1, scr + 128);
    const bpv = v128.load(bpp);
    const summ0 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm0), bpv);
    const summ1 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm1), bpv);
    let isum0 = i32x4.splat(0);
    let isum1 = i32x4.splat(0);
    let k: u32 = 0;
    let c = p + 48;
    let sp = scr;
    const ce = p + 176;
    while (c < ce) {
      const x0 = v128.load(a);
      const x1 = v128.load(a, 16);
      const x2 = v128.load(a, 32);
      const x3 = v128.load(a, 48);
      const hp = p + 16 + ((<usize>k & 1) << 4);
      const sh = k & ~1;
      const t0 = i16x8.shr_u(v128.load(hp), sh);
      isum0 = i32x4.add(isum0, q5Half(v128.load(c), t0, m, m16, x0, x1, x2, x3, v128.load(sp)));
      const t1 = i16x8.shr_u(v128.load(hp + rb), sh);
      isum1 = i32x4.add(isum1, q5Half(v128.load(c + rb), t1, m, m16, x0, x1, x2, x3, v128.load(sp, 128)));
      k++;
      c += 16;
      a += 64;
      sp += 16;
    }
    const d8 = load<f32>(dp);
    acc0 = f32x4.add(acc0, blockK4(isum0, summ0, p, d8));
    acc1 = f32x4.add(acc1, blockK4(isum1, summ1, q, d8));
    p += 176;
    dp += 4;
    bpp += 16;
  }
  store<f32>(y, hsum(acc0));
  store<f32>(y1, hsum(acc1));
}

// ---------------------------------------------------------------------------------- Q6_K
//
// One token with Q6_K (ggml_vec_dot_q6_K_q8_K): the values are dotted unsigned (0..63) and the
// -32 comes from the activation's bsums as in ggml's AVX2 kernel (per block 32 * sum_s sc_s *
// bsum_s over the 16 sub-blocks s of 16 values: two i16 dots of the scales with the bsums
// narrowed to i16, |bsum| <= 16 * 127). Step k = 4 n + j (0..7) of a block reads 16 bytes
// ql[16 k] (low nibbles: values 128 n + 16 j + l, high nibbles: 128 n + 64 + 16 j + l, l < 16;
// sub-blocks 8 n + j and 8 n + 4 + j) and 16 bytes qh[32 n + 16 (j & 1)] shifted right by 2 (j >>
// 1) (bits 0, 1 and 4, 5 of each byte: the high bits of the same values); q6Prep stores the
// shifted qh and the step's scales [sc x 4, sc' x 4] per step in a scratch, 24 bytes per step.
// The 6-bit values are built in the bytes (4 ops per 16 bytes) and dotted as i16 lanes u = e + 256
// o (e, o: the values of an even and an odd byte) with the activation in the steps layout
// (q6Steps): per 16 values the i16 A (the even values' activation) and B' = B - 256 A (B: the odd
// values'), so that u A + (u >> 8) B' = e A + o B (one shift instead of a mask and a shift; |B'|
// <= 127 + 256 * 127 fits i16 as quantizeQ8K's quants are within +-127). The two sub-block sums
// of a step (|lane| <= 4 * 63 * 127, exact in i16) are narrowed and dotted with their scales.

/**
 * Rewrites, in place, n/256 blocks of EO-expanded Q8_K quants (quantize.ts expandQ8K, not halves)
 * into the steps layout of dotQ6K: per 128 values (256 bytes: 8 runs of 32 bytes, each the EO
 * slots A B or C D of 16 values) the runs in the order 0 4 1 5 2 6 3 7, each run's second 16
 * bytes B replaced by B - 256 A (see the section's top).
 */
export function q6Steps(qs: usize, n: i32): void {
  const end = qs + (<usize>(n >> 7) << 8);
  for (let p = qs; p < end; p += 256) {
    const a0 = v128.load(p);
    const a1 = v128.load(p, 16);
    const b0 = v128.load(p, 32);
    const b1 = v128.load(p, 48);
    const c0 = v128.load(p, 64);
    const c1 = v128.load(p, 80);
    const d0 = v128.load(p, 96);
    const d1 = v128.load(p, 112);
    const e0 = v128.load(p, 128);
    const e1 = v128.load(p, 144);
    const f0 = v128.load(p, 160);
    const f1 = v128.load(p, 176);
    const g0 = v128.load(p, 192);
    const g1 = v128.load(p, 208);
    const h0 = v128.load(p, 224);
    const h1 = v128.load(p, 240);
    v128.store(p, a0);
    v128.store(p, i16x8.sub(a1, i16x8.shl(a0, 8)), 16);
    v128.store(p, e0, 32);
    v128.store(p, i16x8.sub(e1, i16x8.shl(e0, 8)), 48);
    v128.store(p, b0, 64);
    v128.store(p, i16x8.sub(b1, i16x8.shl(b0, 8)), 80);
    v128.store(p, f0, 96);
    v128.store(p, i16x8.sub(f1, i16x8.shl(f0, 8)), 112);
    v128.store(p, c0, 128);
    v128.store(p, i16x8.sub(c1, i16x8.shl(c0, 8)), 144);
    v128.store(p, g0, 160);
    v128.store(p, i16x8.sub(g1, i16x8.shl(g0, 8)), 176);
    v128.store(p, d0, 192);
    v128.store(p, i16x8.sub(d1, i16x8.shl(d0, 8)), 208);
    v128.store(p, h0, 224);
    v128.store(p, i16x8.sub(h1, i16x8.shl(h0, 8)), 240);
  }
}

/**
 * Per block of n/256 its 16 bsums (i32 at bsums + 64 b) narrowed to i16 (exact: |bsum| <= 16 *
 * 127) at bsums + 32 b, in place, for the Q6_K offset term of dotQ6K.
 */
export function narrowBsums(bsums: usize, n: i32): void {
  for (let b = 0; b < n >> 8; b++) {
    const s = bsums + (<usize>b << 6);
    const l0 = v128.load(s);
    const l1 = v128.load(s, 16);
    const l2 = v128.load(s, 32);
    const l3 = v128.load(s, 48);
    const o = bsums + (<usize>b << 5);
    v128.store(o, i16x8.narrow_i32x4_s(l0, l1));
    v128.store(o, i16x8.narrow_i32x4_s(l2, l3), 16);
  }
}

/**
 * The per-step operands of the Q6_K block at p: at out + 16 k the 16 qh bytes of step k = 4 n + j
 * shifted right by 2 (j >> 1); at out + 128 + 8 k its scales as bytes [sc[8 n + j] x 4, sc[8 n +
 * 4 + j] x 4] (v128.load8x8_s makes them the i16 vector of the step). The bytes come from
 * unpacks (single instructions in V8): t = [sc0, sc4, sc1, sc5, .., sc3, sc7, sc8, sc12, ..],
 * each byte 2, then 4 times. Returns -32 * sum_s sc_s * bsum_s (bsums as i16 at bs) in i32 lanes.
 */
@inline
function q6Prep(p: usize, bs: usize, out: usize): v128 {
  const h0 = v128.load(p, 128);
  const h1 = v128.load(p, 144);
  const h2 = v128.load(p, 160);
  const h3 = v128.load(p, 176);
  v128.store(out, h0);
  v128.store(out, h1, 16);
  v128.store(out, i16x8.shr_u(h0, 2), 32);
  v128.store(out, i16x8.shr_u(h1, 2), 48);
  v128.store(out, h2, 64);
  v128.store(out, h3, 80);
  v128.store(out, i16x8.shr_u(h2, 2), 96);
  v128.store(out, i16x8.shr_u(h3, 2), 112);
  const sv = v128.load(p, 192);
  const t = i8x16.shuffle(i32x4.shuffle(sv, sv, 0, 2, 0, 2), i32x4.shuffle(sv, sv, 1, 3, 1, 3), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const u0 = i8x16.shuffle(t, t, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const u1 = i8x16.shuffle(t, t, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  v128.store(out, i16x8.shuffle(u0, u0, 0, 8, 1, 9, 2, 10, 3, 11), 128);
  v128.store(out, i16x8.shuffle(u0, u0, 4, 12, 5, 13, 6, 14, 7, 15), 144);
  v128.store(out, i16x8.shuffle(u1, u1, 0, 8, 1, 9, 2, 10, 3, 11), 160);
  v128.store(out, i16x8.shuffle(u1, u1, 4, 12, 5, 13, 6, 14, 7, 15), 176);
  const s = i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(sv), v128.load(bs)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(sv), v128.load(bs, 16)),
  );
  return i32x4.sub(i32x4.splat(0), i32x4.shl(s, 5));
}

/**
 * One step of a Q6_K block: 16 ql bytes l, 16 qh bytes h (shifted), the activation x0..x3 (64
 * bytes of the steps layout), scales sc: the integer sum times the scales, i32 lanes.
 */
@inline
function q6Step(l: v128, h: v128, m: v128, m3: v128, x0: v128, x1: v128, x2: v128, x3: v128, sc: v128): v128 {
  const lo = v128.or(v128.and(l, m), v128.and(i16x8.shl(h, 4), m3));
  const hi = v128.or(v128.and(i16x8.shr_u(l, 4), m), v128.and(h, m3));
  const s0 = i32x4.add(i32x4.dot_i16x8_s(lo, x0), i32x4.dot_i16x8_s(i16x8.shr_u(lo, 8), x1));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(hi, x2), i32x4.dot_i16x8_s(i16x8.shr_u(hi, 8), x3));
  return i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(s0, s1), sc);
}

/**
 * block_q6_K (210 B) row . Q8_K; ggml_vec_dot_q6_K_q8_K (see the section's top). qs: the
 * activation in the steps layout (q6Steps), bs: per block its 16 bsums as i16 (narrowBsums);
 * scr: 256 bytes. Per block float(isum) * (d * d8) in the lanes, summed at the end.
 */
export function dotQ6K(w: usize, qs: usize, d: usize, bs: usize, nb: i32, scr: usize): f32 {
  // NOTE: masks from nb (the same values whenever a block is read) so that V8 keeps them in
  // registers rather than rebuilding each constant in every loop iteration (3 instructions each).
  const m = i8x16.splat(<i8>select<i32>(15, 0, nb > 0));
  const m3 = i8x16.splat(<i8>select<i32>(0x30, 0, nb > 0));
  let acc = f32x4.splat(0);
  let p = w;
  let a = qs;
  let dp = d;
  let bp = bs;
  const end = w + <usize>nb * 210;
  while (p < end) {
    let isum = q6Prep(p, bp, scr);
    let c = p;
    let sp = scr;
    let sc = scr + 128;
    const ce = p + 128;
    while (c < ce) {
      isum = i32x4.add(isum, q6Step(v128.load(c), v128.load(sp), m, m3, v128.load(a), v128.load(a, 16), v128.load(a, 32), v128.load(a, 48), v128.load8x8_s(sc)));
      c += 16;
      a += 64;
      sp += 16;
      sc += 8;
    }
    const dd = f16t(load<u16>(p, 208)) * load<f32>(dp);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.splat(dd)));
    p += 210;
    dp += 4;
    bp += 32;
  }
  return hsum(acc);
}

/**
 * dotQ6K of two rows at w and w + rb (any distance) with the same activation, whose loads they
 * share: y and y1 get exactly what dotQ6K gives for each row. scr: 512 bytes.
 */
export function dotQ6Kx2(w: usize, rb: usize, qs: usize, d: usize, bs: usize, nb: i32, y: usize, y1: usize, scr: usize): void {
  // NOTE: masks from nb (the same values whenever a block is read) so that V8 keeps them in
  // registers rather than rebuilding each constant in every loop iteration (3 instructions each).
  const m = i8x16.splat(<i8>select<i32>(15, 0, nb > 0));
  const m3 = i8x16.splat(<i8>select<i32>(0x30, 0, nb > 0));
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let p = w;
  let a = qs;
  let dp = d;
  let bp = bs;
  const end = w + <usize>nb * 210;
  while (p < end) {
    const q = p + rb;
    let isum0 = q6Prep(p, bp, scr);
    let isum1 = q6Prep(q, bp, scr + 256);
    let c = p;
    let sp = scr;
    let sc = scr + 128;
    const ce = p + 128;
    while (c < ce) {
      const x0 = v128.load(a);
      const x1 = v128.load(a, 16);
      const x2 = v128.load(a, 32);
      const x3 = v128.load(a, 48);
      isum0 = i32x4.add(isum0, q6Step(v128.load(c), v128.load(sp), m, m3, x0, x1, x2, x3, v128.load8x8_s(sc)));
      isum1 = i32x4.add(isum1, q6Step(v128.load(c + rb), v128.load(sp, 256), m, m3, x0, x1, x2, x3, v128.load8x8_s(sc, 256)));
      c += 16;
      a += 64;
      sp += 16;
      sc += 8;
    }
    const d8 = load<f32>(dp);
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.convert_i32x4_s(isum0), f32x4.splat(f16t(load<u16>(p, 208)) * d8)));
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.convert_i32x4_s(isum1), f32x4.splat(f16t(load<u16>(q, 208)) * d8)));
    p += 210;
    dp += 4;
    bp += 32;
  }
  store<f32>(y, hsum(acc0));
  store<f32>(y1, hsum(acc1));
}
