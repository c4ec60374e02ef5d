/**
 * The side files of a Hugging Face model directory that describe a safetensors checkpoint:
 * config.json (architecture and hyperparameters), tokenizer.json (tokenizer model and vocabulary
 * size), tokenizer_config.json (chat template, special tokens) and the licence in README.md's
 * YAML front matter. Each is optional; a file that exists but cannot be parsed is reported as a
 * warning rather than hiding the rest. Not here: tokenization itself (src/tokenizer).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface HfModelDir {
  config?: HfConfig;
  tokenizer?: { model?: string; tokens: number };
  tokenizerConfig?: { chatTemplate: boolean; bosToken?: string; eosToken?: string };
  license?: string;
  warnings: string[];
}

/** The config.json fields owl reads (transformers' names). */
export interface HfConfig {
  architectures?: string[];
  modelType?: string;
  contextLength?: number;
  hiddenSize?: number;
  numLayers?: number;
  intermediateSize?: number;
  numHeads?: number;
  numKvHeads?: number;
  ropeTheta?: number;
  vocabSize?: number;
  numExperts?: number;
  numExpertsPerToken?: number;
  torchDtype?: string;
}

type Json = Record<string, unknown>;

function readJson(path: string, warnings: string[]): Json | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const v: unknown = JSON.parse(readFileSync(path, "utf8"));
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Json;
    warnings.push(`${path}: expected a JSON object`);
  } catch (e) {
    warnings.push(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return undefined;
}

const int = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const text = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && "content" in v) return text((v as Json)["content"]);
  return undefined;
}

/** Read what is there of a model directory's side files. */
export function readHfModelDir(dir: string): HfModelDir {
  const warnings: string[] = [];
  const out: HfModelDir = { warnings };
  const cfg = readJson(join(dir, "config.json"), warnings);
  if (cfg) {
    const c: HfConfig = {};
    const put = <K extends keyof HfConfig>(k: K, v: HfConfig[K] | undefined) => {
      if (v !== undefined) c[k] = v;
    };
    const archs = cfg["architectures"];
    if (Array.isArray(archs))
      put(
        "architectures",
        archs.filter((a): a is string => typeof a === "string"),
      );
    put("modelType", text(cfg["model_type"]));
    put(
      "contextLength",
      int(cfg["max_position_embeddings"]) ?? int(cfg["n_positions"]) ?? int(cfg["seq_length"]),
    );
    put("hiddenSize", int(cfg["hidden_size"]) ?? int(cfg["n_embd"]) ?? int(cfg["d_model"]));
    put("numLayers", int(cfg["num_hidden_layers"]) ?? int(cfg["n_layer"]) ?? int(cfg["num_layers"]));
    put("intermediateSize", int(cfg["intermediate_size"]) ?? int(cfg["n_inner"]));
    put("numHeads", int(cfg["num_attention_heads"]) ?? int(cfg["n_head"]));
    put("numKvHeads", int(cfg["num_key_value_heads"]));
    put("ropeTheta", int(cfg["rope_theta"]));
    put("vocabSize", int(cfg["vocab_size"]));
    put("numExperts", int(cfg["num_local_experts"]) ?? int(cfg["num_experts"]));
    put("numExpertsPerToken", int(cfg["num_experts_per_tok"]));
    put("torchDtype", text(cfg["torch_dtype"]) ?? text(cfg["dtype"]));
    out.config = c;
  }
  const tok = readJson(join(dir, "tokenizer.json"), warnings);
  if (tok) {
    const model = (tok["model"] ?? {}) as Json;
    const vocab = model["vocab"];
    let tokens = 0;
    if (Array.isArray(vocab)) tokens = vocab.length;
    else if (vocab && typeof vocab === "object") tokens = Object.keys(vocab).length;
    const added = tok["added_tokens"];
    if (Array.isArray(added)) {
      // Added tokens usually reuse ids past the model vocabulary; count ids beyond it.
      const ids = added.map((a) => int((a as Json)["id"])).filter((i): i is number => i !== undefined);
      tokens = Math.max(tokens, ...ids.map((i) => i + 1));
    }
    const t: NonNullable<HfModelDir["tokenizer"]> = { tokens };
    const type = text(model["type"]);
    if (type !== undefined) t.model = type;
    out.tokenizer = t;
  }
  const tc = readJson(join(dir, "tokenizer_config.json"), warnings);
  if (tc) {
    const t: NonNullable<HfModelDir["tokenizerConfig"]> = { chatTemplate: tc["chat_template"] !== undefined };
    const bos = tokenText(tc["bos_token"]);
    if (bos !== undefined) t.bosToken = bos;
    const eos = tokenText(tc["eos_token"]);
    if (eos !== undefined) t.eosToken = eos;
    out.tokenizerConfig = t;
  }
  if (!out.tokenizerConfig?.chatTemplate && existsSync(join(dir, "chat_template.jinja"))) {
    out.tokenizerConfig = { ...(out.tokenizerConfig ?? {}), chatTemplate: true };
  }
  const readme = join(dir, "README.md");
  if (existsSync(readme)) {
    const m = /^---\r?\n([\s\S]*?)\r?\n---/.exec(readFileSync(readme, "utf8"));
    const lic = m?.[1] ? /^license:\s*["']?([^"'\r\n]+?)["']?\s*$/m.exec(m[1]) : null;
    if (lic?.[1]) out.license = lic[1];
  }
  return out;
}
