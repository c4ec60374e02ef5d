/**
 * Golden end-to-end test of the owl engine: stories260K (llama2.c) converted to GGUF with owl's
 * own converter, run on the reference backend, must reproduce every greedy token of llama2.c's
 * run.c (../shared/fixtures/llama2c/reference) and the top-5 logits of every step within 1e-4.
 */
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { argmax } from "../src/engine/greedy.ts";
import { loadModel, type Model } from "../src/engine/model.ts";
import { readGguf, serializeGguf } from "../src/formats/gguf/index.ts";
import { readLlama2c } from "../src/formats/llama2c/checkpoint.ts";
import { readLlama2cTokenizer } from "../src/formats/llama2c/tokenizer.ts";
import { llama2cToGguf } from "../src/tools/convert.ts";
import { MemorySource } from "../src/util/bytes.ts";
import { fixturePath, missing } from "./helpers/fixtures.ts";

const MODEL = "llama2c/stories260K.bin";
const TOK = "llama2c/tok512.bin";
const CASES = [
  "greedy_empty_n200",
  "greedy_empty_default",
  "greedy_once_upon_a_time_n200",
  "greedy_the_little_dog_n200",
  "greedy_lily_wanted_to_n200",
];
const have = [MODEL, TOK, ...CASES.map((c) => `llama2c/reference/${c}.json`)].every((f) => fixturePath(f));

interface Step {
  pos: number;
  token: number;
  next: number;
  forced_by_prompt: boolean;
  top5_logits: [number, number][];
}
interface Reference {
  prompt_tokens: number[];
  generated_tokens: number[];
  sequence: number[];
  steps: Step[];
}

const TOLERANCE = 1e-4;

describe.skipIf(!have)(
  `owl engine reproduces llama2.c run.c on stories260K ${have ? "" : missing(MODEL)}`,
  () => {
    let model: Model;

    beforeAll(async () => {
      const ckpt = readLlama2c(new MemorySource(readFileSync(fixturePath(MODEL)!)));
      const vocab = readLlama2cTokenizer(
        new MemorySource(readFileSync(fixturePath(TOK)!)),
        ckpt.config.vocabSize,
      );
      const bytes = await serializeGguf(llama2cToGguf(ckpt, vocab));
      model = await loadModel(readGguf(new MemorySource(bytes)), { session: { nCtx: 512 } });
    });

    it("loads the hyperparameters of the converted file", () => {
      const hp = model.hparams;
      expect([hp.V, hp.C, hp.L, hp.nHead, hp.nHeadKv, hp.headDim, hp.nFf]).toEqual([
        512, 64, 5, 8, 4, 8, 172,
      ]);
      expect(hp.rope.neox).toBe(false);
      expect(model.memory().weightsBytes).toBeGreaterThan(260_000 * 4);
    });

    it.each(CASES)("greedy tokens and top-5 logits equal run.c's for %s", (name) => {
      const ref = JSON.parse(
        readFileSync(fixturePath(`llama2c/reference/${name}.json`)!, "utf8"),
      ) as Reference;
      const session = model.createSession({ nCtx: 512 });
      const nPrompt = ref.prompt_tokens.length;
      // Prompt positions: one batched call with the logits of every position.
      const prompt = session.evaluate(ref.prompt_tokens, { allLogits: true });
      const V = model.hparams.V;
      const logitsAt: Float32Array[] = [];
      for (let p = 0; p < nPrompt; p++) logitsAt.push(prompt.allLogits!.subarray(p * V, (p + 1) * V));

      const seq = [...ref.prompt_tokens];
      const generated: number[] = [];
      let maxDiff = 0;
      for (const step of ref.steps) {
        const logits = step.pos < nPrompt ? logitsAt[step.pos]! : session.evaluate(seq).logits;
        expect(step.token, `${name} pos ${step.pos}`).toBe(seq[step.pos]);
        for (const [id, value] of step.top5_logits) {
          const d = Math.abs(logits[id]! - value);
          maxDiff = Math.max(maxDiff, d);
          if (d > TOLERANCE) {
            expect.fail(
              `${name} pos ${step.pos}: logit of ${id} is ${logits[id]}, run.c has ${value} (diff ${d})`,
            );
          }
        }
        if (step.pos >= nPrompt - 1) {
          const next = argmax(logits);
          expect(next, `${name} pos ${step.pos}`).toBe(step.next);
          generated.push(next);
          seq.push(next);
        }
      }
      expect(generated.length).toBeGreaterThanOrEqual(64);
      expect(generated).toEqual(ref.generated_tokens.slice(0, generated.length));
      expect(generated.length).toBe(ref.generated_tokens.length);
      // KV reuse: each forward pass of run.c is one evaluated token here, never more.
      expect(session.evaluatedTokens).toBe(ref.steps.length);
      expect(maxDiff).toBeLessThan(TOLERANCE);
    });
  },
);
