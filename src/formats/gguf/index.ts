/**
 * Public API of the GGUF reader and writer. Everything other folders use from formats/gguf comes
 * through here (keys.ts is imported directly for its constants too).
 *
 * Reading:  readGguf(source) / openGguf(path) -> GgufFile (header parsed, tensor data lazy:
 *           file.readTensor(name)). Malformed input throws OwlError with a specific code.
 * Writing:  writeGguf(path, { version?, metadata, tensors }, { onProgress?, signal? }) streams
 *           tensor by tensor into a temp file and renames it into place. serializeGguf(input)
 *           builds a whole (small) file in memory; planGguf / serializeGgufHeader give the layout
 *           and header bytes; toWriteInput(file) copies an opened file.
 * Metadata getters (undefined when absent, ERR_GGUF_METADATA_TYPE when the type is wrong):
 *           getString, getNumber (any integer or float; 64-bit when safe), getBigInt, getBool,
 *           getArray, getStringArray, getNumberArray (the typed array as read).
 * Metadata constructors (range-checked, ERR_INVALID_ARGUMENT otherwise):
 *           gstr("x"), gbool(true), gu8/gi8/gu16/gi16/gu32/gi32(n), gu64/gi64(bigint | number),
 *           gf32(x), gf64(x); arrays garr.u8/i8/u16/i16/u32/i32/f32/f64([...]), garr.u64/i64
 *           ([...bigint]), garr.bools, garr.strings, garr.arrays([inner(garr.u8([1])), ...]).
 *           Example: new Map([["general.architecture", gstr("llama")], ["general.alignment", gu32(64)]]).
 */
export {
  describeGgufType,
  garr,
  gbool,
  getArray,
  getBigInt,
  getBool,
  getNumber,
  getNumberArray,
  getString,
  getStringArray,
  gf32,
  gf64,
  gi8,
  gi16,
  gi32,
  gi64,
  gstr,
  gu8,
  gu16,
  gu32,
  gu64,
  inner,
} from "./metadata.ts";
export {
  firstInvalidUtf8,
  GGML_MAX_NAME,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_LIMITS,
  GGUF_MAGIC,
  GGUF_MAX_ARRAY_DEPTH,
  GGUF_MAX_DIMS,
  GGUF_TYPE_NAMES,
  GGUF_TYPE_SIZE,
  openGguf,
  readGguf,
} from "./read.ts";
export type {
  GgufArray,
  GgufFile,
  GgufMetadata,
  GgufTensorInfo,
  GgufTensorInput,
  GgufValue,
  GgufValueTypeId,
  GgufValueTypeName,
  GgufWriteInput,
} from "./types.ts";
export { GgufValueType } from "./types.ts";
export {
  alignmentOf,
  type GgufLayout,
  type GgufWriteOptions,
  planGguf,
  serializeGguf,
  serializeGgufHeader,
  serializeGgufMetadata,
  toWriteInput,
  writeGguf,
} from "./write.ts";
