/**
 * What a model file holds, as `owl show` reports it (the information `ollama show` gives, and
 * more): architecture, parameter count, tensor type mix, context length, tokenizer, chat
 * template, licence and the other general.* metadata. Works on GGUF and safetensors.
 * Not here: printing (cli/commands/show.ts).
 */
import { archKeys, FILE_TYPE_NAMES, GENERAL, TOKENIZER } from "../formats/gguf/keys.ts";
import type { GgufFile, GgufValue } from "../formats/gguf/types.ts";
import type { HfModelDir } from "../formats/hf/model-dir.ts";
import type { SafetensorsModel } from "../formats/safetensors/index.ts";

/** Assigns a field of a ModelInfo only when the value is known, so absent facts stay absent. */
function setter(info: ModelInfo) {
  return <K extends keyof ModelInfo>(key: K, value: ModelInfo[K] | undefined): void => {
    if (value !== undefined) info[key] = value;
  };
}

export interface TensorTypeShare {
  type: string;
  tensors: number;
  parameters: number;
  bytes: number;
}

export interface TensorSummary {
  name: string;
  type: string;
  /** Shape in the file's own order (GGUF: ggml order, row length first; safetensors: PyTorch order). */
  shape: number[];
  offset: number;
  bytes: number;
}

export interface ModelInfo {
  format: "gguf" | "safetensors";
  file: string;
  fileSize: number;
  /** GGUF version, when GGUF. */
  version?: number;
  architecture?: string;
  name?: string;
  parameters: number;
  /** "260K", "1.1B", like general.size_label. */
  parameterLabel: string;
  /** general.file_type as llama.cpp names it (Q4_K_M), or the dominant tensor type. */
  quantization?: string;
  contextLength?: number;
  embeddingLength?: number;
  blockCount?: number;
  feedForwardLength?: number;
  headCount?: number;
  headCountKv?: number;
  ropeFreqBase?: number;
  expertCount?: number;
  expertUsedCount?: number;
  vocabSize?: number;
  tokenizer?: {
    model?: string;
    pre?: string;
    tokens?: number;
    bos?: number;
    eos?: number;
    addBos?: boolean;
  };
  chatTemplate: boolean;
  license?: string;
  /** Every general.* entry (and for safetensors, __metadata__) as display strings. */
  general: Record<string, string>;
  /** Every metadata entry, arrays abbreviated, for --json. */
  metadata: Record<string, unknown>;
  tensorTypes: TensorTypeShare[];
  tensorCount: number;
  tensors: TensorSummary[];
  /** Side files that exist but could not be read (safetensors directories). */
  warnings?: string[];
}

/** 260032 -> "260K", 1.1e9 -> "1.1B" (llama.cpp's size_label style). */
export function parameterLabel(n: number): string {
  const units: [number, string][] = [
    [1e12, "T"],
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "K"],
  ];
  for (const [scale, suffix] of units) {
    if (n >= scale) {
      const v = n / scale;
      return `${v >= 100 ? Math.round(v) : Number(v.toPrecision(v >= 10 ? 3 : 2))}${suffix}`;
    }
  }
  return String(n);
}

function scalar(v: GgufValue | undefined): string | number | boolean | bigint | undefined {
  if (!v || v.type === "ARRAY") return undefined;
  return v.value;
}

function num(v: GgufValue | undefined): number | undefined {
  const s = scalar(v);
  if (typeof s === "number") return s;
  if (typeof s === "bigint") return Number(s);
  return undefined;
}

function str(v: GgufValue | undefined): string | undefined {
  const s = scalar(v);
  return typeof s === "string" ? s : undefined;
}

/** A metadata value as JSON-friendly data; arrays longer than `maxItems` are abbreviated. */
export function displayValue(v: GgufValue, maxItems = 8): unknown {
  if (v.type !== "ARRAY") return typeof v.value === "bigint" ? v.value.toString() : v.value;
  const items = v.value.items;
  const n = items.length;
  const head: unknown[] = [];
  for (let i = 0; i < Math.min(n, maxItems); i++) {
    const x = items[i];
    head.push(
      typeof x === "bigint"
        ? x.toString()
        : x && typeof x === "object" && "itemType" in x
          ? `[${x.items.length} ${x.itemType}]`
          : x,
    );
  }
  return n <= maxItems ? head : { type: v.value.itemType, length: n, first: head };
}

function displayString(v: GgufValue): string {
  const d = displayValue(v, 8);
  return typeof d === "string" ? d : JSON.stringify(d);
}

function shares(
  tensors: readonly TensorSummary[],
  paramsOf: (t: TensorSummary) => number,
): TensorTypeShare[] {
  const by = new Map<string, TensorTypeShare>();
  for (const t of tensors) {
    const s = by.get(t.type) ?? { type: t.type, tensors: 0, parameters: 0, bytes: 0 };
    s.tensors++;
    s.parameters += paramsOf(t);
    s.bytes += t.bytes;
    by.set(t.type, s);
  }
  return [...by.values()].sort((a, b) => b.parameters - a.parameters);
}

/** Summarize an opened GGUF file. */
export function ggufModelInfo(f: GgufFile): ModelInfo {
  const md = f.metadata;
  const arch = str(md.get(GENERAL.architecture));
  const k = archKeys(arch ?? "");
  const tensors: TensorSummary[] = f.tensors.map((t) => ({
    name: t.name,
    type: t.type.name,
    shape: t.dims,
    offset: t.fileOffset,
    bytes: t.byteSize,
  }));
  const nElements = new Map(f.tensors.map((t) => [t.name, t.nElements]));
  const parameters = f.tensors.reduce((a, t) => a + t.nElements, 0);
  const tensorTypes = shares(tensors, (t) => nElements.get(t.name) ?? 0);
  const fileType = num(md.get(GENERAL.fileType));
  const general: Record<string, string> = {};
  const metadata: Record<string, unknown> = {};
  for (const [key, v] of md) {
    metadata[key] = displayValue(v);
    if (key.startsWith("general.")) general[key] = displayString(v);
  }
  const tokensValue = md.get(TOKENIZER.tokens);
  const tokenCount = tokensValue?.type === "ARRAY" ? tokensValue.value.items.length : undefined;
  const tokModel = str(md.get(TOKENIZER.model));
  const addBos = scalar(md.get(TOKENIZER.addBos));
  const license = str(md.get(GENERAL.license)) ?? str(md.get(GENERAL.licenseName));
  const info: ModelInfo = {
    format: "gguf",
    file: f.name,
    fileSize: f.fileSize,
    version: f.version,
    parameters,
    parameterLabel: parameterLabel(parameters),
    chatTemplate: md.has(TOKENIZER.chatTemplate),
    general,
    metadata,
    tensorTypes,
    tensorCount: f.tensors.length,
    tensors,
  };
  const set = setter(info);
  set("architecture", arch);
  set("name", str(md.get(GENERAL.name)));
  set(
    "quantization",
    fileType !== undefined ? (FILE_TYPE_NAMES[fileType] ?? `file type ${fileType}`) : tensorTypes[0]?.type,
  );
  set("contextLength", num(md.get(k.contextLength)));
  set("embeddingLength", num(md.get(k.embeddingLength)));
  set("blockCount", num(md.get(k.blockCount)));
  set("feedForwardLength", num(md.get(k.feedForwardLength)));
  set("headCount", num(md.get(k.headCount)));
  set("headCountKv", num(md.get(k.headCountKv)));
  set("ropeFreqBase", num(md.get(k.ropeFreqBase)));
  set("expertCount", num(md.get(k.expertCount)));
  set("expertUsedCount", num(md.get(k.expertUsedCount)));
  set("vocabSize", num(md.get(k.vocabSize)) ?? tokenCount);
  set("license", license);
  if (tokModel !== undefined || tokenCount !== undefined) {
    const tok: NonNullable<ModelInfo["tokenizer"]> = {};
    if (tokModel !== undefined) tok.model = tokModel;
    const pre = str(md.get(TOKENIZER.pre));
    if (pre !== undefined) tok.pre = pre;
    if (tokenCount !== undefined) tok.tokens = tokenCount;
    const bos = num(md.get(TOKENIZER.bosId));
    if (bos !== undefined) tok.bos = bos;
    const eos = num(md.get(TOKENIZER.eosId));
    if (eos !== undefined) tok.eos = eos;
    if (typeof addBos === "boolean") tok.addBos = addBos;
    info.tokenizer = tok;
  }
  return info;
}

/** Summarize a safetensors model (one file or sharded) plus its directory's side files. */
export function safetensorsModelInfo(
  model: SafetensorsModel,
  file: string,
  fileSize: number,
  side: HfModelDir,
): ModelInfo {
  const tensors: TensorSummary[] = model.tensors.map((t) => ({
    name: t.name,
    type: t.dtype,
    shape: t.shape,
    offset: t.fileOffset,
    bytes: t.byteSize,
  }));
  const nElements = new Map(model.tensors.map((t) => [t.name, t.nElements]));
  const parameters = model.tensors.reduce((a, t) => a + t.nElements, 0);
  const tensorTypes = shares(tensors, (t) => nElements.get(t.name) ?? 0);
  const general: Record<string, string> = {};
  for (const [k, v] of Object.entries(model.metadata)) general[`__metadata__.${k}`] = v;
  const c = side.config;
  if (c?.architectures?.length) general["config.architectures"] = c.architectures.join(", ");
  if (c?.torchDtype) general["config.torch_dtype"] = c.torchDtype;
  const metadata: Record<string, unknown> = { __metadata__: model.metadata };
  if (model.indexMetadata) metadata["index"] = model.indexMetadata;
  if (c) metadata["config"] = c;
  const info: ModelInfo = {
    format: "safetensors",
    file,
    fileSize,
    parameters,
    parameterLabel: parameterLabel(parameters),
    chatTemplate: side.tokenizerConfig?.chatTemplate ?? false,
    general,
    metadata,
    tensorTypes,
    tensorCount: tensors.length,
    tensors,
  };
  if (side.warnings.length > 0) info.warnings = side.warnings;
  const set = setter(info);
  set("architecture", c?.modelType ?? c?.architectures?.[0]);
  set("quantization", tensorTypes[0]?.type);
  set("contextLength", c?.contextLength);
  set("embeddingLength", c?.hiddenSize);
  set("blockCount", c?.numLayers);
  set("feedForwardLength", c?.intermediateSize);
  set("headCount", c?.numHeads);
  set("headCountKv", c?.numKvHeads);
  set("ropeFreqBase", c?.ropeTheta);
  set("expertCount", c?.numExperts);
  set("expertUsedCount", c?.numExpertsPerToken);
  set("vocabSize", c?.vocabSize ?? side.tokenizer?.tokens);
  set("license", side.license);
  if (side.tokenizer) {
    const tok: NonNullable<ModelInfo["tokenizer"]> = { tokens: side.tokenizer.tokens };
    if (side.tokenizer.model !== undefined) tok.model = side.tokenizer.model;
    info.tokenizer = tok;
  }
  return info;
}
