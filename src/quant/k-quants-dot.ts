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
 * Speed: the hot loops are int32 only (`| 0` lets V8 drop overflow checks), read each row byte
 * once and take every value packed in it (both nibbles, or two 2-bit fields and their high bits)
 * into 16 accumulators (t = one scale group, u = the other, one per lane), unrolled by lane.
 * Activations are read through an Int8Array over the activation's whole buffer, cached per buffer
 * (int8Of) so that a matrix-vector product allocates nothing.
 */
import { f16Table } from "../util/f16.ts";
import {
  dequantizeQ2K,
  dequantizeQ3K,
  dequantizeQ4K,
  dequantizeQ5K,
  dequantizeQ6K,
  dequantizeQ8K,
  int8Of,
  minK4,
  q8kScale,
  scaleK4,
  scalesQ3K,
} from "./k-quants-dequantize.ts";

const fr = Math.fround;

/** bsums[j] (int16) of the Q8_K block at byte o. */
function bsum(act: Uint8Array, o: number, j: number): number {
  const p = o + 260 + 2 * j;
  return ((act[p]! | (act[p + 1]! << 8)) << 16) >> 16;
}

const q3Scales = new Int32Array(16);

/** ggml_vec_dot_q2_K_q8_K: row (n/256 blocks of 84 bytes) . act (n/256 Q8_K blocks). */
export function dotQ2K(row: Uint8Array, act: Uint8Array, n: number): number {
  const a8 = int8Of(act);
  const ab = act.byteOffset;
  let sumf = 0;
  for (let b = 0, o = 0, ao = 0; b < n >> 8; b++, o += 84, ao += 292) {
    let summs = 0;
    for (let g = 0; g < 16; g++) summs += bsum(act, ao, g) * (row[o + g]! >> 4);
    let isum = 0;
    for (let c = 0; c < 2; c++) {
      for (let h = 0; h < 2; h++) {
        // Byte 32c + 16h + l holds values 128c + 32k + 16h + l (k = 0..3, scale 8c + 2k + h).
        const q = o + 16 + 32 * c + 16 * h;
        const p = ab + ao + 4 + 128 * c + 16 * h;
        let t0 = 0;
        let t1 = 0;
        let t2 = 0;
        let t3 = 0;
        for (let l = 0; l < 16; l += 2) {
          let v = row[q + l]!;
          t0 = (t0 + (v & 3) * a8[p + l]!) | 0;
          t1 = (t1 + ((v >> 2) & 3) * a8[p + l + 32]!) | 0;
          t2 = (t2 + ((v >> 4) & 3) * a8[p + l + 64]!) | 0;
          t3 = (t3 + (v >> 6) * a8[p + l + 96]!) | 0;
          v = row[q + l + 1]!;
          t0 = (t0 + (v & 3) * a8[p + l + 1]!) | 0;
          t1 = (t1 + ((v >> 2) & 3) * a8[p + l + 33]!) | 0;
          t2 = (t2 + ((v >> 4) & 3) * a8[p + l + 65]!) | 0;
          t3 = (t3 + (v >> 6) * a8[p + l + 97]!) | 0;
        }
        const sc = o + 8 * c + h;
        isum +=
          (row[sc]! & 15) * t0 +
          (row[sc + 2]! & 15) * t1 +
          (row[sc + 4]! & 15) * t2 +
          (row[sc + 6]! & 15) * t3;
      }
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
  const ab = act.byteOffset;
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
    for (let g = 0; g < 16; g += 2) {
      // Scale groups g0 = 8c + 2k + hf and g0 + 2 (k and k + 1, k even), values 16 g0 + l and
      // 16 g0 + 32 + l: 2-bit fields k, k + 1 of qs[32c + 16hf + l], hmask bits 4c + k, 4c + k + 1.
      const c = g >> 3;
      const k = (g >> 1) & 2;
      const hf = (g >> 1) & 1;
      const g0 = 8 * c + 2 * k + hf;
      const q0 = o + 32 + 32 * c + 16 * hf;
      const h0 = o + 16 * hf;
      const p0 = ab + ao + 4 + 16 * g0;
      const s = 2 * k;
      const hs = 4 * c + k;
      let t0 = 0;
      let t1 = 0;
      let t2 = 0;
      let t3 = 0;
      let t4 = 0;
      let t5 = 0;
      let t6 = 0;
      let t7 = 0;
      let u0 = 0;
      let u1 = 0;
      let u2 = 0;
      let u3 = 0;
      let u4 = 0;
      let u5 = 0;
      let u6 = 0;
      let u7 = 0;
      for (let l = 0; l < 16; l += 8) {
        const q = q0 + l;
        const h = h0 + l;
        const p = p0 + l;
        let v = row[q]! >> s;
        let w = row[h]! >> hs;
        t0 = (t0 + (((v & 3) | ((w << 2) & 4)) - 4) * a8[p]!) | 0;
        u0 = (u0 + ((((v >> 2) & 3) | ((w << 1) & 4)) - 4) * a8[p + 32]!) | 0;
        v = row[q + 1]! >> s;
        w = row[h + 1]! >> hs;
        t1 = (t1 + (((v & 3) | ((w << 2) & 4)) - 4) * a8[p + 1]!) | 0;
        u1 = (u1 + ((((v >> 2) & 3) | ((w << 1) & 4)) - 4) * a8[p + 33]!) | 0;
        v = row[q + 2]! >> s;
        w = row[h + 2]! >> hs;
        t2 = (t2 + (((v & 3) | ((w << 2) & 4)) - 4) * a8[p + 2]!) | 0;
        u2 = (u2 + ((((v >> 2) & 3) | ((w << 1) & 4)) - 4) * a8[p + 34]!) | 0;
        v = row[q + 3]! >> s;
        w = row[h + 3]! >> hs;
        t3 = (t3 + (((v & 3) | ((w << 2) & 4)) - 4) * a8[p + 3]!) | 0;
        u3 = (u3 + ((((v >> 2) & 3) | ((w << 1) & 4)) - 4) * a8[p + 35]!) | 0;
        v = row[q + 4]! >> s;
        w = row[h + 4]! >> hs;
        t4 = (t4 + (((v & 3) | ((w << 2) & 4)) - 4) * a8[p + 4]!) | 0;
        u4 = (u4 + ((((v >> 2) & 3) | ((w << 1) & 4)) - 4) * a8[p + 36]!) | 0;
        v = row[q + 5]! >> s;
        w = row[h + 5]! >> hs;
        t5 = (t5 + (((v & 3) | ((w << 2) & 4)) - 4) * a8[p + 5]!) | 0;
        u5 = (u5 + ((((v >> 2) & 3) | ((w << 1) & 4)) - 4) * a8[p + 37]!) | 0;
        v = row[q + 6]! >> s;
        w = row[h + 6]! >> hs;
        t6 = (t6 + (((v & 3) | ((w << 2) & 4)) - 4) * a8[p + 6]!) | 0;
        u6 = (u6 + ((((v >> 2) & 3) | ((w << 1) & 4)) - 4) * a8[p + 38]!) | 0;
        v = row[q + 7]! >> s;
        w = row[h + 7]! >> hs;
        t7 = (t7 + (((v & 3) | ((w << 2) & 4)) - 4) * a8[p + 7]!) | 0;
        u7 = (u7 + ((((v >> 2) & 3) | ((w << 1) & 4)) - 4) * a8[p + 39]!) | 0;
      }
      const sa = q3Scales[g0]!;
      const sb = q3Scales[g0 + 2]!;
      i0 = (i0 + sa * t0 + sb * u0) | 0;
      i1 = (i1 + sa * t1 + sb * u1) | 0;
      i2 = (i2 + sa * t2 + sb * u2) | 0;
      i3 = (i3 + sa * t3 + sb * u3) | 0;
      i4 = (i4 + sa * t4 + sb * u4) | 0;
      i5 = (i5 + sa * t5 + sb * u5) | 0;
      i6 = (i6 + sa * t6 + sb * u6) | 0;
      i7 = (i7 + sa * t7 + sb * u7) | 0;
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

/** ggml_vec_dot_q4_K_q8_K: row (n/256 blocks of 144 bytes) . act (n/256 Q8_K blocks). */
export function dotQ4K(row: Uint8Array, act: Uint8Array, n: number): number {
  const a8 = int8Of(act);
  const ab = act.byteOffset;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let s5 = 0;
  let s6 = 0;
  let s7 = 0;
  let sumf = 0;
  for (let b = 0, o = 0, ao = 0; b < n >> 8; b++, o += 144, ao += 292) {
    let i0 = 0;
    let i1 = 0;
    let i2 = 0;
    let i3 = 0;
    let i4 = 0;
    let i5 = 0;
    let i6 = 0;
    let i7 = 0;
    let sumi = 0;
    for (let j = 0; j < 4; j++) {
      // Values 64j + l (scale 2j, low nibbles) and 64j + 32 + l (scale 2j + 1, high nibbles).
      const q0 = o + 16 + 32 * j;
      const p0 = ab + ao + 4 + 64 * j;
      let t0 = 0;
      let t1 = 0;
      let t2 = 0;
      let t3 = 0;
      let t4 = 0;
      let t5 = 0;
      let t6 = 0;
      let t7 = 0;
      let u0 = 0;
      let u1 = 0;
      let u2 = 0;
      let u3 = 0;
      let u4 = 0;
      let u5 = 0;
      let u6 = 0;
      let u7 = 0;
      for (let l = 0; l < 32; l += 8) {
        const q = q0 + l;
        const p = p0 + l;
        let v = row[q]!;
        t0 = (t0 + (v & 15) * a8[p]!) | 0;
        u0 = (u0 + (v >> 4) * a8[p + 32]!) | 0;
        v = row[q + 1]!;
        t1 = (t1 + (v & 15) * a8[p + 1]!) | 0;
        u1 = (u1 + (v >> 4) * a8[p + 33]!) | 0;
        v = row[q + 2]!;
        t2 = (t2 + (v & 15) * a8[p + 2]!) | 0;
        u2 = (u2 + (v >> 4) * a8[p + 34]!) | 0;
        v = row[q + 3]!;
        t3 = (t3 + (v & 15) * a8[p + 3]!) | 0;
        u3 = (u3 + (v >> 4) * a8[p + 35]!) | 0;
        v = row[q + 4]!;
        t4 = (t4 + (v & 15) * a8[p + 4]!) | 0;
        u4 = (u4 + (v >> 4) * a8[p + 36]!) | 0;
        v = row[q + 5]!;
        t5 = (t5 + (v & 15) * a8[p + 5]!) | 0;
        u5 = (u5 + (v >> 4) * a8[p + 37]!) | 0;
        v = row[q + 6]!;
        t6 = (t6 + (v & 15) * a8[p + 6]!) | 0;
        u6 = (u6 + (v >> 4) * a8[p + 38]!) | 0;
        v = row[q + 7]!;
        t7 = (t7 + (v & 15) * a8[p + 7]!) | 0;
        u7 = (u7 + (v >> 4) * a8[p + 39]!) | 0;
      }
      const sa = scaleK4(row, o + 4, 2 * j);
      const sb = scaleK4(row, o + 4, 2 * j + 1);
      i0 = (i0 + sa * t0 + sb * u0) | 0;
      i1 = (i1 + sa * t1 + sb * u1) | 0;
      i2 = (i2 + sa * t2 + sb * u2) | 0;
      i3 = (i3 + sa * t3 + sb * u3) | 0;
      i4 = (i4 + sa * t4 + sb * u4) | 0;
      i5 = (i5 + sa * t5 + sb * u5) | 0;
      i6 = (i6 + sa * t6 + sb * u6) | 0;
      i7 = (i7 + sa * t7 + sb * u7) | 0;
      sumi +=
        minK4(row, o + 4, 2 * j) * (bsum(act, ao, 4 * j) + bsum(act, ao, 4 * j + 1)) +
        minK4(row, o + 4, 2 * j + 1) * (bsum(act, ao, 4 * j + 2) + bsum(act, ao, 4 * j + 3));
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

/** ggml_vec_dot_q5_K_q8_K: row (n/256 blocks of 176 bytes) . act (n/256 Q8_K blocks). */
export function dotQ5K(row: Uint8Array, act: Uint8Array, n: number): number {
  const a8 = int8Of(act);
  const ab = act.byteOffset;
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let s5 = 0;
  let s6 = 0;
  let s7 = 0;
  let sumf = 0;
  for (let b = 0, o = 0, ao = 0; b < n >> 8; b++, o += 176, ao += 292) {
    let i0 = 0;
    let i1 = 0;
    let i2 = 0;
    let i3 = 0;
    let i4 = 0;
    let i5 = 0;
    let i6 = 0;
    let i7 = 0;
    let sumi = 0;
    for (let j = 0; j < 4; j++) {
      // Values 64j + l (scale 2j, low nibbles) and 64j + 32 + l (scale 2j + 1, high nibbles) with
      // bits 2j and 2j + 1 of qh[l] on top.
      const q0 = o + 48 + 32 * j;
      const p0 = ab + ao + 4 + 64 * j;
      const s = 2 * j;
      let t0 = 0;
      let t1 = 0;
      let t2 = 0;
      let t3 = 0;
      let t4 = 0;
      let t5 = 0;
      let t6 = 0;
      let t7 = 0;
      let u0 = 0;
      let u1 = 0;
      let u2 = 0;
      let u3 = 0;
      let u4 = 0;
      let u5 = 0;
      let u6 = 0;
      let u7 = 0;
      for (let l = 0; l < 32; l += 8) {
        const q = q0 + l;
        const h = o + 16 + l;
        const p = p0 + l;
        let v = row[q]!;
        let w = row[h]! >> s;
        t0 = (t0 + ((v & 15) | ((w << 4) & 16)) * a8[p]!) | 0;
        u0 = (u0 + ((v >> 4) | ((w << 3) & 16)) * a8[p + 32]!) | 0;
        v = row[q + 1]!;
        w = row[h + 1]! >> s;
        t1 = (t1 + ((v & 15) | ((w << 4) & 16)) * a8[p + 1]!) | 0;
        u1 = (u1 + ((v >> 4) | ((w << 3) & 16)) * a8[p + 33]!) | 0;
        v = row[q + 2]!;
        w = row[h + 2]! >> s;
        t2 = (t2 + ((v & 15) | ((w << 4) & 16)) * a8[p + 2]!) | 0;
        u2 = (u2 + ((v >> 4) | ((w << 3) & 16)) * a8[p + 34]!) | 0;
        v = row[q + 3]!;
        w = row[h + 3]! >> s;
        t3 = (t3 + ((v & 15) | ((w << 4) & 16)) * a8[p + 3]!) | 0;
        u3 = (u3 + ((v >> 4) | ((w << 3) & 16)) * a8[p + 35]!) | 0;
        v = row[q + 4]!;
        w = row[h + 4]! >> s;
        t4 = (t4 + ((v & 15) | ((w << 4) & 16)) * a8[p + 4]!) | 0;
        u4 = (u4 + ((v >> 4) | ((w << 3) & 16)) * a8[p + 36]!) | 0;
        v = row[q + 5]!;
        w = row[h + 5]! >> s;
        t5 = (t5 + ((v & 15) | ((w << 4) & 16)) * a8[p + 5]!) | 0;
        u5 = (u5 + ((v >> 4) | ((w << 3) & 16)) * a8[p + 37]!) | 0;
        v = row[q + 6]!;
        w = row[h + 6]! >> s;
        t6 = (t6 + ((v & 15) | ((w << 4) & 16)) * a8[p + 6]!) | 0;
        u6 = (u6 + ((v >> 4) | ((w << 3) & 16)) * a8[p + 38]!) | 0;
        v = row[q + 7]!;
        w = row[h + 7]! >> s;
        t7 = (t7 + ((v & 15) | ((w << 4) & 16)) * a8[p + 7]!) | 0;
        u7 = (u7 + ((v >> 4) | ((w << 3) & 16)) * a8[p + 39]!) | 0;
      }
      const sa = scaleK4(row, o + 4, 2 * j);
      const sb = scaleK4(row, o + 4, 2 * j + 1);
      i0 = (i0 + sa * t0 + sb * u0) | 0;
      i1 = (i1 + sa * t1 + sb * u1) | 0;
      i2 = (i2 + sa * t2 + sb * u2) | 0;
      i3 = (i3 + sa * t3 + sb * u3) | 0;
      i4 = (i4 + sa * t4 + sb * u4) | 0;
      i5 = (i5 + sa * t5 + sb * u5) | 0;
      i6 = (i6 + sa * t6 + sb * u6) | 0;
      i7 = (i7 + sa * t7 + sb * u7) | 0;
      sumi +=
        minK4(row, o + 4, 2 * j) * (bsum(act, ao, 4 * j) + bsum(act, ao, 4 * j + 1)) +
        minK4(row, o + 4, 2 * j + 1) * (bsum(act, ao, 4 * j + 2) + bsum(act, ao, 4 * j + 3));
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

/** ggml_vec_dot_q6_K_q8_K: row (n/256 blocks of 210 bytes) . act (n/256 Q8_K blocks). */
export function dotQ6K(row: Uint8Array, act: Uint8Array, n: number): number {
  const a8 = int8Of(act);
  const ab = act.byteOffset;
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
    for (let c = 0; c < 2; c++) {
      for (let hf = 0; hf < 2; hf++) {
        // Values 128c + 32k + 16hf + l, scale 8c + 2k + hf: low 4 bits in ql[64c + 32(k&1) + 16hf + l]
        // at bit 4(k>>1), high 2 bits in qh[32c + 16hf + l] at bit 2k. Pass A: k = 0, 2; pass B: k = 1, 3.
        const g0 = 8 * c + hf;
        const h0 = o + 128 + 32 * c + 16 * hf;
        const p0 = ab + ao + 4 + 128 * c + 16 * hf;
        {
          const q0 = o + 64 * c + 16 * hf;
          let t0 = 0;
          let t1 = 0;
          let t2 = 0;
          let t3 = 0;
          let t4 = 0;
          let t5 = 0;
          let t6 = 0;
          let t7 = 0;
          let u0 = 0;
          let u1 = 0;
          let u2 = 0;
          let u3 = 0;
          let u4 = 0;
          let u5 = 0;
          let u6 = 0;
          let u7 = 0;
          for (let l = 0; l < 16; l += 8) {
            const q = q0 + l;
            const h = h0 + l;
            const p = p0 + l;
            let v = row[q]!;
            let w = row[h]!;
            t0 = (t0 + (((v & 15) | ((w & 3) << 4)) - 32) * a8[p]!) | 0;
            u0 = (u0 + (((v >> 4) | (w & 0x30)) - 32) * a8[p + 64]!) | 0;
            v = row[q + 1]!;
            w = row[h + 1]!;
            t1 = (t1 + (((v & 15) | ((w & 3) << 4)) - 32) * a8[p + 1]!) | 0;
            u1 = (u1 + (((v >> 4) | (w & 0x30)) - 32) * a8[p + 65]!) | 0;
            v = row[q + 2]!;
            w = row[h + 2]!;
            t2 = (t2 + (((v & 15) | ((w & 3) << 4)) - 32) * a8[p + 2]!) | 0;
            u2 = (u2 + (((v >> 4) | (w & 0x30)) - 32) * a8[p + 66]!) | 0;
            v = row[q + 3]!;
            w = row[h + 3]!;
            t3 = (t3 + (((v & 15) | ((w & 3) << 4)) - 32) * a8[p + 3]!) | 0;
            u3 = (u3 + (((v >> 4) | (w & 0x30)) - 32) * a8[p + 67]!) | 0;
            v = row[q + 4]!;
            w = row[h + 4]!;
            t4 = (t4 + (((v & 15) | ((w & 3) << 4)) - 32) * a8[p + 4]!) | 0;
            u4 = (u4 + (((v >> 4) | (w & 0x30)) - 32) * a8[p + 68]!) | 0;
            v = row[q + 5]!;
            w = row[h + 5]!;
            t5 = (t5 + (((v & 15) | ((w & 3) << 4)) - 32) * a8[p + 5]!) | 0;
            u5 = (u5 + (((v >> 4) | (w & 0x30)) - 32) * a8[p + 69]!) | 0;
            v = row[q + 6]!;
            w = row[h + 6]!;
            t6 = (t6 + (((v & 15) | ((w & 3) << 4)) - 32) * a8[p + 6]!) | 0;
            u6 = (u6 + (((v >> 4) | (w & 0x30)) - 32) * a8[p + 70]!) | 0;
            v = row[q + 7]!;
            w = row[h + 7]!;
            t7 = (t7 + (((v & 15) | ((w & 3) << 4)) - 32) * a8[p + 7]!) | 0;
            u7 = (u7 + (((v >> 4) | (w & 0x30)) - 32) * a8[p + 71]!) | 0;
          }
          const sa = (row[o + 192 + g0]! << 24) >> 24;
          const sb = (row[o + 196 + g0]! << 24) >> 24;
          i0 = (i0 + sa * t0 + sb * u0) | 0;
          i1 = (i1 + sa * t1 + sb * u1) | 0;
          i2 = (i2 + sa * t2 + sb * u2) | 0;
          i3 = (i3 + sa * t3 + sb * u3) | 0;
          i4 = (i4 + sa * t4 + sb * u4) | 0;
          i5 = (i5 + sa * t5 + sb * u5) | 0;
          i6 = (i6 + sa * t6 + sb * u6) | 0;
          i7 = (i7 + sa * t7 + sb * u7) | 0;
        }
        {
          const q0 = o + 64 * c + 32 + 16 * hf;
          let t0 = 0;
          let t1 = 0;
          let t2 = 0;
          let t3 = 0;
          let t4 = 0;
          let t5 = 0;
          let t6 = 0;
          let t7 = 0;
          let u0 = 0;
          let u1 = 0;
          let u2 = 0;
          let u3 = 0;
          let u4 = 0;
          let u5 = 0;
          let u6 = 0;
          let u7 = 0;
          for (let l = 0; l < 16; l += 8) {
            const q = q0 + l;
            const h = h0 + l;
            const p = p0 + 32 + l;
            let v = row[q]!;
            let w = row[h]!;
            t0 = (t0 + (((v & 15) | ((w << 2) & 0x30)) - 32) * a8[p]!) | 0;
            u0 = (u0 + (((v >> 4) | ((w >> 2) & 0x30)) - 32) * a8[p + 64]!) | 0;
            v = row[q + 1]!;
            w = row[h + 1]!;
            t1 = (t1 + (((v & 15) | ((w << 2) & 0x30)) - 32) * a8[p + 1]!) | 0;
            u1 = (u1 + (((v >> 4) | ((w >> 2) & 0x30)) - 32) * a8[p + 65]!) | 0;
            v = row[q + 2]!;
            w = row[h + 2]!;
            t2 = (t2 + (((v & 15) | ((w << 2) & 0x30)) - 32) * a8[p + 2]!) | 0;
            u2 = (u2 + (((v >> 4) | ((w >> 2) & 0x30)) - 32) * a8[p + 66]!) | 0;
            v = row[q + 3]!;
            w = row[h + 3]!;
            t3 = (t3 + (((v & 15) | ((w << 2) & 0x30)) - 32) * a8[p + 3]!) | 0;
            u3 = (u3 + (((v >> 4) | ((w >> 2) & 0x30)) - 32) * a8[p + 67]!) | 0;
            v = row[q + 4]!;
            w = row[h + 4]!;
            t4 = (t4 + (((v & 15) | ((w << 2) & 0x30)) - 32) * a8[p + 4]!) | 0;
            u4 = (u4 + (((v >> 4) | ((w >> 2) & 0x30)) - 32) * a8[p + 68]!) | 0;
            v = row[q + 5]!;
            w = row[h + 5]!;
            t5 = (t5 + (((v & 15) | ((w << 2) & 0x30)) - 32) * a8[p + 5]!) | 0;
            u5 = (u5 + (((v >> 4) | ((w >> 2) & 0x30)) - 32) * a8[p + 69]!) | 0;
            v = row[q + 6]!;
            w = row[h + 6]!;
            t6 = (t6 + (((v & 15) | ((w << 2) & 0x30)) - 32) * a8[p + 6]!) | 0;
            u6 = (u6 + (((v >> 4) | ((w >> 2) & 0x30)) - 32) * a8[p + 70]!) | 0;
            v = row[q + 7]!;
            w = row[h + 7]!;
            t7 = (t7 + (((v & 15) | ((w << 2) & 0x30)) - 32) * a8[p + 7]!) | 0;
            u7 = (u7 + (((v >> 4) | ((w >> 2) & 0x30)) - 32) * a8[p + 71]!) | 0;
          }
          const sa = (row[o + 194 + g0]! << 24) >> 24;
          const sb = (row[o + 198 + g0]! << 24) >> 24;
          i0 = (i0 + sa * t0 + sb * u0) | 0;
          i1 = (i1 + sa * t1 + sb * u1) | 0;
          i2 = (i2 + sa * t2 + sb * u2) | 0;
          i3 = (i3 + sa * t3 + sb * u3) | 0;
          i4 = (i4 + sa * t4 + sb * u4) | 0;
          i5 = (i5 + sa * t5 + sb * u5) | 0;
          i6 = (i6 + sa * t6 + sb * u6) | 0;
          i7 = (i7 + sa * t7 + sb * u7) | 0;
        }
      }
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
