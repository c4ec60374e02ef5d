/**
 * GGUF reader: parses the header, metadata and tensor infos of a GGUF v2/v3 file through a
 * ByteSource, in chunks, and leaves tensor data on disk until readTensor asks for it. Opening a
 * 20 GB file reads only its header.
 *
 * Byte layout (little-endian; see types.ts for the full picture):
 *   0  u32 magic "GGUF" (bytes 47 47 55 46)
 *   4  u32 version (2 or 3)
 *   8  u64 n_tensors
 *   16 u64 n_kv
 *   24 n_kv x { string key | u32 value_type | value }
 *      n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 ggml_type | u64 offset }
 *      zero padding to `general.alignment` (only when n_tensors > 0, as ggml/src/gguf.cpp does)
 *      tensor data; offsets are relative to the start of this section
 * string = u64 byte length + UTF-8 (no NUL); array = u32 item_type + u64 count + items, where an
 * item of an ARRAY array is itself { u32 item_type | u64 count | items } (nested arrays).
 *
 * Every count, length, offset and dimension is checked against the bytes left in the file before
 * anything is allocated (DESIGN.md, "Errors"). Semantics follow ggml/src/gguf.cpp with these
 * deliberate differences: nested arrays are accepted (the spec allows them, gguf.cpp does not);
 * a bool byte other than 0 or 1 is rejected (the spec calls it invalid; gguf.cpp reads it as
 * true), so that read-then-write is byte-identical; tensors may sit in any order with gaps
 * (gguf.cpp requires them packed in order), but they must be aligned, inside the file and not
 * overlap; tensor names of 64 bytes or more are accepted (gguf.cpp rejects them; the writer does
 * too). n_dims may be 0..4, as in gguf.cpp (0 means a scalar).
 * Not here: writing (write.ts), typed metadata getters (metadata.ts).
 */
import { constants as bufferConstants } from "node:buffer";
import { type ByteSource, FileSource } from "../../util/bytes.ts";
import { OwlError } from "../../util/errors.ts";
import { GGML_TYPES, type GgmlTypeInfo, ggmlTypeInfo } from "../../util/ggml-types.ts";
import type {
  GgufArray,
  GgufFile,
  GgufMetadata,
  GgufTensorInfo,
  GgufValue,
  GgufValueTypeName,
} from "./types.ts";

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** GGML_MAX_DIMS in ggml.h. */
export const GGUF_MAX_DIMS = 4;
/** GGML_MAX_NAME in ggml.h: llama.cpp rejects tensor names of this many bytes or more. */
export const GGML_MAX_NAME = 64;
/** Deepest ARRAY-of-ARRAY nesting accepted (real files use at most 2; this bounds recursion). */
export const GGUF_MAX_ARRAY_DEPTH = 16;
/**
 * Longest string accepted, in bytes: V8 strings hold at most 2^29 - 24 UTF-16 units, and n UTF-8
 * bytes never decode to more than n units. gguf.cpp allows 1 GiB; no real file comes near either.
 */
export const GGUF_MAX_STRING_BYTES = 2 ** 29 - 24;
/**
 * owl's own limits, far beyond any real file (the largest vocabularies hold ~256k tokens, the
 * largest models ~100k tensors). Checking counts against the bytes left is not enough for a
 * 20 GB model, whose tensor data would "hold" billions of claimed items: these caps keep a
 * corrupt count from exhausting memory or V8's array limits (a JS array past ~1.3e8 elements
 * aborts the process, uncatchably) before the garbage is noticed.
 */
export const GGUF_LIMITS = {
  /** Tensor infos and metadata entries (each also kept in a Map, which V8 caps at 2^24). */
  maxTensors: 2 ** 22,
  maxKv: 2 ** 22,
  /** Items of a STRING, BOOL or ARRAY array (kept in a JS array). */
  maxArrayItems: 2 ** 26,
  /** Bytes of a numeric array (kept in one typed array). */
  maxArrayBytes: 2 ** 28,
} as const;

/** Value type names by id (enum gguf_type in gguf.h). */
export const GGUF_TYPE_NAMES: readonly GgufValueTypeName[] = [
  "UINT8",
  "INT8",
  "UINT16",
  "INT16",
  "UINT32",
  "INT32",
  "FLOAT32",
  "BOOL",
  "STRING",
  "ARRAY",
  "UINT64",
  "INT64",
  "FLOAT64",
];

/** Bytes of one item of a fixed-size type; 0 for STRING and ARRAY. */
export const GGUF_TYPE_SIZE: Readonly<Record<GgufValueTypeName, number>> = {
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  UINT32: 4,
  INT32: 4,
  FLOAT32: 4,
  BOOL: 1,
  STRING: 0,
  ARRAY: 0,
  UINT64: 8,
  INT64: 8,
  FLOAT64: 8,
};

/** Fewest bytes an item of each type can take on disk: used to bound counts before allocating. */
function minItemBytes(t: GgufValueTypeName): number {
  if (t === "STRING") return 8; // u64 length, possibly empty
  if (t === "ARRAY") return 12; // u32 item type + u64 count, possibly empty
  return GGUF_TYPE_SIZE[t];
}

// Each KV needs a u64 key length, a non-empty key, a u32 type and at least one byte of value.
const MIN_KV_BYTES = 8 + 1 + 4 + 1;
// Each tensor info needs a u64 name length, u32 n_dims, u32 type and u64 offset.
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8;
// Header reads go through the source in chunks of this size (larger items are read whole).
const CHUNK_BYTES = 64 * 1024;

// NOTE: ignoreBOM keeps a leading U+FEFF in the string; by default TextDecoder drops it, and
// vocabularies hold a token that is exactly the BOM (llama-spm has one).
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// NOTE: numeric arrays are copied byte for byte into typed arrays, which use the host's byte
// order. GGUF here is little-endian, as are all hosts owl targets; refuse rather than misread.
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
export function requireLittleEndianHost(): void {
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new OwlError("ERR_UNSUPPORTED", "owl reads and writes GGUF only on little-endian hosts");
  }
}

/** Index where the first invalid UTF-8 sequence of `b` starts (WHATWG rules), or -1 when valid. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f; // no UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else return i;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return -1;
}

/** "metadata "k"" or, for an array item, "metadata "k"[5]". */
function label(what: string, index: number): string {
  return index < 0 ? what : `${what}[${index}]`;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

/**
 * A forward cursor over a ByteSource that keeps one chunk of it in memory. Every read checks the
 * bytes left first; `what` names the field for error messages.
 */
class HeaderCursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;

  constructor(readonly src: ByteSource) {}

  get remaining(): number {
    return this.src.size - this.pos;
  }

  /**
   * Make [pos, pos + n) resident; returns its index in `buf`. Does not advance. `what` (with
   * `index` for an array item) names the field; messages are built only when something fails, so
   * the hot loops over 150k-string arrays pay nothing for them.
   */
  private need(n: number, what: string, index = -1): number {
    const rel = this.pos - this.bufStart;
    if (rel >= 0 && rel + n <= this.buf.length) return rel;
    if (n > this.remaining) {
      throw new OwlError(
        "ERR_TRUNCATED",
        `${label(what, index)}: ${n} bytes needed at byte ${this.pos} but ${this.src.name} ends at byte ${this.src.size} (truncated download?)`,
        { details: { offset: this.pos, needed: n, size: this.src.size } },
      );
    }
    const len = Math.min(Math.max(n, CHUNK_BYTES), this.remaining);
    this.buf = this.src.read(this.pos, len);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.bufStart = this.pos;
    return 0;
  }

  bytes(n: number, what: string, index = -1): Uint8Array {
    const i = this.need(n, what, index);
    this.pos += n;
    return this.buf.subarray(i, i + n);
  }

  /** Copy n bytes into `target` (its full length), reading large spans straight from the source. */
  copyInto(target: Uint8Array, what: string): void {
    const n = target.byteLength;
    const rel = this.pos - this.bufStart;
    if (n > CHUNK_BYTES && !(rel >= 0 && rel + n <= this.buf.length)) {
      if (n > this.remaining) this.need(n, what); // throws the truncation error
      this.src.readInto(this.pos, target);
      this.pos += n;
      return;
    }
    target.set(this.bytes(n, what));
  }

  u8(what: string): number {
    const i = this.need(1, what);
    this.pos += 1;
    return this.buf[i]!;
  }
  u32(what: string): number {
    const i = this.need(4, what);
    this.pos += 4;
    return this.view.getUint32(i, true);
  }
  u64(what: string): bigint {
    const i = this.need(8, what);
    this.pos += 8;
    return this.view.getBigUint64(i, true);
  }
  scalar(t: GgufValueTypeName, what: string): number | bigint {
    const i = this.need(GGUF_TYPE_SIZE[t], what);
    const v = this.view;
    this.pos += GGUF_TYPE_SIZE[t];
    switch (t) {
      case "UINT8":
        return v.getUint8(i);
      case "INT8":
        return v.getInt8(i);
      case "UINT16":
        return v.getUint16(i, true);
      case "INT16":
        return v.getInt16(i, true);
      case "UINT32":
        return v.getUint32(i, true);
      case "INT32":
        return v.getInt32(i, true);
      case "FLOAT32":
        return v.getFloat32(i, true);
      case "FLOAT64":
        return v.getFloat64(i, true);
      case "UINT64":
        return v.getBigUint64(i, true);
      case "INT64":
        return v.getBigInt64(i, true);
      default:
        throw new Error(`internal error: ${t} is not a scalar type`);
    }
  }

  /** A GGUF string: u64 length + UTF-8 bytes. */
  string(what: string, index = -1): string {
    const lenAt = this.pos;
    const i = this.need(8, what, index);
    const lo = this.view.getUint32(i, true);
    const hi = this.view.getUint32(i + 4, true);
    this.pos += 8;
    if (hi !== 0 || lo > this.remaining || lo > GGUF_MAX_STRING_BYTES) {
      const len = this.view.getBigUint64(i, true);
      const limit = Math.min(this.remaining, GGUF_MAX_STRING_BYTES);
      throw new OwlError(
        "ERR_GGUF_BAD_STRING",
        `${label(what, index)}: string length at byte ${lenAt} is ${len}, but at most ${limit} bytes can follow (the file has ${this.src.size} bytes; corrupt or truncated file?)`,
        { details: { offset: lenAt, length: len, remaining: this.remaining, size: this.src.size } },
      );
    }
    return this.utf8(lo, what, index);
  }

  /** Decode n bytes at pos as UTF-8 (fatal), naming the first bad byte's offset on failure. */
  utf8(n: number, what: string, index = -1): string {
    const at = this.pos;
    const b = this.bytes(n, what, index);
    try {
      return utf8.decode(b);
    } catch (e) {
      const bad = Math.max(0, firstInvalidUtf8(b));
      throw new OwlError(
        "ERR_INVALID_UTF8",
        `${label(what, index)}: invalid UTF-8 at byte ${at + bad} (string of ${n} bytes at byte ${at}; found ${hex(b.subarray(bad, bad + 4))})`,
        { details: { offset: at + bad, stringOffset: at, length: n }, cause: e },
      );
    }
  }

  /**
   * n GGUF strings in a row (an ARRAY of STRING). Decoding each string with its own TextDecoder
   * call costs ~0.4 us of call overhead, 60 ms for a 150k-token vocabulary; instead the string
   * bytes are gathered into batches of ~1 MiB, each batch is decoded with one call and cut into
   * strings by UTF-16 position (3x faster). Concatenated strings are valid UTF-8 exactly when the
   * whole batch is and no string starts with a continuation byte, so validation is unchanged. On
   * any problem the strings are re-read one by one, which reports the precise error.
   */
  stringArray(n: number, what: string): string[] {
    const start = this.pos;
    // Arrays grow by push, so memory follows the strings actually read, not the claimed count.
    const items: string[] = [];
    if (this.stringArrayBatched(n, items, what)) return items;
    this.pos = start;
    for (let i = 0; i < n; i++) this.string(what, i);
    throw new Error(`internal error: batched decoding of ${what} failed but no string is invalid`);
  }

  private scratch = new Uint8Array(0);

  /** The fast path of stringArray; false when something is wrong (nothing is thrown). */
  private stringArrayBatched(n: number, items: string[], what: string): boolean {
    let units = new Uint32Array(1024); // UTF-16 end position of item first + j within the batch
    let w = 0; // bytes in scratch
    let u = 0; // UTF-16 units in scratch
    let first = 0; // first item of the batch
    for (let i = 0; i < n; i++) {
      let rel = this.pos - this.bufStart;
      if (rel < 0 || rel + 8 > this.buf.length) {
        if (this.remaining < 8) return false;
        rel = this.need(8, what, i);
      }
      const len = this.view.getUint32(rel, true);
      if (
        this.view.getUint32(rel + 4, true) !== 0 ||
        len > this.remaining - 8 ||
        len > GGUF_MAX_STRING_BYTES
      ) {
        return false;
      }
      this.pos += 8;
      rel += 8;
      if (rel + len > this.buf.length) rel = this.need(len, what, i);
      const b = this.buf;
      if (len > 0 && (b[rel]! & 0xc0) === 0x80) return false;
      if (w + len > this.scratch.length) {
        const grown = new Uint8Array(Math.max(2 * this.scratch.length, w + len, 1 << 16));
        grown.set(this.scratch.subarray(0, w));
        this.scratch = grown;
      }
      const sc = this.scratch;
      for (let k = rel, end = rel + len; k < end; k++) {
        const c = b[k]!;
        sc[w++] = c;
        if ((c & 0xc0) !== 0x80) u += c >= 0xf0 ? 2 : 1; // 4-byte sequences become surrogate pairs
      }
      this.pos += len;
      if (i - first >= units.length) {
        const grown = new Uint32Array(units.length * 2);
        grown.set(units);
        units = grown;
      }
      units[i - first] = u;
      if (w >= STRING_BATCH_BYTES || i === n - 1) {
        let big: string;
        try {
          big = utf8.decode(sc.subarray(0, w));
        } catch {
          return false;
        }
        let prev = 0;
        for (let j = 0; j <= i - first; j++) {
          const end = units[j]!;
          items.push(big.slice(prev, end));
          prev = end;
        }
        first = i + 1;
        w = 0;
        u = 0;
      }
    }
    if (this.scratch.length > 4 * STRING_BATCH_BYTES) this.scratch = new Uint8Array(0);
    return true;
  }
}

const STRING_BATCH_BYTES = 1 << 20;

function typeName(id: number, at: number, what: string): GgufValueTypeName {
  const name = GGUF_TYPE_NAMES[id];
  if (name === undefined) {
    throw new OwlError(
      "ERR_GGUF_BAD_VALUE_TYPE",
      `${what}: value type ${id} at byte ${at} is not a GGUF type (expected 0..12: ${GGUF_TYPE_NAMES.map((n, i) => `${i} ${n}`).join(", ")})`,
      { details: { offset: at, typeId: id } },
    );
  }
  return name;
}

/**
 * Checks that `count` items of at least `minBytes` each fit in what is left, and that the count
 * is within owl's `limit`; returns the count.
 */
function checkCount(
  c: HeaderCursor,
  count: bigint,
  minBytes: number,
  at: number,
  what: string,
  limit: number,
): number {
  if (count > BigInt(limit)) {
    throw new OwlError(
      "ERR_GGUF_BAD_COUNT",
      `${what}: count at byte ${at} is ${count}, more than the ${limit} owl reads (corrupt file?)`,
      { details: { offset: at, count, max: limit, size: c.src.size } },
    );
  }
  const fits = Math.floor(c.remaining / minBytes);
  if (count > BigInt(fits)) {
    throw new OwlError(
      "ERR_GGUF_BAD_COUNT",
      `${what}: count at byte ${at} is ${count}, but the ${c.remaining} bytes left in ${c.src.name} can hold at most ${fits} (each needs at least ${minBytes} bytes; corrupt or truncated file?)`,
      { details: { offset: at, count, max: fits, remaining: c.remaining, size: c.src.size } },
    );
  }
  return Number(count);
}

function readArray(c: HeaderCursor, what: string, depth: number): GgufArray {
  const typeAt = c.pos;
  const itemType = typeName(c.u32(`item type of ${what}`), typeAt, what);
  const countAt = c.pos;
  const size = GGUF_TYPE_SIZE[itemType];
  const limit =
    itemType === "STRING" || itemType === "ARRAY" || itemType === "BOOL"
      ? GGUF_LIMITS.maxArrayItems
      : GGUF_LIMITS.maxArrayBytes / size;
  const n = checkCount(c, c.u64(`item count of ${what}`), minItemBytes(itemType), countAt, what, limit);
  switch (itemType) {
    case "UINT8": {
      const items = new Uint8Array(n);
      c.copyInto(items, what);
      return { itemType, items };
    }
    case "INT8":
      return { itemType, items: copied(c, new Int8Array(n), what) };
    case "UINT16":
      return { itemType, items: copied(c, new Uint16Array(n), what) };
    case "INT16":
      return { itemType, items: copied(c, new Int16Array(n), what) };
    case "UINT32":
      return { itemType, items: copied(c, new Uint32Array(n), what) };
    case "INT32":
      return { itemType, items: copied(c, new Int32Array(n), what) };
    case "FLOAT32":
      return { itemType, items: copied(c, new Float32Array(n), what) };
    case "FLOAT64":
      return { itemType, items: copied(c, new Float64Array(n), what) };
    case "UINT64":
      return { itemType, items: copied(c, new BigUint64Array(n), what) };
    case "INT64":
      return { itemType, items: copied(c, new BigInt64Array(n), what) };
    case "BOOL": {
      const at = c.pos;
      const raw = c.bytes(n, what);
      const items: boolean[] = [];
      for (let i = 0; i < n; i++) items.push(readBoolByte(raw[i]!, at + i, what));
      return { itemType, items };
    }
    case "STRING":
      return { itemType, items: c.stringArray(n, what) };
    case "ARRAY": {
      if (depth >= GGUF_MAX_ARRAY_DEPTH) {
        throw new OwlError(
          "ERR_GGUF_BAD_VALUE_TYPE",
          `${what}: arrays nested more than ${GGUF_MAX_ARRAY_DEPTH} deep at byte ${typeAt}`,
          { details: { offset: typeAt } },
        );
      }
      const items: GgufArray[] = [];
      for (let i = 0; i < n; i++) items.push(readArray(c, `${what}[${i}]`, depth + 1));
      return { itemType, items };
    }
  }
}

/** Fill a fresh typed array from the file's bytes (little-endian host, as ggml assumes). */
function copied<T extends ArrayBufferView>(c: HeaderCursor, out: T, what: string): T {
  c.copyInto(new Uint8Array(out.buffer, out.byteOffset, out.byteLength), what);
  return out;
}

function readBoolByte(b: number, at: number, what: string): boolean {
  if (b > 1) {
    throw new OwlError(
      "ERR_GGUF_BAD_VALUE_TYPE",
      `${what}: BOOL at byte ${at} is ${b}, expected 0 or 1 (the GGUF spec calls other values invalid)`,
      { details: { offset: at, value: b } },
    );
  }
  return b === 1;
}

function readValue(c: HeaderCursor, t: GgufValueTypeName, what: string): GgufValue {
  switch (t) {
    case "STRING":
      return { type: t, value: c.string(what) };
    case "ARRAY":
      return { type: t, value: readArray(c, what, 0) };
    case "BOOL": {
      const at = c.pos;
      return { type: t, value: readBoolByte(c.u8(what), at, what) };
    }
    case "UINT64":
    case "INT64":
      return { type: t, value: c.scalar(t, what) as bigint };
    default:
      return { type: t, value: c.scalar(t, what) as number };
  }
}

function u64ToSafe(
  v: bigint,
  at: number,
  what: string,
  code: "ERR_GGUF_BAD_TENSOR_INFO" | "ERR_TENSOR_OUT_OF_BOUNDS",
) {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new OwlError(code, `${what} at byte ${at} is ${v}, expected at most ${Number.MAX_SAFE_INTEGER}`, {
      details: { offset: at, value: v },
    });
  }
  return Number(v);
}

function readHeaderStart(c: HeaderCursor): { version: 2 | 3; nTensors: number; nKv: number } {
  const { src } = c;
  const head = src.read(0, Math.min(4, src.size));
  const magic = new Uint8Array([0x47, 0x47, 0x55, 0x46]);
  if (!head.every((b, i) => b === magic[i])) {
    const shown = [...head].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : "?")).join("");
    throw new OwlError(
      "ERR_GGUF_BAD_MAGIC",
      `${src.name} is not a GGUF file: expected magic "GGUF" (47 47 55 46) at byte 0, found "${shown}" (${hex(head)})`,
      { details: { found: hex(head) } },
    );
  }
  c.pos = 0;
  c.u32("GGUF magic");
  const version = c.u32("GGUF version");
  if (version !== 2 && version !== 3) {
    const swapped = version !== 0 && (version & 0xffff) === 0;
    const v = `0x${version.toString(16).padStart(8, "0")}`;
    throw new OwlError(
      "ERR_GGUF_UNSUPPORTED_VERSION",
      swapped
        ? `${src.name}: GGUF version at byte 4 reads ${version} (${v}); this looks like a big-endian GGUF file (version ${(((version >>> 24) & 0xff) | ((version >>> 8) & 0xff00)) >>> 0} byte-swapped), and owl reads only little-endian GGUF`
        : version === 1
          ? `${src.name}: GGUF version 1 is not supported (expected 2 or 3; version 1 used 32-bit counts and llama.cpp dropped it)`
          : `${src.name}: unsupported GGUF version ${version} at byte 4, expected 2 or 3`,
      {
        details: { version, bigEndian: swapped },
        hint: swapped
          ? "convert the file to little-endian (gguf-py can)"
          : "re-convert the model with a current llama.cpp",
      },
    );
  }
  const tAt = c.pos;
  const tRaw = c.u64("tensor count");
  const kvAt = c.pos;
  const kvRaw = c.u64("metadata key-value count");
  const nTensors = checkCount(
    c,
    tRaw,
    MIN_TENSOR_INFO_BYTES,
    tAt,
    "tensor count (n_tensors)",
    GGUF_LIMITS.maxTensors,
  );
  if (kvRaw > BigInt(GGUF_LIMITS.maxKv)) {
    throw new OwlError(
      "ERR_GGUF_BAD_COUNT",
      `metadata key-value count (n_kv) at byte ${kvAt} is ${kvRaw}, more than the ${GGUF_LIMITS.maxKv} owl reads (corrupt file?)`,
      { details: { offset: kvAt, count: kvRaw, max: GGUF_LIMITS.maxKv, size: src.size } },
    );
  }
  const fitKv = Math.floor((c.remaining - nTensors * MIN_TENSOR_INFO_BYTES) / MIN_KV_BYTES);
  if (kvRaw > BigInt(fitKv)) {
    throw new OwlError(
      "ERR_GGUF_BAD_COUNT",
      `metadata key-value count (n_kv) at byte ${kvAt} is ${kvRaw}, but the ${c.remaining} bytes after the header can hold at most ${fitKv} (each needs at least ${MIN_KV_BYTES} bytes, and ${nTensors} tensor infos at least ${MIN_TENSOR_INFO_BYTES} each; corrupt or truncated file?)`,
      { details: { offset: kvAt, count: kvRaw, max: fitKv, size: src.size } },
    );
  }
  return { version, nTensors, nKv: Number(kvRaw) };
}

/**
 * Parse a GGUF file from a ByteSource. Reads only the header (metadata and tensor infos); tensor
 * data is read on demand by readTensor. Throws OwlError with a specific code on any malformed
 * input. The source stays open and is closed by `close()` of the result.
 */
export function readGguf(source: ByteSource): GgufFile {
  requireLittleEndianHost();
  const c = new HeaderCursor(source);
  const { version, nTensors, nKv } = readHeaderStart(c);

  // Metadata.
  const metadata: GgufMetadata = new Map();
  const keyAt = new Map<string, number>();
  for (let i = 0; i < nKv; i++) {
    const at = c.pos;
    const key = c.string(`metadata key ${i}`);
    if (key.length === 0) {
      throw new OwlError("ERR_GGUF_BAD_STRING", `metadata key ${i} at byte ${at} is empty`, {
        details: { offset: at, index: i },
      });
    }
    const prev = keyAt.get(key);
    if (prev !== undefined) {
      throw new OwlError(
        "ERR_GGUF_DUPLICATE_KEY",
        `metadata key "${key}" appears twice: at byte ${prev} and again at byte ${at} (entry ${i})`,
        { details: { key, offset: at, firstOffset: prev } },
      );
    }
    keyAt.set(key, at);
    const tAt = c.pos;
    const t = typeName(c.u32(`value type of "${key}"`), tAt, `metadata "${key}"`);
    metadata.set(key, readValue(c, t, `metadata "${key}"`));
  }

  // Alignment: must be a UINT32 power of two (gguf.cpp rejects any other type).
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get("general.alignment");
  if (al !== undefined) {
    if (al.type !== "UINT32" || al.value === 0 || (al.value & (al.value - 1)) !== 0) {
      const found = al.type === "UINT32" ? `${al.value}` : `a ${al.type}`;
      throw new OwlError(
        "ERR_GGUF_BAD_ALIGNMENT",
        `general.alignment must be a UINT32 power of two, found ${found} (at byte ${keyAt.get("general.alignment")})`,
        { details: { type: al.type, value: al.type === "ARRAY" ? undefined : al.value } },
      );
    }
    alignment = al.value;
  }

  // Tensor infos.
  const tensors: GgufTensorInfo[] = [];
  const byName = new Map<string, GgufTensorInfo>();
  const nameAt = new Map<string, number>();
  for (let i = 0; i < nTensors; i++) {
    const at = c.pos;
    const name = c.string(`name of tensor ${i}`);
    const prev = nameAt.get(name);
    if (prev !== undefined) {
      throw new OwlError(
        "ERR_GGUF_DUPLICATE_TENSOR",
        `tensor name "${name}" appears twice: tensor infos at byte ${prev} and at byte ${at} (tensor ${i})`,
        { details: { tensor: name, offset: at, firstOffset: prev } },
      );
    }
    nameAt.set(name, at);
    const what = `tensor "${name}"`;
    const ndAt = c.pos;
    const nDims = c.u32(`n_dims of ${what}`);
    if (nDims > GGUF_MAX_DIMS) {
      throw new OwlError(
        "ERR_GGUF_BAD_TENSOR_INFO",
        `${what}: n_dims at byte ${ndAt} is ${nDims}, expected 0..${GGUF_MAX_DIMS}`,
        { details: { tensor: name, offset: ndAt, nDims } },
      );
    }
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const dAt = c.pos;
      dims.push(
        u64ToSafe(
          c.u64(`dimension ${d} of ${what}`),
          dAt,
          `${what}: dimension ${d}`,
          "ERR_GGUF_BAD_TENSOR_INFO",
        ),
      );
    }
    const typeAt = c.pos;
    const typeId = c.u32(`ggml type of ${what}`);
    const offAt = c.pos;
    const offRaw = c.u64(`data offset of ${what}`);
    const type = ggmlTypeInfo(typeId);
    if (type === undefined) {
      throw new OwlError(
        "ERR_UNKNOWN_TENSOR_TYPE",
        `${what}: unknown ggml type id ${typeId} at byte ${typeAt}; expected one of ${GGML_TYPES.map((t) => `${t.id} (${t.name})`).join(", ")}`,
        { details: { tensor: name, offset: typeAt, typeId } },
      );
    }
    const { nElements, byteSize } = tensorSize(name, dims, type);
    const offset = u64ToSafe(offRaw, offAt, `${what}: data offset`, "ERR_TENSOR_OUT_OF_BOUNDS");
    if (offset % alignment !== 0) {
      throw new OwlError(
        "ERR_GGUF_MISALIGNED_TENSOR",
        `${what}: data offset ${offset} (at byte ${offAt}) is not a multiple of the alignment ${alignment}`,
        { details: { tensor: name, offset: offAt, dataOffset: offset, alignment } },
      );
    }
    const info: GgufTensorInfo = { name, dims, type, offset, fileOffset: 0, byteSize, nElements };
    tensors.push(info);
    byName.set(name, info);
  }

  // The data section starts at the next aligned byte; gguf.cpp pads only when there are tensors.
  const headerEnd = c.pos;
  const dataOffset = nTensors > 0 ? Math.ceil(headerEnd / alignment) * alignment : headerEnd;
  for (const t of tensors) {
    t.fileOffset = dataOffset + t.offset;
    const end = t.fileOffset + t.byteSize;
    if (end > source.size) {
      throw new OwlError(
        "ERR_TENSOR_OUT_OF_BOUNDS",
        `tensor "${t.name}" ends at byte ${end} but ${source.name} has ${source.size} bytes (truncated download?)`,
        {
          details: { tensor: t.name, start: t.fileOffset, end, size: source.size },
          hint: "re-download the file",
        },
      );
    }
  }
  checkOverlap(tensors);

  return makeFile(source, { version, metadata, tensors, byName, alignment, dataOffset });
}

/** Element count and byte size of a tensor, checking the row against the block size. */
function tensorSize(
  name: string,
  dims: number[],
  type: GgmlTypeInfo,
): { nElements: number; byteSize: number } {
  const row = dims[0] ?? 1;
  if (row % type.blockSize !== 0) {
    throw new OwlError(
      "ERR_TENSOR_SHAPE",
      `tensor "${name}" of type ${type.name} has rows of ${row} values, expected a multiple of the block size ${type.blockSize}`,
      { details: { tensor: name, type: type.name, row, blockSize: type.blockSize } },
    );
  }
  let nElements = 1;
  for (const d of dims) nElements *= d;
  // Sizes beyond 2^53 cannot be inside any file; report them as out of bounds without rounding
  // noise, and treat a zero dimension as an empty tensor whatever the others are (as ggml does).
  const byteSize = nElements === 0 ? 0 : (nElements / type.blockSize) * type.bytesPerBlock;
  if (!Number.isSafeInteger(byteSize) || !Number.isSafeInteger(nElements)) {
    throw new OwlError(
      "ERR_TENSOR_OUT_OF_BOUNDS",
      `tensor "${name}" with shape [${dims.join(", ")}] of type ${type.name} would take more than 2^53 bytes`,
      { details: { tensor: name, dims } },
    );
  }
  return { nElements, byteSize };
}

function checkOverlap(tensors: GgufTensorInfo[]): void {
  const nonEmpty = tensors.filter((t) => t.byteSize > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < nonEmpty.length; i++) {
    const a = nonEmpty[i - 1]!;
    const b = nonEmpty[i]!;
    if (a.offset + a.byteSize > b.offset) {
      throw new OwlError(
        "ERR_TENSOR_OVERLAP",
        `tensor "${a.name}" (bytes ${a.fileOffset}..${a.fileOffset + a.byteSize}) overlaps tensor "${b.name}" (bytes ${b.fileOffset}..${b.fileOffset + b.byteSize})`,
        {
          details: {
            tensors: [a.name, b.name],
            ranges: [a.fileOffset, a.fileOffset + a.byteSize, b.fileOffset],
          },
        },
      );
    }
  }
}

function makeFile(
  source: ByteSource,
  h: {
    version: 2 | 3;
    metadata: GgufMetadata;
    tensors: GgufTensorInfo[];
    byName: Map<string, GgufTensorInfo>;
    alignment: number;
    dataOffset: number;
  },
): GgufFile {
  return {
    version: h.version,
    metadata: h.metadata,
    tensors: h.tensors,
    alignment: h.alignment,
    dataOffset: h.dataOffset,
    fileSize: source.size,
    name: source.name,
    tensor: (name) => h.byName.get(name),
    readTensor(tensor) {
      const t = typeof tensor === "string" ? h.byName.get(tensor) : tensor;
      if (t === undefined) {
        throw new OwlError(
          "ERR_TENSOR_NOT_FOUND",
          `tensor "${String(tensor)}" not found in ${source.name} (it has ${h.tensors.length} tensors)`,
          { details: { tensor } },
        );
      }
      if (t.byteSize > MAX_READ_BYTES) {
        throw new OwlError(
          "ERR_UNSUPPORTED",
          `tensor "${t.name}" has ${t.byteSize} bytes, more than the ${MAX_READ_BYTES} one JavaScript buffer can hold`,
          { details: { tensor: t.name, byteSize: t.byteSize } },
        );
      }
      return source.read(t.fileOffset, t.byteSize);
    },
    close: () => source.close(),
  };
}

// NOTE: V8 caps one typed array at 2^32 bytes on 64-bit hosts (Node 20); a tensor beyond that
// must be read in slices, which GgufFile does not offer yet.
const MAX_READ_BYTES = bufferConstants.MAX_LENGTH;

/** Open a GGUF file by path (a FileSource); the handle is closed again when parsing fails. */
export function openGguf(path: string): GgufFile {
  const src = new FileSource(path);
  try {
    return readGguf(src);
  } catch (e) {
    src.close();
    throw e;
  }
}
