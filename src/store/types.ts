/**
 * The model store's contract: names, Ollama-shaped manifests and the resolved view of a model
 * that the runtime and the server use. Implementation: store.ts (ModelStore), names.ts, blobs.ts,
 * manifests.ts, modelfile.ts. Not here: loading models (runtime/), HTTP (server/).
 *
 * On disk, under OWL_HOME (default ~/.owl), the same layout as Ollama's models directory:
 *   models/blobs/sha256-<hex>                               content-addressed, immutable
 *   models/manifests/<host>/<namespace>/<model>/<tag>      JSON Manifest (below)
 * A model is stored once however many tags point at it; a blob no manifest references is
 * removed by `remove`. Every write is temp file + fsync + rename (+ fsync of the directory).
 */

/** A parsed model name: [host/][namespace/]model[:tag], Ollama's defaults filled in. */
export interface ModelName {
  /** Default "registry.ollama.ai", as Ollama, so short names print the same way. */
  host: string;
  /** Default "library". */
  namespace: string;
  model: string;
  /** Default "latest". */
  tag: string;
}

/** The layer media types of Ollama's manifests. */
export type LayerMediaType =
  | "application/vnd.ollama.image.model"
  | "application/vnd.ollama.image.adapter"
  | "application/vnd.ollama.image.projector"
  | "application/vnd.ollama.image.template"
  | "application/vnd.ollama.image.system"
  | "application/vnd.ollama.image.params"
  | "application/vnd.ollama.image.messages"
  | "application/vnd.ollama.image.license";

export interface Layer {
  mediaType: LayerMediaType | "application/vnd.docker.container.image.v1+json";
  /** "sha256:<64 hex>". */
  digest: string;
  size: number;
  /** Where the layer came from (a model name or file), informational. */
  from?: string;
}

/** Docker/OCI image manifest v2, as Ollama writes it. */
export interface Manifest {
  schemaVersion: 2;
  mediaType: "application/vnd.docker.distribution.manifest.v2+json";
  /** The config blob: JSON ModelConfigBlob. */
  config: Layer;
  layers: Layer[];
}

/** The config blob (Ollama's ConfigV2 fields that matter). */
export interface ModelConfigBlob {
  model_format: "gguf";
  model_family: string;
  model_families: string[];
  /** Parameter size as Ollama prints it: "260K", "7.2B". */
  model_type: string;
  /** Quantization level / file type: "F32", "Q4_K_M". */
  file_type: string;
  architecture?: string;
  os?: string;
  rootfs: { type: "layers"; diff_ids: string[] };
}

/** Ollama's ModelDetails. */
export interface ModelDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[];
  parameter_size: string;
  quantization_level: string;
}

/** One entry of `owl list` / GET /api/tags. */
export interface StoredModel {
  /** Display name as Ollama prints it: "stories260k:latest", "myhost/ns/name:tag". */
  name: string;
  /** sha256 hex of the manifest file's bytes (Ollama's "digest" in /api/tags). */
  digest: string;
  /** Sum of the sizes of every layer. */
  size: number;
  modifiedAt: Date;
  details: ModelDetails;
  /** True for the bundled stories260K, which is available with no set-up. */
  builtin?: boolean;
}

/** One message of a Modelfile MESSAGE line. */
export interface StoredMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** Everything needed to run a stored model. */
export interface ResolvedModel extends StoredModel {
  /** Absolute path of the GGUF model blob. */
  modelPath: string;
  /** Absolute paths of GGUF LoRA adapter blobs, applied in order (scale 1). */
  adapters: string[];
  /** Modelfile TEMPLATE: a Go text/template (Ollama syntax); undefined: use the GGUF's chat template. */
  template?: string;
  /** Modelfile SYSTEM. */
  system?: string;
  /** Modelfile PARAMETERs with Ollama option names; "stop" is a string[]. */
  params: Record<string, number | boolean | string | string[]>;
  /** Modelfile LICENSE texts (plus the GGUF's general.license when the Modelfile has none). */
  license: string[];
  /** Modelfile MESSAGE history, prepended to every chat. */
  messages: StoredMessage[];
  /** The manifest itself. */
  manifest: Manifest;
}

/** A Modelfile, parsed (Ollama's syntax: FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE). */
export interface Modelfile {
  /** A GGUF path (relative to the Modelfile's directory), a stored model name, or a blob digest. */
  from: string;
  params: Record<string, number | boolean | string | string[]>;
  template?: string;
  system?: string;
  adapters: string[];
  license: string[];
  messages: StoredMessage[];
}

export interface CreateProgress {
  /** Ollama's /api/create status lines: "parsing modelfile", "using existing layer sha256:...",
   * "creating new layer sha256:...", "writing manifest", "success". */
  status: string;
  /** Bytes hashed/copied so far while importing a large file. */
  completed?: number;
  total?: number;
  digest?: string;
}

export interface CreateOptions {
  /** Directory relative paths in the Modelfile are resolved against. */
  baseDir?: string;
  onProgress?: (p: CreateProgress) => void;
  signal?: AbortSignal;
}

/** The store, as the runtime, server and CLI see it. */
export interface ModelStoreApi {
  /** OWL_HOME/models. */
  readonly root: string;
  list(): Promise<StoredModel[]>;
  /** ERR_INVALID_NAME for a bad name, ERR_MODEL_NOT_FOUND when absent. */
  resolve(name: string): Promise<ResolvedModel>;
  remove(name: string): Promise<void>;
  copy(source: string, destination: string): Promise<void>;
  create(name: string, modelfile: Modelfile, options?: CreateOptions): Promise<StoredModel>;
  /** Whether a blob with this digest ("sha256:<hex>") is stored. */
  hasBlob(digest: string): Promise<boolean>;
  /** Store a blob from a stream, checking its digest (ERR_DIGEST_MISMATCH); atomic. */
  putBlob(digest: string, data: AsyncIterable<Uint8Array>): Promise<void>;
  /** Absolute path of a stored blob (ERR_BLOB_NOT_FOUND). */
  blobPath(digest: string): string;
  /** The Modelfile text `owl show --modelfile` and /api/show print. */
  modelfileText(model: ResolvedModel): string;
}
