/**
 * Greedy decoding: argmax over logits and a loop that feeds each chosen token back. The sampler
 * proper (temperature, top-k/p, penalties) lives elsewhere; this is the deterministic baseline the
 * golden and differential tests use. Not here: the forward pass (model.ts).
 */
import type { EvaluateResult, Session } from "./model.ts";

/** Index of the largest logit; the first one on ties (as llama.cpp's greedy sampler). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! > max) {
      max = logits[i]!;
      best = i;
    }
  }
  return best;
}

export interface GreedyOptions {
  /** Stop after generating one of these tokens (it is included in the result). */
  stop?: readonly number[];
  /** Called after each step with the logits that chose `token`. */
  onStep?: (step: number, token: number, result: EvaluateResult) => void;
  signal?: AbortSignal;
}

/** Generate up to `n` tokens after `prompt` by argmax, reusing the session's KV cache. */
export function generateGreedy(
  session: Session,
  prompt: readonly number[],
  n: number,
  options: GreedyOptions = {},
): number[] {
  const seq = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = session.evaluate(seq, options.signal ? { signal: options.signal } : {});
    const token = argmax(r.logits);
    out.push(token);
    seq.push(token);
    options.onStep?.(i, token, r);
    if (options.stop?.includes(token)) break;
  }
  return out;
}
