/**
 * Test helper: the Hugging Face tokenizer.json (+ tokenizer_config.json, config.json) equivalent
 * of a GGUF vocabulary, written as transformers/tokenizers would have them for that model:
 * - SPM ("llama") vocabularies as a Llama-2-style BPE with byte_fallback, a Prepend("▁") +
 *   Replace(" " -> "▁") normalizer, and merges made from the SentencePiece scores the way
 *   transformers' SentencePieceExtractor makes them (every split of a piece into two pieces, the
 *   pieces by descending score, a piece's splits by (left id, right id));
 * - byte-level BPE ("gpt2") vocabularies with their merges and the pre_tokenizer the original
 *   tokenizer.json has (HF_PRE_TOKENIZERS, by tokenizer.ggml.pre);
 * - WordPiece ("bert") vocabularies with "##" continuations (the converter's phantom spaces undone).
 * Control and user-defined tokens become added_tokens; "[PAD<id>]" fillers are left out and come
 * back through config.json's vocab_size. Used by test/tokenizer-hf.test.ts and bench/tokenizer.ts.
 */
import { TokenAttr, type Vocab } from "../../src/tokenizer/types.ts";

type Json = Record<string, unknown>;

export interface HfTokenizerFiles {
  tokenizer: Json;
  tokenizerConfig: Json;
  config: Json;
}

const SPACE = "\u2581";
const byteLevel = (useRegex: boolean) => ({
  type: "ByteLevel",
  add_prefix_space: false,
  trim_offsets: true,
  use_regex: useRegex,
});
const split = (regex: string) => ({
  type: "Split",
  pattern: { Regex: regex },
  behavior: "Isolated",
  invert: false,
});
const seq = (...pretokenizers: Json[]) => ({ type: "Sequence", pretokenizers });
const digits = (individual: boolean) => ({ type: "Digits", individual_digits: individual });
const CJK = "[一-龥ࠀ-一가-퟿]+";

/** The pre_tokenizer of the original tokenizer.json of each fixture vocabulary, by tokenizer.ggml.pre. */
export const HF_PRE_TOKENIZERS: Record<string, Json> = {
  "gpt-2": byteLevel(true),
  mpt: byteLevel(true),
  starcoder: seq(digits(true), byteLevel(true)),
  refact: seq(digits(true), byteLevel(true)),
  falcon: seq(
    { type: "Punctuation", behavior: "Contiguous" },
    byteLevel(true),
    digits(false),
    split("[0-9][0-9][0-9]"),
  ),
  "deepseek-coder": seq(
    split("[\r\n]"),
    split("\\s?\\p{L}+"),
    split("\\s?\\p{P}+"),
    split(CJK),
    digits(true),
    byteLevel(false),
  ),
  "deepseek-llm": seq(
    split("[\r\n]"),
    split(
      // NOTE: written with escapes where NFC would change the characters (ώ ι ΐ Ί Ω K are compatibility forms).
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1f7dᾀ-ᾴᾶ-ᾼ\u1fbeῂ-ῄῆ-ῌῐ-\u1fd3ῖ-\u1fdbῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212a-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    ),
    split("\\s?[!-/:-~！-／：-～‘-‟　-。]+"),
    split("\\s+$"),
    split(CJK),
    digits(false),
    byteLevel(false),
  ),
  "llama-bpe": seq(
    split(
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ),
    byteLevel(false),
  ),
  qwen2: seq(
    split(
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ),
    byteLevel(false),
  ),
};

const isPad = (t: string) => /^\[PAD\d+\]$/.test(t);

function addedTokens(v: Vocab, normalizedUserDefined: boolean): Json[] {
  const out: Json[] = [];
  for (let i = 0; i < v.tokens.length; i++) {
    const a = v.attrs[i]!;
    const t = v.tokens[i]!;
    if (isPad(t)) continue;
    const control = (a & (TokenAttr.CONTROL | TokenAttr.UNKNOWN)) !== 0;
    const user = (a & TokenAttr.USER_DEFINED) !== 0;
    if (!control && !user) continue;
    out.push({
      id: i,
      content: t,
      single_word: false,
      lstrip: (a & TokenAttr.LSTRIP) !== 0,
      rstrip: (a & TokenAttr.RSTRIP) !== 0,
      normalized: user && !control ? normalizedUserDefined : false,
      special: control,
    });
  }
  return out;
}

function tokenizerConfigOf(v: Vocab, kinds: Partial<Record<"bos" | "eos" | "unk" | "pad", number>>): Json {
  const tc: Json = { clean_up_tokenization_spaces: v.cleanSpaces, model_max_length: 4096 };
  for (const [k, id] of Object.entries(kinds)) if (id !== undefined) tc[`${k}_token`] = v.tokens[id];
  if (v.chatTemplate !== undefined) tc["chat_template"] = v.chatTemplate;
  return tc;
}

/** SentencePieceExtractor: merges from the scores of an SPM vocabulary. */
export function spmMerges(v: Vocab): [string, string][] {
  const idOf = new Map<string, number>();
  for (let i = 0; i < v.tokens.length; i++) if (!isPad(v.tokens[i]!)) idOf.set(v.tokens[i]!, i);
  const order = [...idOf.values()].sort((a, b) => v.scores[b]! - v.scores[a]! || a - b);
  const merges: [string, string][] = [];
  for (const id of order) {
    const piece = v.tokens[id]!;
    const local: [string, string, number, number][] = [];
    const cps = Array.from(piece);
    for (let k = 1; k < cps.length; k++) {
      const l = cps.slice(0, k).join("");
      const r = cps.slice(k).join("");
      const li = idOf.get(l);
      const ri = idOf.get(r);
      if (li !== undefined && ri !== undefined) local.push([l, r, li, ri]);
    }
    local.sort((a, b) => a[2] - b[2] || a[3] - b[3]);
    for (const [l, r] of local) merges.push([l, r]);
  }
  return merges;
}

function templateProcessing(bos: string | undefined, eos: string | undefined, v: Vocab): Json | null {
  const single: Json[] = [];
  const pair: Json[] = [];
  const specials: Json = {};
  const sp = (t: string) => {
    specials[t] = { id: t, ids: [v.tokenToId.get(t)], tokens: [t] };
    return { SpecialToken: { id: t, type_id: 0 } };
  };
  if (bos !== undefined) {
    single.push(sp(bos));
    pair.push(sp(bos));
  }
  single.push({ Sequence: { id: "A", type_id: 0 } });
  pair.push({ Sequence: { id: "A", type_id: 0 } });
  if (bos !== undefined) pair.push({ SpecialToken: { id: bos, type_id: 1 } });
  pair.push({ Sequence: { id: "B", type_id: 1 } });
  if (eos !== undefined) {
    single.push(sp(eos));
    pair.push(sp(eos));
  }
  if (single.length === 1) return null;
  return { type: "TemplateProcessing", single, pair, special_tokens: specials };
}

/** The HF files of a GGUF vocabulary (see the module comment). */
export function hfFilesFromVocab(v: Vocab): HfTokenizerFiles {
  const n = v.tokens.length;
  const config: Json = { vocab_size: n };
  if (v.model === "llama") {
    const vocab: Json = {};
    for (let i = 0; i < n; i++) if (!isPad(v.tokens[i]!)) vocab[v.tokens[i]!] = i;
    const bos = v.bos === undefined ? undefined : v.tokens[v.bos];
    const eos = v.eos === undefined ? undefined : v.tokens[v.eos];
    const tokenizer: Json = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens(v, false),
      normalizer: {
        type: "Sequence",
        normalizers: [
          { type: "Prepend", prepend: SPACE },
          { type: "Replace", pattern: { String: " " }, content: SPACE },
        ],
      },
      pre_tokenizer: null,
      post_processor: templateProcessing(v.addBos ? bos : undefined, v.addEos ? eos : undefined, v),
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: SPACE }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          { type: "Strip", content: " ", start: 1, stop: 0 },
        ],
      },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: v.unk === undefined ? null : v.tokens[v.unk],
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        ignore_merges: false,
        vocab,
        merges: spmMerges(v),
      },
    };
    const tc = tokenizerConfigOf(v, { bos: v.bos, eos: v.eos, unk: v.unk, pad: v.pad });
    tc["add_bos_token"] = v.addBos;
    tc["add_eos_token"] = v.addEos;
    tc["legacy"] = true;
    return { tokenizer, tokenizerConfig: tc, config };
  }
  if (v.model === "gpt2") {
    const pre = HF_PRE_TOKENIZERS[v.pre];
    if (!pre) throw new Error(`no HF pre_tokenizer known for tokenizer.ggml.pre "${v.pre}"`);
    const added = addedTokens(v, true);
    const addedIds = new Set(added.map((a) => a["id"] as number));
    const vocab: Json = {};
    for (let i = 0; i < n; i++) if (!isPad(v.tokens[i]!) && !addedIds.has(i)) vocab[v.tokens[i]!] = i;
    const bos = v.bos === undefined ? undefined : v.tokens[v.bos];
    const tokenizer: Json = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: pre,
      post_processor: v.addBos
        ? templateProcessing(bos, undefined, v)
        : { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: v.ignoreMerges === true,
        vocab,
        merges: v.merges,
      },
    };
    const tc = tokenizerConfigOf(v, { bos: v.bos, eos: v.eos, unk: v.unk, pad: v.pad });
    if (v.addBos) tc["add_bos_token"] = true;
    return { tokenizer, tokenizerConfig: tc, config };
  }
  if (v.model === "bert") {
    const vocab: Json = {};
    for (let i = 0; i < n; i++) {
      const t = v.tokens[i]!;
      if (isPad(t)) continue;
      const control = (v.attrs[i]! & TokenAttr.CONTROL) !== 0;
      vocab[control ? t : t.startsWith(SPACE) ? t.slice(1) : `##${t}`] = i;
    }
    const cls = v.bos === undefined ? undefined : v.tokens[v.bos];
    const sep = v.sep === undefined ? undefined : v.tokens[v.sep];
    const tokenizer: Json = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: addedTokens(v, false),
      normalizer: {
        type: "BertNormalizer",
        clean_text: true,
        handle_chinese_chars: true,
        strip_accents: null,
        lowercase: v.lowercase ?? true,
      },
      pre_tokenizer: { type: "BertPreTokenizer" },
      post_processor: templateProcessing(cls, sep, v),
      decoder: { type: "WordPiece", prefix: "##", cleanup: true },
      model: {
        type: "WordPiece",
        unk_token: v.unk === undefined ? "[UNK]" : v.tokens[v.unk],
        continuing_subword_prefix: "##",
        max_input_chars_per_word: 100,
        vocab,
      },
    };
    const tc: Json = { clean_up_tokenization_spaces: true, do_lower_case: true, model_max_length: 512 };
    for (const [k, id] of Object.entries({ cls: v.bos, sep: v.sep, unk: v.unk, pad: v.pad, mask: v.mask }))
      if (id !== undefined) tc[`${k}_token`] = v.tokens[id];
    return { tokenizer, tokenizerConfig: tc, config };
  }
  throw new Error(`no tokenizer.json equivalent for a "${v.model}" vocabulary`);
}
