/**
 * K-quant reference quantizers: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K (the activation format of the
 * K-quant dot products), bit-exact with ggml's quantize_row_q{2..6,8}_K_ref (ggml/src/ggml-quants.c,
 * ggml 0.23.0) and their helpers nearest_int, make_qkx2_quants, make_q3_quants, make_qx_quants.
 * Block layouts are described in k-quants.ts. Not here: dequantizers (k-quants-dequantize.ts),
 * dot products (k-quants-dot.ts), the imatrix-weighted quantize_row_*_impl variants.
 *
 * NOTE: ggml computes in C float (binary32) and was built for baseline x86-64 (SSE2, no FMA), so
 * every float operation rounds to float32. Each one is rounded here with Math.fround, in the
 * order of the C source: `a*b*c` is (a*b)*c, `s += w*l*l` is s + ((w*l)*l). An operation on two
 * float32 values done in float64 and then rounded to float32 gives the float32 result exactly
 * (53 >= 2*24+2, so double rounding is harmless for + - * / sqrt).
 */
import { f16Table, f32ToF16 } from "../util/f16.ts";
import { minK4, scaleK4 } from "./k-quants-dequantize.ts";

const fr = Math.fround;

const QK_K = 256;
const GROUP_MAX_EPS = fr(1e-15);
const TENTH = fr(0.1);

const nearestF32 = new Float32Array(1);
const nearestI32 = new Int32Array(nearestF32.buffer);

/**
 * ggml nearest_int: adds 1.5 * 2^23 in float32 and reads the mantissa, so a tie rounds to even.
 * `f` must already be a float32 value. Outside |f| <= 2^22 ggml's trick returns garbage; it is
 * reproduced bit for bit, since ggml asserts nothing in a release build.
 */
export function nearestInt(f: number): number {
  const v = fr(f + 12582912);
  if (v >= 8388608 && v < 16777216) return v - 12582912;
  nearestF32[0] = v;
  return (nearestI32[0]! & 0x7fffff) - 0x400000;
}

function writeF16(dst: Uint8Array, o: number, value: number): void {
  const h = f32ToF16(value);
  dst[o] = h & 0xff;
  dst[o + 1] = h >>> 8;
}

function readF16(src: Uint8Array, o: number): number {
  return f16Table[src[o]! | (src[o + 1]! << 8)]!;
}

// Scratch shared by the quantizers (they are synchronous and never re-entered).
const L = new Uint8Array(QK_K);
const L8 = new Int8Array(QK_K);
const laux = new Uint8Array(32);
/** fr(x[i] - min) for the current min of makeQkx2Quants. */
const xmin = new Float32Array(32);
const weights = new Float32Array(32);
const scales = new Float32Array(QK_K / 16);
const mins = new Float32Array(QK_K / 16);
/** Second output of makeQkx2Quants (ggml's `*the_min`). */
let qkx2Min = 0;

/**
 * make_qkx2_quants: asymmetric quantization of x[xo..xo+n) to 0..nmax with a weighted search over
 * nstep+1 candidate scales. Writes L[lo..lo+n); returns the scale, the min goes to qkx2Min.
 */
function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  xo: number,
  w: Float32Array,
  lo: number,
  rmin: number,
  rdelta: number,
  nstep: number,
  useMad: boolean,
): number {
  let min = x[xo]!;
  let max = min;
  let sumW = w[0]!;
  let sumX = fr(sumW * min);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const wi = w[i]!;
    sumW = fr(sumW + wi);
    sumX = fr(sumX + fr(wi * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    qkx2Min = -min;
    return 0;
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const xm = fr(xi - min);
    xmin[i] = xm;
    const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * xm))));
    L[lo + i] = l;
    laux[i] = l;
    let diff = fr(fr(fr(scale * l) + min) - xi);
    diff = useMad ? Math.abs(diff) : fr(diff * diff);
    bestError = fr(bestError + fr(w[i]! * diff));
  }
  if (nstep < 1) {
    qkx2Min = -min;
    return scale;
  }
  // NOTE: a candidate whose levels equal the previous candidate's gets the same sums, scale, min
  // and error, so it cannot win (ties do not replace); skipping it changes nothing. `laux` holds
  // the previous candidate's levels (the first pass's at the start, which is not a candidate: so
  // the first candidate is always evaluated).
  let fresh = true;
  for (let is = 0; is <= nstep; is++) {
    // NOTE: `min` changes when a candidate wins, and ggml's later candidates use the new one.
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let changed = fresh ? 1 : 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * xmin[i]!))));
      changed |= l ^ laux[i]!;
      laux[i] = l;
    }
    fresh = false;
    if (changed === 0) continue;
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = laux[i]!;
      const wl = fr(w[i]! * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * x[xo + i]!));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = fr(fr(fr(thisScale * laux[i]!) + thisMin) - x[xo + i]!);
        diff = useMad ? Math.abs(diff) : fr(diff * diff);
        curError = fr(curError + fr(w[i]! * diff));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = laux[i]!;
        bestError = curError;
        scale = thisScale;
        if (thisMin !== min) {
          min = thisMin;
          for (let i = 0; i < n; i++) xmin[i] = fr(x[xo + i]! - min);
        }
      }
    }
  }
  qkx2Min = -min;
  return scale;
}

/** Largest-magnitude value of x[xo..xo+n) with its sign (ggml's `max`, first one on ties). */
function signedAbsMax(x: Float32Array, xo: number, n: number): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xo + i]!;
    const ax = Math.abs(v);
    if (ax > amax) {
      amax = ax;
      max = v;
    }
  }
  return max;
}

/**
 * make_q3_quants(n, nmax, x, L, do_rmse = true): symmetric quantization to -nmax..nmax-1 weighted
 * by x^2, refined by up to 5 passes of coordinate descent. Writes L8[lo..lo+n) as l + nmax
 * (or 0 for an all-zero group); returns the scale.
 */
function makeQ3Quants(n: number, nmax: number, x: Float32Array, xo: number, lo: number): number {
  const max = signedAbsMax(x, xo, n);
  if (Math.abs(max) < GROUP_MAX_EPS) {
    L8.fill(0, lo, lo + n);
    return 0;
  }
  const iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
    L8[lo + i] = l;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const w = fr(xi * xi);
      const li = L8[lo + i]!;
      let slx = fr(sumlx - fr(fr(w * xi) * li));
      if (slx > 0) {
        let sl2 = fr(suml2 - fr(fr(w * li) * li));
        const nl = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(fr(xi * sl2) / slx))));
        if (nl !== li) {
          slx = fr(slx + fr(fr(w * xi) * nl));
          sl2 = fr(sl2 + fr(fr(w * nl) * nl));
          if (sl2 > 0 && fr(fr(slx * slx) * suml2) > fr(fr(sumlx * sumlx) * sl2)) {
            L8[lo + i] = nl;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (let i = 0; i < n; i++) L8[lo + i] = L8[lo + i]! + nmax;
  return suml2 > 0 ? fr(sumlx / suml2) : 0;
}

/**
 * make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL): symmetric quantization to
 * -nmax..nmax-1 weighted by x^2, trying 18 scales around nmax/max. Writes L8[lo..lo+n) as
 * l + nmax (or 0 for an all-zero group); returns the scale.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, lo: number): number {
  const max = signedAbsMax(x, xo, n);
  if (Math.abs(max) < GROUP_MAX_EPS) {
    L8.fill(0, lo, lo + n);
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
    L8[lo + i] = l + nmax;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 !== 0 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(TENTH * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
      const w = fr(xi * xi);
      sumlx = fr(sumlx + fr(fr(w * xi) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) {
        const l = nearestInt(fr(iscale * x[xo + i]!));
        L8[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
      }
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

/** Packs 2-bit values L (0..3, 256 of them) as Q2_K/Q3_K `qs`: byte 32c+l holds L[128c+32k+l] at bits 2k. */
function pack2Bits(src: Uint8Array | Int8Array, dst: Uint8Array, o: number): void {
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l++) {
      dst[o + j / 4 + l] =
        src[j + l]! | (src[j + l + 32]! << 2) | (src[j + l + 64]! << 4) | (src[j + l + 96]! << 6);
    }
  }
}

/** quantize_row_q2_K_ref. x (n) -> n/256 blocks of 84 bytes. */
export function quantizeQ2K(x: Float32Array, dst: Uint8Array, n: number): void {
  const q4scale = 15;
  for (let b = 0; b < n / QK_K; b++) {
    const xo = b * QK_K;
    const o = b * 84; // scales 0..15 | qs 16..79 | d 80 | dmin 82
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < QK_K / 16; j++) {
      for (let l = 0; l < 16; l++) weights[l] = Math.abs(x[xo + 16 * j + l]!);
      const scale = makeQkx2Quants(16, 3, x, xo + 16 * j, weights, 16 * j, -0.5, TENTH, 15, true);
      scales[j] = scale;
      mins[j] = qkx2Min;
      if (scale > maxScale) maxScale = scale;
      if (qkx2Min > maxMin) maxMin = qkx2Min;
    }
    if (maxScale > 0) {
      const iscale = fr(q4scale / maxScale);
      for (let j = 0; j < 16; j++) dst[o + j] = nearestInt(fr(iscale * scales[j]!)) & 0xff;
      writeF16(dst, o + 80, fr(maxScale / q4scale));
    } else {
      dst.fill(0, o, o + 16);
      writeF16(dst, o + 80, 0);
    }
    if (maxMin > 0) {
      const iscale = fr(q4scale / maxMin);
      for (let j = 0; j < 16; j++)
        dst[o + j] = (dst[o + j]! | (nearestInt(fr(iscale * mins[j]!)) << 4)) & 0xff;
      writeF16(dst, o + 82, fr(maxMin / q4scale));
    } else {
      writeF16(dst, o + 82, 0);
    }
    const dAll = readF16(dst, o + 80);
    const dMin = readF16(dst, o + 82);
    for (let j = 0; j < 16; j++) {
      const d = fr(dAll * (dst[o + j]! & 0xf));
      if (d === 0) continue; // NOTE: C `!d`; a NaN d (inf * 0) goes on
      const dm = fr(dMin * (dst[o + j]! >> 4));
      for (let i = 0; i < 16; i++) {
        const l = nearestInt(fr(fr(x[xo + 16 * j + i]! + dm) / d));
        L[16 * j + i] = Math.max(0, Math.min(3, l));
      }
    }
    pack2Bits(L, dst, o + 16);
  }
}

/** quantize_row_q3_K_ref. x (n) -> n/256 blocks of 110 bytes. */
export function quantizeQ3K(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const xo = b * QK_K;
    const o = b * 110; // hmask 0..31 | qs 32..95 | scales 96..107 | d 108
    const so = o + 96;
    let maxScale = 0;
    let amax = 0;
    for (let j = 0; j < 16; j++) {
      const scale = makeQ3Quants(16, 4, x, xo + 16 * j, 16 * j);
      scales[j] = scale;
      if (Math.abs(scale) > amax) {
        amax = Math.abs(scale);
        maxScale = scale;
      }
    }
    dst.fill(0, so, so + 12);
    if (maxScale !== 0) {
      const iscale = fr(-32 / maxScale);
      for (let j = 0; j < 16; j++) {
        // NOTE: ggml stores nearest_int's result in an int8_t before clamping.
        const l8 = (nearestInt(fr(iscale * scales[j]!)) << 24) >> 24;
        const l = Math.max(-32, Math.min(31, l8)) + 32;
        if (j < 8) dst[so + j] = l & 0xf;
        else dst[so + j - 8] = dst[so + j - 8]! | ((l & 0xf) << 4);
        dst[so + 8 + (j % 4)] = dst[so + 8 + (j % 4)]! | ((l >> 4) << (2 * (j >> 2)));
      }
      writeF16(dst, o + 108, fr(1 / iscale));
    } else {
      writeF16(dst, o + 108, 0);
    }
    const dAll = readF16(dst, o + 108);
    for (let j = 0; j < 16; j++) {
      const lo4 = j < 8 ? dst[so + j]! & 0xf : dst[so + j - 8]! >> 4;
      const sc = (lo4 | (((dst[so + 8 + (j % 4)]! >> (2 * (j >> 2))) & 3) << 4)) - 32;
      const d = fr(dAll * sc);
      if (d === 0) continue; // NOTE: C `!d`; a NaN d (inf * 0) goes on
      for (let i = 0; i < 16; i++) {
        const l = nearestInt(fr(x[xo + 16 * j + i]! / d));
        L8[16 * j + i] = Math.max(-4, Math.min(3, l)) + 4;
      }
    }
    // hmask: bit k of byte m holds the high bit of value 32k+m.
    dst.fill(0, o, o + 32);
    for (let j = 0; j < QK_K; j++) {
      if (L8[j]! > 3) {
        dst[o + (j & 31)] = dst[o + (j & 31)]! | (1 << (j >> 5));
        L8[j] = L8[j]! - 4;
      }
    }
    pack2Bits(L8, dst, o + 32);
  }
}

/** The shared body of quantize_row_q4_K_ref and quantize_row_q5_K_ref (they differ in nmax and search). */
function scaleMinSuperBlock(
  x: Float32Array,
  xo: number,
  dst: Uint8Array,
  o: number,
  nmax: number,
  rmin: number,
  nstep: number,
): void {
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) {
      const v = x[xo + 32 * j + l]!;
      sumX2 = fr(sumX2 + fr(v * v));
    }
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(x[xo + 32 * j + l]!));
    const scale = makeQkx2Quants(32, nmax, x, xo + 32 * j, weights, 32 * j, rmin, TENTH, nstep, false);
    scales[j] = scale;
    mins[j] = qkx2Min;
    if (scale > maxScale) maxScale = scale;
    if (qkx2Min > maxMin) maxMin = qkx2Min;
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  const so = o + 4;
  for (let j = 0; j < 8; j++) {
    // NOTE: ggml stores nearest_int's result in a uint8_t before MIN(63, .).
    const ls = Math.min(63, nearestInt(fr(invScale * scales[j]!)) & 0xff);
    const lm = Math.min(63, nearestInt(fr(invMin * mins[j]!)) & 0xff);
    if (j < 4) {
      dst[so + j] = ls;
      dst[so + j + 4] = lm;
    } else {
      dst[so + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      dst[so + j - 4] = dst[so + j - 4]! | ((ls >> 4) << 6);
      dst[so + j] = dst[so + j]! | ((lm >> 4) << 6);
    }
  }
  writeF16(dst, o, fr(maxScale / 63));
  writeF16(dst, o + 2, fr(maxMin / 63));
  const dAll = readF16(dst, o);
  const dMin = readF16(dst, o + 2);
  for (let j = 0; j < 8; j++) {
    const sc = scaleK4(dst, so, j);
    const m = minK4(dst, so, j);
    const d = fr(dAll * sc);
    if (d === 0) continue; // NOTE: C `!d`; a NaN d (inf * 0) goes on
    const dm = fr(dMin * m);
    for (let i = 0; i < 32; i++) {
      const l = nearestInt(fr(fr(x[xo + 32 * j + i]! + dm) / d));
      L[32 * j + i] = Math.max(0, Math.min(nmax, l));
    }
  }
}

/** quantize_row_q4_K_ref. x (n) -> n/256 blocks of 144 bytes. */
export function quantizeQ4K(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const o = b * 144; // d 0 | dmin 2 | scales 4..15 | qs 16..143
    scaleMinSuperBlock(x, b * QK_K, dst, o, 15, -1, 20);
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) dst[o + 16 + 32 * j + l] = L[64 * j + l]! | (L[64 * j + l + 32]! << 4);
    }
  }
}

/** quantize_row_q5_K_ref. x (n) -> n/256 blocks of 176 bytes. */
export function quantizeQ5K(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const o = b * 176; // d 0 | dmin 2 | scales 4..15 | qh 16..47 | qs 48..175
    scaleMinSuperBlock(x, b * QK_K, dst, o, 31, -0.5, 15);
    dst.fill(0, o + 16, o + 48);
    for (let j = 0; j < 4; j++) {
      const m1 = 1 << (2 * j);
      const m2 = m1 << 1;
      for (let l = 0; l < 32; l++) {
        let l1 = L[64 * j + l]!;
        let l2 = L[64 * j + l + 32]!;
        let h = dst[o + 16 + l]!;
        if (l1 > 15) {
          l1 -= 16;
          h |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          h |= m2;
        }
        dst[o + 16 + l] = h;
        dst[o + 48 + 32 * j + l] = l1 | (l2 << 4);
      }
    }
  }
}

/** quantize_row_q6_K_ref. x (n) -> n/256 blocks of 210 bytes. */
export function quantizeQ6K(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const xo = b * QK_K;
    const o = b * 210; // ql 0..127 | qh 128..191 | scales 192..207 (int8) | d 208
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let j = 0; j < 16; j++) {
      const scale = makeQxQuants(16, 32, x, xo + 16 * j, 16 * j);
      scales[j] = scale;
      if (Math.abs(scale) > maxAbsScale) {
        maxAbsScale = Math.abs(scale);
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      dst.fill(0, o, o + 210);
      continue;
    }
    const iscale = fr(-128 / maxScale);
    writeF16(dst, o + 208, fr(1 / iscale));
    for (let j = 0; j < 16; j++) dst[o + 192 + j] = Math.min(127, nearestInt(fr(iscale * scales[j]!))) & 0xff;
    const dAll = readF16(dst, o + 208);
    for (let j = 0; j < 16; j++) {
      const d = fr(dAll * ((dst[o + 192 + j]! << 24) >> 24));
      if (d === 0) continue; // NOTE: C `!d`; a NaN d (inf * 0) goes on
      for (let i = 0; i < 16; i++) {
        const l = nearestInt(fr(x[xo + 16 * j + i]! / d));
        L8[16 * j + i] = Math.max(-32, Math.min(31, l)) + 32;
      }
    }
    for (let c = 0; c < 2; c++) {
      const j = 128 * c;
      const ql = o + 64 * c;
      const qh = o + 128 + 32 * c;
      for (let l = 0; l < 32; l++) {
        const q1 = L8[j + l]!;
        const q2 = L8[j + l + 32]!;
        const q3 = L8[j + l + 64]!;
        const q4 = L8[j + l + 96]!;
        dst[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
        dst[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
        dst[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
}

const q8kF32 = new Float32Array(1);
const q8kU8 = new Uint8Array(q8kF32.buffer);

/** quantize_row_q8_K_ref. x (n) -> n/256 blocks of 292 bytes: f32 d | i8 qs[256] | i16 bsums[16]. */
export function quantizeQ8K(x: Float32Array, dst: Uint8Array, n: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const xo = b * QK_K;
    const o = b * 292;
    const max = signedAbsMax(x, xo, QK_K);
    if (max === 0) {
      // NOTE: ggml leaves bsums unwritten here; the reference vectors (zeroed buffer) hold zeros.
      dst.fill(0, o, o + 292);
      continue;
    }
    const iscale = fr(-127 / max);
    for (let g = 0; g < 16; g++) {
      let sum = 0;
      for (let i = 0; i < 16; i++) {
        const v = Math.min(127, nearestInt(fr(iscale * x[xo + 16 * g + i]!)));
        dst[o + 4 + 16 * g + i] = v & 0xff;
        sum += (v << 24) >> 24;
      }
      dst[o + 260 + 2 * g] = sum & 0xff;
      dst[o + 261 + 2 * g] = (sum >> 8) & 0xff;
    }
    q8kF32[0] = 1 / iscale;
    dst.set(q8kU8, o);
  }
}
