/**
 * The Tokenizer facade, with llama.cpp's llama_vocab::impl::tokenize / detokenize semantics:
 * BOS/EOS per add_special and the vocabulary's flags, special-token text only with parseSpecial,
 * the SPM space prefix after special tokens, LSTRIP/RSTRIP, the special-token split order,
 * decoding options, the streaming decoder, and inputs a JS string can hold but UTF-8 cannot.
 */
import { describe, expect, it } from "vitest";
import { type GgufValue, garr, gbool, gstr, gu32 } from "../src/formats/gguf/index.ts";
import { SpecialSplitter } from "../src/tokenizer/special-split.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { TokenAttr } from "../src/tokenizer/types.ts";
import { vocabFromGguf } from "../src/tokenizer/vocab.ts";
import { isOwlError } from "../src/util/errors.ts";
import { fixturePath, missing, REPO_ROOT } from "./helpers/fixtures.ts";

const SPM = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
const PHI3 = fixturePath("tokenizer/ggml-vocab-phi-3.gguf");
const BUNDLED = `${REPO_ROOT}/models/stories260k.gguf`;
let spmTokenizer: Tokenizer | undefined;
/** The llama-spm tokenizer, loaded once (tests must not change it). */
const spm = (): Tokenizer => {
  spmTokenizer ??= Tokenizer.fromGgufFile(SPM!);
  return spmTokenizer;
};

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isOwlError(e) ? e.code : `not an OwlError: ${String(e)}`;
  }
  return undefined;
}

/** A tiny SPM vocabulary with byte tokens, for hand-made cases. */
function tinyVocab(extra: { text: string; type: number }[], more: [string, GgufValue][] = []) {
  const base = ["<unk>", "<s>", "</s>"];
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const tokens = [...base, ...bytes, ...extra.map((e) => e.text)];
  const types = [2, 3, 3, ...bytes.map(() => 6), ...extra.map((e) => e.type)];
  return vocabFromGguf(
    new Map<string, GgufValue>([
      ["tokenizer.ggml.model", gstr("llama")],
      ["tokenizer.ggml.tokens", garr.strings(tokens)],
      ["tokenizer.ggml.scores", garr.f32(tokens.map((_, i) => -i))],
      ["tokenizer.ggml.token_type", garr.i32(types)],
      ...more,
    ]),
  );
}
const ID0 = 3 + 256; // first `extra` token

describe("Tokenizer.encode", () => {
  it("the bundled stories260K: 'Once upon a time' -> 1 403 407 261 378 (llama2.c run.c)", () => {
    const tok = Tokenizer.fromGgufFile(BUNDLED);
    expect(tok.encode("Once upon a time")).toEqual([1, 403, 407, 261, 378]);
    expect(tok.encode("Once upon a time", { addSpecial: false })).toEqual([403, 407, 261, 378]);
  });

  it.skipIf(!SPM)("adds BOS as the vocabulary says; an empty text gives [] or [BOS]", () => {
    const tok = spm();
    expect(tok.encode("Hello")).toEqual([1, 15043]);
    expect(tok.encode("")).toEqual([1]);
    expect(tok.encode("", { addSpecial: false })).toEqual([]);
  });

  it("adds EOS when add_eos_token is set, and refuses when BOS is asked for but missing", () => {
    const v = tinyVocab([{ text: "▁a", type: 1 }], [["tokenizer.ggml.add_eos_token", gbool(true)]]);
    expect(new Tokenizer(v).encode("a")).toEqual([1, ID0, 2]);
    v.bos = undefined;
    expect(code(() => new Tokenizer(v).encode("a"))).toBe("ERR_TOKENIZER_BAD_METADATA");
    expect(new Tokenizer(v).encode("a", { addSpecial: false })).toEqual([ID0]);
  });

  it.skipIf(!SPM)("recognizes <s> and </s> in the text only with parseSpecial", () => {
    const tok = spm();
    // After a special token the SPM space prefix is added again (llama.cpp's is_prev_special).
    expect(tok.encode("<s>Hello", { parseSpecial: true })).toEqual([1, 1, 15043]);
    expect(tok.encode("Hello</s>", { parseSpecial: true, addSpecial: false })).toEqual([15043, 2]);
    expect(tok.encode("<s>Hello")).toEqual([1, 529, 29879, 29958, 10994]);
  });

  it.skipIf(!PHI3)("phi-3: special tokens swallow the whitespace to their right (RSTRIP)", () => {
    const tok = Tokenizer.fromGgufFile(PHI3!);
    expect(tok.partition("<|user|>\nHello <|end|>\n<|assistant|>", true)).toEqual([
      32010,
      "Hello ",
      32007,
      32001,
    ]);
    expect(tok.encode("<|user|>\nHello<|end|>\n<|assistant|>", { parseSpecial: true })).toEqual([
      1, 32010, 15043, 32007, 32001,
    ]);
  });

  it("splits at special tokens longest first, with LSTRIP/RSTRIP, and user-defined tokens always", () => {
    const v = tinyVocab([
      { text: "ab", type: 4 },
      { text: "bcd", type: 4 },
      { text: "<ctl>", type: 3 },
      { text: "[L]", type: 4 },
      { text: "[R]", type: 4 },
    ]);
    const [AB, BCD, CTL, L, R] = [ID0, ID0 + 1, ID0 + 2, ID0 + 3, ID0 + 4];
    v.attrs[L] = v.attrs[L]! | TokenAttr.LSTRIP;
    v.attrs[R] = v.attrs[R]! | TokenAttr.RSTRIP;
    const tok = new Tokenizer(v);
    // "bcd" (3 bytes) is taken before "ab" (2), as llama.cpp's length-sorted special cache does.
    expect(tok.partition("abcd")).toEqual(["a", BCD]);
    expect(tok.partition("ab ab")).toEqual([AB, " ", AB]);
    // Control tokens are text unless parseSpecial; user-defined ones are split out either way.
    expect(tok.partition("x<ctl>y")).toEqual(["x<ctl>y"]);
    expect(tok.partition("x<ctl>y", true)).toEqual(["x", CTL, "y"]);
    expect(tok.partition("x \t[L] y")).toEqual(["x", L, " y"]);
    expect(tok.partition("x [R] \n y")).toEqual(["x ", R, "y"]);
    expect(tok.partition("[R]   ")).toEqual([R]);
    expect(tok.partition("")).toEqual([]);
  });

  it.skipIf(!SPM)("a lone surrogate becomes U+FFFD (UTF-8 has no form for it)", () => {
    const tok = spm();
    expect(tok.encode("a\uD800b")).toEqual(tok.encode("a\uFFFDb"));
    expect(tok.encode("\uDC00x\uD83D")).toEqual(tok.encode("\uFFFDx\uFFFD"));
    expect(tok.encode("🐶")).toEqual([1, 29871, 243, 162, 147, 185]);
  });

  it("a vocabulary without byte tokens gives <unk> for a character it cannot spell", () => {
    const v = vocabFromGguf(
      new Map<string, GgufValue>([
        ["tokenizer.ggml.model", gstr("llama")],
        ["tokenizer.ggml.tokens", garr.strings(["<unk>", "<s>", "</s>", "▁", "a"])],
      ]),
    );
    expect(new Tokenizer(v).encode("a€a", { addSpecial: false })).toEqual([3, 4, 0, 4]);
    v.unk = undefined;
    expect(code(() => new Tokenizer(v).encode("a€a"))).toBe("ERR_TOKENIZER_BAD_METADATA");
  });

  it("refuses to encode with a vocabulary it has no codec for", () => {
    const v = vocabFromGguf(
      new Map<string, GgufValue>([
        ["tokenizer.ggml.model", gstr("t5")],
        ["tokenizer.ggml.tokens", garr.strings(["<pad>", "</s>", "<unk>", "▁a"])],
      ]),
    );
    expect(code(() => new Tokenizer(v).encode("a"))).toBe("ERR_UNSUPPORTED_TOKENIZER");
    const none = vocabFromGguf(new Map<string, GgufValue>([["tokenizer.ggml.model", gstr("none")]]));
    expect(code(() => new Tokenizer(none).encode("a"))).toBe("ERR_UNSUPPORTED_TOKENIZER");
    expect(new Tokenizer(none).decode([])).toBe("");
  });

  it.skipIf(!SPM)("BPE and WordPiece vocabularies go to their codecs", () => {
    const gpt2 = fixturePath("tokenizer/ggml-vocab-gpt-2.gguf");
    if (gpt2) {
      const tok = Tokenizer.fromGgufFile(gpt2);
      expect(tok.encode("Hello world")).toEqual([15496, 995]);
      // clean_up_tokenization_spaces
      expect(tok.decode(tok.encode("Hello world . it 's"))).toBe("Hello world. it's");
    }
    const bert = fixturePath("tokenizer/ggml-vocab-bert-bge.gguf");
    if (bert) expect(Tokenizer.fromGgufFile(bert).encode("Hello world")).toEqual([101, 7592, 2088, 102]);
  });
});

describe("Tokenizer.decode", () => {
  it.skipIf(!SPM)("follows llama.cpp's detokenize: leading space, BOS/EOS, special rendering", () => {
    const tok = spm();
    expect(tok.decode([15043, 3186])).toBe("Hello world");
    expect(tok.decode([1, 15043, 2])).toBe("<s> Hello</s>");
    expect(tok.decode([1, 15043, 2], { renderSpecial: false })).toBe(" Hello");
    // NOTE: llama.cpp keeps the space after a BOS it removes, and only removes EOS when add_eos.
    expect(tok.decode([1, 15043, 2], { removeSpecial: true })).toBe(" Hello</s>");
    expect(tok.tokenToPiece(15043)).toBe(" Hello");
    expect(tok.tokenToPiece(15043, { lstrip: 1 })).toBe("Hello");
    expect(tok.tokenToPiece(1, { renderSpecial: false })).toBe("");
    expect(tok.tokenToPiece(243)).toBe("\uFFFD");
    expect(tok.decode([29871, 243, 162, 147, 185])).toBe("🐶");
    expect(tok.decode(Int32Array.of(15043))).toBe("Hello");
  });

  it.skipIf(!SPM)("keeps a leading U+FEFF", () => {
    const tok = spm();
    expect(tok.decode(tok.encode("\uFEFFhi", { addSpecial: false }))).toBe("\uFEFFhi");
  });

  it.skipIf(!SPM)("refuses ids outside the vocabulary", () => {
    const tok = spm();
    for (const id of [-1, 32000, 1.5, Number.NaN]) {
      expect(code(() => tok.decode([15043, id]))).toBe("ERR_TOKEN_OUT_OF_RANGE");
    }
  });

  it.skipIf(!SPM)("isEog and isControl", () => {
    const tok = spm();
    expect(tok.isEog(2)).toBe(true);
    expect(tok.isEog(1)).toBe(false);
    expect(tok.isControl(1)).toBe(true);
    expect(tok.isControl(15043)).toBe(false);
  });
});

describe("StreamingDecoder", () => {
  it.skipIf(!SPM)("never emits half a character: an emoji split over byte tokens comes out whole", () => {
    const tok = spm();
    const text = "Hi 🐶! Café ☕ 日本";
    const ids = tok.encode(text);
    const dec = tok.streamingDecoder({ renderSpecial: false });
    const outs = ids.map((id) => dec.push(id));
    outs.push(dec.flush());
    for (const s of outs) expect(s).not.toContain("\uFFFD");
    // 🐶 is 4 byte tokens: three pushes give "", the fourth gives the whole emoji.
    const dog = ids.indexOf(243);
    expect(outs.slice(dog, dog + 4)).toEqual(["", "", "", "🐶"]);
    // Streaming is token_to_piece without the leading-space removal, as llama.cpp streams.
    expect(outs.join("")).toBe(` ${text}`);
    expect(outs.join("")).toBe(tok.decode(ids, { renderSpecial: false }));
  });

  it.skipIf(!SPM)("flush() turns an unfinished character into U+FFFD and starts over", () => {
    const tok = spm();
    const dec = tok.streamingDecoder();
    expect(dec.push(243)).toBe("");
    expect(dec.push(162)).toBe("");
    expect(dec.flush()).toBe("\uFFFD");
    expect(dec.push(15043)).toBe(" Hello");
    expect(dec.push(1)).toBe("<s>");
    expect(dec.flush()).toBe("");
  });
});

describe("Tokenizer without fixtures", () => {
  it.skipIf(!!SPM)(missing("tokenizer/ggml-vocab-llama-spm.gguf"), () => {});
});

describe("Tokenizer: special ids from metadata", () => {
  it("uses the ids the metadata names for BOS/EOS", () => {
    const v = tinyVocab(
      [
        { text: "[BOS]", type: 3 },
        { text: "[EOS]", type: 3 },
        { text: "▁a", type: 1 },
      ],
      [
        ["tokenizer.ggml.bos_token_id", gu32(ID0)],
        ["tokenizer.ggml.eos_token_id", gu32(ID0 + 1)],
        ["tokenizer.ggml.add_eos_token", gbool(true)],
      ],
    );
    const tok = new Tokenizer(v);
    expect(tok.encode("a")).toEqual([ID0, ID0 + 2, ID0 + 1]);
    expect(tok.encode("[BOS]a", { parseSpecial: true, addSpecial: false })).toEqual([ID0, ID0 + 2]);
    expect(tok.isEog(ID0 + 1)).toBe(true);
    expect(tok.decode([ID0, ID0 + 2, ID0 + 1], { removeSpecial: true })).toBe(" a");
  });
});

/** llama.cpp's tokenizer_st_partition as written: one pass over all fragments per special token. */
function referenceSplit(
  v: ReturnType<typeof tinyVocab>,
  text: string,
  parseSpecial: boolean,
): (string | number)[] {
  const enc = new TextEncoder();
  const ids: number[] = [];
  for (let id = 0; id < v.attrs.length; id++) {
    const a = v.attrs[id]!;
    if ((a & (TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN)) === 0) continue;
    if (!parseSpecial && (a & (TokenAttr.CONTROL | TokenAttr.UNKNOWN)) !== 0) continue;
    ids.push(id);
  }
  ids.sort((a, b) => enc.encode(v.tokens[b]!).length - enc.encode(v.tokens[a]!).length || a - b);
  const space = (c: string) => c === " " || (c >= "\t" && c <= "\r");
  type Frag = { off: number; len: number } | { id: number };
  let buffer: Frag[] = text.length > 0 ? [{ off: 0, len: text.length }] : [];
  for (const id of ids) {
    const t = v.tokens[id]!;
    const attr = v.attrs[id]!;
    const next: Frag[] = [];
    for (const f of buffer) {
      if ("id" in f) {
        next.push(f);
        continue;
      }
      let base = f.off;
      let len = f.len;
      for (;;) {
        const match = text.indexOf(t, base);
        if (match < 0 || match + t.length > base + len) {
          if (len > 0) next.push({ off: base, len });
          break;
        }
        if (match > base) {
          let leftLen = match - base;
          if (attr & TokenAttr.LSTRIP) while (leftLen > 0 && space(text[base + leftLen - 1]!)) leftLen--;
          if (leftLen > 0) next.push({ off: base, len: leftLen });
        }
        next.push({ id });
        if (match + t.length >= base + len) break;
        let rOff = match + t.length;
        let rLen = base + len - rOff;
        if (attr & TokenAttr.RSTRIP)
          while (rLen > 0 && space(text[rOff]!)) {
            rOff++;
            rLen--;
          }
        base = rOff;
        len = rLen;
      }
    }
    buffer = next;
  }
  return buffer.map((f) => ("id" in f ? f.id : text.slice(f.off, f.off + f.len)));
}

describe("special-token split", () => {
  const texts = ["ab", "bcd", "  ", "   ", "\n\n", "<x>", "<xx>", "x>", "<ctl>", "é€", "🐶"];
  const make = () => {
    const v = tinyVocab(texts.map((text, i) => ({ text, type: i === 8 ? 3 : 4 })));
    v.attrs[ID0 + 2] = v.attrs[ID0 + 2]! | TokenAttr.RSTRIP;
    v.attrs[ID0 + 4] = v.attrs[ID0 + 4]! | TokenAttr.LSTRIP;
    v.attrs[ID0 + 5] = v.attrs[ID0 + 5]! | TokenAttr.LSTRIP | TokenAttr.RSTRIP;
    return v;
  };

  it("gives llama.cpp's fragments on random text (stored occurrences and the indexOf path)", () => {
    const v = make();
    let seed = 42;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const alphabet = [...texts, "a", "b", "c", "d", " ", "\n", "\t", "<", ">", "x"];
    for (const parseSpecial of [false, true]) {
      const stored = new SpecialSplitter(v, parseSpecial);
      const searched = new SpecialSplitter(v, parseSpecial, { occurrenceBudget: 0 });
      for (let k = 0; k < 2000; k++) {
        let s = "";
        for (let i = 0, n = Math.floor(rnd() * 30); i < n; i++)
          s += alphabet[Math.floor(rnd() * alphabet.length)];
        const expected = referenceSplit(v, s, parseSpecial);
        const a = stored.split(s);
        const b = searched.split(s);
        if (JSON.stringify(a) !== JSON.stringify(expected) || JSON.stringify(b) !== JSON.stringify(expected))
          expect({ s, a, b }).toEqual({ s, a: expected, b: expected });
      }
    }
  });

  it("splits 10 MB holding 5000 distinct special tokens in seconds (llama.cpp: one scan per token)", () => {
    const extra = Array.from({ length: 5000 }, (_, i) => ({ text: `<|extra_${i}|>`, type: 4 }));
    const tok = new Tokenizer(tinyVocab(extra));
    const unit = `${extra.map((e) => e.text).join(" hi ")}\n`;
    const text = unit.repeat(Math.ceil(10_000_000 / unit.length));
    const t0 = performance.now();
    const parts = tok.partition(text);
    expect((performance.now() - t0) / 1000).toBeLessThan(30);
    expect(parts.slice(0, 4)).toEqual([ID0, " hi ", ID0 + 1, " hi "]);
    expect(parts.filter((p) => typeof p === "number")).toHaveLength(
      5000 * Math.ceil(10_000_000 / unit.length),
    );
  }, 60_000);
});
