/**
 * Quantization: the public entry points over every family's kernels, dispatched by ggml type.
 * Not here: the kernels themselves (one file per family) and the type table (util/ggml-types.ts).
 */
import { OwlError } from "../util/errors.ts";
import { type GgmlTypeInfo, type GgmlTypeName, rowBytes } from "../util/ggml-types.ts";
import { FLOAT_KERNELS } from "./float.ts";
import { IQ_KERNELS } from "./iq.ts";
import { K_QUANTS_KERNELS } from "./k-quants.ts";
import type { KernelTable, QuantKernels } from "./kernels.ts";
import { LEGACY_KERNELS } from "./legacy.ts";

export {
  GGML_TYPES,
  GgmlType,
  type GgmlTypeInfo,
  type GgmlTypeName,
  ggmlTypeByName,
  ggmlTypeInfo,
  requireGgmlType,
  rowBytes,
  tensorBytes,
} from "../util/ggml-types.ts";
export type { QuantKernels } from "./kernels.ts";

export const KERNELS: KernelTable = {
  ...FLOAT_KERNELS,
  ...LEGACY_KERNELS,
  ...K_QUANTS_KERNELS,
  ...IQ_KERNELS,
};

export function kernelsFor(type: GgmlTypeInfo): QuantKernels {
  return KERNELS[type.name] ?? {};
}

function unsupported(type: GgmlTypeInfo, what: string): OwlError {
  const have = Object.entries(KERNELS)
    .filter(([, k]) => k && what in k)
    .map(([n]) => n);
  return new OwlError(
    "ERR_QUANT_UNSUPPORTED_TYPE",
    `${what} is not implemented for ${type.name}; supported: ${have.join(", ")}`,
    {
      details: { type: type.name },
    },
  );
}

/** Dequantize `n` values stored as `type` in `src`. */
export function dequantize(
  type: GgmlTypeInfo,
  src: Uint8Array,
  n: number,
  dst = new Float32Array(n),
): Float32Array {
  const k = kernelsFor(type).dequantize;
  if (!k) throw unsupported(type, "dequantize");
  const need = rowBytes(type, n);
  if (src.byteLength < need || dst.length < n) {
    throw new OwlError(
      "ERR_QUANT_BAD_LENGTH",
      `dequantize ${type.name}: ${n} values need ${need} bytes, found ${src.byteLength}`,
    );
  }
  k(src, dst, n);
  return dst;
}

/** Quantize `src` (length a multiple of the block size) to `type`. */
export function quantize(type: GgmlTypeInfo, src: Float32Array, dst?: Uint8Array): Uint8Array {
  const k = kernelsFor(type).quantize;
  if (!k) throw unsupported(type, "quantize");
  const out = dst ?? new Uint8Array(rowBytes(type, src.length));
  k(src, out, src.length);
  return out;
}

export function isTypeName(name: string): name is GgmlTypeName {
  return name in KERNELS;
}
