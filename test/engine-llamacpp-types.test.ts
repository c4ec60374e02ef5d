/**
 * Differential test of the owl engine (RefBackend) against llama.cpp, every weight type: a tiny
 * random llama model (C 256, 2 layers, 8 query / 4 KV heads, tied output) stored as each type,
 * 64 greedy steps of llama.cpp, owl evaluating the same tokens (teacher forcing), distributions
 * compared step by step. See engine-llamacpp-archs.test.ts for the architectures.
 *
 * Tolerances: see TOLERANCES, measured with node-llama-cpp's AVX2 ("haswell") CPU build. F32
 * agrees to float rounding. Every other type rounds each activation row (to F16, BF16, Q8_0, Q8_1 or Q8_K)
 * before the dot products; ggml's SIMD kernels sum in a different order than ours, so a value
 * sitting within a few ulps of a rounding boundary can round the other way (a "flip"), which
 * moves the logits by up to ~0.3 and, through the KV cache, later steps too. Flips are rare for
 * the Q8 activations (most steps agree to 1e-5) and constant for F16/BF16 (ulp 2^-11 / 2^-8).
 * Either side is a correct rounding of the same computation; they disagree on a token only
 * where llama.cpp's own top-2 margin is within that noise.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeGguf } from "../src/formats/gguf/index.ts";
import type { GgmlTypeName } from "../src/util/ggml-types.ts";
import { compareWithLlamaCpp, summarize } from "./helpers/engine-llamacpp.ts";
import { type TinySpec, tinyModel } from "./helpers/engine-tiny-model.ts";

const PROMPT = [1, 270, 280, 290, 100, 42];
const STEPS = 64;

/**
 * Max |p_owl - p_llama| over the vocabulary and all 64 steps, and the largest llama.cpp top-2
 * log-probability gap at which the greedy tokens may differ. The comments give the maxima
 * measured over all 6 architecture variants x 13 types (78 models, this file's and
 * engine-llamacpp-archs.test.ts's): 4 token disagreements in 4992 steps, all at llama.cpp gaps
 * <= 0.065.
 */
const TOLERANCES: Record<string, { prob: number; gap: number }> = {
  F32: { prob: 1e-5, gap: 0 }, // 2.5e-6, no disagreement
  F16: { prob: 2e-3, gap: 0.05 }, // 5.8e-4, no disagreement
  BF16: { prob: 1e-2, gap: 0.1 }, // 4.8e-3, no disagreement
  quantized: { prob: 5e-2, gap: 0.2 }, // 3.0e-2 (qwen2 Q6_K); Q4_0/Q5_0/K-quants often < 3e-6
};

const TYPES: GgmlTypeName[] = [
  "F32",
  "F16",
  "BF16",
  "Q8_0",
  "Q4_0",
  "Q4_1",
  "Q5_0",
  "Q5_1",
  "Q4_K",
  "Q5_K",
  "Q6_K",
  "Q2_K",
  "Q3_K",
];

describe("owl engine vs llama.cpp: tiny llama (tied output, GQA) in every weight type", () => {
  let llama: Llama;
  let dir: string;

  beforeAll(async () => {
    llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    dir = mkdtempSync(join(tmpdir(), "owl-engine-types-"));
  });

  afterAll(async () => {
    await llama?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(TYPES)("%s: same greedy tokens, probabilities within tolerance", async (type) => {
    const spec: TinySpec = { arch: "llama", seed: 1, tied: true, nFf: 256, type };
    const path = join(dir, `llama-${type}.gguf`);
    await writeGguf(path, tinyModel(spec));
    const c = await compareWithLlamaCpp(llama, path, PROMPT, STEPS);
    const tol = TOLERANCES[type] ?? TOLERANCES.quantized!;
    const what = `${type}: ${summarize(c)}`;
    expect(c.steps.length, what).toBe(STEPS);
    for (const [i, s] of c.steps.entries()) {
      expect(s.maxProbDiff, `${what}; step ${i}`).toBeLessThanOrEqual(tol.prob);
      if (s.owlToken !== s.llamaToken) {
        expect(
          s.llamaGap,
          `${what}; step ${i}: owl chose ${s.owlToken}, llama.cpp ${s.llamaToken}`,
        ).toBeLessThanOrEqual(tol.gap);
      }
    }
    if (type === "F32") {
      for (const s of c.steps) expect(s.logitSpread, what).toBeLessThan(1e-4);
    }
  });
});
