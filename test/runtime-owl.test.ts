/**
 * The owl engine backend through the runtime contract on the bundled stories260K: greedy text
 * through complete() equals llama2.c run.c's reference, sequences taking turns give each the
 * one-at-a-time text, prefix reuse evaluates only new tokens, logprobs agree with llama.cpp's
 * (node-llama-cpp, the second implementation) within 1e-3, embeddings are unit vectors close to
 * llama.cpp's, and grammars and adapters are refused with a hint.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import type { LoadedModel } from "../src/runtime/types.ts";
import { fixturePath, REPO_ROOT } from "./helpers/fixtures.ts";
import {
  BUNDLED,
  GREEDY,
  PROMPT,
  piece,
  pieces,
  REF,
  reference,
  referenceText,
  run,
} from "./helpers/runtime.ts";

describe("owl backend", () => {
  let model: LoadedModel;
  let llama: LoadedModel;

  beforeAll(async () => {
    model = await createBackend("owl").load({
      modelPath: BUNDLED,
      adapters: [],
      numCtx: 256,
      numParallel: 2,
      threads: 1,
    });
    // An F32 KV cache, as the engine keeps: llama.cpp's default F16 moves logprobs by ~1e-2.
    llama = await createBackend("llama.cpp", { kvCacheType: "F32" }).load({
      modelPath: BUNDLED,
      adapters: [],
      numCtx: 256,
      numParallel: 1,
      threads: 1,
    });
  }, 60_000);
  afterAll(async () => {
    await model?.dispose();
    await llama?.dispose();
  });

  it("reports the same facts as the llama.cpp backend", () => {
    expect(model.backend).toBe("owl");
    expect(model.info).toEqual(llama.info);
    expect(model.memoryBytes()).toBeGreaterThan(model.info.weightBytes);
    expect(model.tokenize(`${PROMPT}</s>`, { addBos: true, parseSpecial: true })).toEqual(
      llama.tokenize(`${PROMPT}</s>`, { addBos: true, parseSpecial: true }),
    );
    const ids = model.tokenize('Lily\'s mom said, "hi".', { addBos: false, parseSpecial: false });
    expect(model.detokenize(ids)).toBe(llama.detokenize(ids));
  });

  it.skipIf(!fixturePath(REF))("greedy text through complete() equals run.c", async () => {
    const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
    expect(prompt).toEqual(reference().prompt_tokens);
    const seq = model.tryAcquireSequence()!;
    try {
      const r = await run(model, seq, { prompt, maxTokens: 60 });
      expect(r.text).toBe(referenceText(60));
      expect(r.done).toMatchObject({ reason: "length", promptEvaluated: prompt.length, evalTokens: 60 });
      // The same prompt longer: only the new tokens are evaluated.
      const longer = [...prompt, ...reference().generated_tokens.slice(0, 3)];
      const again = await run(model, seq, { prompt: longer, maxTokens: 5 });
      expect(seq.lastPrompt()).toEqual({ reused: longer.length - 1, evaluated: 1 });
      expect(again.text).toBe(referenceText(8).slice(referenceText(3).length));
    } finally {
      seq.release();
    }
  });

  it("two sequences generating at once give each the text of one at a time", async () => {
    const prompts = ["The little dog", "Lily wanted to"].map((p) =>
      model.tokenize(p, { addBos: true, parseSpecial: false }),
    );
    const alone: string[] = [];
    const first = prompts.map(() => model.tryAcquireSequence()!);
    for (const [i, prompt] of prompts.entries()) {
      alone.push((await run(model, first[i]!, { prompt, maxTokens: 20 })).text);
    }
    for (const s of first) s.release();
    const seqs = prompts.map((p) => model.tryAcquireSequence(p)!);
    expect(model.tryAcquireSequence()).toBeUndefined();
    try {
      const together = await Promise.all(
        prompts.map((prompt, i) => run(model, seqs[i]!, { prompt, maxTokens: 20 })),
      );
      expect(together.map((r) => r.text)).toEqual(alone);
      // Each sequence found its own earlier prompt in its cache.
      for (const r of together) expect(r.done.promptEvaluated).toBe(1);
      expect(together.map((r) => r.done.promptTokens)).toEqual(prompts.map((p) => p.length));
    } finally {
      for (const s of seqs) s.release();
    }
  });

  it("logprobs equal llama.cpp's within 1e-3 and the greedy token is the top-1", async () => {
    const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
    const a = model.tryAcquireSequence()!;
    const b = llama.tryAcquireSequence()!;
    try {
      const ours = pieces((await run(model, a, { prompt, maxTokens: 20, logprobs: 5 })).events);
      const theirs = pieces((await run(llama, b, { prompt, maxTokens: 20, logprobs: 5 })).events);
      expect(ours.map((p) => p.token)).toEqual(theirs.map((p) => p.token));
      let worst = 0;
      for (const [i, p] of ours.entries()) {
        const q = theirs[i]!;
        expect(p.top![0]!.token).toBe(p.token);
        expect(p.top!.reduce((s, t) => s + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1 + 1e-9);
        worst = Math.max(worst, Math.abs(p.logprob! - q.logprob!));
        for (const [k, t] of p.top!.entries()) {
          const u = q.top!.find((x) => x.token === t.token);
          if (u) worst = Math.max(worst, Math.abs(t.logprob - u.logprob));
          else expect(t.logprob).toBeLessThan(q.top![k]!.logprob + 1e-3); // a near tie swapped
        }
      }
      expect(worst).toBeLessThan(1e-3);
    } finally {
      a.release();
      b.release();
    }
  });

  it("seeded sampling with penalties gives llama.cpp's tokens (the same sampler chain)", async () => {
    const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
    const sampling = {
      ...GREEDY,
      temperature: 0.8,
      topK: 40,
      topP: 0.9,
      minP: 0.05,
      repeatPenalty: 1.1,
      repeatLastN: 64,
      frequencyPenalty: 0.1,
      presencePenalty: 0.1,
      seed: 42,
      logitBias: new Map([[piece(model, "."), -1]]),
    };
    const a = model.tryAcquireSequence()!;
    const b = llama.tryAcquireSequence()!;
    try {
      const ours = await run(model, a, { prompt, maxTokens: 40, sampling });
      const theirs = await run(llama, b, { prompt, maxTokens: 40, sampling });
      expect(ours.done.context).toEqual(theirs.done.context);
      const other = await run(model, a, { prompt, maxTokens: 40, sampling: { ...sampling, seed: 43 } });
      expect(other.text).not.toBe(ours.text);
    } finally {
      a.release();
      b.release();
    }
  });

  it("sampling with logprobs or typical-p on llama.cpp draws as node-llama-cpp and as the owl engine", async () => {
    const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
    const sampling = { ...GREEDY, temperature: 0.9, topK: 40, topP: 0.95, minP: 0.02, seed: 7 };
    const a = model.tryAcquireSequence()!;
    const b = llama.tryAcquireSequence()!;
    try {
      const plain = await run(llama, b, { prompt, maxTokens: 40, sampling });
      const withLogprobs = await run(llama, b, { prompt, maxTokens: 40, sampling, logprobs: 3 });
      expect(withLogprobs.done.context).toEqual(plain.done.context);
      const ours = await run(model, a, { prompt, maxTokens: 40, sampling, logprobs: 3 });
      expect(ours.done.context).toEqual(plain.done.context);
      // The model's distribution, not the truncated, tempered one: the same as the engine's.
      let worst = 0;
      for (const [i, p] of pieces(withLogprobs.events).entries()) {
        worst = Math.max(worst, Math.abs(p.logprob! - pieces(ours.events)[i]!.logprob!));
      }
      expect(worst).toBeLessThan(1e-3);
      const typical = { ...sampling, typicalP: 0.8 };
      const t1 = await run(llama, b, { prompt, maxTokens: 40, sampling: typical });
      const t2 = await run(model, a, { prompt, maxTokens: 40, sampling: typical });
      expect(t1.done.context).toEqual(t2.done.context);
      expect(t1.text).not.toBe(plain.text);
    } finally {
      a.release();
      b.release();
    }
  });

  it("embeddings are unit vectors, equal for equal texts, close to llama.cpp's", async () => {
    const texts = ["Once upon a time", "The little dog", "Once upon a time"];
    const r = await model.embed(texts, { truncate: false });
    const ref = await llama.embed(texts, { truncate: false });
    expect(r.promptTokens).toBe(ref.promptTokens);
    for (const [i, v] of r.embeddings.entries()) {
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
      const cos = v.reduce((s, x, j) => s + x * ref.embeddings[i]![j]!, 0);
      expect(cos).toBeGreaterThan(0.999);
    }
    expect([...r.embeddings[2]!]).toEqual([...r.embeddings[0]!]);
    expect([...r.embeddings[1]!]).not.toEqual([...r.embeddings[0]!]);
  });

  it("grammars, adapters and an overlong prompt are clear errors", async () => {
    const seq = model.tryAcquireSequence()!;
    try {
      await expect(run(model, seq, { prompt: [1, 403], grammar: { type: "json" } })).rejects.toMatchObject({
        code: "ERR_UNSUPPORTED",
        hint: expect.stringMatching(/llama\.cpp/),
      });
      await expect(run(model, seq, { prompt: [1, ...new Array(256).fill(400)] })).rejects.toMatchObject({
        code: "ERR_CONTEXT_OVERFLOW",
        message: expect.stringMatching(/257 tokens.*256/),
      });
    } finally {
      seq.release();
    }
    await expect(
      createBackend("owl").load({
        modelPath: BUNDLED,
        adapters: [{ path: join(REPO_ROOT, "models", "lora.gguf"), scale: 1 }],
        numCtx: 64,
        numParallel: 1,
      }),
    ).rejects.toMatchObject({ code: "ERR_UNSUPPORTED" });
  });
});

describe("owl backend lifecycle", () => {
  it("an aborted load is ERR_ABORTED", async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(
      createBackend("owl").load({
        modelPath: BUNDLED,
        adapters: [],
        numCtx: 64,
        numParallel: 1,
        threads: 1,
        signal: ac.signal,
      }),
    ).rejects.toMatchObject({ code: "ERR_ABORTED" });
  });

  it("loads and disposes five times; a disposed model refuses to run", async () => {
    for (let i = 0; i < 5; i++) {
      const m = await createBackend("owl").load({
        modelPath: BUNDLED,
        adapters: [],
        numCtx: 64,
        numParallel: 2,
        threads: 1,
      });
      const seq = m.tryAcquireSequence()!;
      const r = await run(m, seq, {
        prompt: m.tokenize(PROMPT, { addBos: true, parseSpecial: false }),
        maxTokens: 3,
      });
      expect(r.done.evalTokens).toBe(3);
      await m.dispose();
      await m.dispose();
      await expect(seq.generate([1], { sampling: GREEDY }).next()).rejects.toMatchObject({
        message: expect.stringMatching(/disposed/),
      });
    }
  });
});
