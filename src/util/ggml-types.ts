/**
 * The ggml type table: every type id ggml assigns, with its block size (values per block) and
 * bytes per block, ids identical to ggml/include/ggml.h (ggml 0.23.0, the tree node-llama-cpp
 * 3.21.1 bundles). Removed ids (4, 5, 31-33, 36-38) are absent on purpose: ggml rejects them.
 * It lives in util/ because both formats/ (tensor sizes, bounds checks) and quant/ (kernels) need
 * it and neither may import the other. Not here: the kernels (src/quant, one file per family).
 */
import { OwlError } from "./errors.ts";

export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
  NVFP4: 40,
  Q1_0: 41,
  Q2_0: 42,
} as const;

export type GgmlTypeName = keyof typeof GgmlType;
export type GgmlTypeId = (typeof GgmlType)[GgmlTypeName];

export interface GgmlTypeInfo {
  id: GgmlTypeId;
  name: GgmlTypeName;
  /** Values per block (1 for plain scalar types). */
  blockSize: number;
  /** Bytes per block. */
  bytesPerBlock: number;
  /** True for block-quantized types (everything but the plain float and integer types). */
  quantized: boolean;
}

const QK_K = 256;

// [name, block size, bytes per block] in the order of ggml.h. Byte counts follow the
// static_asserts of ggml-common.h.
const ROWS: ReadonlyArray<readonly [GgmlTypeName, number, number]> = [
  ["F32", 1, 4],
  ["F16", 1, 2],
  ["Q4_0", 32, 18],
  ["Q4_1", 32, 20],
  ["Q5_0", 32, 22],
  ["Q5_1", 32, 24],
  ["Q8_0", 32, 34],
  ["Q8_1", 32, 36],
  ["Q2_K", QK_K, 84],
  ["Q3_K", QK_K, 110],
  ["Q4_K", QK_K, 144],
  ["Q5_K", QK_K, 176],
  ["Q6_K", QK_K, 210],
  ["Q8_K", QK_K, 292],
  ["IQ2_XXS", QK_K, 66],
  ["IQ2_XS", QK_K, 74],
  ["IQ3_XXS", QK_K, 98],
  ["IQ1_S", QK_K, 50],
  ["IQ4_NL", 32, 18],
  ["IQ3_S", QK_K, 110],
  ["IQ2_S", QK_K, 82],
  ["IQ4_XS", QK_K, 136],
  ["I8", 1, 1],
  ["I16", 1, 2],
  ["I32", 1, 4],
  ["I64", 1, 8],
  ["F64", 1, 8],
  ["IQ1_M", QK_K, 56],
  ["BF16", 1, 2],
  ["TQ1_0", QK_K, 54],
  ["TQ2_0", QK_K, 66],
  ["MXFP4", 32, 17],
  ["NVFP4", 64, 36],
  ["Q1_0", 128, 18],
  ["Q2_0", 64, 18],
];

const PLAIN = new Set<GgmlTypeName>(["F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"]);

const BY_ID = new Map<number, GgmlTypeInfo>();
const BY_NAME = new Map<string, GgmlTypeInfo>();
for (const [name, blockSize, bytesPerBlock] of ROWS) {
  const info: GgmlTypeInfo = {
    id: GgmlType[name],
    name,
    blockSize,
    bytesPerBlock,
    quantized: !PLAIN.has(name),
  };
  BY_ID.set(info.id, info);
  BY_NAME.set(name, info);
}

/** Every known type, in id order. */
export const GGML_TYPES: readonly GgmlTypeInfo[] = [...BY_ID.values()].sort((a, b) => a.id - b.id);

/** Type info by id, or undefined for an id ggml does not define. */
export function ggmlTypeInfo(id: number): GgmlTypeInfo | undefined {
  return BY_ID.get(id);
}

/** Type info by id; throws ERR_UNKNOWN_TENSOR_TYPE for an unknown id. */
export function requireGgmlType(id: number, where = ""): GgmlTypeInfo {
  const info = BY_ID.get(id);
  if (!info) {
    throw new OwlError(
      "ERR_UNKNOWN_TENSOR_TYPE",
      `unknown ggml type id ${id}${where ? ` ${where}` : ""}; expected one of ${GGML_TYPES.map((t) => `${t.id} (${t.name})`).join(", ")}`,
      { details: { typeId: id } },
    );
  }
  return info;
}

/** Type info by name (case-insensitive: "q4_k" and "Q4_K" both work). */
export function ggmlTypeByName(name: string): GgmlTypeInfo | undefined {
  // The exact name first: the engine looks its weight types up on every matrix product, and the
  // case-insensitive scan below allocates a string per entry.
  const exact = BY_NAME.get(name);
  if (exact) return exact;
  const upper = name.toUpperCase();
  for (const [k, v] of BY_NAME) if (k.toUpperCase() === upper) return v;
  return undefined;
}

/**
 * Bytes of a row of `n` values; throws when n is not a multiple of the block size
 * (ggml requires the first dimension of a quantized tensor to be a whole number of blocks).
 */
export function rowBytes(type: GgmlTypeInfo, n: number): number {
  if (n % type.blockSize !== 0) {
    throw new OwlError(
      "ERR_TENSOR_SHAPE",
      `a ${type.name} row must hold a multiple of ${type.blockSize} values, found ${n}`,
      { details: { type: type.name, n } },
    );
  }
  return (n / type.blockSize) * type.bytesPerBlock;
}

/** Bytes of a tensor of the given shape (ggml order: dims[0] is the row length). */
export function tensorBytes(type: GgmlTypeInfo, dims: readonly number[]): number {
  let rows = 1;
  for (let i = 1; i < dims.length; i++) rows *= dims[i]!;
  return rowBytes(type, dims[0] ?? 1) * rows;
}
