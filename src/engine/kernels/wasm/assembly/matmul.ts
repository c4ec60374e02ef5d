// Matrix products y (T,OC) = x (T,C) . w^T over a range of weight rows [r0, r1), the unit of work
// one thread takes. x arrives prepared by prepareAct (ops in index.ts): float32 (rounded to f16 /
// bf16 for those weights) or quantized to Q8_0 / Q8_1 / Q8_K and expanded (quantize.ts). Type
// codes are ggml's type ids (ggml.h).
// Not here: the per-type dots (matmul-float.ts, matmul-legacy.ts, matmul-kquants.ts), a few
// tokens (matmul-small.ts), the T > 1 tiles (matmul-tiles.ts).
import { dotBF16, dotF16, dotF16S, dotF32 } from "./matmul-float";
import { dotQ4K, dotQ4Kx2, dotQ5K, dotQ5Kx2, dotQ6K, dotQ6Kx2 } from "./matmul-kquants";
import { decodedHasMin } from "./matmul-decoded";
import { dotQ4_0, dotQ4_0x2, dotQ4_1, dotQ5_0, dotQ5_0x2, dotQ5_1, dotQ5_1x2, dotQ8_0, dotQ8_0x2 } from "./matmul-legacy";
import { matmulSmall, matmulSmallFloat, useSmallFloat, useSmallT } from "./matmul-small";
import { isLegacyTileType, matmulFloatTiles, matmulKTiles, matmulLegacyTiles } from "./matmul-tiles";
import { T_BF16, T_F16, T_F16S, T_F32, T_Q2_K, T_Q3_K, T_Q4_0, T_Q4_1, T_Q4_K, T_Q5_0, T_Q5_1, T_Q5_K, T_Q6_K, T_Q8_0 } from "./types";

export { T_BF16, T_F16, T_F16S, T_F32, T_Q2_K, T_Q3_K, T_Q4_0, T_Q4_1, T_Q4_K, T_Q5_0, T_Q5_1, T_Q5_K, T_Q6_K, T_Q8_0 } from "./types";

/** Bytes of one row of C values stored as `type`; 0 for a type without a kernel. */
export function rowBytes(type: i32, C: i32): i32 {
  switch (type) {
    case T_F32:
      return C * 4;
    case T_F16:
    case T_F16S:
    case T_BF16:
      return C * 2;
    case T_Q4_0:
      return (C >> 5) * 18;
    case T_Q4_1:
      return (C >> 5) * 20;
    case T_Q5_0:
      return (C >> 5) * 22;
    case T_Q5_1:
      return (C >> 5) * 24;
    case T_Q8_0:
      return (C >> 5) * 34;
    case T_Q2_K:
      return (C >> 8) * 84;
    case T_Q3_K:
      return (C >> 8) * 110;
    case T_Q4_K:
      return (C >> 8) * 144;
    case T_Q5_K:
      return (C >> 8) * 176;
    case T_Q6_K:
      return (C >> 8) * 210;
    default:
      return 0;
  }
}

/** 1 for the K-quants (Q8_K activation, 256-value blocks), else 0. */
@inline
export function isKQuant(type: i32): bool {
  return type >= T_Q2_K && type <= T_Q6_K;
}

/** 1 for the float weight types (float32 activation). */
@inline
export function isFloat(type: i32): bool {
  return type == T_F32 || type == T_F16 || type == T_BF16 || type == T_F16S;
}

@inline
function qdot(type: i32, w: usize, qs: usize, d: usize, s: usize, nb: i32): f32 {
  switch (type) {
    case T_Q4_0:
      return dotQ4_0(w, qs, d, s, nb);
    case T_Q4_1:
      return dotQ4_1(w, qs, d, s, nb);
    case T_Q5_0:
      return dotQ5_0(w, qs, d, s, nb);
    case T_Q5_1:
      return dotQ5_1(w, qs, d, s, nb);
    case T_Q8_0:
      return dotQ8_0(w, qs, d, s, nb);
    default:
      return NaN;
  }
}

/**
 * Rows [r0, r1) of y (T,OC) = x (T,C) . w^T, w (OC,C) stored as `type`; row t of y starts ys bytes
 * after row t - 1 (4 OC, or less for a thread's private copy of its rows: y then points r0
 * floats before it).
 * Float types: T = 1: xa = x (C) f32 (rounded for F16 / BF16); T > 1: xa the packed activation and
 * scratch two packed rows (matmul-tiles.ts; F16 / BF16 with T <= 4: matmul-small.ts, no scratch).
 * Every legacy type (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1) and K-quant (Q2_K .. Q6_K) with 2 <= T <=
 * SMALL_T_MAX, and Q2_K / Q3_K with T = 1: xa the packed activation groups, scratch 64 bytes
 * (matmul-small.ts useSmallT). Legacy types
 * with larger T: xa the packed activation groups, scratch 4 decoded rows (matmul-tiles.ts).
 * K-quants with larger T: the same with their packing (matmul-tiles.ts matmulKTiles).
 * Quantized: xa = qs (T,C) i16 EO; ad = d (T, C/32 or C/256) f32; ax = Q8_1's s (T, C/32) f32 or
 * Q8_K's bsums (T, C/16) i32 (Q4_K and Q5_K with T = 1: xa in the halves layout and ax per block the i16x8
 * pair sums of the bsums, see matmul-kquants.ts dotQ4K; scratch: 256 bytes for the scales; Q6_K
 * with T = 1: xa in the steps layout and ax the bsums as i16, see dotQ6K; scratch 512 bytes).
 */
export function matmulRows(
  type: i32,
  w: usize,
  xa: usize,
  ad: usize,
  ax: usize,
  y: usize,
  ys: usize,
  T: i32,
  C: i32,
  OC: i32,
  r0: i32,
  r1: i32,
  scratch: usize,
): void {
  const rb = <usize>rowBytes(type, C);
  if (isFloat(type)) {
    if (useSmallFloat(type, T, C)) {
      matmulSmallFloat(type, w, rb, xa, y, ys, T, C, r0, r1);
      return;
    }
    if (T > 1) {
      matmulFloatTiles(type, w, rb, xa, y, ys, T, C, r0, r1, scratch);
      return;
    }
    for (let r = r0; r < r1; r++) {
      const wr = w + <usize>r * rb;
      const v =
        type == T_F32
          ? dotF32(wr, xa, C)
          : type == T_F16S
            ? dotF16S(wr, xa, C)
            : type == T_F16
              ? dotF16(wr, xa, C)
              : dotBF16(wr, xa, C);
      store<f32>(y + (<usize>r << 2), v);
    }
    return;
  }
  if (useSmallT(type, T)) {
    // A few tokens: the weight blocks decoded once in registers for every token (matmul-small.ts).
    matmulSmall(type, w, rb, xa, y, ys, T, C, r0, r1, scratch);
    return;
  }
  if (T > 1 && isLegacyTileType(type)) {
    matmulLegacyTiles(type, w, rb, xa, y, ys, T, C, r0, r1, scratch);
    return;
  }
  const k = isKQuant(type);
  const nb = k ? C >> 8 : C >> 5;
  if (T > 1) {
    // K-quants: xa is the packed activation (matmul-tiles.ts).
    matmulKTiles(type, w, rb, xa, y, ys, T, C, r0, r1, scratch, decodedHasMin(type));
    return;
  }
  let r = r0;
  // Two rows at a time share the activation's loads; same results per row. Row r goes with row
  // r + h, h = half the range: two long sequential weight streams, not one pair of short ones
  // after another (rows of 1-4 KiB: 1.1x-2x out of cache, the same in cache).
  const h = (r1 - r0) >> 1;
  const hb = <usize>h * rb;
  if (type == T_Q4_0 || type == T_Q5_0) {
    const q4 = type == T_Q4_0;
    for (; r < r0 + h; r++) {
      const wr = w + <usize>r * rb;
      const yr = y + (<usize>r << 2);
      const yh = y + (<usize>(r + h) << 2);
      if (q4) dotQ4_0x2(wr, hb, xa, ad, ax, nb, yr, yh);
      else dotQ5_0x2(wr, hb, xa, ad, ax, nb, yr, yh);
    }
    r = r0 + 2 * h;
  } else if (type == T_Q8_0) {
    for (; r < r0 + h; r++) dotQ8_0x2(w + <usize>r * rb, hb, xa, ad, nb, y + (<usize>r << 2), y + (<usize>(r + h) << 2));
    r = r0 + 2 * h;
  } else if (type == T_Q5_1) {
    // scratch: 16 bytes (dotQ5_1x2's NOTE).
    for (; r < r0 + h; r++) dotQ5_1x2(w + <usize>r * rb, hb, xa, ad, ax, nb, y + (<usize>r << 2), y + (<usize>(r + h) << 2), scratch);
    r = r0 + 2 * h;
  } else if (type == T_Q4_K || type == T_Q5_K) {
    // One token: xa in the halves layout, ax the pair sums of bsums (prepareAct); scratch: the
    // dots' scale vectors.
    const q4 = type == T_Q4_K;
    for (; r < r0 + h; r++) {
      const wr = w + <usize>r * rb;
      const yr = y + (<usize>r << 2);
      const yh = y + (<usize>(r + h) << 2);
      if (q4) dotQ4Kx2(wr, hb, xa, ad, ax, nb, yr, yh, scratch);
      else dotQ5Kx2(wr, hb, xa, ad, ax, nb, yr, yh, scratch);
    }
    if (r0 + 2 * h < r1) {
      const wr = w + <usize>(r1 - 1) * rb;
      store<f32>(y + (<usize>(r1 - 1) << 2), q4 ? dotQ4K(wr, xa, ad, ax, nb, scratch) : dotQ5K(wr, xa, ad, ax, nb, scratch));
    }
    return;
  }
  if (type == T_Q6_K) {
    // One token: xa in the steps layout, ax the bsums as i16 (prepareAct; matmul-kquants.ts dotQ6K).
    for (; r < r0 + h; r++) dotQ6Kx2(w + <usize>r * rb, hb, xa, ad, ax, nb, y + (<usize>r << 2), y + (<usize>(r + h) << 2), scratch);
    if (r0 + 2 * h < r1) store<f32>(y + (<usize>(r1 - 1) << 2), dotQ6K(w + <usize>(r1 - 1) * rb, xa, ad, ax, nb, scratch));
    return;
  }
  for (; r < r1; r++) store<f32>(y + (<usize>r << 2), qdot(type, w + <usize>r * rb, xa, ad, ax, nb));
}
