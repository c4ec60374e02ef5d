/**
 * The owl engine's model API: loading errors (architecture, metadata, tensor presence and
 * shapes), weights kept in their stored type, evaluate() errors, KV prefix reuse and its counter,
 * all-position logits, batching, activation hooks (observe and steer), the memory report and
 * greedy decoding. Models are tiny random GGUFs built in memory.
 */
import { describe, expect, it } from "vitest";
import { argmax, generateGreedy } from "../src/engine/greedy.ts";
import { loadModel, type Model } from "../src/engine/model.ts";
import { type GgufWriteInput, gf32, gstr, readGguf, serializeGguf } from "../src/formats/gguf/index.ts";
import { MemorySource } from "../src/util/bytes.ts";
import { isOwlError, type OwlErrorCode } from "../src/util/errors.ts";
import { type TinySpec, tinyModel } from "./helpers/engine-tiny-model.ts";

const SMALL: TinySpec = {
  arch: "llama",
  type: "F32",
  seed: 7,
  C: 64,
  nFf: 128,
  nHead: 4,
  nHeadKv: 2,
  V: 300,
};

async function load(input: GgufWriteInput): Promise<Model> {
  return loadModel(readGguf(new MemorySource(await serializeGguf(input))));
}

async function expectOwlError(p: Promise<unknown> | (() => unknown), code: OwlErrorCode, ...parts: string[]) {
  let error: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(isOwlError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
  for (const part of parts) expect((error as Error).message).toContain(part);
  return error;
}

function withoutTensor(input: GgufWriteInput, name: string): GgufWriteInput {
  return { ...input, tensors: input.tensors.filter((t) => t.name !== name) };
}

describe("loading", () => {
  it("rejects an unknown architecture and lists the supported ones", async () => {
    const input = tinyModel(SMALL);
    input.metadata.set("general.architecture", gstr("gpt2"));
    await expectOwlError(load(input), "ERR_UNSUPPORTED_ARCH", '"gpt2"', "llama, qwen2, qwen3");
  });

  it("names a missing hyperparameter key", async () => {
    const input = tinyModel(SMALL);
    input.metadata.delete("llama.embedding_length");
    await expectOwlError(load(input), "ERR_MODEL_METADATA", '"llama.embedding_length"');
    const noEps = tinyModel(SMALL);
    noEps.metadata.delete("llama.attention.layer_norm_rms_epsilon");
    await expectOwlError(load(noEps), "ERR_MODEL_METADATA", '"llama.attention.layer_norm_rms_epsilon"');
  });

  it("names a missing tensor", async () => {
    await expectOwlError(
      load(withoutTensor(tinyModel(SMALL), "blk.1.ffn_up.weight")),
      "ERR_TENSOR_NOT_FOUND",
      '"blk.1.ffn_up.weight"',
    );
  });

  it("names a tensor whose shape does not match the hyperparameters, with both shapes", async () => {
    const input = tinyModel(SMALL);
    input.metadata.set("llama.attention.head_count_kv", { type: "UINT32", value: 4 });
    const e = await expectOwlError(
      load(input),
      "ERR_TENSOR_SHAPE",
      '"blk.0.attn_k.weight"',
      "[64, 32]",
      "[64, 64]",
    );
    expect((e as { details: unknown }).details).toMatchObject({ expected: [64, 64], found: [64, 32] });
  });

  it("refuses tensors it would silently ignore, and unsupported RoPE scaling", async () => {
    const extra = tinyModel(SMALL);
    const first = extra.tensors[0]!;
    extra.tensors = [...extra.tensors, { ...first, name: "blk.0.attn_qkv.weight" }];
    await expectOwlError(load(extra), "ERR_UNSUPPORTED", '"blk.0.attn_qkv.weight"');
    const yarn = tinyModel(SMALL);
    yarn.metadata.set("llama.rope.scaling.type", gstr("yarn"));
    yarn.metadata.set("llama.rope.scaling.factor", gf32(4));
    await expectOwlError(load(yarn), "ERR_UNSUPPORTED", '"yarn"');
  });

  it("keeps weights in their stored type", async () => {
    const spec: TinySpec = { ...SMALL, C: 256, nFf: 256, nHead: 8, nHeadKv: 4 };
    const f32 = await load(tinyModel(spec));
    const q4 = await load(tinyModel({ ...spec, type: "Q4_K" }));
    const ratio = q4.memory().weightsBytes / f32.memory().weightsBytes;
    expect(ratio).toBeGreaterThan(0.13); // 4.5 bits per weight, norms stay F32
    expect(ratio).toBeLessThan(0.16);
    expect(q4.hparams).toMatchObject({ C: 256, L: 2, nHead: 8, nHeadKv: 4, headDim: 32, nFf: 256, V: 300 });
  });
});

describe("evaluate", () => {
  it("rejects token ids outside the vocabulary, naming the id and V", async () => {
    const m = await load(tinyModel(SMALL));
    await expectOwlError(() => m.evaluate([1, 300]), "ERR_TOKEN_OUT_OF_RANGE", "token 300", "V = 300");
    await expectOwlError(() => m.evaluate([1, -1]), "ERR_TOKEN_OUT_OF_RANGE", "token -1");
    await expectOwlError(() => m.evaluate([]), "ERR_INVALID_ARGUMENT");
  });

  it("rejects sequences longer than the context, naming both numbers", async () => {
    const m = await load(tinyModel(SMALL));
    const s = m.createSession({ nCtx: 8 });
    s.evaluate([1, 2, 3, 4, 5, 6, 7, 8]);
    await expectOwlError(
      () => s.evaluate([1, 2, 3, 4, 5, 6, 7, 8, 9]),
      "ERR_CONTEXT_OVERFLOW",
      "9 tokens",
      "8 tokens",
    );
  });

  it("reuses the cached prefix: only new tokens are evaluated, with identical logits", async () => {
    const m = await load(tinyModel(SMALL));
    const a = [1, 270, 280, 290, 100];
    const fresh = (tokens: number[]) => m.createSession().evaluate(tokens).logits;

    const s = m.createSession();
    const r1 = s.evaluate(a);
    expect([r1.firstPosition, r1.evaluated, s.evaluatedTokens]).toEqual([0, 5, 5]);
    expect(r1.logits).toEqual(fresh(a));

    const r2 = s.evaluate([...a, 42, 43]); // extends the cache
    expect([r2.firstPosition, r2.evaluated, s.evaluatedTokens]).toEqual([5, 2, 7]);
    expect(r2.logits).toEqual(fresh([...a, 42, 43]));

    const r3 = s.evaluate([...a, 50]); // diverges after the prefix: truncate and go on
    expect([r3.firstPosition, r3.evaluated, s.evaluatedTokens]).toEqual([5, 1, 8]);
    expect(r3.logits).toEqual(fresh([...a, 50]));
    expect(s.tokens).toEqual([...a, 50]);

    const r4 = s.evaluate([...a, 50]); // identical: only the last token runs again
    expect([r4.firstPosition, r4.evaluated, s.evaluatedTokens]).toEqual([5, 1, 9]);
    expect(r4.logits).toEqual(r3.logits);

    const r5 = s.evaluate([...a, 50], { reuse: false });
    expect([r5.firstPosition, r5.evaluated, s.evaluatedTokens]).toEqual([0, 6, 15]);
    expect(r5.logits).toEqual(r3.logits);

    s.reset();
    expect(s.tokens).toEqual([]);
    expect(s.evaluate([7]).evaluated).toBe(1);
  });

  it("returns the logits of every evaluated position, equal to step-by-step evaluation", async () => {
    const m = await load(tinyModel(SMALL));
    const seq = [1, 270, 280, 290, 100, 42, 7, 9, 11, 300 - 1];
    const V = m.hparams.V;
    const batched = m.createSession({ nBatch: 4 }).evaluate(seq, { allLogits: true });
    expect(batched.allLogits!.length).toBe(seq.length * V);
    const step = m.createSession({ nBatch: 1 });
    for (let p = 0; p < seq.length; p++) {
      const r = step.evaluate(seq.slice(0, p + 1));
      expect(r.evaluated).toBe(1);
      expect(batched.allLogits!.subarray(p * V, (p + 1) * V)).toEqual(r.logits);
    }
    expect(batched.logits).toEqual(batched.allLogits!.subarray((seq.length - 1) * V));
    // With reuse, rows start at the first evaluated position.
    const s = m.createSession();
    s.evaluate(seq.slice(0, 6));
    const tail = s.evaluate(seq, { allLogits: true });
    expect(tail.firstPosition).toBe(6);
    expect(tail.allLogits).toEqual(batched.allLogits!.subarray(6 * V));
  });

  it("calls activation hooks in forward order with (T,C) views, and hooks can steer", async () => {
    const m = await load(tinyModel(SMALL));
    const { C, L } = m.hparams;
    const seq = [1, 270, 280];
    const seen: string[] = [];
    const plain = m.createSession().evaluate(seq).logits;
    const observed = m.createSession().evaluate(seq, {
      onActivation: (name, layer, data, info) => {
        seen.push(name);
        expect(name.startsWith(`blk.${layer}.`)).toBe(true);
        expect(data.length).toBe(info.T * C);
        expect(info).toEqual({ pos0: 0, T: 3 });
      },
    }).logits;
    expect(observed).toEqual(plain);
    const points = ["attn_norm", "attn_out", "ffn_inp", "ffn_out", "resid"];
    expect(seen).toEqual(Array.from({ length: L }, (_, l) => points.map((p) => `blk.${l}.${p}`)).flat());

    // Steering: add a vector to the residual stream after layer 0.
    const steered = m.createSession().evaluate(seq, {
      onActivation: (name, _layer, data) => {
        if (name === "blk.0.resid")
          for (let i = 0; i < data.length; i++) data[i] = data[i]! + (i % C < 8 ? 2 : 0);
      },
    }).logits;
    let diff = 0;
    for (let i = 0; i < plain.length; i++) diff = Math.max(diff, Math.abs(plain[i]! - steered[i]!));
    expect(diff).toBeGreaterThan(0.1);
  });

  it("reports resident memory: weights, KV cache, scratch", async () => {
    const m = await load(tinyModel(SMALL));
    const s = m.createSession({ nCtx: 128 });
    const mem = s.memory();
    const { L, nHeadKv, headDim } = m.hparams;
    expect(mem.kvBytes).toBe(2 * L * 128 * nHeadKv * headDim * 4);
    expect(mem.scratchBytes).toBeGreaterThan(0);
    expect(mem.weightsBytes).toBeGreaterThan(300 * 64 * 4);
    expect(mem.totalBytes).toBeGreaterThanOrEqual(mem.weightsBytes + mem.kvBytes + mem.scratchBytes);
    expect(m.memory().kvBytes).toBe(mem.kvBytes);
  });

  it("decodes greedily, stopping at a stop token", async () => {
    const m = await load(tinyModel(SMALL));
    const s = m.createSession();
    const out = generateGreedy(s, [1, 270], 12);
    expect(out).toHaveLength(12);
    const again = generateGreedy(m.createSession(), [1, 270], 12, { stop: [out[3]!] });
    expect(again).toEqual(out.slice(0, again.length));
    expect(again.at(-1)).toBe(out[3]);
    expect(argmax(Float32Array.of(1, 3, 3, 2))).toBe(1);
  });
});
