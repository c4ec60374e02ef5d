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
 * Speed: a trie of the token texts (edges in an open-addressing table) finds the longest piece at
 * each position; a bounded cache (word-cache.ts) keeps the ids of recent words.
 *
 * Not here: [CLS]/[SEP] and special-token splitting (tokenizer.ts), BPE (bpe.ts).
 */
import { OwlError } from "../util/errors.ts";
import { type ModelCodec, TokenAttr, type Vocab } from "./types.ts";
import { CPT_FLAGS, CptFlag, cptFlags, nfdFirstCpt, toLowerCpt, utf8 } from "./unicode.ts";
import { hashCodepoints, WordCache } from "./word-cache.ts";

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

/** Trie edges: (node, code point) -> child node, open addressing over Int32Arrays. */
class TrieEdges {
  private keyA: Int32Array;
  private keyB: Int32Array;
  private val: Int32Array;
  private mask: number;
  private count = 0;

  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.keyA = new Int32Array(size).fill(-1);
    this.keyB = new Int32Array(size);
    this.val = new Int32Array(size);
    this.mask = size - 1;
  }

  private slot(a: number, b: number): number {
    let i = (Math.imul(Math.imul(a, 0x9e3779b1) ^ b, 0x85ebca77) >>> 0) & this.mask;
    while (this.keyA[i] !== -1 && (this.keyA[i] !== a || this.keyB[i] !== b)) i = (i + 1) & this.mask;
    return i;
  }

  /** The child, or -1. */
  get(a: number, b: number): number {
    const i = this.slot(a, b);
    return this.keyA[i] === -1 ? -1 : this.val[i]!;
  }

  set(a: number, b: number, v: number): void {
    if ((this.count + 1) * 2 > this.keyA.length) this.grow();
    const i = this.slot(a, b);
    if (this.keyA[i] === -1) this.count++;
    this.keyA[i] = a;
    this.keyB[i] = b;
    this.val[i] = v;
  }

  private grow(): void {
    const { keyA, keyB, val } = this;
    this.keyA = new Int32Array(keyA.length * 2).fill(-1);
    this.keyB = new Int32Array(keyA.length * 2);
    this.val = new Int32Array(keyA.length * 2);
    this.mask = keyA.length * 2 - 1;
    this.count = 0;
    for (let i = 0; i < keyA.length; i++) if (keyA[i] !== -1) this.set(keyA[i]!, keyB[i]!, val[i]!);
  }
}

/**
 * The words of `text` after llama.cpp's WPM preprocessing, as code points: `cps` holds them back to
 * back and `ends[k]` is where word k ends.
 */
export function wpmPreprocess(
  text: string,
  lowercase: boolean,
  stripAccents: boolean,
): { cps: Int32Array; ends: number[] } {
  const cps = new Int32Array(text.length);
  const ends: number[] = [];
  let n = 0;
  let wordStart = 0;
  const len = text.length;
  for (let i = 0; i < len; i++) {
    let cp = text.charCodeAt(i);
    if (cp < 0x80) {
      // ASCII: no decomposition, no marks; lowercase is A-Z only
      const f = CPT_FLAGS[cp]!;
      if (f & CptFlag.WHITESPACE) {
        if (n > wordStart) {
          ends.push(n);
          wordStart = n;
        }
      } else if (f & (CptFlag.PUNCTUATION | CptFlag.SYMBOL)) {
        if (n > wordStart) ends.push(n);
        cps[n++] = cp;
        ends.push(n);
        wordStart = n;
      } else if (cp !== 0 && !(f & CptFlag.CONTROL)) {
        cps[n++] = lowercase && cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp;
      }
      continue;
    }
    if (cp >= 0xd800 && cp <= 0xdfff) {
      const d = i + 1 < len ? text.charCodeAt(i + 1) : 0;
      if (cp <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        cp = ((cp - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
        i++;
      } else {
        continue; // a lone surrogate reads as U+FFFD, which is dropped
      }
    }
    if (stripAccents) cp = nfdFirstCpt(cp);
    const f = cptFlags(cp);
    if (f & CptFlag.WHITESPACE) {
      if (n > wordStart) {
        ends.push(n);
        wordStart = n;
      }
      continue;
    }
    if (cp === 0 || cp === 0xfffd || f & CptFlag.CONTROL) continue;
    if (stripAccents && f & CptFlag.ACCENT_MARK) continue;
    const out = lowercase ? toLowerCpt(cp) : cp;
    if (f & CptFlag.PUNCTUATION || (cp < 0x7f && f & CptFlag.SYMBOL) || isChineseCpt(cp)) {
      if (n > wordStart) ends.push(n);
      cps[n++] = out;
      ends.push(n);
      wordStart = n;
    } else {
      cps[n++] = out;
    }
  }
  if (n > wordStart) ends.push(n);
  return { cps, ends };
}

/** Build a ModelCodec for a "bert" (WordPiece) vocabulary. */
export function createWpmCodec(vocab: Vocab, options: WpmCodecOptions = {}): ModelCodec {
  const lowercase = options.lowercase ?? vocab.lowercase ?? true;
  const stripAccents = options.stripAccents ?? vocab.stripAccents ?? lowercase;
  const tokens = vocab.tokens;
  const nVocab = tokens.length;

  // A trie of every token text over code points.
  const trie = new TrieEdges(vocab.tokenToId.size * 4);
  const tokenAt: number[] = [-1];
  for (const [text, id] of vocab.tokenToId) {
    let node = 0;
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      let c = trie.get(node, cp);
      if (c < 0) {
        c = tokenAt.length;
        tokenAt.push(-1);
        trie.set(node, cp, c);
      }
      node = c;
    }
    tokenAt[node] = id;
  }
  const cache = new WordCache(16384);

  /** Greedy longest-match-first over "▁" + word; false when some position has no piece. */
  const encodeWord = (cps: Int32Array, a: number, b: number, out: number[]): boolean => {
    // position a - 1 stands for the phantom space
    let i = a - 1;
    while (i < b) {
      let node = 0;
      let bestEnd = -2;
      let bestId = -1;
      for (let j = i; j < b; j++) {
        node = trie.get(node, j < a ? PHANTOM_SPACE : cps[j]!);
        if (node < 0) break;
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
        const h = end - start <= 64 ? hashCodepoints(cps, start, end) : 0;
        if (h === 0 || !cache.get(h, cps, start, end, out)) {
          const mark = out.length;
          if (!encodeWord(cps, start, end, out)) {
            out.length = mark;
            // NOTE: llama.cpp pushes LLAMA_TOKEN_NULL when the vocabulary has no [UNK]; owl pushes nothing.
            if (vocab.unk !== undefined) out.push(vocab.unk);
          }
          if (h !== 0) cache.set(h, cps, start, end, out, mark, out.length - mark);
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
