// Activation quantizers, bit-exact with ggml's reference quantizers (ggml-quants.c:
// quantize_row_q8_0_ref, quantize_row_q8_1_ref, quantize_row_q8_K_ref; ggml_fp32_to_fp16_row,
// ggml_fp32_to_bf16_row_ref), and the "EO" expansion the integer dot kernels read.
//
// EO layout (per 32 quants of a row, 64 bytes): i16 lanes [q0 q2 .. q14 | q1 q3 .. q15 |
// q16 q18 .. q30 | q17 q19 .. q31]. Read as i16 lanes, 16 bytes of a weight block put the values
// of its even bytes in the low byte of each lane and of its odd bytes in the high byte, so the
// kernels split them with shifts and masks and meet the activation values in this order with no
// shuffle. The block scales go to separate float arrays (d; Q8_1's s), the K-quants' bsums to an
// i32 array (one per 16 quants).
// Not here: the dots (matmul-*.ts).
import { f16, roundF16x4, roundf, toBf16Bits, toF16Bits, truncI32 } from "./common";

// ------------------------------------------------------------------------ ggml block quantizers

/**
 * x (n) -> n/32 block_q8_0 (34 B: f16 d, i8 qs[32]) at dst; with x86 = 0 quantize_row_q8_0_ref
 * (id = 1/d, round half away from zero), else ggml-cpu's x86 quantize_row_q8_0 (id = 127/amax,
 * round half to even), which llama.cpp runs on every x86 build (see ../../ref/activations.ts).
 */
export function quantizeQ8_0(x: usize, dst: usize, n: i32, x86: i32): void {
  quantizeQ8(x, dst, n, x86, false);
}

/** x (n) -> n/32 block_q8_1 (36 B: f16 d, f16 s = d * sum(qs), i8 qs[32]); the Q8_0 rules above. */
export function quantizeQ8_1(x: usize, dst: usize, n: i32, x86: i32): void {
  quantizeQ8(x, dst, n, x86, true);
}

@inline
function quantizeQ8(x: usize, dst: usize, n: i32, x86: i32, withSum: bool): void {
  const bytes: usize = withSum ? 36 : 34;
  const qo: usize = withSum ? 4 : 2;
  for (let b = 0; b < n >> 5; b++) {
    const xp = x + (<usize>b << 7);
    const o = dst + <usize>b * bytes;
    let amax: f32 = 0;
    for (let j = 0; j < 32; j++) {
      const a = Mathf.abs(load<f32>(xp + (<usize>j << 2)));
      amax = amax > a ? amax : a; // C's MAX: a NaN in x is skipped as ggml skips it
    }
    const d: f32 = amax / 127;
    let id: f32;
    if (x86) id = amax != 0 ? <f32>127 / amax : 0;
    else id = d != 0 ? <f32>1 / d : 0;
    store<u16>(o, <u16>toF16Bits(d));
    let sum = 0;
    for (let j = 0; j < 32; j++) {
      const v = load<f32>(xp + (<usize>j << 2)) * id;
      const q = <i8>truncI32(x86 ? nearest<f32>(v) : roundf(v));
      store<i8>(o + qo + j, q);
      sum += <i32>q;
    }
    if (withSum) store<u16>(o + 2, <u16>toF16Bits(<f32>sum * d));
  }
}

/**
 * x (n) -> n/256 block_q8_K (292 B: f32 d, i8 qs[256], i16 bsums[16]); quantize_row_q8_K_ref, in
 * SIMD with its exact operations: the first value of largest magnitude (NaN skipped, as C's `>`
 * skips it: f32x4.pmax keeps its first operand then), nearest_int's float trick (add 1.5 * 2^23,
 * the low 23 bits minus 2^22), the clamp at 127, and the i8 store of the low byte.
 */
export function quantizeQ8K(x: usize, dst: usize, n: i32): void {
  const absMask = i32x4.splat(0x7fffffff);
  for (let b = 0; b < n >> 8; b++) {
    const xp = x + (<usize>b << 10);
    const o = dst + <usize>b * 292;
    let am = f32x4.splat(0);
    for (let j = 0; j < 1024; j += 16) am = f32x4.pmax(am, v128.and(v128.load(xp + j), absMask));
    const amax = Mathf.max(Mathf.max(f32x4.extract_lane(am, 0), f32x4.extract_lane(am, 1)), Mathf.max(f32x4.extract_lane(am, 2), f32x4.extract_lane(am, 3)));
    if (amax == 0) {
      // NOTE: ggml leaves bsums unwritten here; ours are zero, like the reference vectors'.
      memory.fill(o, 0, 292);
      continue;
    }
    // The first value whose magnitude is amax, with its sign.
    let j = 0;
    while (Mathf.abs(load<f32>(xp + (<usize>j << 2))) != amax) j++;
    const max = load<f32>(xp + (<usize>j << 2));
    const iscale: f32 = <f32>-127 / max;
    const sv = f32x4.splat(iscale);
    const magic = f32x4.splat(12582912.0);
    const low = i32x4.splat(0x007fffff);
    const bias = i32x4.splat(0x00400000);
    const top = i32x4.splat(127);
    const byte = i32x4.splat(0xff);
    for (let g = 0; g < 16; g++) {
      const p = xp + (<usize>g << 6);
      // nearest_int(iscale * x), at most 127, then its low byte (C's (int8_t) store).
      const q0 = v128.and(i32x4.min_s(i32x4.sub(v128.and(f32x4.add(f32x4.mul(v128.load(p), sv), magic), low), bias), top), byte);
      const q1 = v128.and(i32x4.min_s(i32x4.sub(v128.and(f32x4.add(f32x4.mul(v128.load(p, 16), sv), magic), low), bias), top), byte);
      const q2 = v128.and(i32x4.min_s(i32x4.sub(v128.and(f32x4.add(f32x4.mul(v128.load(p, 32), sv), magic), low), bias), top), byte);
      const q3 = v128.and(i32x4.min_s(i32x4.sub(v128.and(f32x4.add(f32x4.mul(v128.load(p, 48), sv), magic), low), bias), top), byte);
      const q = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(q0, q1), i16x8.narrow_i32x4_u(q2, q3));
      v128.store(o + 4 + (<usize>g << 4), q);
      const s = i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(q));
      const sum = i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + (i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3));
      store<i16>(o + 260 + 2 * g, <i16>sum);
    }
    store<f32>(o, <f32>1 / iscale);
  }
}

/** x (n) -> n halves at dst (ggml_fp32_to_fp16_row). */
export function toF16Row(x: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>toF16Bits(load<f32>(x + (<usize>i << 2))));
}

/** x (n) -> n bf16 at dst (ggml_fp32_to_bf16_row_ref). */
export function toBf16Row(x: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>toBf16Bits(load<f32>(x + (<usize>i << 2))));
}

/** x (n) -> y (n): each value rounded to the nearest half and back (the F16 dot's activation). */
export function roundF16Row(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = <usize>i << 2;
    v128.store(y + p, roundF16x4(v128.load(x + p)));
  }
  for (; i < n; i++) {
    const p = <usize>i << 2;
    store<f32>(y + p, f16(toF16Bits(load<f32>(x + p))));
  }
}

/** x (n) -> y (n): roundF16Row times 2^112 (exact: |value| <= 65504), dotF16S's activation. */
export function roundF16RowScaled(x: usize, y: usize, n: i32): void {
  const s = reinterpret<f32>(0x77800000);
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = <usize>i << 2;
    v128.store(y + p, f32x4.mul(roundF16x4(v128.load(x + p)), sv));
  }
  for (; i < n; i++) {
    const p = <usize>i << 2;
    store<f32>(y + p, f16(toF16Bits(load<f32>(x + p))) * s);
  }
}

/** x (n) -> y (n): each value rounded to the nearest bf16 and back (the BF16 dot's activation). */
export function roundBf16Row(x: usize, y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const p = <usize>i << 2;
    store<u32>(y + p, toBf16Bits(load<f32>(x + p)) << 16);
  }
}

// ---------------------------------------------------------------------------- EO expansion

/** 32 i8 quants at q -> 64 bytes of EO-ordered i16 at out. */
@inline
function expand32(q: usize, out: usize): void {
  expand32To(q, out, out + 32);
}

/** 32 i8 quants at q -> EO slots A, B (32 bytes) at ab and C, D at cd. */
@inline
function expand32To(q: usize, ab: usize, cd: usize): void {
  const v0 = v128.load(q);
  const v1 = v128.load(q, 16);
  const s0 = i8x16.shuffle(v0, v0, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const s1 = i8x16.shuffle(v1, v1, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  v128.store(ab, i16x8.extend_low_i8x16_s(s0));
  v128.store(ab, i16x8.extend_high_i8x16_s(s0), 16);
  v128.store(cd, i16x8.extend_low_i8x16_s(s1));
  v128.store(cd, i16x8.extend_high_i8x16_s(s1), 16);
}

/** n/32 block_q8_0 -> qs (n i16, EO), d (n/32 f32). */
export function expandQ8_0(src: usize, n: i32, qs: usize, d: usize): void {
  for (let b = 0; b < n >> 5; b++) {
    const o = src + <usize>b * 34;
    store<f32>(d + (<usize>b << 2), f16(load<u16>(o)));
    expand32(o + 2, qs + (<usize>b << 6));
  }
}

/** n/32 block_q8_1 -> qs (n i16, EO), d (n/32 f32), s (n/32 f32). */
export function expandQ8_1(src: usize, n: i32, qs: usize, d: usize, s: usize): void {
  for (let b = 0; b < n >> 5; b++) {
    const o = src + <usize>b * 36;
    store<f32>(d + (<usize>b << 2), f16(load<u16>(o)));
    store<f32>(s + (<usize>b << 2), f16(load<u16>(o + 2)));
    expand32(o + 4, qs + (<usize>b << 6));
  }
}

/**
 * n/256 block_q8_K -> qs (n i16, EO), d (n/256 f32), bsums (n/16 i32). halves: qs in the halves
 * layout of the one-token Q4_K / Q5_K dots instead (matmul-kquants.ts dotQ4K): per 64 values
 * (sub-blocks 2j, 2j + 1) the EO slots A B of 2j, A B of 2j + 1, C D of 2j, C D of 2j + 1.
 */
export function expandQ8K(src: usize, n: i32, qs: usize, d: usize, bsums: usize, halves: bool): void {
  for (let b = 0; b < n >> 8; b++) {
    const o = src + <usize>b * 292;
    store<f32>(d + (<usize>b << 2), load<f32>(o));
    for (let g = 0; g < 8; g++) {
      const q = o + 4 + (<usize>g << 5);
      if (halves) {
        const out = qs + (<usize>b << 9) + (<usize>(g >> 1) << 7) + (<usize>(g & 1) << 5);
        expand32To(q, out, out + 64);
      } else expand32(q, qs + (<usize>b << 9) + (<usize>g << 6));
    }
    for (let g = 0; g < 16; g++) store<i32>(bsums + (<usize>(16 * b + g) << 2), <i32>load<i16>(o + 260 + 2 * g));
  }
}
