// Dot products of one row of a legacy block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; 32 values per
// block, layouts in src/quant/legacy.ts) with one activation row quantized to Q8_0 / Q8_1 and
// expanded to EO i16 (quantize.ts). They follow ggml_vec_dot_q{4_0,4_1,5_0,5_1,8_0}_q8_{0,1}
// (ggml-cpu/quants.c): the integer sum of each block is exact (i32 lanes, i32x4.dot_i16x8_s);
// the block scale products are applied per lane in float32 and the four lanes summed at the
// end, an order that differs from ggml's scalar loop (tolerance-tested).
//
// Decoding: 16 bytes of nibbles read as i16 lanes hold, in lane k, bytes 2k (low 8 bits) and
// 2k+1: `& 0xf` gives value 2k, `>> 8 & 0xf` value 2k+1, `>> 4 & 0xf` value 2k+16 and `>> 12`
// value 2k+17, exactly the four EO slots. The fifth bits (qh, bit j = value j) are spread to
// lanes by masking a splat of qh with the lane's bit and comparing with zero.
// Signature of every dot: (w row, qs (nb*32 i16 EO), d (nb f32), s (nb f32, Q8_1 only), nb) -> f32.
import { f16t, hsum } from "./common";

const EVEN_BITS = i16x8(1, 4, 16, 64, 256, 1024, 4096, 16384);
const ODD_BITS = i16x8(2, 8, 32, 128, 512, 2048, 8192, -32768);

/** The 4 i32 lane sums of q (EO slots A, B, C, D) times the activation's 32 EO i16 at a. */
@inline
function dot4(qA: v128, qB: v128, qC: v128, qD: v128, a: usize): v128 {
  const s = i32x4.add(i32x4.dot_i16x8_s(qA, v128.load(a)), i32x4.dot_i16x8_s(qB, v128.load(a, 16)));
  return i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(qC, v128.load(a, 32)), i32x4.dot_i16x8_s(qD, v128.load(a, 48))));
}

/** -16 in the lanes whose bit of the splat `bits` is clear (Q5_0: value = nibble + 16 h - 16). */
@inline
function minus16Where0(bits: v128, mask: v128): v128 {
  return v128.and(i16x8.eq(v128.and(bits, mask), i16x8.splat(0)), i16x8.splat(-16));
}

/** 16 in the lanes whose bit of the splat `bits` is set (Q5_1: value = nibble + 16 h). */
@inline
function plus16Where1(bits: v128, mask: v128): v128 {
  return i16x8.shl(i16x8.min_u(v128.and(bits, mask), i16x8.splat(1)), 4);
}

/**
 * block_q4_0 (18 B) row . Q8_0; ggml_vec_dot_q4_0_q8_0. The nibbles are dotted as they are
 * (0..15) and 8 * sum(a) is subtracted per block: `s` holds, per block, the i32x4
 * (8 * sum of the block's activation quants, 0, 0, 0) (prepareAct, one token).
 */
export function dotQ4_0(w: usize, qs: usize, d: usize, s: usize, nb: i32): f32 {
  const m = i16x8.splat(15);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 18;
    const v = v128.load(p, 2);
    const qA = v128.and(v, m);
    const qB = v128.and(i16x8.shr_u(v, 8), m);
    const qC = v128.and(i16x8.shr_u(v, 4), m);
    const qD = i16x8.shr_u(v, 12);
    const si = i32x4.sub(dot4(qA, qB, qC, qD, qs + (<usize>b << 6)), v128.load(s + (<usize>b << 4)));
    const sc = f16t(load<u16>(p)) * load<f32>(d + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(si), f32x4.splat(sc)));
  }
  return hsum(acc);
}

/**
 * dotQ4_0 of two rows at w and w + rb (any distance) with the same activation, whose loads they
 * share: y and y1 get exactly what dotQ4_0 gives for each row (same operations in the same order).
 */
export function dotQ4_0x2(w: usize, rb: usize, qs: usize, d: usize, s: usize, nb: i32, y: usize, y1: usize): void {
  const m = i16x8.splat(15);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let p = w;
  let a = qs;
  let o = s;
  let dp = d;
  const end = w + <usize>nb * 18;
  while (p < end) {
    const a0 = v128.load(a);
    const a1 = v128.load(a, 16);
    const a2 = v128.load(a, 32);
    const a3 = v128.load(a, 48);
    const off = v128.load(o);
    const dx = load<f32>(dp);
    const v = v128.load(p, 2);
    let s0 = i32x4.add(i32x4.dot_i16x8_s(v128.and(v, m), a0), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 8), m), a1));
    s0 = i32x4.add(s0, i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 4), m), a2), i32x4.dot_i16x8_s(i16x8.shr_u(v, 12), a3)));
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(s0, off)), f32x4.splat(f16t(load<u16>(p)) * dx)));
    const q = p + rb;
    const u = v128.load(q, 2);
    let s1 = i32x4.add(i32x4.dot_i16x8_s(v128.and(u, m), a0), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(u, 8), m), a1));
    s1 = i32x4.add(s1, i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(u, 4), m), a2), i32x4.dot_i16x8_s(i16x8.shr_u(u, 12), a3)));
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(s1, off)), f32x4.splat(f16t(load<u16>(q)) * dx)));
    p += 18;
    a += 64;
    o += 16;
    dp += 4;
  }
  store<f32>(y, hsum(acc0));
  store<f32>(y1, hsum(acc1));
}

/** block_q4_1 (20 B) row . Q8_1; ggml_vec_dot_q4_1_q8_1 (d*q + m: the m part uses Q8_1's s). */
export function dotQ4_1(w: usize, qs: usize, d: usize, s: usize, nb: i32): f32 {
  const m = i16x8.splat(15);
  let acc = f32x4.splat(0);
  let accm: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 20;
    const v = v128.load(p, 4);
    const qA = v128.and(v, m);
    const qB = v128.and(i16x8.shr_u(v, 8), m);
    const qC = v128.and(i16x8.shr_u(v, 4), m);
    const qD = i16x8.shr_u(v, 12);
    const si = dot4(qA, qB, qC, qD, qs + (<usize>b << 6));
    const bo = <usize>b << 2;
    const sc = f16t(load<u16>(p)) * load<f32>(d + bo);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(si), f32x4.splat(sc)));
    accm += f16t(load<u16>(p, 2)) * load<f32>(s + bo);
  }
  return hsum(acc) + accm;
}

/**
 * block_q5_0 (22 B) row . Q8_0; ggml_vec_dot_q5_0_q8_0. Works on bytes: byte k of the nibbles
 * holds values k (low) and k + 16 (high); the fifth bits qh are spread to 16 byte lanes each by a
 * byte shuffle of qh, a per-lane bit mask and a compare; the 5-bit values (0..31) are split into
 * EO i16 slots (even bytes, odd bytes) and 16 * sum(a) is subtracted per block as in dotQ4_0.
 */
export function dotQ5_0(w: usize, qs: usize, d: usize, s: usize, nb: i32): f32 {
  const m = i8x16.splat(15);
  const bit = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  const sixteen = i8x16.splat(16);
  const lowByte = i16x8.splat(0xff);
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 22;
    const h = i32x4.splat(load<u32>(p, 2));
    const v = v128.load(p, 6);
    const hLo = v128.and(i8x16.eq(v128.and(i8x16.shuffle(h, h, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), bit), bit), sixteen);
    const hHi = v128.and(i8x16.eq(v128.and(i8x16.shuffle(h, h, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), bit), bit), sixteen);
    const lo = v128.or(v128.and(v, m), hLo); // values 0..15, one per byte
    const hi = v128.or(v128.and(i16x8.shr_u(v, 4), m), hHi); // values 16..31
    const qA = v128.and(lo, lowByte);
    const qB = i16x8.shr_u(lo, 8);
    const qC = v128.and(hi, lowByte);
    const qD = i16x8.shr_u(hi, 8);
    const si = i32x4.sub(dot4(qA, qB, qC, qD, qs + (<usize>b << 6)), v128.load(s + (<usize>b << 4)));
    const sc = f16t(load<u16>(p)) * load<f32>(d + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(si), f32x4.splat(sc)));
  }
  return hsum(acc);
}

/**
 * dotQ5_0 of two rows at w and w + rb (any distance) with the same activation, whose loads they
 * share: y and y1 get exactly what dotQ5_0 gives for each row (same operations in the same order).
 */
export function dotQ5_0x2(w: usize, rb: usize, qs: usize, d: usize, s: usize, nb: i32, y: usize, y1: usize): void {
  const m = i8x16.splat(15);
  const bit = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  const sixteen = i8x16.splat(16);
  const lowByte = i16x8.splat(0xff);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let p = w;
  let a = qs;
  let o = s;
  let dp = d;
  const end = w + <usize>nb * 22;
  while (p < end) {
    const a0 = v128.load(a);
    const a1 = v128.load(a, 16);
    const a2 = v128.load(a, 32);
    const a3 = v128.load(a, 48);
    const off = v128.load(o);
    const dx = load<f32>(dp);
    let h = i32x4.splat(load<u32>(p, 2));
    let v = v128.load(p, 6);
    let hLo = v128.and(i8x16.eq(v128.and(i8x16.shuffle(h, h, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), bit), bit), sixteen);
    let hHi = v128.and(i8x16.eq(v128.and(i8x16.shuffle(h, h, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), bit), bit), sixteen);
    let lo = v128.or(v128.and(v, m), hLo);
    let hi = v128.or(v128.and(i16x8.shr_u(v, 4), m), hHi);
    let si = i32x4.add(i32x4.dot_i16x8_s(v128.and(lo, lowByte), a0), i32x4.dot_i16x8_s(i16x8.shr_u(lo, 8), a1));
    si = i32x4.add(si, i32x4.add(i32x4.dot_i16x8_s(v128.and(hi, lowByte), a2), i32x4.dot_i16x8_s(i16x8.shr_u(hi, 8), a3)));
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(si, off)), f32x4.splat(f16t(load<u16>(p)) * dx)));
    const q = p + rb;
    h = i32x4.splat(load<u32>(q, 2));
    v = v128.load(q, 6);
    hLo = v128.and(i8x16.eq(v128.and(i8x16.shuffle(h, h, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), bit), bit), sixteen);
    hHi = v128.and(i8x16.eq(v128.and(i8x16.shuffle(h, h, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), bit), bit), sixteen);
    lo = v128.or(v128.and(v, m), hLo);
    hi = v128.or(v128.and(i16x8.shr_u(v, 4), m), hHi);
    si = i32x4.add(i32x4.dot_i16x8_s(v128.and(lo, lowByte), a0), i32x4.dot_i16x8_s(i16x8.shr_u(lo, 8), a1));
    si = i32x4.add(si, i32x4.add(i32x4.dot_i16x8_s(v128.and(hi, lowByte), a2), i32x4.dot_i16x8_s(i16x8.shr_u(hi, 8), a3)));
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(si, off)), f32x4.splat(f16t(load<u16>(q)) * dx)));
    p += 22;
    a += 64;
    o += 16;
    dp += 4;
  }
  store<f32>(y, hsum(acc0));
  store<f32>(y1, hsum(acc1));
}

/** block_q5_1 (24 B) row . Q8_1; ggml_vec_dot_q5_1_q8_1. */
export function dotQ5_1(w: usize, qs: usize, d: usize, s: usize, nb: i32): f32 {
  const m = i16x8.splat(15);
  let acc = f32x4.splat(0);
  let accm: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 24;
    const qh = load<u32>(p, 4);
    const lo = i16x8.splat(<i16>qh);
    const hi = i16x8.splat(<i16>(qh >> 16));
    const v = v128.load(p, 8);
    const qA = v128.or(v128.and(v, m), plus16Where1(lo, EVEN_BITS));
    const qB = v128.or(v128.and(i16x8.shr_u(v, 8), m), plus16Where1(lo, ODD_BITS));
    const qC = v128.or(v128.and(i16x8.shr_u(v, 4), m), plus16Where1(hi, EVEN_BITS));
    const qD = v128.or(i16x8.shr_u(v, 12), plus16Where1(hi, ODD_BITS));
    const si = dot4(qA, qB, qC, qD, qs + (<usize>b << 6));
    const bo = <usize>b << 2;
    const sc = f16t(load<u16>(p)) * load<f32>(d + bo);
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(si), f32x4.splat(sc)));
    accm += f16t(load<u16>(p, 2)) * load<f32>(s + bo);
  }
  return hsum(acc) + accm;
}

/** block_q8_0 (34 B) row . Q8_0; ggml_vec_dot_q8_0_q8_0. */
export function dotQ8_0(w: usize, qs: usize, d: usize, s: usize, nb: i32): f32 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 34;
    const v0 = v128.load(p, 2);
    const v1 = v128.load(p, 18);
    // i8 pairs as i16 lanes: the even byte sign-extended from the low half, the odd from the high.
    const qA = i16x8.shr_s(i16x8.shl(v0, 8), 8);
    const qB = i16x8.shr_s(v0, 8);
    const qC = i16x8.shr_s(i16x8.shl(v1, 8), 8);
    const qD = i16x8.shr_s(v1, 8);
    const si = dot4(qA, qB, qC, qD, qs + (<usize>b << 6));
    const sc = f16t(load<u16>(p)) * load<f32>(d + (<usize>b << 2));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(si), f32x4.splat(sc)));
  }
  return hsum(acc);
}

/**
 * dotQ8_0 of two rows at w and w + rb (any distance) with the same activation, whose loads they
 * share: y and y1 get exactly what dotQ8_0 gives for each row (same operations in the same order).
 */
export function dotQ8_0x2(w: usize, rb: usize, qs: usize, d: usize, nb: i32, y: usize, y1: usize): void {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let p = w;
  let a = qs;
  let dp = d;
  const end = w + <usize>nb * 34;
  while (p < end) {
    const a0 = v128.load(a);
    const a1 = v128.load(a, 16);
    const a2 = v128.load(a, 32);
    const a3 = v128.load(a, 48);
    const dx = load<f32>(dp);
    let v0 = v128.load(p, 2);
    let v1 = v128.load(p, 18);
    let s = i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(v0, 8), 8), a0), i32x4.dot_i16x8_s(i16x8.shr_s(v0, 8), a1));
    s = i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(v1, 8), 8), a2), i32x4.dot_i16x8_s(i16x8.shr_s(v1, 8), a3)));
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.splat(f16t(load<u16>(p)) * dx)));
    const q = p + rb;
    v0 = v128.load(q, 2);
    v1 = v128.load(q, 18);
    s = i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(v0, 8), 8), a0), i32x4.dot_i16x8_s(i16x8.shr_s(v0, 8), a1));
    s = i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(v1, 8), 8), a2), i32x4.dot_i16x8_s(i16x8.shr_s(v1, 8), a3)));
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.splat(f16t(load<u16>(q)) * dx)));
    p += 34;
    a += 64;
    dp += 4;
  }
  store<f32>(y, hsum(acc0));
  store<f32>(y1, hsum(acc1));
}
