/**
 * Differential test against llama.cpp itself: on every vocab GGUF in the fixtures, node-llama-cpp
 * (llama.cpp's tokenizer, the model loaded vocab-only) and owl must give the same ids on a seeded
 * corpus of 2,400 random strings: mixed scripts (accented Latin, Cyrillic, Greek, CJK, Arabic,
 * Devanagari, Thai), emoji with ZWJ sequences, skin tones, keycaps and flags, runs of spaces, tabs
 * and newlines, digits of many lengths, code, contractions in mixed case, and random code points.
 * Both sides run with add_special = false, parse_special = false (llama.cpp's common_tokenize as
 * node-llama-cpp's tokenize(text, false) calls it; the SPM space prefix is added either way).
 *
 * A disagreement fails the test with the string as escaped code points, both id lists and the
 * first differing position, unless it falls in a class of KNOWN_DISAGREEMENTS below, each with the
 * reason and who is right. Skips when node-llama-cpp's prebuilt binary cannot load here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { listFixtures } from "./helpers/fixtures.ts";
import { tokenizerCorpus } from "./helpers/tokenizer-corpus.ts";

// ---- known disagreement classes ----

interface KnownDisagreement {
  /** What the class is, who is right, and why. */
  why: string;
  /** Vocabularies it applies to (file name part after ggml-vocab-), or all. */
  vocabs?: readonly string[];
  /** Whether a disagreeing string belongs to this class. */
  matches(text: string): boolean;
}

/**
 * Disagreement classes that remain after investigation. Keep each narrow: the test fails on any
 * disagreement outside them.
 *
 * None remain. Checked on the 12 vocab GGUFs of the fixtures (llama.cpp of node-llama-cpp 3.21.1):
 * the 2,400-string corpus agrees on all, and so does a sweep of every code point U+0000..U+10FFFF
 * (surrogates excepted) in 64-code-point strings, separated by spaces, by "a" and by nothing
 * (OWL_TOKENIZER_SWEEP=1 runs that here; by default every 16th code point is swept). That covers
 * the classes expected to be at risk: llama.cpp's Unicode tables being older than V8's ICU
 * (unicode.ts keeps llama.cpp's categories for newer code points), \s meaning White_Space
 * (U+0085 in, U+FEFF out, unlike JavaScript's \s), SPM byte fallback, BPE byte fallback for
 * non-ASCII bytes, WPM accent stripping and lowercasing, lone surrogates (both sides see U+FFFD:
 * node-llama-cpp converts the JS string to UTF-8 with replacement).
 */
const KNOWN_DISAGREEMENTS: readonly KnownDisagreement[] = [];

// ---- the test ----

const CORPUS_SIZE = 2400;
/** Code-point sweep: every SWEEP_STRIDE-th code point (offset by vocabulary), 64 per string. */
const SWEEP_STRIDE = process.env["OWL_TOKENIZER_SWEEP"] === "1" ? 1 : 16;

/** Strings covering every SWEEP_STRIDE-th code point from `offset`, joined by `sep`, 64 per string. */
function sweepStrings(offset: number, sep: string): string[] {
  const out: string[] = [];
  let cps: string[] = [];
  for (let c = offset % SWEEP_STRIDE; c <= 0x10ffff; c += SWEEP_STRIDE) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    cps.push(String.fromCodePoint(c));
    if (cps.length === 64) {
      out.push(`x${cps.join(sep)} 1`);
      cps = [];
    }
  }
  if (cps.length > 0) out.push(`x${cps.join(sep)} 1`);
  return out;
}
const hex = (s: string) =>
  Array.from(s, (c) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`).join(" ");

type LlamaModule = typeof import("node-llama-cpp");
let mod: LlamaModule | undefined;
let llama: Awaited<ReturnType<LlamaModule["getLlama"]>> | undefined;

beforeAll(async () => {
  try {
    mod = await import("node-llama-cpp");
    llama = await mod.getLlama({ gpu: false, build: "never", logLevel: mod.LlamaLogLevel.error });
  } catch {
    llama = undefined; // no prebuilt binary for this machine: the tests below skip
  }
}, 120_000);
afterAll(async () => {
  await llama?.dispose();
});

const vocabPaths = listFixtures("tokenizer", /\.gguf$/);
const corpus = tokenizerCorpus(CORPUS_SIZE);

describe("owl and llama.cpp (node-llama-cpp, vocab-only) give the same ids on a random corpus", () => {
  it("the corpus has the classes it claims", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(2000);
    const all = corpus.join("");
    for (const re of [
      /\p{Script=Cyrillic}/u,
      /\p{Script=Han}/u,
      /\p{Script=Arabic}/u,
      /\p{Script=Devanagari}/u,
      /\p{Script=Thai}/u,
      /\u200d/,
      /\p{Regional_Indicator}/u,
      / {3}/,
      /\t/,
      /\d{8}/,
      /[{}()[\]]/,
      /I'M/,
    ])
      expect(all, String(re)).toMatch(re);
    expect(new Set(corpus).size).toBeGreaterThan(CORPUS_SIZE * 0.95);
  });

  for (const path of vocabPaths) {
    const name = path
      .split("/")
      .pop()!
      .replace(/^ggml-vocab-|\.gguf$/g, "");
    const sweepOffset = vocabPaths.indexOf(path) * 5;
    it(`${name}: ${CORPUS_SIZE} strings and a code-point sweep`, async (ctx) => {
      if (!llama) return ctx.skip();
      const model = await llama.loadModel({ modelPath: path, vocabOnly: true });
      try {
        const owl = Tokenizer.fromGgufFile(path);
        const known = KNOWN_DISAGREEMENTS.filter((k) => !k.vocabs || k.vocabs.includes(name));
        const unexplained: string[] = [];
        const explained = new Map<string, number>();
        let agree = 0;
        const sweep = [...sweepStrings(sweepOffset, " "), ...sweepStrings(sweepOffset + 7, "")];
        for (const text of [...corpus, ...sweep]) {
          const a = owl.encode(text, { addSpecial: false, parseSpecial: false });
          const b = Array.from(model.tokenize(text, false), Number);
          let i = 0;
          while (i < a.length && i < b.length && a[i] === b[i]) i++;
          if (i === a.length && i === b.length) {
            agree++;
            continue;
          }
          const k = known.find((x) => x.matches(text));
          if (k) explained.set(k.why, (explained.get(k.why) ?? 0) + 1);
          else if (unexplained.length < 10)
            unexplained.push(
              `${JSON.stringify(text)}\n  code points: ${hex(text)}\n  owl:       [${a.join(", ")}]\n  llama.cpp: [${b.join(", ")}]\n  first difference at index ${i}`,
            );
          else unexplained.push("...");
        }
        // Summary line for the report (vitest prints console output of a test).
        console.log(
          `${name}: ${agree}/${corpus.length + sweep.length} agree (${corpus.length} corpus + ${sweep.length} sweep strings)${[...explained].map(([w, c]) => `; ${c} known (${w.slice(0, 60)}...)`).join("")}`,
        );
        expect(unexplained, `owl and llama.cpp disagree on ${name}:\n${unexplained.join("\n")}`).toEqual([]);
      } finally {
        await model.dispose();
      }
    }, 120_000);
  }
});
