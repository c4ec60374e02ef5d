/**
 * GGUF data model shared by the reader and the writer (the contract between them and their users).
 *
 * GGUF layout (little-endian), versions 2 and 3 (version 1 used 32-bit counts and is rejected):
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 ggml_type | u64 offset }
 *   padding to `general.alignment` (default 32)
 *   tensor data; each tensor's offset is relative to the start of this section and aligned
 * string = u64 length + UTF-8 bytes (no NUL); array = u32 item_type + u64 count + items.
 * Spec: ggml docs/gguf.md; reference reader ggml/src/gguf.cpp.
 */
import type { GgmlTypeInfo } from "../../util/ggml-types.ts";

/** GGUF metadata value types, ids as in gguf.h (enum gguf_type). */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueTypeName = keyof typeof GgufValueType;
export type GgufValueTypeId = (typeof GgufValueType)[GgufValueTypeName];

/**
 * A metadata value with its exact on-disk type, so that read-then-write is byte-identical.
 * 64-bit integers are bigint; other numbers are number; arrays keep their item type.
 * Large numeric arrays (token scores, token types) are typed arrays, not JS arrays.
 */
export type GgufValue =
  | {
      type: "UINT8" | "INT8" | "UINT16" | "INT16" | "UINT32" | "INT32" | "FLOAT32" | "FLOAT64";
      value: number;
    }
  | { type: "UINT64" | "INT64"; value: bigint }
  | { type: "BOOL"; value: boolean }
  | { type: "STRING"; value: string }
  | { type: "ARRAY"; value: GgufArray };

export type GgufArray =
  | { itemType: "UINT8"; items: Uint8Array }
  | { itemType: "INT8"; items: Int8Array }
  | { itemType: "UINT16"; items: Uint16Array }
  | { itemType: "INT16"; items: Int16Array }
  | { itemType: "UINT32"; items: Uint32Array }
  | { itemType: "INT32"; items: Int32Array }
  | { itemType: "FLOAT32"; items: Float32Array }
  | { itemType: "FLOAT64"; items: Float64Array }
  | { itemType: "UINT64"; items: BigUint64Array }
  | { itemType: "INT64"; items: BigInt64Array }
  | { itemType: "BOOL"; items: boolean[] }
  | { itemType: "STRING"; items: string[] }
  | { itemType: "ARRAY"; items: GgufArray[] };

/** Metadata in file order (a Map keeps insertion order). */
export type GgufMetadata = Map<string, GgufValue>;

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (row) length. */
  dims: number[];
  type: GgmlTypeInfo;
  /** Offset relative to the start of the tensor data section, as stored. */
  offset: number;
  /** Absolute offset in the file. */
  fileOffset: number;
  /** Bytes of tensor data. */
  byteSize: number;
  /** Number of values. */
  nElements: number;
}

/** Tensor to write: data is produced lazily, one tensor at a time, so peak memory stays bounded. */
export interface GgufTensorInput {
  name: string;
  dims: readonly number[];
  type: GgmlTypeInfo;
  /** Returns exactly the tensor's bytes; called once, in file order, when that tensor is written. */
  data: () => Uint8Array | Promise<Uint8Array>;
}

export interface GgufWriteInput {
  version?: 2 | 3;
  metadata: GgufMetadata;
  tensors: readonly GgufTensorInput[];
}

/** An opened GGUF file. Tensor data stays on disk until asked for. */
export interface GgufFile {
  version: 2 | 3;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  /** `general.alignment` or the default 32. */
  alignment: number;
  /** Absolute offset of the tensor data section. */
  dataOffset: number;
  /** Total file size in bytes. */
  fileSize: number;
  /** Where the bytes come from (a path or "<memory>"). */
  name: string;
  /** Tensor by name, or undefined. */
  tensor(name: string): GgufTensorInfo | undefined;
  /** Read one tensor's bytes (a fresh copy for files; ERR_TENSOR_NOT_FOUND for a bad name). */
  readTensor(tensor: string | GgufTensorInfo): Uint8Array;
  /** Release the file handle. */
  close(): void;
}
