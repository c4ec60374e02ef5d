/**
 * GGUF writer: serializes metadata and tensor infos (the header) and streams tensor data one
 * tensor at a time into a temp file beside the target, then fsyncs and renames it into place.
 *
 * Byte layout written (little-endian, the same as read.ts parses):
 *   u32 magic "GGUF" | u32 version (3 unless asked for 2) | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 value_type | value }            (metadata in Map order)
 *   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 ggml_type | u64 offset }
 *   zeros to the alignment                                    (only when n_tensors > 0)
 *   per tensor: its bytes, then zeros to the alignment        (the last tensor is padded too)
 * The alignment is general.alignment (a UINT32 power of two) when present, else 32. Offsets are
 * assigned in input order, each the previous offset plus the previous size rounded up to the
 * alignment: the packing gguf.cpp requires and gguf-py (GGUFWriter) produces. With no tensors
 * nothing is padded, as gguf-py's vocab-only files are (ggml's gguf_write_to_file would pad).
 * Not here: parsing (read.ts), typed metadata helpers (metadata.ts).
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { OwlError } from "../../util/errors.ts";
import { ggmlTypeInfo } from "../../util/ggml-types.ts";
import {
  GGML_MAX_NAME,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_ARRAY_DEPTH,
  GGUF_MAX_DIMS,
  GGUF_TYPE_NAMES,
  requireLittleEndianHost,
} from "./read.ts";
import type {
  GgufArray,
  GgufFile,
  GgufMetadata,
  GgufTensorInput,
  GgufValue,
  GgufValueTypeName,
  GgufWriteInput,
} from "./types.ts";

export interface GgufWriteOptions {
  /** Called after the header and after each tensor with bytes written so far and the file size. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Aborting stops between writes, removes the temp file and rejects with ERR_ABORTED. */
  signal?: AbortSignal;
}

/** Where each tensor goes: the result of planning a write, before any tensor data is produced. */
export interface GgufLayout {
  version: 2 | 3;
  alignment: number;
  /** Header bytes, including the padding up to the data section. */
  header: Uint8Array;
  /** Absolute offset of the data section (= header.length). */
  dataOffset: number;
  tensors: Array<{ input: GgufTensorInput; offset: number; byteSize: number; paddedSize: number }>;
  /** Size of the whole file in bytes. */
  totalSize: number;
}

const TYPE_ID = new Map<GgufValueTypeName, number>(GGUF_TYPE_NAMES.map((n, i) => [n, i]));
const encoder = new TextEncoder();

// String.prototype.isWellFormed exists in Node 20 (V8 11.3) but not in TypeScript's ES2023 lib.
const isWellFormedImpl = (String.prototype as unknown as { isWellFormed?: (this: string) => boolean })
  .isWellFormed;
const LONE_SURROGATE = /\p{Cs}/u;
function isWellFormed(s: string): boolean {
  return isWellFormedImpl ? isWellFormedImpl.call(s) : !LONE_SURROGATE.test(s);
}

/** "what" or, for an array item, "what[i]" (built only for messages). */
function itemLabel(what: string, index: number): string {
  return index < 0 ? what : `${what}[${index}]`;
}

/** A growable little-endian byte buffer for the header. */
class ByteWriter {
  buf = new Uint8Array(1 << 16);
  view = new DataView(this.buf.buffer);
  pos = 0;

  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf[this.pos++] = v;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  /** A non-negative safe integer as u64. */
  u64(v: number): void {
    this.reserve(8);
    this.view.setUint32(this.pos, v % 0x100000000, true);
    this.view.setUint32(this.pos + 4, Math.floor(v / 0x100000000), true);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  /**
   * u64 byte length + UTF-8. Characters below U+10000 are encoded by hand (one native call per
   * token would cost more than the encoding); from the first surrogate on, encodeInto does it.
   */
  string(s: string, what: string, index = -1): void {
    if (typeof s !== "string") throw badValue(itemLabel(what, index), "a string", s);
    const n = s.length;
    this.reserve(8 + n * 3);
    const buf = this.buf;
    let p = this.pos + 8;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) buf[p++] = c;
      else if (c < 0x800) {
        buf[p++] = 0xc0 | (c >> 6);
        buf[p++] = 0x80 | (c & 0x3f);
      } else if (c < 0xd800 || c > 0xdfff) {
        buf[p++] = 0xe0 | (c >> 12);
        buf[p++] = 0x80 | ((c >> 6) & 0x3f);
        buf[p++] = 0x80 | (c & 0x3f);
      } else break; // a surrogate: let encodeInto handle pairs, after checking for lone ones
    }
    if (i < n) {
      if (!isWellFormed(s)) {
        throw new OwlError(
          "ERR_INVALID_ARGUMENT",
          `${itemLabel(what, index)}: string has a lone UTF-16 surrogate (not encodable as UTF-8)`,
          {
            details: { what },
          },
        );
      }
      p += encoder.encodeInto(i === 0 ? s : s.slice(i), buf.subarray(p)).written;
    }
    this.u64(p - this.pos - 8);
    this.pos = p;
  }
  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

const INT_RANGE: Partial<Record<GgufValueTypeName, readonly [number, number]>> = {
  UINT8: [0, 0xff],
  INT8: [-0x80, 0x7f],
  UINT16: [0, 0xffff],
  INT16: [-0x8000, 0x7fff],
  UINT32: [0, 0xffffffff],
  INT32: [-0x80000000, 0x7fffffff],
};

function badValue(what: string, expected: string, found: unknown): OwlError {
  return new OwlError("ERR_INVALID_ARGUMENT", `${what}: expected ${expected}, found ${String(found)}`, {
    details: { what, expected },
  });
}

function typeId(t: GgufValueTypeName, what: string): number {
  const id = TYPE_ID.get(t);
  if (id === undefined) throw badValue(what, "a GGUF value type name", t);
  return id;
}

function writeScalar(w: ByteWriter, v: GgufValue, what: string): void {
  switch (v.type) {
    case "STRING":
      w.string(v.value, what);
      return;
    case "BOOL": {
      const b: unknown = v.value;
      if (typeof b !== "boolean") throw badValue(what, "a boolean", b);
      w.u8(b ? 1 : 0);
      return;
    }
    case "ARRAY":
      writeArray(w, v.value, what, 0);
      return;
    case "UINT64":
    case "INT64": {
      const signed = v.type === "INT64";
      const b = v.value;
      if (typeof b !== "bigint" || (signed ? BigInt.asIntN(64, b) : BigInt.asUintN(64, b)) !== b) {
        throw badValue(what, `a bigint in the ${v.type} range`, b);
      }
      w.reserve(8);
      if (signed) w.view.setBigInt64(w.pos, b, true);
      else w.view.setBigUint64(w.pos, b, true);
      w.pos += 8;
      return;
    }
    case "FLOAT32":
    case "FLOAT64": {
      const x: unknown = v.value;
      if (typeof x !== "number") throw badValue(what, "a number", x);
      w.reserve(8);
      if (v.type === "FLOAT32") w.view.setFloat32(w.pos, x, true);
      else w.view.setFloat64(w.pos, x, true);
      w.pos += v.type === "FLOAT32" ? 4 : 8;
      return;
    }
    default: {
      const range = INT_RANGE[v.type];
      if (range === undefined) throw badValue(what, "a GGUF value type", (v as { type: unknown }).type);
      const n = v.value;
      if (!Number.isInteger(n) || n < range[0] || n > range[1]) {
        throw badValue(what, `an integer in ${range[0]}..${range[1]} for ${v.type}`, n);
      }
      w.reserve(4);
      switch (v.type) {
        case "UINT8":
        case "INT8":
          w.view.setUint8(w.pos, n & 0xff);
          w.pos += 1;
          return;
        case "UINT16":
        case "INT16":
          w.view.setUint16(w.pos, n & 0xffff, true);
          w.pos += 2;
          return;
        default:
          w.view.setUint32(w.pos, n >>> 0, true);
          w.pos += 4;
      }
    }
  }
}

const ARRAY_CTOR: Partial<Record<GgufValueTypeName, abstract new (...args: never[]) => ArrayBufferView>> = {
  UINT8: Uint8Array,
  INT8: Int8Array,
  UINT16: Uint16Array,
  INT16: Int16Array,
  UINT32: Uint32Array,
  INT32: Int32Array,
  FLOAT32: Float32Array,
  FLOAT64: Float64Array,
  UINT64: BigUint64Array,
  INT64: BigInt64Array,
};

/** Array body: u32 item type, u64 count, items (the ARRAY type id itself is written by the caller). */
function writeArrayBody(w: ByteWriter, a: GgufArray, what: string, depth: number): void {
  w.u32(typeId(a.itemType, what));
  const ctor = ARRAY_CTOR[a.itemType];
  if (ctor !== undefined) {
    const items = a.items as ArrayBufferView & { length: number };
    if (!(items instanceof ctor)) {
      throw badValue(
        what,
        `a ${ctor.name} for an ARRAY of ${a.itemType}`,
        Object.prototype.toString.call(items),
      );
    }
    w.u64(items.length);
    // NOTE: typed arrays are written as their bytes; this assumes a little-endian host, as ggml does.
    w.bytes(new Uint8Array(items.buffer, items.byteOffset, items.byteLength));
    return;
  }
  if (!Array.isArray(a.items)) throw badValue(what, `a JS array for an ARRAY of ${a.itemType}`, a.items);
  w.u64(a.items.length);
  switch (a.itemType) {
    case "BOOL":
      for (let i = 0; i < a.items.length; i++) {
        const b = a.items[i];
        if (typeof b !== "boolean") throw badValue(`${what}[${i}]`, "a boolean", b);
        w.u8(b ? 1 : 0);
      }
      return;
    case "STRING":
      for (let i = 0; i < a.items.length; i++) w.string(a.items[i]!, what, i);
      return;
    case "ARRAY":
      if (depth + 1 >= GGUF_MAX_ARRAY_DEPTH) {
        throw badValue(what, `arrays nested at most ${GGUF_MAX_ARRAY_DEPTH} deep`, "deeper nesting");
      }
      for (let i = 0; i < a.items.length; i++) writeArrayBody(w, a.items[i]!, `${what}[${i}]`, depth + 1);
      return;
    default:
      throw badValue(what, "a GGUF item type", a.itemType);
  }
}

function writeArray(w: ByteWriter, a: GgufArray, what: string, depth: number): void {
  if (a === null || typeof a !== "object") throw badValue(what, "a GgufArray", a);
  writeArrayBody(w, a, what, depth);
}

/** Alignment from metadata: general.alignment must be a UINT32 power of two. */
export function alignmentOf(md: GgufMetadata): number {
  const al = md.get("general.alignment");
  if (al === undefined) return GGUF_DEFAULT_ALIGNMENT;
  if (al.type !== "UINT32" || !(al.value > 0) || (al.value & (al.value - 1)) !== 0) {
    throw new OwlError(
      "ERR_GGUF_BAD_ALIGNMENT",
      `general.alignment must be a UINT32 power of two, found ${al.type === "UINT32" ? al.value : `a ${al.type}`}`,
      { details: { type: al.type } },
    );
  }
  return al.value;
}

/** Serialize the metadata entries alone (no file header): the bytes of n_kv x { key, type, value }. */
export function serializeGgufMetadata(md: GgufMetadata): Uint8Array {
  const w = new ByteWriter();
  writeMetadata(w, md);
  return w.result();
}

function writeMetadata(w: ByteWriter, md: GgufMetadata): void {
  for (const [key, v] of md) {
    if (key.length === 0) throw new OwlError("ERR_INVALID_ARGUMENT", "metadata keys must not be empty");
    w.string(key, `metadata key "${key}"`);
    const what = `metadata "${key}"`;
    if (v === null || typeof v !== "object") throw badValue(what, "a GgufValue", v);
    w.u32(typeId(v.type, what));
    writeScalar(w, v, what);
  }
}

/**
 * Validate the input and compute the file layout: header bytes (with padding), each tensor's
 * offset and size, and the total size. Produces no tensor data.
 */
export function planGguf(input: GgufWriteInput): GgufLayout {
  requireLittleEndianHost();
  const version = input.version ?? 3;
  if (version !== 2 && version !== 3) {
    throw new OwlError(
      "ERR_GGUF_UNSUPPORTED_VERSION",
      `can write GGUF versions 2 and 3, asked for ${version}`,
    );
  }
  const alignment = alignmentOf(input.metadata);
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(version);
  w.u64(input.tensors.length);
  w.u64(input.metadata.size);
  writeMetadata(w, input.metadata);

  const tensors: GgufLayout["tensors"] = [];
  const names = new Set<string>();
  let offset = 0;
  for (const t of input.tensors) {
    const what = `tensor "${t.name}"`;
    const nameBytes = typeof t.name === "string" ? encoder.encode(t.name).length : -1;
    if (nameBytes < 0 || nameBytes >= GGML_MAX_NAME) {
      throw new OwlError(
        "ERR_GGUF_BAD_TENSOR_INFO",
        `${what}: names must be strings of at most ${GGML_MAX_NAME - 1} bytes (llama.cpp's GGML_MAX_NAME), found ${nameBytes} bytes`,
        { details: { tensor: t.name } },
      );
    }
    if (names.has(t.name)) {
      throw new OwlError("ERR_GGUF_DUPLICATE_TENSOR", `${what} is given twice`, {
        details: { tensor: t.name },
      });
    }
    names.add(t.name);
    if (
      !Array.isArray(t.dims) ||
      t.dims.length > GGUF_MAX_DIMS ||
      !t.dims.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new OwlError(
        "ERR_GGUF_BAD_TENSOR_INFO",
        `${what}: dims must be 0..${GGUF_MAX_DIMS} non-negative integers, found [${String(t.dims)}]`,
        { details: { tensor: t.name, dims: t.dims } },
      );
    }
    const type = ggmlTypeInfo(t.type?.id);
    if (type === undefined || type.name !== t.type.name) {
      throw new OwlError(
        "ERR_UNKNOWN_TENSOR_TYPE",
        `${what}: unknown ggml type ${t.type?.name} (id ${t.type?.id})`,
        {
          details: { tensor: t.name },
        },
      );
    }
    const row = t.dims[0] ?? 1;
    if (row % type.blockSize !== 0) {
      throw new OwlError(
        "ERR_TENSOR_SHAPE",
        `${what} of type ${type.name} has rows of ${row} values, expected a multiple of the block size ${type.blockSize}`,
        { details: { tensor: t.name, row, blockSize: type.blockSize } },
      );
    }
    let n = 1;
    for (const d of t.dims) n *= d;
    const byteSize = (n / type.blockSize) * type.bytesPerBlock;
    if (!Number.isSafeInteger(byteSize)) {
      throw new OwlError("ERR_GGUF_BAD_TENSOR_INFO", `${what}: shape [${t.dims.join(", ")}] is too large`, {
        details: { tensor: t.name },
      });
    }
    const paddedSize = Math.ceil(byteSize / alignment) * alignment;
    w.string(t.name, what);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(type.id);
    w.u64(offset);
    tensors.push({ input: t, offset, byteSize, paddedSize });
    offset += paddedSize;
  }
  if (tensors.length > 0) w.zeros((alignment - (w.pos % alignment)) % alignment);
  const header = w.result();
  return {
    version,
    alignment,
    header,
    dataOffset: header.length,
    tensors,
    totalSize: header.length + offset,
  };
}

/** Header bytes (magic through the padding before the data section) for `input`. */
export function serializeGgufHeader(input: GgufWriteInput): Uint8Array {
  return planGguf(input).header;
}

async function tensorData(t: GgufLayout["tensors"][number]): Promise<Uint8Array> {
  const what = `tensor "${t.input.name}"`;
  let data: Uint8Array;
  try {
    data = await t.input.data();
  } catch (e) {
    if (e instanceof OwlError) throw e;
    throw new OwlError(
      "ERR_GGUF_WRITE",
      `${what}: producing its data failed: ${(e as Error)?.message ?? e}`,
      {
        cause: e,
        details: { tensor: t.input.name },
      },
    );
  }
  if (!(data instanceof Uint8Array) || data.byteLength !== t.byteSize) {
    const found =
      data instanceof Uint8Array ? `${data.byteLength} bytes` : Object.prototype.toString.call(data);
    throw new OwlError(
      "ERR_GGUF_WRITE",
      `${what}: data() must return ${t.byteSize} bytes (shape [${t.input.dims.join(", ")}] of ${t.input.type.name}), found ${found}`,
      { details: { tensor: t.input.name, expected: t.byteSize } },
    );
  }
  return data;
}

/** The whole file in memory (tests, small files). Calls each tensor's data() once, in order. */
export async function serializeGguf(input: GgufWriteInput): Promise<Uint8Array> {
  const layout = planGguf(input);
  const out = new Uint8Array(layout.totalSize);
  out.set(layout.header);
  for (const t of layout.tensors) out.set(await tensorData(t), layout.dataOffset + t.offset);
  return out;
}

const ZEROS = new Uint8Array(1 << 16);

function checkAbort(signal: AbortSignal | undefined, path: string): void {
  if (signal?.aborted) {
    throw new OwlError("ERR_ABORTED", `writing ${path} was aborted`, { cause: signal.reason });
  }
}

function ioError(e: unknown, what: string): OwlError {
  if (e instanceof OwlError) return e;
  const err = e as NodeJS.ErrnoException;
  return new OwlError("ERR_IO", `${what}: ${err?.message ?? String(e)}`, {
    cause: e,
    details: { code: err?.code },
  });
}

async function writeAll(fh: FileHandle, b: Uint8Array, position: number, tmp: string): Promise<void> {
  let done = 0;
  while (done < b.byteLength) {
    let n: number;
    try {
      ({ bytesWritten: n } = await fh.write(b, done, b.byteLength - done, position + done));
    } catch (e) {
      throw ioError(e, `cannot write ${tmp}`);
    }
    if (n <= 0) throw new OwlError("ERR_IO", `cannot write ${tmp}: wrote 0 bytes at ${position + done}`);
    done += n;
  }
}

/**
 * Write a GGUF file atomically: a temp file in the same directory, fsync, rename over `path`.
 * Tensor data is produced by each tensor's data(), called once, in order, and dropped after it is
 * written, so peak memory is about the largest tensor. On any failure or abort the temp file is
 * removed and `path` is left as it was.
 */
export async function writeGguf(
  path: string,
  input: GgufWriteInput,
  options: GgufWriteOptions = {},
): Promise<void> {
  const { signal, onProgress } = options;
  checkAbort(signal, path);
  const layout = planGguf(input);
  const target = resolve(path);
  const tmp = join(
    dirname(target),
    `.${basename(target)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`,
  );
  let fh: FileHandle | undefined;
  try {
    try {
      fh = await open(tmp, "wx");
    } catch (e) {
      throw ioError(e, `cannot create ${tmp}`);
    }
    let pos = 0;
    await writeAll(fh, layout.header, pos, tmp);
    pos += layout.header.length;
    onProgress?.(pos, layout.totalSize);
    for (const t of layout.tensors) {
      checkAbort(signal, path);
      const data = await tensorData(t);
      checkAbort(signal, path);
      await writeAll(fh, data, pos, tmp);
      pos += data.byteLength;
      for (let pad = t.paddedSize - t.byteSize; pad > 0; ) {
        const n = Math.min(pad, ZEROS.length);
        await writeAll(fh, ZEROS.subarray(0, n), pos, tmp);
        pos += n;
        pad -= n;
      }
      onProgress?.(pos, layout.totalSize);
    }
    checkAbort(signal, path);
    try {
      await fh.sync();
      await fh.close();
      fh = undefined;
      await rename(tmp, target);
    } catch (e) {
      throw ioError(e, `cannot finish writing ${target}`);
    }
  } catch (e) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  // Make the rename durable; some platforms cannot fsync a directory, and the data is safe anyway.
  try {
    const d = await open(dirname(target), "r");
    await d.sync().finally(() => d.close());
  } catch {
    // best effort
  }
}

/** A write input that copies an opened file: same version, metadata and tensors (read lazily). */
export function toWriteInput(file: GgufFile): GgufWriteInput {
  return {
    version: file.version,
    metadata: file.metadata,
    tensors: file.tensors.map((t) => ({
      name: t.name,
      dims: t.dims,
      type: t.type,
      data: () => file.readTensor(t),
    })),
  };
}
