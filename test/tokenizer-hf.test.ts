/**
 * Hugging Face tokenizer.json -> Vocab (src/tokenizer/hf-tokenizer.ts). For every fixture vocab GGUF
 * with llama.cpp test vectors, the tokenizer.json equivalent is built (test/helpers/tokenizer-json.ts:
 * Llama-2-style BPE + byte_fallback for SPM, ByteLevel BPE with the original pre_tokenizer for
 * gpt2, WordPiece for bert), loaded through vocabFromTokenizerJson, and must give the same ids as
 * the GGUF path and as the HF reference ids in .out on the 46 strings, plus the stories prompts.
 * @huggingface/tokenizers reads the same JSON as a check that the built files are what HF means.
 * Then the mapping rules one by one: pre-tokenizer detection, Metaspace, pair merges, special ids
 * and flags, chat templates, padding ids, Unigram, errors, loadHfTokenizer on a directory.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer as HfJsTokenizer } from "@huggingface/tokenizers";
import { afterAll, describe, expect, it } from "vitest";
import {
  bpePreOfHfPreTokenizer,
  bpeRegexesOfHfPreTokenizer,
  ggufMetadataFromTokenizerJson,
  loadHfTokenizer,
  vocabFromTokenizerJson,
} from "../src/tokenizer/hf-tokenizer.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { TokenAttr, type Vocab } from "../src/tokenizer/types.ts";
import { vocabFromGgufFile } from "../src/tokenizer/vocab.ts";
import { OwlError } from "../src/util/errors.ts";
import { fixturePath, listFixtures, missing } from "./helpers/fixtures.ts";
import { HF_PRE_TOKENIZERS, hfFilesFromVocab } from "./helpers/tokenizer-json.ts";
import { readVocabVectors } from "./helpers/tokenizer-vectors.ts";

const STORIES = ["Once upon a time", "The little dog", "Lily wanted to"];
const PLAIN = { addSpecial: false, parseSpecial: false } as const;

/**
 * Where a fixture GGUF (made by an older llama.cpp converter) and today's converter, which
 * vocabFromTokenizerJson follows, legitimately differ; nothing here changes an id on plain text.
 * - [PAD<id>] fillers: older files typed them USER_DEFINED (phi-3: UNKNOWN), the converter now
 *   writes UNUSED.
 * - Added tokens that are special or look special (does_token_look_special: "<|...|>", "<pad>",
 *   "<｜...｜>") are CONTROL now; older files have USER_DEFINED (vocab.ts adds CONTROL to the FIM ones).
 * - SPM "<unk>": sentencepiece's UNKNOWN type in the file; the converter now overrides every
 *   special added token (tokenizer_config's added_tokens_decoder) to CONTROL.
 * - bert: today's SpecialVocab takes EOS from sep_token and reads add_bos/add_eos/add_sep from the
 *   post-processor template; the bge file predates that (and names its pre "bert-bge", a hash).
 */
function expectedAttrDifference(g: Vocab, i: number, gAttr: number, hAttr: number): boolean {
  const t = g.tokens[i]!;
  if (/^\[PAD\d+\]$/.test(t)) return hAttr === TokenAttr.UNUSED;
  const kind = (a: number) => a & ~(TokenAttr.LSTRIP | TokenAttr.RSTRIP | TokenAttr.SINGLE_WORD);
  if (kind(hAttr) === TokenAttr.CONTROL && (gAttr & (TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN)) !== 0)
    return (
      (gAttr & (TokenAttr.LSTRIP | TokenAttr.RSTRIP)) === (hAttr & (TokenAttr.LSTRIP | TokenAttr.RSTRIP))
    );
  return false;
}

const vocabs = listFixtures("tokenizer", /\.gguf$/).filter((p) => readVocabVectors(p) !== undefined);

describe("tokenizer.json equivalents of the fixture vocabularies tokenize like their GGUFs", () => {
  it.skipIf(vocabs.length === 0)("has fixtures", () => {
    expect(vocabs.length).toBeGreaterThanOrEqual(2);
  });
  for (const path of vocabs) {
    const name = path
      .split("/")
      .pop()!
      .replace(/^ggml-vocab-|\.gguf$/g, "");
    it(`${name}: same ids as the GGUF and the HF reference on the 46 strings and the stories prompts`, () => {
      const g = vocabFromGgufFile(path);
      const files = hfFilesFromVocab(g);
      // Through JSON text, as read from disk.
      const json: unknown = JSON.parse(JSON.stringify(files.tokenizer));
      const h = vocabFromTokenizerJson(json, files.tokenizerConfig, { config: files.config });
      const gt = new Tokenizer(g);
      const ht = new Tokenizer(h);
      const vectors = readVocabVectors(path)!;
      expect(vectors.length).toBe(46);
      for (const { text, ids } of vectors) {
        const viaHf = ht.encode(text, PLAIN);
        expect(viaHf, JSON.stringify(text)).toEqual(ids);
        expect(gt.encode(text, PLAIN), JSON.stringify(text)).toEqual(ids);
      }
      for (const text of STORIES) {
        expect(ht.encode(text, PLAIN), text).toEqual(gt.encode(text, PLAIN));
        expect(ht.encode(text), text).toEqual(gt.encode(text));
        expect(ht.decode(ht.encode(text))).toBe(gt.decode(gt.encode(text)));
      }
      // The vocabulary itself.
      expect(h.model).toBe(g.model);
      expect(h.tokens).toEqual(g.tokens);
      const odd: string[] = [];
      for (let i = 0; i < g.tokens.length; i++) {
        if (g.attrs[i] !== h.attrs[i] && !expectedAttrDifference(g, i, g.attrs[i]!, h.attrs[i]!))
          odd.push(`${i} ${JSON.stringify(g.tokens[i])}: ${g.attrs[i]} vs ${h.attrs[i]}`);
      }
      expect(odd).toEqual([]);
      if (g.model === "gpt2") {
        expect(h.merges).toEqual(g.merges);
        // mpt and refact share gpt-2's and starcoder's regexes and flags; the file names the model.
        const same: Record<string, string> = { mpt: "gpt-2", refact: "starcoder" };
        expect(h.pre).toBe(same[g.pre] ?? g.pre);
      }
      expect([h.bos, h.unk, h.addBos, h.addSpacePrefix, h.cleanSpaces]).toEqual([
        g.bos,
        g.unk,
        g.addBos,
        g.addSpacePrefix,
        g.cleanSpaces,
      ]);
      if (g.model !== "bert") {
        expect([h.eos, h.pad, h.addEos, h.eot, [...h.eog].sort()]).toEqual([
          g.eos,
          g.pad,
          g.addEos,
          g.eot,
          [...g.eog].sort(),
        ]);
      } else {
        expect([h.eos, h.sep, h.mask, h.pad, h.addEos]).toEqual([102, g.sep, g.mask, g.pad, true]);
      }
      expect(h.chatTemplate).toBe(g.chatTemplate);
    });
  }

  // The Llama 2 stories prompts also have independent reference ids: llama2.c's encoder on the
  // same 32000-token vocabulary (tokenizer.bin), which matches SentencePiece on test.c's cases.
  const spm = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
  const ref = fixturePath("llama2c/reference/encode_llama2_tokenizer_bin.json");
  it.skipIf(!spm || !ref)(
    `llama-spm via tokenizer.json: stories prompts as llama2.c / SentencePiece ${
      spm && ref ? "" : missing("llama2c/reference/encode_llama2_tokenizer_bin.json")
    }`,
    async () => {
      const { readFileSync } = await import("node:fs");
      const data = JSON.parse(readFileSync(ref!, "utf8")) as {
        cases: { text: string; runc_encode_bos: number[] }[];
        upstream_expected_from_test_c: { text: string; ids_with_bos: number[] }[];
      };
      const files = hfFilesFromVocab(vocabFromGgufFile(spm!));
      const t = new Tokenizer(
        vocabFromTokenizerJson(files.tokenizer, files.tokenizerConfig, { config: files.config }),
      );
      for (const text of STORIES) {
        const c = data.cases.find((x) => x.text === text)!;
        expect(t.encode(text), text).toEqual(c.runc_encode_bos);
      }
      for (const c of data.upstream_expected_from_test_c) expect(t.encode(c.text)).toEqual(c.ids_with_bos);
    },
  );

  // The built files are real tokenizer.json: the Hugging Face JS tokenizer reads them and gives the
  // reference ids. NOTE: @huggingface/tokenizers' Digits pre-tokenizer (0.2.0) only splits ASCII
  // digits, where HF's Rust one splits every numeric character ("½"), so it differs on that string.
  for (const name of ["llama-spm", "gpt-2", "deepseek-coder", "bert-bge"]) {
    const p = fixturePath(`tokenizer/ggml-vocab-${name}.gguf`);
    it.skipIf(!p)(
      `${name}: @huggingface/tokenizers agrees on the built tokenizer.json ${p ? "" : missing(name)}`,
      () => {
        const files = hfFilesFromVocab(vocabFromGgufFile(p!));
        const hf = new HfJsTokenizer(files.tokenizer, files.tokenizerConfig);
        const digits = JSON.stringify(files.tokenizer["pre_tokenizer"]).includes('"Digits"');
        for (const { text, ids } of readVocabVectors(p!)!) {
          if (digits && text.includes("½")) continue;
          expect(hf.encode(text, { add_special_tokens: false }).ids, JSON.stringify(text)).toEqual(ids);
        }
      },
    );
  }
});

describe("pre-tokenizer detection (the Split regexes instead of the converter's hash)", () => {
  it("finds every fixture pre-tokenizer from its HF spelling", () => {
    expect(bpePreOfHfPreTokenizer(HF_PRE_TOKENIZERS["gpt-2"])).toBe("gpt-2");
    expect(bpePreOfHfPreTokenizer(HF_PRE_TOKENIZERS["starcoder"])).toBe("starcoder");
    expect(bpePreOfHfPreTokenizer(HF_PRE_TOKENIZERS["falcon"])).toBe("falcon");
    expect(bpePreOfHfPreTokenizer(HF_PRE_TOKENIZERS["deepseek-coder"])).toBe("deepseek-coder");
    expect(bpePreOfHfPreTokenizer(HF_PRE_TOKENIZERS["deepseek-llm"])).toBe("deepseek-llm");
  });
  it("reads HF's (?i:'s|...) contractions as llama.cpp's expanded classes (Llama 3, Qwen2)", () => {
    expect(bpePreOfHfPreTokenizer(HF_PRE_TOKENIZERS["llama-bpe"])).toBe("llama-bpe");
    expect(bpePreOfHfPreTokenizer(HF_PRE_TOKENIZERS["qwen2"])).toBe("qwen2");
  });
  it("knows o200k's spelling (llama.cpp rewrote its letter classes)", () => {
    const o200k =
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    const pre = {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: o200k }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    };
    expect(bpePreOfHfPreTokenizer(pre)).toBe("gpt-4o");
  });
  it("says why it cannot map a pre-tokenizer, and an unknown one is ERR_UNSUPPORTED_TOKENIZER unless pre is given", () => {
    expect(bpeRegexesOfHfPreTokenizer({ type: "Whitespace" })).toEqual({
      reason: 'the pre-tokenizer "Whitespace"',
    });
    expect(
      bpeRegexesOfHfPreTokenizer({ type: "Split", pattern: { Regex: "x" }, behavior: "Removed" }),
    ).toEqual({
      reason: "a Split with behavior Removed",
    });
    const json = {
      model: { type: "BPE", vocab: { a: 0, b: 1, ab: 2 }, merges: ["a b"] },
      pre_tokenizer: {
        type: "Sequence",
        pretokenizers: [
          { type: "Split", pattern: { Regex: "\\w+" } },
          { type: "ByteLevel", use_regex: false },
        ],
      },
      decoder: { type: "ByteLevel" },
    };
    expect(() => vocabFromTokenizerJson(json)).toThrow(OwlError);
    try {
      vocabFromTokenizerJson(json);
    } catch (e) {
      expect((e as OwlError).code).toBe("ERR_UNSUPPORTED_TOKENIZER");
      expect((e as OwlError).message).toContain('["\\\\w+"]');
    }
    const v = vocabFromTokenizerJson(json, undefined, { pre: "gpt-2" });
    expect(v.pre).toBe("gpt-2");
    expect(new Tokenizer(v).encode("ab", PLAIN)).toEqual([2]);
  });
});

describe("mapping rules", () => {
  const spmPath = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
  const spmFiles = spmPath ? hfFilesFromVocab(vocabFromGgufFile(spmPath)) : undefined;
  const texts = spmPath ? [...readVocabVectors(spmPath)!.map((v) => v.text), ...STORIES] : [];

  it.skipIf(!spmFiles)(
    "SPM: a Metaspace pre-tokenizer (newer Llama files) and pair merges tokenize the same",
    () => {
      const base = new Tokenizer(vocabFromTokenizerJson(spmFiles!.tokenizer, spmFiles!.tokenizerConfig));
      const model = spmFiles!.tokenizer["model"] as Record<string, unknown>;
      const metaspace = {
        ...spmFiles!.tokenizer,
        normalizer: null,
        pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false },
        model: { ...model, merges: (model["merges"] as [string, string][]).map(([a, b]) => `${a} ${b}`) },
      };
      const v = vocabFromTokenizerJson(metaspace, spmFiles!.tokenizerConfig);
      expect(v.model).toBe("llama");
      expect(v.addSpacePrefix).toBe(true);
      const t = new Tokenizer(v);
      for (const text of texts) expect(t.encode(text), JSON.stringify(text)).toEqual(base.encode(text));
      // prepend_scheme "never": no space prefix.
      const never = vocabFromTokenizerJson(
        { ...metaspace, pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "never" } },
        spmFiles!.tokenizerConfig,
      );
      expect(never.addSpacePrefix).toBe(false);
    },
  );

  it.skipIf(!spmFiles)(
    "SPM: scores follow the merge ranks (-rank of the first merge making the token)",
    () => {
      const { metadata } = ggufMetadataFromTokenizerJson(spmFiles!.tokenizer, spmFiles!.tokenizerConfig);
      const v = vocabFromTokenizerJson(spmFiles!.tokenizer, spmFiles!.tokenizerConfig);
      const merges = (spmFiles!.tokenizer["model"] as { merges: [string, string][] }).merges;
      const [a, b] = merges[0]!;
      expect(v.scores[v.tokenToId.get(a + b)!]).toBe(-0);
      const [c, d] = merges[100]!;
      expect(v.scores[v.tokenToId.get(c + d)!]).toBeLessThanOrEqual(-0);
      expect(v.scores[v.tokenToId.get("<0x41>")!]).toBe(0);
      expect(v.attrs[v.tokenToId.get("<0x41>")!]).toBe(TokenAttr.BYTE);
      expect(metadata.get("tokenizer.ggml.model")).toEqual({ type: "STRING", value: "llama" });
    },
  );

  it("special ids and flags: tokenizer_config strings among the added tokens, the template, add_*_token, config.json", () => {
    const base = {
      added_tokens: [
        { id: 0, content: "<s>", special: true, normalized: false },
        { id: 1, content: "</s>", special: true, normalized: false },
        { id: 5, content: "<extra>", special: false, normalized: true, rstrip: true },
        { id: 6, content: "<|im_end|>", special: false, normalized: false },
      ],
      normalizer: null,
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      decoder: { type: "ByteLevel" },
      model: { type: "BPE", vocab: { a: 2, b: 3, ab: 4 }, merges: [["a", "b"]] },
      post_processor: {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
        pair: [],
        special_tokens: {},
      },
    };
    let v = vocabFromTokenizerJson(base, { bos_token: "<s>", eos_token: { content: "</s>" } });
    expect([v.bos, v.eos, v.addBos, v.addEos]).toEqual([0, 1, true, false]);
    expect(v.attrs[0]).toBe(TokenAttr.CONTROL);
    expect(v.attrs[5]).toBe(TokenAttr.USER_DEFINED | TokenAttr.RSTRIP);
    // Looks special ("<|...|>"): CONTROL although not marked special; and an end of generation.
    expect(v.attrs[6]! & TokenAttr.CONTROL).toBe(TokenAttr.CONTROL);
    expect(v.eog.has(6)).toBe(true);
    expect(new Tokenizer(v).encode("ab")).toEqual([0, 4]);
    // add_bos_token wins over the template; add_eos_token turns EOS on.
    v = vocabFromTokenizerJson(base, {
      bos_token: "<s>",
      eos_token: "</s>",
      add_bos_token: false,
      add_eos_token: true,
    });
    expect([v.addBos, v.addEos]).toEqual([false, true]);
    expect(new Tokenizer(v).encode("ab")).toEqual([4, 1]);
    // No tokenizer_config: ids from config.json.
    v = vocabFromTokenizerJson({ ...base, post_processor: null }, undefined, {
      config: { bos_token_id: 1, eos_token_id: 0 },
    });
    expect([v.bos, v.eos]).toEqual([1, 0]);
    // A template ending in a token other than EOS: that token becomes EOS and the old one EOT.
    v = vocabFromTokenizerJson(
      {
        ...base,
        post_processor: {
          type: "TemplateProcessing",
          single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<|im_end|>", type_id: 0 } }],
        },
      },
      { eos_token: "</s>" },
    );
    expect([v.eos, v.eot, v.addEos]).toEqual([6, 1, true]);
    // Ids missing from the vocabulary are [PAD<id>] fillers (config.json vocab_size pads too).
    v = vocabFromTokenizerJson(base, {}, { config: { vocab_size: 10 } });
    expect(v.tokens.length).toBe(10);
    expect(v.tokens[9]).toBe("[PAD9]");
    expect(v.attrs[9]).toBe(TokenAttr.UNUSED);
    expect(v.warnings?.[0]).toContain("[PAD<id>]");
  });

  it("chat templates: a string, or a list with named variants", () => {
    const json = {
      model: {
        type: "WordPiece",
        unk_token: "[UNK]",
        continuing_subword_prefix: "##",
        vocab: { "[UNK]": 0, a: 1, "##b": 2 },
      },
      added_tokens: [{ id: 0, content: "[UNK]", special: true }],
      normalizer: { type: "BertNormalizer", lowercase: false, strip_accents: null },
      pre_tokenizer: { type: "BertPreTokenizer" },
    };
    let v = vocabFromTokenizerJson(json, { chat_template: "{{ x }}", unk_token: "[UNK]" });
    expect(v.chatTemplate).toBe("{{ x }}");
    expect(v.tokens).toEqual(["[UNK]", "▁a", "b"]);
    expect(v.lowercase).toBe(false);
    const { metadata } = ggufMetadataFromTokenizerJson(json, {
      chat_template: [
        { name: "default", template: "D" },
        { name: "tool_use", template: "T" },
      ],
    });
    expect(metadata.get("tokenizer.chat_template")).toEqual({ type: "STRING", value: "D" });
    expect(metadata.get("tokenizer.chat_template.tool_use")).toEqual({ type: "STRING", value: "T" });
    v = vocabFromTokenizerJson(json);
    expect(v.chatTemplate).toBeUndefined();
  });

  it("Unigram maps to a t5 vocabulary with its scores", () => {
    const v = vocabFromTokenizerJson({
      model: {
        type: "Unigram",
        unk_id: 0,
        vocab: [
          ["<unk>", 0],
          ["▁a", -1.5],
          ["<0x41>", 0],
          ["b", -3],
        ],
      },
      added_tokens: [],
    });
    expect(v.model).toBe("t5");
    expect(Array.from(v.scores)).toEqual([0, -1.5, 0, -3]);
    expect(Array.from(v.attrs)).toEqual([
      TokenAttr.UNKNOWN,
      TokenAttr.NORMAL,
      TokenAttr.BYTE,
      TokenAttr.NORMAL,
    ]);
  });

  it("malformed files are ERR_TOKENIZER_BAD_METADATA; other models ERR_UNSUPPORTED_TOKENIZER", () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as OwlError).code;
      }
      return "none";
    };
    expect(code(() => vocabFromTokenizerJson([]))).toBe("ERR_TOKENIZER_BAD_METADATA");
    expect(
      code(() =>
        vocabFromTokenizerJson({
          model: { type: "BPE", vocab: { a: -1 }, merges: [] },
          decoder: { type: "ByteLevel" },
        }),
      ),
    ).toBe("ERR_TOKENIZER_BAD_METADATA");
    expect(
      code(() =>
        vocabFromTokenizerJson({
          model: { type: "BPE", vocab: { a: 0 }, merges: [1] },
          decoder: { type: "ByteLevel" },
        }),
      ),
    ).toBe("ERR_TOKENIZER_BAD_METADATA");
    expect(code(() => vocabFromTokenizerJson({ model: { type: "WordLevel", vocab: { a: 0 } } }))).toBe(
      "ERR_UNSUPPORTED_TOKENIZER",
    );
    expect(code(() => vocabFromTokenizerJson({ model: { type: "BPE", vocab: { a: 0 }, merges: [] } }))).toBe(
      "ERR_UNSUPPORTED_TOKENIZER",
    );
  });
});

describe("loadHfTokenizer (a model directory)", () => {
  const dir = mkdtempSync(join(tmpdir(), "owl-hf-tok-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const p = fixturePath("tokenizer/ggml-vocab-deepseek-coder.gguf");
  it.skipIf(!p)(
    `reads tokenizer.json, tokenizer_config.json, config.json and chat_template.jinja ${p ? "" : missing("deepseek-coder")}`,
    () => {
      const g = vocabFromGgufFile(p!);
      const files = hfFilesFromVocab(g);
      writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(files.tokenizer));
      writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(files.tokenizerConfig));
      writeFileSync(join(dir, "config.json"), JSON.stringify(files.config));
      writeFileSync(join(dir, "chat_template.jinja"), "{{ bos_token }}{{ messages[0].content }}");
      const t = loadHfTokenizer(dir);
      expect(t.size).toBe(g.tokens.length);
      expect(t.vocab.chatTemplate).toBe("{{ bos_token }}{{ messages[0].content }}");
      const gt = new Tokenizer(g);
      for (const text of STORIES) expect(t.encode(text)).toEqual(gt.encode(text));
    },
  );
  it("a directory without tokenizer.json is ERR_FILE_NOT_FOUND", () => {
    expect(() => loadHfTokenizer(join(dir, "nope"))).toThrow(/no tokenizer\.json/);
  });
});
