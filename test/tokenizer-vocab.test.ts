/**
 * vocabFromGguf: llama.cpp's defaults per tokenizer model and pre-tokenizer, the metadata
 * overrides, the end-of-generation set and attribute fixups, and OwlErrors for unusable metadata.
 * Hand-built metadata for each rule; the llama.cpp vocab GGUFs for the values llama.cpp prints.
 */
import { describe, expect, it } from "vitest";
import {
  type GgufMetadata,
  type GgufValue,
  garr,
  gbool,
  gf32,
  gstr,
  gu32,
} from "../src/formats/gguf/index.ts";
import { TokenAttr } from "../src/tokenizer/types.ts";
import { vocabFromGguf, vocabFromGgufFile } from "../src/tokenizer/vocab.ts";
import { isOwlError } from "../src/util/errors.ts";
import { fixturePath, listFixtures } from "./helpers/fixtures.ts";

const T = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 };

/** A small "llama" vocabulary: <unk> <s> </s>, then `extra` normal tokens. */
function llamaMd(extra: string[] = ["▁a", "b"], more: [string, GgufValue][] = []): GgufMetadata {
  const tokens = ["<unk>", "<s>", "</s>", ...extra];
  return new Map<string, GgufValue>([
    ["tokenizer.ggml.model", gstr("llama")],
    ["tokenizer.ggml.tokens", garr.strings(tokens)],
    ["tokenizer.ggml.scores", garr.f32(tokens.map((_, i) => -i))],
    [
      "tokenizer.ggml.token_type",
      garr.i32(tokens.map((_, i) => (i === 0 ? T.UNKNOWN : i < 3 ? T.CONTROL : T.NORMAL))),
    ],
    ...more,
  ]);
}

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isOwlError(e) ? e.code : `not an OwlError: ${String(e)}`;
  }
  return undefined;
}

describe("vocabFromGguf: llama (SPM) defaults and overrides", () => {
  it("uses llama.cpp's SPM defaults", () => {
    const v = vocabFromGguf(llamaMd());
    expect(v).toMatchObject({
      model: "llama",
      pre: "default",
      bos: 1,
      eos: 2,
      unk: 0,
      addBos: true,
      addEos: false,
    });
    expect(v).toMatchObject({ addSpacePrefix: true, cleanSpaces: false, sep: undefined, pad: undefined });
    expect([...v.eog]).toEqual([2]);
    expect(v.attrs[0]).toBe(TokenAttr.UNKNOWN);
    expect(v.attrs[1]).toBe(TokenAttr.CONTROL);
    expect(v.attrs[3]).toBe(TokenAttr.NORMAL);
    expect(v.scores[4]).toBe(-4);
    expect(v.tokenToId.get("▁a")).toBe(3);
  });

  it("applies the metadata overrides", () => {
    const v = vocabFromGguf(
      llamaMd(
        ["▁a", "b"],
        [
          ["tokenizer.ggml.bos_token_id", gu32(3)],
          ["tokenizer.ggml.eos_token_id", gu32(4)],
          ["tokenizer.ggml.add_bos_token", gbool(false)],
          ["tokenizer.ggml.add_eos_token", gbool(true)],
          ["tokenizer.ggml.add_space_prefix", gbool(false)],
          ["tokenizer.ggml.remove_extra_whitespaces", gbool(true)],
          ["tokenizer.chat_template", gstr("{{ x }}")],
        ],
      ),
    );
    expect(v).toMatchObject({ bos: 3, eos: 4, addBos: false, addEos: true, addSpacePrefix: false });
    expect(v).toMatchObject({ removeExtraWhitespaces: true, chatTemplate: "{{ x }}" });
    expect(v.eog.has(4)).toBe(true);
  });

  it("ignores an out-of-range special id with a warning and disables an out-of-range default", () => {
    const v = vocabFromGguf(llamaMd([], [["tokenizer.ggml.eos_token_id", gu32(99)]]));
    expect(v.eos).toBe(2);
    expect(v.warnings?.join("\n")).toMatch(/bad special token: 'tokenizer.ggml.eos_token_id' = 99/);
    const one = vocabFromGguf(
      new Map<string, GgufValue>([
        ["tokenizer.ggml.model", gstr("llama")],
        ["tokenizer.ggml.tokens", garr.strings(["<unk>"])],
      ]),
    );
    expect(one).toMatchObject({ bos: undefined, eos: undefined, unk: 0 });
  });

  it("reads int32 scores and defaults to zeros and NORMAL without scores or types", () => {
    const md = llamaMd();
    md.set("tokenizer.ggml.scores", garr.i32([0, 0, 0, -7, -8]));
    expect(vocabFromGguf(md).scores[3]).toBe(-7);
    md.delete("tokenizer.ggml.scores");
    md.delete("tokenizer.ggml.token_type");
    const v = vocabFromGguf(md);
    expect(Array.from(v.scores)).toEqual([0, 0, 0, 0, 0]);
    // "</s>" is end-of-generation text, so llama.cpp makes it CONTROL even without types.
    expect(Array.from(v.attrs)).toEqual([4, 4, 4 | 8, 4, 4]);
  });

  it("renames empty tokens and keeps the last id of a duplicated text", () => {
    const v = vocabFromGguf(llamaMd(["", "x", "x"]));
    expect(v.tokens[3]).toBe("[EMPTY_3]");
    expect(v.tokenToId.get("x")).toBe(5);
    expect(v.warnings?.join("\n")).toMatch(/empty token at index 3/);
  });

  it("marks control tokens whose text says unused as UNUSED", () => {
    const md = llamaMd(["<unused0>"]);
    md.set("tokenizer.ggml.token_type", garr.i32([T.UNKNOWN, T.CONTROL, T.CONTROL, T.CONTROL]));
    expect(vocabFromGguf(md).attrs[3]).toBe(TokenAttr.CONTROL | TokenAttr.UNUSED);
  });
});

describe("vocabFromGguf: end of generation and attribute fixups", () => {
  it("finds EOT/EOM by text, forces them to CONTROL and ends generation on them", () => {
    const v = vocabFromGguf(llamaMd(["<|im_end|>", "<|eom_id|>", "<|endoftext|>", "<end_of_turn>"]));
    expect(v.eot).toBe(6); // the highest id among the EOT texts, like llama.cpp's libstdc++ walk
    expect(v.eom).toBe(4);
    expect([...v.eog].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6]);
    for (const id of [3, 4, 5, 6]) expect(v.attrs[id]! & TokenAttr.CONTROL).toBeTruthy();
    expect(v.warnings?.join("\n")).toMatch(/control-looking token/);
  });

  it("keeps an explicit eot_token_id", () => {
    const v = vocabFromGguf(
      llamaMd(["<|im_end|>", "<|eot_id|>"], [["tokenizer.ggml.eot_token_id", gu32(3)]]),
    );
    expect(v.eot).toBe(3);
    expect(v.eog.has(4)).toBe(true);
  });

  it("fill-in-the-middle tokens: found by text; pad/rep/sep end generation", () => {
    const v = vocabFromGguf(
      llamaMd([
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        "<|fim_pad|>",
        "<|repo_name|>",
        "<|file_sep|>",
      ]),
    );
    expect(v).toMatchObject({ fimPre: 3, fimSuf: 4, fimMid: 5, fimPad: 6, fimRep: 7, fimSep: 8 });
    expect([6, 7, 8].every((id) => v.eog.has(id))).toBe(true);
    expect(v.eog.has(3)).toBe(false);
  });

  it("gpt-oss: <|end|> is not end of generation next to <|return|> and <|call|>; harmony tokens are rendered", () => {
    const v = vocabFromGguf(llamaMd(["<|return|>", "<|call|>", "<|end|>", "<|channel|>", "<|message|>"]));
    expect(v.eog.has(3)).toBe(true);
    expect(v.eog.has(4)).toBe(true);
    expect(v.eog.has(5)).toBe(false);
    expect(v.attrs[5]).toBe(TokenAttr.USER_DEFINED);
    expect(v.attrs[6]).toBe(TokenAttr.USER_DEFINED);
    expect(v.attrs[7]).toBe(TokenAttr.USER_DEFINED);
  });

  it("phi-3: special tokens strip the whitespace to their right, except <s>, <unk> and <|endoftext|>", () => {
    const path = fixturePath("tokenizer/ggml-vocab-phi-3.gguf");
    if (!path) return;
    const v = vocabFromGgufFile(path);
    const attr = (t: string) => v.attrs[v.tokenToId.get(t)!]!;
    expect(attr("<|end|>") & TokenAttr.RSTRIP).toBeTruthy();
    expect(attr("<|user|>") & TokenAttr.RSTRIP).toBeTruthy();
    expect(attr("</s>") & TokenAttr.RSTRIP).toBeTruthy();
    expect(attr("<s>") & TokenAttr.RSTRIP).toBe(0);
    expect(attr("<|endoftext|>") & TokenAttr.RSTRIP).toBe(0);
    expect(v).toMatchObject({ bos: 1, eos: 32000, eot: 32007, pad: 32000 });
    expect([...v.eog].sort((a, b) => a - b)).toEqual([2, 32000, 32007]);
  });
});

describe("vocabFromGguf: BPE and WPM flags", () => {
  const bpe = (pre: string | undefined, more: [string, GgufValue][] = []) =>
    new Map<string, GgufValue>([
      ["tokenizer.ggml.model", gstr("gpt2")],
      ...(pre === undefined ? [] : ([["tokenizer.ggml.pre", gstr(pre)]] as [string, GgufValue][])),
      ["tokenizer.ggml.tokens", garr.strings(["a", "b", "ab", "<|endoftext|>"])],
      ["tokenizer.ggml.merges", garr.strings(["a b"])],
      ...more,
    ]);

  it("gpt2 defaults, per-pre flags, and the missing-pre warning", () => {
    const v = vocabFromGguf(bpe("gpt-2"));
    expect(v).toMatchObject({ model: "gpt2", pre: "gpt-2", bos: undefined, eos: undefined, unk: undefined });
    expect(v).toMatchObject({ addBos: false, addSpacePrefix: false, cleanSpaces: true, merges: ["a b"] });
    expect(v.eot).toBe(3);
    expect(vocabFromGguf(bpe("llama-bpe"))).toMatchObject({ addBos: true, ignoreMerges: true });
    expect(vocabFromGguf(bpe("qwen2"))).toMatchObject({ cleanSpaces: false });
    expect(vocabFromGguf(bpe("roberta-bpe"))).toMatchObject({ addSep: true });
    const none = vocabFromGguf(bpe(undefined));
    expect(none.pre).toBe("default");
    expect(none.warnings?.join("\n")).toMatch(/missing pre-tokenizer/);
  });

  it("bert defaults", () => {
    const tokens = Array.from({ length: 110 }, (_, i) => `t${i}`);
    const v = vocabFromGguf(
      new Map<string, GgufValue>([
        ["tokenizer.ggml.model", gstr("bert")],
        ["tokenizer.ggml.tokens", garr.strings(tokens)],
      ]),
    );
    expect(v).toMatchObject({ bos: 101, eos: undefined, unk: 100, sep: 102, pad: 0, mask: 103 });
    expect(v).toMatchObject({
      addBos: true,
      addSep: true,
      cleanSpaces: true,
      lowercase: true,
      stripAccents: true,
    });
  });

  it("the llama.cpp vocab files load with the special ids llama.cpp reports", () => {
    const expected: Record<string, Partial<Record<string, unknown>>> = {
      "ggml-vocab-llama-spm.gguf": {
        model: "llama",
        bos: 1,
        eos: 2,
        unk: 0,
        addBos: true,
        addSpacePrefix: true,
      },
      "ggml-vocab-bert-bge.gguf": { model: "bert", bos: 101, sep: 102, unk: 100, pad: 0, mask: 103 },
      "ggml-vocab-gpt-2.gguf": { model: "gpt2", pre: "gpt-2", bos: 50256, eos: 50256, addBos: false },
      "ggml-vocab-deepseek-coder.gguf": {
        model: "gpt2",
        bos: 32013,
        eos: 32014,
        addBos: true,
        cleanSpaces: false,
      },
      "ggml-vocab-baichuan.gguf": { model: "llama", bos: 1, eos: 2, pad: 0 },
    };
    let checked = 0;
    for (const path of listFixtures("tokenizer", /\.gguf$/)) {
      const name = path.replace(/^.*[\\/]/, "");
      const v = vocabFromGgufFile(path);
      expect(v.tokens.length).toBeGreaterThan(1000);
      if (v.eos !== undefined) expect(v.eog.has(v.eos)).toBe(true);
      if (expected[name]) {
        expect(v).toMatchObject(expected[name]!);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(0);
  });
});

describe("vocabFromGguf: unusable metadata", () => {
  it("missing model or token list -> ERR_TOKENIZER_MISSING_METADATA", () => {
    const md = llamaMd();
    md.delete("tokenizer.ggml.model");
    expect(code(() => vocabFromGguf(md))).toBe("ERR_TOKENIZER_MISSING_METADATA");
    const md2 = llamaMd();
    md2.delete("tokenizer.ggml.tokens");
    expect(code(() => vocabFromGguf(md2))).toBe("ERR_TOKENIZER_MISSING_METADATA");
    const md3 = new Map<string, GgufValue>([
      ["tokenizer.ggml.model", gstr("gpt2")],
      ["tokenizer.ggml.pre", gstr("gpt-2")],
      ["tokenizer.ggml.tokens", garr.strings(["a"])],
    ]);
    expect(code(() => vocabFromGguf(md3))).toBe("ERR_TOKENIZER_MISSING_METADATA");
  });

  it("wrong types and short arrays -> ERR_TOKENIZER_BAD_METADATA, naming the key", () => {
    const cases: [string, GgufValue][] = [
      ["tokenizer.ggml.model", gu32(1)],
      ["tokenizer.ggml.tokens", garr.i32([1, 2])],
      ["tokenizer.ggml.scores", garr.f32([0, 0])],
      ["tokenizer.ggml.scores", garr.strings(["a", "b", "c", "d", "e"])],
      ["tokenizer.ggml.token_type", garr.i32([1])],
      ["tokenizer.ggml.token_type", garr.u8([1, 1, 1, 1, 1])],
      ["tokenizer.ggml.bos_token_id", gstr("1")],
      ["tokenizer.ggml.bos_token_id", gf32(1)],
      ["tokenizer.ggml.add_bos_token", gu32(1)],
    ];
    for (const [key, value] of cases) {
      const md = llamaMd();
      md.set(key, value);
      let err: unknown;
      try {
        vocabFromGguf(md, "model.gguf");
      } catch (e) {
        err = e;
      }
      expect(isOwlError(err, "ERR_TOKENIZER_BAD_METADATA"), `${key} = ${JSON.stringify(value.type)}`).toBe(
        true,
      );
      expect((err as Error).message).toContain(key);
      expect((err as Error).message).toContain("model.gguf");
    }
  });

  it("unknown or unsupported tokenizer models and pre-tokenizers -> ERR_UNSUPPORTED_TOKENIZER", () => {
    for (const model of ["foo", "rwkv", "plamo2"]) {
      const md = llamaMd();
      md.set("tokenizer.ggml.model", gstr(model));
      expect(code(() => vocabFromGguf(md))).toBe("ERR_UNSUPPORTED_TOKENIZER");
    }
    const md = new Map<string, GgufValue>([
      ["tokenizer.ggml.model", gstr("gpt2")],
      ["tokenizer.ggml.pre", gstr("no-such-pre")],
      ["tokenizer.ggml.tokens", garr.strings(["a"])],
      ["tokenizer.ggml.merges", garr.strings([])],
    ]);
    expect(code(() => vocabFromGguf(md))).toBe("ERR_UNSUPPORTED_TOKENIZER");
  });

  it("a vocabulary-less model (tokenizer.ggml.model = none) loads empty", () => {
    const v = vocabFromGguf(
      new Map<string, GgufValue>([
        ["general.architecture", gstr("llama")],
        ["llama.vocab_size", gu32(3)],
        ["tokenizer.ggml.model", gstr("none")],
      ]),
    );
    expect(v).toMatchObject({ model: "none", bos: undefined, eos: undefined });
    expect(v.tokens).toHaveLength(3);
  });
});
