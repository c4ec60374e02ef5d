/**
 * Byte-level BPE (src/tokenizer/bpe.ts) and its pre-tokenizers (src/tokenizer/pre-tokenize.ts):
 * llama.cpp's test vectors for every BPE vocabulary in the fixtures (ids from Hugging Face
 * tokenizers, add_special = false, parse_special = false), lossless decoding, the pre-tokenizer of
 * every tokenizer.ggml.pre name against the same regexes run by JS's own engine, synthetic
 * vocabularies for merge order, ignore_merges and the byte fallback, node-llama-cpp (llama.cpp
 * itself) on random text, and bad input.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { gstr, openGguf, serializeGgufHeader } from "../src/formats/gguf/index.ts";
import { createBpeCodec, decodeByteLevel } from "../src/tokenizer/bpe.ts";
import { bpePreConfig, knownBpePreNames, PreTokenizer } from "../src/tokenizer/pre-tokenize.ts";
import { SpecialSplitter } from "../src/tokenizer/special-split.ts";
import { TokenAttr, type Vocab } from "../src/tokenizer/types.ts";
import { BYTE_TO_UNICODE } from "../src/tokenizer/unicode.ts";
import { vocabFromGgufFile } from "../src/tokenizer/vocab.ts";
import { isOwlError } from "../src/util/errors.ts";
import { fixturePath, missing } from "./helpers/fixtures.ts";
import {
  decodePieces,
  encodePlain,
  loadLlamaVocab,
  PIECES,
  Rng,
  randomText,
  referenceBpeWord,
} from "./helpers/tokenizer-random.ts";
import { readVocabVectors } from "./helpers/tokenizer-vectors.ts";

const WITH_VECTORS = ["gpt-2", "mpt", "falcon", "starcoder", "refact", "deepseek-coder", "deepseek-llm"];
const ALL_BPE = [...WITH_VECTORS, "gpt-neox"];
const rel = (name: string) => `tokenizer/ggml-vocab-${name}.gguf`;

const vocabs = new Map<string, Vocab>();
function vocabOf(name: string): Vocab {
  let v = vocabs.get(name);
  if (v === undefined) {
    v = vocabFromGgufFile(fixturePath(rel(name))!);
    vocabs.set(name, v);
  }
  return v;
}

describe("llama.cpp test vectors (add_special = false, parse_special = false)", () => {
  for (const name of WITH_VECTORS) {
    const path = fixturePath(rel(name));
    it.skipIf(path === undefined)(path ? `${name}: all 46 strings` : missing(rel(name)), () => {
      const vocab = vocabOf(name);
      const codec = createBpeCodec(vocab);
      const split = new SpecialSplitter(vocab, false);
      const vectors = readVocabVectors(path!)!;
      expect(vectors.length).toBe(46);
      const failures: string[] = [];
      for (const { text, ids } of vectors) {
        const got = encodePlain(vocab, codec, text, split);
        if (got.join(" ") !== ids.join(" "))
          failures.push(`${JSON.stringify(text)}: got [${got}] want [${ids}]`);
      }
      console.log(`${name}: ${vectors.length - failures.length}/${vectors.length}`);
      expect(failures).toEqual([]);
    });
  }

  it("the vectors have no control-token text, so splitting out user-defined tokens is all that precedes the codec", () => {
    const path = fixturePath(rel("deepseek-coder"));
    if (path === undefined) return;
    const texts = readVocabVectors(path)!.map((v) => v.text);
    expect(texts.some((t) => /<\||<s>|<\/s>|\[CLS\]|<fim/.test(t))).toBe(false);
  });
});

describe("decoding is lossless: pieces of encode(x) concatenate to x", () => {
  for (const name of ALL_BPE) {
    const path = fixturePath(rel(name));
    it.skipIf(path === undefined)(path ? `${name}` : missing(rel(name)), () => {
      const vocab = vocabOf(name);
      const codec = createBpeCodec(vocab);
      const split = new SpecialSplitter(vocab, false);
      const texts = readVocabVectors(fixturePath(rel("deepseek-coder"))!)!.map((v) => v.text);
      const rng = new Rng(7);
      for (let i = 0; i < 300; i++) texts.push(randomText(rng));
      for (const text of texts)
        expect(decodePieces(codec, encodePlain(vocab, codec, text, split))).toBe(text);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers against the plain JS regex engine

/** White_Space, as llama.cpp's tables and HF's Rust regex define \s (JS's \s differs on U+0085 and U+FEFF). */
const WS = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/** A llama.cpp regex as a JS `u` regex with \s / \S spelled as White_Space. */
function jsRegex(src: string): RegExp {
  let out = "";
  let inside = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === "\\") {
      const d = src[i + 1]!;
      if (d === "s") out += inside ? WS : `[${WS}]`;
      else if (d === "S") out += `[^${WS}]`;
      else out += c + d;
      i++;
      continue;
    }
    if (c === "[") inside = true;
    else if (c === "]") inside = false;
    out += c;
  }
  return new RegExp(out, "gu");
}

/**
 * unicode_regex_split semantics with real \p classes: each regex splits every fragment into matches
 * and gaps. NOTE: like llama.cpp, a regex without \p{..} sees non-ASCII whitespace as \v (so
 * U+2028 or U+3000 never match deepseek's CJK or full-width punctuation ranges).
 */
function referenceSplit(text: string, regexes: readonly string[]): string[] {
  let frags = [text];
  for (const src of regexes) {
    const re = jsRegex(src);
    const wide = !/\\p\{/.test(src);
    const next: string[] = [];
    for (const f of frags) {
      let prev = 0;
      const subject = wide
        ? f.replace(/[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/g, "\v")
        : f;
      for (const m of subject.matchAll(re)) {
        if (m[0].length === 0) continue;
        if (m.index > prev) next.push(f.slice(prev, m.index));
        next.push(f.slice(m.index, m.index + m[0].length));
        prev = m.index + m[0].length;
      }
      if (prev < f.length) next.push(f.slice(prev));
    }
    frags = next;
  }
  return frags;
}

describe("pre-tokenizers", () => {
  it("every tokenizer.ggml.pre name llama.cpp knows compiles, and its words tile the text", () => {
    const rng = new Rng(3);
    const texts = Array.from({ length: 30 }, () => randomText(rng));
    for (const name of knownBpePreNames()) {
      const pre = new PreTokenizer(bpePreConfig(name));
      for (const t of texts) {
        const words = pre.split(t);
        expect(words.join(""), name).toBe(t);
        expect(words.includes(""), name).toBe(false);
      }
    }
  });

  it("an unknown name, and kimi-k2/superbpe (custom C++ in llama.cpp), are ERR_UNSUPPORTED_TOKENIZER", () => {
    for (const name of ["no-such-pre", "kimi-k2", "superbpe"]) {
      expect(() => bpePreConfig(name)).toThrow(
        expect.objectContaining({ code: "ERR_UNSUPPORTED_TOKENIZER" }),
      );
    }
    expect(bpePreConfig("").type).toBe("default");
  });

  it("ignore_merges is set exactly for llama.cpp's names (llama3 family, tekken, youtu, minicpm5, granite 97m)", () => {
    const on = knownBpePreNames().filter((n) => bpePreConfig(n).ignoreMerges);
    expect(on.sort()).toEqual(
      [
        "falcon-h1",
        "falcon3",
        "granite-embed-multi-97m",
        "jina-v5-nano",
        "lfm2",
        "llama-bpe",
        "llama-v3",
        "llama3",
        "midm-2.0",
        "minicpm5",
        "pixtral",
        "tekken",
        "youtu",
      ].sort(),
    );
  });

  // Pre-tokenizers whose llama.cpp form is, by design, not the plain regex: \p{Lu}/\p{Ll} collapse
  // to \p{L} in llama.cpp's std::regex trick (youtu, tiny_aya), and AFMoE's digit rule is C++.
  const NOT_PLAIN_REGEX = new Set(["youtu", "tiny-aya", "afmoe"]);
  it("custom splitters and the placeholder-collapsed regexes split like JS's regex engine on the same patterns", () => {
    const rng = new Rng(11);
    const texts = Array.from({ length: 400 }, () => randomText(rng, 16));
    const seen = new Set<string>();
    let checked = 0;
    for (const name of knownBpePreNames()) {
      const config = bpePreConfig(name);
      if (NOT_PLAIN_REGEX.has(config.type) || seen.has(config.type)) continue;
      seen.add(config.type);
      const pre = new PreTokenizer(config);
      for (const t of texts) {
        expect(pre.split(t), `${config.type} on ${JSON.stringify(t)}`).toEqual(
          referenceSplit(t, config.regexes),
        );
        checked++;
      }
    }
    expect(seen.size).toBeGreaterThanOrEqual(25);
    expect(checked).toBe(seen.size * texts.length);
  });

  // llama-bpe (Llama 3), qwen2 and command-r have vectors but no GGUF here (>= 4 MiB), so their
  // pre-tokenizers are checked on hand-written cases of the tokenizer.json patterns instead.
  it("llama3 (llama-bpe): case-insensitive contractions, digits in threes, newline runs", () => {
    const pre = new PreTokenizer(bpePreConfig("llama-bpe"));
    expect(pre.split("Hello world")).toEqual(["Hello", " world"]);
    expect(pre.split("I'm YOU'RE we'Ve")).toEqual(["I", "'m", " YOU", "'RE", " we", "'Ve"]);
    expect(pre.split("1234567")).toEqual(["123", "456", "7"]);
    expect(pre.split("\n\n  x")).toEqual(["\n\n", " ", " x"]);
    expect(pre.split("x  \n\ty")).toEqual(["x", "  \n", "\ty"]);
    expect(pre.split("a,.!\n\nb")).toEqual(["a", ",.!\n\n", "b"]);
    expect(pre.split("$3.5")).toEqual(["$", "3", ".", "5"]);
    expect(pre.split("🦙.cpp")).toEqual(["🦙.", "cpp"]);
    expect(pre.split("   ")).toEqual(["   "]);
  });

  it("qwen2: like llama3 but one digit per word", () => {
    const pre = new PreTokenizer(bpePreConfig("qwen2"));
    expect(pre.split("1314151天～")).toEqual(["1", "3", "1", "4", "1", "5", "1", "天", "～"]);
    expect(pre.split("'LL be")).toEqual(["'LL", " be"]);
  });

  it("command-r (starcoder list): digits split first, then GPT-2's pattern, case-sensitive contractions", () => {
    const pre = new PreTokenizer(bpePreConfig("command-r"));
    expect(pre.split("w048 7tuijk")).toEqual(["w", "0", "4", "8", " ", "7", "tuijk"]);
    expect(pre.split("I'm 'RE")).toEqual(["I", "'m", " '", "RE"]);
    expect(pre.split("a   b")).toEqual(["a", "  ", " b"]);
  });

  it("falcon: punctuation runs first, then GPT-2, then three ASCII digits", () => {
    const pre = new PreTokenizer(bpePreConfig("falcon"));
    expect(pre.split("12345 (x)")).toEqual(["123", "45", " ", "(", "x", ")"]);
  });

  it("deepseek-llm: \\s+$ keeps a trailing run of spaces apart in linear time", () => {
    const pre = new PreTokenizer(bpePreConfig("deepseek-llm"));
    expect(pre.split("ab  ")).toEqual(["ab", "  "]);
    const long = `${" ".repeat(200_000)}x`;
    const t0 = performance.now();
    expect(pre.split(long).join("")).toBe(long);
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});

// ---------------------------------------------------------------------------------------------
// Synthetic vocabularies

const byteChar = (b: number) => String.fromCharCode(BYTE_TO_UNICODE[b]!);

/** A Vocab from token texts (byte-level spelling) and merges, everything else at its default. */
function makeVocab(tokens: string[], merges: string[], pre = "gpt-2", ignoreMerges?: boolean): Vocab {
  const tokenToId = new Map<string, number>();
  for (const [i, t] of tokens.entries()) tokenToId.set(t, i);
  const v: Vocab = {
    model: "gpt2",
    pre,
    tokens,
    scores: new Float32Array(tokens.length),
    attrs: new Uint32Array(tokens.length).fill(TokenAttr.NORMAL),
    tokenToId,
    merges,
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
    cleanSpaces: true,
    chatTemplate: undefined,
  };
  if (ignoreMerges !== undefined) v.ignoreMerges = ignoreMerges;
  return v;
}

/** All 256 byte tokens, then `extra`. */
function byteTokens(extra: string[]): string[] {
  return [...Array.from({ length: 256 }, (_, b) => byteChar(b)), ...extra];
}

describe("merges", () => {
  it("ignore_merges: a word that is a token is taken whole (llama-bpe), not merged (gpt-2)", () => {
    const tokens = byteTokens(["bc", "abc"]);
    const id = (t: string) => tokens.indexOf(t);
    for (const [pre, want] of [
      ["gpt-2", [id("a"), id("bc")]],
      ["llama-bpe", [id("abc")]],
    ] as const) {
      const out: number[] = [];
      createBpeCodec(makeVocab(tokens, ["b c"], pre)).encodeFragment("abc", out);
      expect(out, pre).toEqual(want);
    }
    // The Vocab's own flag wins over the name's default.
    const out: number[] = [];
    createBpeCodec(makeVocab(tokens, ["b c"], "llama-bpe", false)).encodeFragment("abc", out);
    expect(out).toEqual([id("a"), id("bc")]);
  });

  it("byte fallback: a merged symbol that is not a token becomes its ASCII bytes; unknown non-ASCII bytes vanish", () => {
    const tokens = ["a", "b", "x"];
    const out: number[] = [];
    // "a b" merges into "ab", which is no token: llama.cpp looks each byte up alone.
    createBpeCodec(makeVocab(tokens, ["a b"])).encodeFragment("ab é x", out);
    // " é" and " x": "Ġ", "Ã", "©" are no tokens and not ASCII, so only "x" survives.
    expect(out).toEqual([0, 1, 2]);
  });

  it("short and long merge loops follow the reference order, even with non-monotone ranks", () => {
    const rng = new Rng(5);
    const letters = ["a", "b", "c", "d"];
    for (let trial = 0; trial < 30; trial++) {
      // random merges over random pairs of known symbols; ranks in random order
      const known = [...letters];
      const merges: string[] = [];
      for (let k = 0; k < 40; k++) {
        const a = rng.pick(known);
        const b = rng.pick(known);
        if (merges.includes(`${a} ${b}`)) continue;
        merges.push(`${a} ${b}`);
        if ((a + b).length <= 6) known.push(a + b);
      }
      for (let i = merges.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [merges[i], merges[j]] = [merges[j]!, merges[i]!];
      }
      const tokens = byteTokens([...new Set(known.filter((t) => t.length > 1))]);
      const vocab = makeVocab(tokens, merges);
      const ranks = new Map<string, number>();
      merges.forEach((m, r) => {
        if (!ranks.has(m)) ranks.set(m, r);
      });
      const short = createBpeCodec(vocab, { cacheSize: 0 });
      const long = createBpeCodec(vocab, { cacheSize: 0, smallWordLimit: 1 });
      for (let w = 0; w < 20; w++) {
        let word = "";
        const n = 1 + rng.int(rng.next() < 0.2 ? 300 : 30);
        for (let i = 0; i < n; i++) word += rng.pick(letters);
        // a merged symbol that is no token falls back to its (ASCII) bytes
        const want = referenceBpeWord([...word], ranks).flatMap((s) =>
          tokens.includes(s) ? [tokens.indexOf(s)] : [...s].map((ch) => tokens.indexOf(ch)),
        );
        const a: number[] = [];
        const b: number[] = [];
        short.encodeFragment(word, a);
        long.encodeFragment(word, b);
        expect(a, word).toEqual(want);
        expect(b, word).toEqual(want);
      }
    }
  });

  it("the word cache returns what a fresh encode gives, past its capacity", () => {
    const path = fixturePath(rel("deepseek-coder"));
    if (path === undefined) return;
    const vocab = vocabOf("deepseek-coder");
    const cached = createBpeCodec(vocab, { cacheSize: 64 });
    const plain = createBpeCodec(vocab, { cacheSize: 0 });
    const rng = new Rng(9);
    for (let i = 0; i < 500; i++) {
      const t = randomText(rng);
      const a: number[] = [];
      const b: number[] = [];
      cached.encodeFragment(t, a);
      plain.encodeFragment(t, b);
      expect(a).toEqual(b);
    }
  });
});

describe('vocabularies without byte encoding (sarvam-moe, granite-embed-multi-311m: raw UTF-8, "▁" spaces)', () => {
  it("escapes spaces, merges code points, falls back to <0xXX> tokens, and decodes back", () => {
    const tokens = ["▁", "a", "b", "▁a", "<0x0A>", "<0xC3>", "<0xA9>"];
    const vocab = makeVocab(tokens, ["▁ a"], "sarvam-moe");
    vocab.escapeWhitespaces = true;
    for (const i of [4, 5, 6]) vocab.attrs[i] = TokenAttr.BYTE;
    const codec = createBpeCodec(vocab);
    const out: number[] = [];
    codec.encodeFragment(" a\nbé", out);
    // words: "▁a" | "\n" | "bé"; "\n" and "é" are no tokens, so their UTF-8 bytes are looked up as <0xXX>
    expect(out).toEqual([3, 4, 2, 5, 6]);
    expect(decodePieces(codec, out)).toBe(" a\nbé");
  });
});

describe("pieceBytes (llama.cpp token_to_piece, BPE)", () => {
  it("maps byte-level text back to bytes, control tokens to their text, and rejects bad ids", () => {
    const tokens = byteTokens(["<|endoftext|>", `${byteChar(0x20)}h`]);
    const vocab = makeVocab(tokens, []);
    vocab.attrs[256] = TokenAttr.CONTROL;
    const codec = createBpeCodec(vocab);
    expect(codec.pieceBytes(0xe9)).toEqual(Uint8Array.of(0xe9));
    expect(new TextDecoder().decode(codec.pieceBytes(256))).toBe("<|endoftext|>");
    expect(new TextDecoder().decode(codec.pieceBytes(257))).toBe(" h");
    for (const bad of [-1, 258, 1.5]) {
      expect(() => codec.pieceBytes(bad)).toThrow(
        expect.objectContaining({ code: "ERR_TOKEN_OUT_OF_RANGE" }),
      );
    }
  });

  it("a character outside the byte map decodes as [UNK_BYTE_0x..<token>], as llama_decode_text", () => {
    expect(new TextDecoder().decode(decodeByteLevel("a€"))).toBe("a[UNK_BYTE_0xe282aca€]");
  });
});

// ---------------------------------------------------------------------------------------------
// llama.cpp itself

describe("same ids as llama.cpp (node-llama-cpp, vocab-only GGUF) on random text", () => {
  for (const name of ALL_BPE) {
    const path = fixturePath(rel(name));
    it.skipIf(path === undefined)(path ? name : missing(rel(name)), async () => {
      const model = await loadLlamaVocab(path!);
      if (model === undefined) return; // no usable node-llama-cpp binary on this machine
      try {
        const vocab = vocabOf(name);
        const codec = createBpeCodec(vocab);
        const split = new SpecialSplitter(vocab, false);
        const rng = new Rng(name.length * 1000 + 1);
        const texts = Array.from({ length: 250 }, () => randomText(rng));
        // long words through the long merge loop, lone surrogates as U+FFFD
        texts.push("a".repeat(5000), " ".repeat(3000), "\n".repeat(2000), "1".repeat(4000), "x\ud800y\udc00");
        let word = "";
        for (let i = 0; i < 20000; i++) word += rng.pick(["a", "b", "e", "r", "s", "t", "n"]);
        texts.push(word, PIECES.join(""));
        for (const t of texts) {
          expect(encodePlain(vocab, codec, t, split), JSON.stringify(t).slice(0, 200)).toEqual(
            Array.from(model.tokenize(t, false)),
          );
        }
      } finally {
        await model.dispose();
      }
    });
  }
});

describe("every pre-tokenizer type gives llama.cpp's ids (deepseek-coder's vocabulary, relabelled)", () => {
  const src = fixturePath(rel("deepseek-coder"));
  it.skipIf(src === undefined)(
    src
      ? "one name per type: the regex lists, custom splitters, ignore_merges, raw UTF-8 BPE"
      : missing(rel("deepseek-coder")),
    async () => {
      const probe = await loadLlamaVocab(src!);
      if (probe === undefined) return; // no usable node-llama-cpp binary on this machine
      await probe.dispose();
      const file = openGguf(src!);
      const md = new Map(file.metadata);
      file.close();
      const dir = mkdtempSync(join(tmpdir(), "owl-bpe-pre-"));
      try {
        const byType = new Map<string, string>();
        for (const n of knownBpePreNames())
          if (!byType.has(bpePreConfig(n).type)) byType.set(bpePreConfig(n).type, n);
        // NOTE: llama.cpp asserts (GGML_ASSERT in find_bpe_rank) on "whitespace" with a gpt2 model.
        byType.delete("whitespace");
        for (const name of byType.values()) {
          md.set("tokenizer.ggml.pre", gstr(name));
          const path = join(dir, `${name}.gguf`);
          writeFileSync(path, serializeGgufHeader({ version: 3, metadata: md, tensors: [] }));
          const vocab = vocabFromGgufFile(path);
          const codec = createBpeCodec(vocab);
          const split = new SpecialSplitter(vocab, false);
          const model = (await loadLlamaVocab(path))!;
          try {
            const rng = new Rng(name.length);
            const texts = Array.from({ length: 30 }, () => randomText(rng));
            texts.push(PIECES.join(""), "1234567 12 'S 'ſ x", "  \n\n \t x\u3000y\u2028z", "abc".repeat(100));
            for (const t of texts)
              expect(encodePlain(vocab, codec, t, split), `${name} on ${JSON.stringify(t)}`).toEqual(
                Array.from(model.tokenize(t, false)),
              );
          } finally {
            await model.dispose();
          }
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    180_000,
  );
});

// ---------------------------------------------------------------------------------------------
// Bad input (deepseek-coder ships in test/fixtures)

describe("bad input", () => {
  const path = fixturePath(rel("deepseek-coder"));
  const label = (s: string) => (path ? s : missing(rel("deepseek-coder")));

  it.skipIf(path === undefined)(label("empty and whitespace-only strings"), () => {
    const codec = createBpeCodec(vocabOf("deepseek-coder"));
    const enc = (t: string) => {
      const out: number[] = [];
      codec.encodeFragment(t, out);
      return out;
    };
    expect(enc("")).toEqual([]);
    for (const t of [" ", "  ", "\t", "\n", "\r\n", " \n \t ", "\u3000", "\u00a0\u2028"]) {
      const ids = enc(t);
      expect(ids.length).toBeGreaterThan(0);
      expect(decodePieces(codec, ids)).toBe(t);
    }
  });

  it.skipIf(path === undefined)(
    label("a lone surrogate is tokenized as U+FFFD (what TextEncoder makes of it)"),
    () => {
      const codec = createBpeCodec(vocabOf("deepseek-coder"));
      for (const [bad, good] of [
        ["a\ud800b", "a\ufffdb"],
        ["\udc00", "\ufffd"],
        ["x\ud83d", "x\ufffd"],
        ["\ud83d\ud83d\ude00", "\ufffd😀"],
      ]) {
        const a: number[] = [];
        const b: number[] = [];
        codec.encodeFragment(bad!, a);
        codec.encodeFragment(good!, b);
        expect(a).toEqual(b);
      }
    },
  );

  it.skipIf(path === undefined)(
    label("10 MB of one character, and a 1 MB word, finish in seconds"),
    () => {
      const codec = createBpeCodec(vocabOf("deepseek-coder"));
      const rng = new Rng(1);
      let word = "";
      for (let i = 0; i < 1_000_000; i++) word += String.fromCharCode(97 + rng.int(26));
      for (const text of ["a".repeat(10_000_000), word]) {
        const t0 = performance.now();
        const out: number[] = [];
        codec.encodeFragment(text, out);
        const ms = performance.now() - t0;
        expect(out.length).toBeGreaterThan(0);
        expect(ms, `${text.slice(0, 8)}… (${text.length} chars) took ${ms.toFixed(0)} ms`).toBeLessThan(
          30_000,
        );
      }
    },
    180_000,
  );

  it("an id outside the vocabulary is an OwlError", () => {
    const codec = createBpeCodec(makeVocab(byteTokens([]), []));
    try {
      codec.pieceBytes(999);
      expect.unreachable();
    } catch (e) {
      expect(isOwlError(e, "ERR_TOKEN_OUT_OF_RANGE")).toBe(true);
    }
  });
});
