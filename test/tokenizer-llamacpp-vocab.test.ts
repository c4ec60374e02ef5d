/**
 * Differential test of the vocabulary and the facade against llama.cpp itself (node-llama-cpp,
 * each vocab GGUF loaded vocab-only): every token's attributes (after llama.cpp's fixups: EOG
 * texts forced to CONTROL, phi-3's RSTRIP, ...), the end-of-generation set, the BOS/EOS/EOT/SEP
 * ids, detokenize of random id sequences (with and without special rendering; BPE clean_spaces,
 * the SPM leading space), and tokenize of text full of special-token text with parse_special on
 * and off (the special-token split, LSTRIP/RSTRIP). node-llama-cpp always detokenizes with
 * remove_special = false and tokenizes with add_special = false. Skips when its prebuilt binary
 * cannot load here.
 */
import type { Token } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { TokenAttr } from "../src/tokenizer/types.ts";
import { listFixtures, REPO_ROOT } from "./helpers/fixtures.ts";
import { loadLlamaVocab } from "./helpers/tokenizer-random.ts";

type LlamaModel = NonNullable<Awaited<ReturnType<typeof loadLlamaVocab>>>;

/** llama.cpp's attribute bits of a token, from node-llama-cpp's TokenAttributes getters. */
function llamaAttr(model: LlamaModel, id: number): number {
  const a = model.getTokenAttributes(id as Token);
  return (
    (a.unknown ? TokenAttr.UNKNOWN : 0) |
    (a.unused ? TokenAttr.UNUSED : 0) |
    (a.normal ? TokenAttr.NORMAL : 0) |
    (a.control ? TokenAttr.CONTROL : 0) |
    (a.userDefined ? TokenAttr.USER_DEFINED : 0) |
    (a.byte ? TokenAttr.BYTE : 0) |
    (a.normalized ? TokenAttr.NORMALIZED : 0) |
    (a.lstrip ? TokenAttr.LSTRIP : 0) |
    (a.rstrip ? TokenAttr.RSTRIP : 0) |
    (a.singleWord ? TokenAttr.SINGLE_WORD : 0)
  );
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * One vocabulary per rule of vocab.ts, to keep the test short (llama.cpp takes up to 1.5 s to load
 * a vocabulary): SPM defaults, phi-3's RSTRIP and EOT choice, BPE defaults and clean_spaces, FIM
 * texts forced to CONTROL and add_bos, FIM pad/repo as EOG, WPM, owl's own converter. (All 12
 * fixture vocabularies agreed when this test was written.)
 */
const WANTED = /-(llama-spm|phi-3|gpt-2|deepseek-coder|refact|bert-bge)\.gguf$/;
const paths = [
  ...listFixtures("tokenizer", /\.gguf$/).filter((p) => WANTED.test(p)),
  `${REPO_ROOT}/models/stories260k.gguf`,
];

describe("vocabulary and facade against llama.cpp (node-llama-cpp)", () => {
  for (const path of paths) {
    const name = path.replace(/^.*[\\/]/, "");
    it(name, async () => {
      const model = await loadLlamaVocab(path);
      if (!model) return; // no llama.cpp binary here
      try {
        const tok = Tokenizer.fromGgufFile(path);
        const v = tok.vocab;

        const attrDiffs: string[] = [];
        const eogDiffs: number[] = [];
        for (let id = 0; id < tok.size; id++) {
          const a = llamaAttr(model, id);
          if (a !== v.attrs[id])
            attrDiffs.push(`${id} ${JSON.stringify(v.tokens[id])}: llama.cpp ${a}, owl ${v.attrs[id]}`);
          if (model.isEogToken(id as Token) !== tok.isEog(id)) eogDiffs.push(id);
        }
        expect(attrDiffs.slice(0, 10)).toEqual([]);
        expect(eogDiffs.slice(0, 10)).toEqual([]);
        const t = model.tokens;
        expect({ bos: v.bos, eos: v.eos, eot: v.eot, sep: v.sep }).toEqual({
          bos: t.bos ?? undefined,
          eos: t.eos ?? undefined,
          eot: t.eot ?? undefined,
          sep: t.sep ?? undefined,
        });
        expect(v.addBos).toBe(t.shouldPrependBosToken);

        const rnd = rng(0x5eed ^ tok.size);
        const specialIds = [v.bos, v.eos, v.unk, v.eot, v.sep].filter((x): x is number => x !== undefined);
        for (let k = 0; k < 150; k++) {
          const ids: number[] = [];
          for (let i = 0, n = 1 + Math.floor(rnd() * 12); i < n; i++) {
            ids.push(
              rnd() < 0.15 && specialIds.length > 0
                ? specialIds[Math.floor(rnd() * specialIds.length)]!
                : Math.floor(rnd() * tok.size),
            );
          }
          for (const special of [false, true]) {
            const expected = model.detokenize(ids as Token[], special);
            const got = tok.decode(ids, { renderSpecial: special });
            if (got !== expected) expect({ ids, special, got }).toEqual({ ids, special, got: expected });
          }
        }

        const specialTexts = v.tokens.filter(
          (_, id) => (v.attrs[id]! & (TokenAttr.CONTROL | TokenAttr.USER_DEFINED)) !== 0,
        );
        const plain = [" hello", "\n", "  ", "world ", "\t\n x", "é", "🐶", " <", "s>"];
        for (let k = 0; k < 100; k++) {
          let s = "";
          for (let i = 0, n = 1 + Math.floor(rnd() * 6); i < n; i++) {
            s +=
              rnd() < 0.4 && specialTexts.length > 0
                ? specialTexts[Math.floor(rnd() * specialTexts.length)]!
                : plain[Math.floor(rnd() * plain.length)]!;
          }
          for (const parseSpecial of [false, true]) {
            const expected = model.tokenize(s, parseSpecial);
            const got = tok.encode(s, { addSpecial: false, parseSpecial });
            if (JSON.stringify(got) !== JSON.stringify(expected))
              expect({ s, parseSpecial, got }).toEqual({ s, parseSpecial, got: expected });
          }
        }
      } finally {
        await model.dispose();
      }
    }, 60_000);
  }
});
