/**
 * The owl engine on the WebAssembly backend (2 threads, every op split across them) end to end:
 * stories260K (llama2.c, F32) converted to GGUF must reproduce every greedy token of llama2.c's
 * run.c and its top-5 logits within 1e-4, as on the reference backend (engine-golden.test.ts).
 * Not here: the kernels one by one (the other engine-wasm-* tests).
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { argmax } from "../src/engine/greedy.ts";
import { createWasmBackend, type WasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import { loadModel, type Model } from "../src/engine/model.ts";
import { readGguf, serializeGguf } from "../src/formats/gguf/index.ts";
import { readLlama2c } from "../src/formats/llama2c/checkpoint.ts";
import { readLlama2cTokenizer } from "../src/formats/llama2c/tokenizer.ts";
import { llama2cToGguf } from "../src/tools/convert.ts";
import { MemorySource } from "../src/util/bytes.ts";
import { fixturePath, missing } from "./helpers/fixtures.ts";

const MODEL = "llama2c/stories260K.bin";
const TOK = "llama2c/tok512.bin";
const CASES = ["greedy_once_upon_a_time_n200", "greedy_the_little_dog_n200"];
const have = [MODEL, TOK, ...CASES.map((c) => `llama2c/reference/${c}.json`)].every((f) => fixturePath(f));
const TOLERANCE = 1e-4;

interface Reference {
  prompt_tokens: number[];
  generated_tokens: number[];
  steps: { pos: number; token: number; next: number; top5_logits: [number, number][] }[];
}

describe.skipIf(!have)(
  `owl engine on WasmBackend reproduces run.c on stories260K ${have ? "" : missing(MODEL)}`,
  () => {
    let backend: WasmBackend;
    let model: Model;

    beforeAll(async () => {
      const ckpt = readLlama2c(new MemorySource(readFileSync(fixturePath(MODEL)!)));
      const vocab = readLlama2cTokenizer(
        new MemorySource(readFileSync(fixturePath(TOK)!)),
        ckpt.config.vocabSize,
      );
      const bytes = await serializeGguf(llama2cToGguf(ckpt, vocab));
      backend = await createWasmBackend({ threads: 2, minParallelWork: 0 });
      model = await loadModel(readGguf(new MemorySource(bytes)), { backend, session: { nCtx: 512 } });
    });

    afterAll(async () => {
      await model?.dispose();
      await backend?.dispose();
    });

    it.each(CASES)("greedy tokens and top-5 logits equal run.c's for %s", (name) => {
      const ref = JSON.parse(
        readFileSync(fixturePath(`llama2c/reference/${name}.json`)!, "utf8"),
      ) as Reference;
      const session = model.createSession({ nCtx: 512 });
      const nPrompt = ref.prompt_tokens.length;
      const prompt = session.evaluate(ref.prompt_tokens, { allLogits: true });
      const V = model.hparams.V;
      const seq = [...ref.prompt_tokens];
      const generated: number[] = [];
      let maxDiff = 0;
      for (const step of ref.steps) {
        const logits =
          step.pos < nPrompt
            ? prompt.allLogits!.subarray(step.pos * V, (step.pos + 1) * V)
            : session.evaluate(seq).logits;
        for (const [id, value] of step.top5_logits) {
          const d = Math.abs(logits[id]! - value);
          maxDiff = Math.max(maxDiff, d);
          if (d > TOLERANCE)
            expect.fail(`${name} pos ${step.pos}: logit of ${id} is ${logits[id]}, run.c has ${value}`);
        }
        if (step.pos >= nPrompt - 1) {
          const next = argmax(logits);
          expect(next, `${name} pos ${step.pos}`).toBe(step.next);
          generated.push(next);
          seq.push(next);
        }
      }
      expect(generated).toEqual(ref.generated_tokens);
      expect(maxDiff).toBeLessThan(TOLERANCE);
    });
  },
);
