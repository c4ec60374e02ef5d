/**
 * Byte-level BPE (tokenizer.ggml.model "gpt2"), as llama.cpp's llm_tokenizer_bpe_session::tokenize
 * (src/llama-vocab.cpp): pre-tokenize the fragment into words (pre-tokenize.ts), map each word's
 * UTF-8 bytes through GPT-2's bytes_to_unicode, merge adjacent symbols lowest merge rank first
 * (leftmost first among equal ranks), and look the final symbols up in the vocabulary. A symbol
 * that is not a token falls back to one token per byte, where such a token exists (llama.cpp looks
 * up the single byte as a string; for byte-level vocabularies only ASCII bytes can match; for
 * vocabularies without byte encoding it looks up "<0xXX>"). Vocabularies with ignore_merges
 * (llama3, tekken, ...) take a word that is itself a token whole. `pieceBytes` follows
 * llama_vocab::token_to_piece for BPE.
 *
 * Speed: merges live in an open-addressing hash table keyed by the two symbols' ids; a word's ids
 * are cached by its code points (word-cache.ts, bounded); short words merge by rescanning an
 * array, long ones by sweeping per-rank lists of pairs (bpe-merge.ts), so a 10 MB word of one
 * repeated letter takes seconds, not minutes.
 *
 * Not here: special-token splitting, BOS/EOS and detokenizer rules (tokenizer.ts), WordPiece (wpm.ts).
 */
import { OwlError } from "../util/errors.ts";
import { mergeLong, mergeShort, NO_PAIR, type PairTable, ShortScratch } from "./bpe-merge.ts";
import { bpePreConfig, PreTokenizer } from "./pre-tokenize.ts";
import { type ModelCodec, TokenAttr, type Vocab } from "./types.ts";
import { BYTE_TO_UNICODE, putUtf8, replaceLoneSurrogates, UNICODE_TO_BYTE, utf8 } from "./unicode.ts";
import { hashCodepoints, WordCache } from "./word-cache.ts";

export interface BpeCodecOptions {
  /** Words kept per generation of the word cache (two generations). Default 16384; 0 disables it. */
  cacheSize?: number;
  /** Words of more symbols than this merge with the long-word algorithm (tests lower it). Default 48. */
  smallWordLimit?: number;
}

export interface BpeCodec extends ModelCodec {
  /** The pre-tokenizer this codec runs (for tests and tools). */
  readonly preTokenizer: PreTokenizer;
}

/** Words with at most this many initial symbols merge by array rescans (bpe-merge.ts). */
const SMALL_WORD = 48;
/** Scratch grown past this many entries by one huge input is dropped afterwards. */
const SHRINK_ABOVE = 1 << 20;
/** Words longer than this (code points) are not cached. */
const MAX_CACHED_WORD = 64;

/** Merge table: (left id, right id) -> rank and merged id, open addressing with linear probing. */
class MergeTable implements PairTable {
  private readonly keyA: Int32Array;
  private readonly keyB: Int32Array;
  readonly rank: Int32Array;
  readonly merged: Int32Array;
  private readonly mask: number;
  private readonly shift: number;

  constructor(capacityHint: number) {
    let bits = 4;
    while (1 << bits < capacityHint * 2) bits++;
    const cap = 1 << bits;
    this.keyA = new Int32Array(cap).fill(NO_PAIR);
    this.keyB = new Int32Array(cap);
    this.rank = new Int32Array(cap);
    this.merged = new Int32Array(cap);
    this.mask = cap - 1;
    this.shift = 32 - bits;
  }

  private hash(a: number, b: number): number {
    return Math.imul(Math.imul(a, 0x9e3779b1) ^ b, 0x85ebca77) >>> this.shift;
  }

  /** Slot of the pair, or NO_PAIR. */
  find(a: number, b: number): number {
    const keyA = this.keyA;
    const keyB = this.keyB;
    for (let i = this.hash(a, b); ; i = (i + 1) & this.mask) {
      const k = keyA[i]!;
      if (k === NO_PAIR) return NO_PAIR;
      if (k === a && keyB[i] === b) return i;
    }
  }

  /** Insert unless present (llama.cpp's bpe_ranks.emplace keeps the first, lowest rank). */
  add(a: number, b: number, rank: number, merged: number): void {
    for (let i = this.hash(a, b); ; i = (i + 1) & this.mask) {
      const k = this.keyA[i]!;
      if (k === NO_PAIR) {
        this.keyA[i] = a;
        this.keyB[i] = b;
        this.rank[i] = rank;
        this.merged[i] = merged;
        return;
      }
      if (k === a && this.keyB[i] === b) return;
    }
  }
}

/** Build a ModelCodec for a "gpt2" (byte-level BPE) vocabulary. */
export function createBpeCodec(vocab: Vocab, options: BpeCodecOptions = {}): BpeCodec {
  const config = bpePreConfig(vocab.pre);
  const pre = new PreTokenizer(config);
  const ignoreMerges = vocab.ignoreMerges ?? config.ignoreMerges;
  const escapeWhitespaces = vocab.escapeWhitespaces ?? false;
  const byteEncode = config.byteEncode;
  const isGemma4 = config.type === "gemma4";
  const tokens = vocab.tokens;
  const tokenToId = vocab.tokenToId;
  const nVocab = tokens.length;
  const cacheSize = options.cacheSize ?? 16384;

  // ---- symbols: vocabulary ids, plus ids >= nVocab for strings that are not tokens ----
  const extraText: string[] = [];
  const extraId = new Map<string, number>();
  const intern = (s: string): number => {
    const id = tokenToId.get(s);
    if (id !== undefined) return id;
    let x = extraId.get(s);
    if (x === undefined) {
      x = nVocab + extraText.length;
      extraText.push(s);
      extraId.set(s, x);
    }
    return x;
  };

  const table = new MergeTable(vocab.merges.length);
  for (let r = 0; r < vocab.merges.length; r++) {
    const m = vocab.merges[r]!;
    const sp = m.indexOf(" ", 1);
    if (sp < 0) continue;
    const a = m.slice(0, sp);
    const b = m.slice(sp + 1);
    table.add(intern(a), intern(b), r, intern(a + b));
  }

  // Initial symbols: one per byte (byte-level), or one per code point (raw UTF-8 vocabularies).
  const byteSymbol = new Int32Array(256);
  for (let b = 0; b < 256; b++) byteSymbol[b] = intern(String.fromCharCode(BYTE_TO_UNICODE[b]!));
  const cpSymbol = new Map<number, number>();
  const symbolOfCp = (cp: number): number => {
    let s = cpSymbol.get(cp);
    if (s === undefined) {
      s = intern(String.fromCodePoint(cp));
      cpSymbol.set(cp, s);
    }
    return s;
  };
  const hexByteToken = (b: number): number | undefined =>
    tokenToId.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);

  // ---- scratch ----
  let bytes = new Uint8Array(256);
  let sym = new Int32Array(256);
  const smallWord = options.smallWordLimit ?? SMALL_WORD;
  const scratch = new ShortScratch(smallWord);
  const cache = cacheSize > 0 ? new WordCache(cacheSize) : undefined;

  /** Emit a final symbol: its token, or the byte fallback of llm_tokenizer_bpe_session::tokenize. */
  const emit = (id: number, out: number[]): void => {
    if (id < nVocab) {
      out.push(id);
      return;
    }
    for (const b of utf8(extraText[id - nVocab]!)) {
      const t = byteEncode ? (b < 0x80 ? tokenToId.get(String.fromCharCode(b)) : undefined) : hexByteToken(b);
      if (t !== undefined) out.push(t);
    }
  };

  /** Tokenize one pre-tokenized word (code points cps[a..b) of `word`) into out. */
  const encodeWord = (cps: Int32Array, a: number, b: number, word: string, out: number[]): void => {
    let n = 0;
    if (byteEncode) {
      if (bytes.length < (b - a) * 4) bytes = new Uint8Array((b - a) * 4);
      let o = 0;
      for (let k = a; k < b; k++) o = putUtf8(bytes, o, cps[k]!);
      if (ignoreMerges) {
        let enc = "";
        for (let k = 0; k < o; k++) enc += String.fromCharCode(BYTE_TO_UNICODE[bytes[k]!]!);
        const id = tokenToId.get(enc);
        if (id !== undefined) {
          out.push(id);
          return;
        }
      }
      if (sym.length < o) sym = new Int32Array(o);
      for (let k = 0; k < o; k++) sym[k] = byteSymbol[bytes[k]!]!;
      n = o;
    } else {
      if ((ignoreMerges || (isGemma4 && /^\n+$/.test(word))) && tokenToId.has(word)) {
        out.push(tokenToId.get(word)!);
        return;
      }
      if (sym.length < b - a) sym = new Int32Array(b - a);
      for (let k = a; k < b; k++) sym[n++] = symbolOfCp(cps[k]!);
    }
    if (n <= smallWord) {
      n = mergeShort(table, sym, n, scratch);
      for (let i = 0; i < n; i++) emit(sym[i]!, out);
    } else {
      const next = mergeLong(table, sym, n);
      for (let i = 0; i !== NO_PAIR; i = next[i]!) emit(sym[i]!, out);
    }
  };

  const encodeFragment = (text: string, out: number[]): void => {
    if (text.length === 0) return;
    let clean = escapeWhitespaces ? text.replaceAll(" ", "\u2581") : text;
    pre.run(clean);
    if (pre.buf.loneSurrogates) {
      clean = replaceLoneSurrogates(clean);
      pre.run(clean);
    }
    const buf = pre.buf;
    const cps = buf.cps;
    const ends = pre.ends;
    let start = 0;
    for (let k = 0; k < ends.n; k++) {
      const end = ends.a[k]!;
      if (cache !== undefined && end - start <= MAX_CACHED_WORD) {
        const h = hashCodepoints(cps, start, end);
        if (!cache.get(h, cps, start, end, out)) {
          const mark = out.length;
          encodeWord(cps, start, end, byteEncode ? "" : clean.slice(buf.offset(start), buf.offset(end)), out);
          cache.set(h, cps, start, end, out, mark, out.length - mark);
        }
      } else {
        encodeWord(cps, start, end, byteEncode ? "" : clean.slice(buf.offset(start), buf.offset(end)), out);
      }
      start = end;
    }
    if (buf.n > SHRINK_ABOVE) {
      pre.shrink(SHRINK_ABOVE);
      if (bytes.length > SHRINK_ABOVE) bytes = new Uint8Array(256);
      if (sym.length > SHRINK_ABOVE) sym = new Int32Array(256);
    }
  };

  // ---- decoding: llama_vocab::impl::token_to_piece, BPE branch ----
  const pieces: (Uint8Array | undefined)[] = new Array(nVocab);
  const EMPTY = new Uint8Array(0);
  const piece = (id: number): Uint8Array => {
    const text = tokens[id]!;
    const attr = vocab.attrs[id]!;
    if (attr & (TokenAttr.UNKNOWN | TokenAttr.CONTROL | TokenAttr.USER_DEFINED)) return utf8(text);
    if (attr & TokenAttr.NORMAL) {
      if (escapeWhitespaces) return utf8(text.replaceAll("\u2581", " "));
      return decodeByteLevel(text);
    }
    if (attr & TokenAttr.BYTE) return Uint8Array.of(Number.parseInt(text.slice(3, 5), 16) || 0);
    return EMPTY;
  };

  return {
    preTokenizer: pre,
    encodeFragment,
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
      let p = pieces[id];
      if (p === undefined) {
        p = piece(id);
        pieces[id] = p;
      }
      return p;
    },
  };
}

/**
 * llama_decode_text: map each character of a byte-level token back to its byte. A character that
 * is not in the map becomes "[UNK_BYTE_0x<its UTF-8 in hex><the token text>]", as in llama.cpp.
 */
export function decodeByteLevel(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  let n = 0;
  let tail: number[] | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const b = c < UNICODE_TO_BYTE.length ? UNICODE_TO_BYTE[c]! : -1;
    if (b >= 0 && tail === undefined) {
      out[n++] = b;
      continue;
    }
    tail ??= Array.from(out.subarray(0, n));
    if (b >= 0) {
      tail.push(b);
      continue;
    }
    const cp = text.codePointAt(i)!;
    if (cp > 0xffff) i++;
    const hex = Array.from(utf8(String.fromCodePoint(cp)), (x) => x.toString(16).padStart(2, "0")).join("");
    tail.push(...utf8(`[UNK_BYTE_0x${hex}${text}]`));
  }
  return tail === undefined ? out.subarray(0, n) : Uint8Array.from(tail);
}
