/**
 * safetensors writer: streams tensors to disk one at a time, atomically.
 *
 * Layout written (see types.ts): u64 N | header JSON padded with spaces to a multiple of 8 | data.
 * Byte-identical to the Rust crate's `serialize` / `serialize_to_file` (what the Python package
 * calls) for the same tensors: `prepare` sorts tensors by dtype rank descending (the declaration
 * order of `enum Dtype`), then by name in byte order; offsets are packed with no padding; the
 * header is serde_json's compact form with "__metadata__" first (when given) and each tensor as
 * {"dtype","shape","data_offsets"}; JSON.stringify escapes strings exactly as serde_json does for
 * well-formed strings. The one place the crate is not deterministic is the order of several
 * `__metadata__` keys (a HashMap); we write them sorted.
 * The file appears only when complete: a temp file in the same directory, fsync, rename; the temp
 * file is removed on failure or abort.
 * Not here: reading (read.ts), shards and the index (sharded.ts).
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { OwlError } from "../../util/errors.ts";
import { byteSizeOf, dtypeInfo } from "./dtypes.ts";
import { compareCodePoints, MAX_HEADER_SIZE, METADATA_KEY } from "./read.ts";
import type {
  SafetensorsMetadata,
  SafetensorsTensorInput,
  SafetensorsWriteInput,
  SafetensorsWriteOptions,
} from "./types.ts";

/** A tensor placed in the byte buffer. */
export interface PlannedTensor {
  input: SafetensorsTensorInput;
  begin: number;
  end: number;
}

/** Everything about a file except the tensor bytes: the header and where each tensor goes. */
export interface SafetensorsPlan {
  /** The 8-byte length followed by the padded JSON header. */
  header: Uint8Array;
  /** Tensors in file order. */
  tensors: PlannedTensor[];
  /** Bytes of tensor data (the buffer). */
  dataSize: number;
  fileSize: number;
}

export interface SafetensorsWriteResult {
  path: string;
  fileSize: number;
  /** Header length N (padded). */
  headerSize: number;
  /** Bytes of tensor data. */
  dataSize: number;
}

// Lone surrogates cannot be encoded as UTF-8; serde_json could never have written them.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function checkString(s: unknown, what: string): asserts s is string {
  if (typeof s !== "string") throw new OwlError("ERR_INVALID_ARGUMENT", `${what} must be a string`);
  if (LONE_SURROGATE.test(s)) {
    throw new OwlError("ERR_INVALID_ARGUMENT", `${what} ${JSON.stringify(s)} is not valid Unicode`);
  }
}

/** Byte size of a tensor input, validating its dtype and shape. */
export function tensorByteSize(t: SafetensorsTensorInput): number {
  const q = `tensor ${JSON.stringify(t.name)}`;
  const info = dtypeInfo(t.dtype);
  let n = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new OwlError("ERR_TENSOR_SHAPE", `${q}: dimension ${d} is not an integer from 0 to 2^53`);
    }
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) {
      throw new OwlError(
        "ERR_TENSOR_SHAPE",
        `${q}: shape [${t.shape.join(", ")}] has more than 2^53 elements`,
      );
    }
  }
  const size = byteSizeOf(info, n);
  if (size === undefined) {
    throw new OwlError(
      "ERR_TENSOR_SHAPE",
      `${q}: ${n} elements of ${t.dtype} (${info.bits} bits each) are not a whole number of bytes`,
    );
  }
  return size;
}

/** Validate the input and lay out the file, as the crate's `prepare` does. */
export function planSafetensors(input: SafetensorsWriteInput): SafetensorsPlan {
  const seen = new Set<string>();
  const sized = input.tensors.map((t) => {
    checkString(t.name, "tensor name");
    if (t.name === METADATA_KEY) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `"${METADATA_KEY}" is reserved and cannot name a tensor`);
    }
    if (seen.has(t.name))
      throw new OwlError("ERR_INVALID_ARGUMENT", `tensor ${JSON.stringify(t.name)} given twice`);
    seen.add(t.name);
    return { input: t, size: tensorByteSize(t), rank: dtypeInfo(t.dtype).rank };
  });
  sized.sort((a, b) => b.rank - a.rank || compareCodePoints(a.input.name, b.input.name));

  const parts: string[] = [];
  if (input.metadata !== undefined)
    parts.push(`${JSON.stringify(METADATA_KEY)}:${metadataJson(input.metadata)}`);
  const tensors: PlannedTensor[] = [];
  let offset = 0;
  for (const { input: t, size } of sized) {
    const begin = offset;
    offset += size;
    tensors.push({ input: t, begin, end: offset });
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(",")}],"data_offsets":[${begin},${offset}]}`,
    );
  }
  if (!Number.isSafeInteger(offset))
    throw new OwlError("ERR_INVALID_ARGUMENT", "tensors total more than 2^53 bytes");
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerSize = Math.ceil(json.length / 8) * 8;
  if (headerSize > MAX_HEADER_SIZE) {
    throw new OwlError(
      "ERR_SAFETENSORS_HEADER_TOO_LARGE",
      `the header would be ${headerSize} bytes but readers accept at most ${MAX_HEADER_SIZE}`,
    );
  }
  const header = new Uint8Array(8 + headerSize).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(headerSize), true);
  header.set(json, 8);
  return { header, tensors, dataSize: offset, fileSize: header.length + offset };
}

function metadataJson(metadata: SafetensorsMetadata): string {
  const entries = Object.entries(metadata);
  for (const [k, v] of entries) {
    checkString(k, "metadata key");
    checkString(v, `metadata value of ${JSON.stringify(k)}`);
  }
  entries.sort((a, b) => compareCodePoints(a[0], b[0]));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`;
}

/** Serialize to one array in memory (small files, tests). */
export async function serializeSafetensors(input: SafetensorsWriteInput): Promise<Uint8Array> {
  const plan = planSafetensors(input);
  const out = new Uint8Array(plan.fileSize);
  out.set(plan.header, 0);
  for (const t of plan.tensors) out.set(await tensorData(t), plan.header.length + t.begin);
  return out;
}

/**
 * Write a .safetensors file. Each tensor's data() is called once, in file order, and its bytes are
 * written before the next is asked for, so peak memory is about the largest tensor.
 */
export async function writeSafetensors(
  path: string,
  input: SafetensorsWriteInput,
  options: SafetensorsWriteOptions = {},
): Promise<SafetensorsWriteResult> {
  const plan = planSafetensors(input);
  const progress = {
    bytesWritten: 0,
    totalBytes: plan.fileSize,
    tensorsWritten: 0,
    tensorCount: plan.tensors.length,
  };
  await writePlanned(path, plan, options, progress);
  return { path, fileSize: plan.fileSize, headerSize: plan.header.length - 8, dataSize: plan.dataSize };
}

/** Counters shared by the files of one (possibly sharded) write. */
export interface ProgressCounters {
  bytesWritten: number;
  totalBytes: number;
  tensorsWritten: number;
  tensorCount: number;
}

/** Write a planned file atomically, updating `progress` (shared across shards). */
export async function writePlanned(
  path: string,
  plan: SafetensorsPlan,
  options: SafetensorsWriteOptions,
  progress: ProgressCounters,
): Promise<void> {
  const { signal, onProgress } = options;
  await writeFileAtomic(path, signal, async (fh) => {
    let position = 0;
    await writeAll(fh, plan.header, position, path);
    position += plan.header.length;
    progress.bytesWritten += plan.header.length;
    for (const t of plan.tensors) {
      checkAborted(signal, path);
      const bytes = await tensorData(t);
      checkAborted(signal, path);
      await writeAll(fh, bytes, position, path);
      position += bytes.length;
      progress.bytesWritten += bytes.length;
      progress.tensorsWritten++;
      onProgress?.({ ...progress, tensor: t.input.name });
    }
  });
}

async function tensorData(t: PlannedTensor): Promise<Uint8Array> {
  const q = `tensor ${JSON.stringify(t.input.name)}`;
  let bytes: unknown;
  try {
    bytes = await t.input.data();
  } catch (e) {
    if (e instanceof OwlError) throw e;
    throw new OwlError("ERR_SAFETENSORS_WRITE", `${q}: data() failed: ${(e as Error)?.message ?? e}`, {
      cause: e,
    });
  }
  const expected = t.end - t.begin;
  if (!(bytes instanceof Uint8Array) || bytes.byteLength !== expected) {
    const found = bytes instanceof Uint8Array ? `${bytes.byteLength} bytes` : "not a Uint8Array";
    throw new OwlError(
      "ERR_SAFETENSORS_WRITE",
      `${q}: data() must return ${expected} bytes (shape [${t.input.shape.join(", ")}] of ${t.input.dtype}), got ${found}`,
      { details: { tensor: t.input.name, expected } },
    );
  }
  return bytes;
}

function checkAborted(signal: AbortSignal | undefined, path: string): void {
  if (signal?.aborted)
    throw new OwlError("ERR_ABORTED", `writing ${path} was aborted`, { cause: signal.reason });
}

// Node's write() is limited to 2 GiB per call; write big tensors in pieces.
const WRITE_CHUNK = 1 << 30;

async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const length = Math.min(WRITE_CHUNK, bytes.length - done);
    let n: number;
    try {
      ({ bytesWritten: n } = await fh.write(bytes, done, length, position + done));
    } catch (e) {
      throw ioError(e, `cannot write ${path}`);
    }
    if (n <= 0) throw new OwlError("ERR_IO", `cannot write ${path}: no progress at byte ${position + done}`);
    done += n;
  }
}

function ioError(e: unknown, what: string): OwlError {
  if (e instanceof OwlError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.code === "ENOENT")
    return new OwlError("ERR_FILE_NOT_FOUND", `${what}: ${err.message}`, { cause: e });
  return new OwlError("ERR_IO", `${what}: ${err?.message ?? String(e)}`, { cause: e });
}

/**
 * Create `path` atomically: `body` writes a temp file beside it, which is fsynced and renamed over
 * `path`; on any failure (or abort) the temp file is removed and `path` is left as it was.
 */
export async function writeFileAtomic(
  path: string,
  signal: AbortSignal | undefined,
  body: (fh: FileHandle) => Promise<void>,
): Promise<void> {
  checkAborted(signal, path);
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let fh: FileHandle | undefined;
  try {
    try {
      fh = await open(tmp, "wx");
    } catch (e) {
      throw ioError(e, `cannot create a file in ${dir}`);
    }
    await body(fh);
    checkAborted(signal, path);
    try {
      await fh.sync();
      await fh.close();
      fh = undefined;
      await rename(tmp, path);
    } catch (e) {
      throw ioError(e, `cannot finish writing ${path}`);
    }
  } catch (e) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dir);
}

/** fsync a directory so the rename itself is durable; not every platform allows it. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch {
    // NOTE: best effort: Windows cannot open directories, some file systems refuse fsync on them.
  } finally {
    await fh?.close().catch(() => {});
  }
}
