/**
 * Where a model's chat templates come from, and which one a request uses.
 *
 * - GGUF: `tokenizer.chat_template` (the default) and `tokenizer.chat_template.<name>` (named
 *   variants such as "tool_use", written by llama.cpp's converter from a list-form HF config).
 * - Hugging Face: tokenizer_config.json's `chat_template`, a string or a list of
 *   {name, template}; a `chat_template.jinja` file beside it, which takes priority over the
 *   config's default (as in transformers); `additional_chat_templates/<name>.jinja`; a processor's
 *   chat_template.json as the last resort.
 * - Selection (selectChatTemplate) follows transformers and llama.cpp: a name asked for, else
 *   "tool_use" when the request has tools and the model has it, else the default, else
 *   "tool_use", else owl's fallback (defaultChatTemplate, ChatML; see chat-template.ts).
 * Also here: the BOS/EOS texts a template gets, from a vocabulary. Not here: rendering.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type GgufMetadata, getString } from "../formats/gguf/index.ts";
import { TOKENIZER } from "../formats/gguf/keys.ts";
import { OwlError } from "../util/errors.ts";
import { defaultChatTemplate } from "./chat-template.ts";
import type { Vocab } from "./types.ts";

export interface ChatTemplates {
  /** The main template; undefined when the model has only named ones. */
  default: string | undefined;
  /** Named variants ("tool_use", "rag", ...), not including "default". */
  named: Map<string, string>;
}

export interface SelectedChatTemplate {
  /** "default", a variant's name, or "fallback" for defaultChatTemplate. */
  name: string;
  source: string;
  /** True when the model had no usable template and defaultChatTemplate was picked. */
  fallback: boolean;
}

function isEmpty(t: ChatTemplates): boolean {
  return t.default === undefined && t.named.size === 0;
}

/** The chat templates stored in GGUF metadata, or undefined when there are none. */
export function chatTemplateFromGgufMetadata(md: GgufMetadata): ChatTemplates | undefined {
  const out: ChatTemplates = { default: getString(md, TOKENIZER.chatTemplate), named: new Map() };
  const prefix = `${TOKENIZER.chatTemplate}.`;
  for (const key of md.keys()) {
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    const source = getString(md, key);
    if (source === undefined || name === "") continue;
    if (name === "default") out.default ??= source;
    else out.named.set(name, source);
  }
  return isEmpty(out) ? undefined : out;
}

function badConfig(message: string, where: string): OwlError {
  return new OwlError("ERR_INVALID_ARGUMENT", `${where}: ${message}`, { details: { where } });
}

/**
 * The chat templates of a parsed tokenizer_config.json (or of any object with a `chat_template`
 * field, such as a processor's chat_template.json), or undefined when it has none.
 */
export function chatTemplateFromTokenizerConfig(
  json: unknown,
  where = "tokenizer_config.json",
): ChatTemplates | undefined {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw badConfig("expected a JSON object", where);
  }
  const ct = (json as Record<string, unknown>)["chat_template"];
  if (ct === undefined || ct === null) return undefined;
  const out: ChatTemplates = { default: undefined, named: new Map() };
  if (typeof ct === "string") {
    out.default = ct;
  } else if (Array.isArray(ct)) {
    ct.forEach((entry: unknown, i) => {
      const e = (typeof entry === "object" && entry !== null ? entry : {}) as Record<string, unknown>;
      const name = e["name"];
      const template = e["template"];
      if (typeof name !== "string" || typeof template !== "string") {
        throw badConfig(`chat_template[${i}] must be {"name": string, "template": string}`, where);
      }
      if (name === "default") out.default = template;
      else out.named.set(name, template);
    });
  } else {
    throw badConfig(
      `chat_template must be a string or a list of {name, template}, found ${typeof ct}`,
      where,
    );
  }
  return isEmpty(out) ? undefined : out;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new OwlError("ERR_IO", `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function readJson(path: string): unknown {
  const text = readText(path);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badConfig(`not valid JSON (${(e as Error).message})`, path);
  }
}

/**
 * The chat templates of a Hugging Face model directory, or undefined when it has none. Order as
 * in transformers: chat_template.jinja, else tokenizer_config.json's default, else
 * chat_template.json's; named ones from the config and additional_chat_templates/*.jinja (the
 * files win).
 */
export function readHfChatTemplates(dir: string): ChatTemplates | undefined {
  const out: ChatTemplates = { default: undefined, named: new Map() };
  const merge = (t: ChatTemplates | undefined) => {
    if (!t) return;
    out.default ??= t.default;
    for (const [k, v] of t.named) if (!out.named.has(k)) out.named.set(k, v);
  };
  const jinja = join(dir, "chat_template.jinja");
  if (existsSync(jinja)) out.default = readText(jinja);
  const extraDir = join(dir, "additional_chat_templates");
  if (existsSync(extraDir)) {
    for (const file of readdirSync(extraDir).sort()) {
      if (file.endsWith(".jinja"))
        out.named.set(file.slice(0, -".jinja".length), readText(join(extraDir, file)));
    }
  }
  const config = join(dir, "tokenizer_config.json");
  if (existsSync(config)) merge(chatTemplateFromTokenizerConfig(readJson(config), config));
  const processor = join(dir, "chat_template.json");
  if (existsSync(processor)) merge(chatTemplateFromTokenizerConfig(readJson(processor), processor));
  return isEmpty(out) ? undefined : out;
}

/**
 * The template a request uses: `name` when given (ERR_INVALID_ARGUMENT if the model lacks it),
 * else "tool_use" when `hasTools` and the model has one, else the default, else "tool_use", else
 * defaultChatTemplate (`fallback: true`).
 */
export function selectChatTemplate(
  templates: ChatTemplates | undefined,
  options: { name?: string; hasTools?: boolean } = {},
): SelectedChatTemplate {
  const named = templates?.named ?? new Map<string, string>();
  const pick = (name: string, source: string): SelectedChatTemplate => ({ name, source, fallback: false });
  if (options.name !== undefined) {
    const source = options.name === "default" ? templates?.default : named.get(options.name);
    if (source === undefined) {
      const have = [...(templates?.default !== undefined ? ["default"] : []), ...named.keys()];
      throw new OwlError("ERR_INVALID_ARGUMENT", `the model has no chat template named "${options.name}"`, {
        hint: have.length > 0 ? `it has: ${have.join(", ")}` : "it has no chat template at all",
        details: { name: options.name, available: have },
      });
    }
    return pick(options.name, source);
  }
  const toolUse = named.get("tool_use");
  if (options.hasTools && toolUse !== undefined) return pick("tool_use", toolUse);
  if (templates?.default !== undefined) return pick("default", templates.default);
  if (toolUse !== undefined) return pick("tool_use", toolUse);
  return { name: "fallback", source: defaultChatTemplate, fallback: true };
}

/** The `bos_token` / `eos_token` texts a template gets: the vocabulary's token text, when it has one. */
export function chatTemplateTokens(vocab: Pick<Vocab, "tokens" | "bos" | "eos">): {
  bosToken?: string;
  eosToken?: string;
} {
  const out: { bosToken?: string; eosToken?: string } = {};
  const bos = vocab.bos === undefined ? undefined : vocab.tokens[vocab.bos];
  const eos = vocab.eos === undefined ? undefined : vocab.tokens[vocab.eos];
  if (bos !== undefined) out.bosToken = bos;
  if (eos !== undefined) out.eosToken = eos;
  return out;
}
