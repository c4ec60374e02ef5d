/**
 * Sharded safetensors checkpoints: one merged view over model-0000i-of-0000N.safetensors through
 * model.safetensors.index.json, and the writer that produces them like transformers'
 * save_pretrained.
 *
 * Index layout (transformers / huggingface_hub):
 *   { "metadata": { "total_size": <sum of tensor data bytes>, ... }, "weight_map": { "<tensor>": "<shard file>" } }
 * Checks on open: the index is strict JSON (no duplicate keys) of that shape; shard paths are
 * relative and stay inside the index's directory (no "..", no absolute path, no backslash); every
 * shard opens and validates; every tensor named in weight_map is in the shard it names; no tensor
 * is in two shards. Tensors in a shard but missing from weight_map are still served (the shard is
 * the truth about its own contents).
 * NOTE: shard paths are checked lexically, not with realpath: the Hugging Face cache makes every
 * file a symlink into ../../blobs, which must keep working.
 * Shard files are opened (and their headers read) when the model is opened; tensor data is read
 * only on request.
 * Writing splits like huggingface_hub's split_state_dict_into_shards_factory: tensors in input
 * order; one larger than maxShardBytes gets a shard of its own; otherwise a new shard starts when
 * the next tensor would pass the limit. One shard is written as model.safetensors with no index,
 * else model-{i:05d}-of-{n:05d}.safetensors plus the index, serialized as Python's
 * json.dumps(index, indent=2, sort_keys=True) + "\n" (what transformers writes).
 * Not here: single-file parsing (read.ts) and writing (write.ts).
 */
import { readdirSync, type Stats, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { FileSource } from "../../util/bytes.ts";
import { OwlError } from "../../util/errors.ts";
import { parseStrictJson } from "./json.ts";
import { compareCodePoints, describe, isPlainObject, openSafetensors } from "./read.ts";
import type {
  SafetensorsFile,
  SafetensorsMetadata,
  SafetensorsTensorInfo,
  SafetensorsTensorSet,
  SafetensorsWriteInput,
  SafetensorsWriteOptions,
} from "./types.ts";
import {
  type ProgressCounters,
  planSafetensors,
  tensorByteSize,
  writeFileAtomic,
  writePlanned,
} from "./write.ts";

export const INDEX_SUFFIX = ".safetensors.index.json";
export const DEFAULT_INDEX_NAME = `model${INDEX_SUFFIX}`;
/** Index files are small (about 100 bytes per tensor); anything this big is not one. */
const MAX_INDEX_SIZE = 100_000_000;

/** A model's tensors across one or more .safetensors files. */
export interface SafetensorsModel extends SafetensorsTensorSet {
  /**
   * `__metadata__` of the files: the union over shards in shard order, the first value winning on
   * a conflict (shards written together carry the same map, usually {"format": "pt"}).
   */
  metadata: SafetensorsMetadata;
  /** The index's "metadata" object (total_size, ...), or undefined for a single file. */
  indexMetadata: Record<string, unknown> | undefined;
  /** Path of the index file, or undefined for a single file. */
  indexPath: string | undefined;
  /** The opened files, in shard name order. */
  files: SafetensorsFile[];
}

/**
 * Open a model stored as safetensors: a .safetensors file, an index .json, or a directory holding
 * model.safetensors.index.json, model.safetensors, or exactly one *.safetensors.index.json or
 * *.safetensors file.
 */
export function openSafetensorsModel(pathOrDir: string): SafetensorsModel {
  const path = resolve(pathOrDir);
  const st = statOrThrow(path, pathOrDir);
  if (st.isDirectory()) return openSafetensorsModel(findInDir(path));
  if (path.endsWith(".json")) return openIndexed(path);
  const file = openSafetensors(path);
  return new MergedModel([file], undefined, undefined);
}

function statOrThrow(path: string, shown: string): Stats {
  try {
    return statSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") throw new OwlError("ERR_FILE_NOT_FOUND", `not found: ${shown}`, { cause: e });
    throw new OwlError("ERR_IO", `cannot read ${shown}: ${err.message}`, { cause: e });
  }
}

function findInDir(dir: string): string {
  const names = readdirSync(dir);
  for (const preferred of [DEFAULT_INDEX_NAME, "model.safetensors"]) {
    if (names.includes(preferred)) return join(dir, preferred);
  }
  for (const suffix of [INDEX_SUFFIX, ".safetensors"]) {
    const found = names.filter((n) => n.endsWith(suffix));
    if (found.length === 1) return join(dir, found[0]!);
    if (found.length > 1) {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `${dir} holds several *${suffix} files (${found.slice(0, 5).join(", ")}): name the one to open`,
      );
    }
  }
  throw new OwlError(
    "ERR_FILE_NOT_FOUND",
    `${dir} has no ${DEFAULT_INDEX_NAME}, model.safetensors or other *.safetensors file`,
  );
}

export interface SafetensorsIndex {
  metadata: Record<string, unknown> | undefined;
  /** tensor -> shard file (relative), in index order. */
  weightMap: Map<string, string>;
}

/** Read and validate an index file (shape and shard paths; the shards themselves are not opened). */
export function readSafetensorsIndex(indexPath: string): SafetensorsIndex {
  const src = new FileSource(indexPath);
  let bytes: Uint8Array;
  try {
    if (src.size > MAX_INDEX_SIZE) {
      throw new OwlError(
        "ERR_SAFETENSORS_BAD_INDEX",
        `${indexPath} has ${src.size} bytes but an index file is at most ${MAX_INDEX_SIZE}`,
      );
    }
    bytes = src.read(0, src.size);
  } finally {
    src.close();
  }
  const parsed = parseStrictJson(bytes);
  if (!parsed.ok) {
    if (parsed.kind === "utf8") {
      throw new OwlError("ERR_INVALID_UTF8", `${indexPath}: ${parsed.message} at byte ${parsed.byteOffset}`, {
        details: { offset: parsed.byteOffset },
      });
    }
    if (parsed.kind === "surrogate") {
      throw new OwlError(
        "ERR_INVALID_UTF8",
        `${indexPath}: string at byte ${parsed.byteOffset} has ${parsed.message}, which is not valid Unicode`,
      );
    }
    const at = parsed.kind === "duplicate" ? ` at byte ${parsed.byteOffset}` : "";
    throw new OwlError("ERR_SAFETENSORS_BAD_INDEX", `${indexPath} is not valid JSON: ${parsed.message}${at}`);
  }
  const index = parsed.value;
  const bad = (msg: string) => new OwlError("ERR_SAFETENSORS_BAD_INDEX", `${indexPath}: ${msg}`);
  if (!isPlainObject(index)) throw bad(`expected a JSON object, found ${describe(index)}`);
  const { metadata, weight_map: weightMap } = index;
  if (metadata !== undefined && metadata !== null && !isPlainObject(metadata)) {
    throw bad(`"metadata" must be an object, found ${describe(metadata)}`);
  }
  if (!isPlainObject(weightMap)) throw bad(`"weight_map" must be an object, found ${describe(weightMap)}`);
  const map = new Map<string, string>();
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file !== "string") {
      throw bad(`weight_map[${JSON.stringify(tensor)}] must be a file name, found ${describe(file)}`);
    }
    const problem = shardPathProblem(file);
    if (problem) throw bad(`weight_map[${JSON.stringify(tensor)}] = ${JSON.stringify(file)}: ${problem}`);
    map.set(tensor, file);
  }
  return { metadata: metadata ?? undefined, weightMap: map };
}

/** Why a shard path from an index is unsafe, or undefined when it is a plain relative path. */
function shardPathProblem(file: string): string | undefined {
  if (file === "") return "the shard file name is empty";
  if (file.includes("\0")) return "a file name cannot contain NUL";
  if (file.includes("\\")) return "backslashes are not allowed in shard paths";
  if (isAbsolute(file) || /^[A-Za-z]:/.test(file))
    return "shard paths must be relative to the index's directory";
  if (file.split("/").some((part) => part === ".." || part === "." || part === "")) {
    return "shard paths must stay inside the index's directory (no '..', '.' or empty segments)";
  }
  return undefined;
}

function openIndexed(indexPath: string): SafetensorsModel {
  const { metadata, weightMap } = readSafetensorsIndex(indexPath);
  const dir = dirname(indexPath);
  const shardNames = [...new Set(weightMap.values())].sort(compareCodePoints);
  const files: SafetensorsFile[] = [];
  try {
    for (const shard of shardNames) {
      const p = join(dir, shard);
      // Lexical containment, re-checked after path normalization.
      const rel = relative(dir, p);
      if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
        throw new OwlError(
          "ERR_SAFETENSORS_BAD_INDEX",
          `${indexPath}: shard ${JSON.stringify(shard)} is outside ${dir}`,
        );
      }
      try {
        files.push(openSafetensors(p));
      } catch (e) {
        if (e instanceof OwlError && e.code === "ERR_FILE_NOT_FOUND") {
          throw new OwlError(
            "ERR_FILE_NOT_FOUND",
            `shard ${JSON.stringify(shard)} named in ${indexPath} is missing (incomplete download?)`,
            { cause: e, details: { shard, index: indexPath } },
          );
        }
        throw e;
      }
    }
    const byShard = new Map(shardNames.map((s, i) => [s, files[i]!]));
    const fileOf = new Map<string, SafetensorsFile>();
    for (const [i, f] of files.entries()) {
      for (const t of f.tensors) {
        const other = fileOf.get(t.name);
        if (other) {
          throw new OwlError(
            "ERR_SAFETENSORS_BAD_INDEX",
            `tensor ${JSON.stringify(t.name)} is in two shards: ${basename(other.name)} and ${shardNames[i]} (index ${indexPath})`,
            { details: { tensor: t.name } },
          );
        }
        fileOf.set(t.name, f);
      }
    }
    for (const [tensor, shard] of weightMap) {
      const f = fileOf.get(tensor);
      const expected = byShard.get(shard);
      if (f !== expected) {
        const actually = f ? `; it is in ${basename(f.name)}` : "";
        throw new OwlError(
          "ERR_SAFETENSORS_BAD_INDEX",
          `${indexPath} maps tensor ${JSON.stringify(tensor)} to ${shard}, which has no such tensor${actually}`,
          { details: { tensor, shard } },
        );
      }
    }
    return new MergedModel(files, metadata, indexPath);
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
}

class MergedModel implements SafetensorsModel {
  readonly metadata: SafetensorsMetadata;
  readonly tensors: SafetensorsTensorInfo[];
  private readonly owner = new Map<string, SafetensorsFile>();

  constructor(
    readonly files: SafetensorsFile[],
    readonly indexMetadata: Record<string, unknown> | undefined,
    readonly indexPath: string | undefined,
  ) {
    const metadata = new Map<string, string>();
    this.tensors = [];
    for (const f of files) {
      for (const [k, v] of Object.entries(f.metadata)) if (!metadata.has(k)) metadata.set(k, v);
      for (const t of f.tensors) {
        this.tensors.push(t);
        this.owner.set(t.name, f);
      }
    }
    this.metadata = Object.fromEntries(metadata);
  }

  tensor(name: string): SafetensorsTensorInfo | undefined {
    return this.owner.get(name)?.tensor(name);
  }

  readTensor(tensor: string | SafetensorsTensorInfo, byteOffset?: number, byteLength?: number): Uint8Array {
    return this.fileOf(tensor).readTensor(tensor, byteOffset, byteLength);
  }

  readTensorAsFloat32(tensor: string | SafetensorsTensorInfo): Float32Array {
    return this.fileOf(tensor).readTensorAsFloat32(tensor);
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private fileOf(tensor: string | SafetensorsTensorInfo): SafetensorsFile {
    const name = typeof tensor === "string" ? tensor : tensor.name;
    const f = this.owner.get(name);
    if (!f) {
      const where = this.indexPath ?? this.files[0]?.name ?? "model";
      throw new OwlError("ERR_TENSOR_NOT_FOUND", `${where} has no tensor ${JSON.stringify(name)}`, {
        details: { tensor: name },
      });
    }
    return f;
  }
}

// ---- writing ----

export interface SafetensorsShardedWriteOptions extends SafetensorsWriteOptions {
  /** Largest sum of tensor bytes per shard (headers not counted, as huggingface_hub does). Default 5 GB. */
  maxShardBytes?: number;
  /** File name stem: "model" gives model-00001-of-00002.safetensors and model.safetensors.index.json. */
  prefix?: string;
}

export interface SafetensorsShardedWriteResult {
  /** Shard file names (relative to the directory), in shard order. */
  files: string[];
  /** Path of the index, or undefined when everything fit in one file. */
  indexPath: string | undefined;
  /** Sum of tensor data bytes (the index's total_size). */
  totalSize: number;
}

/**
 * Write tensors into `dir` as shards of at most `maxShardBytes` of tensor data plus an index, like
 * transformers' save_pretrained. Every shard gets `input.metadata` as its `__metadata__`.
 * Shards are written first and the index last, each atomically.
 */
export async function writeSafetensorsSharded(
  dir: string,
  input: SafetensorsWriteInput,
  options: SafetensorsShardedWriteOptions = {},
): Promise<SafetensorsShardedWriteResult> {
  const maxShardBytes = options.maxShardBytes ?? 5_000_000_000;
  const prefix = options.prefix ?? "model";
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `maxShardBytes must be a positive integer, got ${maxShardBytes}`,
    );
  }
  if (prefix === "" || /[/\\\0]/.test(prefix)) {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `prefix ${JSON.stringify(prefix)} must be a plain file name stem`,
    );
  }
  // Validate everything (names, duplicates, shapes) before the first byte is written.
  planSafetensors({ ...input, tensors: input.tensors.map((t) => ({ ...t, data: () => new Uint8Array(0) })) });

  const shards: (typeof input.tensors)[number][][] = [];
  let current: (typeof input.tensors)[number][] = [];
  let currentSize = 0;
  let totalSize = 0;
  for (const t of input.tensors) {
    const size = tensorByteSize(t);
    totalSize += size;
    if (size > maxShardBytes) {
      shards.push([t]);
      continue;
    }
    if (currentSize + size > maxShardBytes && current.length > 0) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(t);
    currentSize += size;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);

  const n = shards.length;
  const names =
    n === 1
      ? [`${prefix}.safetensors`]
      : shards.map((_, i) => `${prefix}-${pad5(i + 1)}-of-${pad5(n)}.safetensors`);
  const plans = shards.map((tensors) =>
    planSafetensors(input.metadata === undefined ? { tensors } : { metadata: input.metadata, tensors }),
  );
  const progress: ProgressCounters = {
    bytesWritten: 0,
    totalBytes: plans.reduce((s, p) => s + p.fileSize, 0),
    tensorsWritten: 0,
    tensorCount: input.tensors.length,
  };
  for (const [i, plan] of plans.entries()) await writePlanned(join(dir, names[i]!), plan, options, progress);
  if (n === 1) return { files: names, indexPath: undefined, totalSize };

  const weightMap = new Map<string, string>();
  for (const [i, tensors] of shards.entries()) {
    for (const t of tensors) weightMap.set(t.name, names[i]!);
  }
  const indexText = `${pythonJsonDumps({ metadata: { total_size: totalSize }, weight_map: Object.fromEntries(weightMap) }, "")}\n`;
  const indexPath = join(dir, `${prefix}${INDEX_SUFFIX}`);
  await writeFileAtomic(indexPath, options.signal, async (fh) => {
    await fh.writeFile(indexText, "utf8");
  });
  return { files: names, indexPath, totalSize };
}

function pad5(i: number): string {
  return String(i).padStart(5, "0");
}

/**
 * Python's json.dumps(value, indent=2, sort_keys=True) for objects of objects, strings and
 * integers: ", " -> "," at line ends, ": " between key and value, ensure_ascii escapes (\uXXXX,
 * surrogate pairs above U+FFFF), keys sorted by code point, "{}" for an empty object.
 */
function pythonJsonDumps(value: unknown, indent: string): string {
  if (typeof value === "string") return pythonString(value);
  if (typeof value === "number") return String(value);
  if (!isPlainObject(value)) throw new Error("internal error: unsupported value in index");
  const keys = Object.keys(value).sort(compareCodePoints);
  if (keys.length === 0) return "{}";
  const inner = `${indent}  `;
  const lines = keys.map((k) => `${inner}${pythonString(k)}: ${pythonJsonDumps(value[k], inner)}`);
  return `{\n${lines.join(",\n")}\n${indent}}`;
}

function pythonString(s: string): string {
  // JSON.stringify already escapes like Python for '"', '\\' and control characters; then
  // ensure_ascii turns DEL and every non-ASCII UTF-16 unit into \uXXXX (lowercase hex, as Python).
  return JSON.stringify(s).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
