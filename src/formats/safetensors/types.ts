/**
 * safetensors data model shared by the reader, the writer and the sharded (multi-file) view.
 *
 * safetensors layout (spec: huggingface/safetensors README "Format"; reference reader and writer:
 * the Rust crate, safetensors/src/tensor.rs):
 *   u64 N, little-endian                     size of the header in bytes (at most 100,000,000)
 *   N bytes of UTF-8 JSON, starting with '{', optionally padded with trailing spaces (0x20):
 *     { "__metadata__": { string: string },                           (optional)
 *       "<tensor name>": { "dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end] },
 *       ... }
 *   the byte buffer: every tensor's bytes, little-endian, row-major ('C' order). begin and end are
 *   relative to the buffer's start; sorted by offset the tensors cover the buffer exactly, with no
 *   hole and no overlap, and end - begin = product(shape) * dtype size.
 * Sharded checkpoints add a JSON index, `model.safetensors.index.json`:
 *   { "metadata": { "total_size": <bytes of tensor data> }, "weight_map": { "<tensor>": "<file>" } }
 * Not here: parsing (read.ts), writing (write.ts), dtype tables and conversions (dtypes.ts).
 */
import type { SafetensorsDtype } from "./dtypes.ts";

/** `__metadata__`: a free-form string-to-string map (any other JSON value is rejected). */
export type SafetensorsMetadata = Record<string, string>;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  /** Row-major: shape[0] is the outermost dimension (the opposite of GGUF's dims). */
  shape: number[];
  /** data_offsets[0], relative to the start of the byte buffer, as stored. */
  begin: number;
  /** data_offsets[1] (one past the last byte), relative to the start of the byte buffer. */
  end: number;
  /** Absolute offset of the first byte in its file. */
  fileOffset: number;
  /** end - begin. */
  byteSize: number;
  /** Product of shape (1 for a scalar, shape []). */
  nElements: number;
  /** The file that holds the bytes (a path, or "<memory>"). */
  file: string;
}

/** Tensors that can be listed and read lazily: one file, or the merged view of a sharded model. */
export interface SafetensorsTensorSet {
  /** `__metadata__` (empty when the file has none; for a sharded model, see SafetensorsModel). */
  metadata: SafetensorsMetadata;
  /** In file order (by offset); for a sharded model, shard by shard. */
  tensors: SafetensorsTensorInfo[];
  /** Tensor by name, or undefined. */
  tensor(name: string): SafetensorsTensorInfo | undefined;
  /**
   * Read a tensor's bytes, or `byteLength` bytes from `byteOffset` within it (to stream a tensor too
   * large for one array). A fresh copy for files; a view for in-memory sources: do not mutate it.
   * ERR_TENSOR_NOT_FOUND for an unknown name.
   */
  readTensor(tensor: string | SafetensorsTensorInfo, byteOffset?: number, byteLength?: number): Uint8Array;
  /**
   * Read a tensor and convert every element to float32 with exact rounding (round to nearest even
   * where float32 cannot hold the value). ERR_UNSUPPORTED for the packed sub-byte and complex dtypes.
   */
  readTensorAsFloat32(tensor: string | SafetensorsTensorInfo): Float32Array;
  /** Release file handles. */
  close(): void;
}

/** One opened .safetensors file. Tensor data stays on disk until asked for. */
export interface SafetensorsFile extends SafetensorsTensorSet {
  /** Header length N as stored (including the space padding). */
  headerSize: number;
  /** Absolute offset of the byte buffer: 8 + N. */
  dataOffset: number;
  /** Total file size in bytes. */
  fileSize: number;
  /** Where the bytes come from (a path or "<memory>"). */
  name: string;
}

/** Tensor to write: data is produced lazily, one tensor at a time, so peak memory stays bounded. */
export interface SafetensorsTensorInput {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Returns exactly the tensor's bytes; called once, in file order, when that tensor is written. */
  data: () => Uint8Array | Promise<Uint8Array>;
}

export interface SafetensorsWriteInput {
  /** Written as `__metadata__` when given (even empty), omitted when undefined, as the crate does. */
  metadata?: SafetensorsMetadata;
  tensors: readonly SafetensorsTensorInput[];
}

export interface SafetensorsWriteProgress {
  /** Bytes written so far, header included, across all files of a sharded write. */
  bytesWritten: number;
  totalBytes: number;
  tensorsWritten: number;
  tensorCount: number;
  /** The tensor just written. */
  tensor: string;
}

export interface SafetensorsWriteOptions {
  onProgress?: (progress: SafetensorsWriteProgress) => void;
  signal?: AbortSignal;
}
