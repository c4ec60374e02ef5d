/**
 * Context shift in complete() (CompletionRequest.shift, Ollama's default: llama-server's
 * --context-shift with --keep num_keep): when a sequence's context fills, keep the first num_keep
 * tokens plus BOS, drop half of the rest, and go on. The rule is Ollama's (llm/llama_server.go
 * contextShiftPromptLimit: "preserve num_keep, then free roughly half of the remaining context")
 * and llama-server's (n_discard = (n_past - n_keep) / 2).
 * Checked on a scripted sequence against a hand-computed shifted input, then on both real
 * backends: generation runs past the context, and the tokens after the first shift are the ones a
 * fresh greedy run from the hand-built shifted context gives; llama.cpp and the owl engine agree.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import { complete } from "../src/runtime/complete.ts";
import type {
  CompletionEvent,
  LoadedModel,
  Sequence,
  SequenceGenerateOptions,
} from "../src/runtime/types.ts";
import { BUNDLED, GREEDY, PROMPT, pieces, run } from "./helpers/runtime.ts";

/** A sequence that yields `script` after every prompt and records the prompts it was given. */
function scripted(script: number[]) {
  const prompts: number[][] = [];
  const sequence: Sequence = {
    index: 0,
    tokens: [],
    async *generate(prompt: readonly number[], _options: SequenceGenerateOptions) {
      prompts.push([...prompt]);
      for (const token of script) yield { token };
    },
    lastPrompt: () => ({ reused: 0, evaluated: 3 }),
    release() {},
  };
  const model = {
    info: { eogTokens: [2], addBos: true, bosToken: 1 },
    tokenBytes: (t: number) => new TextEncoder().encode(`<${t}>`),
  } as unknown as LoadedModel;
  return { model, sequence, prompts };
}

async function events(model: LoadedModel, sequence: Sequence, extra: object) {
  const out: CompletionEvent[] = [];
  for await (const ev of complete(model, sequence, {
    prompt: [1, 5, 6],
    sampling: GREEDY,
    maxTokens: 6,
    stop: [],
    ...extra,
  }))
    out.push(ev);
  const done = out.at(-1);
  if (done?.type !== "done") throw new Error("no done event");
  return { out, done };
}

describe("context shift rules (scripted sequence)", () => {
  it("without shift a full context ends with reason length", async () => {
    const s = scripted([10, 11, 12, 13]);
    const { done } = await events(s.model, s.sequence, {});
    expect(done.reason).toBe("length");
    expect(done.evalTokens).toBe(4);
    expect(s.prompts).toHaveLength(1);
  });

  it("with shift: keep BOS + num_keep, drop half of the rest, go on from the last token", async () => {
    const s = scripted([10, 11, 12, 13]);
    const { done, out } = await events(s.model, s.sequence, { shift: { numKeep: 1 } });
    // Context when full: [1,5,6,10,11,12,13] (7). keep = 1 + BOS = 2: [1,5]; discard
    // floor((7-2)/2) = 2: [6,10]; the rest [11,12,13] follows.
    expect(s.prompts[1]).toEqual([1, 5, 11, 12, 13]);
    expect(done.reason).toBe("length");
    expect(done.evalTokens).toBe(6);
    expect(done.shifts).toBe(1);
    expect(done.context).toEqual([1, 5, 6, 10, 11, 12, 13, 10, 11]);
    expect(pieces(out).map((p) => p.token)).toEqual([10, 11, 12, 13, 10, 11]);
  });

  it("a stop or maxTokens reached before the context fills needs no shift", async () => {
    const s = scripted([10, 11, 2]);
    const { done } = await events(s.model, s.sequence, { shift: { numKeep: 4 } });
    expect(done.reason).toBe("stop");
    expect(s.prompts).toHaveLength(1);
  });
});

describe("context shift on the real backends (stories260K, 64-token context)", () => {
  const N_CTX = 64;
  const N_KEEP = 4;
  const models: LoadedModel[] = [];
  beforeAll(async () => {
    for (const name of ["llama.cpp", "owl"] as const) {
      models.push(
        await createBackend(name).load({
          modelPath: BUNDLED,
          adapters: [],
          numCtx: N_CTX,
          numParallel: 1,
          threads: 1,
        }),
      );
    }
  }, 60_000);
  afterAll(async () => {
    for (const m of models) await m.dispose();
  });

  it("generates past the context; after a shift, the tokens a fresh run from the shifted context gives", async () => {
    const generatedBy: number[][] = [];
    for (const model of models) {
      const seq = model.tryAcquireSequence()!;
      try {
        const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
        const r = await run(model, seq, { prompt, maxTokens: 150, shift: { numKeep: N_KEEP } });
        expect(r.done.reason).toBe("length");
        expect(r.done.evalTokens).toBe(150);
        expect(r.done.shifts).toBeGreaterThanOrEqual(2);
        const generated = pieces(r.events).map((p) => p.token);
        expect(generated).toHaveLength(150);
        generatedBy.push(generated);

        // The first shift by hand: the context is full at N_CTX tokens.
        const first = N_CTX - prompt.length;
        const full = [...prompt, ...generated.slice(0, first)];
        const keep = N_KEEP + 1; // BOS
        const discard = Math.floor((N_CTX - keep) / 2);
        const shifted = [...full.slice(0, keep), ...full.slice(keep + discard)];
        const fresh = await run(model, seq, { prompt: shifted, maxTokens: 20 });
        const freshTokens = pieces(fresh.events).map((p) => p.token);
        expect(generated.slice(first, first + 20)).toEqual(freshTokens);
      } finally {
        seq.release();
      }
    }
    // Two implementations of the same model and the same rule.
    expect(generatedBy[1]).toEqual(generatedBy[0]);
  }, 60_000);
});
