/**
 * The shape every quantization family implements. One family per file (float.ts, legacy.ts,
 * k-quants.ts, iq.ts); index.ts gathers them into one table keyed by ggml type name.
 *
 * Conventions: `n` is the number of values and a multiple of the type's block size; `src`/`dst`
 * byte arrays hold exactly n / blockSize blocks. Dot products take the activation already
 * quantized to `dotActivation` (as ggml's vec_dot does: Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for
 * Q4_1/Q5_1, Q8_K for the K-quants and IQ4_XS, the same type for F16/BF16/F32).
 */
import type { GgmlTypeName } from "../util/ggml-types.ts";

export interface QuantKernels {
  /** bytes (n/blockSize blocks) -> n floats. */
  dequantize?: (src: Uint8Array, dst: Float32Array, n: number) => void;
  /** n floats -> bytes, with the semantics of ggml's quantize_row_*_ref. */
  quantize?: (src: Float32Array, dst: Uint8Array, n: number) => void;
  /** The type the activation row is quantized to before `dot`. */
  dotActivation?: GgmlTypeName;
  /** Dot of one row (n values) with an activation row in `dotActivation` format; float32 result. */
  dot?: (row: Uint8Array, act: Uint8Array, n: number) => number;
  /** Naive reference twin of `dot` (readable, slow): the oracle `dot` is tested against. */
  dotRef?: (row: Uint8Array, act: Uint8Array, n: number) => number;
}

export type KernelTable = Partial<Record<GgmlTypeName, QuantKernels>>;
