/**
 * BPE pre-tokenizers: the word splitting that runs before the merges, one per tokenizer.ggml.pre
 * value, as llama.cpp does it: the regex lists of llm_tokenizer_bpe's constructor
 * (src/llama-vocab.cpp) run by unicode_regex_split (src/unicode.cpp). Each regex of a list splits
 * every fragment the previous one produced; the text between two matches is a fragment too.
 *
 * How each regex runs, as in unicode_regex_split:
 * - the gpt2, llama3, qwen2 and qwen3.5 patterns, "[^\n]+|[\n]+", "\s+$" and the AFMoE digit rule
 *   by hand-written splitters (llama.cpp's unicode_regex_split_custom_* functions);
 * - any other pattern that uses \p{..}: on a "collapsed" copy of the text where every code point
 *   >= 128 becomes one placeholder char per category (whitespace -> \v, \p{N} -> \xD1, \p{L} ->
 *   \xD2, \p{P} -> \xD3, \p{M} -> \xD4, \p{S} -> \xD5, anything else -> \xD0), with each \p{X} of
 *   the pattern rewritten to [placeholder + its ASCII members], the trick llama.cpp uses for
 *   std::regex; JS's RegExp then gives the same matches as std::regex's ECMAScript grammar;
 * - the other patterns on the text itself (non-ASCII whitespace replaced by \v, as llama.cpp
 *   does), with \s meaning ASCII whitespace.
 * Each fragment is matched on its own, so lookaheads and $ see the fragment's end. For speed, a
 * pattern `\s?C+` / `C+` / `C` over one class runs as a linear scan (ClassRun), and a regex
 * without lookaround or anchors runs once over the whole text (splitAllRegex says why that is the
 * same split). The JS regex engine is never handed a 10 MB fragment with a pattern that can
 * backtrack quadratically ("\s+$" has its own splitter).
 *
 * Not here: byte-level encoding and merges (bpe.ts), special-token splitting (tokenizer.ts).
 */
import { assert, OwlError } from "../util/errors.ts";
import {
  CodepointBuffer,
  CPT_FLAGS,
  CptFlag,
  cptFlags,
  replaceLoneSurrogates,
  toLowerCpt,
} from "./unicode.ts";

/** What a BPE vocabulary's pre-tokenizer does, by tokenizer.ggml.pre. */
export interface BpePreConfig {
  /** The llama.cpp pre-tokenizer type this name selects (LLAMA_VOCAB_PRE_TYPE_*, lowercase). */
  type: string;
  /** The regexes, in llama.cpp's spelling, applied in order. */
  regexes: readonly string[];
  /** Words are mapped through GPT-2's bytes_to_unicode before merging (false: raw UTF-8, "▁" spaces). */
  byteEncode: boolean;
  /** llama.cpp sets ignore_merges for this name (a word that is a token is taken whole). */
  ignoreMerges: boolean;
}

// The regexes of llm_tokenizer_bpe's constructor, by pre-tokenizer type.
const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const LLAMA3 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const QWEN2 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const QWEN35 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const JAIS2 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}`;
const DEEPSEEK3_MAIN =
  "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
const GPT4O_CASED =
  "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+" +
  `${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*${CONTRACTIONS}?`;
const PORO = " ?[^(\\s|.,!?…。，、।۔،)]+";
const NEWLINES = "[^\\n]+|[\\n]+";
const AFMOE_DIGITS = "\\p{AFMoE_digits}";
const TINY_AYA_DIGITS = "\\d{1,3}(?=(?:\\d{3})*\\b)";
const TRAILING_SPACE = "\\s+$";
const CJK_DEEPSEEK = "[一-龥ࠀ-一가-퟿]+";
// NOTE: copied byte for byte from llama.cpp (the Latin/Greek/Cyrillic/... letter ranges of DeepSeek LLM).
const DEEPSEEK_LLM_LETTERS =
  "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";
const TYPES: Record<string, readonly string[]> = {
  llama3: [LLAMA3],
  jais2: [JAIS2],
  dbrx: [LLAMA3],
  "deepseek-llm": [
    "[\r\n]",
    DEEPSEEK_LLM_LETTERS,
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    TRAILING_SPACE,
    CJK_DEEPSEEK,
    "\\p{N}+",
  ],
  "deepseek3-llm": ["\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+", DEEPSEEK3_MAIN],
  youtu: [
    "[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+",
    `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*${CONTRACTIONS}?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  ],
  "deepseek-coder": ["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_DEEPSEEK, "\\p{N}"],
  falcon: ["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]"],
  starcoder: ["\\p{N}", GPT2],
  gpt2: [GPT2],
  qwen2: [QWEN2],
  qwen35: [QWEN35],
  poro: [PORO],
  chatglm4: [LLAMA3],
  viking: [PORO, "\\p{N}"],
  tekken: [
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ],
  chameleon: [
    "<sentinel:[0-9]+>",
    "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
    "([\\t\\n]|    |  )",
    "\\p{N}",
    "[\\p{P}!-/:-@\\[-`{-~]",
    GPT2,
  ],
  gpt4o: [`${GPT4O_CASED}|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`],
  "granite-emb-multi": [
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+" +
      `${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*${CONTRACTIONS}?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  ],
  "tiny-aya": [
    TINY_AYA_DIGITS,
    `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*${CONTRACTIONS}?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  ],
  bailingmoe: [
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
  ],
  "seed-coder": [
    `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  ],
  grok2: [QWEN2],
  afmoe: [
    AFMOE_DIGITS,
    "[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ],
  laguna: [NEWLINES, QWEN2],
  "exaone-moe": [
    `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+`,
  ],
  gemma4: [NEWLINES],
  minicpm5: [
    "\\p{N}{1,3}",
    `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  ],
  whitespace: ["\\S+"],
  default: ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"],
};

/** tokenizer.ggml.pre -> pre-tokenizer type (the else-if chain of llama_vocab::impl::load). */
const NAMES: Record<string, string> = {};
const IGNORE_MERGES = new Set(["llama3", "minicpm5", "youtu", "tekken", "granite-emb-multi"]);
const NO_BYTE_ENCODE = new Set(["gemma4", "whitespace"]);
function names(type: string, list: string[]): void {
  for (const n of list) NAMES[n] = type;
}
names("default", ["default"]);
names("minicpm5", ["minicpm5"]);
names("llama3", [
  "llama3",
  "llama-v3",
  "llama-bpe",
  "falcon3",
  "falcon-h1",
  "pixtral",
  "midm-2.0",
  "lfm2",
  "jina-v5-nano",
]);
names("deepseek-llm", ["deepseek-llm"]);
names("deepseek-coder", ["deepseek-coder"]);
names("deepseek3-llm", ["deepseek-v3", "hunyuan-dense", "joyai-llm"]);
names("youtu", ["youtu"]);
names("falcon", ["falcon"]);
names("gpt2", [
  "mpt",
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
  "jina-v1-en",
  "jina-v2-code",
  "roberta-bpe",
  "olmo",
  "jais",
  "trillion",
  "granite-docling",
  "exaone4",
]);
names("starcoder", [
  "starcoder",
  "refact",
  "command-r",
  "smollm",
  "codeshell",
  "exaone",
  "minerva-7b",
  "mellum2",
]);
names("jais2", ["jais-2"]);
names("gemma4", ["gemma4", "granite-embed-multi-311m", "sarvam-moe"]);
names("whitespace", ["whitespace"]);
names("qwen2", [
  "qwen2",
  "deepseek-r1-qwen",
  "kormo",
  "f2llmv2",
  "megrez",
  "stablelm2",
  "hunyuan",
  "solar-open",
]);
names("qwen35", ["qwen35"]);
names("dbrx", ["dbrx", "smaug-bpe"]);
names("poro", ["poro-chat", "bloom", "gpt3-finnish"]);
names("chatglm4", ["glm4", "chatglm-bpe"]);
names("viking", ["viking"]);
names("tekken", ["tekken"]);
names("exaone-moe", ["exaone-moe"]);
names("chameleon", ["chameleon"]);
names("gpt4o", ["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"]);
names("granite-emb-multi", ["granite-embed-multi-97m"]);
names("tiny-aya", ["tiny_aya", "cohere2moe"]);
names("bailingmoe", ["bailingmoe", "bailingmoe2", "llada-moe"]);
names("seed-coder", ["seed-coder"]);
names("grok2", ["grok-2"]);
names("afmoe", ["afmoe"]);
names("laguna", ["laguna"]);
/** Names llama.cpp knows whose splitting owl does not implement (custom C++ code). */
const UNSUPPORTED = new Set(["kimi-k2", "superbpe"]);

/**
 * The pre-tokenizer of a BPE vocabulary by its tokenizer.ggml.pre value ("default" when absent).
 * Throws ERR_UNSUPPORTED_TOKENIZER for a name llama.cpp does not know or owl does not implement.
 */
export function bpePreConfig(pre: string): BpePreConfig {
  const type = NAMES[pre === "" ? "default" : pre];
  if (type === undefined) {
    throw new OwlError(
      "ERR_UNSUPPORTED_TOKENIZER",
      UNSUPPORTED.has(pre)
        ? `the BPE pre-tokenizer "${pre}" is not supported by owl yet`
        : `unknown BPE pre-tokenizer "${pre}" (tokenizer.ggml.pre)`,
      { details: { pre }, hint: "llama.cpp's list of pre-tokenizers is in src/llama-vocab.cpp" },
    );
  }
  return {
    type,
    regexes: TYPES[type]!,
    byteEncode: !NO_BYTE_ENCODE.has(type),
    ignoreMerges: IGNORE_MERGES.has(type),
  };
}

/** Every tokenizer.ggml.pre value bpePreConfig accepts. */
export function knownBpePreNames(): string[] {
  return Object.keys(NAMES).sort();
}

// ---------------------------------------------------------------------------------------------
// Compiled steps

type Custom = "gpt2" | "llama3" | "qwen2" | "qwen35" | "newlines" | "trailing-space" | "digits-mod3";
/** A regex step; contextFree: no lookaround, anchor or word boundary (see splitAllRegex). */
type RegexStep = { kind: "collapsed" | "wide"; re: RegExp; contextFree: boolean };
type Step = { kind: "custom"; name: Custom } | RegexStep | ClassRun;

/**
 * A pattern of the form `\s?C+`, `C+` or `C` for one character class C (most of deepseek's,
 * falcon's and the default lists): run by a linear scan with a per-code-point membership cache
 * instead of the regex engine. Membership is asked of the regex itself, on the character that
 * llama.cpp's regex would see (the collapsed placeholder, or \v for non-ASCII whitespace).
 */
class ClassRun {
  readonly kind = "class-run";
  private readonly bmp = new Uint8Array(0x10000); // 0 unknown, 1 out, 2 in
  private readonly astral = new Map<number, boolean>();
  constructor(
    readonly space: boolean,
    readonly plus: boolean,
    private readonly member: RegExp,
    readonly collapsed: boolean,
  ) {}

  /** mem[i] = 1 when code point i of the text is in the class, for i < n. */
  fill(cps: Int32Array, flags: Uint16Array, n: number, mem: Uint8Array): void {
    const bmp = this.bmp;
    for (let i = 0; i < n; i++) {
      const cp = cps[i]!;
      let c = cp;
      if (cp > 0x7f) {
        const f = flags[i]!;
        if (this.collapsed) c = collapsedUnit(cp, f);
        else if (f & CptFlag.WHITESPACE) c = 0x0b;
      }
      if (c < 0x10000) {
        let v = bmp[c]!;
        if (v === 0) {
          v = this.member.test(String.fromCharCode(c)) ? 2 : 1;
          bmp[c] = v;
        }
        mem[i] = v - 1;
      } else {
        let v = this.astral.get(c);
        if (v === undefined) {
          v = this.member.test(String.fromCodePoint(c));
          this.astral.set(c, v);
        }
        mem[i] = v ? 1 : 0;
      }
    }
  }
}

/** The placeholder char of a code point in llama.cpp's collapsed text. */
function collapsedUnit(cp: number, f: number): number {
  if (cp < 128) return cp;
  if (f & CptFlag.WHITESPACE) return 0x0b;
  if (f & CptFlag.NUMBER) return 0xd1;
  if (f & CptFlag.LETTER) return 0xd2;
  if (f & CptFlag.PUNCTUATION) return 0xd3;
  if (f & CptFlag.ACCENT_MARK) return 0xd4;
  if (f & CptFlag.SYMBOL) return 0xd5;
  return 0xd0;
}

const CLASS_RUN = /^(\\s\?)?(\[(?:\\.|[^\]\\])*\]|\\p\{\w+\})(\+)?$/;

/** Patterns llama.cpp runs with its own C++ code instead of std::regex (unicode_regex_split_custom). */
const CUSTOM: Record<string, Custom> = {
  [GPT2]: "gpt2",
  [LLAMA3]: "llama3",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    "llama3",
  [QWEN2]: "qwen2",
  [QWEN35]: "qwen35",
  [NEWLINES]: "newlines",
  [AFMOE_DIGITS]: "digits-mod3",
  [TINY_AYA_DIGITS]: "digits-mod3",
  // NOTE: not custom in llama.cpp, but std::regex (and JS) backtrack quadratically on "\s+$" over a
  // long run of spaces that is followed by something else; this is the same split in linear time.
  [TRAILING_SPACE]: "trailing-space",
};

/** The ASCII members of each category, in the placeholder classes (llama.cpp's k_ucat_map). */
const CATEGORY_CLASS: Record<string, string> = {
  N: "\\xD10-9",
  L: "\\xD2A-Za-z",
  Lu: "\\xD2A-Za-z",
  Ll: "\\xD2A-Za-z",
  Lt: "\\xD2A-Za-z",
  Lm: "\\xD2A-Za-z",
  Lo: "\\xD2A-Za-z",
  P: "\\xD3!-#%-*,-/:-;?-@\\[-\\]_\\{\\}",
  M: "\\xD4",
  S: "\\xD5\\$\\+<->\\^`\\|~",
};

/** Rewrite \p{X} into placeholder classes (unicode_regex_split's regex_expr_collapsed). */
function collapseRegex(src: string): string {
  let out = "";
  let inside = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === "[" && (i === 0 || src[i - 1] !== "\\")) {
      out += c;
      inside = true;
      continue;
    }
    if (inside && c === "]" && src[i - 1] !== "\\") {
      out += c;
      inside = false;
      continue;
    }
    if (c === "\\" && src[i + 1] === "p" && src[i + 2] === "{") {
      const close = src.indexOf("}", i + 3);
      const cls = close > 0 ? CATEGORY_CLASS[src.slice(i + 3, close)] : undefined;
      if (cls !== undefined) {
        out += inside ? cls : `[${cls}]`;
        i = close;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/** \s and \S as llama.cpp's std::wregex sees them: ASCII whitespace (others were replaced by \v). */
function wideRegex(src: string): string {
  let out = "";
  let inside = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === "\\") {
      const d = src[i + 1];
      if (d === "s") out += inside ? "\\t-\\r " : "[\\t-\\r ]";
      else if (d === "S" && !inside) out += "[^\\t-\\r ]";
      else out += c + (d ?? "");
      i++;
      continue;
    }
    if (c === "[") inside = true;
    else if (c === "]") inside = false;
    out += c;
  }
  return out;
}

const USES_CATEGORY = /\\p\{(?:N|L|P|M|S|Lu|Ll|Lt|Lm|Lo)\}/;

/** No lookaround, no ^ or $ outside a class, no \b or \B: a match only looks at its own characters. */
function isContextFree(src: string): boolean {
  let inside = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === "\\") {
      const d = src[i + 1];
      if (!inside && (d === "b" || d === "B")) return false;
      i++;
    } else if (inside) {
      if (c === "]") inside = false;
    } else if (c === "[") {
      inside = true;
      if (src[i + 1] === "^") i++;
    } else if (c === "$" || c === "^") {
      return false;
    } else if (c === "(" && src[i + 1] === "?" && src[i + 2] !== ":") {
      return false;
    }
  }
  return true;
}

function compileStep(src: string): Step {
  const custom = CUSTOM[src];
  if (custom !== undefined) return { kind: "custom", name: custom };
  const run = CLASS_RUN.exec(src);
  if (run !== null) {
    const cls = run[2]!;
    const collapsed = USES_CATEGORY.test(cls);
    const member = collapsed ? new RegExp(`^${collapseRegex(cls)}$`) : new RegExp(`^${wideRegex(cls)}$`, "u");
    return new ClassRun(run[1] !== undefined, run[3] !== undefined, member, collapsed);
  }
  if (USES_CATEGORY.test(src)) {
    // llama.cpp refuses a pattern that mixes categories with non-ASCII characters.
    assert(/^[\p{ASCII}]*$/u.test(src), `non-ASCII characters with \\p{..} in ${src}`);
    return { kind: "collapsed", re: new RegExp(collapseRegex(src), "g"), contextFree: isContextFree(src) };
  }
  return { kind: "wide", re: new RegExp(wideRegex(src), "gu"), contextFree: isContextFree(src) };
}

// ---------------------------------------------------------------------------------------------
// The splitter

const F_L = CptFlag.LETTER;
const F_N = CptFlag.NUMBER;
const F_M = CptFlag.ACCENT_MARK;
const F_WS = CptFlag.WHITESPACE;
const CR = 13;
const LF = 10;
const SQ = 0x27;
const NON_ASCII_WS = /[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/g;
const utf16le = new TextDecoder("utf-16le");

/** Growable list of fragment ends (code point indices). */
class Ends {
  a = new Int32Array(64);
  n = 0;
  push(v: number): void {
    if (this.n === this.a.length) {
      const b = new Int32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
}

/**
 * A compiled pre-tokenizer. `run` splits a text into words, leaving the code points in `buf` and
 * the words' end offsets (code point indices, ascending, the last equal to buf.n) in `ends`.
 * Not reentrant: one instance per codec, used synchronously.
 */
export class PreTokenizer {
  readonly config: BpePreConfig;
  readonly buf = new CodepointBuffer();
  ends = new Ends();
  private spare = new Ends();
  private readonly steps: Step[];
  private readonly needsCollapsed: boolean;
  private readonly needsWide: boolean;
  private flags = new Uint16Array(256);
  private mem = new Uint8Array(256);
  private collapsed = "";
  private wide = "";

  constructor(config: BpePreConfig) {
    this.config = config;
    this.steps = config.regexes.map(compileStep);
    this.needsCollapsed = this.steps.some((s) => s.kind === "collapsed");
    // NOTE: class-run steps read code points and flags directly; they need neither copy.
    this.needsWide = this.steps.some((s) => s.kind === "wide");
  }

  /** Split `text` (already free of lone surrogates) into words. */
  run(text: string): void {
    const buf = this.buf;
    buf.load(text);
    const n = buf.n;
    let cur = this.ends;
    let next = this.spare;
    cur.n = 0;
    if (n === 0) return;
    cur.push(n);
    if (this.flags.length < n) this.flags = new Uint16Array(Math.max(n, this.flags.length * 2));
    const flags = this.flags;
    const cps = buf.cps;
    for (let i = 0; i < n; i++) {
      const f = CPT_FLAGS[cps[i]!]!;
      flags[i] = f !== 0 ? f : cptFlags(cps[i]!);
    }
    if (this.needsCollapsed) this.collapsed = this.collapse(n);
    if (this.needsWide) this.wide = text.replace(NON_ASCII_WS, "\v");
    for (const step of this.steps) {
      next.n = 0;
      if (step.kind === "custom") {
        let start = 0;
        for (let k = 0; k < cur.n; k++) {
          const end = cur.a[k]!;
          this.splitCustom(step.name, start, end, next);
          start = end;
        }
      } else if (step.kind === "class-run") {
        this.splitClassRuns(step, cur, next);
      } else {
        this.splitAllRegex(step, cur, next);
      }
      const t = cur;
      cur = next;
      next = t;
    }
    this.ends = cur;
    this.spare = next;
    this.collapsed = "";
    this.wide = "";
  }

  /** Drop buffers grown past `keep` code points by a large input (they would otherwise stay). */
  shrink(keep = 1 << 20): void {
    if (this.flags.length > keep) this.flags = new Uint16Array(256);
    if (this.mem.length > keep) this.mem = new Uint8Array(256);
    if (this.ends.a.length > keep) this.ends = new Ends();
    if (this.spare.a.length > keep) this.spare = new Ends();
    this.buf.shrink(keep);
  }

  /** The words of `text` as strings (for tests and tools; lone surrogates become U+FFFD). */
  split(text: string): string[] {
    const clean = replaceLoneSurrogates(text);
    this.run(clean);
    const out: string[] = [];
    let start = 0;
    for (let k = 0; k < this.ends.n; k++) {
      const end = this.ends.a[k]!;
      out.push(clean.slice(this.buf.offset(start), this.buf.offset(end)));
      start = end;
    }
    return out;
  }

  private collapse(n: number): string {
    const cps = this.buf.cps;
    const flags = this.flags;
    const units = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const cp = cps[i]!;
      if (cp < 128) {
        units[i] = cp;
        continue;
      }
      const f = flags[i]!;
      if (f & F_WS) units[i] = 0x0b;
      else if (f & F_N) units[i] = 0xd1;
      else if (f & F_L) units[i] = 0xd2;
      else if (f & CptFlag.PUNCTUATION) units[i] = 0xd3;
      else if (f & F_M) units[i] = 0xd4;
      else if (f & CptFlag.SYMBOL) units[i] = 0xd5;
      else units[i] = 0xd0;
    }
    return utf16le.decode(units);
  }

  private splitCustom(name: Custom, ini: number, end: number, out: Ends): void {
    if (name === "gpt2") this.splitGpt2(ini, end, out);
    else if (name === "llama3") this.splitLlama3(ini, end, out, 3, false);
    else if (name === "qwen2") this.splitLlama3(ini, end, out, 1, false);
    else if (name === "qwen35") this.splitLlama3(ini, end, out, 1, true);
    else if (name === "newlines") this.splitNewlines(ini, end, out);
    else if (name === "trailing-space") this.splitTrailingSpace(ini, end, out);
    else this.splitDigitsMod3(ini, end, out);
  }

  /**
   * One regex over every fragment, as std::regex_iterator does: each match and each gap between
   * matches becomes a fragment.
   *
   * NOTE: a context-free regex (no lookaround, anchor or word boundary) is run on the whole string
   * instead of on each fragment cut out of it. A whole-string match that lies inside the fragment
   * is exactly the match the fragment alone would give (every path the engine tried before it
   * failed on a character inside the fragment or would fail at its end too); a match that starts
   * past the fragment means the rest of the fragment has none; only a match that straddles the
   * fragment's end sends that fragment to the slicing path. One exec then serves many fragments.
   */
  private splitAllRegex(step: RegexStep, cur: Ends, out: Ends): void {
    const re = step.re;
    const s = step.kind === "collapsed" ? this.collapsed : this.wide;
    const buf = this.buf;
    const cps = buf.cps;
    const byCp = step.kind === "collapsed" || !buf.astral;
    const NONE = Number.MAX_SAFE_INTEGER;
    // the first whole-string match at or after searchedFrom: [mIdx, mEnd)
    let searchedFrom = NONE;
    let mIdx = NONE;
    let mEnd = NONE;
    let start = 0;
    for (let k = 0; k < cur.n; k++) {
      const end = cur.a[k]!;
      const ini = start;
      start = end;
      const a16 = byCp ? ini : buf.offset(ini);
      const b16 = byCp ? end : buf.offset(end);
      if (!step.contextFree) {
        this.splitRegex(re, s, ini, end, a16, b16, byCp, out);
        continue;
      }
      let pos16 = a16; // UTF-16 cursor in s, and the code point index it stands for
      let posCp = ini;
      while (pos16 < b16) {
        if (searchedFrom > pos16 || mIdx < pos16) {
          re.lastIndex = pos16;
          const m = re.exec(s);
          mIdx = m === null ? NONE : m.index;
          mEnd = m === null ? NONE : m.index + m[0].length;
          searchedFrom = pos16;
        }
        if (mIdx >= b16) {
          out.push(end); // no match in the rest: one gap
          break;
        }
        if (mEnd > b16 || mEnd === mIdx) {
          this.splitRegex(re, s, posCp, end, pos16, b16, byCp, out);
          break;
        }
        if (mIdx > pos16) {
          if (byCp) posCp = mIdx;
          else while (pos16 < mIdx) pos16 += cps[posCp++]! > 0xffff ? 2 : 1;
          out.push(posCp);
        }
        if (byCp) posCp = mEnd;
        else while (pos16 < mEnd) pos16 += cps[posCp++]! > 0xffff ? 2 : 1;
        pos16 = mEnd;
        out.push(posCp);
      }
    }
  }

  /**
   * std::regex_iterator over one fragment. `s` is indexed by UTF-16 offsets [a16, b16) that
   * correspond to code points [ini, end) (the same numbers when `byCp`).
   */
  private splitRegex(
    re: RegExp,
    s: string,
    ini: number,
    end: number,
    a16: number,
    b16: number,
    byCp: boolean,
    out: Ends,
  ): void {
    const frag = a16 === 0 && b16 === s.length ? s : s.slice(a16, b16);
    const cps = this.buf.cps;
    // UTF-16 -> code point cursor (only moves forward)
    let cu = 0;
    let ccp = ini;
    re.lastIndex = 0;
    let prev = 0;
    for (let m = re.exec(frag); m !== null; m = re.exec(frag)) {
      const len = m[0].length;
      if (len === 0) {
        re.lastIndex++;
        continue;
      }
      if (m.index > prev) {
        if (byCp) out.push(ini + m.index);
        else {
          while (cu < m.index) cu += cps[ccp++]! > 0xffff ? 2 : 1;
          out.push(ccp);
        }
      }
      prev = m.index + len;
      if (byCp) out.push(ini + prev);
      else {
        while (cu < prev) cu += cps[ccp++]! > 0xffff ? 2 : 1;
        out.push(ccp);
      }
    }
    if (prev < frag.length) out.push(end);
  }

  /** `\s?C+` (or `C+`, `C`) over every fragment: matches and the gaps between them. */
  private splitClassRuns(step: ClassRun, cur: Ends, out: Ends): void {
    const n = this.buf.n;
    if (this.mem.length < n) this.mem = new Uint8Array(Math.max(n, this.mem.length * 2));
    const mem = this.mem;
    const flags = this.flags;
    step.fill(this.buf.cps, flags, n, mem);
    const { space, plus } = step;
    let start = 0;
    for (let k = 0; k < cur.n; k++) {
      const end = cur.a[k]!;
      let p = start;
      let prevEnd = start;
      start = end;
      while (p < end) {
        let q: number;
        if (space && flags[p]! & F_WS && p + 1 < end && mem[p + 1] === 1) q = p + 2;
        else if (mem[p] === 1) q = p + 1;
        else {
          p++;
          continue;
        }
        if (plus) while (q < end && mem[q] === 1) q++;
        if (p > prevEnd) out.push(p);
        out.push(q);
        prevEnd = q;
        p = q;
      }
      if (prevEnd < end) out.push(end);
    }
  }

  /** unicode_regex_split_custom_gpt2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
  private splitGpt2(ini: number, end: number, out: Ends): void {
    const cps = this.buf.cps;
    const flags = this.flags;
    let pos = ini;
    while (pos < end) {
      const cpt = cps[pos]!;
      if (cpt === SQ && pos + 1 < end) {
        const c1 = cps[pos + 1]!;
        if (c1 === 0x73 || c1 === 0x74 || c1 === 0x6d || c1 === 0x64) {
          pos += 2;
          out.push(pos);
          continue;
        }
        if (pos + 2 < end) {
          const c2 = cps[pos + 2]!;
          if ((c1 === 0x72 && c2 === 0x65) || (c1 === 0x76 && c2 === 0x65) || (c1 === 0x6c && c2 === 0x6c)) {
            pos += 3;
            out.push(pos);
            continue;
          }
        }
      }
      const space = cpt === 0x20 ? 1 : 0;
      let f2 = space ? (pos + 1 < end ? flags[pos + 1]! : 0) : flags[pos]!;
      if (f2 & F_L) {
        pos += space;
        while (f2 & F_L) f2 = ++pos < end ? flags[pos]! : 0;
        out.push(pos);
        continue;
      }
      if (f2 & F_N) {
        pos += space;
        while (f2 & F_N) f2 = ++pos < end ? flags[pos]! : 0;
        out.push(pos);
        continue;
      }
      if (!(f2 & (F_WS | F_L | F_N)) && f2 !== 0) {
        pos += space;
        while (!(f2 & (F_WS | F_L | F_N)) && f2 !== 0) f2 = ++pos < end ? flags[pos]! : 0;
        out.push(pos);
        continue;
      }
      let nws = 0;
      while ((pos + nws < end ? flags[pos + nws]! : 0) & F_WS) nws++;
      if (nws > 1 && pos + nws < end) {
        pos += nws - 1;
        out.push(pos);
        continue;
      }
      if (nws > 0) {
        pos += nws;
        out.push(pos);
        continue;
      }
      out.push(++pos);
    }
  }

  /**
   * unicode_regex_split_custom_llama3 (digits = 3), _qwen2 (digits = 1) and _qwen35 (digits = 1,
   * marks count as letters):
   * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
   */
  private splitLlama3(ini: number, end: number, out: Ends, digits: number, marks: boolean): void {
    const cps = this.buf.cps;
    const flags = this.flags;
    const LET = marks ? F_L | F_M : F_L;
    let pos = ini;
    while (pos < end) {
      const cpt = cps[pos]!;
      const f = flags[pos]!;
      if (cpt === SQ && pos + 1 < end) {
        const c1 = toLowerCpt(cps[pos + 1]!);
        if (c1 === 0x73 || c1 === 0x74 || c1 === 0x6d || c1 === 0x64) {
          pos += 2;
          out.push(pos);
          continue;
        }
        if (pos + 2 < end) {
          const c2 = toLowerCpt(cps[pos + 2]!);
          if ((c1 === 0x72 && c2 === 0x65) || (c1 === 0x76 && c2 === 0x65) || (c1 === 0x6c && c2 === 0x6c)) {
            pos += 3;
            out.push(pos);
            continue;
          }
        }
      }
      // [^\r\n\p{L}\p{N}]?\p{L}+
      if (!(cpt === CR || cpt === LF || f & F_N)) {
        if (f & LET || (pos + 1 < end ? flags[pos + 1]! : 0) & LET) {
          pos++;
          while ((pos < end ? flags[pos]! : 0) & LET) pos++;
          out.push(pos);
          continue;
        }
      }
      // \p{N}{1,3} or \p{N}
      if (f & F_N) {
        if (digits === 1) {
          out.push(++pos);
          continue;
        }
        let from = pos;
        while ((pos < end ? flags[pos]! : 0) & F_N) {
          if (++pos - from >= digits) {
            out.push(pos);
            from = pos;
          }
        }
        if (pos > from) out.push(pos);
        continue;
      }
      // <space>?[^\s\p{L}\p{N}]+[\r\n]*
      const space = cpt === 0x20 ? 1 : 0;
      let f2 = space ? (pos + 1 < end ? flags[pos + 1]! : 0) : f;
      if (!(f2 & (F_WS | LET | F_N)) && f !== 0) {
        pos += space;
        while (!(f2 & (F_WS | LET | F_N)) && f2 !== 0) f2 = ++pos < end ? flags[pos]! : 0;
        let c2 = pos < end ? cps[pos]! : -1;
        while (c2 === CR || c2 === LF) c2 = ++pos < end ? cps[pos]! : -1;
        out.push(pos);
        continue;
      }
      let nws = 0;
      let lastRN = -1;
      while ((pos + nws < end ? flags[pos + nws]! : 0) & F_WS) {
        const c2 = cps[pos + nws]!;
        if (c2 === CR || c2 === LF) lastRN = pos + nws + 1;
        nws++;
      }
      // \s*[\r\n]+
      if (lastRN >= 0) {
        pos = lastRN;
        out.push(pos);
        continue;
      }
      // \s+(?!\S)
      if (nws > 1 && pos + nws < end) {
        pos += nws - 1;
        out.push(pos);
        continue;
      }
      // \s+
      if (nws > 0) {
        pos += nws;
        out.push(pos);
        continue;
      }
      out.push(++pos);
    }
  }

  /** unicode_regex_split_custom_newlines: [^\n]+|[\n]+ */
  private splitNewlines(ini: number, end: number, out: Ends): void {
    const cps = this.buf.cps;
    let pos = ini;
    while (pos < end) {
      const nl = cps[pos] === LF;
      while (pos < end && (cps[pos] === LF) === nl) pos++;
      out.push(pos);
    }
  }

  /** \s+$ on one fragment: the trailing whitespace run, and the text before it. */
  private splitTrailingSpace(ini: number, end: number, out: Ends): void {
    const flags = this.flags;
    let p = end;
    while (p > ini && flags[p - 1]! & F_WS) p--;
    if (p > ini && p < end) out.push(p);
    out.push(end);
  }

  /**
   * unicode_regex_split_custom_afmoe: each run of digits is cut into groups of three from the
   * right. NOTE: as in llama.cpp, the text before a run is not a fragment of its own; it goes with
   * the run's first group.
   */
  private splitDigitsMod3(ini: number, end: number, out: Ends): void {
    const flags = this.flags;
    let pos = ini;
    let prevEnd = ini;
    while (pos < end) {
      if (flags[pos]! & F_N) {
        const start = pos;
        while (pos < end && flags[pos]! & F_N) pos++;
        const count = pos - start;
        let cur = start;
        const rem = count % 3;
        if (rem > 0) {
          cur += rem;
          out.push(cur);
          prevEnd = cur;
        }
        while (cur < start + count) {
          cur += 3;
          out.push(cur);
          prevEnd = cur;
        }
        continue;
      }
      pos++;
    }
    if (prevEnd < end) out.push(end);
  }
}
