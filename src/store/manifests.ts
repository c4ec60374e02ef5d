/**
 * Manifests on disk: <root>/manifests/<host>/<namespace>/<model>/<tag>, each a Docker image
 * manifest v2 in JSON as Ollama writes it (config blob + layers with Ollama's media types).
 * Lookup is case-insensitive, as Ollama compares names; a write to a name that exists with other
 * casing goes to the existing file. Reading validates the JSON shape (ERR_STORE_CORRUPT naming
 * the file). Not here: blobs (blobs.ts), resolving layers into a model (store.ts).
 */
import type { Dirent } from "node:fs";
import { readdir, readFile, rmdir, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { OwlError } from "../util/errors.ts";
import { fsyncDir, sha256Hex, TMP_PREFIX, writeFileAtomic } from "./blobs.ts";
import { isValidModelName, manifestParts } from "./names.ts";
import type { Layer, LayerMediaType, Manifest, ModelName } from "./types.ts";

export const MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json";
export const CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json";

export const LAYER_MEDIA_TYPES: readonly LayerMediaType[] = [
  "application/vnd.ollama.image.model",
  "application/vnd.ollama.image.adapter",
  "application/vnd.ollama.image.projector",
  "application/vnd.ollama.image.template",
  "application/vnd.ollama.image.system",
  "application/vnd.ollama.image.params",
  "application/vnd.ollama.image.messages",
  "application/vnd.ollama.image.license",
];

export function manifestsDir(root: string): string {
  return join(root, "manifests");
}

/** The manifest file of a name, with the name's own casing (see findManifest for lookups). */
export function manifestPath(root: string, name: ModelName): string {
  return join(manifestsDir(root), ...manifestParts(name));
}

export interface ManifestFile {
  name: ModelName;
  path: string;
}

async function entries(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR")
      return [];
    throw new OwlError("ERR_IO", `reading ${dir} failed: ${(e as Error).message}`, { cause: e });
  }
}

/** The stored manifest for `name`, matched case-insensitively (exact casing preferred), or undefined. */
export async function findManifest(root: string, name: ModelName): Promise<ManifestFile | undefined> {
  let dir = manifestsDir(root);
  const found: string[] = [];
  const wanted = manifestParts(name);
  for (let level = 0; level < 4; level++) {
    const want = wanted[level]!;
    const list = await entries(dir);
    const isLeaf = level === 3;
    const ok = (e: Dirent) => (isLeaf ? e.isFile() : e.isDirectory());
    const hit =
      list.find((e) => e.name === want && ok(e)) ??
      list.find((e) => e.name.toLowerCase() === want.toLowerCase() && ok(e));
    if (!hit) return undefined;
    found.push(hit.name);
    dir = join(dir, hit.name);
  }
  const [host, namespace, model, tag] = found as [string, string, string, string];
  return { name: { host, namespace, model, tag }, path: dir };
}

/** Every manifest file under the store, in a stable order; temp files and invalid names skipped. */
export async function listManifestFiles(root: string): Promise<ManifestFile[]> {
  const out: ManifestFile[] = [];
  const base = manifestsDir(root);
  const dirs = (list: Dirent[]) =>
    list.filter((e) => e.isDirectory() && !e.name.startsWith(".")).map((e) => e.name);
  for (const host of dirs(await entries(base)).sort()) {
    for (const ns of dirs(await entries(join(base, host))).sort()) {
      for (const model of dirs(await entries(join(base, host, ns))).sort()) {
        const tags = (await entries(join(base, host, ns, model)))
          .filter((e) => e.isFile() && !e.name.startsWith(TMP_PREFIX))
          .map((e) => e.name)
          .sort();
        for (const tag of tags) {
          const name = { host, namespace: ns, model, tag };
          // A file whose path is not a valid name was not written by us (or by Ollama): skip it.
          if (!isValidModelName(`${host}/${ns}/${model}:${tag}`)) continue;
          out.push({ name, path: join(base, host, ns, model, tag) });
        }
      }
    }
  }
  return out;
}

function corrupt(path: string, why: string, cause?: unknown): OwlError {
  return new OwlError("ERR_STORE_CORRUPT", `manifest ${path} is corrupt: ${why}`, {
    hint: "remove the model (owl rm) and create or pull it again",
    details: { path },
    cause,
  });
}

function checkLayer(v: unknown, path: string, where: string): Layer {
  if (typeof v !== "object" || v === null) throw corrupt(path, `${where} is not an object`);
  const l = v as Record<string, unknown>;
  if (typeof l["mediaType"] !== "string") throw corrupt(path, `${where}.mediaType is not a string`);
  if (typeof l["digest"] !== "string" || !/^sha256:[0-9a-f]{64}$/.test(l["digest"]))
    throw corrupt(path, `${where}.digest is not "sha256:<64 hex>" (found ${JSON.stringify(l["digest"])})`);
  if (typeof l["size"] !== "number" || !Number.isSafeInteger(l["size"]) || l["size"] < 0)
    throw corrupt(path, `${where}.size is not a non-negative integer`);
  const layer: Layer = {
    mediaType: l["mediaType"] as Layer["mediaType"],
    digest: l["digest"],
    size: l["size"],
  };
  if (typeof l["from"] === "string") layer.from = l["from"];
  return layer;
}

/** Parse and validate manifest bytes; `path` names the file in errors. */
export function parseManifest(bytes: Uint8Array, path: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw corrupt(path, `not valid JSON (${(e as Error).message})`, e);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw corrupt(path, "not a JSON object");
  const m = json as Record<string, unknown>;
  if (m["schemaVersion"] !== 2)
    throw corrupt(path, `schemaVersion is ${JSON.stringify(m["schemaVersion"])}, expected 2`);
  if (!Array.isArray(m["layers"])) throw corrupt(path, "layers is not an array");
  const config = checkLayer(m["config"], path, "config");
  const layers = m["layers"].map((l, i) => checkLayer(l, path, `layers[${i}]`));
  return {
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config,
    layers,
  };
}

export interface LoadedManifest {
  manifest: Manifest;
  /** sha256 hex of the file's bytes (Ollama's digest of a model in /api/tags). */
  digest: string;
  modifiedAt: Date;
}

export async function readManifestFile(path: string): Promise<LoadedManifest> {
  let bytes: Buffer;
  let mtime: Date;
  try {
    [bytes, mtime] = await Promise.all([readFile(path), stat(path).then((s) => s.mtime)]);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw new OwlError("ERR_MODEL_NOT_FOUND", `manifest ${path} disappeared while it was read`, {
        cause: e,
      });
    }
    throw new OwlError("ERR_IO", `reading ${path} failed: ${(e as Error).message}`, { cause: e });
  }
  return { manifest: parseManifest(bytes, path), digest: sha256Hex(bytes), modifiedAt: mtime };
}

/** The bytes Ollama would write for a manifest (compact JSON, field order as Ollama's). */
export function serializeManifest(m: Manifest): string {
  const layer = (l: Layer) => ({
    mediaType: l.mediaType,
    digest: l.digest,
    size: l.size,
    ...(l.from ? { from: l.from } : {}),
  });
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: layer(m.config),
    layers: m.layers.map(layer),
  });
}

/** Write the manifest of `name` atomically (to the existing file if the name exists in other casing). */
export async function writeManifest(root: string, name: ModelName, m: Manifest): Promise<string> {
  const existing = await findManifest(root, name);
  const path = existing?.path ?? manifestPath(root, name);
  await writeFileAtomic(path, serializeManifest(m));
  return path;
}

/** Delete a manifest file and the directories it leaves empty (up to manifests/). */
export async function deleteManifestFile(root: string, file: ManifestFile): Promise<void> {
  await unlink(file.path);
  const parts = manifestParts(file.name);
  for (let depth = 3; depth >= 1; depth--) {
    const dir = join(manifestsDir(root), ...parts.slice(0, depth));
    try {
      await rmdir(dir);
    } catch {
      break; // not empty (or already gone)
    }
  }
  await fsyncDir(manifestsDir(root));
}
