/**
 * The llama.cpp backend hands a step's tokens to llama.cpp in increasing sequence id, whatever
 * order the sequences asked in: node-llama-cpp's contexts keep a KV cache per sequence (not
 * kv_unified), and llama.cpp then cuts a batch into ubatches of consecutive, increasing sequence
 * ids (llama-batch.cpp split_equal, "accept only increasing sequence ids"), each one forward pass:
 * four sequences in arrival order 1, 3, 2, 0 would cost four passes. The order is read at the
 * addon's addToBatch (the call that fills llama.cpp's batch); the text of each sequence stays
 * what it is when it runs alone.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import type { LoadedModel, Sequence } from "../src/runtime/types.ts";
import { BUNDLED, GREEDY } from "./helpers/runtime.ts";

const PROMPTS = ["Once upon a time", "The little dog", "Lily wanted to", "One day, Tom"];
const STEPS = 24;

async function greedy(seq: Sequence, prompt: readonly number[]): Promise<number[]> {
  const out: number[] = [];
  for await (const step of seq.generate(prompt, { sampling: GREEDY })) {
    out.push(step.token);
    if (out.length >= STEPS) break;
  }
  return out;
}

describe("llama.cpp backend, the order of a step's sequences", () => {
  let model: LoadedModel;
  /** Sequence ids of each addToBatch call, grouped by batch (initBatch starts one). */
  const batches: number[][] = [];

  beforeAll(async () => {
    model = await createBackend("llama.cpp").load({
      modelPath: BUNDLED,
      adapters: [],
      numCtx: 256,
      numParallel: 4,
      threads: 1,
    });
    // Watch the addon's batch calls (the context object is native: wrap it, do not patch it).
    const addon = (model as unknown as { addon: { ctx: object } }).addon;
    const ctx = addon.ctx as Record<string, unknown>;
    const proxy = new Proxy(ctx, {
      get(target, prop) {
        const v = target[prop as string];
        if (prop === "initBatch")
          return (...a: unknown[]) => {
            batches.push([]);
            return (v as (...x: unknown[]) => unknown).apply(target, a);
          };
        if (prop === "addToBatch")
          return (seqId: number, ...a: unknown[]) => {
            batches.at(-1)?.push(seqId);
            return (v as (...x: unknown[]) => unknown).apply(target, [seqId, ...a]);
          };
        return typeof v === "function" ? (v as (...x: unknown[]) => unknown).bind(target) : v;
      },
    });
    Object.defineProperty(addon, "ctx", { value: proxy, configurable: true, writable: true });
  }, 60_000);
  afterAll(async () => {
    await model?.dispose();
  });

  it("goes to llama.cpp in increasing sequence id, and each text is the one it gives alone", async () => {
    const prompts = PROMPTS.map((p) => model.tokenize(p, { addBos: true, parseSpecial: false }));
    const alone: number[][] = [];
    for (const prompt of prompts) {
      const s = model.tryAcquireSequence()!;
      try {
        alone.push(await greedy(s, prompt));
      } finally {
        s.release();
      }
    }
    const seqs = prompts.map(() => model.tryAcquireSequence()!);
    batches.length = 0;
    try {
      // Started in the reverse of their ids, so that arrival order is not id order.
      const order = [3, 1, 2, 0];
      const together: number[][] = [];
      await Promise.all(
        order.map(async (i) => {
          together[i] = await greedy(seqs[i]!, prompts[i]!);
        }),
      );
      for (const [i, want] of alone.entries()) expect(together[i], PROMPTS[i]).toEqual(want);
    } finally {
      for (const s of seqs) s.release();
    }
    const multi = batches.filter((b) => b.length > 1);
    expect(multi.length).toBeGreaterThan(STEPS / 2);
    for (const b of multi) expect(b, JSON.stringify(b)).toEqual([...b].sort((x, y) => x - y));
    // Steps of all four (one pass each, in id order 0..3).
    expect(multi.filter((b) => b.join(",") === "0,1,2,3").length).toBeGreaterThan(STEPS / 2);
  });
});
