// Matrix products with several tokens (T > 1: prompt eval, batched decode) for the float types
// (F32, F16, BF16) and the legacy block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), as register tiles
// over packed operands. The activation is packed once per call in groups of 4 tokens (the last
// group padded with zeros) and each group of weight rows is converted once into a per-thread
// scratch, so the inner loops read both through one pointer each with constant offsets.
//
// Why: V8 compiles every `base + index * stride` address to a separate integer op and keeps at
// most 15 SIMD values in registers, so kernels that walk several rows by stride (or hold more than
// ~14 vectors) are bound by instruction count and spills, not by the SIMD units: the 1-row x
// 4-token kernels this replaces ran at ~4 multiply-adds per cycle where the SIMD units allow 16.
// Small loop bodies, unrolled twice at most: V8 hoists every load of an unrolled body to its top.
//
// Float: tile of 2 weight rows x 4 tokens, 8 f32x4 accumulators (one per row and token, lanes over
// k mod 4), summed across lanes at the end ((l0 + l1) + (l2 + l3)); a row's result depends only on
// its own values, not on which rows or tokens share its tile.
// Legacy: tile of 4 weight rows x 4 tokens with the tokens in the lanes: per pair of values j the
// weight pair (w_2j, w_2j+1) of a row, splat to the 4 lanes, is dotted (i32x4.dot_i16x8_s) with
// the 4 tokens' activation pairs, so lane t holds token t's exact integer block sum with no
// reduction across lanes. Per block and row: sum += float(isum) * (d_w * d_x), as ggml's vec_dot
// (Q4_1 / Q5_1 also + m_w * s_x), in block order.
//
// K-quants: the same tile over 256-value blocks whose quants carry their sub-block scales
// (matmul-decoded.ts decodeRow, EO order: the pairs are EO lanes 2j, 2j + 1 on both sides); per
// block and row: sum += float(isum) * (d_w * d_x), and for Q2_K / Q4_K / Q5_K sum -= float(sum of
// min * bsum) * (dmin_w * d_x), as ggml's vec_dot.
//
// Layouts (bytes): packed float activation (T4/4 groups, C4/4, 4 tokens, 4 f32), C4 = C rounded up
// to 4; packed float rows (C4/4, 2 rows, 4 f32). Packed legacy activation per group of 4 tokens:
// xq (nb, 16 pairs, 4 tokens) i32 = two i16 (q_2j, q_2j+1); xd (nb, 4) f32 d; xs (nb, 4) f32 s
// (Q8_1). Decoded legacy rows (4 rows): wq (nb, 4 rows, 32 i16 in natural order), wd (nb, 4) f32
// d, wm (nb, 4) f32 m.
// Not here: the T = 1 dots (matmul-float.ts, matmul-legacy.ts) and the K-quants (matmul-decoded.ts).
import { f16t } from "./common";
import { decodedBytes, decodeRow, fdOff, mdOff, mnOff } from "./matmul-decoded";
import { T_BF16, T_F16, T_F16S, T_F32, T_Q4_0, T_Q4_1, T_Q5_0, T_Q5_1, T_Q8_0 } from "./types";

// ---------------------------------------------------------------------------------- float

/** C rounded up to a multiple of 4. */
@inline
export function c4(C: i32): i32 {
  return (C + 3) & ~3;
}

/**
 * x (T,C) f32 -> packed groups of 4 tokens (T4/4, C4/4, 4, 4 f32) at out; tokens past T and values
 * past C are zero. Reads x only inside its T*C floats.
 */
export function packTokensF32(x: usize, T: i32, C: i32, out: usize): void {
  const xs = <usize>C << 2;
  const C4 = c4(C);
  const full = C & ~3;
  const groupBytes = <usize>C4 << 4;
  for (let t0 = 0; t0 < T; t0 += 4) {
    const g = out + <usize>(t0 >> 2) * groupBytes;
    for (let i = 0; i < 4; i++) {
      const t = t0 + i;
      const dst = g + (<usize>i << 4);
      if (t >= T) {
        for (let k = 0; k < C4; k += 4) v128.store(dst + (<usize>k << 4), i32x4.splat(0));
        continue;
      }
      const src = x + <usize>t * xs;
      let k = 0;
      for (; k < full; k += 4) v128.store(dst + (<usize>k << 4), v128.load(src + (<usize>k << 2)));
      if (k < C4) {
        let v = f32x4.splat(0);
        v = f32x4.replace_lane(v, 0, load<f32>(src + (<usize>k << 2)));
        if (k + 1 < C) v = f32x4.replace_lane(v, 1, load<f32>(src + (<usize>(k + 1) << 2)));
        if (k + 2 < C) v = f32x4.replace_lane(v, 2, load<f32>(src + (<usize>(k + 2) << 2)));
        v128.store(dst + (<usize>k << 4), v);
      }
    }
  }
}

/** Halves 0..3 of v, finite, as float32 times 2^-112 (dotF16S's reading). */
@inline
function f16sLo(v: v128): v128 {
  return v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(v), 13), i32x4.splat(0x8fffe000));
}

/** Halves 0..3 of v, exactly (normals, subnormals, inf, NaN). */
@inline
function f16Lo(v: v128): v128 {
  const h = i32x4.extend_low_i16x8_u(v);
  const e = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  const f = f32x4.mul(e, f32x4.splat(reinterpret<f32>(0x77800000)));
  const special = i32x4.gt_s(e, i32x4.splat(0x0f7fffff));
  const m = v128.bitselect(v128.or(e, i32x4.splat(0x7f800000)), f, special);
  return v128.or(m, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

/** 4 values of a row of `type` starting at value k, as float32 (the f16 / bf16 value, F16S's scaled). */
@inline
function load4(type: i32, row: usize, k: i32): v128 {
  if (type == T_F32) return v128.load(row + (<usize>k << 2));
  const v = v128.load64_zero(row + (<usize>k << 1));
  if (type == T_F16S) return f16sLo(v);
  if (type == T_F16) return f16Lo(v);
  return i32x4.shl(i32x4.extend_low_i16x8_u(v), 16); // BF16
}

/** Value k of a row of `type` as float32 (scalar twin of load4 for the row's last C % 4 values). */
@inline
function load1(type: i32, row: usize, k: i32): f32 {
  if (type == T_F32) return load<f32>(row + (<usize>k << 2));
  return f32x4.extract_lane(load4Scalar(type, <u32>load<u16>(row + (<usize>k << 1))), 0);
}

@inline
function load4Scalar(type: i32, h: u32): v128 {
  const v = i16x8.replace_lane(i16x8.splat(0), 0, <i16>h);
  if (type == T_F16S) return f16sLo(v);
  if (type == T_F16) return f16Lo(v);
  return i32x4.shl(i32x4.extend_low_i16x8_u(v), 16);
}

/**
 * nr (1 or 2) rows of C values of a float `type` at w, w + rb -> packed (C4/4, 2 rows, 4 f32) at
 * out, as float32 (F16S: times 2^-112); a missing second row and values past C are zero.
 */
export function packRowsF32(type: i32, w: usize, rb: usize, nr: i32, C: i32, out: usize): void {
  const full = C & ~3;
  const C4 = c4(C);
  for (let r = 0; r < 2; r++) {
    const dst = out + (<usize>r << 4);
    if (r >= nr) {
      for (let k = 0; k < C4; k += 4) v128.store(dst + (<usize>k << 3), i32x4.splat(0));
      continue;
    }
    const row = w + <usize>r * rb;
    let k = 0;
    for (; k < full; k += 4) v128.store(dst + (<usize>k << 3), load4(type, row, k));
    if (k < C4) {
      let v = f32x4.splat(0);
      v = f32x4.replace_lane(v, 0, load1(type, row, k));
      if (k + 1 < C) v = f32x4.replace_lane(v, 1, load1(type, row, k + 1));
      if (k + 2 < C) v = f32x4.replace_lane(v, 2, load1(type, row, k + 2));
      v128.store(dst + (<usize>k << 3), v);
    }
  }
}

/** Sum of the 4 float lanes ((l0 + l1) + (l2 + l3)). */
@inline
function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * Packed rows wp (2 rows) . packed tokens xp (4 tokens) over C4 values: row r, token t to
 * y + 4 r + t ys for r < nr, t < nt.
 */
export function tileF32(wp: usize, xp: usize, C4: i32, y: usize, ys: usize, nr: i32, nt: i32): void {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0);
  let b1 = f32x4.splat(0);
  let b2 = f32x4.splat(0);
  let b3 = f32x4.splat(0);
  const end = wp + (<usize>C4 << 3);
  let p = wp;
  let q = xp;
  while (p < end) {
    const w0 = v128.load(p);
    const w1 = v128.load(p, 16);
    let x = v128.load(q);
    a0 = f32x4.add(a0, f32x4.mul(w0, x));
    b0 = f32x4.add(b0, f32x4.mul(w1, x));
    x = v128.load(q, 16);
    a1 = f32x4.add(a1, f32x4.mul(w0, x));
    b1 = f32x4.add(b1, f32x4.mul(w1, x));
    x = v128.load(q, 32);
    a2 = f32x4.add(a2, f32x4.mul(w0, x));
    b2 = f32x4.add(b2, f32x4.mul(w1, x));
    x = v128.load(q, 48);
    a3 = f32x4.add(a3, f32x4.mul(w0, x));
    b3 = f32x4.add(b3, f32x4.mul(w1, x));
    p += 32;
    q += 64;
  }
  store<f32>(y, hsum(a0));
  if (nr > 1) store<f32>(y, hsum(b0), 4);
  if (nt > 1) {
    store<f32>(y + ys, hsum(a1));
    if (nr > 1) store<f32>(y + ys, hsum(b1), 4);
  }
  if (nt > 2) {
    store<f32>(y + 2 * ys, hsum(a2));
    if (nr > 1) store<f32>(y + 2 * ys, hsum(b2), 4);
  }
  if (nt > 3) {
    store<f32>(y + 3 * ys, hsum(a3));
    if (nr > 1) store<f32>(y + 3 * ys, hsum(b3), 4);
  }
}

/**
 * Rows [r0, r1) of y (T,OC) = x . w^T for a float `type` with T > 1 (row t of y ys bytes after row
 * t - 1): xp the packed activation (packTokensF32, rounded for F16 / BF16), scratch 8 C4 bytes for
 * 2 packed rows.
 */
export function matmulFloatTiles(
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
  const C4 = c4(C);
  const groupBytes = <usize>C4 << 4;
  for (let r = r0; r < r1; r += 2) {
    const nr = min(2, r1 - r);
    packRowsF32(type, w + <usize>r * rb, rb, nr, C, scratch);
    for (let t = 0; t < T; t += 4) {
      tileF32(scratch, xp + <usize>(t >> 2) * groupBytes, C4, y + <usize>t * ys + (<usize>r << 2), ys, nr, min(4, T - t));
    }
  }
}

/** True for the types matmulFloatTiles takes. */
@inline
export function isFloatTileType(type: i32): bool {
  return type == T_F32 || type == T_F16 || type == T_F16S || type == T_BF16;
}

// --------------------------------------------------------------------------------- legacy

/** True for the legacy block types with a decoded tile path. */
@inline
export function isLegacyTileType(type: i32): bool {
  return type == T_Q4_0 || type == T_Q4_1 || type == T_Q5_0 || type == T_Q5_1 || type == T_Q8_0;
}

/** Bytes of the packed legacy activation of one group of 4 tokens: xq, then xd, then xs. */
@inline
export function legacyGroupBytes(C: i32): usize {
  return (<usize>C << 3) + (<usize>(C >> 5) << 5);
}

/**
 * 4 quantized rows (block_q8_0 or block_q8_1 at q + i rowBytes, i < n; the rest zero) -> one
 * packed group at g: xq (nb, 16, 4) i32 pairs, xd (nb, 4) f32, xs (nb, 4) f32 (Q8_1 only).
 */
export function packQ8Group(q: usize, rowBytes: usize, n: i32, C: i32, q81: bool, g: usize): void {
  const nb = C >> 5;
  const bs: usize = q81 ? 36 : 34;
  const qo: usize = q81 ? 4 : 2;
  const xd = g + (<usize>C << 3);
  const xs = xd + (<usize>nb << 4);
  const z = i32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    // Per token the 16 pairs as 4 vectors of 4 pairs, then a 4 x 4 transpose of each.
    let t0a = z, t0b = z, t0c = z, t0d = z;
    let t1a = z, t1b = z, t1c = z, t1d = z;
    let t2a = z, t2b = z, t2c = z, t2d = z;
    let t3a = z, t3b = z, t3c = z, t3d = z;
    let dv = f32x4.splat(0);
    let sv = f32x4.splat(0);
    const o = q + <usize>b * bs;
    if (n > 0) {
      const v0 = v128.load(o + qo);
      const v1 = v128.load(o + qo, 16);
      t0a = i16x8.extend_low_i8x16_s(v0);
      t0b = i16x8.extend_high_i8x16_s(v0);
      t0c = i16x8.extend_low_i8x16_s(v1);
      t0d = i16x8.extend_high_i8x16_s(v1);
      dv = f32x4.replace_lane(dv, 0, f16t(load<u16>(o)));
      if (q81) sv = f32x4.replace_lane(sv, 0, f16t(load<u16>(o, 2)));
    }
    if (n > 1) {
      const p = o + rowBytes;
      const v0 = v128.load(p + qo);
      const v1 = v128.load(p + qo, 16);
      t1a = i16x8.extend_low_i8x16_s(v0);
      t1b = i16x8.extend_high_i8x16_s(v0);
      t1c = i16x8.extend_low_i8x16_s(v1);
      t1d = i16x8.extend_high_i8x16_s(v1);
      dv = f32x4.replace_lane(dv, 1, f16t(load<u16>(p)));
      if (q81) sv = f32x4.replace_lane(sv, 1, f16t(load<u16>(p, 2)));
    }
    if (n > 2) {
      const p = o + 2 * rowBytes;
      const v0 = v128.load(p + qo);
      const v1 = v128.load(p + qo, 16);
      t2a = i16x8.extend_low_i8x16_s(v0);
      t2b = i16x8.extend_high_i8x16_s(v0);
      t2c = i16x8.extend_low_i8x16_s(v1);
      t2d = i16x8.extend_high_i8x16_s(v1);
      dv = f32x4.replace_lane(dv, 2, f16t(load<u16>(p)));
      if (q81) sv = f32x4.replace_lane(sv, 2, f16t(load<u16>(p, 2)));
    }
    if (n > 3) {
      const p = o + 3 * rowBytes;
      const v0 = v128.load(p + qo);
      const v1 = v128.load(p + qo, 16);
      t3a = i16x8.extend_low_i8x16_s(v0);
      t3b = i16x8.extend_high_i8x16_s(v0);
      t3c = i16x8.extend_low_i8x16_s(v1);
      t3d = i16x8.extend_high_i8x16_s(v1);
      dv = f32x4.replace_lane(dv, 3, f16t(load<u16>(p)));
      if (q81) sv = f32x4.replace_lane(sv, 3, f16t(load<u16>(p, 2)));
    }
    const out = g + (<usize>b << 8);
    transposeStore(t0a, t1a, t2a, t3a, out);
    transposeStore(t0b, t1b, t2b, t3b, out + 64);
    transposeStore(t0c, t1c, t2c, t3c, out + 128);
    transposeStore(t0d, t1d, t2d, t3d, out + 192);
    v128.store(xd + (<usize>b << 4), dv);
    if (q81) v128.store(xs + (<usize>b << 4), sv);
  }
}

/** The 4 x 4 i32 matrix with rows a, b, c, d, transposed, to out (4 vectors). */
@inline
function transposeStore(a: v128, b: v128, c: v128, d: v128, out: usize): void {
  const ab0 = i32x4.shuffle(a, b, 0, 4, 1, 5);
  const ab1 = i32x4.shuffle(a, b, 2, 6, 3, 7);
  const cd0 = i32x4.shuffle(c, d, 0, 4, 1, 5);
  const cd1 = i32x4.shuffle(c, d, 2, 6, 3, 7);
  v128.store(out, i32x4.shuffle(ab0, cd0, 0, 1, 4, 5));
  v128.store(out, i32x4.shuffle(ab0, cd0, 2, 3, 6, 7), 16);
  v128.store(out, i32x4.shuffle(ab1, cd1, 0, 1, 4, 5), 32);
  v128.store(out, i32x4.shuffle(ab1, cd1, 2, 3, 6, 7), 48);
}

/**
 * nr (<= 4) rows of a legacy `type` at w + i rb -> decoded at dec: wq (nb, 4, 32 i16 natural),
 * wd (nb, 4) f32, wm (nb, 4) f32 (Q4_1 / Q5_1); rows past nr are zero.
 */
export function decodeLegacy4(type: i32, w: usize, rb: usize, nr: i32, C: i32, dec: usize): void {
  const nb = C >> 5;
  const wd = dec + (<usize>C << 3);
  const wm = wd + (<usize>nb << 4);
  const m = i8x16.splat(15);
  const bit = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  const sixteen = i8x16.splat(16);
  const z = i32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    for (let r = 0; r < 4; r++) {
      const q = dec + (<usize>b << 8) + (<usize>r << 6);
      const fo = (<usize>b << 4) + (<usize>r << 2);
      if (r >= nr) {
        v128.store(q, z);
        v128.store(q, z, 16);
        v128.store(q, z, 32);
        v128.store(q, z, 48);
        store<f32>(wd + fo, 0);
        store<f32>(wm + fo, 0);
        continue;
      }
      const row = w + <usize>r * rb;
      let lo: v128; // values 0..15, one per byte
      let hi: v128; // values 16..31
      if (type == T_Q8_0) {
        const p = row + <usize>b * 34;
        lo = v128.load(p, 2);
        hi = v128.load(p, 18);
        store<f32>(wd + fo, f16t(load<u16>(p)));
      } else if (type == T_Q4_0 || type == T_Q4_1) {
        const one = type == T_Q4_1;
        const p = row + <usize>b * (one ? 20 : 18);
        const v = v128.load(p + (one ? 4 : 2));
        lo = v128.and(v, m);
        hi = i8x16.shr_u(v, 4);
        if (!one) {
          lo = i8x16.sub(lo, i8x16.splat(8));
          hi = i8x16.sub(hi, i8x16.splat(8));
        }
        store<f32>(wd + fo, f16t(load<u16>(p)));
        if (one) store<f32>(wm + fo, f16t(load<u16>(p, 2)));
      } else {
        // Q5_0 / Q5_1: the fifth bits (qh, bit k = value k) spread over byte lanes.
        const one = type == T_Q5_1;
        const p = row + <usize>b * (one ? 24 : 22);
        const h = i32x4.splat(load<u32>(p + (one ? 4 : 2)));
        const v = v128.load(p + (one ? 8 : 6));
        const hLo = v128.and(i8x16.eq(v128.and(i8x16.shuffle(h, h, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), bit), bit), sixteen);
        const hHi = v128.and(i8x16.eq(v128.and(i8x16.shuffle(h, h, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), bit), bit), sixteen);
        lo = v128.or(v128.and(v, m), hLo);
        hi = v128.or(i8x16.shr_u(v, 4), hHi);
        if (!one) {
          lo = i8x16.sub(lo, sixteen);
          hi = i8x16.sub(hi, sixteen);
        }
        store<f32>(wd + fo, f16t(load<u16>(p)));
        if (one) store<f32>(wm + fo, f16t(load<u16>(p, 2)));
      }
      if (type == T_Q4_1 || type == T_Q5_1) {
        // 0..31: zero-extend (as signed they would be the same: all below 128).
        v128.store(q, i16x8.extend_low_i8x16_u(lo));
        v128.store(q, i16x8.extend_high_i8x16_u(lo), 16);
        v128.store(q, i16x8.extend_low_i8x16_u(hi), 32);
        v128.store(q, i16x8.extend_high_i8x16_u(hi), 48);
      } else {
        v128.store(q, i16x8.extend_low_i8x16_s(lo));
        v128.store(q, i16x8.extend_high_i8x16_s(lo), 16);
        v128.store(q, i16x8.extend_low_i8x16_s(hi), 32);
        v128.store(q, i16x8.extend_high_i8x16_s(hi), 48);
      }
    }
  }
}

/** Bytes of the decoded scratch of 4 legacy rows of C values. */
@inline
export function legacyDecodedBytes(C: i32): usize {
  return (<usize>C << 3) + (<usize>(C >> 5) << 5);
}

/**
 * Decoded rows dec (4 rows) . one packed token group g (4 tokens) over nb blocks; row r, token t
 * to y + 4 r + t ys for r < nr, t < nt. hasMin: Q4_1 / Q5_1.
 */
export function tileLegacy(dec: usize, g: usize, C: i32, hasMin: bool, y: usize, ys: usize, nr: i32, nt: i32): void {
  const nb = C >> 5;
  const wd = dec + (<usize>C << 3);
  const wm = wd + (<usize>nb << 4);
  const xd = g + (<usize>C << 3);
  const xs = xd + (<usize>nb << 4);
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let wp = dec;
  let xp = g;
  for (let b = 0; b < nb; b++) {
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    const wEnd = wp + 64;
    while (wp < wEnd) {
      let x = v128.load(xp);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load32_splat(wp), x));
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load32_splat(wp, 64), x));
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load32_splat(wp, 128), x));
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load32_splat(wp, 192), x));
      x = v128.load(xp, 16);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load32_splat(wp, 4), x));
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load32_splat(wp, 68), x));
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load32_splat(wp, 132), x));
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load32_splat(wp, 196), x));
      wp += 8;
      xp += 32;
    }
    wp += 192;
    const o = <usize>b << 4;
    const dv = v128.load(xd + o);
    f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load32_splat(wd + o), dv)));
    f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load32_splat(wd + o, 4), dv)));
    f2 = f32x4.add(f2, f32x4.mul(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load32_splat(wd + o, 8), dv)));
    f3 = f32x4.add(f3, f32x4.mul(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load32_splat(wd + o, 12), dv)));
    if (hasMin) {
      const sv = v128.load(xs + o);
      f0 = f32x4.add(f0, f32x4.mul(v128.load32_splat(wm + o), sv));
      f1 = f32x4.add(f1, f32x4.mul(v128.load32_splat(wm + o, 4), sv));
      f2 = f32x4.add(f2, f32x4.mul(v128.load32_splat(wm + o, 8), sv));
      f3 = f32x4.add(f3, f32x4.mul(v128.load32_splat(wm + o, 12), sv));
    }
  }
  // f_r holds row r for tokens 0..3: transpose to one vector of 4 rows per token.
  const ab0 = i32x4.shuffle(f0, f1, 0, 4, 1, 5);
  const ab1 = i32x4.shuffle(f0, f1, 2, 6, 3, 7);
  const cd0 = i32x4.shuffle(f2, f3, 0, 4, 1, 5);
  const cd1 = i32x4.shuffle(f2, f3, 2, 6, 3, 7);
  storeRows(i32x4.shuffle(ab0, cd0, 0, 1, 4, 5), y, nr);
  if (nt > 1) storeRows(i32x4.shuffle(ab0, cd0, 2, 3, 6, 7), y + ys, nr);
  if (nt > 2) storeRows(i32x4.shuffle(ab1, cd1, 0, 1, 4, 5), y + 2 * ys, nr);
  if (nt > 3) storeRows(i32x4.shuffle(ab1, cd1, 2, 3, 6, 7), y + 3 * ys, nr);
}

/** The first nr lanes of v to y. */
@inline
function storeRows(v: v128, y: usize, nr: i32): void {
  if (nr >= 4) {
    v128.store(y, v);
    return;
  }
  store<f32>(y, f32x4.extract_lane(v, 0));
  if (nr > 1) store<f32>(y, f32x4.extract_lane(v, 1), 4);
  if (nr > 2) store<f32>(y, f32x4.extract_lane(v, 2), 8);
}

/**
 * Rows [r0, r1) of y (T,OC) = x . w^T for a legacy `type` with T > 1 (row t of y ys bytes after
 * row t - 1): xp the packed activation groups (legacyGroupBytes(C) each), scratch
 * legacyDecodedBytes(C) bytes.
 */
export function matmulLegacyTiles(
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
  const gb = legacyGroupBytes(C);
  const hasMin = type == T_Q4_1 || type == T_Q5_1;
  for (let r = r0; r < r1; r += 4) {
    const nr = min(4, r1 - r);
    decodeLegacy4(type, w + <usize>r * rb, rb, nr, C, scratch);
    for (let t = 0; t < T; t += 4) {
      tileLegacy(scratch, xp + <usize>(t >> 2) * gb, C, hasMin, y + <usize>t * ys + (<usize>r << 2), ys, nr, min(4, T - t));
    }
  }
}

// ----------------------------------------------------------------------------------- K-quants

/** Bytes of the packed K-quant activation of one group of 4 tokens: xq, then xd, then xb. */
@inline
export function kGroupBytes(C: i32): usize {
  const nb = <usize>(C >> 8);
  return (<usize>C << 3) + (nb << 4) + (nb << 7);
}

/**
 * Tokens t0..t0+n-1 (n <= 4; the rest zero) of the EO-expanded Q8_K activation (qs (T,C) i16, d
 * (T, C/256) f32, bsums (T, C/16) i32) -> one packed group at g: xq (nb, 128 pairs, 4 tokens) i32,
 * xd (nb, 4) f32, xb (nb, 8 pairs of bsums as i16, 4 tokens) i32.
 */
export function packK8Group(qs: usize, d: usize, bsums: usize, t0: i32, n: i32, C: i32, g: usize): void {
  const nb = C >> 8;
  const xd = g + (<usize>C << 3);
  const xb = xd + (<usize>nb << 4);
  const qStride = <usize>C << 1;
  const z = i32x4.splat(0);
  const q0 = qs + <usize>t0 * qStride;
  const b0 = bsums + ((<usize>t0 * <usize>(C >> 4)) << 2);
  const bStride = <usize>(C >> 4) << 2;
  for (let b = 0; b < nb; b++) {
    const qb = <usize>b << 9;
    for (let v = 0; v < 32; v++) {
      const o = qb + (<usize>v << 4);
      transposeStore(
        v128.load(q0 + o),
        n > 1 ? v128.load(q0 + qStride + o) : z,
        n > 2 ? v128.load(q0 + 2 * qStride + o) : z,
        n > 3 ? v128.load(q0 + 3 * qStride + o) : z,
        g + (<usize>b << 11) + (<usize>v << 6),
      );
    }
    let dv = f32x4.splat(0);
    dv = f32x4.replace_lane(dv, 0, load<f32>(d + ((<usize>(t0 * nb + b)) << 2)));
    if (n > 1) dv = f32x4.replace_lane(dv, 1, load<f32>(d + ((<usize>((t0 + 1) * nb + b)) << 2)));
    if (n > 2) dv = f32x4.replace_lane(dv, 2, load<f32>(d + ((<usize>((t0 + 2) * nb + b)) << 2)));
    if (n > 3) dv = f32x4.replace_lane(dv, 3, load<f32>(d + ((<usize>((t0 + 3) * nb + b)) << 2)));
    v128.store(xd + (<usize>b << 4), dv);
    // The 16 bsums (each within +-16 * 127) as 8 i16 pairs per token.
    for (let k = 0; k < 2; k++) {
      const o = (<usize>b << 6) + (<usize>k << 5);
      transposeStore(
        i16x8.narrow_i32x4_s(v128.load(b0 + o), v128.load(b0 + o, 16)),
        n > 1 ? i16x8.narrow_i32x4_s(v128.load(b0 + bStride + o), v128.load(b0 + bStride + o, 16)) : z,
        n > 2 ? i16x8.narrow_i32x4_s(v128.load(b0 + 2 * bStride + o), v128.load(b0 + 2 * bStride + o, 16)) : z,
        n > 3 ? i16x8.narrow_i32x4_s(v128.load(b0 + 3 * bStride + o), v128.load(b0 + 3 * bStride + o, 16)) : z,
        xb + (<usize>b << 7) + (<usize>k << 6),
      );
    }
  }
}

/**
 * Bytes of the decoded scratch of 4 K-quant rows: quants interleaved (nb, 4 rows, 512 B), then 4
 * decodeRow layouts, then the mins as i16 pairs (nb, 4 rows, 8 pairs).
 */
@inline
export function kDecodedBytes(C: i32): usize {
  return (<usize>C << 3) + 4 * <usize>decodedBytes(C) + (<usize>(C >> 8) << 7);
}

/** nr (<= 4) K-quant rows at w + i rb -> dec (kDecodedBytes); rows past nr are zero. */
export function decodeK4(type: i32, w: usize, rb: usize, nr: i32, C: i32, dec: usize): void {
  const nb = C >> 8;
  const db = <usize>decodedBytes(C);
  for (let r = 0; r < 4; r++) {
    const rowDec = dec + (<usize>C << 3) + <usize>r * db;
    if (r < nr) decodeRow(type, w + <usize>r * rb, C, rowDec);
    else memory.fill(rowDec, 0, db);
    const mp = dec + (<usize>C << 3) + 4 * db + (<usize>r << 5);
    for (let b = 0; b < nb; b++) {
      memory.copy(dec + (<usize>b << 11) + (<usize>r << 9), rowDec + (<usize>b << 9), 512);
      // Mins (0..63) as 8 i16 pairs: one dot_i16x8 with the bsum pairs gives sum(min * bsum).
      const mn = rowDec + mnOff(C) + (<usize>b << 6);
      v128.store(mp + (<usize>b << 7), i16x8.narrow_i32x4_s(v128.load(mn), v128.load(mn, 16)));
      v128.store(mp + (<usize>b << 7), i16x8.narrow_i32x4_s(v128.load(mn, 32), v128.load(mn, 48)), 16);
    }
  }
}

/**
 * Decoded K-quant rows dec (4 rows) . one packed token group g over nb blocks; row r, token t to
 * y + 4 r + t ys for r < nr, t < nt. hasMin: Q2_K / Q4_K / Q5_K.
 */
export function tileK(dec: usize, g: usize, C: i32, hasMin: bool, y: usize, ys: usize, nr: i32, nt: i32): void {
  const nb = C >> 8;
  const db = <usize>decodedBytes(C);
  const m0 = dec + (<usize>C << 3);
  const m1 = m0 + db;
  const m2 = m1 + db;
  const m3 = m2 + db;
  const fo = fdOff(C);
  const mo = mdOff(C);
  const mins = m3 + db;
  const xd = g + (<usize>C << 3);
  const xb = xd + (<usize>nb << 4);
  let f0 = f32x4.splat(0);
  let f1 = f32x4.splat(0);
  let f2 = f32x4.splat(0);
  let f3 = f32x4.splat(0);
  let wp = dec;
  let xp = g;
  for (let b = 0; b < nb; b++) {
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    const wEnd = wp + 512;
    while (wp < wEnd) {
      let x = v128.load(xp);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load32_splat(wp), x));
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load32_splat(wp, 512), x));
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load32_splat(wp, 1024), x));
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load32_splat(wp, 1536), x));
      x = v128.load(xp, 16);
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load32_splat(wp, 4), x));
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load32_splat(wp, 516), x));
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load32_splat(wp, 1028), x));
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load32_splat(wp, 1540), x));
      wp += 8;
      xp += 32;
    }
    wp += 1536;
    const bo = <usize>b << 2;
    const dv = v128.load(xd + (<usize>b << 4));
    f0 = f32x4.add(f0, f32x4.mul(f32x4.convert_i32x4_s(a0), f32x4.mul(v128.load32_splat(m0 + fo + bo), dv)));
    f1 = f32x4.add(f1, f32x4.mul(f32x4.convert_i32x4_s(a1), f32x4.mul(v128.load32_splat(m1 + fo + bo), dv)));
    f2 = f32x4.add(f2, f32x4.mul(f32x4.convert_i32x4_s(a2), f32x4.mul(v128.load32_splat(m2 + fo + bo), dv)));
    f3 = f32x4.add(f3, f32x4.mul(f32x4.convert_i32x4_s(a3), f32x4.mul(v128.load32_splat(m3 + fo + bo), dv)));
    if (hasMin) {
      const xbb = xb + (<usize>b << 7);
      const mp = mins + (<usize>b << 7);
      f0 = f32x4.sub(f0, minTerm(mp, xbb, m0 + mo + bo, dv));
      f1 = f32x4.sub(f1, minTerm(mp + 32, xbb, m1 + mo + bo, dv));
      f2 = f32x4.sub(f2, minTerm(mp + 64, xbb, m2 + mo + bo, dv));
      f3 = f32x4.sub(f3, minTerm(mp + 96, xbb, m3 + mo + bo, dv));
    }
  }
  const ab0 = i32x4.shuffle(f0, f1, 0, 4, 1, 5);
  const ab1 = i32x4.shuffle(f0, f1, 2, 6, 3, 7);
  const cd0 = i32x4.shuffle(f2, f3, 0, 4, 1, 5);
  const cd1 = i32x4.shuffle(f2, f3, 2, 6, 3, 7);
  storeRows(i32x4.shuffle(ab0, cd0, 0, 1, 4, 5), y, nr);
  if (nt > 1) storeRows(i32x4.shuffle(ab0, cd0, 2, 3, 6, 7), y + ys, nr);
  if (nt > 2) storeRows(i32x4.shuffle(ab1, cd1, 0, 1, 4, 5), y + 2 * ys, nr);
  if (nt > 3) storeRows(i32x4.shuffle(ab1, cd1, 2, 3, 6, 7), y + 3 * ys, nr);
}

/**
 * A row's min term of a block for 4 tokens: float(sum_j min_j * bsum_j) * (dmin * d_x); mp the
 * row's 8 min pairs, xbb the tokens' 8 bsum pairs, md the row's dmin.
 */
@inline
function minTerm(mp: usize, xbb: usize, md: usize, dv: v128): v128 {
  let s = i32x4.dot_i16x8_s(v128.load32_splat(mp), v128.load(xbb));
  for (let k = 1; k < 8; k++) s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load32_splat(mp + (<usize>k << 2)), v128.load(xbb + (<usize>k << 4))));
  return f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.mul(v128.load32_splat(md), dv));
}

/**
 * Rows [r0, r1) of y (T,OC) = x . w^T for a K-quant `type` with T > 1 (row t of y ys bytes after
 * row t - 1): xp the packed activation groups (kGroupBytes(C) each), scratch kDecodedBytes(C).
 */
export function matmulKTiles(
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
  hasMin: bool,
): void {
  const gb = kGroupBytes(C);
  for (let r = r0; r < r1; r += 4) {
    const nr = min(4, r1 - r);
    decodeK4(type, w + <usize>r * rb, rb, nr, C, scratch);
    for (let t = 0; t < T; t += 4) {
      tileK(scratch, xp + <usize>(t >> 2) * gb, C, hasMin, y + <usize>t * ys + (<usize>r << 2), ys, nr, min(4, T - t));
    }
  }
}
