/**
 * Kernels of the non-linear 4-bit types IQ4_NL and IQ4_XS: dequantize, quantize and dot
 * (IQ4_NL with a Q8_0 activation row, IQ4_XS with Q8_K), bit-exact with ggml.
 *
 * Block layouts (little endian; a 4-bit index i stands for KVALUES[i], ggml's kvalues_iq4nl):
 *   block_iq4_nl (18 B, 32 values):  f16 d | u8 qs[16]
 *       value j = d * KVALUES[low nibble of qs[j]], value j + 16 = d * KVALUES[high nibble]
 *   block_iq4_xs (136 B, 256 values): f16 d | u16 scales_h | u8 scales_l[4] | u8 qs[128]
 *       eight sub-blocks of 32; sub-block b has the 6-bit scale ls = low nibble b%2 of
 *       scales_l[b/2] | bits 2b..2b+1 of scales_h << 4, value = d * (ls - 32) * KVALUES[i],
 *       its 32 indices packed in qs[16b..16b+15] as in IQ4_NL.
 *   block_q8_K (292 B, the IQ4_XS activation): f32 d | i8 qs[256] | i16 bsums[16]
 *
 * Quantize follows ggml's quantize_row_iq4_nl_impl without importance weights:
 * quantizeIQ4_NL is quantize_row_iq4_nl_ref (ntry = -1: no scale search), quantizeIQ4_NLChunk is
 * what ggml_quantize_chunk and llama-quantize produce (ntry = 7), quantizeIQ4_XS is
 * quantize_row_iq4_xs_ref (ntry = 7; the chunk path is the same).
 * NOTE: for an all-zero block (max |x| < 1e-15) ggml's _ref leaves the indices uninitialized and
 * packs stack garbage; we write index 8 (value +1, times d = 0), as the ntry = 7 path does.
 * Not here: Q8_K quantization (k-quants.ts) and the other IQ types (not implemented).
 */
import { f16Table } from "../util/f16.ts";
import { nearestInt, readF32, readU16, toF16Bits, writeU16 } from "./c-float.ts";
import type { KernelTable } from "./kernels.ts";

const fround = Math.fround;
const QK4_NL = 32;
const QK_K = 256;
/** ggml's GROUP_MAX_EPS: a block whose max |x| is below it counts as all zero. */
const GROUP_MAX_EPS = Math.fround(1e-15);

/** kvalues_iq4nl (ggml-common.h): the 16 non-linear levels. */
// biome-ignore format: a table
export const KVALUES: Int8Array = Int8Array.of(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

// KVALUES of the low and of the high nibble of a byte: one lookup per value in the dot loops.
const KV_LO = Int8Array.from({ length: 256 }, (_, b) => KVALUES[b & 15]!);
const KV_HI = Int8Array.from({ length: 256 }, (_, b) => KVALUES[b >> 4]!);

// ============================================================================== dequantize

/** IQ4_NL blocks -> y (n); dequantize_row_iq4_nl. Unrolled by hand (about 1.7x faster in V8). */
export function dequantizeIQ4_NL(src: Uint8Array, y: Float32Array, n: number): void {
  const T = f16Table;
  const LO = KV_LO;
  const HI = KV_HI;
  for (let s = 0, o = 0; o < n; s += 18, o += QK4_NL) {
    const d = T[src[s]! | (src[s + 1]! << 8)]!;
    const b0 = src[s + 2]!;
    const b1 = src[s + 3]!;
    const b2 = src[s + 4]!;
    const b3 = src[s + 5]!;
    const b4 = src[s + 6]!;
    const b5 = src[s + 7]!;
    const b6 = src[s + 8]!;
    const b7 = src[s + 9]!;
    const b8 = src[s + 10]!;
    const b9 = src[s + 11]!;
    const b10 = src[s + 12]!;
    const b11 = src[s + 13]!;
    const b12 = src[s + 14]!;
    const b13 = src[s + 15]!;
    const b14 = src[s + 16]!;
    const b15 = src[s + 17]!;
    y[o + 0] = d * LO[b0]!;
    y[o + 1] = d * LO[b1]!;
    y[o + 2] = d * LO[b2]!;
    y[o + 3] = d * LO[b3]!;
    y[o + 4] = d * LO[b4]!;
    y[o + 5] = d * LO[b5]!;
    y[o + 6] = d * LO[b6]!;
    y[o + 7] = d * LO[b7]!;
    y[o + 8] = d * LO[b8]!;
    y[o + 9] = d * LO[b9]!;
    y[o + 10] = d * LO[b10]!;
    y[o + 11] = d * LO[b11]!;
    y[o + 12] = d * LO[b12]!;
    y[o + 13] = d * LO[b13]!;
    y[o + 14] = d * LO[b14]!;
    y[o + 15] = d * LO[b15]!;
    y[o + 16] = d * HI[b0]!;
    y[o + 17] = d * HI[b1]!;
    y[o + 18] = d * HI[b2]!;
    y[o + 19] = d * HI[b3]!;
    y[o + 20] = d * HI[b4]!;
    y[o + 21] = d * HI[b5]!;
    y[o + 22] = d * HI[b6]!;
    y[o + 23] = d * HI[b7]!;
    y[o + 24] = d * HI[b8]!;
    y[o + 25] = d * HI[b9]!;
    y[o + 26] = d * HI[b10]!;
    y[o + 27] = d * HI[b11]!;
    y[o + 28] = d * HI[b12]!;
    y[o + 29] = d * HI[b13]!;
    y[o + 30] = d * HI[b14]!;
    y[o + 31] = d * HI[b15]!;
  }
}

/** IQ4_XS blocks -> y (n); dequantize_row_iq4_xs. */
export function dequantizeIQ4_XS(src: Uint8Array, y: Float32Array, n: number): void {
  const T = f16Table;
  const LO = KV_LO;
  const HI = KV_HI;
  for (let s = 0, o = 0; o < n; s += 136) {
    const d = T[src[s]! | (src[s + 1]! << 8)]!;
    const sh = src[s + 2]! | (src[s + 3]! << 8);
    for (let ib = 0, q = s + 8; ib < 8; ib++, o += 32, q += 16) {
      const ls = ((src[s + 4 + (ib >> 1)]! >> (4 * (ib & 1))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
      // d * (ls - 32) is exact in float32; the store rounds dl * K once, as ggml's multiply does.
      const dl = d * (ls - 32);
      const b0 = src[q + 0]!;
      const b1 = src[q + 1]!;
      const b2 = src[q + 2]!;
      const b3 = src[q + 3]!;
      const b4 = src[q + 4]!;
      const b5 = src[q + 5]!;
      const b6 = src[q + 6]!;
      const b7 = src[q + 7]!;
      const b8 = src[q + 8]!;
      const b9 = src[q + 9]!;
      const b10 = src[q + 10]!;
      const b11 = src[q + 11]!;
      const b12 = src[q + 12]!;
      const b13 = src[q + 13]!;
      const b14 = src[q + 14]!;
      const b15 = src[q + 15]!;
      y[o + 0] = dl * LO[b0]!;
      y[o + 1] = dl * LO[b1]!;
      y[o + 2] = dl * LO[b2]!;
      y[o + 3] = dl * LO[b3]!;
      y[o + 4] = dl * LO[b4]!;
      y[o + 5] = dl * LO[b5]!;
      y[o + 6] = dl * LO[b6]!;
      y[o + 7] = dl * LO[b7]!;
      y[o + 8] = dl * LO[b8]!;
      y[o + 9] = dl * LO[b9]!;
      y[o + 10] = dl * LO[b10]!;
      y[o + 11] = dl * LO[b11]!;
      y[o + 12] = dl * LO[b12]!;
      y[o + 13] = dl * LO[b13]!;
      y[o + 14] = dl * LO[b14]!;
      y[o + 15] = dl * LO[b15]!;
      y[o + 16] = dl * HI[b0]!;
      y[o + 17] = dl * HI[b1]!;
      y[o + 18] = dl * HI[b2]!;
      y[o + 19] = dl * HI[b3]!;
      y[o + 20] = dl * HI[b4]!;
      y[o + 21] = dl * HI[b5]!;
      y[o + 22] = dl * HI[b6]!;
      y[o + 23] = dl * HI[b7]!;
      y[o + 24] = dl * HI[b8]!;
      y[o + 25] = dl * HI[b9]!;
      y[o + 26] = dl * HI[b10]!;
      y[o + 27] = dl * HI[b11]!;
      y[o + 28] = dl * HI[b12]!;
      y[o + 29] = dl * HI[b13]!;
      y[o + 30] = dl * HI[b14]!;
      y[o + 31] = dl * HI[b15]!;
    }
  }
}

// ================================================================================ quantize

// best_index_int8 (ggml-quants.c) picks the level nearest to x, comparing the float32 differences
// x - K[i] < K[i+1] - x (a tie goes up). Near a midpoint m = (K[i] + K[i+1]) / 2 those
// differences are exact (same binade as x), elsewhere rounding cannot reorder them, so the answer
// is the number of midpoints <= x. The midpoints are multiples of 1/2, so a table over floor(2x)
// gives it: LEVEL_BY_HALF[floor(2x) + 254] for -127 < x < 113.
const LEVEL_BY_HALF = buildLevelByHalf();

function buildLevelByHalf(): Uint8Array {
  const t = new Uint8Array(481);
  for (let k = 0; k < 481; k++) {
    const x2 = k - 254; // floor(2x)
    let l = 0;
    for (let i = 0; i < 15; i++) if (x2 >= KVALUES[i]! + KVALUES[i + 1]!) l = i + 1;
    t[k] = l;
  }
  return t;
}

const LEVEL_VALUE_BY_HALF = Int8Array.from(LEVEL_BY_HALF, (l) => KVALUES[l]!);

/** best_index_int8(16, kvalues_iq4nl, x): index of the level nearest to x (ties go up). */
export function bestIndex(x: number): number {
  if (x <= -127) return 0;
  if (x >= 113) return 15;
  if (Number.isNaN(x)) return 15; // every comparison in ggml's search is false
  return LEVEL_BY_HALF[(2 * x + 254) | 0]!; // 2x + 254 > 0 here, so truncation is floor
}

/** The same, by ggml's binary search (the readable twin bestIndex is tested against). */
export function bestIndexSearch(x: number): number {
  const K = KVALUES;
  if (x <= K[0]!) return 0;
  if (x >= K[15]!) return 15;
  let ml = 0;
  let mu = 15;
  while (mu - ml > 1) {
    const mav = (ml + mu) >> 1;
    if (x < K[mav]!) mu = mav;
    else ml = mav;
  }
  return fround(x - K[mu - 1]!) < fround(K[mu]! - x) ? mu - 1 : mu;
}

/**
 * The per-32 part of quantize_row_iq4_nl_impl with weight = x^2: the block scale, after the
 * optional search over 2*ntry+1 trial scales; fills L[lo..lo+31] with the first pass's indices.
 * Returns 0 (and leaves L alone) for an all-zero block.
 */
const weight = new Float32Array(32);
const block = new Float32Array(32);

function blockScale(x: Float32Array, o: number, ntry: number, L: Uint8Array, lo: number): number {
  const K = KVALUES;
  const w = weight;
  let amax = 0;
  let max = 0;
  const xs = block;
  for (let j = 0; j < 32; j++) {
    const xj = x[o + j]!;
    xs[j] = xj;
    w[j] = xj * xj; // the store rounds: float32 x*x
    const ax = Math.abs(xj);
    if (ax > amax) {
      amax = ax;
      max = xj;
    }
  }
  if (amax < GROUP_MAX_EPS) return 0;
  let d = ntry > 0 ? fround(-max / K[0]!) : fround(max / K[0]!);
  let id = fround(1 / d);
  let sumqx = 0;
  let sumq2 = 0;
  for (let j = 0; j < 32; j++) {
    const xj = x[o + j]!;
    const l = bestIndex(fround(id * xj));
    L[lo + j] = l;
    const q = K[l]!;
    const wq = fround(w[j]! * q);
    sumqx = fround(sumqx + fround(wq * xj));
    sumq2 = fround(sumq2 + fround(wq * q));
  }
  d = sumq2 > 0 ? fround(sumqx / sumq2) : 0;
  let best = fround(d * sumqx);
  for (let itry = -ntry; itry <= ntry; itry++) {
    id = fround((itry + K[0]!) / max);
    sumqx = 0;
    sumq2 = 0;
    for (let j = 0; j < 32; j++) {
      const xj = xs[j]!;
      const v = fround(id * xj);
      // bestIndex inlined, straight to the level (this loop is most of IQ4_XS's quantize time)
      const q =
        v <= -127 ? -127 : v >= 113 || Number.isNaN(v) ? 113 : LEVEL_VALUE_BY_HALF[(2 * v + 254) | 0]!;
      const wq = fround(w[j]! * q);
      sumqx = fround(sumqx + fround(wq * xj));
      sumq2 = fround(sumq2 + fround(wq * q));
    }
    if (sumq2 > 0 && fround(sumqx * sumqx) > fround(best * sumq2)) {
      d = fround(sumqx / sumq2);
      best = fround(d * sumqx);
    }
  }
  return d;
}

/** Packs 32 indices of L (from lo) into 16 bytes of dst (from q): j low, j + 16 high. */
function pack(L: Uint8Array, lo: number, dst: Uint8Array, q: number): void {
  for (let j = 0; j < 16; j++) dst[q + j] = L[lo + j]! | (L[lo + 16 + j]! << 4);
}

const scratchL = new Uint8Array(QK_K);

function quantizeNl(x: Float32Array, dst: Uint8Array, n: number, ntry: number): void {
  const L = scratchL;
  for (let o = 0, s = 0; o < n; o += QK4_NL, s += 18) {
    L.fill(8, 0, 32);
    const d = blockScale(x, o, ntry, L, 0);
    writeU16(dst, s, toF16Bits(d));
    if (ntry > 0) {
      // NOTE: the indices are redone with the final float32 scale, not its fp16 rounding.
      const id = d !== 0 ? fround(1 / d) : 0;
      for (let j = 0; j < 32; j++) L[j] = bestIndex(fround(id * x[o + j]!));
    }
    pack(L, 0, dst, s + 2);
  }
}

/** x (n) -> IQ4_NL blocks; quantize_row_iq4_nl_ref (ntry = -1). */
export function quantizeIQ4_NL(x: Float32Array, dst: Uint8Array, n: number): void {
  quantizeNl(x, dst, n, -1);
}

/** x (n) -> IQ4_NL blocks as ggml_quantize_chunk / llama-quantize make them (ntry = 7). */
export function quantizeIQ4_NLChunk(x: Float32Array, dst: Uint8Array, n: number): void {
  quantizeNl(x, dst, n, 7);
}

/** x (n) -> IQ4_XS blocks; quantize_row_iq4_xs_ref (ntry = 7). */
export function quantizeIQ4_XS(x: Float32Array, dst: Uint8Array, n: number): void {
  const L = scratchL;
  const scales = new Float32Array(8);
  for (let o = 0, s = 0; o < n; o += QK_K, s += 136) {
    let maxScale = 0;
    let amaxScale = 0;
    for (let ib = 0; ib < 8; ib++) {
      const d = blockScale(x, o + 32 * ib, 7, L, 32 * ib);
      scales[ib] = d;
      if (Math.abs(d) > amaxScale) {
        amaxScale = Math.abs(d);
        maxScale = d;
      }
    }
    const d = fround(-maxScale / 32);
    writeU16(dst, s, toF16Bits(d));
    const id = d !== 0 ? fround(1 / d) : 0;
    let sh = 0;
    for (let ib = 0; ib < 8; ib++) {
      let l = nearestInt(fround(id * scales[ib]!));
      l = Math.max(-32, Math.min(31, l));
      const dl = fround(d * l);
      const idl = dl !== 0 ? fround(1 / dl) : 0;
      for (let j = 0; j < 32; j++) L[32 * ib + j] = bestIndex(fround(idl * x[o + 32 * ib + j]!));
      l += 32;
      if (ib % 2 === 0) dst[s + 4 + (ib >> 1)] = l & 15;
      else dst[s + 4 + (ib >> 1)]! |= (l & 15) << 4;
      sh |= (l >> 4) << (2 * ib);
    }
    writeU16(dst, s + 2, sh);
    for (let ib = 0; ib < 8; ib++) pack(L, 32 * ib, dst, s + 8 + 16 * ib);
  }
}

// ===================================================================================== dot

/** row (n, IQ4_NL), act (n, Q8_0) -> float32; ggml_vec_dot_iq4_nl_q8_0_generic. */
export function dotIQ4_NL(row: Uint8Array, act: Uint8Array, n: number): number {
  const T = f16Table;
  const LO = KV_LO;
  const HI = KV_HI;
  const a = new Int8Array(act.buffer, act.byteOffset, act.length);
  const end = n * (34 / QK4_NL);
  let sumf = 0;
  for (let x = 0, y = 0, k = 2; y < end; x += 18, y += 34, k += 34) {
    const b0 = row[x + 2]!;
    const b1 = row[x + 3]!;
    const b2 = row[x + 4]!;
    const b3 = row[x + 5]!;
    const b4 = row[x + 6]!;
    const b5 = row[x + 7]!;
    const b6 = row[x + 8]!;
    const b7 = row[x + 9]!;
    const b8 = row[x + 10]!;
    const b9 = row[x + 11]!;
    const b10 = row[x + 12]!;
    const b11 = row[x + 13]!;
    const b12 = row[x + 14]!;
    const b13 = row[x + 15]!;
    const b14 = row[x + 16]!;
    const b15 = row[x + 17]!;
    let s0 = 0;
    let s1 = 0;
    s0 +=
      a[k + 0]! * LO[b0]! +
      a[k + 1]! * LO[b1]! +
      a[k + 2]! * LO[b2]! +
      a[k + 3]! * LO[b3]! +
      a[k + 4]! * LO[b4]! +
      a[k + 5]! * LO[b5]! +
      a[k + 6]! * LO[b6]! +
      a[k + 7]! * LO[b7]! +
      a[k + 8]! * LO[b8]! +
      a[k + 9]! * LO[b9]! +
      a[k + 10]! * LO[b10]! +
      a[k + 11]! * LO[b11]! +
      a[k + 12]! * LO[b12]! +
      a[k + 13]! * LO[b13]! +
      a[k + 14]! * LO[b14]! +
      a[k + 15]! * LO[b15]!;
    s1 +=
      a[k + 16]! * HI[b0]! +
      a[k + 17]! * HI[b1]! +
      a[k + 18]! * HI[b2]! +
      a[k + 19]! * HI[b3]! +
      a[k + 20]! * HI[b4]! +
      a[k + 21]! * HI[b5]! +
      a[k + 22]! * HI[b6]! +
      a[k + 23]! * HI[b7]! +
      a[k + 24]! * HI[b8]! +
      a[k + 25]! * HI[b9]! +
      a[k + 26]! * HI[b10]! +
      a[k + 27]! * HI[b11]! +
      a[k + 28]! * HI[b12]! +
      a[k + 29]! * HI[b13]! +
      a[k + 30]! * HI[b14]! +
      a[k + 31]! * HI[b15]!;
    const sumi = s0 + s1;
    const d = fround(T[act[y]! | (act[y + 1]! << 8)]! * T[row[x]! | (row[x + 1]! << 8)]!);
    sumf = fround(sumf + fround(d * sumi));
  }
  return sumf;
}

/** row (n, IQ4_XS), act (n, Q8_K) -> float32; ggml_vec_dot_iq4_xs_q8_K_generic. */
export function dotIQ4_XS(row: Uint8Array, act: Uint8Array, n: number): number {
  const T = f16Table;
  const LO = KV_LO;
  const HI = KV_HI;
  const a = new Int8Array(act.buffer, act.byteOffset, act.length);
  const end = n * (292 / QK_K);
  let sumf = 0;
  for (let x = 0, y = 0; y < end; x += 136, y += 292) {
    const d4d8 = fround(T[row[x]! | (row[x + 1]! << 8)]! * readF32(act, y));
    const sh = row[x + 2]! | (row[x + 3]! << 8);
    for (let ib = 0, q = x + 8, k = y + 4; ib < 8; ib++, q += 16, k += 32) {
      const ls = ((row[x + 4 + (ib >> 1)]! >> (4 * (ib & 1))) & 15) | (((sh >> (2 * ib)) & 3) << 4);
      const b0 = row[q + 0]!;
      const b1 = row[q + 1]!;
      const b2 = row[q + 2]!;
      const b3 = row[q + 3]!;
      const b4 = row[q + 4]!;
      const b5 = row[q + 5]!;
      const b6 = row[q + 6]!;
      const b7 = row[q + 7]!;
      const b8 = row[q + 8]!;
      const b9 = row[q + 9]!;
      const b10 = row[q + 10]!;
      const b11 = row[q + 11]!;
      const b12 = row[q + 12]!;
      const b13 = row[q + 13]!;
      const b14 = row[q + 14]!;
      const b15 = row[q + 15]!;
      let s0 = 0;
      let s1 = 0;
      s0 +=
        a[k + 0]! * LO[b0]! +
        a[k + 1]! * LO[b1]! +
        a[k + 2]! * LO[b2]! +
        a[k + 3]! * LO[b3]! +
        a[k + 4]! * LO[b4]! +
        a[k + 5]! * LO[b5]! +
        a[k + 6]! * LO[b6]! +
        a[k + 7]! * LO[b7]! +
        a[k + 8]! * LO[b8]! +
        a[k + 9]! * LO[b9]! +
        a[k + 10]! * LO[b10]! +
        a[k + 11]! * LO[b11]! +
        a[k + 12]! * LO[b12]! +
        a[k + 13]! * LO[b13]! +
        a[k + 14]! * LO[b14]! +
        a[k + 15]! * LO[b15]!;
      s1 +=
        a[k + 16]! * HI[b0]! +
        a[k + 17]! * HI[b1]! +
        a[k + 18]! * HI[b2]! +
        a[k + 19]! * HI[b3]! +
        a[k + 20]! * HI[b4]! +
        a[k + 21]! * HI[b5]! +
        a[k + 22]! * HI[b6]! +
        a[k + 23]! * HI[b7]! +
        a[k + 24]! * HI[b8]! +
        a[k + 25]! * HI[b9]! +
        a[k + 26]! * HI[b10]! +
        a[k + 27]! * HI[b11]! +
        a[k + 28]! * HI[b12]! +
        a[k + 29]! * HI[b13]! +
        a[k + 30]! * HI[b14]! +
        a[k + 31]! * HI[b15]!;
      const sumi = s0 + s1;
      sumf = fround(sumf + fround(fround(d4d8 * (ls - 32)) * sumi));
    }
  }
  return sumf;
}

// ================================================================== reference twins of dot
// Readable: dequantize both rows (the activation by the plain block formula) and sum the
// products in float64.

function dequantQ8_0(b: Uint8Array, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = Math.floor(i / 32) * 34;
    out[i] = f16Table[readU16(b, s)]! * ((b[s + 2 + (i % 32)]! << 24) >> 24);
  }
  return out;
}

function dequantQ8_K(b: Uint8Array, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = Math.floor(i / QK_K) * 292;
    out[i] = readF32(b, s) * ((b[s + 4 + (i % QK_K)]! << 24) >> 24);
  }
  return out;
}

function sumProducts(w: Float32Array, a: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += w[i]! * a[i]!;
  return fround(sum);
}

export function dotRefIQ4_NL(row: Uint8Array, act: Uint8Array, n: number): number {
  const w = new Float32Array(n);
  dequantizeIQ4_NL(row, w, n);
  return sumProducts(w, dequantQ8_0(act, n));
}

export function dotRefIQ4_XS(row: Uint8Array, act: Uint8Array, n: number): number {
  const w = new Float32Array(n);
  dequantizeIQ4_XS(row, w, n);
  return sumProducts(w, dequantQ8_K(act, n));
}

export const IQ_KERNELS: KernelTable = {
  IQ4_NL: {
    dequantize: dequantizeIQ4_NL,
    quantize: quantizeIQ4_NL,
    dotActivation: "Q8_0",
    dot: dotIQ4_NL,
    dotRef: dotRefIQ4_NL,
  },
  IQ4_XS: {
    dequantize: dequantizeIQ4_XS,
    quantize: quantizeIQ4_XS,
    dotActivation: "Q8_K",
    dot: dotIQ4_XS,
    dotRef: dotRefIQ4_XS,
  },
};
