/**
 * Vocabulary from GGUF metadata (tokenizer.ggml.*), following llama.cpp's llama_vocab::impl::load
 * (src/llama-vocab.cpp): the per-model defaults of the special ids and add_* flags, the per-pre-
 * tokenizer flags of BPE vocabularies, the metadata overrides, token types -> attributes, the
 * end-of-generation set found by token text, and the attribute fixups llama.cpp applies by model
 * name (phi-3 RSTRIP, gpt-oss USER_DEFINED, ...).
 *
 * NOTE: where llama.cpp only logs a warning (a special id out of range is ignored, a control-looking
 * token that is not typed CONTROL gets the attribute), owl does the same and records the message in
 * vocab.warnings. What llama.cpp refuses (no token list, wrong types, arrays shorter than the token
 * list, unknown tokenizer model or pre-tokenizer) is an OwlError here.
 * Not here: encoding and decoding (tokenizer.ts, spm.ts, bpe.ts, wpm.ts), tokenizer.json (formats/hf).
 */

import { type GgufMetadata, type GgufValue, openGguf } from "../formats/gguf/index.ts";
import { archKeys, GENERAL, TOKENIZER, TokenType } from "../formats/gguf/keys.ts";
import { OwlError } from "../util/errors.ts";
import { TokenAttr, type TokenizerModelName, type Vocab } from "./types.ts";

/** Tokenizer models llama.cpp knows but owl does not implement yet. */
const KNOWN_UNSUPPORTED = new Set(["rwkv", "plamo2", "gemma4", "hybriddna", "whitespace"]);

interface PreFlags {
  cleanSpaces?: false;
  addBos?: true;
  ignoreMerges?: true;
  addSep?: true;
  escapeWhitespaces?: true;
  noBos?: true;
  noLowercase?: true;
  /** llama.cpp's LLAMA_VOCAB_PRE_TYPE_GEMMA4: add_bos is forced on. */
  forceAddBos?: true;
}

const NO_CLEAN: PreFlags = { cleanSpaces: false };

/**
 * The tokenizer.ggml.pre names llama.cpp accepts for BPE vocabularies and the flags each one
 * changes from the BPE defaults (clean_spaces = true, everything else off); the else-if chain in
 * llama_vocab::impl::load. Which regexes each name uses is bpe.ts's business.
 */
const BPE_PRE: ReadonlyMap<string, PreFlags> = new Map<string, PreFlags>([
  ...(["default", "falcon", "mpt", "starcoder", "jais-2", "refact", "stablelm2", "olmo", "dbrx"].map(
    (n) => [n, {}] as const,
  ) as [string, PreFlags][]),
  ...(["smaug-bpe", "jais", "codeshell", "bloom", "gpt3-finnish", "exaone", "exaone4", "exaone-moe"].map(
    (n) => [n, {}] as const,
  ) as [string, PreFlags][]),
  ...(["minerva-7b", "megrez", "mellum2"].map((n) => [n, {}] as const) as [string, PreFlags][]),
  ...([
    "gpt-2",
    "phi-2",
    "jina-es",
    "jina-de",
    "gigachat",
    "jina-v2-es",
    "jina-v2-de",
    "a.x-4.0",
    "mellum",
    "modern-bert",
  ].map((n) => [n, {}] as const) as [string, PreFlags][]),
  ["minicpm5", { ignoreMerges: true }],
  ...([
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
  ].map((n) => [n, { ignoreMerges: true, addBos: true }] as const) as [string, PreFlags][]),
  ["youtu", { cleanSpaces: false, ignoreMerges: true }],
  ["gemma4", { escapeWhitespaces: true, forceAddBos: true }],
  ["granite-embed-multi-311m", { escapeWhitespaces: true, forceAddBos: true }],
  ["sarvam-moe", { escapeWhitespaces: true, cleanSpaces: false }],
  ...(["jina-v1-en", "jina-v2-code", "roberta-bpe"].map((n) => [n, { addSep: true }] as const) as [
    string,
    PreFlags,
  ][]),
  ["whitespace", { noLowercase: true }],
  ["glm4", { noBos: true }],
  ["chatglm-bpe", { noBos: true }],
  ["tekken", { cleanSpaces: false, ignoreMerges: true, addBos: true }],
  ["chameleon", { cleanSpaces: false, addBos: true }],
  ["granite-embed-multi-97m", { cleanSpaces: false, ignoreMerges: true }],
  ...([
    "deepseek-llm",
    "deepseek-coder",
    "deepseek-v3",
    "command-r",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "qwen35",
    "poro-chat",
    "viking",
    "smollm",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "tiny_aya",
    "cohere2moe",
    "superbpe",
    "trillion",
    "granite-docling",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
    "seed-coder",
    "hunyuan",
    "hunyuan-dense",
    "joyai-llm",
    "kimi-k2",
    "grok-2",
    "afmoe",
    "laguna",
    "minimax-m2",
    "solar-open",
  ].map((n) => [n, NO_CLEAN] as const) as [string, PreFlags][]),
]);

/** Token texts llama.cpp takes as EOT when tokenizer.ggml.eot_token_id is absent. */
const EOT_TEXTS = new Set([
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "<|end_of_text|>",
  "<EOT>",
  "_<EOT>",
  "[EOT]",
  "<｜end▁of▁sentence｜>",
  "<end_of_utterance>",
]);
const EOM_TEXTS = new Set(["<|eom_id|>"]);
const FIM_PRE_TEXTS = new Set([
  "<|fim_prefix|>",
  "<fim-prefix>",
  "<fim_prefix>",
  "<｜fim▁begin｜>",
  "<PRE>",
  "▁<PRE>",
  "<|code_prefix|>",
  "<|prefix|>",
]);
const FIM_SUF_TEXTS = new Set([
  "<|fim_suffix|>",
  "<fim-suffix>",
  "<fim_suffix>",
  "<｜fim▁hole｜>",
  "<SUF>",
  "▁<SUF>",
  "<|code_suffix|>",
  "<|suffix|>",
]);
const FIM_MID_TEXTS = new Set([
  "<|fim_middle|>",
  "<fim-middle>",
  "<fim_middle>",
  "<｜fim▁end｜>",
  "<MID>",
  "▁<MID>",
  "<|code_middle|>",
  "<|middle|>",
]);
const FIM_PAD_TEXTS = new Set(["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]);
const FIM_REP_TEXTS = new Set(["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]);
const FIM_SEP_TEXTS = new Set(["<|file_sep|>"]);
/** Token texts that end generation whatever their type (llama.cpp's special_eog_ids loop). */
const EOG_TEXTS = new Set([
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<|return|>",
  "<|call|>",
  "<|flush|>",
  "<|calls|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "</s>",
  "<|eom_id|>",
  "<EOT>",
  "_<EOT>",
  "[EOT]",
  "[EOS]",
  "<|end_of_text|>",
  "<end_of_utterance>",
  "<eos>",
  "<turn|>",
  "<|tool_response>",
  "<｜end▁of▁sentence｜>",
  "[e~[",
]);
/** gpt-oss: always rendered, so llama.cpp makes them USER_DEFINED. */
const ALWAYS_RENDERED = new Set(["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]);

/** GGUF token type -> llama.cpp token attribute (the switch in llama_vocab::impl::load). */
function attrOfType(t: number): number {
  switch (t) {
    case TokenType.UNKNOWN:
      return TokenAttr.UNKNOWN;
    case TokenType.UNUSED:
      return TokenAttr.UNUSED;
    case TokenType.NORMAL:
      return TokenAttr.NORMAL;
    case TokenType.CONTROL:
      return TokenAttr.CONTROL;
    case TokenType.USER_DEFINED:
      return TokenAttr.USER_DEFINED;
    case TokenType.BYTE:
      return TokenAttr.BYTE;
    default:
      return TokenAttr.UNDEFINED;
  }
}

function describe(v: GgufValue): string {
  return v.type === "ARRAY" ? `ARRAY of ${v.value.itemType}` : v.type;
}

/**
 * Build a Vocab from GGUF metadata. `where` names the source in messages (a file path).
 * Throws ERR_TOKENIZER_MISSING_METADATA, ERR_TOKENIZER_BAD_METADATA or ERR_UNSUPPORTED_TOKENIZER.
 */
export function vocabFromGguf(md: GgufMetadata, where = "GGUF metadata"): Vocab {
  const warnings: string[] = [];
  const missing = (key: string, what: string): never => {
    throw new OwlError("ERR_TOKENIZER_MISSING_METADATA", `${where}: no "${key}" (${what})`, {
      details: { key, where },
      hint: "this file has no usable vocabulary; convert the model again with its tokenizer",
    });
  };
  const bad = (key: string, message: string, details: Record<string, unknown> = {}): never => {
    throw new OwlError("ERR_TOKENIZER_BAD_METADATA", `${where}: "${key}" ${message}`, {
      details: { key, where, ...details },
    });
  };
  const str = (key: string): string | undefined => {
    const v = md.get(key);
    if (v === undefined) return undefined;
    if (v.type !== "STRING") bad(key, `should be a STRING, found ${describe(v)}`);
    return v.value as string;
  };
  const bool = (key: string): boolean | undefined => {
    const v = md.get(key);
    if (v === undefined) return undefined;
    if (v.type !== "BOOL") bad(key, `should be a BOOL, found ${describe(v)}`);
    return v.value as boolean;
  };
  /** An id: any integer type, read as llama.cpp's uint32 (negative is out of range). */
  const id = (key: string): number | undefined => {
    const v = md.get(key);
    if (v === undefined) return undefined;
    if (v.type === "UINT64" || v.type === "INT64") return Number(v.value);
    if (
      v.type === "STRING" ||
      v.type === "BOOL" ||
      v.type === "ARRAY" ||
      v.type === "FLOAT32" ||
      v.type === "FLOAT64"
    )
      bad(key, `should be an integer token id, found ${describe(v)}`);
    return v.value as number;
  };

  // ---- model and its defaults (llama_vocab::impl::load, "determine vocab type") ----
  const modelName =
    str(TOKENIZER.model) ?? missing(TOKENIZER.model, "the tokenizer model: llama, gpt2, bert, ...");
  const preRaw = str(TOKENIZER.pre);
  let model: TokenizerModelName;
  let bos: number | undefined = 1;
  let eos: number | undefined = 2;
  let unk: number | undefined = 0;
  let sep: number | undefined;
  let pad: number | undefined;
  let mask: number | undefined;
  let addSpacePrefix = false;
  let addBos = false;
  let addEos = false;
  let addSep = false;
  let ignoreMerges = false;
  let cleanSpaces = false;
  let escapeWhitespaces = true;
  let lowercase = true;
  let forceAddBos = false;
  let merges: string[] = [];

  if (modelName === "none" || modelName === "no_vocab") {
    // llama.cpp returns early: no special tokens, dummy tokens of the architecture's vocab_size.
    const arch = str(GENERAL.architecture);
    const n = arch === undefined ? undefined : id(archKeys(arch).vocabSize);
    return emptyVocab(n ?? 0);
  }
  switch (modelName) {
    case "llama":
      model = "llama";
      addSpacePrefix = true;
      addBos = true;
      break;
    case "bert":
      model = "bert";
      bos = 101;
      eos = undefined;
      unk = 100;
      sep = 102;
      pad = 0;
      mask = 103;
      cleanSpaces = true;
      addBos = true;
      addSep = true;
      break;
    case "gpt2": {
      model = "gpt2";
      const pre = preRaw === undefined || preRaw === "" ? "default" : preRaw;
      const v = md.get(TOKENIZER.merges);
      if (v === undefined) {
        if (pre !== "kimi-k2") missing(TOKENIZER.merges, "the BPE merges a gpt2 tokenizer needs");
      } else {
        if (v.type === "ARRAY" && v.value.itemType === "STRING") merges = v.value.items;
        else bad(TOKENIZER.merges, `should be an ARRAY of STRING, found ${describe(v)}`);
      }
      bos = 11;
      eos = 11;
      unk = undefined;
      if (preRaw === undefined || preRaw === "")
        warnings.push("missing pre-tokenizer type (tokenizer.ggml.pre), using 'default'");
      const flags =
        BPE_PRE.get(pre) ??
        (() => {
          throw new OwlError(
            "ERR_UNSUPPORTED_TOKENIZER",
            `${where}: unknown pre-tokenizer type "${pre}" (tokenizer.ggml.pre)`,
            {
              details: { key: TOKENIZER.pre, pre, where },
              hint: "llama.cpp does not know this pre-tokenizer either; the file may need reconverting",
            },
          );
        })();
      cleanSpaces = flags.cleanSpaces ?? true;
      escapeWhitespaces = flags.escapeWhitespaces ?? false;
      ignoreMerges = flags.ignoreMerges ?? false;
      if (flags.addBos) addBos = true;
      if (flags.addSep) addSep = true;
      if (flags.noBos) bos = undefined;
      if (flags.noLowercase) lowercase = false;
      forceAddBos = flags.forceAddBos ?? false;
      break;
    }
    case "t5":
      model = "t5";
      bos = undefined;
      eos = 1;
      unk = 2;
      pad = 0;
      addEos = true;
      break;
    default:
      throw new OwlError(
        "ERR_UNSUPPORTED_TOKENIZER",
        KNOWN_UNSUPPORTED.has(modelName)
          ? `${where}: the "${modelName}" tokenizer is not supported by owl yet`
          : `${where}: unknown tokenizer model "${modelName}" (tokenizer.ggml.model)`,
        {
          details: { key: TOKENIZER.model, model: modelName, where },
          hint: "owl supports llama (SPM), gpt2 (BPE) and bert (WPM) vocabularies",
        },
      );
  }
  addSpacePrefix = bool(TOKENIZER.addSpacePrefix) ?? addSpacePrefix;
  const removeExtraWhitespaces = bool(TOKENIZER.removeExtraWhitespaces) ?? false;

  // ---- tokens, scores, types ----
  const tv = md.get(TOKENIZER.tokens) ?? missing(TOKENIZER.tokens, "the token list");
  if (tv.type !== "ARRAY" || tv.value.itemType !== "STRING")
    bad(TOKENIZER.tokens, `should be an ARRAY of STRING, found ${describe(tv)}`);
  const rawTokens = (tv as { value: { items: string[] } }).value.items;
  const n = rawTokens.length;

  let scoreArr: Float32Array | Int32Array | undefined;
  const sv = md.get(TOKENIZER.scores);
  if (sv !== undefined) {
    if (sv.type !== "ARRAY" || (sv.value.itemType !== "FLOAT32" && sv.value.itemType !== "INT32"))
      bad(TOKENIZER.scores, `should be an ARRAY of FLOAT32 or INT32, found ${describe(sv)}`);
    scoreArr = (sv as { value: { items: Float32Array | Int32Array } }).value.items;
    if (scoreArr.length < n)
      bad(TOKENIZER.scores, `has ${scoreArr.length} entries but there are ${n} tokens`, {
        expected: n,
        found: scoreArr.length,
      });
  }
  let typeArr: Int32Array | undefined;
  const yv = md.get(TOKENIZER.tokenType);
  if (yv !== undefined) {
    if (yv.type !== "ARRAY" || yv.value.itemType !== "INT32")
      bad(TOKENIZER.tokenType, `should be an ARRAY of INT32, found ${describe(yv)}`);
    typeArr = (yv as { value: { items: Int32Array } }).value.items;
    if (typeArr.length < n)
      bad(TOKENIZER.tokenType, `has ${typeArr.length} entries but there are ${n} tokens`, {
        expected: n,
        found: typeArr.length,
      });
  }

  const tokens = new Array<string>(n);
  const scores = new Float32Array(n);
  const attrs = new Uint32Array(n);
  const tokenToId = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    let word = rawTokens[i]!;
    if (word.length === 0) {
      warnings.push(`empty token at index ${i}`);
      word = `[EMPTY_${i}]`;
    }
    tokens[i] = word;
    tokenToId.set(word, i);
    if (scoreArr) scores[i] = scoreArr[i]!;
    attrs[i] = typeArr ? attrOfType(typeArr[i]!) : TokenAttr.NORMAL;
  }

  // ---- special ids: defaults out of range are dropped, metadata overrides in range win ----
  const special = (key: string | readonly string[], dflt: number | undefined): number | undefined => {
    const keys = typeof key === "string" ? [key] : key;
    let v = dflt;
    if (v !== undefined && v >= n) {
      warnings.push(`default special token '${keys[0]}' = ${v} out of vocab range, disabling`);
      v = undefined;
    }
    for (const k of keys) {
      const found = id(k);
      if (found === undefined) continue;
      if (!Number.isInteger(found) || found < 0 || found >= n)
        warnings.push(`bad special token: '${k}' = ${found}, using default id ${v ?? -1}`);
      else v = found;
    }
    return v;
  };
  bos = special(TOKENIZER.bosId, bos);
  eos = special(TOKENIZER.eosId, eos);
  let eot = special(TOKENIZER.eotId, undefined);
  let eom = special(TOKENIZER.eomId, undefined);
  unk = special(TOKENIZER.unkId, unk);
  sep = special(TOKENIZER.sepId, sep);
  pad = special(TOKENIZER.padId, pad);
  mask = special(TOKENIZER.maskId, mask);
  // NOTE: llama.cpp reads the deprecated prefix/suffix/middle keys after the fim_* ones, so they win.
  let fimPre = special([TOKENIZER.fimPreId, TOKENIZER.prefixId], undefined);
  let fimSuf = special([TOKENIZER.fimSufId, TOKENIZER.suffixId], undefined);
  let fimMid = special([TOKENIZER.fimMidId, TOKENIZER.middleId], undefined);
  let fimPad = special(TOKENIZER.fimPadId, undefined);
  let fimRep = special(TOKENIZER.fimRepId, undefined);
  let fimSep = special(TOKENIZER.fimSepId, undefined);

  addBos = bool(TOKENIZER.addBos) ?? addBos;
  addEos = bool(TOKENIZER.addEos) ?? addEos;
  addSep = bool(TOKENIZER.addSep) ?? addSep;
  if (forceAddBos && !addBos) {
    addBos = true;
    warnings.push(`override '${TOKENIZER.addBos}' to 'true' for Gemma4`);
  }
  lowercase = bool(TOKENIZER.normalizerLowercase) ?? lowercase;
  const stripAccents = bool(TOKENIZER.normalizerStripAccents) ?? lowercase;

  // ---- special tokens found by their text ----
  // NOTE: llama.cpp walks its unordered_map (an unspecified order) and takes the first match when
  // several texts qualify (phi-3 has "<|endoftext|>" 32000 and "<|end|>" 32007 and no eot key).
  // libstdc++ walks roughly newest-first, and llama.cpp reports phi-3's EOT as 32007 and Qwen's as
  // "<|im_end|>", so owl walks ids in descending order: the highest id wins.
  const forceControl = (i: number, text: string): void => {
    if ((attrs[i]! & TokenAttr.CONTROL) === 0) {
      warnings.push(`control-looking token: ${i} '${text}' was not control-type; its type is overridden`);
      attrs[i] = attrs[i]! | TokenAttr.CONTROL;
    }
  };
  // The map holds the last id of each text. Rather than walk every token (llama.cpp's loop), look
  // each listed text up: the match the walk would meet first is the one with the highest id.
  const firstOf = (texts: ReadonlySet<string>): number | undefined => {
    let best: number | undefined;
    for (const t of texts) {
      const i = tokenToId.get(t);
      if (i !== undefined && (best === undefined || i > best)) best = i;
    }
    if (best !== undefined) forceControl(best, tokens[best]!);
    return best;
  };
  eot ??= firstOf(EOT_TEXTS);
  eom ??= firstOf(EOM_TEXTS);
  fimPre ??= firstOf(FIM_PRE_TEXTS);
  fimSuf ??= firstOf(FIM_SUF_TEXTS);
  fimMid ??= firstOf(FIM_MID_TEXTS);
  fimPad ??= firstOf(FIM_PAD_TEXTS);
  fimRep ??= firstOf(FIM_REP_TEXTS);
  fimSep ??= firstOf(FIM_SEP_TEXTS);
  // Control tokens whose text says "unused" are unused (only the id the map holds for a text).
  for (let i = 0; i < n; i++) {
    if (
      (attrs[i]! & TokenAttr.CONTROL) !== 0 &&
      tokens[i]!.includes("unused") &&
      tokenToId.get(tokens[i]!) === i
    )
      attrs[i] = attrs[i]! | TokenAttr.UNUSED;
  }

  // ---- end of generation ----
  const eog = new Set<number>();
  for (const f of [fimPad, fimRep, fimSep]) if (f !== undefined) eog.add(f);
  for (const text of EOG_TEXTS) {
    const i = tokenToId.get(text);
    if (i === undefined) continue;
    eog.add(i);
    forceControl(i, text);
  }
  for (const text of ALWAYS_RENDERED) {
    const i = tokenToId.get(text);
    if (i !== undefined) attrs[i] = TokenAttr.USER_DEFINED;
  }
  for (const [name, v] of [
    ["eos", eos],
    ["eot", eot],
    ["eom", eom],
  ] as const) {
    if (v !== undefined && !eog.has(v)) {
      eog.add(v);
      warnings.push(`special_${name}_id is not in special_eog_ids - the tokenizer config may be incorrect`);
    }
  }
  // gpt-oss (harmony) and solar-open: "<|end|>" ends a message, not the generation.
  {
    let hasReturn = false;
    let hasCall = false;
    let hasFlush = false;
    let endId: number | undefined;
    for (const t of eog) {
      const text = tokens[t];
      if (text === "<|return|>") hasReturn = true;
      else if (text === "<|call|>" || text === "<|calls|>") hasCall = true;
      else if (text === "<|flush|>") hasFlush = true;
      else if (text === "<|end|>") endId = t;
    }
    if (endId !== undefined && ((hasReturn && hasCall) || (hasCall && hasFlush))) {
      eog.delete(endId);
      attrs[endId] = TokenAttr.USER_DEFINED;
    }
  }
  // gemma4 and paddleocr: "</s>" is not end of generation when "<|tool_response>" is.
  {
    let toolResponse = false;
    let sId: number | undefined;
    for (const t of eog) {
      if (tokens[t] === "<|tool_response>") toolResponse = true;
      else if (tokens[t] === "</s>") sId = t;
    }
    if (toolResponse && sId !== undefined) {
      eog.delete(sId);
      attrs[sId] = TokenAttr.NORMAL;
    }
  }

  // ---- per-model attribute fixups (the end of llama_vocab::impl::load) ----
  const general = (str(GENERAL.name) ?? "").toLowerCase();
  const arch = str(GENERAL.architecture) ?? "";
  const pre = preRaw ?? "";
  const setAttr = (text: string, attr: number, on: boolean): void => {
    const i = tokenToId.get(text);
    if (i === undefined) return;
    attrs[i] = on ? attrs[i]! | attr : attrs[i]! & ~attr;
  };
  const containsAny = (s: string, subs: string[]) => subs.some((x) => s.includes(x));
  if (
    containsAny(pre, ["jina-v2-de", "jina-v2-es", "jina-v2-code"]) ||
    containsAny(arch, ["nomic-bert-moe", "jina-bert-v3"])
  ) {
    if (!tokenToId.has("<mask>")) warnings.push("mask token is missing in vocab, please reconvert model");
    setAttr("<mask>", TokenAttr.LSTRIP, true);
  } else if (containsAny(general, ["phi-3", "phi3"])) {
    const specialMask = TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN;
    for (let i = 0; i < n; i++) if ((attrs[i]! & specialMask) !== 0) attrs[i] = attrs[i]! | TokenAttr.RSTRIP;
    setAttr("</s>", TokenAttr.RSTRIP, true);
    for (const t of ["<unk>", "<s>", "<|endoftext|>"]) setAttr(t, TokenAttr.RSTRIP, false);
  } else if (containsAny(general, ["modern-bert"])) {
    if (!tokenToId.has("[MASK]")) warnings.push("mask token missing in vocab");
    setAttr("[MASK]", TokenAttr.LSTRIP, true);
  }

  const vocab: Vocab = {
    model,
    pre: preRaw === undefined || preRaw === "" ? "default" : preRaw,
    tokens,
    scores,
    attrs,
    tokenToId,
    merges,
    bos,
    eos,
    eot,
    eom,
    unk,
    sep,
    pad,
    mask,
    eog,
    addBos,
    addEos,
    addSep,
    addSpacePrefix,
    removeExtraWhitespaces,
    cleanSpaces,
    chatTemplate: str(TOKENIZER.chatTemplate),
    ignoreMerges,
    escapeWhitespaces,
    lowercase,
    stripAccents,
    warnings,
  };
  if (fimPre !== undefined) vocab.fimPre = fimPre;
  if (fimSuf !== undefined) vocab.fimSuf = fimSuf;
  if (fimMid !== undefined) vocab.fimMid = fimMid;
  if (fimPad !== undefined) vocab.fimPad = fimPad;
  if (fimRep !== undefined) vocab.fimRep = fimRep;
  if (fimSep !== undefined) vocab.fimSep = fimSep;
  return vocab;
}

/** llama.cpp's "no_vocab"/"none" vocabulary: `n` dummy tokens and no special ids. */
function emptyVocab(n: number): Vocab {
  return {
    model: "none",
    pre: "default",
    tokens: new Array<string>(n).fill(""),
    scores: new Float32Array(n),
    attrs: new Uint32Array(n),
    tokenToId: new Map(),
    merges: [],
    bos: undefined,
    eos: undefined,
    eot: undefined,
    eom: undefined,
    unk: undefined,
    sep: undefined,
    pad: undefined,
    mask: undefined,
    eog: new Set(),
    addBos: false,
    addEos: false,
    addSep: false,
    addSpacePrefix: false,
    removeExtraWhitespaces: false,
    cleanSpaces: false,
    chatTemplate: undefined,
    warnings: [],
  };
}

/** Open a GGUF file, read its vocabulary and close it (tensor data is never read). */
export function vocabFromGgufFile(path: string): Vocab {
  const file = openGguf(path);
  try {
    return vocabFromGguf(file.metadata, path);
  } finally {
    file.close();
  }
}
