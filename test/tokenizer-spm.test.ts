/**
 * The SentencePiece ("llama") tokenizer against llama.cpp's test vectors (every SPM vocab GGUF
 * with .inp/.out: llama-spm, phi-3; ids from Hugging Face, checked by llama.cpp's
 * test-tokenizer-0 with add_special = false, parse_special = false), the round trips of
 * llama.cpp's test-tokenizer-1-spm (every token, every code point), a plain port of llama.cpp's
 * algorithm on random text, and the speed a 10 MB input needs.
 */
import { describe, expect, it } from "vitest";
import { createSpmCodec } from "../src/tokenizer/spm.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { fixturePath, listFixtures, missing } from "./helpers/fixtures.ts";
import { readVocabVectors, referenceSpm } from "./helpers/tokenizer-vectors.ts";

const spmVocabs = listFixtures("tokenizer", /\.gguf$/)
  .map((path) => ({ path, name: path.replace(/^.*[\\/]/, "") }))
  .filter(({ path }) => Tokenizer.fromGgufFile(path).vocab.model === "llama");

describe("SPM vocabularies: llama.cpp test vectors", () => {
  it("finds at least the bundled llama-spm vocabulary", () => {
    expect(spmVocabs.map((v) => v.name)).toContain("ggml-vocab-llama-spm.gguf");
  });

  for (const { path, name } of spmVocabs) {
    const vectors = readVocabVectors(path);
    describe(name, () => {
      const tok = Tokenizer.fromGgufFile(path);
      it.skipIf(!vectors)(
        "encodes all 46 strings to the reference ids (add_special=false, parse_special=false)",
        () => {
          const cases = vectors!;
          expect(cases).toHaveLength(46);
          const failures = cases
            .map((c) => ({ text: c.text, expected: c.ids, got: tok.encode(c.text, { addSpecial: false }) }))
            .filter((r) => JSON.stringify(r.got) !== JSON.stringify(r.expected));
          expect(failures).toEqual([]);
        },
      );

      it.skipIf(!vectors)("decodes every reference vector back to its text", () => {
        const bad = vectors!.filter((c) => tok.decode(c.ids) !== c.text).map((c) => c.text);
        expect(bad).toEqual([]);
      });

      it("round-trips every token as test-tokenizer-1-spm does", () => {
        const bad: number[] = [];
        for (let id = 0; id < tok.size; id++) {
          const str = tok.decode([id]);
          const check = tok.decode(tok.encode(str, { addSpecial: false, parseSpecial: true }));
          if (check !== str) bad.push(id);
        }
        expect(bad).toEqual([]);
      });
    });
  }
});

describe("SPM round trip of code points (test-tokenizer-1-spm)", () => {
  const path = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
  it.skipIf(!path)("every BMP code point and a sample of the others decode back", () => {
    const tok = Tokenizer.fromGgufFile(path!);
    const bad: number[] = [];
    for (let cp = 0; cp < 0x110000; cp += cp < 0x10000 ? 1 : 97) {
      // llama.cpp skips surrogates and the unassigned planes 4-14, and U+2581 (it decodes to " ").
      if ((cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x40000 && cp <= 0xe0000) || cp === 0x2581) continue;
      const s = String.fromCodePoint(cp);
      if (tok.decode(tok.encode(s, { addSpecial: false, parseSpecial: true })) !== s) bad.push(cp);
    }
    expect(bad).toEqual([]);
  });
});

describe("SPM codec against a plain port of llm_tokenizer_spm_session", () => {
  const path = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
  it.skipIf(!path)("gives the same ids on random text (short segments, long runs, byte fallback)", () => {
    const tok = Tokenizer.fromGgufFile(path!);
    const vocab = tok.vocab;
    const fast = createSpmCodec(vocab);
    // longSegment 0: every segment goes through the run queue instead of the heap.
    const runs = createSpmCodec(vocab, { longSegment: 0 });
    let seed = 0x2545f491;
    const rnd = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const alphabets = [
      " ab",
      "a",
      " ",
      "abc d",
      "0123456789 ",
      "ae ioun st",
      "é€😀a ",
      "\n \t",
      "▁<s>",
      "日本語 ",
    ];
    const normal = vocab.tokens.filter((_, id) => vocab.attrs[id] === 4);
    let compared = 0;
    for (let t = 0; t < 1500; t++) {
      let s = "";
      if (t % 3 === 0) {
        // Concatenated vocabulary pieces: many merges compete.
        const n = Math.floor(rnd() * 12);
        for (let i = 0; i < n; i++) s += normal[Math.floor(rnd() * normal.length)]!.replaceAll("▁", " ");
      } else {
        const al = Array.from(alphabets[t % alphabets.length]!);
        const n = Math.floor(rnd() * (t % 10 === 1 ? 2000 : 200));
        for (let i = 0; i < n; i++) s += al[Math.floor(rnd() * al.length)]!;
      }
      const expected = referenceSpm(vocab, s.replaceAll(" ", "▁"));
      const a: number[] = [];
      fast.encodeFragment(s, a);
      const b: number[] = [];
      runs.encodeFragment(s, b);
      if (JSON.stringify(a) !== JSON.stringify(expected) || JSON.stringify(b) !== JSON.stringify(expected)) {
        expect({ text: s, fast: a, runs: b }).toEqual({ text: s, fast: expected, runs: expected });
      }
      compared++;
    }
    expect(compared).toBe(1500);
  });
});

describe("SPM codec scratch space", () => {
  const path = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
  it.skipIf(!path)(
    "a fresh codec that grows its arrays in the middle of a segment gives the reference ids",
    () => {
      // Regression: the scan kept a stale reference to an array that grow() had replaced.
      const vocab = Tokenizer.fromGgufFile(path!).vocab;
      // Only pairs that occur inside tokens, so the text stays one merge segment.
      const unit = "abracadabra";
      for (const n of [63, 64, 65, 66, 100, 129, 257, 1025, 5000]) {
        const text = unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
        for (const longSegment of [1024, 0]) {
          const ids: number[] = [];
          createSpmCodec(vocab, { longSegment }).encodeFragment(text, ids);
          expect(ids, `${n} chars, longSegment ${longSegment}`).toEqual(
            referenceSpm(vocab, text.replaceAll(" ", "▁")),
          );
        }
      }
    },
  );
});

describe("SPM on large inputs", () => {
  const path = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
  const story =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. " +
    'One day, she saw a big, red ball in the park. "Can I play with it?" she asked. 42 × 7 = 294!\n';

  it.skipIf(!path)(
    "encodes 10 MB of text in seconds and decodes it back",
    () => {
      const tok = Tokenizer.fromGgufFile(path!);
      const text = story.repeat(Math.ceil(10_000_000 / story.length));
      const t0 = performance.now();
      const ids = tok.encode(text, { addSpecial: false });
      const seconds = (performance.now() - t0) / 1000;
      expect(seconds).toBeLessThan(30);
      expect(ids.length).toBeGreaterThan(text.length / 5);
      expect(tok.decode(ids)).toBe(text);
      // The repetition tokenizes like its unit (every unit starts after a newline, so no merge crosses).
      const unit = tok.encode(story, { addSpecial: false });
      expect(ids.slice(0, unit.length)).toEqual(unit);
    },
    60_000,
  );

  it.skipIf(!path)(
    "encodes 10 MB of one repeated character (a single merge segment) in seconds",
    () => {
      const tok = Tokenizer.fromGgufFile(path!);
      for (const [ch, n] of [
        ["a", 10_000_000],
        [" ", 2_000_000],
      ] as const) {
        const text = ch.repeat(n);
        const t0 = performance.now();
        const ids = tok.encode(text, { addSpecial: false });
        expect((performance.now() - t0) / 1000).toBeLessThan(30);
        expect(tok.decode(ids)).toBe(text);
      }
    },
    90_000,
  );

  it.skipIf(!path)("gives the reference ids on a 200 KB run (checked against the plain port)", () => {
    const tok = Tokenizer.fromGgufFile(path!);
    const text = "ab".repeat(50_000) + " ".repeat(50_000);
    const ids: number[] = [];
    createSpmCodec(tok.vocab).encodeFragment(text, ids);
    expect(ids).toEqual(referenceSpm(tok.vocab, text.replaceAll(" ", "▁")));
  });
});

describe("SPM without the vocabulary fixtures", () => {
  it.skipIf(!!fixturePath("tokenizer/ggml-vocab-llama-spm.gguf"))(
    missing("tokenizer/ggml-vocab-llama-spm.gguf"),
    () => {},
  );
});
