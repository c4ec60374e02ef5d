/**
 * K-quant dequantizers, bit-exact with ggml's dequantize_row_q{2..6,8}_K (ggml/src/ggml-quants.c,
 * ggml 0.23.0), and the small block readers the quantizers and dot products share (packed
 * scales, the f32 scale of Q8_K). Block layouts: see k-quants.ts. Not here: quantizers
 * (k-quants-quantize.ts), dot products (k-quants-dot.ts).
 *
 * NOTE: float32 order. ggml computes `dl*q - ml` as two float32 operations (no FMA in the
 * reference build), so the product is rounded with Math.fround before the subtraction; the store
 * into the Float32Array does the last rounding.
 */
import { f16Table } from "../util/f16.ts";

const fr = Math.fround;
const QK_K = 256;

/** get_scale_min_k4's scale: 6-bit scale j (0..7) of the 12-byte packed Q4_K/Q5_K scales at q[o]. */
export function scaleK4(q: Uint8Array, o: number, j: number): number {
  return j < 4 ? q[o + j]! & 63 : (q[o + j + 4]! & 0xf) | ((q[o + j - 4]! >> 6) << 4);
}

/** get_scale_min_k4's min: 6-bit min j (0..7) of the 12-byte packed Q4_K/Q5_K scales at q[o]. */
export function minK4(q: Uint8Array, o: number, j: number): number {
  return j < 4 ? q[o + j + 4]! & 63 : (q[o + j + 4]! >> 4) | ((q[o + j]! >> 6) << 4);
}

/** dequantize_row_q2_K: n/256 blocks of 84 bytes -> y (n). */
export function dequantizeQ2K(src: Uint8Array, y: Float32Array, n: number): void {
  for (let b = 0, o = 0, yo = 0; b < n / QK_K; b++, o += 84, yo += QK_K) {
    const d = f16Table[src[o + 80]! | (src[o + 81]! << 8)]!;
    const dmin = f16Table[src[o + 82]! | (src[o + 83]! << 8)]!;
    for (let c = 0; c < 2; c++) {
      for (let hf = 0; hf < 2; hf++) {
        // Byte 32c + 16hf + l holds values 128c + 32k + 16hf + l at bits 2k (scale 8c + 2k + hf).
        const s = o + 8 * c + hf;
        const d0 = fr(d * (src[s]! & 0xf));
        const m0 = fr(dmin * (src[s]! >> 4));
        const d1 = fr(d * (src[s + 2]! & 0xf));
        const m1 = fr(dmin * (src[s + 2]! >> 4));
        const d2 = fr(d * (src[s + 4]! & 0xf));
        const m2 = fr(dmin * (src[s + 4]! >> 4));
        const d3 = fr(d * (src[s + 6]! & 0xf));
        const m3 = fr(dmin * (src[s + 6]! >> 4));
        const q = o + 16 + 32 * c + 16 * hf;
        const p = yo + 128 * c + 16 * hf;
        for (let l = 0; l < 16; l++) {
          const v = src[q + l]!;
          y[p + l] = fr(d0 * (v & 3)) - m0;
          y[p + 32 + l] = fr(d1 * ((v >> 2) & 3)) - m1;
          y[p + 64 + l] = fr(d2 * ((v >> 4) & 3)) - m2;
          y[p + 96 + l] = fr(d3 * (v >> 6)) - m3;
        }
      }
    }
  }
}

/** The 16 signed 6-bit scales of a Q3_K block (already minus 32), into out[0..16). */
export function scalesQ3K(src: Uint8Array, so: number, out: Int32Array): void {
  for (let j = 0; j < 16; j++) {
    const lo = j < 8 ? src[so + j]! & 0xf : src[so + j - 8]! >> 4;
    out[j] = (lo | (((src[so + 8 + (j & 3)]! >> (2 * (j >> 2))) & 3) << 4)) - 32;
  }
}

const q3Scales = new Int32Array(16);

/** dequantize_row_q3_K: n/256 blocks of 110 bytes -> y (n). */
export function dequantizeQ3K(src: Uint8Array, y: Float32Array, n: number): void {
  for (let b = 0, o = 0, yo = 0; b < n / QK_K; b++, o += 110, yo += QK_K) {
    const d = f16Table[src[o + 108]! | (src[o + 109]! << 8)]!;
    scalesQ3K(src, o + 96, q3Scales);
    for (let c = 0; c < 2; c++) {
      for (let hf = 0; hf < 2; hf++) {
        // Values 128c + 32k + 16hf + l (scale 8c + 2k + hf): bits 2k of qs[32c + 16hf + l], high
        // bit 4c + k of hmask[16hf + l] (clear means minus 4).
        const g = 8 * c + hf;
        const d0 = fr(d * q3Scales[g]!);
        const d1 = fr(d * q3Scales[g + 2]!);
        const d2 = fr(d * q3Scales[g + 4]!);
        const d3 = fr(d * q3Scales[g + 6]!);
        const q = o + 32 + 32 * c + 16 * hf;
        const h = o + 16 * hf;
        const hs = 4 * c;
        const p = yo + 128 * c + 16 * hf;
        for (let l = 0; l < 16; l++) {
          const v = src[q + l]!;
          const w = src[h + l]! >> hs;
          y[p + l] = d0 * (((v & 3) | ((w << 2) & 4)) - 4);
          y[p + 32 + l] = d1 * ((((v >> 2) & 3) | ((w << 1) & 4)) - 4);
          y[p + 64 + l] = d2 * ((((v >> 4) & 3) | (w & 4)) - 4);
          y[p + 96 + l] = d3 * (((v >> 6) | ((w >> 1) & 4)) - 4);
        }
      }
    }
  }
}

/** dequantize_row_q4_K: n/256 blocks of 144 bytes -> y (n). */
export function dequantizeQ4K(src: Uint8Array, y: Float32Array, n: number): void {
  for (let b = 0, o = 0, yo = 0; b < n / QK_K; b++, o += 144, yo += QK_K) {
    const d = f16Table[src[o]! | (src[o + 1]! << 8)]!;
    const dmin = f16Table[src[o + 2]! | (src[o + 3]! << 8)]!;
    for (let j = 0; j < 4; j++) {
      const d1 = fr(d * scaleK4(src, o + 4, 2 * j));
      const m1 = fr(dmin * minK4(src, o + 4, 2 * j));
      const d2 = fr(d * scaleK4(src, o + 4, 2 * j + 1));
      const m2 = fr(dmin * minK4(src, o + 4, 2 * j + 1));
      const q = o + 16 + 32 * j;
      const p = yo + 64 * j;
      for (let l = 0; l < 32; l++) {
        const v = src[q + l]!;
        y[p + l] = fr(d1 * (v & 0xf)) - m1;
        y[p + 32 + l] = fr(d2 * (v >> 4)) - m2;
      }
    }
  }
}

/** dequantize_row_q5_K: n/256 blocks of 176 bytes -> y (n). */
export function dequantizeQ5K(src: Uint8Array, y: Float32Array, n: number): void {
  for (let b = 0, o = 0, yo = 0; b < n / QK_K; b++, o += 176, yo += QK_K) {
    const d = f16Table[src[o]! | (src[o + 1]! << 8)]!;
    const dmin = f16Table[src[o + 2]! | (src[o + 3]! << 8)]!;
    for (let j = 0; j < 4; j++) {
      const d1 = fr(d * scaleK4(src, o + 4, 2 * j));
      const m1 = fr(dmin * minK4(src, o + 4, 2 * j));
      const d2 = fr(d * scaleK4(src, o + 4, 2 * j + 1));
      const m2 = fr(dmin * minK4(src, o + 4, 2 * j + 1));
      const q = o + 48 + 32 * j;
      const h = o + 16;
      const s = 2 * j;
      const p = yo + 64 * j;
      for (let l = 0; l < 32; l++) {
        // Bits 2j and 2j + 1 of qh[l] are bit 4 of values 64j + l and 64j + 32 + l.
        const v = src[q + l]!;
        const hb = src[h + l]! >> s;
        y[p + l] = fr(d1 * ((v & 0xf) | ((hb << 4) & 16))) - m1;
        y[p + 32 + l] = fr(d2 * ((v >> 4) | ((hb << 3) & 16))) - m2;
      }
    }
  }
}

/** dequantize_row_q6_K: n/256 blocks of 210 bytes -> y (n). */
export function dequantizeQ6K(src: Uint8Array, y: Float32Array, n: number): void {
  for (let b = 0, o = 0, yo = 0; b < n / QK_K; b++, o += 210, yo += QK_K) {
    const d = f16Table[src[o + 208]! | (src[o + 209]! << 8)]!;
    for (let c = 0; c < 2; c++) {
      for (let hf = 0; hf < 2; hf++) {
        // Values 128c + 32k + 16hf + l (scale 8c + 2k + hf): low 4 bits in
        // ql[64c + 32(k&1) + 16hf + l] at bit 4(k>>1), high 2 bits in qh[32c + 16hf + l] at bit 2k.
        const s = o + 192 + 8 * c + hf;
        const d0 = fr(d * ((src[s]! << 24) >> 24));
        const d1 = fr(d * ((src[s + 2]! << 24) >> 24));
        const d2 = fr(d * ((src[s + 4]! << 24) >> 24));
        const d3 = fr(d * ((src[s + 6]! << 24) >> 24));
        const ql = o + 64 * c + 16 * hf;
        const qh = o + 128 + 32 * c + 16 * hf;
        const p = yo + 128 * c + 16 * hf;
        for (let l = 0; l < 16; l++) {
          const a = src[ql + l]!;
          const e = src[ql + 32 + l]!;
          const h = src[qh + l]!;
          y[p + l] = d0 * (((a & 15) | ((h & 3) << 4)) - 32);
          y[p + 32 + l] = d1 * (((e & 15) | ((h << 2) & 0x30)) - 32);
          y[p + 64 + l] = d2 * (((a >> 4) | (h & 0x30)) - 32);
          y[p + 96 + l] = d3 * (((e >> 4) | ((h >> 2) & 0x30)) - 32);
        }
      }
    }
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 `d` of the Q8_K block at byte o. */
export function q8kScale(src: Uint8Array, o: number): number {
  u32[0] = src[o]! | (src[o + 1]! << 8) | (src[o + 2]! << 16) | (src[o + 3]! << 24);
  return f32[0]!;
}

let i8Buffer: ArrayBufferLike | undefined;
let i8View: Int8Array<ArrayBufferLike> = new Int8Array(0);

/**
 * An Int8Array over all of a's buffer (index it with a.byteOffset + i), reused while the buffer
 * is, so reading Q8_K quants allocates nothing per call. NOTE: it keeps the last buffer alive.
 */
export function int8Of(a: Uint8Array): Int8Array<ArrayBufferLike> {
  if (a.buffer !== i8Buffer) {
    i8View = new Int8Array(a.buffer);
    i8Buffer = a.buffer;
  }
  return i8View;
}

/** dequantize_row_q8_K: n/256 blocks of 292 bytes -> y (n). */
export function dequantizeQ8K(src: Uint8Array, y: Float32Array, n: number): void {
  const q8 = int8Of(src);
  for (let b = 0, o = 0, yo = 0; b < n / QK_K; b++, o += 292, yo += QK_K) {
    const d = q8kScale(src, o);
    const p = src.byteOffset + o + 4;
    for (let l = 0; l < QK_K; l++) y[yo + l] = d * q8[p + l]!;
  }
}
