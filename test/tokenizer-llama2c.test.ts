/**
 * Acceptance item 3: llama2.c tokenizers (tok512.bin, the Llama 2 tokenizer.bin) converted to GGUF
 * metadata by tools/convert.ts, loaded by vocabFromGguf, encode to exactly what llama2.c's run.c
 * encode() gives (../shared/fixtures/llama2c/reference/encode_*.json: with and without BOS), and
 * the 5 vectors of llama2.c's test.c, whose ids came from SentencePiece itself.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { readLlama2cTokenizer } from "../src/formats/llama2c/tokenizer.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { vocabFromGguf } from "../src/tokenizer/vocab.ts";
import { llama2cVocabMetadata } from "../src/tools/convert.ts";
import { FileSource } from "../src/util/bytes.ts";
import { fixturePath, missing, REPO_ROOT } from "./helpers/fixtures.ts";

interface EncodeCase {
  text: string;
  runc_encode_no_bos: number[];
  runc_encode_bos: number[];
}
interface EncodeFile {
  vocab_size: number;
  cases: EncodeCase[];
  upstream_expected_from_test_c?: { text: string; ids_with_bos: number[] }[];
}

function llama2cTokenizer(bin: string, nVocab: number): Tokenizer {
  const src = new FileSource(bin);
  try {
    const md = new Map(llama2cVocabMetadata(readLlama2cTokenizer(src, nVocab)));
    return new Tokenizer(vocabFromGguf(md, bin));
  } finally {
    src.close();
  }
}

/** Every case, with and without BOS; returns the mismatches. */
function mismatches(tok: Tokenizer, ref: EncodeFile) {
  const bad: { text: string; bos: boolean; expected: number[]; got: number[] }[] = [];
  for (const c of ref.cases) {
    const noBos = tok.encode(c.text, { addSpecial: false });
    const bos = tok.encode(c.text);
    if (JSON.stringify(noBos) !== JSON.stringify(c.runc_encode_no_bos))
      bad.push({ text: c.text, bos: false, expected: c.runc_encode_no_bos, got: noBos });
    if (JSON.stringify(bos) !== JSON.stringify(c.runc_encode_bos))
      bad.push({ text: c.text, bos: true, expected: c.runc_encode_bos, got: bos });
  }
  for (const c of ref.upstream_expected_from_test_c ?? []) {
    const got = tok.encode(c.text);
    if (JSON.stringify(got) !== JSON.stringify(c.ids_with_bos))
      bad.push({ text: c.text, bos: true, expected: c.ids_with_bos, got });
  }
  return bad;
}

const read = (rel: string): EncodeFile => JSON.parse(readFileSync(fixturePath(rel)!, "utf8")) as EncodeFile;

describe("llama2.c tokenizers through GGUF metadata", () => {
  const tok512 = fixturePath("llama2c/tok512.bin");
  it.skipIf(!tok512)("tok512.bin: run.c's encode() ids for 59 strings, with and without BOS", () => {
    const ref = read("llama2c/reference/encode_tok512.json");
    expect(ref.cases).toHaveLength(59);
    expect(mismatches(llama2cTokenizer(tok512!, ref.vocab_size), ref)).toEqual([]);
  });

  it("the bundled stories260k.gguf (written by owl convert) gives the same ids", () => {
    const ref = read("llama2c/reference/encode_tok512.json");
    const tok = Tokenizer.fromGgufFile(`${REPO_ROOT}/models/stories260k.gguf`);
    expect(mismatches(tok, ref)).toEqual([]);
  });

  const bin = fixturePath("llama2c/tokenizer.bin");
  it.skipIf(!bin)(
    bin
      ? "tokenizer.bin (Llama 2): run.c's ids for 59 strings and test.c's 5 SentencePiece vectors"
      : missing("llama2c/tokenizer.bin"),
    () => {
      const ref = read("llama2c/reference/encode_llama2_tokenizer_bin.json");
      expect(ref.cases).toHaveLength(59);
      expect(ref.upstream_expected_from_test_c).toHaveLength(5);
      expect(mismatches(llama2cTokenizer(bin!, ref.vocab_size), ref)).toEqual([]);
    },
  );

  const spm = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
  it.skipIf(!spm)(
    "llama.cpp's Llama 2 vocab GGUF gives run.c's ids too (same tokenizer, other converter)",
    () => {
      const ref = read("llama2c/reference/encode_llama2_tokenizer_bin.json");
      expect(mismatches(Tokenizer.fromGgufFile(spm!), ref)).toEqual([]);
    },
  );
});
