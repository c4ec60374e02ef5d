/**
 * Vocabularies from a Hugging Face tokenizer.json (+ tokenizer_config.json, config.json), mapped
 * the way llama.cpp's convert_hf_to_gguf.py writes a GGUF, so that a safetensors model directory
 * tokenizes exactly as its GGUF conversion: ggufMetadataFromTokenizerJson builds the tokenizer.*
 * metadata the converter would write, and vocabFromTokenizerJson reads that back through
 * vocabFromGguf, so both paths share one set of llama.cpp loading rules (defaults, EOG set, fixups).
 *
 * Model mapping (the converter's get_vocab_base, _create_vocab_sentencepiece, BertModel.set_vocab
 * and gguf-py's SpecialVocab):
 * - BPE with ByteLevel -> "gpt2" with its merges. tokenizer.ggml.pre: the converter hashes the ids
 *   of a probe text; owl instead turns the pre-tokenizer (Split regexes, Digits, Punctuation,
 *   ByteLevel's own regex) into llama.cpp's regex list and finds the pre-tokenizer name with that
 *   list (pre-tokenize.ts). An unrecognized one is ERR_UNSUPPORTED_TOKENIZER unless `pre` is given.
 * - BPE with "▁" spaces (Metaspace, or Prepend/Replace normalizers) and byte_fallback (Llama 2,
 *   Mistral, TinyLlama, ...) -> "llama" (SPM). NOTE: the converter takes the scores from
 *   tokenizer.model; its tokenizer.json-only path (LlamaHfVocab) writes -1000 for every token,
 *   which loses the merge order. owl scores a token -(rank of the first merge that makes it) (and
 *   below every merge when no merge makes it), so llama.cpp's SPM loop, which merges the best
 *   scoring pair first, merges in HF's rank order.
 * - WordPiece -> "bert" with the converter's "phantom space" spelling ("##x" -> "x", "x" -> "▁x").
 * - Unigram -> "t5" with the piece scores (vocabulary only: owl has no Unigram codec yet).
 * Added tokens: special (or looking special, as the converter's does_token_look_special) ->
 * CONTROL, else USER_DEFINED; their lstrip/rstrip flags become LSTRIP/RSTRIP as in HF. Special ids
 * come from tokenizer_config.json's *_token strings looked up among the added tokens, then
 * config.json's *_token_id; add_bos/add_eos from the post-processor template, overridden by
 * add_bos_token/add_eos_token.
 *
 * Not here: the GGUF rules themselves (vocab.ts), encoding (tokenizer.ts and the codecs), chat
 * template lookup in a directory (chat-template-source.ts, used by loadHfVocab).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type GgufMetadata, garr, gbool, gstr, gu32 } from "../formats/gguf/index.ts";
import { GENERAL, TOKENIZER, TokenType } from "../formats/gguf/keys.ts";
import { OwlError } from "../util/errors.ts";
import {
  type ChatTemplates,
  chatTemplateFromTokenizerConfig,
  readHfChatTemplates,
} from "./chat-template-source.ts";
import { bpePreConfig, knownBpePreNames } from "./pre-tokenize.ts";
import { Tokenizer } from "./tokenizer.ts";
import { TokenAttr, type Vocab } from "./types.ts";
import { vocabFromGguf } from "./vocab.ts";

export interface HfTokenizerOptions {
  /** tokenizer.ggml.pre to use for a byte-level BPE whose pre-tokenizer owl does not recognize. */
  pre?: string;
  /** config.json, for *_token_id, vocab_size (the converter pads the token list to it) and name. */
  config?: unknown;
  /** general.name of the converted model (llama.cpp applies some fixups by name, e.g. phi-3). */
  name?: string;
  /** Chat templates found beside the files (chat_template.jinja, ...); default: the config's. */
  chatTemplates?: ChatTemplates;
  /** Names the source in messages. */
  where?: string;
}

export interface HfGgufMetadata {
  metadata: GgufMetadata;
  /** What the conversion could not carry over exactly. */
  warnings: string[];
  /** HF added-token lstrip/rstrip flags: id -> TokenAttr.LSTRIP | TokenAttr.RSTRIP. */
  stripFlags: Map<number, number>;
}

type Json = Record<string, unknown>;

const SPACE = "\u2581";
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
/** The regex HF's ByteLevel pre-tokenizer runs when use_regex is true (llama.cpp's GPT-2 list). */
const BYTE_LEVEL_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
/** HF's Punctuation pre-tokenizer (Unicode P plus ASCII punctuation), as llama.cpp's falcon spells it. */
const PUNCTUATION_REGEX = "[\\p{P}\\$\\+<=>\\^~\\|`]+";
/**
 * Names tried first when several tokenizer.ggml.pre values share one regex list (they differ only
 * in flags such as clean_spaces); the rest of knownBpePreNames() follows.
 */
const PREFERRED_PRE = [
  "gpt-2",
  "llama-bpe",
  "qwen2",
  "qwen35",
  "deepseek-coder",
  "deepseek-llm",
  "deepseek-v3",
  "starcoder",
  "falcon",
  "default",
  "gpt-4o",
  "tekken",
  "jais-2",
  "poro-chat",
  "viking",
  "chameleon",
  "bailingmoe",
  "seed-coder",
  "minicpm5",
  "tiny_aya",
  "youtu",
  "afmoe",
  "exaone-moe",
  "laguna",
];
/**
 * HF pre-tokenizers whose llama.cpp regexes are spelled differently (rewritten for std::regex or
 * merged), by the regex list owl derives from the HF JSON (canonical form, joined with "\u0000").
 */
const PRE_ALIASES = new Map<string, string>([
  // falcon: Punctuation, ByteLevel, Digits(individual_digits: false), Split("[0-9][0-9][0-9]").
  [[PUNCTUATION_REGEX, BYTE_LEVEL_REGEX, "\\p{N}+", "[0-9][0-9][0-9]"].join("\u0000"), "falcon"],
  // o200k (GPT-4o): llama.cpp writes [\p{Lu}...]* as ((?=[\p{L}])([^a-z]))*.
  [
    [
      `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*${CONTRACTIONS}?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
    ].join("\u0000"),
    "gpt-4o",
  ],
]);

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Regex text in one spelling: control characters as escapes, HF's (?i:'s|...) as llama.cpp's. */
function canonicalRegex(r: string): string {
  return r
    .replaceAll("\r", "\\r")
    .replaceAll("\n", "\\n")
    .replaceAll("\t", "\\t")
    .replaceAll("(?i:'s|'t|'re|'ve|'m|'ll|'d)", CONTRACTIONS);
}

/**
 * The llama.cpp-style regex list of an HF pre_tokenizer (each regex splits every piece the previous
 * ones made), or a reason why it has none. Components that do not split (ByteLevel without its
 * regex) add nothing.
 */
export function bpeRegexesOfHfPreTokenizer(pre: unknown): { regexes: string[] } | { reason: string } {
  const out: string[] = [];
  const walk = (p: unknown): string | undefined => {
    if (p === null || p === undefined) return undefined;
    if (!isObject(p)) return "a pre_tokenizer that is not an object";
    const type = p["type"];
    switch (type) {
      case "Sequence": {
        const list = p["pretokenizers"];
        if (!Array.isArray(list)) return "a Sequence without pretokenizers";
        for (const q of list) {
          const r = walk(q);
          if (r) return r;
        }
        return undefined;
      }
      case "ByteLevel":
        if (p["use_regex"] !== false) out.push(BYTE_LEVEL_REGEX);
        return undefined;
      case "Split": {
        const pattern = p["pattern"];
        const behavior = p["behavior"] ?? "Isolated";
        if (p["invert"] === true) return "an inverted Split";
        if (behavior !== "Isolated") return `a Split with behavior ${String(behavior)}`;
        if (isObject(pattern) && typeof pattern["Regex"] === "string") {
          out.push(canonicalRegex(pattern["Regex"]));
          return undefined;
        }
        if (isObject(pattern) && typeof pattern["String"] === "string") {
          out.push(canonicalRegex(pattern["String"].replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
          return undefined;
        }
        return "a Split without a pattern";
      }
      case "Digits":
        out.push(p["individual_digits"] === true ? "\\p{N}" : "\\p{N}+");
        return undefined;
      case "Punctuation":
        if ((p["behavior"] ?? "Isolated") !== "Contiguous") return "a Punctuation that is not Contiguous";
        out.push(PUNCTUATION_REGEX);
        return undefined;
      default:
        return `the pre-tokenizer ${JSON.stringify(type)}`;
    }
  };
  const reason = walk(pre);
  return reason === undefined ? { regexes: out } : { reason };
}

/**
 * The tokenizer.ggml.pre name whose llama.cpp regex list equals this HF pre_tokenizer's, or
 * undefined when none does.
 */
export function bpePreOfHfPreTokenizer(pre: unknown): string | undefined {
  const r = bpeRegexesOfHfPreTokenizer(pre);
  if (!("regexes" in r)) return undefined;
  const key = r.regexes.join("\u0000");
  const alias = PRE_ALIASES.get(key);
  if (alias !== undefined) return alias;
  const seen = new Set<string>();
  for (const name of [...PREFERRED_PRE, ...knownBpePreNames()]) {
    if (seen.has(name)) continue;
    seen.add(name);
    let regexes: readonly string[];
    try {
      regexes = bpePreConfig(name).regexes;
    } catch {
      continue;
    }
    if (regexes.map(canonicalRegex).join("\u0000") === key) return name;
  }
  return undefined;
}

/** Whether any component of a normalizer/pre_tokenizer/decoder tree satisfies `test`. */
function anyComponent(node: unknown, test: (c: Json) => boolean): boolean {
  if (!isObject(node)) return false;
  if (test(node)) return true;
  for (const key of ["normalizers", "pretokenizers", "decoders", "processors"]) {
    const list = node[key];
    if (Array.isArray(list) && list.some((c) => anyComponent(c, test))) return true;
  }
  return false;
}

/** The converter's does_token_look_special. */
function looksSpecial(t: string): boolean {
  return (
    t === "<pad>" ||
    t === "<mask>" ||
    t === "<2mass>" ||
    t === "[@BOS@]" ||
    (t.startsWith("<|") && t.endsWith("|>")) ||
    (t.startsWith("<｜") && t.endsWith("｜>")) ||
    (t.startsWith("<unused") && t.endsWith(">"))
  );
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  normalized: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isObject(v) && typeof v["content"] === "string") return v["content"];
  return undefined;
}

/**
 * The tokenizer.* GGUF metadata llama.cpp's converter would write for this tokenizer.json (and
 * tokenizer_config.json / config.json), plus what could not be carried over.
 * Throws ERR_TOKENIZER_BAD_METADATA for a malformed file, ERR_UNSUPPORTED_TOKENIZER for a model
 * or pre-tokenizer owl cannot map.
 */
export function ggufMetadataFromTokenizerJson(
  tokenizerJson: unknown,
  tokenizerConfig?: unknown,
  options: HfTokenizerOptions = {},
): HfGgufMetadata {
  const where = options.where ?? "tokenizer.json";
  const warnings: string[] = [];
  const bad = (message: string): never => {
    throw new OwlError("ERR_TOKENIZER_BAD_METADATA", `${where}: ${message}`, { details: { where } });
  };
  const unsupported = (message: string, hint?: string): never => {
    throw new OwlError("ERR_UNSUPPORTED_TOKENIZER", `${where}: ${message}`, {
      details: { where },
      ...(hint ? { hint } : {}),
    });
  };
  if (!isObject(tokenizerJson)) return bad("expected a JSON object");
  const tc = isObject(tokenizerConfig) ? tokenizerConfig : undefined;
  const config = isObject(options.config) ? options.config : undefined;
  const model = tokenizerJson["model"];
  if (!isObject(model)) return bad('no "model" object');
  const normalizer = tokenizerJson["normalizer"];
  const preTokenizer = tokenizerJson["pre_tokenizer"];
  const decoder = tokenizerJson["decoder"];

  // ---- model type (HF allows an untagged model: tell it by its fields) ----
  let type = model["type"];
  if (typeof type !== "string") {
    if (Array.isArray(model["merges"])) type = "BPE";
    else if (Array.isArray(model["vocab"])) type = "Unigram";
    else if ("continuing_subword_prefix" in model || "max_input_chars_per_word" in model) type = "WordPiece";
    else return bad("the model has no type");
  }
  const typeOf = (c: Json, t: string) => c["type"] === t;
  const byteLevel =
    anyComponent(preTokenizer, (c) => typeOf(c, "ByteLevel")) ||
    anyComponent(decoder, (c) => typeOf(c, "ByteLevel"));
  const metaspace = anyComponent(preTokenizer, (c) => typeOf(c, "Metaspace"));
  const replacesSpaces =
    metaspace ||
    anyComponent(
      normalizer,
      (c) =>
        typeOf(c, "Replace") &&
        c["content"] === SPACE &&
        isObject(c["pattern"]) &&
        c["pattern"]["String"] === " ",
    );
  let ggmlModel: "gpt2" | "llama" | "bert" | "t5";
  if (type === "BPE") {
    if (byteLevel) ggmlModel = "gpt2";
    else if (replacesSpaces || model["byte_fallback"] === true) ggmlModel = "llama";
    else
      return unsupported(
        "a BPE model that is neither byte-level (ByteLevel) nor SentencePiece-style (Metaspace / byte_fallback)",
      );
  } else if (type === "WordPiece") ggmlModel = "bert";
  else if (type === "Unigram") ggmlModel = "t5";
  else return unsupported(`the "${String(type)}" tokenizer model is not supported`);

  // ---- vocabulary ----
  const texts: (string | undefined)[] = [];
  const unigramScores: number[] = [];
  const vocab = model["vocab"];
  if (ggmlModel === "t5") {
    if (!Array.isArray(vocab)) return bad("a Unigram model's vocab should be a list of [piece, score]");
    vocab.forEach((e: unknown, i) => {
      if (!Array.isArray(e) || typeof e[0] !== "string" || typeof e[1] !== "number")
        bad(`model.vocab[${i}] should be [piece, score]`);
      texts[i] = (e as [string, number])[0];
      unigramScores[i] = (e as [string, number])[1];
    });
  } else {
    if (!isObject(vocab)) return bad("model.vocab should be an object of token -> id");
    for (const [t, id] of Object.entries(vocab)) {
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0x7fffffff)
        bad(`model.vocab[${JSON.stringify(t)}] is not a valid id`);
      texts[id as number] = t;
    }
  }
  const added: AddedToken[] = [];
  const addedList = tokenizerJson["added_tokens"];
  if (addedList !== undefined && addedList !== null) {
    if (!Array.isArray(addedList)) return bad("added_tokens should be a list");
    addedList.forEach((a: unknown, i) => {
      if (!isObject(a) || typeof a["id"] !== "number" || typeof a["content"] !== "string")
        bad(`added_tokens[${i}] should have a numeric id and a string content`);
      const o = a as Json;
      const id = o["id"] as number;
      if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff) bad(`added_tokens[${i}].id is not a valid id`);
      added.push({
        id,
        content: o["content"] as string,
        special: o["special"] === true,
        normalized: o["normalized"] !== false,
        lstrip: o["lstrip"] === true,
        rstrip: o["rstrip"] === true,
      });
    });
  }
  const addedById = new Map<number, AddedToken>();
  for (const a of added) addedById.set(a.id, a);
  let n = texts.length;
  for (const a of added) n = Math.max(n, a.id + 1);
  const vocabSize = typeof config?.["vocab_size"] === "number" ? config["vocab_size"] : undefined;
  if (vocabSize !== undefined && Number.isInteger(vocabSize) && vocabSize > n) n = vocabSize;
  if (n === 0) return bad("the vocabulary is empty");

  const tokens = new Array<string>(n);
  const types = new Int32Array(n);
  let scores: Float32Array | undefined;
  const stripFlags = new Map<number, number>();
  const byteToken = /^<0x[0-9A-Fa-f]{2}>$/;
  const unkText = typeof model["unk_token"] === "string" ? model["unk_token"] : undefined;
  let pads = 0;
  for (let i = 0; i < n; i++) {
    const a = addedById.get(i);
    let t = texts[i] ?? a?.content;
    if (t === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TokenType.UNUSED;
      pads++;
      continue;
    }
    let ty: number = TokenType.NORMAL;
    if (a !== undefined) {
      // NOTE: for a non-normalized added token the converter writes decode(encode(text)), which is
      // the text itself for the tokenizers it meets (the added token encodes to its own id).
      t = a.content;
      if (a.special || looksSpecial(t)) ty = TokenType.CONTROL;
      else {
        ty = TokenType.USER_DEFINED;
        t = t.replaceAll(SPACE, " ");
      }
      const strip = (a.lstrip ? TokenAttr.LSTRIP : 0) | (a.rstrip ? TokenAttr.RSTRIP : 0);
      if (strip) stripFlags.set(i, strip);
    } else if (ggmlModel === "llama" || ggmlModel === "t5") {
      if (byteToken.test(t)) ty = TokenType.BYTE;
      else if (t === unkText || (ggmlModel === "t5" && i === model["unk_id"])) ty = TokenType.UNKNOWN;
    }
    if (ggmlModel === "bert" && ty !== TokenType.CONTROL) {
      const prefix =
        typeof model["continuing_subword_prefix"] === "string" ? model["continuing_subword_prefix"] : "##";
      t = t.startsWith(prefix) ? t.slice(prefix.length) : SPACE + t;
    }
    tokens[i] = t;
    types[i] = ty;
  }
  if (pads > 0)
    warnings.push(`${pads} ids have no token; they are [PAD<id>] (UNUSED), as the converter writes them`);

  const md: GgufMetadata = new Map();
  const name =
    options.name ?? (typeof config?.["_name_or_path"] === "string" ? config["_name_or_path"] : undefined);
  if (name !== undefined) md.set(GENERAL.name, gstr(name));
  md.set(TOKENIZER.model, gstr(ggmlModel));

  // ---- merges, scores, pre-tokenizer ----
  const merges: string[] = [];
  const rawMerges = model["merges"];
  if (type === "BPE") {
    if (!Array.isArray(rawMerges)) return bad("a BPE model needs model.merges");
    for (let r = 0; r < rawMerges.length; r++) {
      const m: unknown = rawMerges[r];
      if (typeof m === "string") merges.push(m);
      else if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string")
        // Since transformers 4.45 a merge is a pair, so parts may hold spaces; the converter
        // writes a space inside a part as U+0120 (chr(ord(" ") + 256)) in the "a b" form.
        merges.push(`${m[0].replaceAll(" ", "\u0120")} ${m[1].replaceAll(" ", "\u0120")}`);
      else return bad(`model.merges[${r}] should be "a b" or ["a", "b"]`);
    }
  }
  if (ggmlModel === "gpt2") {
    let pre = options.pre;
    if (pre === undefined) {
      pre = bpePreOfHfPreTokenizer(preTokenizer);
      if (pre === undefined) {
        const r = bpeRegexesOfHfPreTokenizer(preTokenizer);
        unsupported(
          "reason" in r
            ? `owl cannot map ${r.reason} to a llama.cpp pre-tokenizer`
            : `no llama.cpp pre-tokenizer splits with ${JSON.stringify(r.regexes)}`,
          `pass the tokenizer.ggml.pre name to use (one of: ${knownBpePreNames().join(", ")})`,
        );
      }
    }
    md.set(TOKENIZER.pre, gstr(pre as string));
    if (anyComponent(preTokenizer, (c) => typeOf(c, "ByteLevel") && c["add_prefix_space"] === true))
      warnings.push("ByteLevel add_prefix_space is true; llama.cpp's BPE adds no space prefix");
    if (model["ignore_merges"] === true && !bpePreConfig(pre as string).ignoreMerges)
      warnings.push(
        `model.ignore_merges is true but llama.cpp's "${pre}" pre-tokenizer does not ignore merges`,
      );
  } else if (ggmlModel === "llama") {
    // -(rank of the first merge that makes the token); below every merge when none does.
    scores = new Float32Array(n).fill(-(merges.length + 1));
    const idOf = new Map<string, number>();
    for (let i = 0; i < n; i++) if (types[i] !== TokenType.UNUSED) idOf.set(tokens[i]!, i);
    for (let r = merges.length - 1; r >= 0; r--) {
      const m = merges[r]!;
      const sp = m.indexOf(" ", 1);
      const id = idOf.get(sp < 0 ? m : m.slice(0, sp) + m.slice(sp + 1));
      if (id !== undefined) scores[id] = -r;
    }
    for (let i = 0; i < n; i++) if (types[i] !== TokenType.NORMAL) scores[i] = 0;
    const prepend =
      anyComponent(normalizer, (c) => typeOf(c, "Prepend") && c["prepend"] === SPACE) ||
      anyComponent(
        preTokenizer,
        (c) =>
          typeOf(c, "Metaspace") &&
          (c["prepend_scheme"] === undefined
            ? c["add_prefix_space"] !== false
            : c["prepend_scheme"] !== "never"),
      );
    md.set(TOKENIZER.addSpacePrefix, gbool(prepend));
    if (anyComponent(preTokenizer, (c) => typeOf(c, "Metaspace") && c["split"] === true))
      warnings.push("Metaspace split is true; llama.cpp's SPM tokenizer merges across words");
    if (model["byte_fallback"] !== true)
      warnings.push("byte_fallback is false; llama.cpp's SPM tokenizer falls back to byte tokens anyway");
  } else if (ggmlModel === "t5") {
    scores = new Float32Array(n);
    scores.set(unigramScores);
    warnings.push("Unigram vocabulary: owl has no Unigram (t5) codec yet, so it cannot encode with it");
  }
  md.set(TOKENIZER.tokens, garr.strings(tokens));
  if (scores) md.set(TOKENIZER.scores, garr.f32(scores));
  md.set(TOKENIZER.tokenType, garr.i32(types));
  if (ggmlModel === "gpt2") md.set(TOKENIZER.merges, garr.strings(merges));

  // ---- normalizer flags (SpecialVocab._parse_normalizer) ----
  let lowercase: boolean | undefined;
  let stripAccents: boolean | undefined;
  const parseNormalizer = (c: unknown): void => {
    if (!isObject(c)) return;
    if (c["type"] === "Lowercase") lowercase = true;
    else if (c["type"] === "StripAccents") stripAccents = true;
    else if (c["type"] === "BertNormalizer") {
      if (typeof c["lowercase"] === "boolean") lowercase = c["lowercase"];
      if (typeof c["strip_accents"] === "boolean") stripAccents = c["strip_accents"];
    } else if (c["type"] === "Sequence" && Array.isArray(c["normalizers"]))
      c["normalizers"].forEach(parseNormalizer);
  };
  parseNormalizer(normalizer);
  if (lowercase !== undefined) md.set(TOKENIZER.normalizerLowercase, gbool(lowercase));
  if (stripAccents !== undefined) md.set(TOKENIZER.normalizerStripAccents, gbool(stripAccents));

  // ---- special tokens (SpecialVocab._try_load_from_tokenizer_json, then config.json) ----
  const specialText: Record<string, string | undefined> = {};
  const addSpecial: Record<string, boolean> = {};
  const kinds = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"];
  if (tc) for (const k of kinds) specialText[k] = tokenContent(tc[`${k}_token`]);
  if (tc && !specialText["bos"] && specialText["cls"]) specialText["bos"] = specialText["cls"];
  if (tc && !specialText["eos"] && specialText["sep"]) specialText["eos"] = specialText["sep"];
  const extraKinds: string[] = [];
  const post = tokenizerJson["post_processor"];
  if (isObject(post)) {
    const processors = Array.isArray(post["processors"]) ? (post["processors"] as unknown[]) : [post];
    for (const p of processors) {
      if (!isObject(p)) continue;
      if (p["type"] === "RobertaProcessing") {
        addSpecial["bos"] = addSpecial["eos"] = addSpecial["sep"] = true;
        const cls = Array.isArray(p["cls"]) && typeof p["cls"][0] === "string" ? p["cls"][0] : undefined;
        const sep = Array.isArray(p["sep"]) && typeof p["sep"][0] === "string" ? p["sep"][0] : undefined;
        if (tc && !specialText["cls"]) specialText["cls"] = cls ?? specialText["bos"];
        if (tc && !specialText["sep"]) specialText["sep"] = sep ?? specialText["eos"];
        continue;
      }
      if (p["type"] !== "TemplateProcessing") continue;
      const single = Array.isArray(p["single"]) ? (p["single"] as unknown[]) : [];
      const pair = Array.isArray(p["pair"]) ? (p["pair"] as unknown[]) : [];
      const specialOf = (e: unknown): string | undefined => {
        const s = isObject(e) ? e["SpecialToken"] : undefined;
        return isObject(s) && typeof s["id"] === "string" ? s["id"] : undefined;
      };
      const seqOf = (e: unknown): string | undefined => {
        const s = isObject(e) ? e["Sequence"] : undefined;
        return isObject(s) && typeof s["id"] === "string" ? s["id"] : undefined;
      };
      let first: string | undefined;
      let last: string | undefined;
      if (single.length > 1) {
        first = specialOf(single[0]);
        if (first) {
          if (!tc) specialText["bos"] = first;
          else if (first !== specialText["bos"] && first !== specialText["cls"]) {
            specialText["bos"] ??= first;
            specialText["cls"] ??= first;
          }
          addSpecial["bos"] = first === specialText["bos"] || first === specialText["cls"];
        }
        last = specialOf(single[single.length - 1]);
        if (last) {
          if (!tc) specialText["eos"] = last;
          else if (last !== specialText["eos"]) {
            // The converter keeps the old EOS as EOT (then EOM) and makes the template's last token EOS.
            const slot = extraKinds.includes("eot") ? "eom" : "eot";
            extraKinds.push(slot);
            specialText[slot] = specialText["eos"];
            specialText["eos"] = last;
          }
          addSpecial["eos"] = last === specialText["eos"];
        }
      }
      if (pair.length > 0) {
        const start = first && specialOf(pair[0]) === first ? 1 : 0;
        const stop = last && specialOf(pair[pair.length - 1]) === last ? pair.length - 1 : pair.length;
        let mid = pair.slice(start, stop);
        if (mid.length > 0 && seqOf(mid[0]) === "A" && seqOf(mid[mid.length - 1]) === "B") {
          mid = mid.slice(1, -1);
          if (mid.length > 0) {
            let addSep = false;
            const e0 = specialOf(mid[0]);
            if (e0 && (e0 === specialText["sep"] || e0 === specialText["eos"]) && !last) addSep = true;
            if (mid.length === 2) {
              const e1 = specialOf(mid[1]);
              if (e1 && (e1 === specialText["sep"] || e1 === specialText["eos"])) addSep = true;
            }
            addSpecial["sep"] = addSep;
            if (addSep && !specialText["sep"] && tc) specialText["sep"] = specialText["eos"];
          }
        }
      }
    }
  }
  const ids: Record<string, number> = {};
  const setId = (kind: string, id: unknown): void => {
    if (typeof id !== "number" || !Number.isInteger(id) || ids[kind] !== undefined) return;
    if (id < 0 || id >= n) {
      warnings.push(`special token ${kind} id ${id} is out of range (${n} tokens); skipped`);
      return;
    }
    ids[kind] = id;
  };
  if (tc) {
    for (const kind of [...kinds, ...extraKinds]) {
      const flag = tc[`add_${kind}_token`];
      if (typeof flag === "boolean") addSpecial[kind] = flag;
      const text = specialText[kind];
      if (text === undefined) continue;
      // NOTE: the converter looks the text up among the added tokens only, first match.
      setId(kind, added.find((a) => a.content === text)?.id);
    }
  }
  if (config) {
    const textConfig = isObject(config["text_config"]) ? config["text_config"] : undefined;
    for (const kind of [...kinds, ...extraKinds])
      setId(kind, config[`${kind}_token_id`] ?? textConfig?.[`${kind}_token_id`]);
  }
  const idKeys: Record<string, string> = {
    bos: TOKENIZER.bosId,
    eos: TOKENIZER.eosId,
    unk: TOKENIZER.unkId,
    sep: TOKENIZER.sepId,
    pad: TOKENIZER.padId,
    cls: TOKENIZER.clsId,
    mask: TOKENIZER.maskId,
    eot: TOKENIZER.eotId,
    eom: TOKENIZER.eomId,
  };
  for (const [kind, id] of Object.entries(ids)) {
    const key = idKeys[kind];
    if (key) md.set(key, gu32(id));
  }
  const flagKeys: Record<string, string> = {
    bos: TOKENIZER.addBos,
    eos: TOKENIZER.addEos,
    sep: TOKENIZER.addSep,
  };
  for (const [kind, on] of Object.entries(addSpecial)) {
    const key = flagKeys[kind];
    if (key) md.set(key, gbool(on));
  }

  // ---- chat templates ----
  const templates =
    options.chatTemplates ??
    (tc ? chatTemplateFromTokenizerConfig(tc, `${where} (tokenizer_config.json)`) : undefined);
  if (templates) {
    if (templates.default !== undefined) md.set(TOKENIZER.chatTemplate, gstr(templates.default));
    for (const [k, v] of templates.named) md.set(`${TOKENIZER.chatTemplate}.${k}`, gstr(v));
  }
  return { metadata: md, warnings, stripFlags };
}

/**
 * A Vocab from a parsed tokenizer.json (and tokenizer_config.json), as its GGUF conversion would
 * load in llama.cpp. Conversion warnings go to vocab.warnings.
 */
export function vocabFromTokenizerJson(
  tokenizerJson: unknown,
  tokenizerConfig?: unknown,
  options: HfTokenizerOptions = {},
): Vocab {
  const { metadata, warnings, stripFlags } = ggufMetadataFromTokenizerJson(
    tokenizerJson,
    tokenizerConfig,
    options,
  );
  const vocab = vocabFromGguf(metadata, options.where ?? "tokenizer.json");
  for (const [id, flags] of stripFlags) vocab.attrs[id] = vocab.attrs[id]! | flags;
  vocab.warnings = [...warnings, ...(vocab.warnings ?? [])];
  return vocab;
}

function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new OwlError("ERR_IO", `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new OwlError("ERR_TOKENIZER_BAD_METADATA", `${path}: not valid JSON (${(e as Error).message})`, {
      details: { where: path },
    });
  }
}

/**
 * The Vocab of a Hugging Face model directory: tokenizer.json, with tokenizer_config.json,
 * config.json and the chat template files when present. `options` as for vocabFromTokenizerJson.
 */
export function loadHfVocab(dir: string, options: Omit<HfTokenizerOptions, "config" | "where"> = {}): Vocab {
  const tokPath = join(dir, "tokenizer.json");
  if (!existsSync(tokPath)) {
    throw new OwlError("ERR_FILE_NOT_FOUND", `${dir} has no tokenizer.json`, {
      details: { path: tokPath },
      hint: "owl reads Hugging Face fast-tokenizer files (tokenizer.json); slow-only tokenizers are not supported",
    });
  }
  const tcPath = join(dir, "tokenizer_config.json");
  const cfgPath = join(dir, "config.json");
  const chatTemplates = options.chatTemplates ?? readHfChatTemplates(dir);
  return vocabFromTokenizerJson(
    readJsonFile(tokPath),
    existsSync(tcPath) ? readJsonFile(tcPath) : undefined,
    {
      ...options,
      ...(existsSync(cfgPath) ? { config: readJsonFile(cfgPath) } : {}),
      ...(chatTemplates ? { chatTemplates } : {}),
      where: tokPath,
    },
  );
}

/** A Tokenizer for a Hugging Face model directory (see loadHfVocab). */
export function loadHfTokenizer(
  dir: string,
  options: Omit<HfTokenizerOptions, "config" | "where"> = {},
): Tokenizer {
  return new Tokenizer(loadHfVocab(dir, options));
}
