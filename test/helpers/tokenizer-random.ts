/**
 * Helpers for the BPE and WordPiece tests: seeded random text mixing scripts, emoji, whitespace
 * and contractions; a plain string-based BPE merge loop (llm_tokenizer_bpe_session's order, written
 * the obvious way) to check bpe.ts against; the user-defined-token split llama.cpp does before the
 * codec (parse_special = false); and node-llama-cpp's tokenizer on a vocab-only GGUF, when its
 * prebuilt binary loads here.
 */
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel } from "node-llama-cpp";
import { SpecialSplitter } from "../../src/tokenizer/special-split.ts";
import type { ModelCodec, Vocab } from "../../src/tokenizer/types.ts";

/** A small deterministic generator (LCG); `next()` in [0, 1). */
export class Rng {
  constructor(private seed: number) {}
  next(): number {
    this.seed = (Math.imul(this.seed, 1103515245) + 12345) >>> 0;
    return this.seed / 2 ** 32;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** Pieces that exercise every pre-tokenizer branch (no lone surrogates). */
export const PIECES: readonly string[] = [
  "hello",
  "World",
  "I'm",
  "'S",
  "'ll",
  "'LL",
  "'re",
  "'Ve",
  "'d",
  "don't",
  "3",
  "42",
  "12345",
  "1,234.5",
  "٣٤",
  "½",
  "Ⅻ",
  " ",
  "  ",
  "   ",
  "\t",
  "\n",
  "\r\n",
  "\n\n",
  " \n ",
  "\u00a0",
  "\u3000",
  "\u0085",
  "\u2028",
  "\u200b",
  "\ufeff",
  ".",
  "...",
  "!",
  "?!",
  "(",
  ")",
  "$",
  "+",
  "<=>",
  "^",
  "~",
  "|",
  "`",
  "_",
  "-",
  "//",
  "#",
  "нещо",
  "Български",
  "Ελληνικά",
  "ΣΊΣΥΦΟΣ",
  "我想在",
  "工作",
  "한국어",
  "日本語のテキスト",
  "ｶﾀｶﾅ",
  "កាន់តែពិសេស",
  "हिन्दी",
  "العربية",
  "Cửa",
  "Việt",
  "e\u0301",
  "Äpfel",
  "straße",
  "İstanbul",
  "ǅ",
  "ﬁ",
  "🦙",
  "🚀",
  "😶‍🌫️",
  "👍🏽",
  "✅",
  "©",
  "€",
  "𝔘𝔫𝔦",
  "𐐀",
  "\u{e000}",
  "\u{0378}",
  "\x00",
  "\x07",
  "\x7f",
  "aaaa",
  "MixedCASEWord",
  "snake_case",
  "foo.bar()",
  "<|endoftext|>",
  "[CLS]",
  "##ing",
  "▁",
  "Ġ",
  "õ",
];

/** Random text of 1..maxPieces pieces from PIECES, sometimes separated by a space. */
export function randomText(rng: Rng, maxPieces = 12): string {
  let s = "";
  const n = 1 + rng.int(maxPieces);
  for (let i = 0; i < n; i++) {
    s += rng.pick(PIECES);
    if (rng.next() < 0.3) s += " ";
  }
  return s;
}

/**
 * The ids of `text` with add_special = false, parse_special = false: user-defined tokens are split
 * out first (llama.cpp's tokenizer_st_partition), the rest goes through the codec.
 */
export function encodePlain(
  vocab: Vocab,
  codec: ModelCodec,
  text: string,
  splitter?: SpecialSplitter,
): number[] {
  const out: number[] = [];
  for (const f of (splitter ?? new SpecialSplitter(vocab, false)).split(text)) {
    if (typeof f === "number") out.push(f);
    else codec.encodeFragment(f, out);
  }
  return out;
}

/** UTF-8 bytes of the pieces of `ids`, concatenated and decoded (lossy for invalid UTF-8). */
export function decodePieces(codec: ModelCodec, ids: readonly number[]): string {
  const parts = ids.map((id) => codec.pieceBytes(id));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(all);
}

/**
 * BPE over one word's symbols, the way llm_tokenizer_bpe_session::tokenize reads: repeatedly merge
 * the adjacent pair of lowest rank, leftmost first, comparing strings. Returns the final symbols.
 */
export function referenceBpeWord(symbols: string[], ranks: ReadonlyMap<string, number>): string[] {
  const s = [...symbols];
  for (;;) {
    let best = -1;
    let bestRank = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < s.length; i++) {
      const r = ranks.get(`${s[i]} ${s[i + 1]}`);
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) return s;
    s.splice(best, 2, s[best]! + s[best + 1]!);
  }
}

let llamaPromise: Promise<Llama | undefined> | undefined;

/** node-llama-cpp's tokenizer for a vocab-only GGUF, or undefined when its binary cannot load here. */
export async function loadLlamaVocab(path: string): Promise<LlamaModel | undefined> {
  llamaPromise ??= getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.disabled }).catch(
    () => undefined,
  );
  const llama = await llamaPromise;
  if (llama === undefined) return undefined;
  try {
    return await llama.loadModel({ modelPath: path, vocabOnly: true });
  } catch {
    return undefined;
  }
}
