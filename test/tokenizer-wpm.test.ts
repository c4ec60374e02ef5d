/**
 * WordPiece (src/tokenizer/wpm.ts): llama.cpp's test vectors for bert-bge (ids from Hugging Face,
 * add_special = false), the preprocessing rules of llm_tokenizer_wpm_session, [UNK], pieces,
 * node-llama-cpp (llama.cpp itself) on random text, and bad input.
 */
import { describe, expect, it } from "vitest";
import { TokenAttr, type Vocab } from "../src/tokenizer/types.ts";
import { vocabFromGgufFile } from "../src/tokenizer/vocab.ts";
import { createWpmCodec, wpmPreprocess } from "../src/tokenizer/wpm.ts";
import { fixturePath, missing } from "./helpers/fixtures.ts";
import { encodePlain, loadLlamaVocab, PIECES, Rng, randomText } from "./helpers/tokenizer-random.ts";
import { readVocabVectors } from "./helpers/tokenizer-vectors.ts";

const REL = "tokenizer/ggml-vocab-bert-bge.gguf";
const path = fixturePath(REL);
const label = (s: string) => (path ? s : missing(REL));
let cached: Vocab | undefined;
const vocab = (): Vocab => {
  cached ??= vocabFromGgufFile(path!);
  return cached;
};

/** The words of wpmPreprocess as strings. */
function words(text: string, lowercase = true, stripAccents = lowercase): string[] {
  const { cps, ends } = wpmPreprocess(text, lowercase, stripAccents);
  const out: string[] = [];
  let start = 0;
  for (const end of ends) {
    out.push(String.fromCodePoint(...cps.subarray(start, end)));
    start = end;
  }
  return out;
}

describe("WordPiece preprocessing (llm_tokenizer_wpm_session::preprocess)", () => {
  it("splits on whitespace, isolates punctuation, ASCII symbols and CJK ideographs", () => {
    expect(words("Hello, World!")).toEqual(["hello", ",", "world", "!"]);
    expect(words("$5+3 €5")).toEqual(["$", "5", "+", "3", "€5"]);
    expect(words("我想在apple工作")).toEqual(["我", "想", "在", "apple", "工", "作"]);
    expect(words("  \t\n ")).toEqual([]);
    expect(words("")).toEqual([]);
  });

  it("lowercases with the simple mapping and strips accents by keeping the first code point of NFD", () => {
    expect(words("Äpfel Führer Cửa Việt")).toEqual(["apfel", "fuhrer", "cua", "viet"]);
    expect(words("e\u0301")).toEqual(["e"]); // a combining mark is dropped
    expect(words("İstanbul")).toEqual(["istanbul"]); // U+0130's simple lowercase is "i"
    // NOTE: llama.cpp keeps only the leading jamo of a Hangul syllable (HF would keep all three).
    expect(words("한국")).toEqual(["\u1112\u1100"]);
  });

  it("options: no lowercase keeps case and accents; lowercase without strip_accents keeps accents", () => {
    expect(words("Äpfel", false)).toEqual(["Äpfel"]);
    expect(words("Äpfel", true, false)).toEqual(["äpfel"]);
  });

  it("drops NUL, U+FFFD, control and format characters, and lone surrogates (read as U+FFFD)", () => {
    expect(words("a\u0007b\u0000c\ufffdd\u200be")).toEqual(["abcde"]);
    expect(words("x\ud800y\udc00")).toEqual(["xy"]);
  });
});

describe("WordPiece encoding", () => {
  it.skipIf(path === undefined)(label("llama.cpp test vectors: all 46 strings of bert-bge"), () => {
    const v = vocab();
    const codec = createWpmCodec(v);
    const vectors = readVocabVectors(path!)!;
    expect(vectors.length).toBe(46);
    const failures: string[] = [];
    for (const { text, ids } of vectors) {
      const got = encodePlain(v, codec, text);
      if (got.join(" ") !== ids.join(" "))
        failures.push(`${JSON.stringify(text)}: got [${got}] want [${ids}]`);
    }
    console.log(`bert-bge: ${vectors.length - failures.length}/${vectors.length}`);
    expect(failures).toEqual([]);
  });

  it.skipIf(path === undefined)(
    label("longest match first, continuation pieces, [UNK] for a word with no match"),
    () => {
      const v = vocab();
      const codec = createWpmCodec(v);
      const enc = (t: string) => {
        const out: number[] = [];
        codec.encodeFragment(t, out);
        return out.map((id) => v.tokens[id]);
      };
      // "ff" + "able" would do too; greedy longest-first takes "ffa" and then "ble"
      expect(["ff", "able", "ffa", "ble"].every((t) => v.tokenToId.has(t))).toBe(true);
      expect(enc("Hello unaffable")).toEqual(["▁hello", "▁una", "ffa", "ble"]);
      expect(enc("ᚠᚢᚦ ok")).toEqual(["[UNK]", "▁ok"]);
      expect(enc("")).toEqual([]);
      expect(enc(" \n\t ")).toEqual([]);
    },
  );

  it.skipIf(path === undefined)(
    label("pieces: word starts get a space, continuations none, specials their text"),
    () => {
      const v = vocab();
      const codec = createWpmCodec(v);
      const text = (id: number) => new TextDecoder().decode(codec.pieceBytes(id));
      expect(text(v.tokenToId.get("▁hello")!)).toBe(" hello");
      expect(text(v.tokenToId.get("able")!)).toBe("able");
      expect(text(101)).toBe("[CLS]");
      expect(v.attrs[101]! & TokenAttr.CONTROL).toBeTruthy();
      expect(() => codec.pieceBytes(v.tokens.length)).toThrow(
        expect.objectContaining({ code: "ERR_TOKEN_OUT_OF_RANGE" }),
      );
    },
  );

  it.skipIf(path === undefined)(label("same ids as llama.cpp (node-llama-cpp) on random text"), async () => {
    const model = await loadLlamaVocab(path!);
    if (model === undefined) return; // no usable node-llama-cpp binary on this machine
    try {
      const v = vocab();
      const codec = createWpmCodec(v);
      const rng = new Rng(17);
      const texts = Array.from({ length: 300 }, () => randomText(rng));
      texts.push(PIECES.join(""), PIECES.join(" "), "x\ud800y", "a".repeat(3000));
      for (const t of texts)
        expect(encodePlain(v, codec, t), JSON.stringify(t)).toEqual(Array.from(model.tokenize(t, false)));
    } finally {
      await model.dispose();
    }
  });

  it.skipIf(path === undefined)(
    label("10 MB of one character and a 1 MB word finish in seconds"),
    () => {
      const codec = createWpmCodec(vocab());
      const rng = new Rng(2);
      let word = "";
      for (let i = 0; i < 1_000_000; i++) word += String.fromCharCode(97 + rng.int(26));
      for (const text of ["a".repeat(10_000_000), word]) {
        const t0 = performance.now();
        const out: number[] = [];
        codec.encodeFragment(text, out);
        const ms = performance.now() - t0;
        expect(out.length).toBeGreaterThan(0);
        expect(ms, `${text.length} chars took ${ms.toFixed(0)} ms`).toBeLessThan(60_000);
      }
    },
    180_000,
  );
});
