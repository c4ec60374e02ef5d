// Matrix products with a few tokens (2 <= T <= SMALL_T_MAX: a batched decode step of T sequences;
// Q2_K and Q3_K from one token, see useSmallT)
// for Q8_0, Q4_0, Q5_0, Q4_1, Q5_1, the K-quants (Q2_K .. Q6_K), (T <= 4) F16 / BF16 (below): each
// weight block is decoded once into registers and dotted with up to 4 tokens, the one-token dots'
// structure (matmul-legacy.ts, matmul-kquants.ts) with the decode shared, so that a 4-token product
// reads and decodes the weights once where T one-token products did it T times, with no decoded-row scratch
// (the register tiles of matmul-tiles.ts, built for prompt eval, pay a decode to memory per 4 rows
// and call, and cost 2-4x a one-token product at T = 2..4). T = 5..8: two groups of 4 tokens, a
// row's second pass reading it from L1. Kernels of 2, 3 and 4 tokens (Q2_K, Q3_K: 1 too), each a
// function of its own (see matmulSmall's NOTE).
//
// Legacy types (32-value blocks): per block and token the integer sum is exact (i32 lanes of
// i32x4.dot_i16x8_s over the EO slots, as the one-token dots; Q4_0 / Q5_0 values decoded signed,
// -8..7 / -16..15, Q4_1 / Q5_1 unsigned, 0..15 / 0..31); the lane sums of 2 to 4 tokens are
// reduced with unpacks to one vector, lane t token t's block sum, and sum_t += float(isum_t) *
// (d_w * d_x,t) (Q4_1 / Q5_1 then sum_t += m_w * s_x,t, the Q8_1 activation's s = d * sum of its
// quants) in block order: the order of ggml_vec_dot_q8_0_q8_0's scalar loop and of the register
// tiles (tileLegacy), so a token's result does not depend on T, on the other tokens, or on this
// path versus the tiles.
//
// Packed activation (prepareAct in index.ts), per group of 4 tokens, smallBlock(type) bytes per
// block: 4 tokens x 32 EO i16 (quantize.ts's expansion: token t's block at +64 t), then d (4 f32)
// at +256, then (Q8_1, for Q4_1 / Q5_1) s (4 f32) at +272; tokens past T are zero. One pointer
// walks a group with every operand at a constant offset (the NOTE of matmul-tiles.ts).
// Not here: T = 1 but for Q2_K, Q3_K (matmul-legacy.ts, matmul-kquants.ts), larger T and the other
// types (matmul-tiles.ts).
import { F16_TABLE, f16t } from "./common";
import { T_BF16, T_F16S, T_Q2_K, T_Q3_K, T_Q4_0, T_Q4_1, T_Q4_K, T_Q5_0, T_Q5_1, T_Q5_K, T_Q6_K, T_Q8_0 } from "./types";

/** Largest T that takes this path. */
export const SMALL_T_MAX: i32 = 8;

/** Bytes of one block of a packed group of 4 tokens: Q8_0 activations. */
export const SMALL_BLOCK: usize = 272;
/** The same with Q8_1 activations (Q4_1, Q5_1): s after d. */
export const SMALL_BLOCK_1: usize = 288;

/**
 * True where matmulRows and prepareAct take the small-T path for `type` and T tokens.
 * NOTE: Q2_K and Q3_K take it for one token too (a 1-token variant of their kernels): 0.45-0.53x
 * (Q2_K) and 0.42-0.49x (Q3_K) the time of the one-token dots it replaced (ggml's shape: i32 sums
 * times splat scales (pmulld) per sub-block, Q2_K's mins summed in scalar code; C=768, OC=768 /
 * 2048 / 32000, 1 thread, load 2.3-2.8), and a token's result is the same bits alone as in any
 * batch.
 */
@inline
export function useSmallT(type: i32, T: i32): bool {
  return T <= SMALL_T_MAX && (T > 1 ? isSmallLegacy(type) || isSmallK(type) : type == T_Q2_K || type == T_Q3_K);
}

/** The legacy types with a small-T kernel (all of them). */
@inline
function isSmallLegacy(type: i32): bool {
  return type == T_Q8_0 || type == T_Q4_0 || type == T_Q5_0 || type == T_Q4_1 || type == T_Q5_1;
}

/** True for the types whose activations are Q8_1 (Q4_1, Q5_1). */
@inline
export function smallQ81(type: i32): bool {
  return type == T_Q4_1 || type == T_Q5_1;
}

/** The K-quants with a small-T kernel. */
@inline
function isSmallK(type: i32): bool {
  return type == T_Q2_K || type == T_Q3_K || type == T_Q4_K || type == T_Q5_K || type == T_Q6_K;
}

/** Bytes of the packed activation of one group of 4 tokens of C values (q81: Q8_1). */
@inline
export function smallGroupBytes(C: i32, q81: bool): usize {
  return <usize>(C >> 5) * (q81 ? SMALL_BLOCK_1 : SMALL_BLOCK);
}

/**
 * n (<= 4) rows of block_q8_0 (q81: block_q8_1) at q + i rowBytes -> one packed group at g
 * (layout above); tokens past n are zero.
 */
export function packSmallGroup(q: usize, rowBytes: usize, n: i32, C: i32, q81: bool, g: usize): void {
  const nb = C >> 5;
  const z = i32x4.splat(0);
  const sb: usize = q81 ? SMALL_BLOCK_1 : SMALL_BLOCK;
  const bs: usize = q81 ? 36 : 34;
  const qo: usize = q81 ? 4 : 2;
  for (let i = 0; i < 4; i++) {
    const tq = g + (<usize>i << 6);
    const td = g + 256 + (<usize>i << 2);
    for (let b = 0; b < nb; b++) {
      const o = tq + <usize>b * sb;
      const f = td + <usize>b * sb;
      if (i >= n) {
        v128.store(o, z);
        v128.store(o, z, 16);
        v128.store(o, z, 32);
        v128.store(o, z, 48);
        store<f32>(f, 0);
        if (q81) store<f32>(f, 0, 16);
        continue;
      }
      const src = q + <usize>i * rowBytes + <usize>b * bs;
      const v0 = v128.load(src + qo);
      const v1 = v128.load(src + qo, 16);
      const s0 = i8x16.shuffle(v0, v0, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
      const s1 = i8x16.shuffle(v1, v1, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
      v128.store(o, i16x8.extend_low_i8x16_s(s0));
      v128.store(o, i16x8.extend_high_i8x16_s(s0), 16);
      v128.store(o, i16x8.extend_low_i8x16_s(s1), 32);
      v128.store(o, i16x8.extend_high_i8x16_s(s1), 48);
      store<f32>(f, f16t(load<u16>(src)));
      if (q81) store<f32>(f, f16t(load<u16>(src, 2)), 16);
    }
  }
}

/** The 4 i32 lane sums of EO slots qA..qD with a token's 4 EO vectors a0..a3. */
@inline
function dot4(qA: v128, qB: v128, qC: v128, qD: v128, a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(qA, a0), i32x4.dot_i16x8_s(qB, a1)),
    i32x4.add(i32x4.dot_i16x8_s(qC, a2), i32x4.dot_i16x8_s(qD, a3)),
  );
}

/**
 * Two tokens' lane sums s0, s1 folded to (s0.0 + s0.2, s1.0 + s1.2, s0.1 + s0.3, s1.1 + s1.3):
 * one unpack each (punpckldq / punpckhdq) and an add. Integer adds, exact in any order.
 */
@inline
function fold2(s0: v128, s1: v128): v128 {
  return i32x4.add(i32x4.shuffle(s0, s1, 0, 4, 1, 5), i32x4.shuffle(s0, s1, 2, 6, 3, 7));
}

/**
 * One weight row of nb blocks (`type`, a legacy type, at w) . NT (2..4, a constant after
 * inlining) tokens of a packed group at g: lane t = token t's result (lanes past NT: garbage).
 */
@inline
function rowGroup(type: i32, w: usize, g: usize, nb: i32, NT: i32, spill: usize): v128 {
  // spill: 16 bytes of scratch (NT = 4).
  const bw: usize = type == T_Q8_0 ? 34 : type == T_Q4_0 ? 18 : type == T_Q4_1 ? 20 : type == T_Q5_0 ? 22 : 24;
  const q81 = smallQ81(type);
  const ab: usize = q81 ? SMALL_BLOCK_1 : SMALL_BLOCK;
  let acc = f32x4.splat(0);
  let p = w;
  let a = g;
  const end = w + <usize>nb * bw;
  const m8 = i16x8.splat(<i16>0x8888);
  const m4 = i16x8.splat(15);
  const mb = i8x16.splat(15);
  const bit = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  const lowByte = i16x8.splat(0xff);
  const tab = F16_TABLE; // a local: V8 reloads a global every iteration
  while (p < end) {
    let qA: v128;
    let qB: v128;
    let qC: v128;
    let qD: v128;
    if (type == T_Q8_0) {
      const v0 = v128.load(p, 2);
      const v1 = v128.load(p, 18);
      // i8 pairs as i16 lanes: the even byte sign-extended from the low half, the odd from the high.
      qA = i16x8.shr_s(i16x8.shl(v0, 8), 8);
      qB = i16x8.shr_s(v0, 8);
      qC = i16x8.shr_s(i16x8.shl(v1, 8), 8);
      qD = i16x8.shr_s(v1, 8);
    } else if (type == T_Q4_0) {
      // Q4_0: nibble n stands for n - 8, whose 4-bit two's complement is n ^ 8: flip bit 3 of
      // every nibble, then sign-extend each nibble (slots as in dotQ4_0).
      const u = v128.xor(v128.load(p, 2), m8);
      qA = i16x8.shr_s(i16x8.shl(u, 12), 12);
      qB = i16x8.shr_s(i16x8.shl(u, 4), 12);
      qC = i16x8.shr_s(i16x8.shl(u, 8), 12);
      qD = i16x8.shr_s(u, 12);
    } else if (type == T_Q4_1) {
      // Q4_1: the nibbles as they are (slots as in dotQ4_1).
      const u = v128.load(p, 4);
      qA = v128.and(u, m4);
      qB = v128.and(i16x8.shr_u(u, 8), m4);
      qC = v128.and(i16x8.shr_u(u, 4), m4);
      qD = i16x8.shr_u(u, 12);
    } else {
      // Q5_0 / Q5_1, on bytes as dotQ5_0: byte k of the nibbles holds values k (low) and k + 16
      // (high); the fifth bits (qh, bit k = value k) spread to byte lanes by a byte shuffle of qh
      // and a compare with each lane's bit (all ones where set). Q5_1: value = nibble + 16 h;
      // Q5_0: value - 16 = the nibble with bits 4..7 set where h is clear, as a signed byte.
      // Then the even bytes (values 2k, 2k + 16) and the odd ones to the i16 EO slots.
      const five1 = type == T_Q5_1;
      const h = i32x4.splat(load<u32>(p + <usize>(five1 ? 4 : 2)));
      const v = v128.load(p + <usize>(five1 ? 8 : 6));
      const eLo = i8x16.eq(v128.and(i8x16.shuffle(h, h, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), bit), bit);
      const eHi = i8x16.eq(v128.and(i8x16.shuffle(h, h, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), bit), bit);
      const nLo = v128.and(v, mb);
      const nHi = v128.and(i16x8.shr_u(v, 4), mb);
      if (five1) {
        const b16 = i8x16.splat(16);
        const lo = v128.or(nLo, v128.and(eLo, b16));
        const hi = v128.or(nHi, v128.and(eHi, b16));
        qA = v128.and(lo, lowByte);
        qB = i16x8.shr_u(lo, 8);
        qC = v128.and(hi, lowByte);
        qD = i16x8.shr_u(hi, 8);
      } else {
        const bF0 = i8x16.splat(-16);
        const lo = v128.or(nLo, v128.andnot(bF0, eLo));
        const hi = v128.or(nHi, v128.andnot(bF0, eHi));
        qA = i16x8.shr_s(i16x8.shl(lo, 8), 8);
        qB = i16x8.shr_s(lo, 8);
        qC = i16x8.shr_s(i16x8.shl(hi, 8), 8);
        qD = i16x8.shr_s(hi, 8);
      }
    }
    const s0 = dot4(qA, qB, qC, qD, v128.load(a), v128.load(a, 16), v128.load(a, 32), v128.load(a, 48));
    const s1 = dot4(qA, qB, qC, qD, v128.load(a, 64), v128.load(a, 80), v128.load(a, 96), v128.load(a, 112));
    let p01 = fold2(s0, s1);
    let si: v128;
    if (NT == 2) {
      si = i32x4.add(p01, i32x4.shuffle(p01, p01, 2, 3, 0, 1));
    } else {
      // NOTE: tokens 0, 1's partial sums through memory: V8 hoists every load of a loop body to
      // its top, and the 16 activation loads then spill 8 registers to the stack in every
      // iteration (1.15-1.2x slower at T = 3, 4); the loads below cannot move above this store.
      v128.store(spill, p01);
      const s2 = dot4(qA, qB, qC, qD, v128.load(a, 128), v128.load(a, 144), v128.load(a, 160), v128.load(a, 176));
      // NT = 3: lane 2 of the fold of s2 with itself is token 2's sum (lane 3 is not stored).
      const s3 =
        NT == 4 ? dot4(qA, qB, qC, qD, v128.load(a, 192), v128.load(a, 208), v128.load(a, 224), v128.load(a, 240)) : s2;
      const p23 = fold2(s2, s3);
      p01 = v128.load(spill);
      si = i32x4.add(i32x4.shuffle(p01, p23, 0, 1, 4, 5), i32x4.shuffle(p01, p23, 2, 3, 6, 7));
    }
    const sc = f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p) << 2)), v128.load(a, 256));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(si), sc));
    // Q4_1 / Q5_1: + m_w * s_x (tileLegacy's order).
    if (q81) acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p, 2) << 2)), v128.load(a, 272)));
    p += bw;
    a += ab;
  }
  return acc;
}

function rowQ8_0x2(w: usize, g: usize, nb: i32): v128 {
  return rowGroup(T_Q8_0, w, g, nb, 2, 0);
}
function rowQ8_0x3(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q8_0, w, g, nb, 3, spill);
}
function rowQ8_0x4(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q8_0, w, g, nb, 4, spill);
}
function rowQ4_0x2(w: usize, g: usize, nb: i32): v128 {
  return rowGroup(T_Q4_0, w, g, nb, 2, 0);
}
function rowQ4_0x3(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q4_0, w, g, nb, 3, spill);
}
function rowQ4_0x4(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q4_0, w, g, nb, 4, spill);
}
function rowQ5_0x2(w: usize, g: usize, nb: i32): v128 {
  return rowGroup(T_Q5_0, w, g, nb, 2, 0);
}
function rowQ5_0x3(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q5_0, w, g, nb, 3, spill);
}
function rowQ5_0x4(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q5_0, w, g, nb, 4, spill);
}
function rowQ4_1x2(w: usize, g: usize, nb: i32): v128 {
  return rowGroup(T_Q4_1, w, g, nb, 2, 0);
}
function rowQ4_1x3(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q4_1, w, g, nb, 3, spill);
}
function rowQ4_1x4(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q4_1, w, g, nb, 4, spill);
}
function rowQ5_1x2(w: usize, g: usize, nb: i32): v128 {
  return rowGroup(T_Q5_1, w, g, nb, 2, 0);
}
function rowQ5_1x3(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q5_1, w, g, nb, 3, spill);
}
function rowQ5_1x4(w: usize, g: usize, nb: i32, spill: usize): v128 {
  return rowGroup(T_Q5_1, w, g, nb, 4, spill);
}

/** One row . the nt (1..4; 1 only for Q2_K, Q3_K) tokens of the packed group at g. */
@inline
function rowOf(type: i32, w: usize, g: usize, nb: i32, nt: i32, spill: usize): v128 {
  if (type == T_Q2_K)
    return nt == 4 ? rowQ2Kx4(w, g, nb, spill) : nt == 3 ? rowQ2Kx3(w, g, nb, spill) : nt == 2 ? rowQ2Kx2(w, g, nb, spill) : rowQ2Kx1(w, g, nb, spill);
  if (type == T_Q3_K)
    return nt == 4 ? rowQ3Kx4(w, g, nb, spill) : nt == 3 ? rowQ3Kx3(w, g, nb, spill) : nt == 2 ? rowQ3Kx2(w, g, nb, spill) : rowQ3Kx1(w, g, nb, spill);
  if (type == T_Q6_K) return nt == 4 ? rowQ6Kx4(w, g, nb, spill) : nt == 3 ? rowQ6Kx3(w, g, nb, spill) : rowQ6Kx2(w, g, nb, spill);
  if (type == T_Q5_K) return nt == 4 ? rowQ5Kx4(w, g, nb, spill) : nt == 3 ? rowQ5Kx3(w, g, nb, spill) : rowQ5Kx2(w, g, nb, spill);
  if (type == T_Q4_K) return nt == 4 ? rowQ4Kx4(w, g, nb, spill) : nt == 3 ? rowQ4Kx3(w, g, nb, spill) : rowQ4Kx2(w, g, nb, spill);
  if (type == T_Q8_0) return nt == 4 ? rowQ8_0x4(w, g, nb, spill) : nt == 3 ? rowQ8_0x3(w, g, nb, spill) : rowQ8_0x2(w, g, nb);
  if (type == T_Q5_0) return nt == 4 ? rowQ5_0x4(w, g, nb, spill) : nt == 3 ? rowQ5_0x3(w, g, nb, spill) : rowQ5_0x2(w, g, nb);
  if (type == T_Q4_1) return nt == 4 ? rowQ4_1x4(w, g, nb, spill) : nt == 3 ? rowQ4_1x3(w, g, nb, spill) : rowQ4_1x2(w, g, nb);
  if (type == T_Q5_1) return nt == 4 ? rowQ5_1x4(w, g, nb, spill) : nt == 3 ? rowQ5_1x3(w, g, nb, spill) : rowQ5_1x2(w, g, nb);
  return nt == 4 ? rowQ4_0x4(w, g, nb, spill) : nt == 3 ? rowQ4_0x3(w, g, nb, spill) : rowQ4_0x2(w, g, nb);
}

/** Token results of one row (lanes of v) to y + t ys, t < nt. */
@inline
function storeTokens(v: v128, y: usize, ys: usize, nt: i32): void {
  store<f32>(y, f32x4.extract_lane(v, 0));
  if (nt > 1) store<f32>(y + ys, f32x4.extract_lane(v, 1));
  if (nt > 2) store<f32>(y + 2 * ys, f32x4.extract_lane(v, 2));
  if (nt > 3) store<f32>(y + 3 * ys, f32x4.extract_lane(v, 3));
}

/**
 * Rows [r0, r1) of y (T,OC) = x . w^T for `type` with useSmallT(type, T) (row t of y ys bytes
 * after row t - 1): xp the packed activation groups (smallGroupBytes or smallKGroupBytes each);
 * scratch 64 bytes.
 */
export function matmulSmall(
  type: i32,
  w: usize,
  rb: usize,
  xp: usize,
  y: usize,
  ys: usize,
  T: i32,
  C: i32,
  r0: i32,
  r1: i32,
  scratch: usize,
): void {
  const k = isSmallK(type);
  const nb = k ? C >> 8 : C >> 5;
  const g1 = xp + (k ? smallKGroupBytes(C, type == T_Q2_K) : smallGroupBytes(C, smallQ81(type)));
  const y1 = y + 4 * ys;
  const n0 = min(4, T);
  // NOTE: two groups at most (SMALL_T_MAX = 8), as two calls: each row kernel then has two
  // callers, which keeps binaryen from inlining it into matmulRows (one function holding every
  // kernel's loop spilled SIMD values to the stack in all of them).
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * rb;
    const o = <usize>r << 2;
    storeTokens(rowOf(type, wr, xp, nb, n0, scratch), y + o, ys, n0);
    if (T > 4) storeTokens(rowOf(type, wr, g1, nb, T - 4, scratch), y1 + o, ys, T - 4);
  }
}

// ---------------------------------------------------------------------------- Q4_K, Q5_K
//
// Q4_K and Q5_K (256-value blocks of 8 sub-blocks of 32, 6-bit scales and mins, Q5_K a fifth bit
// per value; ggml_vec_dot_q4_K_q8_K, _q5_K_q8_K) against Q8_K activations. Per sub-block the
// quants are multiplied by their scale in i16 (at most 31 * 63) before the dots, once for every
// token; per block and token the integer sum of scale * q * a is exact (as the one-token dots',
// which scale the i32 sums instead), and the mins term sum_g min_g * (bsum_2g + bsum_2g+1) is one
// i16 dot with the activation's 8 bsum pairs. Per block and token: sum += float(isum) * (d_w *
// d_x), then sum -= float(summ) * (dmin_w * d_x): the order of the register tiles (tileK), so a
// token's result is the same bits here and there.
//
// Packed activation per group of 4 tokens, SMALL_K_BLOCK bytes per block: for each pair j of
// sub-blocks (64 values, 512 bytes) 4 tokens x 64 EO i16 (quantize.ts's expansion of values 64 j
// ..64 j + 63: token t at +512 j + 128 t), then d (4 f32) at +2048, then per token the 8 sums
// bsum_2g + bsum_2g+1 as i16 (token t at +2064 + 16 t); tokens past T are zero.

/** Bytes of one 256-value block of a packed group of 4 tokens (Q8_K). */
export const SMALL_K_BLOCK: usize = 2128;
/** The same for Q2_K: per token the 16 bsums as i16 (32 bytes) instead of 8 pair sums. */
export const SMALL_K2_BLOCK: usize = 2192;

/** Bytes of the packed Q8_K activation of one group of 4 tokens of C values (q2: for Q2_K). */
@inline
export function smallKGroupBytes(C: i32, q2: bool): usize {
  return <usize>(C >> 8) * (q2 ? SMALL_K2_BLOCK : SMALL_K_BLOCK);
}

/**
 * Tokens t0..t0+n-1 (n <= 4) of the EO-expanded Q8_K activation (qs (T,C) i16, d (T, C/256) f32,
 * bsums (T, C/16) i32; quantize.ts expandQ8K) -> one packed group at g (layout above; q2: Q2_K's,
 * the 16 bsums of token t as i16 at +2064 + 32 t, see the Q2_K section).
 */
export function packSmallKGroup(qs: usize, d: usize, bsums: usize, t0: i32, n: i32, C: i32, q2: bool, g: usize): void {
  const nb = C >> 8;
  const z = i32x4.splat(0);
  const kb: usize = q2 ? SMALL_K2_BLOCK : SMALL_K_BLOCK;
  for (let i = 0; i < 4; i++) {
    const t = t0 + i;
    for (let b = 0; b < nb; b++) {
      const o = g + <usize>b * kb;
      if (i >= n) {
        for (let j = 0; j < 4; j++) {
          const q = o + (<usize>j << 9) + (<usize>i << 7);
          for (let v = 0; v < 8; v++) v128.store(q + (<usize>v << 4), z);
        }
        store<f32>(o + 2048 + (<usize>i << 2), 0);
        if (q2) {
          v128.store(o + 2064 + (<usize>i << 5), z);
          v128.store(o + 2064 + (<usize>i << 5), z, 16);
        } else v128.store(o + 2064 + (<usize>i << 4), z);
        continue;
      }
      const src = qs + ((<usize>t * <usize>C) << 1) + (<usize>b << 9);
      for (let j = 0; j < 4; j++) {
        const q = o + (<usize>j << 9) + (<usize>i << 7);
        const sj = src + (<usize>j << 7);
        for (let v = 0; v < 8; v++) v128.store(q + (<usize>v << 4), v128.load(sj + (<usize>v << 4)));
      }
      store<f32>(o + 2048 + (<usize>i << 2), load<f32>(d + (<usize>(t * nb + b) << 2)));
      const bs = bsums + (<usize>(t * (C >> 4) + 16 * b) << 2);
      if (q2) {
        // Each bsum within +-16 * 127: exact in i16.
        const bp = o + 2064 + (<usize>i << 5);
        v128.store(bp, i16x8.narrow_i32x4_s(v128.load(bs), v128.load(bs, 16)));
        v128.store(bp, i16x8.narrow_i32x4_s(v128.load(bs, 32), v128.load(bs, 48)), 16);
        continue;
      }
      const bp = o + 2064 + (<usize>i << 4);
      for (let k = 0; k < 8; k++) store<i16>(bp + (<usize>k << 1), <i16>(load<i32>(bs + (<usize>k << 3)) + load<i32>(bs + (<usize>k << 3), 4)));
    }
  }
}

/**
 * One Q4_K (five: Q5_K) row of nb blocks at w . NT (2..4) tokens of a packed group at g: lane t =
 * token t's result. sp: 32 bytes of scratch (the block's scales as i16, and the barrier stores).
 */
@inline
function rowQ4K(w: usize, g: usize, nb: i32, NT: i32, sp: usize, five: bool): v128 {
  const m = i16x8.splat(15);
  const m16 = i16x8.splat(16);
  const bw: usize = five ? 176 : 144;
  const tab = F16_TABLE;
  let acc = f32x4.splat(0);
  let p = w;
  let a = g;
  const end = w + <usize>nb * bw;
  while (p < end) {
    // get_scale_min_k4 for all 8 sub-blocks at once: bytes 0..3 / 4..7 of the 12 scale bytes
    // hold scales / mins 0..3 in their low 6 bits, bytes 8..11 the low 4 bits of scales / mins
    // 4..7 and bytes 0..3 / 4..7 their top 2 bits.
    const u0 = load<u32>(p, 4);
    const u1 = load<u32>(p, 8);
    const u2 = load<u32>(p, 12);
    const scLo = u0 & 0x3f3f3f3f;
    const scHi = (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4);
    const mnLo = u1 & 0x3f3f3f3f;
    const mnHi = ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4);
    v128.store(sp, i16x8.extend_low_i8x16_u(i32x4.replace_lane(i32x4.splat(scLo), 1, scHi)));
    let i01 = i32x4.splat(0);
    let i23 = i32x4.splat(0);
    let q = p + (five ? 48 : 16);
    let x = a;
    let s = sp;
    let hs = 0; // Q5_K: sub-block 2 j's fifth bits are bit 2 j of each qh byte
    const qEnd = q + 128;
    while (q < qEnd) {
      const c0 = v128.load(q);
      const c1 = v128.load(q, 16);
      // Sub-block 2 j: the low nibbles; 2 j + 1: the high ones (slots as in dotQ4K; Q5_K's fifth
      // bits as matmul-decoded.ts decodeRow).
      let sv = v128.load16_splat(s);
      let qA = v128.and(c0, m);
      let qB = v128.and(i16x8.shr_u(c0, 8), m);
      let qC = v128.and(c1, m);
      let qD = v128.and(i16x8.shr_u(c1, 8), m);
      if (five) {
        const h0 = v128.load(p, 16);
        const h1 = v128.load(p, 32);
        qA = v128.or(qA, v128.and(i16x8.shr_u(i16x8.shl(h0, 4), hs), m16));
        qB = v128.or(qB, v128.and(i16x8.shr_u(h0, hs + 4), m16));
        qC = v128.or(qC, v128.and(i16x8.shr_u(i16x8.shl(h1, 4), hs), m16));
        qD = v128.or(qD, v128.and(i16x8.shr_u(h1, hs + 4), m16));
      }
      let wA = i16x8.mul(qA, sv);
      let wB = i16x8.mul(qB, sv);
      let wC = i16x8.mul(qC, sv);
      let wD = i16x8.mul(qD, sv);
      let s0 = dot4(wA, wB, wC, wD, v128.load(x), v128.load(x, 16), v128.load(x, 32), v128.load(x, 48));
      let s1 = dot4(wA, wB, wC, wD, v128.load(x, 128), v128.load(x, 144), v128.load(x, 160), v128.load(x, 176));
      let f = fold2(s0, s1);
      i01 = i32x4.add(i01, f);
      if (NT > 2) {
        // NOTE: barrier stores as in rowGroup: V8 would hoist every load of the body to its top.
        v128.store(sp, f, 16);
        s0 = dot4(wA, wB, wC, wD, v128.load(x, 256), v128.load(x, 272), v128.load(x, 288), v128.load(x, 304));
        s1 = NT == 4 ? dot4(wA, wB, wC, wD, v128.load(x, 384), v128.load(x, 400), v128.load(x, 416), v128.load(x, 432)) : s0;
        f = fold2(s0, s1);
        i23 = i32x4.add(i23, f);
      }
      v128.store(sp, f, 16);
      sv = v128.load16_splat(s, 2);
      qA = v128.and(i16x8.shr_u(c0, 4), m);
      qB = i16x8.shr_u(c0, 12);
      qC = v128.and(i16x8.shr_u(c1, 4), m);
      qD = i16x8.shr_u(c1, 12);
      if (five) {
        const h0 = v128.load(p, 16);
        const h1 = v128.load(p, 32);
        qA = v128.or(qA, v128.and(i16x8.shr_u(i16x8.shl(h0, 4), hs + 1), m16));
        qB = v128.or(qB, v128.and(i16x8.shr_u(h0, hs + 5), m16));
        qC = v128.or(qC, v128.and(i16x8.shr_u(i16x8.shl(h1, 4), hs + 1), m16));
        qD = v128.or(qD, v128.and(i16x8.shr_u(h1, hs + 5), m16));
      }
      wA = i16x8.mul(qA, sv);
      wB = i16x8.mul(qB, sv);
      wC = i16x8.mul(qC, sv);
      wD = i16x8.mul(qD, sv);
      s0 = dot4(wA, wB, wC, wD, v128.load(x, 64), v128.load(x, 80), v128.load(x, 96), v128.load(x, 112));
      s1 = dot4(wA, wB, wC, wD, v128.load(x, 192), v128.load(x, 208), v128.load(x, 224), v128.load(x, 240));
      f = fold2(s0, s1);
      i01 = i32x4.add(i01, f);
      if (NT > 2) {
        v128.store(sp, f, 16);
        s0 = dot4(wA, wB, wC, wD, v128.load(x, 320), v128.load(x, 336), v128.load(x, 352), v128.load(x, 368));
        s1 = NT == 4 ? dot4(wA, wB, wC, wD, v128.load(x, 448), v128.load(x, 464), v128.load(x, 480), v128.load(x, 496)) : s0;
        i23 = i32x4.add(i23, fold2(s0, s1));
      }
      q += 32;
      x += 512;
      s += 4;
      hs += 2;
    }
    // Lane t: token t's sum of scale * q * a, then of min * bsum pair.
    const isum = i32x4.add(i32x4.shuffle(i01, i23, 0, 1, 4, 5), i32x4.shuffle(i01, i23, 2, 3, 6, 7));
    const mn = i16x8.extend_low_i8x16_u(i32x4.replace_lane(i32x4.splat(mnLo), 1, mnHi));
    const m0 = i32x4.dot_i16x8_s(mn, v128.load(a, 2064));
    const m1 = i32x4.dot_i16x8_s(mn, v128.load(a, 2080));
    const m2 = NT > 2 ? i32x4.dot_i16x8_s(mn, v128.load(a, 2096)) : m0;
    const m3 = NT == 4 ? i32x4.dot_i16x8_s(mn, v128.load(a, 2112)) : m2;
    const f01 = fold2(m0, m1);
    const f23 = fold2(m2, m3);
    const summ = i32x4.add(i32x4.shuffle(f01, f23, 0, 1, 4, 5), i32x4.shuffle(f01, f23, 2, 3, 6, 7));
    const dx = v128.load(a, 2048);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p) << 2)), dx)));
    acc = f32x4.sub(acc, f32x4.mul(f32x4.convert_i32x4_s(summ), f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p, 2) << 2)), dx)));
    p += bw;
    a += SMALL_K_BLOCK;
  }
  return acc;
}

function rowQ4Kx2(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ4K(w, g, nb, 2, sp, false);
}
function rowQ4Kx3(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ4K(w, g, nb, 3, sp, false);
}
function rowQ4Kx4(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ4K(w, g, nb, 4, sp, false);
}
function rowQ5Kx2(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ4K(w, g, nb, 2, sp, true);
}
function rowQ5Kx3(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ4K(w, g, nb, 3, sp, true);
}
function rowQ5Kx4(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ4K(w, g, nb, 4, sp, true);
}

// ---------------------------------------------------------------------------------- Q6_K
//
// Q6_K (256-value blocks of 16 sub-blocks of 16 with i8 scales, values (6 bits) - 32;
// ggml_vec_dot_q6_K_q8_K) against the Q4_K section's packed Q8_K activation (its bsums unused).
// Per sub-block the values are multiplied by their scale in i16 (at most 32 * 128) once for every
// token; per block and token the integer sum of scale * q * a is exact, then sum += float(isum) *
// (d_w * d_x): tileK's order.

/**
 * The 4 EO slots of group 4 c + k (32 values) of the Q6_K block at p, times their scales: slots
 * A, B (values 0..15 of the group) scale 8 c + 2 k, C, D scale 8 c + 2 k + 1 (dotQ6K's layout).
 * Returns slot `slot` (a constant after inlining).
 */
@inline
function q6Slot(p: usize, c: i32, k: i32, slot: i32): v128 {
  const m = i16x8.splat(15);
  const m48 = i16x8.splat(0x30);
  const e32 = i16x8.splat(32);
  const ns = 4 * (k >> 1);
  const hs = 2 * k;
  const ql = v128.load(p + 64 * c + 32 * (k & 1) + (slot >> 1) * 16);
  const qh = v128.load(p + 128 + 32 * c + (slot >> 1) * 16);
  let v: v128;
  if ((slot & 1) == 0) v = v128.or(v128.and(i16x8.shr_u(ql, ns), m), v128.and(i16x8.shr_u(i16x8.shl(qh, 4), hs), m48));
  else v = v128.or(v128.and(i16x8.shr_u(ql, 8 + ns), m), v128.and(i16x8.shr_u(qh, 4 + hs), m48));
  const sc = i16x8.extend_low_i8x16_s(v128.load8_splat(p + 192 + 8 * c + 2 * k + (slot >> 1)));
  return i16x8.mul(i16x8.sub(v, e32), sc);
}

/**
 * Group 4 c + k of the Q6_K block at p (weights) . NT tokens of the packed block at x (the
 * group's 32 values of token t at x + (k >> 1) 512 + (k & 1) 64 + 128 t, c's half of the block
 * included in x): the folded partial sums of tokens 0, 1 added to i01 (returned) and of tokens 2,
 * 3 stored added at sp + 32 .. (the barrier stores of rowGroup's NOTE).
 */
@inline
function q6Group(p: usize, c: i32, k: i32, x: usize, NT: i32, sp: usize, i01: v128): v128 {
  const wA = q6Slot(p, c, k, 0);
  const wB = q6Slot(p, c, k, 1);
  const wC = q6Slot(p, c, k, 2);
  const wD = q6Slot(p, c, k, 3);
  const o: usize = <usize>((k >> 1) * 512 + (k & 1) * 64);
  const xo = x + o;
  const s0 = dot4(wA, wB, wC, wD, v128.load(xo), v128.load(xo, 16), v128.load(xo, 32), v128.load(xo, 48));
  const s1 = dot4(wA, wB, wC, wD, v128.load(xo, 128), v128.load(xo, 144), v128.load(xo, 160), v128.load(xo, 176));
  const r = i32x4.add(i01, fold2(s0, s1));
  if (NT > 2) {
    v128.store(sp, r, 16);
    const s2 = dot4(wA, wB, wC, wD, v128.load(xo, 256), v128.load(xo, 272), v128.load(xo, 288), v128.load(xo, 304));
    const s3 =
      NT == 4 ? dot4(wA, wB, wC, wD, v128.load(xo, 384), v128.load(xo, 400), v128.load(xo, 416), v128.load(xo, 432)) : s2;
    v128.store(sp, i32x4.add(v128.load(sp, 32), fold2(s2, s3)), 32);
  } else {
    v128.store(sp, r, 16);
  }
  return r;
}

/** One Q6_K row of nb blocks at w . NT (2..4) tokens of a packed group at g; sp 48 bytes of scratch. */
@inline
function rowQ6K(w: usize, g: usize, nb: i32, NT: i32, sp: usize): v128 {
  const tab = F16_TABLE;
  let acc = f32x4.splat(0);
  let p = w;
  let a = g;
  const end = w + <usize>nb * 210;
  while (p < end) {
    let i01 = i32x4.splat(0);
    v128.store(sp, i01, 32);
    // The 8 groups unrolled (constant offsets); the barrier stores keep each group's loads in it.
    i01 = q6Group(p, 0, 0, a, NT, sp, i01);
    i01 = q6Group(p, 0, 1, a, NT, sp, i01);
    i01 = q6Group(p, 0, 2, a, NT, sp, i01);
    i01 = q6Group(p, 0, 3, a, NT, sp, i01);
    i01 = q6Group(p, 1, 0, a + 1024, NT, sp, i01);
    i01 = q6Group(p, 1, 1, a + 1024, NT, sp, i01);
    i01 = q6Group(p, 1, 2, a + 1024, NT, sp, i01);
    i01 = q6Group(p, 1, 3, a + 1024, NT, sp, i01);
    const i23 = v128.load(sp, 32);
    const isum = i32x4.add(i32x4.shuffle(i01, i23, 0, 1, 4, 5), i32x4.shuffle(i01, i23, 2, 3, 6, 7));
    const dx = v128.load(a, 2048);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p, 208) << 2)), dx)));
    p += 210;
    a += SMALL_K_BLOCK;
  }
  return acc;
}

function rowQ6Kx2(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ6K(w, g, nb, 2, sp);
}
function rowQ6Kx3(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ6K(w, g, nb, 3, sp);
}
function rowQ6Kx4(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ6K(w, g, nb, 4, sp);
}

// ---------------------------------------------------------------------------------- Q2_K, Q3_K
//
// Q2_K (256-value blocks of 16 sub-blocks of 16, 2-bit values, 4-bit scales and mins;
// ggml_vec_dot_q2_K_q8_K) and Q3_K (2-bit values with a third bit in hmask, minus 4; 6-bit scales
// minus 32; ggml_vec_dot_q3_K_q8_K) against Q8_K activations: Q3_K in the Q4_K section's packed
// layout (its bsums unused), Q2_K in SMALL_K2_BLOCK's (per token the 16 bsums as i16 at +2064 +
// 32 t: Q2_K has a min per 16 values). Group g = 4 c + k (32 values, sub-blocks 2 g and 2 g + 1)
// is bits 2 k, 2 k + 1 of the 32 quant bytes of half c (Q3_K: its third bits bit g of the 32
// hmask bytes), the EO slots by shifts and masks (as decodeRow, matmul-decoded.ts). Per
// sub-block the values are multiplied by their scale in i16 (Q2_K at most 3 * 15, Q3_K 4 * 32)
// once for every token; per block and token the integer sum of scale * q * a is exact, and Q2_K's
// mins term sum_j min_j * bsum_j two i16 dots. Per block and token: sum += float(isum) * (d_w *
// d_x), then (Q2_K) sum -= float(summ) * (dmin_w * d_x): tileK's order, the same bits as the tiles.

/**
 * Group 4 c + k of the Q2_K (three: Q3_K) block at p . NT tokens of the packed block at x, as
 * q6Group: the folded partial sums of tokens 0, 1 added to i01 (returned, and stored at sp + 32 as
 * a barrier), those of tokens 2, 3 added to the vector at sp + 48. sp: the block's 16 scales as
 * i16.
 */
@inline
function q23Group(p: usize, c: i32, k: i32, x: usize, NT: i32, sp: usize, i01: v128, three: bool): v128 {
  const m3 = i16x8.splat(3);
  const g = 4 * c + k;
  const sh = 2 * k;
  const q0 = v128.load(p + (three ? 32 : 16) + 32 * c);
  const q1 = v128.load(p + (three ? 48 : 32) + 32 * c);
  let qA: v128;
  let qB: v128;
  let qC: v128;
  let qD: v128;
  if (three) {
    // In the bytes: value = low bits - 4 (1 - h), h = bit g of the hmask byte moved to bit 2
    // (andnot keeps 4 where it is clear; shifts of i16 lanes, the bits crossing bytes masked off),
    // then the even bytes (slots A, C) and the odd ones sign-extended to i16 lanes.
    const m3b = i8x16.splat(3);
    const m4b = i8x16.splat(4);
    const h0 = v128.load(p);
    const h1 = v128.load(p, 16);
    const v0 = i8x16.sub(
      v128.and(sh == 0 ? q0 : i16x8.shr_u(q0, sh), m3b),
      v128.andnot(m4b, g < 2 ? i16x8.shl(h0, 2 - g) : g == 2 ? h0 : i16x8.shr_u(h0, g - 2)),
    );
    const v1 = i8x16.sub(
      v128.and(sh == 0 ? q1 : i16x8.shr_u(q1, sh), m3b),
      v128.andnot(m4b, g < 2 ? i16x8.shl(h1, 2 - g) : g == 2 ? h1 : i16x8.shr_u(h1, g - 2)),
    );
    qA = i16x8.shr_s(i16x8.shl(v0, 8), 8);
    qB = i16x8.shr_s(v0, 8);
    qC = i16x8.shr_s(i16x8.shl(v1, 8), 8);
    qD = i16x8.shr_s(v1, 8);
  } else {
    qA = v128.and(sh == 0 ? q0 : i16x8.shr_u(q0, sh), m3);
    qB = v128.and(i16x8.shr_u(q0, 8 + sh), m3);
    qC = v128.and(sh == 0 ? q1 : i16x8.shr_u(q1, sh), m3);
    qD = v128.and(i16x8.shr_u(q1, 8 + sh), m3);
  }
  const sAB = v128.load16_splat(sp + <usize>(4 * g));
  const sCD = v128.load16_splat(sp + <usize>(4 * g + 2));
  const wA = i16x8.mul(qA, sAB);
  const wB = i16x8.mul(qB, sAB);
  const wC = i16x8.mul(qC, sCD);
  const wD = i16x8.mul(qD, sCD);
  const xo = x + <usize>((g >> 1) * 512 + (g & 1) * 64);
  const s0 = dot4(wA, wB, wC, wD, v128.load(xo), v128.load(xo, 16), v128.load(xo, 32), v128.load(xo, 48));
  // NT = 1: lanes 0 and 2 of the fold of s0 with itself hold token 0's sums (lane 1 is not stored).
  const s1 =
    NT > 1 ? dot4(wA, wB, wC, wD, v128.load(xo, 128), v128.load(xo, 144), v128.load(xo, 160), v128.load(xo, 176)) : s0;
  const r = i32x4.add(i01, fold2(s0, s1));
  v128.store(sp, r, 32);
  if (NT > 2) {
    const s2 = dot4(wA, wB, wC, wD, v128.load(xo, 256), v128.load(xo, 272), v128.load(xo, 288), v128.load(xo, 304));
    const s3 =
      NT == 4 ? dot4(wA, wB, wC, wD, v128.load(xo, 384), v128.load(xo, 400), v128.load(xo, 416), v128.load(xo, 432)) : s2;
    v128.store(sp, i32x4.add(v128.load(sp, 48), fold2(s2, s3)), 48);
  }
  return r;
}

/**
 * One Q2_K (three: Q3_K) row of nb blocks at w . NT (1..4) tokens of a packed group at g: lane t =
 * token t's result. sp: 64 bytes of scratch (the block's scales as i16, and the barrier stores).
 */
@inline
function rowQ23K(w: usize, g: usize, nb: i32, NT: i32, sp: usize, three: bool): v128 {
  const tab = F16_TABLE;
  const bw: usize = three ? 110 : 84;
  const ab: usize = three ? SMALL_K_BLOCK : SMALL_K2_BLOCK;
  let acc = f32x4.splat(0);
  let p = w;
  let a = g;
  const end = w + <usize>nb * bw;
  while (p < end) {
    let sc: v128;
    if (three) {
      // scaleQ3K of the 16 sub-blocks in two 64-bit words: bytes 0..7 of the 12 scale bytes hold
      // the low 4 bits of scales 0..7 (low nibbles) and 8..15 (high nibbles), byte 8 + i bits 2 m,
      // 2 m + 1 the top 2 bits of scale 4 m + i.
      const u = load<u64>(p, 96);
      const h = load<u32>(p, 104);
      const m = 0x0f0f0f0f0f0f0f0f;
      const lo = (u & m) | (<u64>(h & 0x03030303) << 4) | (<u64>((h >> 2) & 0x03030303) << 36);
      const hi = ((u >> 4) & m) | (<u64>((h >> 4) & 0x03030303) << 4) | (<u64>((h >> 6) & 0x03030303) << 36);
      sc = i8x16.sub(i64x2.replace_lane(i64x2.splat(lo), 1, hi), i8x16.splat(32));
      v128.store(sp, i16x8.extend_low_i8x16_s(sc));
      v128.store(sp, i16x8.extend_high_i8x16_s(sc), 16);
    } else {
      sc = v128.and(v128.load(p), i8x16.splat(15));
      v128.store(sp, i16x8.extend_low_i8x16_u(sc));
      v128.store(sp, i16x8.extend_high_i8x16_u(sc), 16);
    }
    let i01 = i32x4.splat(0);
    v128.store(sp, i01, 48);
    // The 8 groups unrolled (constant offsets); the barrier stores keep each group's loads in it.
    i01 = q23Group(p, 0, 0, a, NT, sp, i01, three);
    i01 = q23Group(p, 0, 1, a, NT, sp, i01, three);
    i01 = q23Group(p, 0, 2, a, NT, sp, i01, three);
    i01 = q23Group(p, 0, 3, a, NT, sp, i01, three);
    i01 = q23Group(p, 1, 0, a, NT, sp, i01, three);
    i01 = q23Group(p, 1, 1, a, NT, sp, i01, three);
    i01 = q23Group(p, 1, 2, a, NT, sp, i01, three);
    i01 = q23Group(p, 1, 3, a, NT, sp, i01, three);
    const i23 = v128.load(sp, 48);
    const isum = i32x4.add(i32x4.shuffle(i01, i23, 0, 1, 4, 5), i32x4.shuffle(i01, i23, 2, 3, 6, 7));
    const dx = v128.load(a, 2048);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p + <usize>(three ? 108 : 80)) << 2)), dx)));
    if (!three) {
      // Mins: the high nibbles of the 16 scale bytes, dotted with each token's 16 bsums.
      const mn = v128.and(i16x8.shr_u(v128.load(p), 4), i8x16.splat(15));
      const mLo = i16x8.extend_low_i8x16_u(mn);
      const mHi = i16x8.extend_high_i8x16_u(mn);
      const m0 = i32x4.add(i32x4.dot_i16x8_s(mLo, v128.load(a, 2064)), i32x4.dot_i16x8_s(mHi, v128.load(a, 2080)));
      const m1 = NT > 1 ? i32x4.add(i32x4.dot_i16x8_s(mLo, v128.load(a, 2096)), i32x4.dot_i16x8_s(mHi, v128.load(a, 2112))) : m0;
      const m2 = NT > 2 ? i32x4.add(i32x4.dot_i16x8_s(mLo, v128.load(a, 2128)), i32x4.dot_i16x8_s(mHi, v128.load(a, 2144))) : m0;
      const m3 = NT == 4 ? i32x4.add(i32x4.dot_i16x8_s(mLo, v128.load(a, 2160)), i32x4.dot_i16x8_s(mHi, v128.load(a, 2176))) : m2;
      const f01 = fold2(m0, m1);
      const f23 = fold2(m2, m3);
      const summ = i32x4.add(i32x4.shuffle(f01, f23, 0, 1, 4, 5), i32x4.shuffle(f01, f23, 2, 3, 6, 7));
      acc = f32x4.sub(acc, f32x4.mul(f32x4.convert_i32x4_s(summ), f32x4.mul(v128.load32_splat(tab + (<usize>load<u16>(p, 82) << 2)), dx)));
    }
    p += bw;
    a += ab;
  }
  return acc;
}

function rowQ2Kx1(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ23K(w, g, nb, 1, sp, false);
}
function rowQ2Kx2(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ23K(w, g, nb, 2, sp, false);
}
function rowQ2Kx3(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ23K(w, g, nb, 3, sp, false);
}
function rowQ2Kx4(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ23K(w, g, nb, 4, sp, false);
}
function rowQ3Kx1(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ23K(w, g, nb, 1, sp, true);
}
function rowQ3Kx2(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ23K(w, g, nb, 2, sp, true);
}
function rowQ3Kx3(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ23K(w, g, nb, 3, sp, true);
}
function rowQ3Kx4(w: usize, g: usize, nb: i32, sp: usize): v128 {
  return rowQ23K(w, g, nb, 4, sp, true);
}

// ----------------------------------------------------------------------------- F16, BF16
//
// F16 weights without inf / NaN (T_F16S: each half read in float32 position, times 2^-112, against
// an activation prepared times 2^112, as dotF16S) and BF16, against the float activation packed
// by prepareAct in groups of 4 tokens (matmul-tiles.ts packTokensF32: per 4 values, 4 tokens x 4
// f32). Each 8 weights are widened once for every token; per token the lanes accumulate every
// 4th product in order and are summed ((l0 + l1) + (l2 + l3)) at the end: tileF32's order, so the
// same bits as the tiles. C a multiple of 4 (the tiles take the rest).

/**
 * True where matmulRows takes matmulSmallFloat: F16S / BF16 weights, 2 <= T <= 4, C % 4 == 0.
 * NOTE: from 5 tokens the tiles (2 rows x 4 tokens) win (110M-sized F16, 1 thread: T = 8 4.0x a
 * one-token product, this path 4.8x); here the products are float multiply-adds, two operations
 * per 4 lanes, so T = 4 costs 2.4x T = 1 either way (the tiles 2.6x) and T = 2, 3 gain most (1.5x,
 * 1.8x; the tiles 2.65x).
 */
@inline
export function useSmallFloat(type: i32, T: i32, C: i32): bool {
  return T > 1 && T <= 4 && (type == T_F16S || type == T_BF16) && (C & 3) == 0;
}

/** Sum of the 4 float lanes ((l0 + l1) + (l2 + l3)). */
@inline
function hsum4(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * One row of C halves (`type`, at w) . NT (2..4) tokens of a packed float group at g; token t's
 * result to y + t ys.
 */
@inline
function rowHalf(type: i32, w: usize, g: usize, C: i32, NT: i32, y: usize, ys: usize): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  const keep = i16x8.splat(<i16>0x8fff);
  const z = i32x4.splat(0);
  let p = w;
  let a = g;
  const end = w + (<usize>(C & ~7) << 1);
  while (p < end) {
    const v = v128.load(p);
    let lo: v128;
    let hi: v128;
    if (type == T_F16S) {
      // As dotF16S: float32 high halves sign | 3 zero bits | exponent | 7 mantissa bits, low halves
      // the last 3 mantissa bits at the top.
      const vh = v128.and(i16x8.shr_s(v, 3), keep);
      const vl = i16x8.shl(v, 13);
      lo = i16x8.shuffle(vl, vh, 0, 8, 1, 9, 2, 10, 3, 11);
      hi = i16x8.shuffle(vl, vh, 4, 12, 5, 13, 6, 14, 7, 15);
    } else {
      lo = i16x8.shuffle(z, v, 0, 8, 1, 9, 2, 10, 3, 11);
      hi = i16x8.shuffle(z, v, 4, 12, 5, 13, 6, 14, 7, 15);
    }
    a0 = f32x4.add(f32x4.add(a0, f32x4.mul(lo, v128.load(a))), f32x4.mul(hi, v128.load(a, 64)));
    a1 = f32x4.add(f32x4.add(a1, f32x4.mul(lo, v128.load(a, 16))), f32x4.mul(hi, v128.load(a, 80)));
    if (NT > 2) a2 = f32x4.add(f32x4.add(a2, f32x4.mul(lo, v128.load(a, 32))), f32x4.mul(hi, v128.load(a, 96)));
    if (NT > 3) a3 = f32x4.add(f32x4.add(a3, f32x4.mul(lo, v128.load(a, 48))), f32x4.mul(hi, v128.load(a, 112)));
    p += 16;
    a += 128;
  }
  if (C & 4) {
    const v = v128.load64_zero(p);
    const lo =
      type == T_F16S
        ? i16x8.shuffle(i16x8.shl(v, 13), v128.and(i16x8.shr_s(v, 3), keep), 0, 8, 1, 9, 2, 10, 3, 11)
        : i16x8.shuffle(z, v, 0, 8, 1, 9, 2, 10, 3, 11);
    a0 = f32x4.add(a0, f32x4.mul(lo, v128.load(a)));
    a1 = f32x4.add(a1, f32x4.mul(lo, v128.load(a, 16)));
    if (NT > 2) a2 = f32x4.add(a2, f32x4.mul(lo, v128.load(a, 32)));
    if (NT > 3) a3 = f32x4.add(a3, f32x4.mul(lo, v128.load(a, 48)));
  }
  store<f32>(y, hsum4(a0));
  store<f32>(y + ys, hsum4(a1));
  if (NT > 2) store<f32>(y + 2 * ys, hsum4(a2));
  if (NT > 3) store<f32>(y + 3 * ys, hsum4(a3));
}

function rowF16x2(w: usize, g: usize, C: i32, y: usize, ys: usize): void {
  rowHalf(T_F16S, w, g, C, 2, y, ys);
}
function rowF16x3(w: usize, g: usize, C: i32, y: usize, ys: usize): void {
  rowHalf(T_F16S, w, g, C, 3, y, ys);
}
function rowF16x4(w: usize, g: usize, C: i32, y: usize, ys: usize): void {
  rowHalf(T_F16S, w, g, C, 4, y, ys);
}
function rowBF16x2(w: usize, g: usize, C: i32, y: usize, ys: usize): void {
  rowHalf(T_BF16, w, g, C, 2, y, ys);
}
function rowBF16x3(w: usize, g: usize, C: i32, y: usize, ys: usize): void {
  rowHalf(T_BF16, w, g, C, 3, y, ys);
}
function rowBF16x4(w: usize, g: usize, C: i32, y: usize, ys: usize): void {
  rowHalf(T_BF16, w, g, C, 4, y, ys);
}

/** One row . the nt (2..4) tokens of a packed float group. */
@inline
function rowHalfOf(type: i32, w: usize, g: usize, C: i32, nt: i32, y: usize, ys: usize): void {
  if (type == T_F16S) {
    if (nt == 4) rowF16x4(w, g, C, y, ys);
    else if (nt == 3) rowF16x3(w, g, C, y, ys);
    else rowF16x2(w, g, C, y, ys);
  } else if (nt == 4) rowBF16x4(w, g, C, y, ys);
  else if (nt == 3) rowBF16x3(w, g, C, y, ys);
  else rowBF16x2(w, g, C, y, ys);
}

/**
 * Rows [r0, r1) of y (T,OC) = x . w^T for `type` with useSmallFloat(type, T, C) (row t of y ys
 * bytes after row t - 1): xp the packed float activation (packTokensF32, one group).
 */
export function matmulSmallFloat(
  type: i32,
  w: usize,
  rb: usize,
  xp: usize,
  y: usize,
  ys: usize,
  T: i32,
  C: i32,
  r0: i32,
  r1: i32,
): void {
  // Two rows per iteration and the odd one after: each row kernel has callers in two places,
  // which keeps binaryen from inlining it here (as matmulSmall's NOTE).
  let r = r0;
  for (; r + 2 <= r1; r += 2) {
    const wr = w + <usize>r * rb;
    const yr = y + (<usize>r << 2);
    rowHalfOf(type, wr, xp, C, T, yr, ys);
    rowHalfOf(type, wr + rb, xp, C, T, yr + 4, ys);
  }
  if (r < r1) rowHalfOf(type, w + <usize>r * rb, xp, C, T, y + (<usize>r << 2), ys);
}
