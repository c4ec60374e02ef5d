/**
 * The sampler's parts, each against a hand-computed case or a published value: std::mt19937 and
 * libstdc++'s uniform draws, libstdc++'s sort orders (ties included), every llama.cpp stage (logit
 * bias, penalties, top-n-sigma, top-k, typical-p, top-p, min-p, XTC, temperature, dist, greedy),
 * the Sampler (chain, seeds, history, reset, parameter checks, speed on a 152k vocabulary),
 * StopMatcher and the generate() loop on a scripted model. The comparisons with llama.cpp itself
 * are in engine-sampler-llamacpp.test.ts.
 */
import { describe, expect, it } from "vitest";
import { type GenerateResult, type GenerateStep, generate } from "../src/engine/generate.ts";
import {
  DEFAULT_SAMPLER_PARAMS,
  resolveSamplerParams,
  Sampler,
  type SamplerParams,
} from "../src/engine/sampler.ts";
import { Mt19937 } from "../src/engine/sampler-rng.ts";
import { BucketScratch, bucketPartialSort, partialSortDesc, sortDesc } from "../src/engine/sampler-sort.ts";
import {
  applyLogitBias,
  applyMinP,
  applyPenalties,
  applyTempExt,
  applyTemperature,
  applyTopK,
  applyTopNSigma,
  applyTopP,
  applyTypicalP,
  applyXtc,
  argmaxPosition,
  Candidates,
  sampleDist,
  softmax,
} from "../src/engine/sampler-stages.ts";
import { StopMatcher } from "../src/engine/sampler-stop.ts";
import { isOwlError } from "../src/util/errors.ts";

function cands(logits: number[]): Candidates {
  const c = new Candidates(logits.length);
  c.load(Float32Array.from(logits));
  return c;
}

/** Logits whose softmax is exactly proportional to `weights` (up to float rounding). */
function logitsOf(weights: number[]): number[] {
  return weights.map((w) => Math.log(w));
}

function fnv(ids: ArrayLike<number>): number {
  let h = 2166136261;
  for (let i = 0; i < ids.length; i++) {
    h ^= ids[i]!;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h >>> 0;
}

describe("std::mt19937 and libstdc++'s uniform distributions", () => {
  it("the 10000th output of a default-constructed mt19937 is 4123659995 (C++ standard)", () => {
    const g = new Mt19937();
    g.discard(9999);
    expect(g.next()).toBe(4123659995);
  });

  it("uniform_real_distribution<double> and <float> draw what g++ 12 / libstdc++ draws", () => {
    // From std::mt19937(42) with std::uniform_real_distribution<double>(0.0f, 1.0f), printed %.17g.
    const d = new Mt19937(42);
    expect([1, 2, 3, 4, 5].map(() => d.nextDouble())).toEqual([
      0.796542984287846, 0.18343478789336848, 0.77969099761266125, 0.59685016158005655, 0.44583275754843343,
    ]);
    // uniform_real_distribution<float>: one output each.
    const f = new Mt19937(42);
    expect([1, 2, 3, 4, 5].map(() => f.nextFloat().toPrecision(9))).toEqual([
      "0.374540120",
      "0.796543002",
      "0.950714290",
      "0.183434784",
      "0.731993914",
    ]);
  });

  it("reseeding restarts the sequence; clone copies the state", () => {
    const g = new Mt19937(7);
    const first = [g.next(), g.next(), g.next()];
    g.seed(7);
    expect([g.next(), g.next(), g.next()]).toEqual(first);
    const c = g.clone();
    expect([c.next(), c.next()]).toEqual([g.next(), g.next()]);
  });
});

describe("libstdc++'s std::sort and std::partial_sort, ties included", () => {
  // Keys (int(g() % nvals) - nvals/2) * 0.25f from std::mt19937(seed); expected orders from g++ 12.
  const keysOf = (seed: number, n: number, nvals: number) => {
    const g = new Mt19937(seed);
    return Float32Array.from({ length: n }, () => ((g.next() % nvals) - Math.trunc(nvals / 2)) * 0.25);
  };
  const iota = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

  it("orders 40 ids with 4 distinct keys as std::sort and std::partial_sort(k = 5) do", () => {
    const key = keysOf(5, 40, 4);
    const a = iota(40);
    sortDesc(a, key, 0, 40);
    expect([...a]).toEqual([
      26, 2, 0, 23, 28, 21, 18, 10, 16, 12, 34, 29, 31, 33, 14, 11, 37, 5, 4, 1, 39, 32, 35, 36, 38, 27, 25,
      20, 19, 7, 3, 24, 22, 30, 17, 15, 13, 9, 8, 6,
    ]);
    const b = iota(40);
    partialSortDesc(b, key, 0, 5, 40);
    expect([...b]).toEqual([
      10, 0, 12, 16, 2, 3, 6, 7, 8, 9, 4, 11, 1, 13, 14, 15, 5, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
      28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
    ]);
  });

  it.each([
    [6, 300, 10, 3779263275, 37, 1898056103],
    [7, 5000, 64, 1172659651, 625, 2443107721],
  ])("seed %i, %i ids, %i keys: the same permutations (FNV-1a of the ids)", (seed, n, nvals, hs, k, hp) => {
    const key = keysOf(seed, n, nvals);
    const a = iota(n);
    sortDesc(a, key, 0, n);
    expect(fnv(a)).toBe(hs);
    for (let i = 1; i < n; i++) expect(key[a[i - 1]!]!).toBeGreaterThanOrEqual(key[a[i]!]!);
    const b = iota(n);
    partialSortDesc(b, key, 0, k, n);
    expect(fnv(b)).toBe(hp);
  });

  it("bucketPartialSort returns the top buckets with the first npartial sorted", () => {
    const g = new Mt19937(3);
    const n = 3000;
    const key = Float32Array.from({ length: n }, () => (g.next() / 2 ** 32) * 30 - 15);
    const src = iota(n);
    const res = new Int32Array(n);
    const got = bucketPartialSort(src, n, 100, key, res, new BucketScratch());
    expect(got).toBeGreaterThanOrEqual(100);
    const top = [...src].sort((x, y) => key[y]! - key[x]!).slice(0, 100);
    expect([...res.subarray(0, 100)]).toEqual(top);
    // Logits >= 10 all share the last bucket; everything else is below it.
    for (let i = 100; i < got; i++) expect(key[res[i]!]!).toBeLessThanOrEqual(key[res[99]!]!);
  });
});

describe("llama.cpp's sampler stages, hand-computed", () => {
  it("softmax in float32 (sorting on request)", () => {
    const c = cands(logitsOf([1, 2, 4, 1]));
    softmax(c, false);
    expect(c.tokens()).toEqual([0, 1, 2, 3]);
    expect([...c.p].map((p) => +p.toFixed(6))).toEqual([0.125, 0.25, 0.5, 0.125]);
    softmax(c, true);
    expect(c.tokens().slice(0, 2)).toEqual([2, 1]);
    expect(c.sorted).toBe(true);
  });

  it("logit bias adds to the logits, -Infinity bans", () => {
    const c = cands([1, 2, 3]);
    applyLogitBias(c, Int32Array.from([0, 2]), Float32Array.from([1.5, Number.NEGATIVE_INFINITY]));
    expect([...c.logit]).toEqual([2.5, 2, Number.NEGATIVE_INFINITY]);
  });

  it("penalties: repeat divides positive logits and multiplies others; frequency and presence subtract", () => {
    const c = cands([2, -1, 0.5, 3]);
    const counts = new Int32Array(4);
    // counts in the window: token 0 twice, 1 and 2 once, 3 never.
    applyPenalties(c, [0, 1, 0, 2], 0, 4, 2, 0.5, 1, counts);
    // 0: 2/2 - (2*0.5 + 1) = -1; 1: -1*2 - (0.5 + 1) = -3.5; 2: 0.5/2 - 1.5 = -1.25; 3: untouched
    expect([...c.logit]).toEqual([-1, -3.5, -1.25, 3]);
    expect([...counts]).toEqual([0, 0, 0, 0]);
    // Only the window [2, 4) counts: token 0 once, token 2 once.
    const w = cands([2, -1, 0.5, 3]);
    applyPenalties(w, [0, 1, 0, 2], 2, 4, 2, 0.5, 1, counts);
    expect([...w.logit]).toEqual([-0.5, -1, -1.25, 3]);
  });

  it("top-k keeps the k largest, sorted; k <= 0 is off; k >= size sorts everything", () => {
    const c = cands([1, 5, 3, 4, 2]);
    applyTopK(c, 3);
    expect(c.tokens()).toEqual([1, 3, 2]);
    expect(c.sorted).toBe(true);
    const off = cands([1, 5, 3]);
    applyTopK(off, 0);
    expect(off.tokens()).toEqual([0, 1, 2]);
    const all = cands([1, 5, 3]);
    applyTopK(all, 10);
    expect(all.tokens()).toEqual([1, 2, 0]);
  });

  it("top-p keeps the smallest prefix whose float32 sum reaches p, at least min_keep", () => {
    // p = 0.5, 0.25, 0.125, 0.125 for tokens 2, 1, 0, 3
    const run = (p: number, minKeep = 0) => {
      const c = cands(logitsOf([1, 2, 4, 1]));
      applyTopP(c, p, minKeep);
      return c.tokens();
    };
    expect(run(0.4)).toEqual([2]);
    expect(run(0.7)).toEqual([2, 1]);
    expect(run(0.8)).toEqual([2, 1, 0]);
    expect(run(0.4, 3)).toEqual([2, 1, 0]);
    expect(run(1)).toEqual([0, 1, 2, 3]); // off: untouched, unsorted
  });

  it("min-p keeps logits >= max + log(p), in candidate order when unsorted", () => {
    const run = (p: number, minKeep = 0, sortFirst = false) => {
      const c = cands([0, -1, -2, -3, -0.5]);
      if (sortFirst) applyTopK(c, 5);
      applyMinP(c, p, minKeep);
      return c.tokens();
    };
    expect(run(0.3)).toEqual([0, 1, 4]); // log 0.3 = -1.20
    expect(run(0.5)).toEqual([0, 4]); // log 0.5 = -0.69
    expect(run(0.5, 0, true)).toEqual([0, 4]);
    expect(run(0.5, 3)).toEqual([0, 4, 1]); // too few: the sorted path keeps min_keep
    expect(run(0)).toEqual([0, 1, 2, 3, 4]);
  });

  it("typical-p orders by |-log p - H| and can drop the most likely token", () => {
    // p = 0.5, 0.25, 0.125, 0.125; H = 1.75 ln 2 = 1.213; |-log p - H| = 0.520, 0.173, 0.866, 0.866
    const run = (p: number) => {
      const c = cands(logitsOf([4, 2, 1, 1]));
      applyTypicalP(c, p, 0);
      return c.tokens();
    };
    expect(run(0.2)).toEqual([1]);
    expect(run(0.5)).toEqual([1, 0]);
    expect(run(0.9).slice(0, 2)).toEqual([1, 0]);
    expect(run(0.9)).toHaveLength(4);
    expect(run(1)).toEqual([0, 1, 2, 3]);
  });

  it("top-n-sigma masks logits below max - n * std", () => {
    // logits 0, 1, 2, 3, 10: mean 3.2, std = sqrt(((3.2^2 + 2.2^2 + 1.2^2 + 0.2^2 + 6.8^2) / 5)) = 3.544
    const c = cands([0, 1, 2, 3, 10]);
    applyTopNSigma(c, 2); // 10 - 7.09 = 2.91: keeps 3 and 10
    expect([...c.logit]).toEqual([
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      3,
      10,
    ]);
    const off = cands([0, 1, 2]);
    applyTopNSigma(off, -1);
    expect([...off.logit]).toEqual([0, 1, 2]);
  });

  it("XTC drops every choice above the threshold but the least likely, when its draw allows", () => {
    // p = 0.4, 0.3, 0.2, 0.1: threshold 0.15 removes the first two (0.2 stays as the last above).
    const c = cands(logitsOf([4, 3, 2, 1]));
    applyXtc(c, 1, 0.15, 0, new Mt19937(1));
    expect(c.tokens()).toEqual([2, 3]);
    // threshold > 0.5 disables; probability 0 too; neither draws.
    const rng = new Mt19937(1);
    const off = cands(logitsOf([4, 3, 2, 1]));
    applyXtc(off, 1, 0.6, 0, rng);
    applyXtc(off, 0, 0.1, 0, rng);
    expect(off.tokens()).toEqual([0, 1, 2, 3]);
    expect(rng.next()).toBe(new Mt19937(1).next());
    // The draw (0.417 for seed 1) above the probability: nothing happens.
    const skip = cands(logitsOf([4, 3, 2, 1]));
    applyXtc(skip, 0.4, 0.15, 0, new Mt19937(1));
    expect(skip.tokens()).toEqual([0, 1, 2, 3]);
  });

  it("temperature divides logits; <= 0 keeps only the first maximum", () => {
    const c = cands([1, 2, -3]);
    applyTemperature(c, 0.5);
    expect([...c.logit]).toEqual([2, 4, -6]);
    const g = cands([1, 3, 3, 2]);
    applyTemperature(g, 0);
    expect([...g.logit]).toEqual([
      Number.NEGATIVE_INFINITY,
      3,
      Number.NEGATIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
    ]);
  });

  it("dynamic temperature moves between temp - delta and temp + delta with the entropy", () => {
    // Uniform logits: normalized entropy 1, so the temperature is temp + delta = 1.5.
    const u = cands([1, 1, 1, 1]);
    applyTempExt(u, 1, 0.5, 1);
    expect([...u.logit].map((x) => +x.toFixed(6))).toEqual([0.666667, 0.666667, 0.666667, 0.666667]);
    expect([...u.p]).toEqual([0.25, 0.25, 0.25, 0.25]);
    // delta 0 is the plain temperature.
    const plain = cands([1, 2]);
    applyTempExt(plain, 0.5, 0, 1);
    expect([...plain.logit]).toEqual([2, 4]);
  });

  it("dist draws in proportion to the probabilities, reproducibly", () => {
    const counts = [0, 0, 0, 0];
    const rng = new Mt19937(123);
    const c = new Candidates(4);
    const logits = Float32Array.from(logitsOf([4, 2, 1, 1]));
    const n = 40000;
    for (let i = 0; i < n; i++) {
      c.load(logits);
      counts[c.ids[sampleDist(c, rng)]!]!++;
    }
    const expected = [0.5, 0.25, 0.125, 0.125];
    counts.forEach((k, i) => {
      expect(Math.abs(k / n - expected[i]!)).toBeLessThan(0.01);
    });
    // One candidate: still one draw (two 32-bit outputs), as llama.cpp keeps its RNG aligned.
    const one = cands([5]);
    const r = new Mt19937(9);
    expect(sampleDist(one, r)).toBe(0);
    const ref = new Mt19937(9);
    ref.discard(2);
    expect(r.next()).toBe(ref.next());
  });

  it("greedy picks the first of equal maxima", () => {
    expect(argmaxPosition(cands([1, 7, 3, 7]))).toBe(1);
  });
});

describe("Sampler", () => {
  const V = 1000;
  const logitsFor = (seed: number) => {
    const g = new Mt19937(seed);
    return Float32Array.from({ length: V }, () => (g.next() / 2 ** 32) * 8 - 4);
  };

  it("resolves llama.cpp's defaults and Ollama's names", () => {
    expect(resolveSamplerParams({})).toMatchObject({
      temperature: 0.8,
      topK: 40,
      topP: 0.95,
      minP: 0.05,
      typicalP: 1,
      repeatPenalty: 1,
      repeatLastN: 64,
      seed: undefined,
      maxTokens: -1,
    });
    const r = resolveSamplerParams({
      top_k: 10,
      top_p: 0.5,
      min_p: 0.1,
      typical_p: 0.9,
      repeat_penalty: 1.1,
      repeat_last_n: 32,
      presence_penalty: 0.5,
      frequency_penalty: 0.25,
      num_predict: 128,
      seed: 42,
      stop: "\n",
      logit_bias: { "15": -100, 3: 2 },
    });
    expect(r).toMatchObject({
      topK: 10,
      topP: 0.5,
      minP: 0.1,
      typicalP: 0.9,
      repeatPenalty: 1.1,
      repeatLastN: 32,
      presencePenalty: 0.5,
      frequencyPenalty: 0.25,
      maxTokens: 128,
      seed: 42,
      stop: ["\n"],
      logitBias: [
        [3, 2],
        [15, -100],
      ],
    });
    expect(resolveSamplerParams({ seed: -1 }).seed).toBeUndefined();
    expect(resolveSamplerParams({ seed: 4294967295 }).seed).toBeUndefined();
    expect(resolveSamplerParams({ topK: 5, top_k: 5 }).topK).toBe(5);
    expect(Object.isFrozen(DEFAULT_SAMPLER_PARAMS)).toBe(true);
  });

  it.each<[SamplerParams, string]>([
    [{ temperature: -0.5 }, "temperature must be a finite number >= 0 (0 = greedy), found -0.5"],
    [{ temperature: Number.POSITIVE_INFINITY }, "temperature must be a finite number >= 0"],
    [{ top_k: -1 }, "top_k must be an integer >= 0 (0 = off), found -1"],
    [{ topK: 2.5 }, "topK must be an integer >= 0"],
    [{ top_p: 1.5 }, "top_p must be a number in [0, 1] (1 = off), found 1.5"],
    [{ minP: -0.1 }, "minP must be a number in [0, 1]"],
    [{ typical_p: Number.NaN }, "typical_p must be a number in [0, 1]"],
    [{ repeat_penalty: 0 }, "repeat_penalty must be a finite number > 0 (1 = off), found 0"],
    [{ repeatPenalty: 1e-50 }, "repeatPenalty must be a finite number > 0"],
    [{ repeat_last_n: -2 }, "repeat_last_n must be an integer >= -1 (0 = off, -1 = all), found -2"],
    [{ presence_penalty: Number.NEGATIVE_INFINITY }, "presence_penalty must be a finite number"],
    [{ frequencyPenalty: Number.NaN }, "frequencyPenalty must be a finite number"],
    [{ seed: 2 ** 32 }, "seed must be an integer in [0, 4294967295] (-1 = random), found 4294967296"],
    [{ seed: 1.5 }, "seed must be an integer"],
    [{ num_predict: -3 }, "num_predict must be an integer >= -1 (-1 = no limit), found -3"],
    [{ minKeep: -1 }, "minKeep must be an integer >= 0"],
    [{ xtc_probability: 2 }, "xtc_probability must be a number in [0, 1]"],
    [{ dynatempRange: -1 }, "dynatempRange must be a finite number >= 0"],
    [{ dynatemp_exponent: 0 }, "dynatemp_exponent must be a finite number > 0"],
    [{ topK: 5, top_k: 6 }, "topK and top_k name the same parameter but differ: 5 and 6"],
    [{ stop: ["ok", ""] }, 'stop[1] must be a non-empty string, found ""'],
    [{ stop: 5 as unknown as string }, "stop must be a string or an array of strings, found 5"],
    [{ logit_bias: { "-3": 1 } }, 'logit_bias token id must be an integer token id >= 0, found "-3"'],
    [{ logitBias: [[2, Number.NaN]] }, "logitBias[2] must be a finite number or -Infinity (ban), found NaN"],
    [
      { logitBias: new Map([[2, Number.POSITIVE_INFINITY]]) },
      "logitBias[2] must be a finite number or -Infinity",
    ],
  ])("rejects %j: %s", (params, message) => {
    let error: unknown;
    try {
      new Sampler(params);
    } catch (e) {
      error = e;
    }
    expect(isOwlError(error, "ERR_INVALID_ARGUMENT"), String(error)).toBe(true);
    expect((error as Error).message).toContain(message);
    expect((error as { details?: Record<string, unknown> }).details).toHaveProperty("parameter");
  });

  it("checks logit bias ids against the vocabulary and history tokens against it", () => {
    expect(() => new Sampler({ logitBias: { 1000: 1 } }, { nVocab: 1000 })).toThrow(
      /logit bias token id must be below the vocabulary size 1000, found 1000/,
    );
    const s = new Sampler({ repeatPenalty: 1.1 });
    expect(() => s.sample(logitsFor(1), [1, 2, 1000])).toThrow(/history token 1000 at index 2/);
    expect(() => s.sample(new Float32Array(0))).toThrow(/logits must be a non-empty Float32Array/);
  });

  it("the same seed gives the same tokens; another seed others; reset() starts over", () => {
    const run = (s: Sampler) => Array.from({ length: 50 }, (_, i) => s.sample(logitsFor(i)));
    const a = run(new Sampler({ seed: 42, temperature: 1.2, topK: 0, topP: 1, minP: 0 }));
    const s = new Sampler({ seed: 42, temperature: 1.2, topK: 0, topP: 1, minP: 0 });
    expect(run(s)).toEqual(a);
    s.reset();
    expect(run(s)).toEqual(a);
    const b = run(new Sampler({ seed: 43, temperature: 1.2, topK: 0, topP: 1, minP: 0 }));
    expect(b).not.toEqual(a);
    expect(new Set(a).size).toBeGreaterThan(20);
  });

  it("without a seed, picks a random one and reports it", () => {
    const s = new Sampler({ temperature: 1 });
    expect(Number.isInteger(s.seed) && s.seed >= 0 && s.seed < 0xffffffff).toBe(true);
    const run = (x: Sampler) => Array.from({ length: 20 }, (_, i) => x.sample(logitsFor(i)));
    const a = run(s);
    expect(run(new Sampler({ temperature: 1, seed: s.seed }))).toEqual(a);
    const seeds = new Set(Array.from({ length: 5 }, () => new Sampler().seed));
    expect(seeds.size).toBe(5);
  });

  it("temperature 0 is the argmax after bias and penalties, and draws nothing", () => {
    const logits = logitsFor(5);
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    const s = new Sampler({ temperature: 0 });
    expect(s.greedy).toBe(true);
    expect(s.sample(logits)).toBe(best);
    expect(
      new Sampler({ temperature: 0, logitBias: { [best]: Number.NEGATIVE_INFINITY } }).sample(logits),
    ).not.toBe(best);
    expect(new Sampler({ temperature: 0, logitBias: { 7: 100 } }).sample(logits)).toBe(7);
    // A strong repeat penalty on the argmax moves the choice; the window decides.
    const p = new Sampler({ temperature: 0, repeatPenalty: 100, repeatLastN: 2 });
    expect(p.sample(logits, [best, 3])).not.toBe(best);
    expect(p.sample(logits, [best, 3, 4])).toBe(best);
  });

  it("penalizes accepted tokens when sample() gets no history", () => {
    const logits = logitsFor(6);
    const s = new Sampler({ temperature: 0, presencePenalty: 1000, repeatLastN: 3 });
    const first = s.sample(logits);
    s.accept(first);
    const second = s.sample(logits);
    expect(second).not.toBe(first);
    s.accept(second);
    expect(s.history).toEqual([first, second]);
    s.accept(1);
    s.accept(2);
    expect(s.sample(logits)).toBe(first); // out of the window of 3
    s.reset();
    expect(s.history).toEqual([]);
  });

  it("samples a 152k vocabulary in milliseconds, with or without top-k", () => {
    const n = 152064;
    const g = new Mt19937(11);
    const logits = Float32Array.from(
      { length: n },
      () => ((g.next() + g.next() + g.next()) / 2 ** 32) * 3 - 4.5,
    );
    for (let i = 0; i < n; i += 997) logits[i] = logits[i]! + 8;
    const time = (params: SamplerParams, steps: number) => {
      const s = new Sampler({ seed: 1, ...params }, { nVocab: n });
      s.sample(logits);
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) s.sample(logits);
      return (performance.now() - t0) / steps;
    };
    const defaults = time({}, 20);
    const greedy = time({ temperature: 0 }, 20);
    const noTopK = time({ topK: 0 }, 5);
    // Generous bounds (shared CI machines); typical figures are ~1 ms, ~0.5 ms and ~10 ms.
    expect(defaults).toBeLessThan(25);
    expect(greedy).toBeLessThan(25);
    expect(noTopK).toBeLessThan(250);
  });
});

describe("StopMatcher", () => {
  const feed = (stops: string[], pieces: string[]) => {
    const m = new StopMatcher(stops);
    const out = pieces.map((p) => m.push(p));
    return {
      m,
      texts: out.map((o) => o.text),
      stopped: out.map((o) => o.stopped),
      last: out[out.length - 1]!,
    };
  };

  it("cuts right before a stop string inside one piece", () => {
    const { texts, last } = feed(["o w"], ["Hel", "lo world"]);
    expect(texts).toEqual(["Hel", "l"]);
    expect(last).toEqual({ text: "l", stopped: true, stop: "o w" });
  });

  it("holds back a possible start and finds a stop string spread over several pieces", () => {
    const { texts, stopped, m } = feed(["STOP"], ["ab", "S", "T", "O", "P", "cd"]);
    expect(texts).toEqual(["ab", "", "", "", "", ""]);
    expect(stopped).toEqual([false, false, false, false, true, true]);
    expect(m.stopped).toBe(true);
    expect(m.flush()).toBe("");
  });

  it("releases held text when the start was a false alarm, and at the end", () => {
    const { texts, m } = feed(["STOP"], ["xS", "T", "x", "ST"]);
    expect(texts).toEqual(["x", "", "STx", ""]);
    expect(m.pending).toBe("ST");
    expect(m.flush()).toBe("ST");
  });

  it("takes the earliest of several stop strings, and the longest at the same place", () => {
    expect(feed(["world", "lo"], ["hello world"]).last).toMatchObject({ text: "hel", stop: "lo" });
    expect(feed(["ab", "abc"], ["xxabcd"]).last).toMatchObject({ text: "xx", stop: "abc" });
    expect(feed(["\n\n"], ["one\n", "\ntwo"]).texts).toEqual(["one", ""]);
  });

  it("passes everything through without stop strings", () => {
    expect(feed([], ["a", "b"]).texts).toEqual(["a", "b"]);
  });
});

describe("generate", () => {
  const V = 8;
  const EOS = 2;
  const piece = ["<unk>", "<s>", "</s>", "Hello", ",", " world", "!", "\n"];
  /** A model that follows a script: the logits peak on script[n] after n generated tokens. */
  const scripted = (script: number[], promptLength: number) => {
    const seen: number[][] = [];
    const evaluate = (tokens: readonly number[]) => {
      seen.push([...tokens]);
      const l = new Float32Array(V).fill(-10);
      l[script[tokens.length - promptLength] ?? EOS] = 10;
      return l;
    };
    return { evaluate, seen };
  };
  const decoder = () => ({ push: (id: number) => piece[id] ?? "?" });
  async function run(it: AsyncGenerator<GenerateStep, GenerateResult, void>) {
    const steps: GenerateStep[] = [];
    for (;;) {
      const r = await it.next();
      if (r.done) return { steps, result: r.value };
      steps.push(r.value);
    }
  }

  it("stops at an end-of-generation token, which is not in the text", async () => {
    const { evaluate, seen } = scripted([3, 4, 5, 6, EOS, 3], 1);
    const { steps, result } = await run(
      generate({
        prompt: [1],
        evaluate,
        sampler: new Sampler({ seed: 1 }),
        decoder: decoder(),
        stopTokens: [EOS],
      }),
    );
    expect(steps).toEqual([
      { token: 3, text: "Hello" },
      { token: 4, text: "," },
      { token: 5, text: " world" },
      { token: 6, text: "!" },
    ]);
    expect(result).toEqual({
      tokens: [3, 4, 5, 6],
      text: "Hello, world!",
      stopReason: "eog",
      eogToken: EOS,
      seed: 1,
    });
    expect(seen[0]).toEqual([1]);
    expect(seen[4]).toEqual([1, 3, 4, 5, 6]);
  });

  it("stops at a stop string spread over tokens, without it", async () => {
    const { evaluate } = scripted([3, 4, 5, 6, 3], 1);
    const { steps, result } = await run(
      generate({ prompt: [1], evaluate, sampler: new Sampler({ stop: [", wor"] }), decoder: decoder() }),
    );
    expect(steps.map((s) => s.text)).toEqual(["Hello", "", ""]);
    expect(result).toMatchObject({ tokens: [3, 4, 5], text: "Hello", stopReason: "stop", stop: ", wor" });
  });

  it("stops at the token limit (num_predict) and flushes held-back text", async () => {
    const { evaluate, seen } = scripted([3, 4, 5, 6], 2);
    const { steps, result } = await run(
      generate({
        prompt: [1, 7],
        evaluate,
        sampler: new Sampler({ num_predict: 2, stop: [", there"] }),
        decoder: decoder(),
      }),
    );
    expect(steps).toEqual([
      { token: 3, text: "Hello" },
      { token: 4, text: "" },
      { token: null, text: "," },
    ]);
    expect(result).toMatchObject({ tokens: [3, 4], text: "Hello,", stopReason: "length" });
    expect(seen).toHaveLength(2);
    const none = await run(generate({ prompt: [1], evaluate, sampler: new Sampler(), maxTokens: 0 }));
    expect(none.result).toMatchObject({ tokens: [], stopReason: "length" });
  });

  it("lets the penalties see the prompt (as llama-server does)", async () => {
    // Token 5 is the argmax everywhere; the prompt holds it, so a presence penalty avoids it. Then
    // each token taken (and 1, in the prompt) is penalized in turn: 6, then 0, then 2.
    const evaluate = () => {
      const l = new Float32Array(V).fill(0);
      l[5] = 3;
      l[6] = 2;
      return l;
    };
    const { result } = await run(
      generate({
        prompt: [1, 5],
        evaluate,
        sampler: new Sampler({ temperature: 0, presencePenalty: 5 }),
        maxTokens: 3,
      }),
    );
    expect(result.tokens).toEqual([6, 0, 2]);
  });

  it("throws ERR_ABORTED when the signal fires, and ERR_INVALID_ARGUMENT on bad input", async () => {
    const ac = new AbortController();
    const { evaluate } = scripted([3, 4, 5, 6, 3, 4, 5, 6], 1);
    const it = generate({
      prompt: [1],
      evaluate,
      sampler: new Sampler(),
      decoder: decoder(),
      signal: ac.signal,
    });
    await it.next();
    ac.abort();
    await expect(it.next()).rejects.toSatisfy((e) => isOwlError(e, "ERR_ABORTED"));
    await expect(run(generate({ prompt: [], evaluate, sampler: new Sampler() }))).rejects.toThrow(
      /at least one token/,
    );
    await expect(
      run(generate({ prompt: [1], evaluate, sampler: new Sampler(), maxTokens: -5 })),
    ).rejects.toThrow(/maxTokens must be an integer >= -1/);
  });
});
