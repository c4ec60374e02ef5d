/**
 * The Sampler's fast paths against the plain code they replace, on random logits with ties, NaNs
 * of both signs, infinities, signed zeros and all-negative rows:
 * - greedy (temperature <= 0 with no logit bias and no penalty): the argmax of the logits as
 *   given (argmaxF32), the candidates loaded only when read, against load, bias, penalties, then
 *   the first largest logit in id order (llama_sampler_greedy);
 * - top-k on candidates in id order (applyTopKInOrder) against applyTopK (std::partial_sort).
 */
import { describe, expect, it } from "vitest";
import { Sampler, type SamplerParams } from "../src/engine/sampler.ts";
import { Mt19937 } from "../src/engine/sampler-rng.ts";
import {
  applyLogitBias,
  applyMinP,
  applyPenalties,
  applyTempExt,
  applyTopK,
  applyTopKInOrder,
  applyTopNSigma,
  applyTopP,
  applyTypicalP,
  applyXtc,
  argmaxF32,
  argmaxPosition,
  Candidates,
  sampleDist,
} from "../src/engine/sampler-stages.ts";

const bitsToF32 = (bits: number) => new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]!;
const POS_NAN = 0x7fc00000;
const NEG_NAN = 0xffc00000;
const SIGNALING_NAN = 0x7f800001;

/** The greedy step as it was: the first largest logit by `>` from index 0. */
function firstMax(x: Float32Array): number {
  let best = 0;
  let bestL = x[0]!;
  for (let i = 1; i < x.length; i++) {
    if (x[i]! > bestL) {
      best = i;
      bestL = x[i]!;
    }
  }
  return best;
}

/** Random logits drawn from a few values (ties), with NaNs and infinities when asked. */
function rowOf(g: Mt19937, n: number, specials: boolean): Float32Array {
  const x = new Float32Array(n);
  const u = new Uint32Array(x.buffer);
  const pool = [-3.5, -1, -0, 0, 0.25, 1.5, 2, 7, 1e-45, -1e-45];
  for (let i = 0; i < n; i++) {
    const r = g.next() % 100;
    if (specials && r < 4) u[i] = [POS_NAN, NEG_NAN, SIGNALING_NAN, 0x7fffffff][r]!;
    else if (specials && r < 7) x[i] = r === 4 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    else if (r < 40) x[i] = pool[g.next() % pool.length]!;
    else x[i] = (g.next() / 2 ** 32) * 20 - 10;
  }
  return x;
}

/** The old Sampler.sample for a greedy sampler: load, bias, penalties, first maximum. */
function chainGreedy(logits: Float32Array, params: SamplerParams, history: readonly number[]): number {
  const s = new Sampler(params);
  const p = s.params;
  const c = new Candidates(logits.length);
  c.load(logits);
  if (p.logitBias.length > 0) {
    applyLogitBias(
      c,
      Int32Array.from(p.logitBias, (e) => e[0]),
      Float32Array.from(p.logitBias, (e) => e[1]),
    );
  }
  const penalties = !(p.repeatPenalty === 1 && p.frequencyPenalty === 0 && p.presencePenalty === 0);
  if (p.repeatLastN !== 0 && penalties && history.length > 0) {
    const start = p.repeatLastN < 0 ? 0 : Math.max(0, history.length - p.repeatLastN);
    applyPenalties(
      c,
      history,
      start,
      history.length,
      p.repeatPenalty,
      p.frequencyPenalty,
      p.presencePenalty,
      new Int32Array(logits.length),
    );
  }
  return argmaxPosition(c);
}

describe("argmaxF32", () => {
  it("is the first largest value by > on 20000 random rows with ties, NaNs, infinities and zeros", () => {
    const g = new Mt19937(7);
    for (let trial = 0; trial < 20000; trial++) {
      const n = 1 + (g.next() % 70);
      const x = rowOf(g, n, trial % 3 !== 0);
      const want = firstMax(x);
      const got = argmaxF32(x);
      if (got !== want) expect.fail(`trial ${trial}: ${got} for ${want} on ${Array.from(x).join(",")}`);
      const c = new Candidates(n);
      c.load(x);
      expect(argmaxPosition(c)).toBe(want);
    }
  });

  it("agrees on vocabulary-sized rows, ties of the maximum placed anywhere", () => {
    const g = new Mt19937(8);
    for (const n of [31999, 32000, 32001, 32003, 151936]) {
      for (let trial = 0; trial < 6; trial++) {
        const x = Float32Array.from({ length: n }, () => (g.next() / 2 ** 32) * 30 - 15);
        const top = 16 + trial;
        for (let k = 0; k < trial; k++) x[g.next() % n] = top;
        if (trial === 5) x[n - 1] = top;
        expect(argmaxF32(x)).toBe(firstMax(x));
      }
    }
  });

  it("keeps index 0 when it holds a NaN, skips NaNs elsewhere, and handles rows without a positive value", () => {
    const nan = (bits: number, rest: number[]) => Float32Array.from([bitsToF32(bits), ...rest]);
    expect(argmaxF32(nan(POS_NAN, [1, 2, 3, 4, 5]))).toBe(0);
    expect(argmaxF32(nan(NEG_NAN, [1, 2, 3, 4, 5]))).toBe(0);
    expect(argmaxF32(Float32Array.from([1, Number.NaN, 3, 3, Number.NaN, 2]))).toBe(2);
    const negNanAfter = Float32Array.from([1, 0, 3, 0, 2]);
    new Uint32Array(negNanAfter.buffer)[1] = NEG_NAN;
    new Uint32Array(negNanAfter.buffer)[3] = SIGNALING_NAN;
    expect(argmaxF32(negNanAfter)).toBe(2);
    expect(argmaxF32(Float32Array.from([-5, -1, -3, -1, -2]))).toBe(1);
    expect(argmaxF32(Float32Array.from([-1, -0, 0, -0, -2]))).toBe(1);
    expect(argmaxF32(Float32Array.from([-1, 0, -0, -2, -3]))).toBe(1);
    const ninf = Number.NEGATIVE_INFINITY;
    expect(argmaxF32(Float32Array.from([ninf, ninf, ninf, ninf, ninf, ninf]))).toBe(0);
    expect(argmaxF32(Float32Array.from([ninf, Number.NaN, ninf, -7, ninf]))).toBe(3);
    const inf = Number.POSITIVE_INFINITY;
    expect(argmaxF32(Float32Array.from([3, inf, 2, inf, 1, 9]))).toBe(1);
    expect(argmaxF32(Float32Array.from([7]))).toBe(0);
  });

  it("reads a view at an offset, not the whole buffer", () => {
    const all = Float32Array.from([100, 1, 5, 2, 5, 3, 100]);
    const view = all.subarray(1, 6);
    expect(argmaxF32(view)).toBe(1);
    expect(argmaxF32(all.subarray(1, 2))).toBe(0);
  });
});

describe("Sampler, greedy", () => {
  it("picks what the chain picked, with and without bias and penalties, on random rows", () => {
    const g = new Mt19937(9);
    for (let trial = 0; trial < 3000; trial++) {
      const n = 1 + (g.next() % 60);
      const x = rowOf(g, n, trial % 2 === 0);
      const history = Array.from({ length: g.next() % 6 }, () => g.next() % n);
      const variants: SamplerParams[] = [
        { temperature: 0 },
        { temperature: 0, topK: 3, topP: 0.5, minP: 0.2 },
        { temperature: 0, repeatPenalty: 1.3, repeatLastN: 4 },
        { temperature: 0, presencePenalty: 2, frequencyPenalty: 0.5 },
        { temperature: 0, logitBias: { [g.next() % n]: 3, [g.next() % n]: Number.NEGATIVE_INFINITY } },
      ];
      for (const params of variants) {
        const want = chainGreedy(x, params, history);
        const s = new Sampler(params);
        const got = s.sample(x, history);
        if (got !== want) expect.fail(`trial ${trial} ${JSON.stringify(params)}: ${got} for ${want}`);
        // The same through accept() instead of a history.
        const t = new Sampler(params);
        for (const h of history) t.accept(h);
        expect(t.sample(x)).toBe(want);
      }
    }
  });

  it("still loads the candidates when they are read after a greedy sample", () => {
    const g = new Mt19937(10);
    const V = 257;
    const s = new Sampler({ temperature: 0 }, { nVocab: V });
    const x = Float32Array.from({ length: V }, () => (g.next() / 2 ** 32) * 8 - 4);
    const token = s.sample(x);
    const c = s.candidates!;
    expect(c.size).toBe(V);
    expect(c.sorted).toBe(false);
    expect(Array.from(c.ids)).toEqual(Array.from({ length: V }, (_, i) => i));
    expect(Array.from(c.logit)).toEqual(Array.from(x));
    expect(argmaxPosition(c)).toBe(token);
    // Biased: the candidates carry the bias, as they did.
    const b = new Sampler({ temperature: 0, logitBias: { 3: 100 } }, { nVocab: V });
    expect(b.sample(x)).toBe(3);
    expect(b.candidates!.logit[3]).toBe(Math.fround(x[3]! + 100));
    // A later sample replaces what the getter shows.
    const y = Float32Array.from({ length: V }, (_, i) => (i === 200 ? 50 : 0));
    expect(s.sample(y)).toBe(200);
    expect(s.candidates!.logit[200]).toBe(50);
    expect(s.candidates!.logit[token]).toBe(token === 200 ? 50 : 0);
  });

  it("checks history tokens only when the penalties read them, as before", () => {
    const x = Float32Array.from([1, 2, 3]);
    expect(new Sampler({ temperature: 0 }).sample(x, [7])).toBe(2);
    expect(() => new Sampler({ temperature: 0, repeatPenalty: 2 }).sample(x, [7])).toThrow(
      /not in the vocabulary/,
    );
  });
});

describe("applyTopKInOrder", () => {
  /** Both top-k's on the same loaded row: ids, size and sorted flag must match. */
  const check = (x: Float32Array, k: number, label: string) => {
    const a = new Candidates(x.length);
    a.load(x);
    applyTopK(a, k);
    const b = new Candidates(x.length);
    b.load(x);
    applyTopKInOrder(b, k);
    if (a.size !== b.size || a.sorted !== b.sorted) expect.fail(`${label}: size/sorted differ`);
    for (let i = 0; i < a.size; i++) {
      if (a.ids[i] !== b.ids[i]) expect.fail(`${label}: ids differ at ${i}: ${a.ids[i]} vs ${b.ids[i]}`);
    }
  };

  it("keeps the ids std::partial_sort keeps, in its order, on random rows with ties and NaNs", () => {
    const g = new Mt19937(11);
    for (let trial = 0; trial < 1500; trial++) {
      const n = 200 + (g.next() % 1500);
      const x = rowOf(g, n, trial % 2 === 0);
      // Mostly few distinct values: ties at the k-th place.
      if (trial % 3 === 0) for (let i = 0; i < n; i++) x[i] = (g.next() % 7) - 3;
      const k = [1, 2, 3, 8, 40, 64, 127, 128, 129, 300][trial % 10]!;
      check(x, k, `trial ${trial} n ${n} k ${k}`);
    }
  });

  it("agrees on vocabulary-sized rows, rising, falling and flat, and leaves k <= 0 alone", () => {
    const g = new Mt19937(12);
    const n = 32000;
    const rows = [
      Float32Array.from({ length: n }, () => (g.next() / 2 ** 32) * 20 - 10),
      Float32Array.from({ length: n }, (_, i) => i / 100),
      Float32Array.from({ length: n }, (_, i) => -i / 100),
      new Float32Array(n).fill(1.5),
      Float32Array.from({ length: n }, (_, i) => (i % 1000 === 999 ? Number.POSITIVE_INFINITY : i % 5)),
    ];
    // NaNs of both signs after the first k (the integer skip lets positive ones through to the
    // float test), and rows whose k-th largest logit is zero or negative (the float skip).
    const nans = Float32Array.from({ length: n }, () => (g.next() / 2 ** 32) * 20 - 5);
    const nanBits = new Uint32Array(nans.buffer);
    for (let i = 200; i < n; i += 37) nanBits[i] = [POS_NAN, NEG_NAN, SIGNALING_NAN, 0x7fffffff][i % 4]!;
    rows.push(nans);
    rows.push(Float32Array.from({ length: n }, () => -1 - (g.next() / 2 ** 32) * 20));
    rows.push(Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? -0 : -1)));
    for (const [r, x] of rows.entries()) for (const k of [1, 40, 128]) check(x, k, `row ${r} k ${k}`);
    const c = new Candidates(n);
    c.load(rows[0]!);
    applyTopKInOrder(c, 0);
    expect(c.size).toBe(n);
    expect(c.sorted).toBe(false);
  });
});

describe("Sampler, top-k in id order", () => {
  it("draws the same tokens as the chain with applyTopK, with the default chain and others", () => {
    const g = new Mt19937(13);
    const V = 4096;
    const chains: SamplerParams[] = [
      {},
      { topK: 40, topP: 0.9, minP: 0, temperature: 0.7 },
      { topK: 5, topP: 1, minP: 0.1, repeatPenalty: 1.2, logitBias: { 17: 5 } },
      { topK: 100, typicalP: 0.8, xtcProbability: 0.5, xtcThreshold: 0.1 },
      { topK: 3, temperature: 0, xtcProbability: 1, xtcThreshold: 0.2 },
    ];
    for (const [ci, params] of chains.entries()) {
      const seed = 1000 + ci;
      const fast = new Sampler({ ...params, seed }, { nVocab: V });
      const ref = chainOf({ ...params, seed }, V);
      const history: number[] = [];
      for (let step = 0; step < 200; step++) {
        const x = Float32Array.from({ length: V }, () => ((g.next() % 64) - 32) / 8);
        const a = fast.sample(x, history);
        const b = ref(x, history);
        if (a !== b) expect.fail(`chain ${ci} step ${step}: ${a} vs ${b}`);
        history.push(a);
      }
    }
  });
});

/** Sampler.sample's chain written out from the stages, top-k as applyTopK. */
function chainOf(params: SamplerParams, V: number): (x: Float32Array, history: number[]) => number {
  const p = new Sampler(params).params;
  const rng = new Mt19937(p.seed);
  const xtcRng = new Mt19937(p.seed);
  const c = new Candidates(V);
  const counts = new Int32Array(V);
  return (x, history) => {
    c.load(x);
    if (p.logitBias.length > 0) {
      applyLogitBias(
        c,
        Int32Array.from(p.logitBias, (e) => e[0]),
        Float32Array.from(p.logitBias, (e) => e[1]),
      );
    }
    const penalties = !(p.repeatPenalty === 1 && p.frequencyPenalty === 0 && p.presencePenalty === 0);
    if (p.repeatLastN !== 0 && penalties && history.length > 0) {
      const start = p.repeatLastN < 0 ? 0 : Math.max(0, history.length - p.repeatLastN);
      applyPenalties(
        c,
        history,
        start,
        history.length,
        p.repeatPenalty,
        p.frequencyPenalty,
        p.presencePenalty,
        counts,
      );
    }
    const xtcOn = p.xtcProbability > 0 && p.xtcThreshold <= 0.5;
    applyTopNSigma(c, p.topNSigma);
    applyTopK(c, p.topK);
    applyTypicalP(c, p.typicalP, p.minKeep);
    applyTopP(c, p.topP, p.minKeep);
    applyMinP(c, p.minP, p.minKeep);
    if (xtcOn) applyXtc(c, p.xtcProbability, p.xtcThreshold, p.minKeep, xtcRng);
    if (p.temperature <= 0) return c.ids[argmaxPosition(c)]!;
    applyTempExt(c, p.temperature, p.dynatempRange, p.dynatempExponent);
    return c.ids[sampleDist(c, rng)]!;
  };
}
