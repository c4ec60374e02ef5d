// Dot products of one row of a legacy block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; 32 values per
// block, layouts in src/quant/legacy.ts) with one activation row quantized to Q8_0 / Q8_1 and
// expanded to EO i16 (quantize.ts). They follow ggml_vec_dot_q{4_0,4_1,5_0,5_1,8_0}_q8_{0,1}
// (ggml-cpu/quants.c): the integer sum of each block is exact (i32 lanes, i32x4.dot_i16x8_s);
// the block scale products are applied per lane in float32 and the four lanes summed at the
// end, an order that differs from ggml's scalar loop (tolerance-tested).
//
// Decoding: 16 bytes of nibbles read as i16 lanes hold, in lane k, bytes 2k (low 8 bits) and
// 2k+1: `& 0xf` gives value 2k, `>> 8 & 0xf` value 2k+1, `>> 4 & 0xf` value 2k+16 and `>> 12`
// value 2k+17, exactly the four EO slots. Q5_0 / Q5_1: see dotQ5_0.
// Signature of every dot: (w row, qs (nb*32 i16 EO), d (nb f32), s (nb f32, Q8_1 only), nb) -> f32.
import { F16_TABLE, f16t, hsum } from "./common";

/** The 4 i32 lane sums of q (EO slots A, B, C, D) times the activation's 32 EO i16 at a. */
@inline
function dot4(qA: v128, qB: v128, qC: v128, qD: v128, a: usize): v128 {
  const s = i32x4.add(i32x4.dot_i16x8_s(qA, v128.load(a)), i32x4.dot_i16x8_s(qB, v128.load(a, 16)));
  return i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(qC, v128.load(a, 32)), i32x4.dot_i16x8_s(qD, v128.load(a, 48))));
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

// One token with Q5_0 / Q5_1: the 5-bit values (0..31) are built in the bytes, byte k of the
// 16 nibble bytes holding value k (low nibble) and value k + 16 (high nibble) and the fifth bits
// (qh, bit k = value k) spread to 16 bytes each by unpacking the 4 qh bytes ([qh0 x 8, qh1 x 8],
// [qh2 x 8, qh3 x 8]; shuffles V8 turns into single unpack instructions), a per-byte bit mask and
// a compare. The bytes are dotted as i16 lanes u = e + 256 o (e, o: the values of an even and an
// odd byte) with the activation's EO slots A, C and B' = B - 256 A, D' = D - 256 C (eoPairs,
// prepareAct), so that u A + (u >> 8) B' = e A + o B: each i32 lane sums the same 4 products as
// the EO decoding would, exactly (|B'| <= 127 + 256 * 127 fits i16: Q8_0 / Q8_1 quants are within
// +-127). Q5_0 then subtracts 16 * sum(a) per block as dotQ4_0 does; Q5_1 adds m * s.

/**
 * Rewrites, in place, n EO-expanded activation values (quantize.ts expandQ8_0 / expandQ8_1) for
 * the one-token Q5_0 / Q5_1 dots: per 32 values B -= A << 8 and D -= C << 8 (i16 lanes).
 */
export function eoPairs(qs: usize, n: i32): void {
  const end = qs + (<usize>n << 1);
  for (let p = qs; p < end; p += 32) v128.store(p, i16x8.sub(v128.load(p, 16), i16x8.shl(v128.load(p), 8)), 16);
}

/** The fifth bits of qh at q (4 bytes) unpacked: [qh0 x 8, qh1 x 8, qh2 x 8, qh3 x 8] as i16 lanes of equal bytes ([Q0, Q0, Q1, Q1, ...]). */
@inline
function qhWords(q: usize): v128 {
  const t = v128.load32_zero(q);
  const u = i8x16.shuffle(t, t, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  return i16x8.shuffle(u, u, 0, 8, 1, 9, 2, 10, 3, 11);
}

/**
 * The integer lane sums of one Q5_0 / Q5_1 block: nibbles v, fifth bits h (qhWords), activation
 * x0 (A), x1 (B'), x2 (C), x3 (D'); m: 15 in every byte, bits: [1, 2, .., 128] twice, sixteen: 16.
 */
@inline
function q5Block(v: v128, h: v128, m: v128, bits: v128, sixteen: v128, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const hl = i32x4.shuffle(h, h, 0, 4, 1, 5);
  const hh = i32x4.shuffle(h, h, 2, 6, 3, 7);
  const lo = v128.or(v128.and(v, m), v128.and(i8x16.eq(v128.and(hl, bits), bits), sixteen));
  const hi = v128.or(v128.and(i16x8.shr_u(v, 4), m), v128.and(i8x16.eq(v128.and(hh, bits), bits), sixteen));
  const s0 = i32x4.add(i32x4.dot_i16x8_s(lo, x0), i32x4.dot_i16x8_s(i16x8.shr_u(lo, 8), x1));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(hi, x2), i32x4.dot_i16x8_s(i16x8.shr_u(hi, 8), x3));
  return i32x4.add(s0, s1);
}

// NOTE: the masks of q5Block are built from nb (the same values whenever a block is read) so
// that V8 keeps them in registers rather than rebuilding each constant in every loop iteration
// (3 instructions each).

/**
 * block_q5_0 (22 B) row . Q8_0; ggml_vec_dot_q5_0_q8_0 (see above); the activation with eoPairs,
 * `s` per block the i32x4 (16 * sum of its quants, 0, 0, 0) (prepareAct, one token).
 */
export function dotQ5_0(w: usize, qs: usize, d: usize, s: usize, nb: i32): f32 {
  const m = i8x16.splat(<i8>select<i32>(15, 0, nb > 0));
  const bits = i64x2.splat(select<i64>(0x8040201008040201, 0, nb > 0));
  const sixteen = i8x16.splat(<i8>select<i32>(16, 0, nb > 0));
  const tab = F16_TABLE; // f16t's table, read once
  let acc = f32x4.splat(0);
  let p = w;
  let a = qs;
  let o = s;
  let dp = d;
  const end = w + <usize>nb * 22;
  while (p < end) {
    const si = q5Block(v128.load(p, 6), qhWords(p + 2), m, bits, sixteen, v128.load(a), v128.load(a, 16), v128.load(a, 32), v128.load(a, 48));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(si, v128.load(o))), f32x4.splat(load<f32>(tab + (<usize>load<u16>(p) << 2)) * load<f32>(dp))));
    p += 22;
    a += 64;
    o += 16;
    dp += 4;
  }
  return hsum(acc);
}

/**
 * dotQ5_0 of two rows at w and w + rb (any distance) with the same activation, whose loads they
 * share: y and y1 get exactly what dotQ5_0 gives for each row (same operations in the same order).
 */
export function dotQ5_0x2(w: usize, rb: usize, qs: usize, d: usize, s: usize, nb: i32, y: usize, y1: usize): void {
  const m = i8x16.splat(<i8>select<i32>(15, 0, nb > 0));
  const bits = i64x2.splat(select<i64>(0x8040201008040201, 0, nb > 0));
  const sixteen = i8x16.splat(<i8>select<i32>(16, 0, nb > 0));
  const tab = F16_TABLE; // f16t's table, read once
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let p = w;
  let a = qs;
  let o = s;
  let dp = d;
  const end = w + <usize>nb * 22;
  while (p < end) {
    const x0 = v128.load(a);
    const x1 = v128.load(a, 16);
    const x2 = v128.load(a, 32);
    const x3 = v128.load(a, 48);
    const off = v128.load(o);
    const dx = load<f32>(dp);
    const q = p + rb;
    const s0 = q5Block(v128.load(p, 6), qhWords(p + 2), m, bits, sixteen, x0, x1, x2, x3);
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(s0, off)), f32x4.splat(load<f32>(tab + (<usize>load<u16>(p) << 2)) * dx)));
    const s1 = q5Block(v128.load(q, 6), qhWords(q + 2), m, bits, sixteen, x0, x1, x2, x3);
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(s1, off)), f32x4.splat(load<f32>(tab + (<usize>load<u16>(q) << 2)) * dx)));
    p += 22;
    a += 64;
    o += 16;
    dp += 4;
  }
  store<f32>(y, hsum(acc0));
  store<f32>(y1, hsum(acc1));
}

/** block_q5_1 (24 B) row . Q8_1; ggml_vec_dot_q5_1_q8_1 (see above; the activation with eoPairs). */
export function dotQ5_1(w: usize, qs: usize, d: usize, s: usize, nb: i32): f32 {
  const m = i8x16.splat(<i8>select<i32>(15, 0, nb > 0));
  const bits = i64x2.splat(select<i64>(0x8040201008040201, 0, nb > 0));
  const sixteen = i8x16.splat(<i8>select<i32>(16, 0, nb > 0));
  const tab = F16_TABLE; // f16t's table, read once
  let acc = f32x4.splat(0);
  let accm: f32 = 0;
  let p = w;
  let a = qs;
  let dp = d;
  let sp = s;
  const end = w + <usize>nb * 24;
  while (p < end) {
    const si = q5Block(v128.load(p, 8), qhWords(p + 4), m, bits, sixteen, v128.load(a), v128.load(a, 16), v128.load(a, 32), v128.load(a, 48));
    acc = f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(si), f32x4.splat(load<f32>(tab + (<usize>load<u16>(p) << 2)) * load<f32>(dp))));
    accm += load<f32>(tab + (<usize>load<u16>(p, 2) << 2)) * load<f32>(sp);
    p += 24;
    a += 64;
    dp += 4;
    sp += 4;
  }
  return hsum(acc) + accm;
}

/**
 * dotQ5_1 of two rows at w and w + rb (any distance) with the same activation, whose loads they
 * share: y and y1 get exactly what dotQ5_1 gives for each row (same operations in the same order).
 * scr: 16 bytes.
 */
export function dotQ5_1x2(w: usize, rb: usize, qs: usize, d: usize, s: usize, nb: i32, y: usize, y1: usize, scr: usize): void {
  const m = i8x16.splat(<i8>select<i32>(15, 0, nb > 0));
  const bits = i64x2.splat(select<i64>(0x8040201008040201, 0, nb > 0));
  const sixteen = i8x16.splat(<i8>select<i32>(16, 0, nb > 0));
  const tab = F16_TABLE; // f16t's table, read once
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let accm0: f32 = 0;
  let accm1: f32 = 0;
  let p = w;
  let a = qs;
  let dp = d;
  let sp = s;
  const end = w + <usize>nb * 24;
  while (p < end) {
    const x0 = v128.load(a);
    const x1 = v128.load(a, 16);
    const x2 = v128.load(a, 32);
    const x3 = v128.load(a, 48);
    const dx = load<f32>(dp);
    const sx = load<f32>(sp);
    const q = p + rb;
    const s0 = q5Block(v128.load(p, 8), qhWords(p + 4), m, bits, sixteen, x0, x1, x2, x3);
    acc0 = f32x4.add(acc0, f32x4.mul(f32x4.convert_i32x4_s(s0), f32x4.splat(load<f32>(tab + (<usize>load<u16>(p) << 2)) * dx)));
    accm0 += load<f32>(tab + (<usize>load<u16>(p, 2) << 2)) * sx;
    // NOTE: a store between the rows keeps V8 from hoisting row 1's loads above row 0's work
    // (they spilled).
    v128.store(scr, acc0);
    const s1 = q5Block(v128.load(q, 8), qhWords(q + 4), m, bits, sixteen, x0, x1, x2, x3);
    acc1 = f32x4.add(acc1, f32x4.mul(f32x4.convert_i32x4_s(s1), f32x4.splat(load<f32>(tab + (<usize>load<u16>(q) << 2)) * dx)));
    accm1 += load<f32>(tab + (<usize>load<u16>(q, 2) << 2)) * sx;
    p += 24;
    a += 64;
    dp += 4;
    sp += 4;
  }
  store<f32>(y, hsum(acc0) + accm0);
  store<f32>(y1, hsum(acc1) + accm1);
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
