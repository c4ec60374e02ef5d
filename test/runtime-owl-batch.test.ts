/**
 * Continuous batching on the owl engine backend (owl-backend.ts, Model.evaluateBatch): four
 * sequences generating at once decode as ONE forward of four rows per step (counted by
 * stepCounts, not timed) and give each the tokens it gives alone: greedy text equal to llama2.c
 * run.c's reference for stories260K, seeded sampling with logprobs equal to one-at-a-time runs;
 * a sequence joining or leaving mid-way changes the batch size, not the text; an aborted one ends
 * quietly while the others go on. Over HTTP: four concurrent /api/generate streams (the ollama
 * client, OWL_BACKEND=owl as a setting) decode in steps of four and give run.c's text.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ollama } from "ollama";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import { complete } from "../src/runtime/complete.ts";
import { stepCounts } from "../src/runtime/owl-backend.ts";
import { Scheduler } from "../src/runtime/scheduler.ts";
import type { LoadedModel, SamplingOptions } from "../src/runtime/types.ts";
import type { ServerContext } from "../src/server/context.ts";
import { type RunningServer, startServer } from "../src/server/serve.ts";
import { ModelStore } from "../src/store/store.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import type { ServerSettings } from "../src/util/env.ts";
import { fixturePath } from "./helpers/fixtures.ts";
import { BUNDLED, GREEDY, pieces, run } from "./helpers/runtime.ts";

const CASES = ["once_upon_a_time", "the_little_dog", "lily_wanted_to", "empty"];
const refPath = (c: string) => `llama2c/reference/greedy_${c}_n200.json`;
const haveRefs = CASES.every((c) => fixturePath(refPath(c)));
const N = 30;

interface Reference {
  prompt: string;
  prompt_tokens: number[];
  generated_tokens: number[];
}
const refs = haveRefs
  ? CASES.map((c) => JSON.parse(readFileSync(fixturePath(refPath(c))!, "utf8")) as Reference)
  : [];

/** Steps by batch size since `before` (stepCounts taken earlier). */
function stepsSince(model: LoadedModel, before: readonly number[]): number[] {
  const now = stepCounts(model)!;
  return now.map((n, i) => (n ?? 0) - (before[i] ?? 0));
}

/** Index -> count as an object without the zero entries, for readable assertions. */
function nonZero(counts: readonly number[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const [i, n] of counts.entries()) if (n) out[i] = n;
  return out;
}

describe.skipIf(!haveRefs)("owl backend, four sequences at once", () => {
  let model: LoadedModel;

  beforeAll(async () => {
    model = await createBackend("owl").load({
      modelPath: BUNDLED,
      adapters: [],
      numCtx: 256,
      numParallel: 4,
      threads: 1,
    });
  }, 60_000);
  afterAll(async () => {
    await model?.dispose();
  });

  it("decode in steps of four and give each run.c's greedy tokens", async () => {
    const seqs = refs.map(() => model.tryAcquireSequence()!);
    const before = stepCounts(model)!;
    try {
      const results = await Promise.all(
        refs.map((r, i) => run(model, seqs[i]!, { prompt: r.prompt_tokens, maxTokens: N })),
      );
      for (const [i, r] of results.entries()) {
        expect(
          pieces(r.events).map((p) => p.token),
          CASES[i],
        ).toEqual(refs[i]!.generated_tokens.slice(0, N));
        expect(r.done).toMatchObject({ reason: "length", evalTokens: N });
      }
    } finally {
      for (const s of seqs) s.release();
    }
    // The first token of each comes from its prompt; the other N - 1 from N - 1 steps of four.
    expect(nonZero(stepsSince(model, before))).toEqual({ 4: N - 1 });
  });

  it("seeded sampling with logprobs gives each the tokens and logprobs it gives alone", async () => {
    const sampling: SamplingOptions = {
      ...GREEDY,
      temperature: 0.9,
      topK: 40,
      topP: 0.95,
      repeatPenalty: 1.1,
    };
    const prompts = refs.map((r) => r.prompt_tokens);
    const alone = [];
    for (const [i, prompt] of prompts.entries()) {
      const s = model.tryAcquireSequence()!;
      try {
        const req = { prompt, maxTokens: N, sampling: { ...sampling, seed: 100 + i }, logprobs: 2 };
        alone.push(pieces((await run(model, s, req)).events));
      } finally {
        s.release();
      }
    }
    const seqs = prompts.map(() => model.tryAcquireSequence()!);
    const before = stepCounts(model)!;
    try {
      const together = await Promise.all(
        prompts.map(async (prompt, i) => {
          const req = { prompt, maxTokens: N, sampling: { ...sampling, seed: 100 + i }, logprobs: 2 };
          return pieces((await run(model, seqs[i]!, req)).events);
        }),
      );
      for (const [i, got] of together.entries()) {
        const want = alone[i]!;
        expect(got.map((p) => p.token)).toEqual(want.map((p) => p.token));
        for (const [k, p] of got.entries()) {
          expect(Math.abs(p.logprob! - want[k]!.logprob!)).toBeLessThan(1e-4);
          expect(p.top!.map((t) => t.token)).toEqual(want[k]!.top!.map((t) => t.token));
        }
      }
    } finally {
      for (const s of seqs) s.release();
    }
    // Sequences that hit end of text early leave the batch: most steps are of four.
    const steps = stepsSince(model, before);
    expect(steps[4]).toBeGreaterThan(N / 2);
    expect(steps.reduce((a, n, size) => a + (n ?? 0) * size, 0)).toBeGreaterThan(0);
  });

  it("a sequence joining late, one leaving early and one aborted: the batch size changes, the text does not", async () => {
    const seqs = refs.map(() => model.tryAcquireSequence()!);
    const before = stepCounts(model)!;
    const abort = new AbortController();
    let produced = 0;
    /** The tokens of one completion, counted in `produced` as they come. */
    const collect = async (i: number, maxTokens: number, signal?: AbortSignal) => {
      const tokens: number[] = [];
      let reason = "";
      const req = {
        prompt: refs[i]!.prompt_tokens,
        sampling: GREEDY,
        maxTokens,
        stop: [],
        ...(signal && { signal }),
      };
      for await (const ev of complete(model, seqs[i]!, req)) {
        if (ev.type === "done") reason = ev.reason;
        else {
          tokens.push(...ev.pieces.map((p) => p.token));
          produced += ev.pieces.length;
          // The fourth joins once the others have a few tokens each; the third is aborted later.
          if (produced >= 30) abort.abort();
        }
      }
      return { tokens, reason };
    };
    const untilProduced = async (n: number) => {
      while (produced < n) await new Promise((r) => setImmediate(r));
    };
    try {
      const [full, short, aborted, late] = await Promise.all([
        collect(0, N),
        collect(1, 10),
        collect(2, N, abort.signal),
        untilProduced(9).then(() => collect(3, N)),
      ]);
      expect(full.tokens).toEqual(refs[0]!.generated_tokens.slice(0, N));
      expect(short.tokens).toEqual(refs[1]!.generated_tokens.slice(0, 10));
      expect(aborted.reason).toBe("abort");
      expect(aborted.tokens.length).toBeLessThan(N);
      expect(aborted.tokens).toEqual(refs[2]!.generated_tokens.slice(0, aborted.tokens.length));
      expect(late.tokens).toEqual(refs[3]!.generated_tokens.slice(0, N));
    } finally {
      for (const s of seqs) s.release();
    }
    // Steps of three before the late one joined, of four after, fewer once one left or aborted.
    const sizes = nonZero(stepsSince(model, before));
    expect(Object.keys(sizes).sort()).toEqual(["1", "2", "3", "4"]);
  });
});

describe.skipIf(!haveRefs)("owl backend, a long prompt", () => {
  it("is evaluated in chunks: another stream goes on meanwhile, and its own text is still run.c's", async () => {
    const model = await createBackend("owl").load({
      modelPath: BUNDLED,
      adapters: [],
      numCtx: 512,
      numParallel: 2,
      threads: 1,
    });
    try {
      const [a, b] = [model.tryAcquireSequence()!, model.tryAcquireSequence()!];
      // B streams a story; A's prompt is run.c's prompt and first 180 tokens (2 chunks of 64 and
      // more), so greedy A goes on with run.c's tokens 180..189.
      let bTokens = 0;
      const streamB = (async () => {
        for await (const ev of complete(model, b, {
          prompt: refs[1]!.prompt_tokens,
          sampling: GREEDY,
          maxTokens: 120,
          stop: [],
        }))
          if (ev.type === "text") bTokens += ev.pieces.length;
      })();
      while (bTokens < 3) await new Promise((r) => setImmediate(r));
      const bAtStart = bTokens;
      let bAtFirstA: number | undefined;
      const ref = refs[0]!;
      const prompt = [...ref.prompt_tokens, ...ref.generated_tokens.slice(0, 180)];
      const aTokens: number[] = [];
      for await (const ev of complete(model, a, { prompt, sampling: GREEDY, maxTokens: 10, stop: [] })) {
        if (ev.type !== "text") continue;
        bAtFirstA ??= bTokens;
        aTokens.push(...ev.pieces.map((p) => p.token));
      }
      await streamB;
      expect(aTokens).toEqual(ref.generated_tokens.slice(180, 190));
      // B got tokens between A's prompt chunks (evaluated at once, A's prompt would hold it up).
      expect(bAtFirstA! - bAtStart).toBeGreaterThanOrEqual(2);
      a.release();
      b.release();
    } finally {
      await model.dispose();
    }
  }, 60_000);
});

describe.skipIf(!haveRefs)("owl serve, four /api/generate streams at once", () => {
  const root = mkdtempSync(join(tmpdir(), "owl-batch-"));
  const shutdown = new AbortController();
  let server: RunningServer;
  let scheduler: Scheduler;
  let loaded: LoadedModel | undefined;
  const settings: ServerSettings = {
    host: "127.0.0.1",
    port: 0,
    maxLoadedModels: 1,
    numParallel: 4,
    maxQueue: 8,
    keepAlive: "5m",
    apiKeys: [],
    maxBodyBytes: 64 * 1024,
    contextLength: 256,
    backend: "owl",
    origins: [],
  };

  beforeAll(async () => {
    scheduler = new Scheduler({
      // The owl backend, keeping the model it loads so that the test can read its step counts.
      createBackend: (name) => {
        const b = createBackend(name);
        return {
          name: b.name,
          load: async (o) => {
            loaded = await b.load(o);
            return loaded;
          },
        };
      },
      maxLoadedModels: 1,
      numParallel: settings.numParallel,
      maxQueue: settings.maxQueue,
      defaultKeepAliveMs: -1,
      defaultNumCtx: settings.contextLength,
      defaultBackend: "owl",
      threads: 1,
    });
    const ctx: ServerContext = {
      store: new ModelStore(root),
      scheduler,
      settings,
      version: "0.0.0-test",
      shutdown: shutdown.signal,
    };
    server = await startServer(ctx, { host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    shutdown.abort();
    await server?.close({ graceMs: 1000 });
    await scheduler?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("decode in steps of four and give run.c's text", async () => {
    const client = new Ollama({ host: server.url });
    const dec = Tokenizer.fromGgufFile(BUNDLED);
    const cases = refs.slice(0, 3);
    // Loaded first, so that every stream starts generating at once.
    await client.generate({ model: "stories260k", prompt: "" });
    const before = stepCounts(loaded!)!;
    const prompts = [...cases.map((r) => r.prompt), "The sun"];
    const texts = await Promise.all(
      prompts.map(async (prompt) => {
        let text = "";
        const stream = await client.generate({
          model: "stories260k",
          prompt,
          raw: true,
          stream: true,
          options: { temperature: 0, num_predict: N },
        });
        for await (const part of stream) text += part.response;
        return text;
      }),
    );
    const textOf = (ids: readonly number[]) => {
      const d = dec.streamingDecoder();
      return ids.map((id) => d.push(id)).join("") + d.flush();
    };
    for (const [i, r] of cases.entries()) expect(texts[i]).toBe(textOf(r.generated_tokens.slice(0, N)));
    const steps = stepsSince(loaded!, before);
    // Each stream's first token comes from its prompt, the other N - 1 from decode steps; the
    // requests arrive one by one, so the first steps may hold fewer (seen: 0 to 3 such steps).
    expect(steps.reduce((a, n, size) => a + (n ?? 0) * size, 0)).toBe(4 * (N - 1));
    expect(steps[4], JSON.stringify(nonZero(steps))).toBeGreaterThanOrEqual(N / 2);
    // Alone, the fourth prompt gives the same text.
    const alone = await client.generate({
      model: "stories260k",
      prompt: "The sun",
      raw: true,
      stream: false,
      options: { temperature: 0, num_predict: N },
    });
    expect(texts[3]).toBe(alone.response);
  });
});
