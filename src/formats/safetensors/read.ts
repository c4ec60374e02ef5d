/**
 * safetensors reader: parses and validates the header, then reads tensor data lazily by position.
 *
 * Layout (see types.ts): u64 N | N bytes of JSON header | byte buffer.
 * Validation follows the Rust crate's `read_metadata` and `Metadata::validate`, and the README's
 * rules: N at most 100,000,000 and inside the file before anything is read; the header starts with
 * '{', is valid UTF-8 and JSON with no duplicate keys; `__metadata__` maps strings to strings;
 * every dtype is known; shape products and byte sizes are checked for overflow; sorted by
 * data_offsets, the tensors cover the buffer exactly, with no overlap and no hole; and
 * end - begin = nElements * dtype size. Each rule has its own error code.
 * Where we differ from the crate, on purpose: stricter, the README's "MUST begin with {" is enforced
 * (the crate never added that check), duplicate keys are rejected everywhere (serde keeps the last
 * tensor of a duplicated name), and data_offsets and dimensions must be below 2^53; more lenient,
 * NOTE: JSON.parse cannot tell 2 from 2.0 or 2e0, so integer-valued numbers in shape and
 * data_offsets are accepted where serde wants integer literals.
 * Not here: writing (write.ts), multi-file checkpoints (sharded.ts).
 */
import { constants } from "node:buffer";
import { type ByteSource, FileSource } from "../../util/bytes.ts";
import { OwlError } from "../../util/errors.ts";
import { byteSizeOf, dtypeInfo, isSafetensorsDtype, SAFETENSORS_DTYPES, toFloat32Array } from "./dtypes.ts";
import { parseStrictJson } from "./json.ts";
import type { SafetensorsFile, SafetensorsMetadata, SafetensorsTensorInfo } from "./types.ts";

/** The crate's MAX_HEADER_SIZE. */
export const MAX_HEADER_SIZE = 100_000_000;

/** The largest typed array Node will allocate (4 GiB on Node 20). */
const MAX_ARRAY_BYTES = constants.MAX_LENGTH;

/** The reserved header key for free-form metadata. */
export const METADATA_KEY = "__metadata__";

/** Open a .safetensors file; only the header is read now. */
export function openSafetensors(path: string): SafetensorsFile {
  const source = new FileSource(path);
  try {
    return readSafetensors(source);
  } catch (e) {
    source.close();
    throw e;
  }
}

/** Parse a safetensors header from `source`. The returned file owns the source (close() closes it). */
export function readSafetensors(source: ByteSource): SafetensorsFile {
  const where = source.name;
  if (source.size < 8) {
    throw new OwlError(
      "ERR_TRUNCATED",
      `${where}: a safetensors file starts with an 8-byte header length but the file has ${source.size} bytes`,
      { details: { size: source.size } },
    );
  }
  const prefix = source.read(0, 8);
  const lo = readU32(prefix, 0);
  const hi = readU32(prefix, 4);
  if (hi !== 0 || lo > MAX_HEADER_SIZE) {
    const n = (BigInt(hi) << 32n) | BigInt(lo);
    throw new OwlError(
      "ERR_SAFETENSORS_HEADER_TOO_LARGE",
      `${where}: header length at byte 0 is ${n} but at most ${MAX_HEADER_SIZE} is allowed (not a safetensors file, or corrupt)`,
      { details: { headerSize: n.toString(), max: MAX_HEADER_SIZE } },
    );
  }
  const headerSize = lo;
  const dataOffset = 8 + headerSize;
  if (dataOffset > source.size) {
    throw new OwlError(
      "ERR_TRUNCATED",
      `${where}: header of ${headerSize} bytes ends at byte ${dataOffset} but the file has ${source.size} bytes (truncated download?)`,
      { details: { headerSize, size: source.size } },
    );
  }
  const headerBytes = source.read(8, headerSize);
  if (headerBytes[0] !== 0x7b) {
    const found = headerBytes.length === 0 ? "an empty header" : `byte 0x${hex2(headerBytes[0]!)}`;
    throw new OwlError(
      "ERR_SAFETENSORS_BAD_HEADER",
      `${where}: the JSON header must start with '{' (0x7b) at byte 8, found ${found}`,
      { details: { offset: 8 } },
    );
  }
  const parsed = parseStrictJson(headerBytes);
  if (!parsed.ok) {
    if (parsed.kind === "utf8") {
      throw new OwlError(
        "ERR_INVALID_UTF8",
        `${where}: header must be UTF-8 but has ${parsed.message} at byte ${8 + parsed.byteOffset}`,
        { details: { offset: 8 + parsed.byteOffset } },
      );
    }
    if (parsed.kind === "surrogate") {
      throw new OwlError(
        "ERR_INVALID_UTF8",
        `${where}: header string at byte ${8 + parsed.byteOffset} has ${parsed.message}, which is not valid Unicode`,
        { details: { offset: 8 + parsed.byteOffset } },
      );
    }
    if (parsed.kind === "duplicate") {
      throw new OwlError(
        "ERR_SAFETENSORS_DUPLICATE_KEY",
        `${where}: header has a ${parsed.message} at byte ${8 + parsed.byteOffset}; each key may appear once`,
        { details: { offset: 8 + parsed.byteOffset, key: parsed.key } },
      );
    }
    throw new OwlError(
      "ERR_SAFETENSORS_BAD_HEADER",
      `${where}: header (bytes 8 to ${dataOffset}) is not valid JSON: ${parsed.message}`,
    );
  }
  const header = parsed.value;
  if (!isPlainObject(header)) {
    throw new OwlError("ERR_SAFETENSORS_BAD_HEADER", `${where}: header must be a JSON object`);
  }

  const bufferSize = source.size - dataOffset;
  let metadata: SafetensorsMetadata = {};
  const parsedTensors: ParsedTensor[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = parseMetadata(value, where);
    else parsedTensors.push(parseTensorEntry(name, value, where));
  }

  // The crate sorts by data_offsets; ties (empty tensors) by name, for a deterministic order.
  parsedTensors.sort((a, b) => a.begin - b.begin || a.end - b.end || compareCodePoints(a.name, b.name));
  const tensors: SafetensorsTensorInfo[] = [];
  let covered = 0;
  let previous: string | undefined;
  for (const t of parsedTensors) {
    const info = dtypeInfo(t.dtype);
    const q = `${where}: tensor ${JSON.stringify(t.name)}`;
    if (t.end < t.begin) {
      throw new OwlError(
        "ERR_SAFETENSORS_BAD_HEADER",
        `${q} has data_offsets [${t.begin}, ${t.end}]: the end must not be before the begin`,
        { details: { tensor: t.name, begin: t.begin, end: t.end } },
      );
    }
    const nElements = shapeProduct(t.shape, q);
    const byteSize = byteSizeOf(info, nElements);
    if (byteSize === undefined) {
      throw new OwlError(
        "ERR_TENSOR_SHAPE",
        `${q}: ${nElements} elements of ${t.dtype} (${info.bits} bits each) are not a whole number of bytes below 2^53`,
        { details: { tensor: t.name, shape: t.shape, dtype: t.dtype } },
      );
    }
    if (t.end > bufferSize) {
      throw new OwlError(
        "ERR_TENSOR_OUT_OF_BOUNDS",
        `${q} ends at byte ${dataOffset + t.end} (data_offsets [${t.begin}, ${t.end}] + ${dataOffset}) but the file has ${source.size} bytes (truncated download?)`,
        { details: { tensor: t.name, begin: t.begin, end: t.end, dataOffset, size: source.size } },
      );
    }
    if (t.begin < covered) {
      throw new OwlError(
        "ERR_TENSOR_OVERLAP",
        `${q} has data_offsets [${t.begin}, ${t.end}] but tensor ${JSON.stringify(previous)} already covers the buffer up to ${covered}`,
        { details: { tensor: t.name, other: previous, begin: t.begin, end: t.end } },
      );
    }
    if (t.begin > covered) {
      throw new OwlError(
        "ERR_SAFETENSORS_INCOMPLETE_BUFFER",
        `${q} begins at buffer offset ${t.begin} but the tensors before it end at ${covered}: buffer bytes ${covered} to ${t.begin} belong to no tensor`,
        { details: { tensor: t.name, begin: t.begin, expected: covered } },
      );
    }
    if (t.end - t.begin !== byteSize) {
      throw new OwlError(
        "ERR_TENSOR_SHAPE",
        `${q}: shape [${t.shape.join(", ")}] of ${t.dtype} needs ${byteSize} bytes but data_offsets [${t.begin}, ${t.end}] span ${t.end - t.begin}`,
        { details: { tensor: t.name, expected: byteSize, found: t.end - t.begin } },
      );
    }
    covered = t.end;
    previous = t.name;
    tensors.push({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      begin: t.begin,
      end: t.end,
      fileOffset: dataOffset + t.begin,
      byteSize,
      nElements,
      file: where,
    });
  }
  if (covered !== bufferSize) {
    throw new OwlError(
      "ERR_SAFETENSORS_INCOMPLETE_BUFFER",
      `${where}: the tensors cover ${covered} bytes of the data buffer but it has ${bufferSize} (bytes ${dataOffset + covered} to ${source.size} belong to no tensor)`,
      { details: { covered, bufferSize } },
    );
  }
  return new SafetensorsFileImpl(source, metadata, tensors, headerSize);
}

interface ParsedTensor {
  name: string;
  dtype: SafetensorsTensorInfo["dtype"];
  shape: number[];
  begin: number;
  end: number;
}

function parseMetadata(value: unknown, where: string): SafetensorsMetadata {
  // serde reads `__metadata__` as Option<HashMap<String, String>>: null means none.
  if (value === null) return {};
  if (!isPlainObject(value)) {
    throw new OwlError(
      "ERR_SAFETENSORS_BAD_METADATA",
      `${where}: "__metadata__" must be an object of strings, found ${describe(value)}`,
    );
  }
  const entries: [string, string][] = [];
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw new OwlError(
        "ERR_SAFETENSORS_BAD_METADATA",
        `${where}: "__metadata__" values must be strings but ${JSON.stringify(k)} is ${describe(v)}`,
        { details: { key: k } },
      );
    }
    entries.push([k, v]);
  }
  // fromEntries defines own properties, so a key "__proto__" stays data, not a prototype.
  return Object.fromEntries(entries);
}

function parseTensorEntry(name: string, value: unknown, where: string): ParsedTensor {
  const q = `${where}: tensor ${JSON.stringify(name)}`;
  if (!isPlainObject(value)) {
    throw new OwlError(
      "ERR_SAFETENSORS_BAD_HEADER",
      `${q} must map to {"dtype", "shape", "data_offsets"}, found ${describe(value)}`,
      { details: { tensor: name } },
    );
  }
  // Unknown fields are ignored, as serde does by default.
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string") {
    throw new OwlError(
      "ERR_SAFETENSORS_BAD_HEADER",
      `${q}: "dtype" must be a string, found ${describe(dtype)}`,
      { details: { tensor: name } },
    );
  }
  if (!isSafetensorsDtype(dtype)) {
    throw new OwlError(
      "ERR_UNKNOWN_DTYPE",
      `${q}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${SAFETENSORS_DTYPES.join(", ")})`,
      { details: { tensor: name, dtype } },
    );
  }
  if (!Array.isArray(shape)) {
    throw new OwlError(
      "ERR_TENSOR_SHAPE",
      `${q}: "shape" must be an array of dimensions, found ${describe(shape)}`,
      { details: { tensor: name } },
    );
  }
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw new OwlError(
        "ERR_TENSOR_SHAPE",
        `${q}: dimensions must be integers from 0 to 2^53, found ${describe(d)} in "shape"`,
        { details: { tensor: name } },
      );
    }
  }
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    throw new OwlError(
      "ERR_SAFETENSORS_BAD_HEADER",
      `${q}: "data_offsets" must be [begin, end], found ${describe(offsets)}`,
      { details: { tensor: name } },
    );
  }
  for (const o of offsets) {
    if (typeof o !== "number" || !Number.isInteger(o) || o < 0) {
      throw new OwlError(
        "ERR_SAFETENSORS_BAD_HEADER",
        `${q}: data_offsets must be non-negative integers, found ${describe(o)}`,
        { details: { tensor: name } },
      );
    }
    if (!Number.isSafeInteger(o)) {
      throw new OwlError(
        "ERR_TENSOR_OUT_OF_BOUNDS",
        `${q}: data_offsets value ${o} is beyond any file this reader can address (2^53 bytes)`,
        { details: { tensor: name } },
      );
    }
  }
  return { name, dtype, shape: shape as number[], begin: offsets[0] as number, end: offsets[1] as number };
}

/** Product of the dimensions in order, failing as the crate does (checked_mul) on overflow. */
function shapeProduct(shape: readonly number[], q: string): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) {
      throw new OwlError(
        "ERR_TENSOR_SHAPE",
        `${q}: shape [${shape.join(", ")}] has more than 2^53 elements (overflow)`,
        { details: { shape } },
      );
    }
  }
  return n;
}

class SafetensorsFileImpl implements SafetensorsFile {
  readonly name: string;
  readonly fileSize: number;
  readonly dataOffset: number;
  private readonly byName: Map<string, SafetensorsTensorInfo>;

  constructor(
    private readonly source: ByteSource,
    readonly metadata: SafetensorsMetadata,
    readonly tensors: SafetensorsTensorInfo[],
    readonly headerSize: number,
  ) {
    this.name = source.name;
    this.fileSize = source.size;
    this.dataOffset = 8 + headerSize;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  tensor(name: string): SafetensorsTensorInfo | undefined {
    return this.byName.get(name);
  }

  readTensor(tensor: string | SafetensorsTensorInfo, byteOffset = 0, byteLength?: number): Uint8Array {
    const t = this.resolve(tensor);
    const length = byteLength ?? t.byteSize - byteOffset;
    if (
      !Number.isSafeInteger(byteOffset) ||
      !Number.isSafeInteger(length) ||
      byteOffset < 0 ||
      length < 0 ||
      byteOffset + length > t.byteSize
    ) {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `range of ${length} bytes at ${byteOffset} is outside tensor ${JSON.stringify(t.name)} of ${t.byteSize} bytes`,
      );
    }
    if (length > MAX_ARRAY_BYTES) {
      throw new OwlError(
        "ERR_UNSUPPORTED",
        `tensor ${JSON.stringify(t.name)}: ${length} bytes do not fit in one array (at most ${MAX_ARRAY_BYTES})`,
        { hint: "read it in pieces with readTensor(tensor, byteOffset, byteLength)" },
      );
    }
    return this.source.read(t.fileOffset + byteOffset, length);
  }

  readTensorAsFloat32(tensor: string | SafetensorsTensorInfo): Float32Array {
    const t = this.resolve(tensor);
    if (t.nElements * 4 > MAX_ARRAY_BYTES) {
      throw new OwlError(
        "ERR_UNSUPPORTED",
        `tensor ${JSON.stringify(t.name)}: ${t.nElements} float32 values do not fit in one array`,
        { hint: "read it in pieces with readTensor(tensor, byteOffset, byteLength) and toFloat32Array()" },
      );
    }
    return toFloat32Array(t.dtype, this.readTensor(t), t.nElements);
  }

  close(): void {
    this.source.close();
  }

  private resolve(tensor: string | SafetensorsTensorInfo): SafetensorsTensorInfo {
    const name = typeof tensor === "string" ? tensor : tensor.name;
    const t = this.byName.get(name);
    if (!t) {
      throw new OwlError("ERR_TENSOR_NOT_FOUND", `${this.name} has no tensor ${JSON.stringify(name)}`, {
        details: { tensor: name },
      });
    }
    return t;
  }
}

// ---- small helpers ----

function readU32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, "0");
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A short description of a JSON value for messages: type plus a clipped rendering. */
export function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  const kind =
    v === null
      ? "null"
      : Array.isArray(v)
        ? "an array"
        : typeof v === "object"
          ? "an object"
          : `a ${typeof v}`;
  return `${kind} ${s.length > 60 ? `${s.slice(0, 57)}...` : s}`;
}

/** Order of Rust's String comparison: UTF-8 bytes, which is code point order (not UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xd800-0xdfff) encode code points above every other UTF-16 unit.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
