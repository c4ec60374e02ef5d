/**
 * EvaluateOptions.logitsOut / BatchItem.logitsOut (src/engine/model.ts): logits written into a
 * buffer the caller owns and reuses. On the bundled stories260K (WebAssembly backend, 2 threads):
 * greedy decoding through one reused buffer reproduces llama2.c run.c's tokens, each step's logits
 * are bit for bit those of the default fresh array (Session.evaluate, evaluateBatch, allLogits),
 * the result's logits is the buffer itself, and a buffer of the wrong length is refused before
 * anything is evaluated.
 * Not here: the owl backend's use of it (its greedy tokens: runtime-owl, runtime-owl-batch tests).
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { argmax } from "../src/engine/greedy.ts";
import { createWasmBackend, type WasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import { loadModel, type Model, type Session } from "../src/engine/model.ts";
import { isOwlError } from "../src/util/errors.ts";
import { fixturePath, missing } from "./helpers/fixtures.ts";
import { BUNDLED } from "./helpers/runtime.ts";

const CASES = ["greedy_once_upon_a_time_n200", "greedy_the_little_dog_n200"] as const;
const have = CASES.every((c) => fixturePath(`llama2c/reference/${c}.json`));

interface Reference {
  prompt_tokens: number[];
  generated_tokens: number[];
}

function reference(name: string): Reference {
  return JSON.parse(readFileSync(fixturePath(`llama2c/reference/${name}.json`)!, "utf8")) as Reference;
}

/** Indices where a and b differ bit for bit (NaN-safe), at most 5. */
function differences(a: Float32Array, b: Float32Array): number[] {
  expect(a.length).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  const out: number[] = [];
  for (let i = 0; i < ua.length && out.length < 5; i++) if (ua[i] !== ub[i]) out.push(i);
  return out;
}

describe.skipIf(!have)(
  `logitsOut on stories260K ${have ? "" : missing(`llama2c/reference/${CASES[0]}.json`)}`,
  () => {
    let backend: WasmBackend;
    let model: Model;
    let V: number;

    beforeAll(async () => {
      backend = await createWasmBackend({ threads: 2, minParallelWork: 0 });
      model = await loadModel(BUNDLED, { backend, session: { nCtx: 256 } });
      V = model.hparams.V;
    });

    afterAll(async () => {
      await model?.dispose();
      await backend?.dispose();
    });

    it("greedy decoding through one reused buffer gives run.c's tokens and the default path's logits", () => {
      const ref = reference(CASES[0]);
      const n = 150;
      const reused = model.createSession({ nCtx: 256 });
      const fresh = model.createSession({ nCtx: 256 });
      const out = new Float32Array(V);
      const seq = [...ref.prompt_tokens];
      const got: number[] = [];
      for (let step = 0; step < n; step++) {
        const r = reused.evaluate(seq, { logitsOut: out });
        const f = fresh.evaluate(seq);
        expect(r.logits).toBe(out);
        expect(f.logits).not.toBe(out);
        expect(r.firstPosition).toBe(f.firstPosition);
        expect(r.evaluated).toBe(f.evaluated);
        expect(differences(out, f.logits), `step ${step}`).toEqual([]);
        const token = argmax(out);
        got.push(token);
        seq.push(token);
      }
      expect(got).toEqual(ref.generated_tokens.slice(0, n));
    });

    it("with allLogits the buffer holds the last row, as the default logits do", () => {
      const ref = reference(CASES[1]);
      const out = new Float32Array(V);
      const a = model
        .createSession({ nCtx: 256 })
        .evaluate(ref.prompt_tokens, { allLogits: true, logitsOut: out });
      const b = model.createSession({ nCtx: 256 }).evaluate(ref.prompt_tokens, { allLogits: true });
      expect(a.logits).toBe(out);
      expect(differences(out, b.logits)).toEqual([]);
      expect(differences(a.allLogits!, b.allLogits!)).toEqual([]);
      expect(differences(out, b.allLogits!.subarray((ref.prompt_tokens.length - 1) * V))).toEqual([]);
      expect(argmax(out)).toBe(ref.generated_tokens[0]);
    });

    it("evaluateBatch writes each item's logits into its own buffer, bit for bit the default ones", () => {
      const refs = CASES.map(reference);
      const n = 60;
      const mk = () => refs.map(() => model.createSession({ nCtx: 256 }));
      const reused = mk();
      const fresh = mk();
      const outs = refs.map(() => new Float32Array(V));
      const seqs = refs.map((r) => [...r.prompt_tokens]);
      const got: number[][] = refs.map(() => []);
      for (let step = 0; step < n; step++) {
        const a = model.evaluateBatch(
          reused.map((session, i) => ({ session, tokens: seqs[i]!, logitsOut: outs[i]! })),
        );
        const b = model.evaluateBatch(fresh.map((session, i) => ({ session, tokens: seqs[i]! })));
        for (let i = 0; i < refs.length; i++) {
          expect(a[i]!.logits).toBe(outs[i]);
          expect(differences(outs[i]!, b[i]!.logits), `step ${step}, item ${i}`).toEqual([]);
          const token = argmax(outs[i]!);
          got[i]!.push(token);
          seqs[i]!.push(token);
        }
      }
      for (const [i, r] of refs.entries()) expect(got[i]).toEqual(r.generated_tokens.slice(0, n));
    });

    it("refuses a buffer of the wrong length before evaluating anything", () => {
      const ref = reference(CASES[0]);
      const expectRefused = (f: () => unknown, ...parts: string[]) => {
        let error: unknown;
        try {
          f();
        } catch (e) {
          error = e;
        }
        expect(isOwlError(error, "ERR_INVALID_ARGUMENT"), String(error)).toBe(true);
        for (const p of parts) expect((error as Error).message).toContain(p);
      };
      const session: Session = model.createSession({ nCtx: 256 });
      expectRefused(
        () => session.evaluate(ref.prompt_tokens, { logitsOut: new Float32Array(V - 1) }),
        `length V = ${V}`,
        `length ${V - 1}`,
      );
      expectRefused(
        () =>
          session.evaluate(ref.prompt_tokens, { logitsOut: new Float64Array(V) as unknown as Float32Array }),
        `logitsOut must be a Float32Array of length V = ${V}, found Float64Array`,
      );
      expect(session.tokens).toEqual([]);
      expect(session.evaluatedTokens).toBe(0);
      const other = model.createSession({ nCtx: 256 });
      expectRefused(
        () =>
          model.evaluateBatch([
            { session, tokens: ref.prompt_tokens, logitsOut: new Float32Array(V) },
            { session: other, tokens: ref.prompt_tokens, logitsOut: new Float32Array(V + 1) },
          ]),
        "batch item 1: logitsOut",
      );
      expect(session.evaluatedTokens).toBe(0);
      expect(other.evaluatedTokens).toBe(0);
    });
  },
);
