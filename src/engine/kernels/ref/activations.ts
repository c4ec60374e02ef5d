/**
 * Activation quantizers of matrix products: the `from_float` ggml-cpu runs on each activation row
 * before vec_dot (ggml_compute_forward_mul_mat), which is NOT always the reference quantizer of
 * src/quant. On x86 (every build with AVX or AVX2, which includes the AVX-512 ones), ggml-cpu's
 * quantize_row_q8_0 and quantize_row_q8_1 (ggml-cpu/arch/x86/quants.c), and the 4-row
 * ggml_quantize_mat_q8_0_4x8 of its Q4_0 repacking, compute the inverse scale as 127/amax and
 * round half to even (_mm256_round_ps), where quantize_row_q8_*_ref computes 1/(amax/127) and
 * rounds half away from zero. The two differ by one step on some values, and through Q8_1's
 * block sum s that moves a Q4_1/Q5_1 dot by ~1e-3: enough to change greedy tokens of small
 * models. Q8_K, F16 and BF16 rows use the reference conversion on x86 too.
 *
 * "x86" (the default) mirrors that x86 code; "ref" uses src/quant's reference quantizers
 * (ggml's generic build). NOTE: ggml's ARM NEON build is a third variant (1/d, ties to even).
 * Not here: the dot products (src/quant).
 */
import { toF16Bits, writeU16 } from "../../../quant/c-float.ts";
import { KERNELS } from "../../../quant/index.ts";
import type { QuantKernels } from "../../../quant/kernels.ts";
import type { GgmlTypeName } from "../../../util/ggml-types.ts";

export type ActivationQuantizer = NonNullable<QuantKernels["quantize"]>;
export type ActivationMode = "x86" | "ref";

const fround = Math.fround;
const QK = 32;

/** Round half to even of an already-float32 value (_mm256_round_ps with _MM_ROUND_NEAREST). */
function roundHalfEven(v: number): number {
  const r = Math.round(v); // halves go up
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

/**
 * x (n) -> Q8_0 (blocks of f16 d | i8 qs[32]) or, with `sum`, Q8_1 (f16 d | f16 s | i8 qs[32]),
 * as ggml-cpu's x86 quantize_row_q8_0 / quantize_row_q8_1: d = amax/127, id = 127/amax,
 * q = round_half_even(x * id), s = d * sum(q).
 */
function quantizeQ8X86(x: Float32Array, dst: Uint8Array, n: number, sum: boolean): void {
  const blockBytes = sum ? 36 : 34;
  const qsOffset = sum ? 4 : 2;
  for (let o = 0, s = 0; o < n; o += QK, s += blockBytes) {
    let amax = 0;
    for (let j = 0; j < QK; j++) {
      const a = Math.abs(x[o + j]!);
      if (a > amax) amax = a;
    }
    const d = fround(amax / 127);
    const id = amax !== 0 ? fround(127 / amax) : 0;
    writeU16(dst, s, toF16Bits(d));
    let total = 0;
    for (let j = 0; j < QK; j++) {
      const q = roundHalfEven(fround(x[o + j]! * id));
      dst[s + qsOffset + j] = q & 0xff;
      total += q;
    }
    if (sum) writeU16(dst, s + 2, toF16Bits(fround(d * total)));
  }
}

/** ggml-cpu x86 quantize_row_q8_0. */
export function quantizeQ8_0X86(x: Float32Array, dst: Uint8Array, n: number): void {
  quantizeQ8X86(x, dst, n, false);
}

/** ggml-cpu x86 quantize_row_q8_1. */
export function quantizeQ8_1X86(x: Float32Array, dst: Uint8Array, n: number): void {
  quantizeQ8X86(x, dst, n, true);
}

const X86: Partial<Record<GgmlTypeName, ActivationQuantizer>> = {
  Q8_0: quantizeQ8_0X86,
  Q8_1: quantizeQ8_1X86,
};

/** The quantizer of activation type `act` (a vec_dot activation type) in `mode`. */
export function activationQuantizer(
  act: GgmlTypeName,
  mode: ActivationMode,
): ActivationQuantizer | undefined {
  return (mode === "x86" ? X86[act] : undefined) ?? KERNELS[act]?.quantize;
}
