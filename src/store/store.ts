/**
 * ModelStore: the model store under OWL_HOME/models, Ollama's layout and semantics.
 *
 *   blobs/sha256-<hex>                                  content-addressed layers and configs
 *   manifests/<host>/<namespace>/<model>/<tag>         manifest v2 JSON per name
 *   .changes                                            owl's change mark (list() cache)
 *
 * create() imports a Modelfile (FROM a GGUF file, a stored model or a blob digest; ADAPTER,
 * TEMPLATE, SYSTEM, PARAMETER, LICENSE, MESSAGE) with Ollama's inheritance rules: FROM a stored
 * model keeps its layers, a new TEMPLATE/SYSTEM/MESSAGE set replaces the old one, PARAMETERs
 * merge key by key (new keys win), LICENSEs and ADAPTERs are added. The bundled stories260K is
 * listed and resolvable in every store with no set-up (builtin.ts); a stored manifest of the same
 * name takes its place; removing it while only bundled is refused (ERR_UNSUPPORTED).
 * Writes are atomic (blobs.ts); stale temp files of dead processes are removed on first use.
 * list() answers from a cache while the change mark, rewritten after every manifest change by
 * any owl process, stays the same (at most a second: changes made by other tools show too).
 * Not here: loading models (runtime/), HTTP (server/), printing (cli/).
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join, resolve as resolvePath } from "node:path";
import { owlHome } from "../util/env.ts";
import { isOwlError, OwlError } from "../util/errors.ts";
import {
  blobFile,
  cleanStaleTemps,
  copyFileToBlob,
  digestHex,
  exists,
  hashFile,
  isDigest,
  putBytesBlob,
  sha256Hex,
  writeBlobFromStream,
} from "./blobs.ts";
import { BUILTIN_MODEL_NAME, builtinModelPath } from "./builtin.ts";
import { type GgufSummary, summarizeGguf } from "./gguf-summary.ts";
import {
  CONFIG_MEDIA_TYPE,
  deleteManifestFile,
  findManifest,
  type LoadedManifest,
  listManifestFiles,
  MANIFEST_MEDIA_TYPE,
  manifestPath,
  manifestsDir,
  readManifestFile,
  serializeManifest,
  writeManifest,
} from "./manifests.ts";
import { printModelfile } from "./modelfile.ts";
import { displayName, nameKey, parseModelName } from "./names.ts";
import type {
  CreateOptions,
  CreateProgress,
  Layer,
  LayerMediaType,
  Manifest,
  ModelConfigBlob,
  ModelDetails,
  Modelfile,
  ModelName,
  ModelStoreApi,
  ResolvedModel,
  StoredMessage,
  StoredModel,
} from "./types.ts";

type Params = ResolvedModel["params"];

/** The size and mtime of a file as a cache key; undefined when it cannot be read. */
async function fileKey(path: string): Promise<string | undefined> {
  try {
    const st = await stat(path);
    return `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** The config blob as owl writes it: Ollama's fields plus parent_model. */
interface ConfigBlob extends ModelConfigBlob {
  parent_model?: string;
}

const MT = {
  model: "application/vnd.ollama.image.model",
  adapter: "application/vnd.ollama.image.adapter",
  template: "application/vnd.ollama.image.template",
  system: "application/vnd.ollama.image.system",
  params: "application/vnd.ollama.image.params",
  messages: "application/vnd.ollama.image.messages",
  license: "application/vnd.ollama.image.license",
} as const satisfies Record<string, LayerMediaType>;

/** OWL_HOME/models: where the CLI and the server keep the store. */
export function defaultStoreRoot(): string {
  return join(owlHome(), "models");
}

export interface ModelStoreOptions {
  /** List and resolve the bundled stories260K (default true). */
  builtin?: boolean;
}

interface BuiltinInfo {
  path: string;
  hex: string;
  size: number;
  mtime: Date;
  summary: GgufSummary;
  configBytes: string;
  manifest: Manifest;
  manifestDigest: string;
}

function notFound(name: string): OwlError {
  return new OwlError("ERR_MODEL_NOT_FOUND", `model "${name}" not found`, {
    hint: "run `owl list` to see the models you have",
    details: { model: name },
  });
}

function corruptStore(what: string, cause?: unknown): OwlError {
  return new OwlError("ERR_STORE_CORRUPT", what, {
    hint: "remove the model (owl rm) and create or pull it again",
    cause,
  });
}

function goArch(): string {
  return process.arch === "x64" ? "amd64" : process.arch;
}

/** A Modelfile path: absolute, ~ or ~/..., else relative to baseDir (Ollama's expandPath). */
function expandPath(p: string, baseDir: string): string {
  if (p === "~") return homedir();
  if (p.startsWith("~/")) return join(homedir(), p.slice(2));
  return isAbsolute(p) ? p : resolvePath(baseDir, p);
}

/** Whether a FROM that names no existing file was meant as a path rather than a model name. */
function looksLikePath(s: string): boolean {
  return (
    s.startsWith("/") ||
    s.startsWith("./") ||
    s.startsWith("../") ||
    s.startsWith("~") ||
    s.includes("\\") ||
    /\.(gguf|bin|safetensors)$/i.test(s)
  );
}

/**
 * How long list() may answer from its cache without listing again even when the change mark did
 * not move: a manifest changed by something other than an owl store (a hand edit, a copy) shows
 * within this time.
 */
const LIST_CACHE_MS = 1000;

/**
 * The change mark: a file in the store's root (beside blobs/ and manifests/, whose layout is
 * Ollama's) that every owl store rewrites with a random token after changing a manifest. Written
 * in place, not atomically: a torn write is a different token too, which is all a reader needs.
 */
const CHANGES_FILE = ".changes";

export class ModelStore implements ModelStoreApi {
  readonly root: string;
  private readonly withBuiltin: boolean;
  private ready: Promise<void> | undefined;
  private builtinInfo: Promise<BuiltinInfo> | undefined;
  private readonly ggufLicense = new Map<string, string | undefined>();
  /**
   * resolve()'s answers by manifest file, with the file's size and mtime when read: a request
   * then costs a stat of the manifest and of the model blob instead of reading the manifests
   * tree and every layer again (blobs are content-addressed: a manifest that did not change
   * names the same bytes).
   */
  private readonly resolved = new Map<string, { key: string; model: ResolvedModel }>();
  /** list()'s last answer, the change mark it was made under and when (performance.now()). */
  private listCache: { mark: string; at: number; models: StoredModel[] } | undefined;

  constructor(root: string, options: ModelStoreOptions = {}) {
    this.root = resolvePath(root);
    this.withBuiltin = options.builtin ?? true;
  }

  /** Once per store object: remove temp files that dead processes left behind. */
  private init(): Promise<void> {
    this.ready ??= (async () => {
      await cleanStaleTemps(join(this.root, "blobs"));
      await cleanStaleTemps(manifestsDir(this.root));
    })();
    return this.ready;
  }

  // ---------------------------------------------------------------------------------------------
  // The bundled model

  private builtin(): Promise<BuiltinInfo> {
    this.builtinInfo ??= (async () => {
      const path = builtinModelPath();
      const [{ hex, size }, st, summary] = await Promise.all([
        hashFile(path),
        stat(path),
        summarizeGguf(path),
      ]);
      const configBytes = JSON.stringify(this.configFor(summary, [`sha256:${hex}`], ""));
      const manifest: Manifest = {
        schemaVersion: 2,
        mediaType: MANIFEST_MEDIA_TYPE,
        config: {
          mediaType: CONFIG_MEDIA_TYPE,
          digest: `sha256:${sha256Hex(configBytes)}`,
          size: Buffer.byteLength(configBytes),
        },
        layers: [{ mediaType: MT.model, digest: `sha256:${hex}`, size }],
      };
      return {
        path,
        hex,
        size,
        mtime: st.mtime,
        summary,
        configBytes,
        manifest,
        manifestDigest: sha256Hex(serializeManifest(manifest)),
      };
    })();
    this.builtinInfo.catch(() => {
      this.builtinInfo = undefined;
    });
    return this.builtinInfo;
  }

  private isBuiltinName(n: ModelName): boolean {
    return this.withBuiltin && nameKey(n) === nameKey(parseModelName(BUILTIN_MODEL_NAME));
  }

  /** Copy the bundled model's blobs into the store (for cp / create FROM it). */
  private async materializeBuiltin(): Promise<void> {
    const b = await this.builtin();
    await copyFileToBlob(this.root, b.path, b.hex);
    await putBytesBlob(this.root, b.configBytes);
  }

  // ---------------------------------------------------------------------------------------------
  // Reading

  private configFor(s: GgufSummary, diffIds: string[], parent: string): ConfigBlob {
    return {
      model_format: "gguf",
      model_family: s.architecture,
      model_families: [s.architecture],
      model_type: s.parameterSize,
      file_type: s.fileType,
      architecture: goArch(),
      os: process.platform,
      rootfs: { type: "layers", diff_ids: diffIds },
      ...(parent ? { parent_model: parent } : {}),
    };
  }

  private async readBlobText(layer: Layer, what: string, model: string): Promise<string> {
    const path = blobFile(this.root, layer.digest);
    try {
      return await readFile(path, "utf8");
    } catch (e) {
      throw corruptStore(`model "${model}": its ${what} layer ${layer.digest} is missing (${path})`, e);
    }
  }

  private async readBlobJson(layer: Layer, what: string, model: string): Promise<unknown> {
    const text = await this.readBlobText(layer, what, model);
    try {
      return JSON.parse(text);
    } catch (e) {
      throw corruptStore(
        `model "${model}": its ${what} blob ${blobFile(this.root, layer.digest)} is not valid JSON`,
        e,
      );
    }
  }

  private detailsFrom(config: unknown): ModelDetails {
    const c = (typeof config === "object" && config !== null ? config : {}) as Partial<ConfigBlob>;
    const s = (v: unknown) => (typeof v === "string" ? v : "");
    return {
      parent_model: s(c.parent_model),
      format: s(c.model_format) || "gguf",
      family: s(c.model_family),
      families: Array.isArray(c.model_families) ? c.model_families.filter((f) => typeof f === "string") : [],
      parameter_size: s(c.model_type),
      quantization_level: s(c.file_type),
    };
  }

  private async storedEntry(name: ModelName, loaded: LoadedManifest): Promise<StoredModel> {
    const display = displayName(name);
    const config = await this.readBlobJson(loaded.manifest.config, "config", display);
    return {
      name: display,
      digest: loaded.digest,
      size: loaded.manifest.layers.reduce((a, l) => a + l.size, 0),
      modifiedAt: loaded.modifiedAt,
      details: this.detailsFrom(config),
    };
  }

  private async builtinEntry(): Promise<StoredModel> {
    const b = await this.builtin();
    return {
      name: BUILTIN_MODEL_NAME,
      digest: b.manifestDigest,
      size: b.size,
      modifiedAt: b.mtime,
      details: this.detailsFrom(JSON.parse(b.configBytes)),
      builtin: true,
    };
  }

  /**
   * The store's models, newest first. Answered from a cache while the change mark (a random token
   * in <root>/.changes, rewritten after every manifest write or removal by any owl process on
   * this store) is the one it was listed under and for at most LIST_CACHE_MS; reading the mark is
   * one small synchronous read, where listing reads every manifest and config blob.
   */
  async list(): Promise<StoredModel[]> {
    const mark = this.changeMark();
    const c = this.listCache;
    if (c && c.mark === mark && performance.now() - c.at < LIST_CACHE_MS) return [...c.models];
    const at = performance.now();
    const models = await this.listNow();
    this.listCache = { mark, at, models };
    return [...models];
  }

  private changeMark(): string {
    try {
      return readFileSync(join(this.root, CHANGES_FILE), "utf8");
    } catch {
      return "";
    }
  }

  /** After a manifest was written or removed: a new change mark, seen by every store object. */
  private async noteChange(): Promise<void> {
    this.listCache = undefined;
    await mkdir(this.root, { recursive: true });
    await writeFile(join(this.root, CHANGES_FILE), randomBytes(12).toString("hex"));
  }

  private async listNow(): Promise<StoredModel[]> {
    await this.init();
    const out: StoredModel[] = [];
    let builtinShadowed = false;
    for (const f of await listManifestFiles(this.root)) {
      try {
        out.push(await this.storedEntry(f.name, await readManifestFile(f.path)));
        if (this.isBuiltinName(f.name)) builtinShadowed = true;
      } catch (e) {
        // As Ollama's /api/tags: a manifest that cannot be read is left out, not fatal to the list.
        if (!isOwlError(e)) throw e;
      }
    }
    if (this.withBuiltin && !builtinShadowed) {
      try {
        out.push(await this.builtinEntry());
      } catch (e) {
        // A package installed without models/ has no bundled model; the list still works.
        if (!isOwlError(e)) throw e;
      }
    }
    // Newest first, as `ollama list` and /api/tags order them.
    out.sort((a, b) => b.modifiedAt.getTime() - a.modifiedAt.getTime());
    return out;
  }

  async resolve(name: string): Promise<ResolvedModel> {
    const n = parseModelName(name);
    await this.init();
    const hit = await this.cachedResolve(manifestPath(this.root, n));
    if (hit) return hit;
    const file = await findManifest(this.root, n);
    if (file) {
      const key = await fileKey(file.path);
      const loaded = await readManifestFile(file.path);
      const model = await this.resolveManifest(file.name, loaded);
      if (key !== undefined) {
        if (this.resolved.size >= 256) this.resolved.clear();
        this.resolved.set(file.path, { key, model: structuredClone(model) });
      }
      return model;
    }
    if (this.isBuiltinName(n)) return this.resolveBuiltin();
    throw notFound(name);
  }

  /** A copy of resolve()'s earlier answer for this manifest file, if the file has not changed. */
  private async cachedResolve(path: string): Promise<ResolvedModel | undefined> {
    const hit = this.resolved.get(path);
    if (hit === undefined) return undefined;
    if ((await fileKey(path)) !== hit.key) {
      this.resolved.delete(path);
      return undefined;
    }
    const model = hit.model;
    const layer = model.manifest.layers.find((l) => l.mediaType === MT.model);
    // The model blob is still checked (its size), as the full path does.
    if (layer !== undefined) await this.checkBlob(layer, "model", model.name);
    return structuredClone(model);
  }

  private async resolveBuiltin(): Promise<ResolvedModel> {
    const b = await this.builtin();
    return {
      ...(await this.builtinEntry()),
      modelPath: b.path,
      adapters: [],
      params: {},
      license: b.summary.license !== undefined ? [b.summary.license] : [],
      messages: [],
      manifest: b.manifest,
    };
  }

  private async checkBlob(layer: Layer, what: string, model: string): Promise<string> {
    const path = blobFile(this.root, layer.digest);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (e) {
      throw corruptStore(`model "${model}": its ${what} blob ${path} is missing`, e);
    }
    // A cheap integrity check: the size must match (rehashing a multi-GB blob per request is not).
    if (size !== layer.size) {
      throw corruptStore(`model "${model}": blob ${path} has ${size} bytes, the manifest says ${layer.size}`);
    }
    return path;
  }

  private async resolveManifest(name: ModelName, loaded: LoadedManifest): Promise<ResolvedModel> {
    const entry = await this.storedEntry(name, loaded);
    const model = entry.name;
    let modelPath: string | undefined;
    const adapters: string[] = [];
    const license: string[] = [];
    let template: string | undefined;
    let system: string | undefined;
    let params: Params = {};
    let messages: StoredMessage[] = [];
    for (const layer of loaded.manifest.layers) {
      switch (layer.mediaType) {
        case MT.model:
          // NOTE: Ollama lists a multimodal projector as a second model layer; the first is the LLM.
          modelPath ??= await this.checkBlob(layer, "model", model);
          break;
        case MT.adapter:
          adapters.push(await this.checkBlob(layer, "adapter", model));
          break;
        case MT.template:
          template = await this.readBlobText(layer, "template", model);
          break;
        case MT.system:
          system = await this.readBlobText(layer, "system", model);
          break;
        case MT.license:
          license.push(await this.readBlobText(layer, "license", model));
          break;
        case MT.params:
          params = this.paramsFrom(await this.readBlobJson(layer, "params", model), model, layer);
          break;
        case MT.messages:
          messages = this.messagesFrom(await this.readBlobJson(layer, "messages", model), model, layer);
          break;
        default:
          break; // projector and unknown layer types: kept in the manifest, not used to run
      }
    }
    if (modelPath === undefined) {
      throw corruptStore(`model "${model}": manifest ${loaded.digest} has no model layer`);
    }
    if (license.length === 0) {
      const l = await this.licenseOfGguf(modelPath);
      if (l !== undefined) license.push(l);
    }
    const resolved: ResolvedModel = {
      ...entry,
      modelPath,
      adapters,
      params,
      license,
      messages,
      manifest: loaded.manifest,
    };
    if (template !== undefined) resolved.template = template;
    if (system !== undefined) resolved.system = system;
    return resolved;
  }

  private async licenseOfGguf(path: string): Promise<string | undefined> {
    if (!this.ggufLicense.has(path)) {
      let license: string | undefined;
      try {
        license = (await summarizeGguf(path)).license;
      } catch {
        license = undefined; // an unreadable model fails where it is loaded, with the reader's error
      }
      this.ggufLicense.set(path, license);
    }
    return this.ggufLicense.get(path);
  }

  /** A params blob as Ollama writes it; values of unexpected types are dropped, not fatal. */
  private paramsFrom(json: unknown, model: string, layer: Layer): Params {
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw corruptStore(
        `model "${model}": params blob ${blobFile(this.root, layer.digest)} is not a JSON object`,
      );
    }
    const out: Params = {};
    for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
      if (typeof v === "number" || typeof v === "boolean" || typeof v === "string") out[k] = v;
      else if (Array.isArray(v) && v.every((s) => typeof s === "string")) out[k] = v as string[];
    }
    return out;
  }

  private messagesFrom(json: unknown, model: string, layer: Layer): StoredMessage[] {
    const bad = () =>
      corruptStore(
        `model "${model}": messages blob ${blobFile(this.root, layer.digest)} is not a list of messages`,
      );
    if (!Array.isArray(json)) throw bad();
    return json.map((m) => {
      const r = (m ?? {}) as Record<string, unknown>;
      if (
        (r["role"] !== "system" && r["role"] !== "user" && r["role"] !== "assistant") ||
        typeof r["content"] !== "string"
      )
        throw bad();
      return { role: r["role"], content: r["content"] };
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Blobs

  async hasBlob(digest: string): Promise<boolean> {
    return exists(blobFile(this.root, digest));
  }

  async putBlob(digest: string, data: AsyncIterable<Uint8Array>): Promise<void> {
    const hex = digestHex(digest);
    await this.init();
    if (await exists(blobFile(this.root, hex))) return;
    await writeBlobFromStream(this.root, hex, data);
  }

  blobPath(digest: string): string {
    const path = blobFile(this.root, digest);
    if (existsSync(path)) return path;
    // The bundled model's blob is served from the package until something imports it.
    if (this.withBuiltin && this.builtinHexSync() === digestHex(digest)) return builtinModelPath();
    throw new OwlError("ERR_BLOB_NOT_FOUND", `blob ${digest} is not in the store (${path})`, {
      details: { digest },
    });
  }

  private builtinHex: string | undefined;
  /** The bundled model's sha256, computed synchronously once (1 MB) for blobPath. */
  private builtinHexSync(): string {
    this.builtinHex ??= sha256Hex(readFileSync(builtinModelPath()));
    return this.builtinHex;
  }

  // ---------------------------------------------------------------------------------------------
  // Writing

  async remove(name: string): Promise<void> {
    const n = parseModelName(name);
    await this.init();
    const file = await findManifest(this.root, n);
    if (!file) {
      if (this.isBuiltinName(n)) {
        throw new OwlError(
          "ERR_UNSUPPORTED",
          `"${BUILTIN_MODEL_NAME}" is bundled with owl and cannot be removed`,
          {
            hint: "it takes no space in the store; `owl cp stories260k <name>` makes a copy you can remove",
          },
        );
      }
      throw notFound(name);
    }
    let layers: Layer[] = [];
    try {
      const m = (await readManifestFile(file.path)).manifest;
      layers = [m.config, ...m.layers];
    } catch (e) {
      // A corrupt manifest can still be removed; its blobs cannot be known, so they stay.
      if (!isOwlError(e, "ERR_STORE_CORRUPT")) throw e;
    }
    try {
      await deleteManifestFile(this.root, file);
    } finally {
      await this.noteChange();
    }
    // Delete the blobs of this manifest that no remaining manifest references. If any remaining
    // manifest cannot be read, keep every blob: it might reference them.
    const referenced = new Set<string>();
    for (const f of await listManifestFiles(this.root)) {
      try {
        const m = (await readManifestFile(f.path)).manifest;
        for (const l of [m.config, ...m.layers]) referenced.add(l.digest);
      } catch {
        return;
      }
    }
    for (const l of layers) {
      if (referenced.has(l.digest)) continue;
      await unlink(blobFile(this.root, l.digest)).catch(() => {});
    }
  }

  async copy(source: string, destination: string): Promise<void> {
    const src = parseModelName(source);
    const dst = parseModelName(destination);
    await this.init();
    const file = await findManifest(this.root, src);
    let manifest: Manifest;
    if (file) {
      manifest = (await readManifestFile(file.path)).manifest;
    } else if (this.isBuiltinName(src)) {
      await this.materializeBuiltin();
      manifest = (await this.builtin()).manifest;
    } else {
      throw notFound(source);
    }
    try {
      await writeManifest(this.root, dst, manifest);
    } finally {
      await this.noteChange();
    }
  }

  async create(name: string, modelfile: Modelfile, options: CreateOptions = {}): Promise<StoredModel> {
    const target = parseModelName(name);
    const progress = (p: CreateProgress) => options.onProgress?.(p);
    const signal = options.signal;
    const checkAbort = () => {
      if (signal?.aborted) throw new OwlError("ERR_ABORTED", `creating "${name}" was cancelled`);
    };
    const baseDir = options.baseDir ?? process.cwd();
    await this.init();
    progress({ status: "parsing modelfile" });
    checkAbort();

    let layers: Layer[];
    let summary: GgufSummary;
    let parent = "";
    const preexisting = new Set<string>();
    const noteExisting = async (digest: string) => {
      if (await this.hasBlob(digest)) preexisting.add(digest);
    };

    const from = modelfile.from;
    if (from === "") {
      throw new OwlError(
        "ERR_MODELFILE_PARSE",
        "the Modelfile has no FROM line (FROM <model.gguf | model name>)",
      );
    }
    if (isDigest(from)) {
      // FROM sha256:<hex>: a blob uploaded before (POST /api/blobs), or the bundled model's.
      const hex = digestHex(from);
      const digest = `sha256:${hex}`;
      let path = blobFile(this.root, hex);
      if (!(await exists(path))) {
        const b = this.withBuiltin ? await this.builtin() : undefined;
        if (b?.hex !== hex) {
          throw new OwlError("ERR_BLOB_NOT_FOUND", `FROM ${digest}: no such blob in the store`, {
            hint: "upload it first (POST /api/blobs/:digest)",
          });
        }
        await this.materializeBuiltin();
        path = blobFile(this.root, hex);
      }
      summary = await this.checkModelGguf(path);
      preexisting.add(digest);
      layers = [{ mediaType: MT.model, digest, size: (await stat(path)).size }];
    } else {
      const path = expandPath(from, baseDir);
      const st = await stat(path).catch(() => undefined);
      if (st?.isDirectory()) {
        const entries = await readdir(path);
        const kind = entries.some((e) => e.endsWith(".safetensors"))
          ? "a safetensors model directory"
          : "a directory";
        throw new OwlError(
          "ERR_UNSUPPORTED",
          `FROM ${from}: ${path} is ${kind}; owl creates models from GGUF files`,
          {
            hint: "convert the model to GGUF first (llama.cpp's convert_hf_to_gguf.py; owl convert will learn safetensors later)",
          },
        );
      }
      if (st?.isFile()) {
        summary = await this.checkModelGguf(path);
        const digest = await this.importFile(path, progress, signal);
        if (digest.existed) preexisting.add(digest.digest);
        layers = [{ mediaType: MT.model, digest: digest.digest, size: digest.size }];
      } else if (looksLikePath(from)) {
        throw new OwlError("ERR_FILE_NOT_FOUND", `FROM ${from}: file ${path} does not exist`, {
          details: { path },
        });
      } else {
        // A stored model name; the errors say that a file was looked for too.
        let base: ResolvedModel;
        try {
          base = await this.resolve(from);
        } catch (e) {
          if (isOwlError(e, "ERR_MODEL_NOT_FOUND") || isOwlError(e, "ERR_INVALID_NAME")) {
            const what =
              e.code === "ERR_MODEL_NOT_FOUND" ? `no model "${from}" in the store` : "not a valid model name";
            throw new OwlError(e.code, `FROM ${from}: ${what}, and no file ${path}`, {
              hint: e.code === "ERR_MODEL_NOT_FOUND" ? "run `owl list` to see the models you have" : e.hint,
              cause: e,
            });
          }
          throw e;
        }
        if (base.builtin) await this.materializeBuiltin();
        parent = base.name;
        summary = await summarizeGguf(base.modelPath);
        for (const l of base.manifest.layers) preexisting.add(l.digest);
        layers = [...base.manifest.layers];
        // Inherited params are merged below with the new ones.
        if (Object.keys(modelfile.params).length > 0) {
          modelfile = { ...modelfile, params: { ...base.params, ...modelfile.params } };
        }
      }
    }
    checkAbort();

    for (const a of modelfile.adapters) {
      const path = expandPath(a, baseDir);
      const s = await summarizeGguf(path, "adapter");
      if (s.type !== "adapter") {
        throw new OwlError(
          "ERR_INVALID_ARGUMENT",
          `ADAPTER ${a}: ${path} is not a LoRA adapter (its general.type is ${s.type === undefined ? "not set" : `"${s.type}"`}, expected "adapter")`,
          {
            hint: "a base model goes in FROM; ADAPTER takes a GGUF LoRA adapter (llama.cpp's convert_lora_to_gguf.py)",
          },
        );
      }
      const d = await this.importFile(path, progress, signal);
      if (d.existed) preexisting.add(d.digest);
      layers.push({ mediaType: MT.adapter, digest: d.digest, size: d.size });
      checkAbort();
    }

    const replaceText = async (mediaType: LayerMediaType, text: string | undefined) => {
      if (text === undefined) return;
      layers = layers.filter((l) => l.mediaType !== mediaType);
      // As Ollama: an empty SYSTEM removes the system prompt; an empty TEMPLATE is kept as given.
      if (mediaType === MT.system && text === "") return;
      layers.push(await this.textLayer(mediaType, text, noteExisting));
    };
    await replaceText(MT.template, modelfile.template);
    await replaceText(MT.system, modelfile.system);
    if (Object.keys(modelfile.params).length > 0) {
      layers = layers.filter((l) => l.mediaType !== MT.params);
      layers.push(await this.textLayer(MT.params, JSON.stringify(modelfile.params), noteExisting));
    }
    if (modelfile.messages.length > 0) {
      layers = layers.filter((l) => l.mediaType !== MT.messages);
      layers.push(await this.textLayer(MT.messages, JSON.stringify(modelfile.messages), noteExisting));
    }
    for (const text of modelfile.license) {
      const l = await this.textLayer(MT.license, text, noteExisting);
      if (!layers.some((x) => x.mediaType === MT.license && x.digest === l.digest)) layers.push(l);
    }
    checkAbort();

    for (const l of layers) {
      progress({
        status: preexisting.has(l.digest)
          ? `using existing layer ${l.digest}`
          : `creating new layer ${l.digest}`,
        digest: l.digest,
      });
    }
    const configBytes = JSON.stringify(
      this.configFor(
        summary,
        layers.map((l) => l.digest),
        parent,
      ),
    );
    const configBlob = await putBytesBlob(this.root, configBytes);
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MANIFEST_MEDIA_TYPE,
      config: { mediaType: CONFIG_MEDIA_TYPE, digest: `sha256:${configBlob.hex}`, size: configBlob.size },
      layers,
    };
    checkAbort();
    progress({ status: "writing manifest" });
    try {
      await writeManifest(this.root, target, manifest);
    } finally {
      await this.noteChange();
    }
    progress({ status: "success" });
    const file = await findManifest(this.root, target);
    if (!file) throw corruptStore(`the manifest of "${name}" disappeared right after it was written`);
    return this.storedEntry(file.name, await readManifestFile(file.path));
  }

  private async checkModelGguf(path: string): Promise<GgufSummary> {
    const s = await summarizeGguf(path);
    if (s.type !== undefined && s.type !== "model") {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `FROM ${path}: general.type is "${s.type}", expected a model${s.type === "adapter" ? " (a LoRA adapter goes in ADAPTER, with its base model in FROM)" : ""}`,
      );
    }
    return s;
  }

  private async textLayer(
    mediaType: LayerMediaType,
    text: string,
    noteExisting: (d: string) => Promise<void>,
  ): Promise<Layer> {
    const digest = `sha256:${sha256Hex(text)}`;
    await noteExisting(digest);
    const { hex, size } = await putBytesBlob(this.root, text);
    return { mediaType, digest: `sha256:${hex}`, size };
  }

  /**
   * Hash a file (streamed), then copy it into blobs/ unless that blob exists: a file imported
   * twice is stored once. Progress: Ollama's client statuses with completed/total bytes.
   */
  private async importFile(
    path: string,
    progress: (p: CreateProgress) => void,
    signal: AbortSignal | undefined,
  ): Promise<{ digest: string; size: number; existed: boolean }> {
    const { hex, size } = await hashFile(path, {
      signal,
      onProgress: (completed, total) => progress({ status: "gathering model components", completed, total }),
    });
    const digest = `sha256:${hex}`;
    const existed = await exists(blobFile(this.root, hex));
    if (!existed) {
      await copyFileToBlob(this.root, path, hex, {
        signal,
        onProgress: (completed, total) =>
          progress({ status: `copying file ${digest}`, completed, total, digest }),
      });
    }
    return { digest, size, existed };
  }

  // ---------------------------------------------------------------------------------------------
  // Modelfile text

  modelfileText(model: ResolvedModel): string {
    const licenseLayers = model.manifest.layers.filter((l) => l.mediaType === MT.license).length;
    const mf: Modelfile = {
      from: model.modelPath,
      params: model.params,
      adapters: model.adapters,
      license: licenseLayers > 0 ? model.license : [],
      messages: model.messages,
    };
    if (model.template !== undefined) mf.template = model.template;
    if (model.system !== undefined) mf.system = model.system;
    return (
      '# Modelfile generated by "owl show"\n' +
      "# To build a new Modelfile based on this, replace FROM with:\n" +
      `# FROM ${model.name}\n\n` +
      printModelfile(mf)
    );
  }
}
