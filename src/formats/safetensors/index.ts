/**
 * safetensors: the public API of the reader, the writer and sharded checkpoints.
 * Not here: anything model-specific (tensor-name mapping lives in formats/hf/ and tools/).
 */
export {
  byteSizeOf,
  dtypeInfo,
  f8e4m3fnuzToF32,
  f8e4m3ToF32,
  f8e5m2fnuzToF32,
  f8e5m2ToF32,
  f8e8m0ToF32,
  int64ToF32,
  isSafetensorsDtype,
  SAFETENSORS_DTYPES,
  type SafetensorsDtype,
  type SafetensorsDtypeInfo,
  toFloat32Array,
} from "./dtypes.ts";
export { MAX_HEADER_SIZE, METADATA_KEY, openSafetensors, readSafetensors } from "./read.ts";
export {
  DEFAULT_INDEX_NAME,
  openSafetensorsModel,
  readSafetensorsIndex,
  type SafetensorsIndex,
  type SafetensorsModel,
  type SafetensorsShardedWriteOptions,
  type SafetensorsShardedWriteResult,
  writeSafetensorsSharded,
} from "./sharded.ts";
export type {
  SafetensorsFile,
  SafetensorsMetadata,
  SafetensorsTensorInfo,
  SafetensorsTensorInput,
  SafetensorsTensorSet,
  SafetensorsWriteInput,
  SafetensorsWriteOptions,
  SafetensorsWriteProgress,
} from "./types.ts";
export {
  planSafetensors,
  type SafetensorsPlan,
  type SafetensorsWriteResult,
  serializeSafetensors,
  writeSafetensors,
} from "./write.ts";
