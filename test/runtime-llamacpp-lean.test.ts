/**
 * The llama.cpp backend's own decode loop (it drives node-llama-cpp's addon directly) against
 * node-llama-cpp 3.21.1's public LlamaContextSequence.evaluate on the same GGUF (the bundled
 * stories260K), a second implementation of the same decode and sampling: greedy tokens equal for
 * 64 steps with one sequence and with four generating at once from prompts of different lengths;
 * seeded sampling (temperature, top-k, top-p, min-p, repeat/presence/frequency penalties over a
 * window, a logit bias and a ban) equal to evaluate()'s with the same seed, with and without
 * logprobs; a JSON grammar and logprobs equal to evaluateWithMetadata's; a prompt longer than the
 * batch; a step of four sequences is one decodeBatch (counted, not timed); embeddings run
 * alongside; a failed decode (or batch) is ERR_DECODE for its sequence and the model goes on;
 * dispose() during a decode waits for it.
 * The reference context is made as the backend makes its own (flash attention off, one thread,
 * 4 sequences of 256 cells), so both run the same llama.cpp kernels.
 */
import {
  getLlama,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaGrammarEvaluationState,
  LlamaLogLevel,
  type LlamaModel,
  type SequenceEvaluateOptions,
  type Token,
  TokenBias,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import { JSON_OBJECT_GBNF } from "../src/runtime/grammar.ts";
import { decodeCounts } from "../src/runtime/llama-cpp-backend.ts";
import type { LoadedModel, SampledToken, SamplingOptions, Sequence } from "../src/runtime/types.ts";
import { BUNDLED, GREEDY } from "./helpers/runtime.ts";

const STEPS = 64;
const N_CTX = 256;
const PROMPTS = [
  "Once upon a time",
  "The little dog ran to the park and saw a big red ball",
  "Lily",
  "One day, Tom and his mom went to the store. They wanted to buy",
];

/** The first `n` tokens the backend's sequence generates after `prompt`. */
async function lean(
  seq: Sequence,
  prompt: readonly number[],
  sampling: SamplingOptions,
  n = STEPS,
  extra: { grammar?: { type: "json" }; logprobs?: number } = {},
): Promise<SampledToken[]> {
  const out: SampledToken[] = [];
  for await (const step of seq.generate(prompt, { sampling, ...extra })) {
    out.push(step);
    if (out.length >= n) break;
  }
  return out;
}

/** The first `n` tokens node-llama-cpp's evaluate() generates after `prompt` on a cleared sequence. */
async function viaEvaluate(
  seq: LlamaContextSequence,
  prompt: readonly number[],
  options: SequenceEvaluateOptions,
  n = STEPS,
): Promise<number[]> {
  await seq.clearHistory();
  const out: number[] = [];
  for await (const token of seq.evaluate(prompt as Token[], { yieldEogToken: true, ...options })) {
    out.push(token);
    if (out.length >= n) break;
  }
  return out;
}

describe("llama.cpp backend's decode loop vs node-llama-cpp's evaluate()", () => {
  let model: LoadedModel;
  let llama: Llama;
  let refModel: LlamaModel;
  let refContext: LlamaContext;
  let refSeqs: LlamaContextSequence[];

  beforeAll(async () => {
    model = await createBackend("llama.cpp").load({
      modelPath: BUNDLED,
      adapters: [],
      numCtx: N_CTX,
      numParallel: 4,
      threads: 1,
    });
    llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    refModel = await llama.loadModel({ modelPath: BUNDLED });
    refContext = await refModel.createContext({
      contextSize: N_CTX,
      sequences: 4,
      threads: 1,
      flashAttention: false,
    });
    refSeqs = [0, 1, 2, 3].map(() => refContext.getSequence());
  }, 60_000);
  afterAll(async () => {
    await refContext?.dispose();
    await refModel?.dispose();
    await model?.dispose();
  });

  const tokenize = (text: string) => model.tokenize(text, { addBos: true, parseSpecial: false });

  it("greedy: one sequence gives evaluate()'s 64 tokens, again after a different prompt (prefix reuse)", async () => {
    const prompt = tokenize(PROMPTS[0]!);
    const want = await viaEvaluate(refSeqs[0]!, prompt, { temperature: 0 });
    const seq = model.tryAcquireSequence()!;
    try {
      expect((await lean(seq, prompt, GREEDY)).map((s) => s.token)).toEqual(want);
      // A prompt that leaves the cached tokens after one generated token: the cache is cut there.
      const other = [...prompt, want[0]!, 300, 301];
      const want2 = await viaEvaluate(refSeqs[0]!, other, { temperature: 0 });
      expect((await lean(seq, other, GREEDY)).map((s) => s.token)).toEqual(want2);
      expect(seq.lastPrompt()).toEqual({ reused: prompt.length + 1, evaluated: 2 });
      expect(seq.tokens.slice(0, other.length)).toEqual(other);
    } finally {
      seq.release();
    }
  }, 60_000);

  it("greedy: four sequences at once (prompts of 2 to 16 tokens) give evaluate()'s tokens; each step is one decode", async () => {
    const prompts = PROMPTS.map(tokenize);
    expect(new Set(prompts.map((p) => p.length)).size).toBe(4);
    const want: number[][] = [];
    for (const p of prompts) want.push(await viaEvaluate(refSeqs[0]!, p, { temperature: 0 }));
    const seqs = prompts.map(() => model.tryAcquireSequence()!);
    const before = decodeCounts(model)!;
    try {
      const got = await Promise.all(prompts.map((p, i) => lean(seqs[i]!, p, GREEDY)));
      expect(got.map((g) => g.map((s) => s.token))).toEqual(want);
    } finally {
      for (const s of seqs) s.release();
    }
    const after = decodeCounts(model)!;
    const delta = (n: number) => (after[n] ?? 0) - (before[n] ?? 0);
    // The first sequence's prompt goes alone (the others ask a moment later); from then on every
    // step holds all four: 64 tokens each, plus the step each asked ahead for.
    expect(delta(1)).toBeLessThanOrEqual(1);
    expect(delta(2)).toBe(0);
    expect(delta(3)).toBe(0);
    expect(delta(4)).toBeGreaterThanOrEqual(STEPS);
    expect(delta(4)).toBeLessThanOrEqual(STEPS + 1);
  }, 60_000);

  it("seeded sampling with penalties over a window, a logit bias and a ban gives evaluate()'s tokens", async () => {
    const prompt = tokenize(PROMPTS[0]!);
    const greedy = await viaEvaluate(refSeqs[1]!, prompt, { temperature: 0 });
    const boost = 300;
    const ban = greedy[0]!;
    const sampling = (seed: number): SamplingOptions => ({
      temperature: 0.8,
      topK: 40,
      topP: 0.9,
      minP: 0.02,
      typicalP: 1,
      repeatPenalty: 1.3,
      repeatLastN: 16,
      presencePenalty: 0.2,
      frequencyPenalty: 0.1,
      seed,
      logitBias: new Map([
        [boost, 2],
        [ban, Number.NEGATIVE_INFINITY],
      ]),
    });
    const reference = async (seed: number) => {
      const history = [...prompt];
      const bias = new TokenBias(refModel.tokenizer);
      bias.set(boost as Token, { logit: 2 });
      bias.set(ban as Token, "never");
      const out: number[] = [];
      await refSeqs[1]!.clearHistory();
      const it = refSeqs[1]!.evaluate(prompt as Token[], {
        temperature: 0.8,
        topK: 40,
        topP: 0.9,
        minP: 0.02,
        seed,
        repeatPenalty: {
          penalty: 1.3,
          presencePenalty: 0.2,
          frequencyPenalty: 0.1,
          maxPunishTokens: 16,
          punishTokens: () => history.slice(-16) as Token[],
        },
        tokenBias: bias,
        yieldEogToken: true,
      });
      for await (const token of it) {
        out.push(token);
        history.push(token);
        if (out.length >= STEPS) break;
      }
      return out;
    };
    const seq = model.tryAcquireSequence()!;
    try {
      for (const seed of [42, 7]) {
        const want = await reference(seed);
        expect(want).not.toContain(ban);
        expect(want).not.toEqual(greedy);
        expect((await lean(seq, prompt, sampling(seed))).map((s) => s.token)).toEqual(want);
      }
      expect(await reference(42)).not.toEqual(await reference(7));
      // With logprobs, llama.cpp's chain stops after the penalties and owl's Sampler draws the
      // rest (module comment of the backend): the same seed still gives llama.cpp's tokens.
      const want = await reference(42);
      const got = await lean(seq, prompt, sampling(42), STEPS, { logprobs: 2 });
      expect(got.map((s) => s.token)).toEqual(want);
      for (const g of got) {
        expect(g.logprob).toBeLessThanOrEqual(0);
        expect(g.top).toHaveLength(2);
      }
    } finally {
      seq.release();
    }
  }, 60_000);

  it("a JSON grammar and logprobs give evaluateWithMetadata()'s tokens and probabilities", async () => {
    const prompt = tokenize(PROMPTS[0]!);
    const grammar = await llama.createGrammar({ grammar: JSON_OBJECT_GBNF });
    const ref = refSeqs[2]!;
    const seq = model.tryAcquireSequence()!;
    try {
      const wantJson = await viaEvaluate(ref, prompt, {
        temperature: 0,
        grammarEvaluationState: new LlamaGrammarEvaluationState({ model: refModel, grammar }),
      });
      const gotJson = await lean(seq, prompt, GREEDY, STEPS, { grammar: { type: "json" } });
      expect(gotJson.map((s) => s.token)).toEqual(wantJson);
      expect(refModel.detokenize(wantJson.slice(0, 1) as Token[])).toMatch(/^\s*\{/);

      await ref.clearHistory();
      const want: { token: number; top: [number, number][] }[] = [];
      for await (const r of ref.evaluateWithMetadata(
        prompt as Token[],
        { probabilities: true },
        { temperature: 0, yieldEogToken: true },
      )) {
        want.push({ token: r.token, top: [...r.probabilities.entries()].slice(0, 3) });
        if (want.length >= 16) break;
      }
      // A cache that shares no prefix: the prompt is decoded in one batch, as evaluate() does
      // (another batch shape moves the probabilities by about 1e-5 with the F16 KV cache).
      await lean(seq, [5], GREEDY, 1);
      const got = await lean(seq, prompt, GREEDY, 16, { logprobs: 3 });
      expect(got.map((s) => s.token)).toEqual(want.map((w) => w.token));
      for (const [i, g] of got.entries()) {
        const w = want[i]!;
        expect(g.top?.map((t) => t.token)).toEqual(w.top.map(([t]) => t));
        for (const [j, t] of (g.top ?? []).entries())
          expect(t.logprob).toBeCloseTo(Math.log(w.top[j]![1]), 6);
        expect(g.logprob).toBeCloseTo(Math.log(w.top[0]![1]), 6);
      }
    } finally {
      seq.release();
    }
  }, 60_000);

  it("embeddings (a context of their own) run while sequences generate; both give their results", async () => {
    const prompt = tokenize(PROMPTS[3]!);
    const want = await viaEvaluate(refSeqs[0]!, prompt, { temperature: 0 });
    const alone = await model.embed(["a little owl"], { truncate: false });
    const seq = model.tryAcquireSequence()!;
    try {
      const [tokens, together] = await Promise.all([
        lean(seq, prompt, GREEDY),
        (async () => {
          await new Promise((r) => setImmediate(r));
          return model.embed(["a little owl"], { truncate: false });
        })(),
      ]);
      expect(tokens.map((s) => s.token)).toEqual(want);
      expect([...together.embeddings[0]!]).toEqual([...alone.embeddings[0]!]);
    } finally {
      seq.release();
    }
  }, 60_000);

  it("a prompt longer than the batch goes in chunks and gives evaluate()'s tokens", async () => {
    // 1100 cells, one sequence: node-llama-cpp's batch is 512 tokens, the prompt 1000.
    const options = { contextSize: 1100, sequences: 1, threads: 1, flashAttention: false } as const;
    const m = await createBackend("llama.cpp").load({
      modelPath: BUNDLED,
      adapters: [],
      numCtx: options.contextSize,
      numParallel: 1,
      threads: 1,
    });
    const refCtx = await refModel.createContext(options);
    try {
      expect(refCtx.batchSize).toBe(512);
      const text = PROMPTS.join(". ");
      let prompt = tokenize(text);
      while (prompt.length < 1000) prompt = [...prompt, ...tokenize(text).slice(1)];
      prompt = prompt.slice(0, 1000);
      const want = await viaEvaluate(refCtx.getSequence(), prompt, { temperature: 0 }, 16);
      const before = decodeCounts(m)!;
      const seq = m.tryAcquireSequence()!;
      expect((await lean(seq, prompt, GREEDY, 16)).map((s) => s.token)).toEqual(want);
      // Two decodes for the prompt, then one a token (16, the last asked ahead; dispose() waits
      // for it).
      await m.dispose();
      expect((decodeCounts(m)![1] ?? 0) - (before[1] ?? 0)).toBe(2 + 16);
    } finally {
      await refCtx.dispose();
      await m.dispose();
    }
  }, 60_000);

  it("a failed decode is ERR_DECODE for its sequence; the model goes on and gives evaluate()'s tokens", async () => {
    const prompt = tokenize(PROMPTS[1]!);
    const want = await viaEvaluate(refSeqs[0]!, prompt, { temperature: 0 }, 8);
    const seq = model.tryAcquireSequence()!;
    // The native context of the loaded model (an internal of the backend, as bench/serve-child.ts
    // wraps node-llama-cpp's): its next decode fails once.
    const ctx = (model as unknown as { addon: { ctx: { decodeBatch: () => Promise<void> } } }).addon.ctx;
    const real = ctx.decodeBatch;
    let calls = 0;
    // NOTE: the addon's methods are read-only on its prototype: an own property shadows it.
    Object.defineProperty(ctx, "decodeBatch", {
      configurable: true,
      value: function (this: unknown) {
        calls++;
        if (calls === 3) return Promise.reject(new Error("injected failure"));
        return real.call(this);
      },
    });
    try {
      await expect(lean(seq, prompt, GREEDY, 8)).rejects.toMatchObject({
        code: "ERR_DECODE",
        message: expect.stringMatching(/sequence \d.*injected failure/),
      });
      expect(seq.tokens.length).toBe(prompt.length + 1);
      expect((await lean(seq, prompt, GREEDY, 8)).map((s) => s.token)).toEqual(want);
      // A batch that cannot even be set up (initBatch throws) fails the same way.
      Object.defineProperty(ctx, "initBatch", {
        configurable: true,
        value: () => {
          throw new RangeError("injected batch failure");
        },
      });
      await expect(lean(seq, [1, 5, 6], GREEDY, 8)).rejects.toMatchObject({
        code: "ERR_DECODE",
        message: expect.stringMatching(/injected batch failure/),
      });
      delete (ctx as { initBatch?: unknown }).initBatch;
      expect((await lean(seq, prompt, GREEDY, 8)).map((s) => s.token)).toEqual(want);
    } finally {
      delete (ctx as { decodeBatch?: unknown }).decodeBatch;
      delete (ctx as { initBatch?: unknown }).initBatch;
      seq.release();
    }
  }, 60_000);

  it("dispose() during a step waits for it; the sequence's next step is then a clear error", async () => {
    const m = await createBackend("llama.cpp").load({
      modelPath: BUNDLED,
      adapters: [],
      numCtx: 64,
      numParallel: 1,
      threads: 1,
    });
    // dispose() is called while the second decode (the step asked ahead after the first token)
    // runs on llama.cpp's thread.
    const ctx = (m as unknown as { addon: { ctx: { decodeBatch: () => Promise<void> } } }).addon.ctx;
    const real = ctx.decodeBatch;
    let calls = 0;
    let disposing: Promise<void> | undefined;
    Object.defineProperty(ctx, "decodeBatch", {
      configurable: true,
      value: function (this: unknown) {
        const decoding = real.call(this);
        if (++calls === 2) disposing = m.dispose();
        return decoding;
      },
    });
    const seq = m.tryAcquireSequence()!;
    const it = seq.generate(tokenize(PROMPTS[0]!), { sampling: GREEDY });
    expect((await it.next()).value).toMatchObject({ token: expect.any(Number) });
    while (!disposing) await new Promise((r) => setImmediate(r));
    await disposing;
    expect(calls).toBe(2);
    // The step in flight was decoded and sampled before the context went: its token comes out.
    expect((await it.next()).value).toMatchObject({ token: expect.any(Number) });
    await expect(it.next()).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT", message: /unloaded/ });
    await expect(seq.generate([1], { sampling: GREEDY }).next()).rejects.toMatchObject({
      message: /unloaded/,
    });
  }, 30_000);
});

describe("a logit bias on the end-of-generation token (OpenAI's logit_bias on EOS)", () => {
  // node-llama-cpp's TokenBias leaves end-of-generation tokens out; llama.cpp's logit-bias
  // sampler does not, and neither does the owl engine: a +100 on EOS makes it the first token on
  // both backends (without the bias, run.c's greedy text goes on for 200 tokens).
  it("is applied on both backends", async () => {
    for (const name of ["llama.cpp", "owl"] as const) {
      const model = await createBackend(name).load({
        modelPath: BUNDLED,
        adapters: [],
        numCtx: 64,
        numParallel: 1,
        threads: 1,
      });
      try {
        const eos = model.info.eosToken;
        expect(eos).toBeDefined();
        const seq = model.tryAcquireSequence()!;
        const prompt = model.tokenize("Once upon a time", { addBos: true, parseSpecial: false });
        const plain = await lean(seq, prompt, GREEDY, 4);
        expect(plain.map((s) => s.token)).not.toContain(eos);
        const biased = await lean(seq, prompt, { ...GREEDY, logitBias: new Map([[eos!, 100]]) }, 1);
        expect(biased[0]?.token).toBe(eos);
        seq.release();
      } finally {
        await model.dispose();
      }
    }
  }, 60_000);
});

describe("generated control tokens in the text (llama-server streams pieces with special false)", () => {
  it("a generated BOS adds no text on either backend, as llama.cpp's own detokenize without specials", async () => {
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    const ref = await llama.loadModel({ modelPath: BUNDLED });
    try {
      for (const name of ["llama.cpp", "owl"] as const) {
        const model = await createBackend(name).load({
          modelPath: BUNDLED,
          adapters: [],
          numCtx: 64,
          numParallel: 1,
          threads: 1,
        });
        try {
          const bos = model.info.bosToken!;
          expect(ref.detokenize([bos as Token], false)).toBe("");
          expect(new TextDecoder().decode(model.tokenBytes(bos))).toBe("");
          // (Normal tokens keep their text: the run.c greedy-text tests on both backends.)
          const seq = model.tryAcquireSequence()!;
          const prompt = model.tokenize("Once upon a time", { addBos: true, parseSpecial: false });
          const r = await lean(seq, prompt, { ...GREEDY, logitBias: new Map([[bos, 100]]) }, 2);
          expect(r.map((s) => s.token)).toEqual([bos, bos]);
          seq.release();
        } finally {
          await model.dispose();
        }
      }
    } finally {
      await ref.dispose();
      await llama.dispose();
    }
  }, 60_000);
});
