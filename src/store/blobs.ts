/**
 * Content-addressed blobs and atomic file writes for the model store.
 *
 *   <root>/blobs/sha256-<64 hex>     immutable; the name is the sha256 of the bytes
 *   <dir>/.owl-tmp-<pid>-<random>    a write in progress (same directory as its target)
 *
 * Every write goes to a temp file in the target's directory, is fsynced, renamed into place and
 * the directory fsynced, so a killed process leaves at most a temp file, never a half blob or
 * manifest under its real name. Temp files of dead processes are removed by cleanStaleTemps.
 * Hashing and copying stream in 4 MiB chunks: a multi-GB GGUF is never read into memory.
 * Not here: manifests (manifests.ts), the store's policy (store.ts).
 */
import { createHash, randomBytes } from "node:crypto";
import type { Dirent } from "node:fs";
import { mkdir, open, readdir, rename, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { OwlError } from "../util/errors.ts";

export const TMP_PREFIX = ".owl-tmp-";
const CHUNK = 4 << 20;
/** Temp files older than this are removed even if their process id is alive (pid reuse). */
const STALE_AGE_MS = 24 * 3600 * 1000;

const DIGEST_RE = /^sha256[:-]([0-9a-f]{64})$/;

/** "sha256:<hex>" or "sha256-<hex>" -> "<hex>"; ERR_INVALID_ARGUMENT otherwise. */
export function digestHex(digest: string): string {
  const m = DIGEST_RE.exec(digest);
  if (!m) {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `expected a digest "sha256:<64 lowercase hex digits>", found ${JSON.stringify(digest.slice(0, 100))}`,
    );
  }
  return m[1]!;
}

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** The blob file of a digest (hex or "sha256:hex"). */
export function blobFile(root: string, digestOrHex: string): string {
  const hex = /^[0-9a-f]{64}$/.test(digestOrHex) ? digestOrHex : digestHex(digestOrHex);
  return join(root, "blobs", `sha256-${hex}`);
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function tempPathFor(target: string): string {
  return join(dirname(target), `${TMP_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`);
}

/** fsync a directory so a rename into it survives a crash (a no-op where directories can't be opened). */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch {
    // Some platforms/filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await fh?.close().catch(() => {});
  }
}

function ioError(what: string, path: string, e: unknown): OwlError {
  if (e instanceof OwlError) return e;
  const err = e as NodeJS.ErrnoException;
  return new OwlError("ERR_IO", `${what} ${path} failed: ${err?.message ?? String(e)}`, { cause: e });
}

function aborted(what: string): OwlError {
  return new OwlError("ERR_ABORTED", `${what} was cancelled`);
}

/**
 * Write `produce`'s bytes to `target` atomically: a temp file in the same directory, fsync,
 * rename, fsync of the directory. The temp file is removed on any failure or abort.
 */
async function atomicWrite(
  target: string,
  produce: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>,
): Promise<void> {
  const dir = dirname(target);
  await mkdir(dir, { recursive: true });
  const tmp = tempPathFor(target);
  const fh = await open(tmp, "wx", 0o644);
  let closed = false;
  try {
    await produce(async (chunk) => {
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
        off += bytesWritten;
      }
    });
    await fh.sync();
    await fh.close();
    closed = true;
    await rename(tmp, target);
  } catch (e) {
    if (!closed) await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fsyncDir(dir);
}

/** Write a small file (a manifest, a config or text layer) atomically. */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    await atomicWrite(target, (write) => write(bytes));
  } catch (e) {
    throw ioError("writing", target, e);
  }
}

export interface StreamOptions {
  signal?: AbortSignal | undefined;
  /** Bytes done so far and the total. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** sha256 and size of a file, streamed. */
export async function hashFile(
  path: string,
  opts: StreamOptions = {},
): Promise<{ hex: string; size: number }> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, "r");
  } catch (e) {
    throw ioError("opening", path, e);
  }
  try {
    const total = (await fh.stat()).size;
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(CHUNK);
    let done = 0;
    opts.onProgress?.(0, total);
    for (;;) {
      if (opts.signal?.aborted) throw aborted(`hashing ${path}`);
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      done += bytesRead;
      opts.onProgress?.(done, total);
    }
    return { hex: hash.digest("hex"), size: done };
  } catch (e) {
    throw ioError("reading", path, e);
  } finally {
    await fh.close().catch(() => {});
  }
}

function mismatch(expectedHex: string, foundHex: string, where: string): OwlError {
  return new OwlError(
    "ERR_DIGEST_MISMATCH",
    `${where}: expected sha256:${expectedHex}, the bytes hash to sha256:${foundHex}`,
    { details: { expected: `sha256:${expectedHex}`, found: `sha256:${foundHex}` } },
  );
}

/**
 * Copy a file into the blob store under `expectedHex`, hashing while copying; ERR_DIGEST_MISMATCH
 * (and nothing stored) if the file changed since it was hashed. Atomic; a no-op if the blob exists.
 */
export async function copyFileToBlob(
  root: string,
  src: string,
  expectedHex: string,
  opts: StreamOptions = {},
): Promise<void> {
  const target = blobFile(root, expectedHex);
  if (await exists(target)) return;
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(src, "r");
  } catch (e) {
    throw ioError("opening", src, e);
  }
  try {
    const total = (await fh.stat()).size;
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(CHUNK);
    await atomicWrite(target, async (write) => {
      let done = 0;
      opts.onProgress?.(0, total);
      for (;;) {
        if (opts.signal?.aborted) throw aborted(`copying ${src}`);
        const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) break;
        const chunk = buf.subarray(0, bytesRead);
        hash.update(chunk);
        await write(chunk);
        done += bytesRead;
        opts.onProgress?.(done, total);
      }
      const found = hash.digest("hex");
      if (found !== expectedHex) throw mismatch(expectedHex, found, `${src} changed while it was imported`);
    });
  } catch (e) {
    throw ioError("copying", src, e);
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Store a blob from a stream of chunks, checking it hashes to `expectedHex` (ERR_DIGEST_MISMATCH
 * and nothing stored otherwise). Atomic. Returns the size.
 */
export async function writeBlobFromStream(
  root: string,
  expectedHex: string,
  data: AsyncIterable<Uint8Array>,
  opts: StreamOptions = {},
): Promise<number> {
  const target = blobFile(root, expectedHex);
  const hash = createHash("sha256");
  let size = 0;
  try {
    await atomicWrite(target, async (write) => {
      for await (const chunk of data) {
        if (opts.signal?.aborted) throw aborted(`storing blob sha256:${expectedHex}`);
        hash.update(chunk);
        await write(chunk);
        size += chunk.length;
      }
      const found = hash.digest("hex");
      if (found !== expectedHex) throw mismatch(expectedHex, found, "blob upload");
    });
  } catch (e) {
    throw ioError("writing", target, e);
  }
  return size;
}

/** Store small in-memory bytes as a blob (config, template, params...). Returns digest and size. */
export async function putBytesBlob(
  root: string,
  data: Uint8Array | string,
): Promise<{ hex: string; size: number }> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const hex = sha256Hex(bytes);
  const target = blobFile(root, hex);
  if (!(await exists(target))) await writeFileAtomic(target, bytes);
  return { hex, size: bytes.length };
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Remove temp files left by dead processes under `dir` (recursively). A temp file whose process is
 * still alive is a write in progress and is kept, unless it is more than a day old.
 * Returns the paths removed.
 */
export async function cleanStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return removed;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      removed.push(...(await cleanStaleTemps(p)));
      continue;
    }
    if (!e.name.startsWith(TMP_PREFIX)) continue;
    const pid = Number(/^\.owl-tmp-(\d+)-/.exec(e.name)?.[1]);
    let old = false;
    try {
      old = Date.now() - (await stat(p)).mtimeMs > STALE_AGE_MS;
    } catch {
      continue;
    }
    if (!Number.isInteger(pid) || !pidAlive(pid) || old) {
      try {
        await unlink(p);
        removed.push(p);
      } catch {
        // Gone already (another process cleaned it) or not ours to remove.
      }
    }
  }
  return removed;
}
