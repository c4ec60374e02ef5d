/**
 * Random-access byte sources for lazy reading of large files, and small little-endian helpers.
 *
 * A ByteSource is a read-only view of bytes addressed by absolute offset. FileSource reads with
 * positioned reads (fs.readSync) so opening a 20 GB file costs one open() and memory does not
 * grow with the file; MemorySource wraps bytes already in memory (tests, fuzzing).
 * Not here: format parsing (formats/), which checks every offset against `size` before reading.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { OwlError } from "./errors.ts";

export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** A human-readable name for error messages (a path, or "<memory>"). */
  readonly name: string;
  /**
   * Read exactly `length` bytes at `offset`. Throws ERR_TRUNCATED when the range passes the end.
   * The returned array may be a view into a shared buffer for MemorySource: do not mutate it.
   */
  read(offset: number, length: number): Uint8Array;
  /** Read into `target` (its full length) from `offset`. */
  readInto(offset: number, target: Uint8Array): void;
  close(): void;
}

function checkRange(src: ByteSource, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new OwlError("ERR_TRUNCATED", `invalid read of ${length} bytes at offset ${offset} in ${src.name}`);
  }
  if (offset + length > src.size) {
    throw new OwlError(
      "ERR_TRUNCATED",
      `read of ${length} bytes at offset ${offset} ends at byte ${offset + length} but ${src.name} has ${src.size} bytes (truncated file?)`,
      { details: { offset, length, size: src.size } },
    );
  }
}

export class MemorySource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly bytes: Uint8Array,
    readonly name = "<memory>",
  ) {
    this.size = bytes.byteLength;
  }
  read(offset: number, length: number): Uint8Array {
    checkRange(this, offset, length);
    return this.bytes.subarray(offset, offset + length);
  }
  readInto(offset: number, target: Uint8Array): void {
    checkRange(this, offset, target.byteLength);
    target.set(this.bytes.subarray(offset, offset + target.byteLength));
  }
  close(): void {}
}

export class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | null;

  constructor(readonly name: string) {
    try {
      this.fd = openSync(name, "r");
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === "ENOENT") {
        throw new OwlError("ERR_FILE_NOT_FOUND", `file not found: ${name}`, { cause: e });
      }
      throw new OwlError("ERR_IO", `cannot open ${name}: ${err.message}`, { cause: e });
    }
    const st = fstatSync(this.fd);
    if (!st.isFile()) {
      closeSync(this.fd);
      throw new OwlError("ERR_IO", `${name} is not a regular file`);
    }
    this.size = st.size;
  }

  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.readInto(offset, out);
    return out;
  }

  readInto(offset: number, target: Uint8Array): void {
    checkRange(this, offset, target.byteLength);
    if (this.fd === null) throw new OwlError("ERR_IO", `${this.name} is closed`);
    let done = 0;
    while (done < target.byteLength) {
      const n = readSync(this.fd, target, done, target.byteLength - done, offset + done);
      if (n === 0) {
        throw new OwlError(
          "ERR_TRUNCATED",
          `${this.name} ended at byte ${offset + done} while reading (file changed?)`,
        );
      }
      done += n;
    }
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** View the bytes of a typed array (no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Copy bytes into a fresh Float32Array (little-endian host assumed, as ggml and safetensors are).
 * Copies so the result is aligned whatever the source offset.
 */
export function toFloat32(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength >>> 2);
  new Uint8Array(out.buffer).set(bytes.subarray(0, out.length * 4));
  return out;
}
