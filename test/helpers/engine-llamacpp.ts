/**
 * Differential runs of the owl engine against llama.cpp (node-llama-cpp 3.21.1) on one GGUF:
 * llama.cpp decodes greedily from a prompt and reports the full next-token distribution at every
 * step; owl evaluates the same token sequence (teacher forcing, so one early disagreement cannot
 * cascade into unrelated sequences) and the two distributions are compared step by step.
 * llama.cpp runs with an F32 KV cache, flash attention off and one thread (more threads spin and
 * crawl on a loaded 2-core machine).
 */
import type { Llama, Token } from "node-llama-cpp";
import { argmax } from "../../src/engine/greedy.ts";
import { loadModel } from "../../src/engine/model.ts";
import { openGguf } from "../../src/formats/gguf/index.ts";

export interface StepComparison {
  /** llama.cpp's greedy token and owl's argmax on the same prefix. */
  llamaToken: number;
  owlToken: number;
  /** llama.cpp's log-probability gap between its token and owl's choice (0 when they agree). */
  llamaGap: number;
  /** max |p_owl - p_llama| over the vocabulary. */
  maxProbDiff: number;
  /** |p_owl - p_llama| of llama.cpp's token. */
  topProbDiff: number;
  /** max - min over the vocabulary of (logit_owl - logprob_llama): logit error up to a shift. */
  logitSpread: number;
}

export interface Comparison {
  tokens: number[];
  steps: StepComparison[];
  /** Wall time of each side, ms. */
  owlMs: number;
  llamaMs: number;
}

function softmax64(logits: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) max = Math.max(max, v);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    p[i] = Math.exp(logits[i]! - max);
    sum += p[i]!;
  }
  for (let i = 0; i < p.length; i++) p[i] = p[i]! / sum;
  return p;
}

/** llama.cpp's greedy continuation of `prompt` (n tokens) with the full distribution of each step. */
export async function llamaCppGreedy(
  llama: Llama,
  path: string,
  prompt: readonly number[],
  n: number,
  nCtx: number,
): Promise<{ tokens: number[]; probs: Float64Array[] }> {
  const model = await llama.loadModel({ modelPath: path });
  const ctx = await model.createContext({
    contextSize: nCtx,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    threads: 1,
  });
  const tokens: number[] = [];
  const probs: Float64Array[] = [];
  try {
    const seq = ctx.getSequence();
    for await (const out of seq.evaluateWithMetadata(
      prompt as Token[],
      { probabilities: true },
      { temperature: 0, yieldEogToken: true },
    )) {
      let size = 0;
      for (const id of out.probabilities.keys()) size = Math.max(size, id + 1);
      const p = new Float64Array(size);
      for (const [id, q] of out.probabilities) p[id] = q;
      tokens.push(out.token);
      probs.push(p);
      if (tokens.length >= n) break;
    }
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
  return { tokens, probs };
}

/** Compare owl and llama.cpp on `path` for `n` greedy steps after `prompt`. */
export async function compareWithLlamaCpp(
  llama: Llama,
  path: string,
  prompt: readonly number[],
  n: number,
  nCtx = 256,
): Promise<Comparison> {
  let t0 = performance.now();
  const ref = await llamaCppGreedy(llama, path, prompt, n, nCtx);
  const llamaMs = performance.now() - t0;

  t0 = performance.now();
  const file = openGguf(path);
  const model = await loadModel(file);
  file.close();
  const V = model.hparams.V;
  // Teacher forcing: the prompt and llama.cpp's tokens (all but the last), one batched call.
  const seq = [...prompt, ...ref.tokens.slice(0, -1)];
  const all = model.createSession({ nCtx }).evaluate(seq, { allLogits: true }).allLogits!;
  await model.dispose();
  const owlMs = performance.now() - t0;

  const steps: StepComparison[] = [];
  for (let i = 0; i < ref.tokens.length; i++) {
    const logits = all.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V);
    const p = softmax64(logits);
    const q = ref.probs[i]!;
    const llamaToken = ref.tokens[i]!;
    const owlToken = argmax(logits);
    let maxProbDiff = 0;
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let v = 0; v < V; v++) {
      maxProbDiff = Math.max(maxProbDiff, Math.abs(p[v]! - (q[v] ?? 0)));
      if ((q[v] ?? 0) > 0) {
        const d = logits[v]! - Math.log(q[v]!);
        lo = Math.min(lo, d);
        hi = Math.max(hi, d);
      }
    }
    steps.push({
      llamaToken,
      owlToken,
      llamaGap: owlToken === llamaToken ? 0 : Math.log(q[llamaToken]!) - Math.log(q[owlToken] ?? 0),
      maxProbDiff,
      topProbDiff: Math.abs(p[llamaToken]! - q[llamaToken]!),
      logitSpread: hi - lo,
    });
  }
  return { tokens: ref.tokens, steps, owlMs, llamaMs };
}

/** One line of figures for a comparison (for failure messages and the record). */
export function summarize(c: Comparison): string {
  const max = (f: (s: StepComparison) => number) => Math.max(...c.steps.map(f));
  const disagree = c.steps.filter((s) => s.owlToken !== s.llamaToken).length;
  const clean = c.steps.filter((s) => s.logitSpread < 1e-4).length;
  return (
    `steps ${c.steps.length}, token disagreements ${disagree}, max |dp| ${max((s) => s.maxProbDiff).toExponential(2)}, ` +
    `max |dp(top)| ${max((s) => s.topProbDiff).toExponential(2)}, max logit spread ${max((s) => s.logitSpread).toExponential(2)}, ` +
    `steps with spread < 1e-4: ${clean}, owl ${c.owlMs.toFixed(0)} ms, llama.cpp ${c.llamaMs.toFixed(0)} ms`
  );
}
