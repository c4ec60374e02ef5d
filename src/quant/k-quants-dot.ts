/**
 * Dot products of one K-quant row (Q2_K..Q6_K) with an activation row quantized to Q8_K: a fast
 * `dot*` per type and a naive `dotRef*` twin (dequantize both rows, sum in float64), the oracle
 * the fast one is tested against. Block layouts: see k-quants.ts. Not here: WebAssembly kernels.
 *
 * The fast kernels reproduce ggml_vec_dot_q{2..6}_K_q8_K_generic (ggml/src/ggml-cpu/quants.c,
 * ggml 0.23.0) bit for bit: the integer parts are exact whatever the order, and the float32 part
 * follows ggml's order. For Q3_K..Q6_K ggml keeps 8 integer lane sums per block (lane = value
 * index mod 8), scales each by d = fp16(x.d) * y.d into 8 float32 running sums, and adds the 8
 * sums at the very end (Q4_K/Q5_K first subtract dmin * sum(bsums * mins) per block). Q2_K adds
 * `dall*isum - dmin*summs` per block. Every float32 operation is rounded with Math.fround.
 *
 * Hot loops use integer math only, over a Uint8Array (row) and an Int8Array view of the
 * activation's buffer (cached per buffer, so a matrix-vector product allocates nothing).
 */
import { f16Table } from "../util/f16.ts";
import {
  dequantizeQ2K,
  dequantizeQ3K,
  dequantizeQ4K,
  dequantizeQ5K,
  dequantizeQ6K,
  dequantizeQ8K,
  minK4,
  q8kScale,
  scaleK4,
  scalesQ3K,
} from "./k-quants-dequantize.ts";

const fr = Math.fround;

let i8Buffer: ArrayBufferLike | undefined;
let i8View: Int8Array<ArrayBufferLike> = new Int8Array(0);

/** An Int8Array over all of a's buffer (index it with a.byteOffset + i); reused while the buffer is. */
function int8Of(a: Uint8Array): Int8Array<ArrayBufferLike> {
  if (a.buffer !== i8Buffer) {
    i8View = new Int8Array(a.buffer);
    i8Buffer = a.buffer;
  }
  return i8View;
}

/** bsums[j] (int16) of the Q8_K block at byte o. */
function bsum(act: Uint8Array, o: number, j: number): number {
  const p = o + 260 + 2 * j;
  return ((act[p]! | (act[p + 1]! << 8)) << 16) >> 16;
}

const q3Scales = new Int32Array(16);

/** ggml_vec_dot_q2_K_q8_K: row (n/256 blocks of 84 bytes) . act (n/256 Q8_K blocks). */
export function dotQ2K(row: Uint8Array, act: Uint8Array, n: number): number {
  const a8 = int8Of(act);
  let sumf = 0;
  for (let b = 0, o = 0, ao = 0; b < n >> 8; b++, o += 84, ao += 292) {
    let summs = 0;
    for (let g = 0; g < 16; g++) summs += bsum(act, ao, g) * (row[o + g]! >> 4);
    let isum = 0;
    for (let g = 0; g < 16; g++) {
      const shift = 2 * ((g >> 1) & 3);
      const q = o + 16 + 32 * (g >> 3) + 16 * (g & 1);
      const p = act.byteOffset + ao + 4 + 16 * g;
      let t0 = 0;
      let t1 = 0;
      for (let l = 0; l < 16; l += 4) {
        t0 += a8[p + l]! * ((row[q + l]! >> shift) & 3) + a8[p + l + 1]! * ((row[q + l + 1]! >> shift) & 3);
        t1 +=
          a8[p + l + 2]! * ((row[q + l + 2]! >> shift) & 3) +
          a8[p + l + 3]! * ((row[q + l + 3]! >> shift) & 3);
      }
      isum += (row[o + g]! & 0xf) * (t0 + t1);
    }
    const d8 = q8kScale(act, ao);
    const dall = fr(d8 * f16Table[row[o + 80]! | (row[o + 81]! << 8)]!);
    const dmin = fr(d8 * f16Table[row[o + 82]! | (row[o + 83]! << 8)]!);
    sumf = fr(sumf + fr(fr(dall * fr(isum)) - fr(dmin * fr(summs))));
  }
  return sumf;
}

/** ggml_vec_dot_q3_K_q8_K: row (n/256 blocks of 110 bytes) . act (n/256 Q8_K blocks). */
export function dotQ3K(row: Uint8Array, act: Uint8Array, n: number): number {
  const a8 = int8Of(act);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let s5 = 0;
  let s6 = 0;
  let s7 = 0;
  for (let b = 0, o = 0, ao = 0; b < n >> 8; b++, o += 110, ao += 292) {
    scalesQ3K(row, o + 96, q3Scales);
    let i0 = 0;
    let i1 = 0;
    let i2 = 0;
    let i3 = 0;
    let i4 = 0;
    let i5 = 0;
    let i6 = 0;
    let i7 = 0;
    for (let g = 0; g < 16; g++) {
      // Values 16g..16g+15: low bits at shift 2k of qs[32c + 16(g&1) + l], high bit hbit of hmask.
      const k = (g >> 1) & 3;
      const shift = 2 * k;
      const hbit = 4 * (g >> 3) + k;
      const h = o + 16 * (g & 1);
      const q = o + 32 + 32 * (g >> 3) + 16 * (g & 1);
      const p = act.byteOffset + ao + 4 + 16 * g;
      const t0 =
        a8[p]! * (((row[q]! >> shift) & 3) + (((row[h]! >> hbit) & 1) << 2) - 4) +
        a8[p + 8]! * (((row[q + 8]! >> shift) & 3) + (((row[h + 8]! >> hbit) & 1) << 2) - 4);
      const t1 =
        a8[p + 1]! * (((row[q + 1]! >> shift) & 3) + (((row[h + 1]! >> hbit) & 1) << 2) - 4) +
        a8[p + 9]! * (((row[q + 9]! >> shift) & 3) + (((row[h + 9]! >> hbit) & 1) << 2) - 4);
      const t2 =
        a8[p + 2]! * (((row[q + 2]! >> shift) & 3) + (((row[h + 2]! >> hbit) & 1) << 2) - 4) +
        a8[p + 10]! * (((row[q + 10]! >> shift) & 3) + (((row[h + 10]! >> hbit) & 1) << 2) - 4);
      const t3 =
        a8[p + 3]! * (((row[q + 3]! >> shift) & 3) + (((row[h + 3]! >> hbit) & 1) << 2) - 4) +
        a8[p + 11]! * (((row[q + 11]! >> shift) & 3) + (((row[h + 11]! >> hbit) & 1) << 2) - 4);
      const t4 =
        a8[p + 4]! * (((row[q + 4]! >> shift) & 3) + (((row[h + 4]! >> hbit) & 1) << 2) - 4) +
        a8[p + 12]! * (((row[q + 12]! >> shift) & 3) + (((row[h + 12]! >> hbit) & 1) << 2) - 4);
      const t5 =
        a8[p + 5]! * (((row[q + 5]! >> shift) & 3) + (((row[h + 5]! >> hbit) & 1) << 2) - 4) +
        a8[p + 13]! * (((row[q + 13]! >> shift) & 3) + (((row[h + 13]! >> hbit) & 1) << 2) - 4);
      const t6 =
        a8[p + 6]! * (((row[q + 6]! >> shift) & 3) + (((row[h + 6]! >> hbit) & 1) << 2) - 4) +
        a8[p + 14]! * (((row[q + 14]! >> shift) & 3) + (((row[h + 14]! >> hbit) & 1) << 2) - 4);
      const t7 =
        a8[p + 7]! * (((row[q + 7]! >> shift) & 3) + (((row[h + 7]! >> hbit) & 1) << 2) - 4) +
        a8[p + 15]! * (((row[q + 15]! >> shift) & 3) + (((row[h + 15]! >> hbit) & 1) << 2) - 4);
      const sc = q3Scales[g]!;
      i0 += sc * t0;
      i1 += sc * t1;
      i2 += sc * t2;
      i3 += sc * t3;
      i4 += sc * t4;
      i5 += sc * t5;
      i6 += sc * t6;
      i7 += sc * t7;
    }
    const d = fr(f16Table[row[o + 108]! | (row[o + 109]! << 8)]! * q8kScale(act, ao));
    s0 = fr(s0 + fr(d * fr(i0)));
    s1 = fr(s1 + fr(d * fr(i1)));
    s2 = fr(s2 + fr(d * fr(i2)));
    s3 = fr(s3 + fr(d * fr(i3)));
    s4 = fr(s4 + fr(d * fr(i4)));
    s5 = fr(s5 + fr(d * fr(i5)));
    s6 = fr(s6 + fr(d * fr(i6)));
    s7 = fr(s7 + fr(d * fr(i7)));
  }
  let sumf = fr(0 + s0);
  sumf = fr(sumf + s1);
  sumf = fr(sumf + s2);
  sumf = fr(sumf + s3);
  sumf = fr(sumf + s4);
  sumf = fr(sumf + s5);
  sumf = fr(sumf + s6);
  return fr(sumf + s7);
}

/**
 * The shared body of ggml_vec_dot_q4_K_q8_K and ggml_vec_dot_q5_K_q8_K: `qs` is the byte offset of
 * the 4-bit quants inside a block, `qh` that of the high bits (-1 for Q4_K).
 */
function dotScaleMin(
  row: Uint8Array,
  act: Uint8Array,
  n: number,
  blockBytes: number,
  qs: number,
  qh: number,
): number {
  const a8 = int8Of(act);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let s5 = 0;
  let s6 = 0;
  let s7 = 0;
  let sumf = 0;
  for (let b = 0, o = 0, ao = 0; b < n >> 8; b++, o += blockBytes, ao += 292) {
    let i0 = 0;
    let i1 = 0;
    let i2 = 0;
    let i3 = 0;
    let i4 = 0;
    let i5 = 0;
    let i6 = 0;
    let i7 = 0;
    let sumi = 0;
    for (let j = 0; j < 8; j++) {
      // Values 32j..32j+31: nibble 4(j&1) of qs[32(j>>1) + l], bit j of qh[l] on top.
      const q = o + qs + 32 * (j >> 1);
      const sh = 4 * (j & 1);
      const p = act.byteOffset + ao + 4 + 32 * j;
      let t0 = 0;
      let t1 = 0;
      let t2 = 0;
      let t3 = 0;
      let t4 = 0;
      let t5 = 0;
      let t6 = 0;
      let t7 = 0;
      if (qh < 0) {
        for (let l = 0; l < 32; l += 8) {
          t0 += a8[p + l]! * ((row[q + l]! >> sh) & 15);
          t1 += a8[p + l + 1]! * ((row[q + l + 1]! >> sh) & 15);
          t2 += a8[p + l + 2]! * ((row[q + l + 2]! >> sh) & 15);
          t3 += a8[p + l + 3]! * ((row[q + l + 3]! >> sh) & 15);
          t4 += a8[p + l + 4]! * ((row[q + l + 4]! >> sh) & 15);
          t5 += a8[p + l + 5]! * ((row[q + l + 5]! >> sh) & 15);
          t6 += a8[p + l + 6]! * ((row[q + l + 6]! >> sh) & 15);
          t7 += a8[p + l + 7]! * ((row[q + l + 7]! >> sh) & 15);
        }
      } else {
        const h = o + qh;
        for (let l = 0; l < 32; l += 8) {
          t0 += a8[p + l]! * (((row[q + l]! >> sh) & 15) | (((row[h + l]! >> j) & 1) << 4));
          t1 += a8[p + l + 1]! * (((row[q + l + 1]! >> sh) & 15) | (((row[h + l + 1]! >> j) & 1) << 4));
          t2 += a8[p + l + 2]! * (((row[q + l + 2]! >> sh) & 15) | (((row[h + l + 2]! >> j) & 1) << 4));
          t3 += a8[p + l + 3]! * (((row[q + l + 3]! >> sh) & 15) | (((row[h + l + 3]! >> j) & 1) << 4));
          t4 += a8[p + l + 4]! * (((row[q + l + 4]! >> sh) & 15) | (((row[h + l + 4]! >> j) & 1) << 4));
          t5 += a8[p + l + 5]! * (((row[q + l + 5]! >> sh) & 15) | (((row[h + l + 5]! >> j) & 1) << 4));
          t6 += a8[p + l + 6]! * (((row[q + l + 6]! >> sh) & 15) | (((row[h + l + 6]! >> j) & 1) << 4));
          t7 += a8[p + l + 7]! * (((row[q + l + 7]! >> sh) & 15) | (((row[h + l + 7]! >> j) & 1) << 4));
        }
      }
      const sc = scaleK4(row, o + 4, j);
      i0 += sc * t0;
      i1 += sc * t1;
      i2 += sc * t2;
      i3 += sc * t3;
      i4 += sc * t4;
      i5 += sc * t5;
      i6 += sc * t6;
      i7 += sc * t7;
      sumi += minK4(row, o + 4, j) * (bsum(act, ao, 2 * j) + bsum(act, ao, 2 * j + 1));
    }
    const d8 = q8kScale(act, ao);
    const d = fr(f16Table[row[o]! | (row[o + 1]! << 8)]! * d8);
    s0 = fr(s0 + fr(d * fr(i0)));
    s1 = fr(s1 + fr(d * fr(i1)));
    s2 = fr(s2 + fr(d * fr(i2)));
    s3 = fr(s3 + fr(d * fr(i3)));
    s4 = fr(s4 + fr(d * fr(i4)));
    s5 = fr(s5 + fr(d * fr(i5)));
    s6 = fr(s6 + fr(d * fr(i6)));
    s7 = fr(s7 + fr(d * fr(i7)));
    const dmin = fr(f16Table[row[o + 2]! | (row[o + 3]! << 8)]! * d8);
    sumf = fr(sumf - fr(dmin * fr(sumi)));
  }
  sumf = fr(sumf + s0);
  sumf = fr(sumf + s1);
  sumf = fr(sumf + s2);
  sumf = fr(sumf + s3);
  sumf = fr(sumf + s4);
  sumf = fr(sumf + s5);
  sumf = fr(sumf + s6);
  return fr(sumf + s7);
}

/** ggml_vec_dot_q4_K_q8_K: row (n/256 blocks of 144 bytes) . act (n/256 Q8_K blocks). */
export function dotQ4K(row: Uint8Array, act: Uint8Array, n: number): number {
  return dotScaleMin(row, act, n, 144, 16, -1);
}

/** ggml_vec_dot_q5_K_q8_K: row (n/256 blocks of 176 bytes) . act (n/256 Q8_K blocks). */
export function dotQ5K(row: Uint8Array, act: Uint8Array, n: number): number {
  return dotScaleMin(row, act, n, 176, 48, 16);
}

/** ggml_vec_dot_q6_K_q8_K: row (n/256 blocks of 210 bytes) . act (n/256 Q8_K blocks). */
export function dotQ6K(row: Uint8Array, act: Uint8Array, n: number): number {
  const a8 = int8Of(act);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let s5 = 0;
  let s6 = 0;
  let s7 = 0;
  for (let b = 0, o = 0, ao = 0; b < n >> 8; b++, o += 210, ao += 292) {
    let i0 = 0;
    let i1 = 0;
    let i2 = 0;
    let i3 = 0;
    let i4 = 0;
    let i5 = 0;
    let i6 = 0;
    let i7 = 0;
    for (let g = 0; g < 16; g++) {
      // Values 16g..16g+15 (scale g): c = g>>3, k = (g>>1)&3, l = 16(g&1) + 0..15.
      const k = (g >> 1) & 3;
      const ql = o + 64 * (g >> 3) + 32 * (k & 1) + 16 * (g & 1);
      const qh = o + 128 + 32 * (g >> 3) + 16 * (g & 1);
      const ls = 4 * (k >> 1);
      const hs = 2 * k;
      const p = act.byteOffset + ao + 4 + 16 * g;
      const t0 =
        a8[p]! * ((((row[ql]! >> ls) & 15) | (((row[qh]! >> hs) & 3) << 4)) - 32) +
        a8[p + 8]! * ((((row[ql + 8]! >> ls) & 15) | (((row[qh + 8]! >> hs) & 3) << 4)) - 32);
      const t1 =
        a8[p + 1]! * ((((row[ql + 1]! >> ls) & 15) | (((row[qh + 1]! >> hs) & 3) << 4)) - 32) +
        a8[p + 9]! * ((((row[ql + 9]! >> ls) & 15) | (((row[qh + 9]! >> hs) & 3) << 4)) - 32);
      const t2 =
        a8[p + 2]! * ((((row[ql + 2]! >> ls) & 15) | (((row[qh + 2]! >> hs) & 3) << 4)) - 32) +
        a8[p + 10]! * ((((row[ql + 10]! >> ls) & 15) | (((row[qh + 10]! >> hs) & 3) << 4)) - 32);
      const t3 =
        a8[p + 3]! * ((((row[ql + 3]! >> ls) & 15) | (((row[qh + 3]! >> hs) & 3) << 4)) - 32) +
        a8[p + 11]! * ((((row[ql + 11]! >> ls) & 15) | (((row[qh + 11]! >> hs) & 3) << 4)) - 32);
      const t4 =
        a8[p + 4]! * ((((row[ql + 4]! >> ls) & 15) | (((row[qh + 4]! >> hs) & 3) << 4)) - 32) +
        a8[p + 12]! * ((((row[ql + 12]! >> ls) & 15) | (((row[qh + 12]! >> hs) & 3) << 4)) - 32);
      const t5 =
        a8[p + 5]! * ((((row[ql + 5]! >> ls) & 15) | (((row[qh + 5]! >> hs) & 3) << 4)) - 32) +
        a8[p + 13]! * ((((row[ql + 13]! >> ls) & 15) | (((row[qh + 13]! >> hs) & 3) << 4)) - 32);
      const t6 =
        a8[p + 6]! * ((((row[ql + 6]! >> ls) & 15) | (((row[qh + 6]! >> hs) & 3) << 4)) - 32) +
        a8[p + 14]! * ((((row[ql + 14]! >> ls) & 15) | (((row[qh + 14]! >> hs) & 3) << 4)) - 32);
      const t7 =
        a8[p + 7]! * ((((row[ql + 7]! >> ls) & 15) | (((row[qh + 7]! >> hs) & 3) << 4)) - 32) +
        a8[p + 15]! * ((((row[ql + 15]! >> ls) & 15) | (((row[qh + 15]! >> hs) & 3) << 4)) - 32);
      const sc = (row[o + 192 + g]! << 24) >> 24;
      i0 += sc * t0;
      i1 += sc * t1;
      i2 += sc * t2;
      i3 += sc * t3;
      i4 += sc * t4;
      i5 += sc * t5;
      i6 += sc * t6;
      i7 += sc * t7;
    }
    const d = fr(f16Table[row[o + 208]! | (row[o + 209]! << 8)]! * q8kScale(act, ao));
    s0 = fr(s0 + fr(d * fr(i0)));
    s1 = fr(s1 + fr(d * fr(i1)));
    s2 = fr(s2 + fr(d * fr(i2)));
    s3 = fr(s3 + fr(d * fr(i3)));
    s4 = fr(s4 + fr(d * fr(i4)));
    s5 = fr(s5 + fr(d * fr(i5)));
    s6 = fr(s6 + fr(d * fr(i6)));
    s7 = fr(s7 + fr(d * fr(i7)));
  }
  let sumf = fr(0 + s0);
  sumf = fr(sumf + s1);
  sumf = fr(sumf + s2);
  sumf = fr(sumf + s3);
  sumf = fr(sumf + s4);
  sumf = fr(sumf + s5);
  sumf = fr(sumf + s6);
  return fr(sumf + s7);
}

type Dequantize = (src: Uint8Array, dst: Float32Array, n: number) => void;

/** The naive twin: dequantize the row and the Q8_K activation, multiply-add in float64. */
function dotViaFloats(dequantize: Dequantize, row: Uint8Array, act: Uint8Array, n: number): number {
  const w = new Float32Array(n);
  const a = new Float32Array(n);
  dequantize(row, w, n);
  dequantizeQ8K(act, a, n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += w[i]! * a[i]!;
  return fr(sum);
}

export const dotRefQ2K = (row: Uint8Array, act: Uint8Array, n: number): number =>
  dotViaFloats(dequantizeQ2K, row, act, n);
export const dotRefQ3K = (row: Uint8Array, act: Uint8Array, n: number): number =>
  dotViaFloats(dequantizeQ3K, row, act, n);
export const dotRefQ4K = (row: Uint8Array, act: Uint8Array, n: number): number =>
  dotViaFloats(dequantizeQ4K, row, act, n);
export const dotRefQ5K = (row: Uint8Array, act: Uint8Array, n: number): number =>
  dotViaFloats(dequantizeQ5K, row, act, n);
export const dotRefQ6K = (row: Uint8Array, act: Uint8Array, n: number): number =>
  dotViaFloats(dequantizeQ6K, row, act, n);
