/**
 * Differential test of the owl engine (RefBackend) against llama.cpp, per architecture variant:
 * llama with separate output + GQA 4:1 + llama3 rope_freqs, llama with linear RoPE scaling,
 * llama-MoE (4 experts, top 2), qwen2 (q/k/v biases, NEOX RoPE), qwen3 (q/k norms, NEOX RoPE,
 * nHead*headDim != C). Each in F32 (tight: float rounding only), Q4_K and one legacy block type
 * (the tolerances and their reason are in engine-llamacpp-types.test.ts, which runs every type
 * on tied llama).
 * In F32 the owl side also decodes on its own (KV cache reuse, one token per step) and must
 * produce llama.cpp's 64 greedy tokens exactly, and both are checked against a float64 forward
 * written independently in the test helper.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateGreedy } from "../src/engine/greedy.ts";
import { loadModel } from "../src/engine/model.ts";
import { openGguf, writeGguf } from "../src/formats/gguf/index.ts";
import type { GgmlTypeName } from "../src/util/ggml-types.ts";
import { compareWithLlamaCpp, llamaCppGreedy, summarize } from "./helpers/engine-llamacpp.ts";
import { naiveLogits, type TinySpec, tinyModel } from "./helpers/engine-tiny-model.ts";

const PROMPT = [1, 270, 280, 290, 100, 42];
const STEPS = 64;

/** Each variant runs F32, Q4_K and one legacy block type (a different one per variant). */
const VARIANTS: Record<string, { spec: Omit<TinySpec, "type">; legacy: GgmlTypeName }> = {
  "llama separate output, GQA 4:1, llama3 rope_freqs": {
    spec: { arch: "llama", seed: 2, nHeadKv: 2, ropeFreqs: true, freqBase: 500000 },
    legacy: "Q8_0",
  },
  "llama linear rope scaling x4": {
    spec: { arch: "llama", seed: 3, tied: true, ropeScale: 4 },
    legacy: "Q4_0",
  },
  "llama MoE 4 experts top-2": {
    spec: { arch: "llama", seed: 4, nExpert: 4, nExpertUsed: 2 },
    legacy: "Q8_0",
  },
  "qwen2 (biases)": { spec: { arch: "qwen2", seed: 5, freqBase: 1000000 }, legacy: "Q5_1" },
  "qwen3 (q/k norms, headDim 64)": {
    spec: { arch: "qwen3", seed: 6, headDim: 64, freqBase: 1000000 },
    legacy: "Q5_0",
  },
};

const QUANTIZED = { prob: 5e-2, gap: 0.2 };
/** MoE: a flip can also change which experts a token uses. */
const MOE_QUANTIZED = { prob: 1e-1, gap: 0.2 };

const cases = Object.entries(VARIANTS).flatMap(([name, { spec, legacy }]) =>
  (["F32", "Q4_K", legacy] as GgmlTypeName[]).map((type) => ({ name, v: spec, type })),
);

describe("owl engine vs llama.cpp: architecture variants", () => {
  let llama: Llama;
  let dir: string;

  beforeAll(async () => {
    llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    dir = mkdtempSync(join(tmpdir(), "owl-engine-archs-"));
  });

  afterAll(async () => {
    await llama?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(cases)("$name, $type", async ({ name, v, type }) => {
    const spec = { ...v, nFf: 256, type } as TinySpec;
    const path = join(dir, `${v.arch}-${v.seed}-${type}.gguf`);
    await writeGguf(path, tinyModel(spec));
    const c = await compareWithLlamaCpp(llama, path, PROMPT, STEPS);
    const tol = type === "F32" ? { prob: 1e-5, gap: 0 } : (v.nExpert ?? 0) > 0 ? MOE_QUANTIZED : QUANTIZED;
    const what = `${name} ${type}: ${summarize(c)}`;
    expect(c.steps.length, what).toBe(STEPS);
    for (const [i, s] of c.steps.entries()) {
      expect(s.maxProbDiff, `${what}; step ${i}`).toBeLessThanOrEqual(tol.prob);
      if (s.owlToken !== s.llamaToken) expect(s.llamaGap, `${what}; step ${i}`).toBeLessThanOrEqual(tol.gap);
    }
    if (type !== "F32") return;

    for (const s of c.steps) expect(s.logitSpread, what).toBeLessThan(1e-4);
    // Free-running greedy decoding with KV reuse gives llama.cpp's tokens exactly.
    const model = await loadModel(path);
    const session = model.createSession({ nCtx: 256 });
    const ours = generateGreedy(session, PROMPT, STEPS);
    expect(ours, name).toEqual(c.tokens);
    expect(session.evaluatedTokens).toBe(PROMPT.length + STEPS - 1);
    await model.dispose();

    // Both agree with an exact float64 forward over the first positions.
    const file = openGguf(path);
    const seq = [...PROMPT, ...c.tokens.slice(0, 4)];
    const exact = naiveLogits(file, spec, seq);
    file.close();
    const m2 = await loadModel(path);
    const all = m2.createSession().evaluate(seq, { allLogits: true }).allLogits!;
    const V = m2.hparams.V;
    let maxDiff = 0;
    for (let p = 0; p < seq.length; p++) {
      for (let t = 0; t < V; t++) maxDiff = Math.max(maxDiff, Math.abs(all[p * V + t]! - exact[p]![t]!));
    }
    expect(maxDiff, `${name}: owl vs float64 logits`).toBeLessThan(1e-4);
    await m2.dispose();
  });

  it("llama.cpp's greedy tokens do not depend on the batch split (sanity of the reference)", async () => {
    const spec = { ...VARIANTS["qwen2 (biases)"]!.spec, nFf: 256, type: "F32" } as TinySpec;
    const path = join(dir, "qwen2-sanity.gguf");
    await writeGguf(path, tinyModel(spec));
    const a = await llamaCppGreedy(llama, path, PROMPT, 16, 256);
    const b = await llamaCppGreedy(llama, path, [...PROMPT, ...a.tokens.slice(0, 8)], 8, 256);
    expect(b.tokens).toEqual(a.tokens.slice(8, 16));
  });
});
