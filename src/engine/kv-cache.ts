/**
 * The KV cache of one sequence: float32 keys and values for every layer and position, plus the
 * tokens they were computed from (so a new request sharing a prefix reuses them).
 *
 * Layout in backend memory: per layer l, k[l] and v[l] are (nCtx, nHeadKv, headDim) float32, the
 * shape KernelBackend.attention reads; position p of layer l starts at float p * nHeadKv * headDim.
 * llama.cpp keeps the same numbers (an F32 cache, as the differential tests configure it).
 * Not here: attention itself (the backend), prefix matching policy (model.ts).
 */
import type { Buf, KernelBackend } from "./backend.ts";

export class KvCache {
  /** Keys per layer, each (nCtx, nHeadKv, headDim). */
  readonly k: Buf[] = [];
  /** Values per layer, each (nCtx, nHeadKv, headDim). */
  readonly v: Buf[] = [];
  /** Tokens at positions 0..length-1 whose keys and values are in the cache. */
  private cached: number[] = [];
  readonly bytes: number;

  constructor(
    backend: KernelBackend,
    readonly L: number,
    readonly nCtx: number,
    /** nHeadKv * headDim: floats per position and layer. */
    readonly kvDim: number,
  ) {
    const perLayer = nCtx * kvDim * 4;
    for (let l = 0; l < L; l++) {
      this.k.push(backend.alloc(perLayer));
      this.v.push(backend.alloc(perLayer));
    }
    this.bytes = 2 * L * perLayer;
  }

  /** Positions filled. */
  get length(): number {
    return this.cached.length;
  }

  /** The tokens whose keys and values are cached, in order. */
  tokens(): readonly number[] {
    return this.cached;
  }

  /** Forget positions n.. (their slots are overwritten by later tokens). */
  truncate(n: number): void {
    if (n < this.cached.length) this.cached.length = n;
  }

  /** Record that `tokens` now occupy the next positions. */
  append(tokens: readonly number[]): void {
    for (const t of tokens) this.cached.push(t);
  }

  /** Length of the common prefix of the cached tokens and `tokens`. */
  commonPrefix(tokens: readonly number[]): number {
    const n = Math.min(tokens.length, this.cached.length);
    let i = 0;
    while (i < n && tokens[i] === this.cached[i]) i++;
    return i;
  }
}
