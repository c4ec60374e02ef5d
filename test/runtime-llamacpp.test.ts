/**
 * The llama.cpp backend (node-llama-cpp 3.21.1) through the runtime contract on the bundled
 * stories260K: greedy text through complete() equals llama2.c run.c's reference, four sequences
 * generating at once (batched by node-llama-cpp) each give the one-at-a-time text, a prompt that
 * shares a prefix evaluates only its new tokens, grammars constrain the output (JSON, a JSON schema,
 * GBNF) and a bad schema is ERR_GRAMMAR (also for a generation aborted before it starts, which
 * yields nothing: complete() checks a grammar so), logprobs are consistent, embeddings are unit vectors,
 * an overlong prompt is ERR_CONTEXT_OVERFLOW naming both numbers, and load/dispose does not leak.
 * One thread (two spinning threads crawl on a busy 2-core machine).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import type { LoadedModel } from "../src/runtime/types.ts";
import { OwlError } from "../src/util/errors.ts";
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
  writeTinyLora,
} from "./helpers/runtime.ts";

const backend = createBackend("llama.cpp");

describe("llama.cpp backend", () => {
  let model: LoadedModel;

  beforeAll(async () => {
    model = await backend.load({ modelPath: BUNDLED, adapters: [], numCtx: 256, numParallel: 4, threads: 1 });
  }, 60_000);
  afterAll(async () => {
    await model?.dispose();
  });

  it("reports the GGUF's facts", () => {
    expect(model.backend).toBe("llama.cpp");
    expect(model.info).toMatchObject({
      architecture: "llama",
      trainContextLength: 512,
      embeddingLength: 64,
      vocabSize: 512,
      bosToken: 1,
      eosToken: 2,
      addBos: true,
    });
    expect(model.info.eogTokens).toContain(2);
    expect(model.numCtx).toBe(256);
    expect(model.memoryBytes()).toBeGreaterThan(model.info.weightBytes);
  });

  it.skipIf(!fixturePath(REF))(
    "tokenizes as run.c and greedy text through complete() equals run.c",
    async () => {
      const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: true });
      expect(prompt).toEqual(reference().prompt_tokens);
      const seq = model.tryAcquireSequence()!;
      try {
        const r = await run(model, seq, { prompt, maxTokens: 60 });
        expect(r.text).toBe(referenceText(60));
        expect(r.done).toMatchObject({
          reason: "length",
          promptTokens: prompt.length,
          promptEvaluated: prompt.length,
          evalTokens: 60,
        });
        expect(r.done.context).toEqual([...prompt, ...reference().generated_tokens.slice(0, 60)]);
        expect(r.done.promptEvalNs).toBeGreaterThan(0);
        expect(r.done.evalNs).toBeGreaterThan(0);
        expect(model.detokenize(r.done.context.slice(1))).toBe(` ${PROMPT}${r.text}`.slice(1));
      } finally {
        seq.release();
      }
    },
  );

  it("four sequences generating at once give each the text of one at a time", async () => {
    const prompts = ["Once upon a time", "The little dog", "Lily wanted to", "One day, Tom"].map((p) =>
      model.tokenize(p, { addBos: true, parseSpecial: false }),
    );
    const alone: string[] = [];
    for (const prompt of prompts) {
      const seq = model.tryAcquireSequence()!;
      await seq.generate([1], { sampling: GREEDY }).next(); // a different cache state first
      alone.push((await run(model, seq, { prompt, maxTokens: 30 })).text);
      seq.release();
    }
    const seqs = prompts.map(() => model.tryAcquireSequence()!);
    expect(new Set(seqs.map((s) => s.index)).size).toBe(4);
    expect(model.tryAcquireSequence()).toBeUndefined();
    try {
      const together = await Promise.all(
        prompts.map((prompt, i) => run(model, seqs[i]!, { prompt, maxTokens: 30 }).then((r) => r.text)),
      );
      expect(together).toEqual(alone);
      expect(new Set(together).size).toBe(4);
    } finally {
      for (const s of seqs) s.release();
    }
  }, 60_000);

  it("a prompt sharing a prefix evaluates only the new tokens; the freest sequence with that prefix is chosen", async () => {
    const a = model.tokenize("Once upon a time, there was a little girl", {
      addBos: true,
      parseSpecial: false,
    });
    const seq = model.tryAcquireSequence(a)!;
    await run(model, seq, { prompt: a, maxTokens: 5 });
    expect(seq.tokens.slice(0, a.length)).toEqual(a);
    seq.release();
    const b = [...a, ...model.tokenize(" named Lily", { addBos: false, parseSpecial: false })];
    const again = model.tryAcquireSequence(b)!;
    expect(again.index).toBe(seq.index);
    const r = await run(model, again, { prompt: b, maxTokens: 5 });
    expect(again.lastPrompt()).toEqual({ reused: a.length, evaluated: b.length - a.length });
    expect(r.done.promptEvaluated).toBe(b.length - a.length);
    // The same prompt again: everything but the last token comes from the cache.
    await run(model, again, { prompt: b, maxTokens: 2 });
    expect(again.lastPrompt()).toEqual({ reused: b.length - 1, evaluated: 1 });
    // A diverging prompt: only the common prefix is kept.
    const c = model.tokenize("Once upon a day", { addBos: true, parseSpecial: false });
    await run(model, again, { prompt: c, maxTokens: 2 });
    const common = a.findIndex((t, i) => c[i] !== t);
    expect(again.lastPrompt()).toEqual({ reused: common, evaluated: c.length - common });
    again.release();
  });

  it("a prompt that fills the context is ERR_CONTEXT_OVERFLOW naming both numbers; generation ends at a full context", async () => {
    const seq = model.tryAcquireSequence()!;
    try {
      const long = new Array(300).fill(400);
      await expect(run(model, seq, { prompt: [1, ...long] })).rejects.toMatchObject({
        code: "ERR_CONTEXT_OVERFLOW",
        message: expect.stringMatching(/301 tokens.*256/),
      });
      const prompt = [1, ...new Array(250).fill(400)];
      const r = await run(model, seq, { prompt, maxTokens: -1 });
      expect(r.done.reason).toBe("length");
      expect(r.done.context.length).toBe(256);
    } finally {
      seq.release();
    }
  }, 30_000);

  it("format json gives text that JSON.parse accepts", async () => {
    const seq = model.tryAcquireSequence()!;
    try {
      const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
      const r = await run(model, seq, {
        prompt,
        maxTokens: 200,
        grammar: { type: "json" },
        // The tiny model would tell its story in strings forever: a push towards closing the object.
        sampling: { ...GREEDY, logitBias: new Map([[piece(model, "}"), 10]]) },
      });
      expect(r.done.reason).toBe("stop");
      expect(typeof JSON.parse(r.text)).toBe("object");
    } finally {
      seq.release();
    }
  }, 30_000);

  it("a JSON schema is enforced; a bad schema is ERR_GRAMMAR", async () => {
    const schema = {
      type: "object",
      properties: { name: { type: "string" }, age: { type: "integer" } },
      required: ["name", "age"],
    };
    const seq = model.tryAcquireSequence()!;
    try {
      const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
      const r = await run(model, seq, {
        prompt,
        maxTokens: 200,
        grammar: { type: "json_schema", schema },
        // A little push towards ending strings, so the tiny model finishes within the budget.
        sampling: { ...GREEDY, logitBias: new Map([[piece(model, '"'), 3]]) },
      });
      const v = JSON.parse(r.text) as Record<string, unknown>;
      // The closing brace ends the generation (the grammar would allow whitespace forever).
      expect(r.done.reason).toBe("stop");
      expect(r.text.endsWith("}")).toBe(true);
      expect(Object.keys(v).sort()).toEqual(["age", "name"]);
      expect(typeof v["name"]).toBe("string");
      expect(Number.isInteger(v["age"])).toBe(true);
      await expect(
        run(model, seq, {
          prompt,
          grammar: {
            type: "json_schema",
            schema: { type: "object", properties: { a: { type: "nonsense" } } },
          },
        }),
      ).rejects.toMatchObject({ code: "ERR_GRAMMAR" });
      await expect(
        run(model, seq, { prompt, grammar: { type: "gbnf", grammar: "root ::= (" } }),
      ).rejects.toBeInstanceOf(OwlError);
      const g = await run(model, seq, {
        prompt,
        maxTokens: 20,
        grammar: { type: "gbnf", grammar: 'root ::= "yes" | "no"' },
      });
      expect(["yes", "no"]).toContain(g.text);
    } finally {
      seq.release();
    }
  }, 30_000);

  it("a generation aborted before it starts yields nothing but still builds its grammar (ERR_GRAMMAR)", async () => {
    const seq = model.tryAcquireSequence()!;
    try {
      const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
      const aborted = { sampling: GREEDY, signal: AbortSignal.abort() };
      const steps = [];
      for await (const s of seq.generate(prompt, { ...aborted, grammar: { type: "json" } })) steps.push(s);
      expect(steps).toEqual([]);
      const bad = seq.generate(prompt, {
        ...aborted,
        grammar: { type: "json_schema", schema: { type: "object", properties: { a: { type: "nonsense" } } } },
      });
      await expect(bad.next()).rejects.toMatchObject({ code: "ERR_GRAMMAR" });
      // The sequence still serves.
      const r = await run(model, seq, { prompt, maxTokens: 4 });
      expect(r.done.evalTokens).toBe(4);
    } finally {
      seq.release();
    }
  });

  it("logprobs: the greedy token is the top-1, top-n probabilities sum to at most 1", async () => {
    const seq = model.tryAcquireSequence()!;
    try {
      const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
      const r = await run(model, seq, { prompt, maxTokens: 10, logprobs: 5 });
      const ps = pieces(r.events);
      expect(ps.length).toBe(10);
      for (const p of ps) {
        expect(p.top).toHaveLength(5);
        expect(p.top![0]!.token).toBe(p.token);
        expect(p.top![0]!.logprob).toBeCloseTo(p.logprob!, 6);
        expect(p.logprob!).toBeLessThanOrEqual(0);
        const sum = p.top!.reduce((s, t) => s + Math.exp(t.logprob), 0);
        expect(sum).toBeLessThanOrEqual(1 + 1e-6);
        for (let i = 1; i < 5; i++) expect(p.top![i]!.logprob).toBeLessThanOrEqual(p.top![i - 1]!.logprob);
        expect(p.top![0]!.text).toBe(p.text);
      }
      const only = await run(model, seq, { prompt, maxTokens: 3, logprobs: 0 });
      const p0 = pieces(only.events);
      expect(p0[0]!.logprob).toBeCloseTo(ps[0]!.logprob!, 5);
      expect(p0[0]!.top).toBeUndefined();
    } finally {
      seq.release();
    }
  });

  it("embeddings are unit vectors, equal for equal texts, different for different ones", async () => {
    const r = await model.embed(["Once upon a time", "The little dog", "Once upon a time"], {
      truncate: false,
    });
    expect(r.embeddings).toHaveLength(3);
    for (const v of r.embeddings) {
      expect(v.length).toBe(64);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
    expect([...r.embeddings[2]!]).toEqual([...r.embeddings[0]!]);
    expect([...r.embeddings[1]!]).not.toEqual([...r.embeddings[0]!]);
    const n = (t: string) => model.tokenize(t, { addBos: true, parseSpecial: true }).length;
    expect(r.promptTokens).toBe(2 * n("Once upon a time") + n("The little dog"));
    const long = "Once upon a time ".repeat(80);
    await expect(model.embed([long], { truncate: false })).rejects.toMatchObject({
      code: "ERR_CONTEXT_OVERFLOW",
      message: expect.stringMatching(/has \d+ tokens and the context holds 256/),
    });
    const t = await model.embed([long], { truncate: true });
    expect(t.promptTokens).toBe(256);
  });
});

describe("llama.cpp backend lifecycle", () => {
  it("an aborted load is ERR_ABORTED", async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(
      backend.load({
        modelPath: BUNDLED,
        adapters: [],
        numCtx: 64,
        numParallel: 1,
        threads: 1,
        signal: ac.signal,
      }),
    ).rejects.toMatchObject({ code: "ERR_ABORTED" });
  });

  it("loads and disposes five times without keeping the models", async () => {
    for (let i = 0; i < 5; i++) {
      const m = await backend.load({
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
      await m.embed(["x"], { truncate: false });
      await m.dispose();
      await m.dispose(); // idempotent
      await expect(seq.generate([1], { sampling: GREEDY }).next()).rejects.toMatchObject({
        message: expect.stringMatching(/disposed/),
      });
      await expect(m.embed(["x"], { truncate: false })).rejects.toMatchObject({
        code: "ERR_INVALID_ARGUMENT",
      });
    }
  }, 60_000);

  it("a missing model file and bad options are clear errors", async () => {
    await expect(
      backend.load({
        modelPath: join(REPO_ROOT, "models", "nope.gguf"),
        adapters: [],
        numCtx: 64,
        numParallel: 1,
      }),
    ).rejects.toBeInstanceOf(OwlError);
    await expect(
      backend.load({ modelPath: BUNDLED, adapters: [], numCtx: 0, numParallel: 1 }),
    ).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT", message: expect.stringMatching(/numCtx/) });
  });
});

describe("llama.cpp backend with a LoRA adapter", () => {
  it("an adapter changes the greedy text; at scale 0 it is the base model's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "owl-lora-"));
    try {
      const lora = join(dir, "lora.gguf");
      await writeTinyLora(lora);
      const text = async (adapters: { path: string; scale: number }[]) => {
        const m = await backend.load({
          modelPath: BUNDLED,
          adapters,
          numCtx: 64,
          numParallel: 1,
          threads: 1,
        });
        try {
          const seq = m.tryAcquireSequence()!;
          return (
            await run(m, seq, {
              prompt: m.tokenize(PROMPT, { addBos: true, parseSpecial: false }),
              maxTokens: 20,
            })
          ).text;
        } finally {
          await m.dispose();
        }
      };
      const base = await text([]);
      expect(await text([{ path: lora, scale: 0 }])).toBe(base);
      expect(await text([{ path: lora, scale: 1 }])).not.toBe(base);
      await expect(text([{ path: join(dir, "missing.gguf"), scale: 1 }])).rejects.toMatchObject({
        code: "ERR_MODEL_LOAD",
        message: expect.stringMatching(/missing\.gguf/),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
