/**
 * K-quants (super-blocks of QK_K = 256 values): the kernel table of Q2_K..Q6_K and Q8_K, and the
 * block layouts. The kernels, bit-exact with ggml 0.23.0 (ggml-quants.c, ggml-cpu/quants.c), live
 * in k-quants-dequantize.ts, k-quants-quantize.ts and k-quants-dot.ts (dot with Q8_K activations).
 * Not here: the imatrix-weighted quantizers, IQ4_XS (iq.ts).
 *
 * Layouts (ggml-common.h; f16 little-endian; "value p" is position p of the 256):
 *   block_q2_K (84):  u8 scales[16] (low nibble scale, high nibble min, per 16 values)
 *                     | u8 qs[64] (2-bit; byte 32c+l holds value 128c+32k+l at bits 2k)
 *                     | f16 d | f16 dmin.                       x = d*sc*q - dmin*m
 *   block_q3_K (110): u8 hmask[32] (bit k of byte l: high bit of value 32k+l, set means +0, clear -4)
 *                     | u8 qs[64] (low 2 bits, as Q2_K) | u8 scales[12] (16 6-bit scales, biased by 32)
 *                     | f16 d.                                  x = d*(sc-32)*(q-4*!h)
 *   block_q4_K (144): f16 d | f16 dmin | u8 scales[12] (8 6-bit scales + 8 6-bit mins, packed)
 *                     | u8 qs[128] (byte 32j+l: value 64j+l low nibble, 64j+32+l high nibble).
 *                                                               x = d*sc*q - dmin*m, per 32 values
 *   block_q5_K (176): f16 d | f16 dmin | u8 scales[12] (as Q4_K) | u8 qh[32] (bit j of byte l: bit 4
 *                     of value 32j+l) | u8 qs[128] (low 4 bits, as Q4_K).
 *   block_q6_K (210): u8 ql[128] | u8 qh[64] | i8 scales[16] (per 16 values) | f16 d.
 *                     x = d*sc*(q-32); value 128c+32k+l: low 4 bits in ql[64c+32(k&1)+l] at bit
 *                     4(k>>1), high 2 bits in qh[32c+l] at bit 2k.
 *   block_q8_K (292): f32 d | i8 qs[256] | i16 bsums[16] (sum of each 16 qs).   x = d*q
 */

import {
  dequantizeQ2K,
  dequantizeQ3K,
  dequantizeQ4K,
  dequantizeQ5K,
  dequantizeQ6K,
  dequantizeQ8K,
} from "./k-quants-dequantize.ts";
import {
  dotQ2K,
  dotQ3K,
  dotQ4K,
  dotQ5K,
  dotQ6K,
  dotRefQ2K,
  dotRefQ3K,
  dotRefQ4K,
  dotRefQ5K,
  dotRefQ6K,
} from "./k-quants-dot.ts";
import {
  quantizeQ2K,
  quantizeQ3K,
  quantizeQ4K,
  quantizeQ5K,
  quantizeQ6K,
  quantizeQ8K,
} from "./k-quants-quantize.ts";
import type { KernelTable } from "./kernels.ts";

export const K_QUANTS_KERNELS: KernelTable = {
  Q2_K: {
    dequantize: dequantizeQ2K,
    quantize: quantizeQ2K,
    dotActivation: "Q8_K",
    dot: dotQ2K,
    dotRef: dotRefQ2K,
  },
  Q3_K: {
    dequantize: dequantizeQ3K,
    quantize: quantizeQ3K,
    dotActivation: "Q8_K",
    dot: dotQ3K,
    dotRef: dotRefQ3K,
  },
  Q4_K: {
    dequantize: dequantizeQ4K,
    quantize: quantizeQ4K,
    dotActivation: "Q8_K",
    dot: dotQ4K,
    dotRef: dotRefQ4K,
  },
  Q5_K: {
    dequantize: dequantizeQ5K,
    quantize: quantizeQ5K,
    dotActivation: "Q8_K",
    dot: dotQ5K,
    dotRef: dotRefQ5K,
  },
  Q6_K: {
    dequantize: dequantizeQ6K,
    quantize: quantizeQ6K,
    dotActivation: "Q8_K",
    dot: dotQ6K,
    dotRef: dotRefQ6K,
  },
  Q8_K: { dequantize: dequantizeQ8K, quantize: quantizeQ8K },
};
