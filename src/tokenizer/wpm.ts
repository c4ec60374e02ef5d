/**
 * WordPiece (tokenizer.ggml.model "bert"), as llama.cpp's llm_tokenizer_wpm_session
 * (src/llama-vocab.cpp):
 * - preprocess: with strip_accents, each code point becomes the first code point of its canonical
 *   decomposition (llama.cpp's unicode_cpts_normalize_nfd) and accent marks (\p{M}) are dropped;
 *   whitespace ends a word; NUL, U+FFFD and control characters are dropped; with lowercase, the
 *   simple lowercase mapping is applied; punctuation, ASCII symbols and CJK ideographs are words
 *   of their own;
 * - each word, with a "▁" prepended (llama.cpp's GGUF spells word-initial pieces "▁x" and
 *   continuation pieces without HF's "##"), is cut greedily into the longest pieces in the
 *   vocabulary, left to right; a word with a position that no piece matches becomes [UNK] whole.
 * Both normalizer options default to true (llama.cpp's normalizer_options; strip_accents follows
 * lowercase unless the GGUF says otherwise), read from the Vocab when vocab.ts sets them.
 * `pieceBytes` follows token_to_piece for WPM: "▁" becomes a space, so pieces of a new word start
 * with one; continuation pieces have none.
 *
 * Not here: [CLS]/[SEP] and special-token splitting (tokenizer.ts), BPE (bpe.ts).
 */
import { OwlError } from "../util/errors.ts";
import { type ModelCodec, TokenAttr, type Vocab } from "./types.ts";
import { CptFlag, cptFlags, nfdFirstCpt, replaceLoneSurrogates, toLowerCpt, utf8 } from "./unicode.ts";

export interface WpmCodecOptions {
  /** Lowercase the text (tokenizer.ggml.normalizer.lowercase). Default: vocab.lowercase ?? true. */
  lowercase?: boolean;
  /** Drop accents (tokenizer.ggml.normalizer.strip_accents). Default: vocab.stripAccents ?? lowercase. */
  stripAccents?: boolean;
}

/** llm_tokenizer_wpm_session::is_chinese_char (the ranges of HF's BertPreTokenizer). */
export function isChineseCpt(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) || // NOTE: 0x2B820 in Unicode; 0x2B920 in HF and llama.cpp
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

const PHANTOM_SPACE = 0x2581; // "▁"

/**
 * The words of `text` after llama.cpp's WPM preprocessing, as code points: `cps` holds them back to
 * back and `ends[k]` is where word k ends.
 */
export function wpmPreprocess(
  text: string,
  lowercase: boolean,
  stripAccents: boolean,
): { cps: Int32Array; ends: number[] } {
  const clean = replaceLoneSurrogates(text);
  const cps = new Int32Array(clean.length);
  const ends: number[] = [];
  let n = 0;
  let wordStart = 0;
  const finish = (): void => {
    if (n > wordStart) {
      ends.push(n);
      wordStart = n;
    }
  };
  for (let i = 0; i < clean.length; i++) {
    let cp = clean.codePointAt(i)!;
    if (cp > 0xffff) i++;
    if (stripAccents) cp = nfdFirstCpt(cp);
    const f = cptFlags(cp);
    if (f & CptFlag.WHITESPACE) {
      finish();
      continue;
    }
    if (cp === 0 || cp === 0xfffd || f & CptFlag.CONTROL) continue;
    if (stripAccents && f & CptFlag.ACCENT_MARK) continue;
    const out = lowercase ? toLowerCpt(cp) : cp;
    if (f & CptFlag.PUNCTUATION || (cp < 0x7f && f & CptFlag.SYMBOL) || isChineseCpt(cp)) {
      finish();
      cps[n++] = out;
      finish();
    } else {
      cps[n++] = out;
    }
  }
  finish();
  return { cps, ends };
}

/** Build a ModelCodec for a "bert" (WordPiece) vocabulary. */
export function createWpmCodec(vocab: Vocab, options: WpmCodecOptions = {}): ModelCodec {
  const lowercase = options.lowercase ?? vocab.lowercase ?? true;
  const stripAccents = options.stripAccents ?? vocab.stripAccents ?? lowercase;
  const tokens = vocab.tokens;
  const nVocab = tokens.length;

  // A trie of every token text over code points: child of (node, cp) at key node * 0x110000 + cp.
  const child = new Map<number, number>();
  const tokenAt: number[] = [-1];
  for (const [text, id] of vocab.tokenToId) {
    let node = 0;
    for (const ch of text) {
      const key = node * 0x110000 + ch.codePointAt(0)!;
      let c = child.get(key);
      if (c === undefined) {
        c = tokenAt.length;
        tokenAt.push(-1);
        child.set(key, c);
      }
      node = c;
    }
    tokenAt[node] = id;
  }

  /** Greedy longest-match-first over "▁" + word; false when some position has no piece. */
  const encodeWord = (cps: Int32Array, a: number, b: number, out: number[]): boolean => {
    // position -1 stands for the phantom space
    let i = a - 1;
    while (i < b) {
      let node = 0;
      let bestEnd = -2;
      let bestId = -1;
      for (let j = i; j < b; j++) {
        const cp = j < a ? PHANTOM_SPACE : cps[j]!;
        const c = child.get(node * 0x110000 + cp);
        if (c === undefined) break;
        node = c;
        const id = tokenAt[node]!;
        if (id >= 0) {
          bestEnd = j + 1;
          bestId = id;
        }
      }
      if (bestId < 0) return false;
      out.push(bestId);
      i = bestEnd;
    }
    return true;
  };

  return {
    encodeFragment(text: string, out: number[]): void {
      const { cps, ends } = wpmPreprocess(text, lowercase, stripAccents);
      let start = 0;
      for (const end of ends) {
        const mark = out.length;
        if (!encodeWord(cps, start, end, out)) {
          out.length = mark;
          // NOTE: llama.cpp pushes LLAMA_TOKEN_NULL when the vocabulary has no [UNK]; owl pushes nothing.
          if (vocab.unk !== undefined) out.push(vocab.unk);
        }
        start = end;
      }
    },

    pieceBytes(id: number): Uint8Array {
      if (!Number.isInteger(id) || id < 0 || id >= nVocab) {
        throw new OwlError(
          "ERR_TOKEN_OUT_OF_RANGE",
          `token id ${id} is outside the vocabulary (0..${nVocab - 1})`,
          {
            details: { id, nVocab },
          },
        );
      }
      const attr = vocab.attrs[id]!;
      const text = tokens[id]!;
      if (attr & (TokenAttr.UNKNOWN | TokenAttr.CONTROL | TokenAttr.USER_DEFINED)) return utf8(text);
      if (attr & TokenAttr.NORMAL) return utf8(text.replaceAll("\u2581", " "));
      return new Uint8Array(0);
    },
  };
}
