/**
 * The stages of llama.cpp's sampler chain (src/llama-sampler.cpp), each a function over a
 * Candidates array (llama.cpp's llama_token_data_array `cur_p`): logit bias, penalties,
 * top-n-sigma, top-k, typical-p, top-p, min-p, XTC, temperature (plain and dynamic), and the
 * final draw (dist) or argmax (greedy).
 *
 * Each stage follows its llama.cpp function step by step, including the float32 arithmetic
 * (Math.fround wherever C++ rounds to float: logits, probabilities, running sums) and the
 * double arithmetic of the dist sampler, so that thresholds and draws land where llama.cpp's do.
 * NOTE: expf/logf are fround(Math.exp/log(x)), correctly rounded; glibc's expf differs by one ulp
 * on about 1 in 10^4 inputs, which moves a threshold or a draw only when it falls within ~1e-7
 * (relative) of a boundary.
 *
 * Not here: the chain and its parameters (sampler.ts), the sorts (sampler-sort.ts), the RNG
 * (sampler-rng.ts). DRY and mirostat are not implemented.
 */
import { assert } from "../util/errors.ts";
import type { Mt19937 } from "./sampler-rng.ts";
import { BucketScratch, bucketPartialSort, partialSortDesc, sortDesc } from "./sampler-sort.ts";

const fr = Math.fround;
/** -FLT_MAX, min-p's starting maximum. */
const NEG_FLT_MAX = -3.4028234663852886e38;

/**
 * The candidates of one sampling step. Ids are kept in candidate order in `ids[0..size)`; a
 * token's logit and probability are kept by token id (`logit[id]`, `p[id]`), so moving a
 * candidate moves one integer. `sorted` means ids are in descending logit order (llama.cpp's
 * flag: some stages skip work when set).
 */
export class Candidates {
  readonly nVocab: number;
  /** Token ids in candidate order; the first `size` are live. */
  readonly ids: Int32Array;
  /** Logit of each token id (V). */
  readonly logit: Float32Array;
  /** Probability of each token id (V); set by the stages that compute a softmax. */
  readonly p: Float32Array;
  size = 0;
  sorted = false;
  /** @internal scratch ids (llama.cpp's buf_sort, filtered_tokens, cur_p_new). */
  readonly buf: Int32Array;
  /** @internal scratch keys by id (typical-p's shifted scores, negated). */
  readonly key2: Float32Array;
  /** @internal */
  readonly bucket = new BucketScratch();
  /** @internal top-k's heap of logits (applyTopKInOrder), and its bits. */
  readonly topHeap = new Float32Array(128);
  /** @internal */
  readonly topHeapBits = new Int32Array(this.topHeap.buffer);
  /** @internal the bits of `logit`, as integers. */
  readonly logitBits: Int32Array;
  private readonly iota: Int32Array;

  constructor(nVocab: number) {
    this.nVocab = nVocab;
    this.ids = new Int32Array(nVocab);
    this.logit = new Float32Array(nVocab);
    this.p = new Float32Array(nVocab);
    this.logitBits = new Int32Array(this.logit.buffer);
    this.buf = new Int32Array(nVocab);
    this.key2 = new Float32Array(nVocab);
    this.iota = new Int32Array(nVocab);
    for (let i = 0; i < nVocab; i++) this.iota[i] = i;
  }

  /** Every token with its logit, in id order (llama_sampler_sample's initial cur_p). */
  load(logits: Float32Array): void {
    assert(logits.length === this.nVocab, "logits length differs from the vocabulary");
    this.ids.set(this.iota);
    this.logit.set(logits);
    this.size = this.nVocab;
    this.sorted = false;
  }

  /** The live token ids, in candidate order (a copy). */
  tokens(): number[] {
    return Array.from(this.ids.subarray(0, this.size));
  }
}

/** llama_token_data_array_partial_sort_inplace: keep the `npartial` largest logits, sorted. */
export function partialSortInplace(c: Candidates, npartial: number): void {
  if (npartial <= 128) {
    partialSortDesc(c.ids, c.logit, 0, npartial, c.size);
  } else {
    bucketPartialSort(c.ids, c.size, npartial, c.logit, c.buf, c.bucket);
    c.ids.set(c.buf.subarray(0, npartial));
  }
  c.size = npartial;
  c.sorted = true;
}

/** llama_sampler_softmax_impl: p = softmax(logit) over the candidates, in float32. */
export function softmax(c: Candidates, doSort: boolean): void {
  assert(c.size > 0, "softmax of no candidates");
  if (doSort && !c.sorted) partialSortInplace(c, c.size);
  const { ids, logit, p, size } = c;
  let maxL = logit[ids[0]!]!;
  if (!c.sorted) {
    for (let i = 1; i < size; i++) {
      const l = logit[ids[i]!]!;
      if (maxL < l) maxL = l;
    }
  }
  let cum = 0;
  for (let i = 0; i < size; i++) {
    const id = ids[i]!;
    const e = fr(Math.exp(fr(logit[id]! - maxL)));
    p[id] = e;
    cum = fr(cum + e);
  }
  for (let i = 0; i < size; i++) {
    const id = ids[i]!;
    p[id] = fr(p[id]! / cum);
  }
}

/** llama_sampler_logit_bias_apply: logit[id] += bias (ids still equal positions here). */
export function applyLogitBias(c: Candidates, ids: Int32Array, biases: Float32Array): void {
  const { logit } = c;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    logit[id] = fr(logit[id]! + biases[i]!);
  }
}

/**
 * llama_sampler_penalties_apply over the window tokens[start..end): a token seen `n` times has its
 * logit divided by `repeat` if positive, multiplied if not (once, whatever n), then lowered by
 * n * freq + present. `counts` is zeroed scratch of V ints and is zero again on return.
 */
export function applyPenalties(
  c: Candidates,
  tokens: ArrayLike<number>,
  start: number,
  end: number,
  repeat: number,
  freq: number,
  present: number,
  counts: Int32Array,
): void {
  const { logit } = c;
  const rep = fr(repeat);
  const fq = fr(freq);
  const pr = fr(present);
  for (let i = start; i < end; i++) counts[tokens[i]!]!++;
  for (let i = start; i < end; i++) {
    const id = tokens[i]!;
    const n = counts[id]!;
    if (n === 0) continue;
    counts[id] = 0;
    let l = logit[id]!;
    l = l <= 0 ? fr(l * rep) : fr(l / rep);
    logit[id] = fr(l - fr(fr(n * fq) + pr));
  }
  c.sorted = false;
}

/** llama_sampler_top_n_sigma_apply: mask logits below max - n * std(logits) to -inf. */
export function applyTopNSigma(c: Candidates, n: number): void {
  if (n <= 0 || c.size <= 1) return;
  const { ids, logit, size } = c;
  let max = logit[ids[0]!]!;
  let sum = 0;
  let valid = 0;
  for (let i = 0; i < size; i++) {
    const l = logit[ids[i]!]!;
    if (l !== Number.NEGATIVE_INFINITY) {
      if (max < l) max = l;
      sum = fr(sum + l);
      valid++;
    }
  }
  const mean = valid > 0 ? fr(sum / valid) : 0;
  let acc = 0;
  for (let i = 0; i < size; i++) {
    const l = logit[ids[i]!]!;
    if (l !== Number.NEGATIVE_INFINITY) {
      const d = fr(l - mean);
      // pow(float, 2) is computed in double and added to the float accumulator.
      acc = fr(acc + d * d);
    }
  }
  const std = valid > 0 ? fr(Math.sqrt(fr(acc / valid))) : 0;
  const thr = fr(max - fr(fr(n) * std));
  for (let i = 0; i < size; i++) {
    const id = ids[i]!;
    if (logit[id]! < thr) logit[id] = Number.NEGATIVE_INFINITY;
  }
}

/** llama_sampler_top_k_impl: keep the k largest logits, sorted (k <= 0: no-op). */
export function applyTopK(c: Candidates, k: number): void {
  if (k <= 0) return;
  const kk = Math.min(k, c.size);
  if (!c.sorted) partialSortInplace(c, kk);
  c.size = kk;
}

/**
 * applyTopK on candidates still in id order (ids[i] === i for every i < size, as load() leaves
 * them and logit bias, penalties and top-n-sigma keep them): the same ids in the same order.
 * std::partial_sort's heap select lets a candidate in only when its logit is above the heap's
 * top, which is the k-th largest logit of those before it; a first pass finds those candidates
 * with a heap of logits alone, reading the logits in id order, and moves them (in order) right
 * after the first k, so that partialSortDesc makes the same moves over about k ln(V/k) of them
 * instead of V. A NaN among the first k (the heap is then not ordered by value) takes applyTopK.
 */
export function applyTopKInOrder(c: Candidates, k: number): void {
  if (k <= 0) return;
  const kk = Math.min(k, c.size);
  const size = c.size;
  if (c.sorted || kk > c.topHeap.length || size - kk < 256) {
    applyTopK(c, k);
    return;
  }
  const { ids, logit, topHeap: h } = c;
  for (let i = 0; i < kk; i++) {
    const l = logit[i]!;
    if (Number.isNaN(l)) {
      applyTopK(c, k);
      return;
    }
    // A min-heap of the first k logits: push l up.
    let j = i;
    while (j > 0) {
      const parent = (j - 1) >> 1;
      if (!(h[parent]! > l)) break;
      h[j] = h[parent]!;
      j = parent;
    }
    h[j] = l;
  }
  let top = h[0]!;
  let w = kk;
  let i = kk;
  const bits = c.logitBits;
  for (;;) {
    // Skip, eight at a time, the logits that do not get in (nearly all of them). Above a positive
    // top, the float32 bit patterns as integers order as the floats do (a positive NaN passes
    // this test and fails the float one below), so the skip compares integers.
    const topBits = c.topHeapBits[0]!;
    if (topBits > 0) {
      while (
        i + 8 <= size &&
        !(
          bits[i]! > topBits ||
          bits[i + 1]! > topBits ||
          bits[i + 2]! > topBits ||
          bits[i + 3]! > topBits ||
          bits[i + 4]! > topBits ||
          bits[i + 5]! > topBits ||
          bits[i + 6]! > topBits ||
          bits[i + 7]! > topBits
        )
      ) {
        i += 8;
      }
    } else {
      while (
        i + 8 <= size &&
        !(
          logit[i]! > top ||
          logit[i + 1]! > top ||
          logit[i + 2]! > top ||
          logit[i + 3]! > top ||
          logit[i + 4]! > top ||
          logit[i + 5]! > top ||
          logit[i + 6]! > top ||
          logit[i + 7]! > top
        )
      ) {
        i += 8;
      }
    }
    if (i >= size) break;
    const end = Math.min(i + 8, size);
    for (; i < end; i++) {
      const l = logit[i]!;
      if (!(l > top)) continue;
      ids[w++] = i;
      // Replace the smallest with l and sift it down.
      let j = 0;
      for (;;) {
        let child = 2 * j + 1;
        if (child >= kk) break;
        if (child + 1 < kk && h[child + 1]! < h[child]!) child++;
        if (!(h[child]! < l)) break;
        h[j] = h[child]!;
        j = child;
      }
      h[j] = l;
      top = h[0]!;
    }
  }
  partialSortDesc(ids, logit, 0, kk, w);
  c.size = kk;
  c.sorted = true;
}

/**
 * llama_sampler_typical_apply (locally typical sampling): order candidates by
 * |-log p - H| (H the entropy) and keep the shortest prefix whose probability exceeds p.
 */
export function applyTypicalP(c: Candidates, p: number, minKeep: number): void {
  const pf = fr(p);
  if (pf >= 1) return;
  softmax(c, true);
  const { ids, p: prob, key2, buf, size } = c;
  let entropy = 0;
  for (let i = 0; i < size; i++) {
    const pi = prob[ids[i]!]!;
    entropy = fr(entropy + fr(-pi * fr(Math.log(pi))));
  }
  for (let i = 0; i < size; i++) {
    const id = ids[i]!;
    const shifted = Math.abs(fr(-fr(Math.log(prob[id]!)) - entropy));
    // NOTE: std::sort by shifted ascending == by -shifted descending (exact negation, same ties).
    key2[id] = -shifted;
    buf[i] = id;
  }
  sortDesc(buf, key2, 0, size);
  let cum = 0;
  let last = size;
  for (let i = 0; i < size; i++) {
    cum = fr(cum + prob[buf[i]!]!);
    if (cum > pf && (minKeep === 0 || i >= minKeep - 1)) {
      last = i + 1;
      break;
    }
  }
  ids.set(buf.subarray(0, last));
  c.size = last;
  c.sorted = false;
}

/**
 * llama_sampler_top_p_apply (nucleus): keep the most probable candidates until their float32
 * running sum reaches p (at least minKeep). Sorts only the top 256 first when many are unsorted.
 */
export function applyTopP(c: Candidates, p: number, minKeep: number): void {
  const pf = fr(p);
  if (pf >= 1) return;
  softmax(c, false);
  const size = c.size;
  let k = size;
  let pdata = c.ids;
  if (!c.sorted && size > 1024) {
    k = Math.min(256, size);
    bucketPartialSort(c.ids, size, k, c.logit, c.buf, c.bucket);
    pdata = c.buf;
  } else if (!c.sorted) {
    partialSortInplace(c, k);
  }
  const prob = c.p;
  let cum = 0;
  let last = size;
  for (let i = 0; i < size; i++) {
    cum = fr(cum + prob[pdata[i]!]!);
    if (cum >= pf && i + 1 >= minKeep) {
      last = i + 1;
      break;
    }
    if (!c.sorted && i === k - 1) {
      k = size;
      bucketPartialSort(c.ids, size, k, c.logit, c.buf, c.bucket);
      pdata = c.buf;
    }
  }
  if (!c.sorted) {
    c.ids.set(c.buf.subarray(0, last));
    c.sorted = true;
  }
  c.size = last;
}

/** llama_sampler_min_p_apply: keep candidates with p >= p_min * p_max (as logit >= max + log p). */
export function applyMinP(c: Candidates, p: number, minKeep: number): void {
  const pf = fr(p);
  if (pf <= 0 || c.size === 0) return;
  const { ids, logit, buf } = c;
  const logP = fr(Math.log(pf));
  let applied = false;
  if (!c.sorted) {
    let maxL = NEG_FLT_MAX;
    for (let i = 0; i < c.size; i++) {
      const l = logit[ids[i]!]!;
      if (maxL < l) maxL = l;
    }
    const minL = fr(maxL + logP);
    let n = 0;
    for (let i = 0; i < c.size; i++) {
      const id = ids[i]!;
      if (logit[id]! >= minL) buf[n++] = id;
    }
    if (n > 0 && n >= minKeep) {
      ids.set(buf.subarray(0, n));
      c.size = n;
      applied = true;
    }
  }
  if (!applied) {
    if (!c.sorted) partialSortInplace(c, c.size);
    const minL = fr(logit[ids[0]!]! + logP);
    let i = 1;
    for (; i < c.size; i++) {
      if (logit[ids[i]!]! < minL && i >= minKeep) break;
    }
    c.size = i;
  }
}

/**
 * llama_sample_xtc_apply (exclude top choices): with chance `probability`, drop every candidate
 * whose p >= threshold except the least probable of them. Draws from its own RNG.
 */
export function applyXtc(
  c: Candidates,
  probability: number,
  threshold: number,
  minKeep: number,
  rng: Mt19937,
) {
  const prob = fr(probability);
  const thr = fr(threshold);
  if (prob <= 0 || thr > 0.5 || c.size < 2) return;
  const chance = rng.nextFloat();
  if (chance > prob) return;
  softmax(c, true);
  let posLast = 0;
  for (let i = 0; i < c.size; i++) {
    if (c.p[c.ids[i]!]! >= thr) posLast = i;
    else break;
  }
  if (c.size - posLast >= minKeep && posLast > 0) {
    c.ids.copyWithin(0, posLast, c.size);
    c.size -= posLast;
  }
}

/**
 * llama_sampler_temp_impl: logits / temp; temp <= 0 keeps only the first largest logit (the
 * others become -inf).
 */
export function applyTemperature(c: Candidates, temp: number): void {
  if (c.size === 0) return;
  const { ids, logit, size } = c;
  const t = fr(temp);
  if (t <= 0) {
    let maxI = 0;
    let maxL = logit[ids[0]!]!;
    for (let i = 1; i < size; i++) {
      const l = logit[ids[i]!]!;
      if (l > maxL) {
        logit[ids[maxI]!] = Number.NEGATIVE_INFINITY;
        maxI = i;
        maxL = l;
      } else {
        logit[ids[i]!] = Number.NEGATIVE_INFINITY;
      }
    }
    return;
  }
  for (let i = 0; i < size; i++) {
    const id = ids[i]!;
    logit[id] = fr(logit[id]! / t);
  }
}

/**
 * llama_sampler_temp_ext_apply: with delta > 0, dynamic temperature: the temperature moves in
 * [temp - delta, temp + delta] with the normalized entropy raised to `exponent`; otherwise the
 * plain temperature.
 */
export function applyTempExt(c: Candidates, temp: number, delta: number, exponent: number): void {
  const t = fr(temp);
  const d = fr(delta);
  if (!(d > 0)) {
    applyTemperature(c, t);
    return;
  }
  const minTemp = Math.max(0, fr(t - d));
  const maxTemp = fr(t + d);
  if (c.size <= 1) return;
  const maxEntropy = fr(-fr(Math.log(fr(1 / c.size))));
  softmax(c, true);
  const { ids, logit, p } = c;
  let entropy = 0;
  for (let i = 0; i < c.size; i++) {
    const prob = p[ids[i]!]!;
    if (prob > 0) entropy = fr(entropy - fr(prob * fr(Math.log(prob))));
  }
  const normalized = fr(entropy / maxEntropy);
  const dynTemp = fr(minTemp + fr(fr(maxTemp - minTemp) * fr(normalized ** fr(exponent))));
  applyTemperature(c, dynTemp);
  // Probabilities again, in double this time (as llama.cpp does here).
  const maxL = logit[ids[0]!]!;
  let cum = 0;
  for (let i = 0; i < c.size; i++) {
    const id = ids[i]!;
    const e = Math.exp(logit[id]! - maxL);
    p[id] = e;
    cum += e;
  }
  for (let i = 0; i < c.size; i++) {
    const id = ids[i]!;
    p[id] = p[id]! / cum;
  }
}

/**
 * llama_sampler_dist_apply: draw a candidate in proportion to exp(logit - max). The float32
 * weights are summed in double, one uniform double u is drawn, and the first candidate whose
 * running (double) sum reaches u * total is chosen. Returns its position; sets p.
 */
export function sampleDist(c: Candidates, rng: Mt19937): number {
  assert(c.size > 0, "no candidates to sample from");
  const { ids, logit, p, size } = c;
  if (size === 1) {
    // llama.cpp draws anyway, to keep the RNG aligned with its backend sampling.
    rng.nextDouble();
    p[ids[0]!] = 1;
    return 0;
  }
  let maxL = logit[ids[0]!]!;
  if (!c.sorted) {
    for (let i = 1; i < size; i++) {
      const l = logit[ids[i]!]!;
      if (maxL < l) maxL = l;
    }
  }
  let sumCum = 0;
  for (let i = 0; i < size; i++) {
    const id = ids[i]!;
    const e = fr(Math.exp(fr(logit[id]! - maxL)));
    p[id] = e;
    sumCum += e;
  }
  const target = sumCum * rng.nextDouble();
  let sumRun = 0;
  let selected = -1;
  for (let i = 0; i < size; i++) {
    const id = ids[i]!;
    if (selected < 0) {
      sumRun += p[id]!;
      if (sumRun >= target) selected = i;
    }
    p[id] = fr(p[id]! / sumCum);
  }
  // llama.cpp falls back to the last candidate (reachable only with NaN weights).
  return selected < 0 ? size - 1 : selected;
}

/**
 * The index of the first largest value of `x` by `>` from x[0] (llama_sampler_greedy over the
 * candidates in id order: a NaN never wins, but a NaN at index 0 is kept as nothing exceeds it),
 * the answer of argmaxPosition after load(x). Fast path: a positive maximum that is not NaN is
 * also the largest of the float32 bit patterns read as signed integers (they order positive
 * floats as the floats do and put every negative float, -0 and negative NaN below them), so
 * the scan compares integers, eight running maxima at a time, and the first index holding those
 * exact bits is the answer (a positive float has one bit pattern). Any other maximum (zero,
 * negative, a positive NaN present) takes the plain float scan.
 */
export function argmaxF32(x: Float32Array): number {
  const n = x.length;
  const x0 = x[0]!;
  if (n <= 1 || Number.isNaN(x0)) return 0;
  const b = new Int32Array(x.buffer, x.byteOffset, n);
  let m0 = b[0]!;
  let m1 = m0;
  let m2 = m0;
  let m3 = m0;
  let m4 = m0;
  let m5 = m0;
  let m6 = m0;
  let m7 = m0;
  let i = 1;
  for (; i + 7 < n; i += 8) {
    const v0 = b[i]!;
    const v1 = b[i + 1]!;
    const v2 = b[i + 2]!;
    const v3 = b[i + 3]!;
    const v4 = b[i + 4]!;
    const v5 = b[i + 5]!;
    const v6 = b[i + 6]!;
    const v7 = b[i + 7]!;
    if (v0 > m0) m0 = v0;
    if (v1 > m1) m1 = v1;
    if (v2 > m2) m2 = v2;
    if (v3 > m3) m3 = v3;
    if (v4 > m4) m4 = v4;
    if (v5 > m5) m5 = v5;
    if (v6 > m6) m6 = v6;
    if (v7 > m7) m7 = v7;
  }
  for (; i < n; i++) if (b[i]! > m0) m0 = b[i]!;
  if (m1 > m0) m0 = m1;
  if (m2 > m0) m0 = m2;
  if (m3 > m0) m0 = m3;
  if (m4 > m0) m0 = m4;
  if (m5 > m0) m0 = m5;
  if (m6 > m0) m0 = m6;
  if (m7 > m0) m0 = m7;
  // 0x7f800000 is +Infinity; above it, positive NaNs.
  if (m0 > 0 && m0 <= 0x7f800000) return b.indexOf(m0);
  let best = 0;
  let bestL = x0;
  for (let j = 1; j < n; j++) {
    const l = x[j]!;
    if (l > bestL) {
      best = j;
      bestL = l;
    }
  }
  return best;
}

/** llama_sampler_greedy_apply: the position of the first largest logit. */
export function argmaxPosition(c: Candidates): number {
  const { ids, logit, size } = c;
  let best = 0;
  let bestL = logit[ids[0]!]!;
  for (let i = 1; i < size; i++) {
    const l = logit[ids[i]!]!;
    if (l > bestL) {
      best = i;
      bestL = l;
    }
  }
  return best;
}
