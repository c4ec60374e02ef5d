/**
 * The sampler: picks the next token from the logits, with llama.cpp's sampler chain in the order
 * common_sampler_init (common/sampling.cpp) builds it by default:
 *
 *   logit bias -> penalties (repeat, frequency, presence over the last repeat_last_n tokens)
 *   -> top-n-sigma -> top-k -> typical-p -> top-p -> min-p -> XTC -> temperature (dynamic with
 *   dynatemp_range > 0) -> dist (a seeded std::mt19937 draw)
 *
 * Disabled stages are skipped as llama.cpp's "empty" samplers are (top_k <= 0, top_p >= 1,
 * min_p <= 0, typical_p >= 1, ...). node-llama-cpp 3.21.1 builds the same chain without
 * top-n-sigma, typical-p and dynamic temperature, so with those off a seed gives the same tokens
 * as `sequence.evaluate(tokens, {temperature, topK, topP, minP, seed, repeatPenalty, xtc,
 * tokenBias})` (NOTE: its topK 0 means "all, sorted", which is topK = V here; topK 0 here is
 * llama.cpp's "off", which leaves the candidates in id order for the draw).
 *
 * temperature <= 0 is greedy: the first largest logit after logit bias and penalties
 * (llama_sampler_greedy, what node-llama-cpp uses). common_sampler's chain picks the same token
 * (temperature 0 masks all but the maximum) except among tied maxima; typical-p and XTC can drop
 * the maximum, so when they are on they run first, as in that chain. With no bias and no
 * penalty it is the argmax of the logits as given (argmaxF32), without loading the candidates.
 *
 * Parameters take llama.cpp/owl names (topK, repeatLastN, ...) and Ollama's (top_k,
 * repeat_last_n, num_predict, ...); resolveSamplerParams() checks them. Defaults are llama.cpp's
 * (common_params_sampling). Not here: the stages (sampler-stages.ts), stop strings
 * (sampler-stop.ts), the generation loop (generate.ts). DRY and mirostat are not implemented.
 */
import { OwlError } from "../util/errors.ts";
import { Mt19937 } from "./sampler-rng.ts";
import {
  applyLogitBias,
  applyMinP,
  applyPenalties,
  applyTempExt,
  applyTopKInOrder,
  applyTopNSigma,
  applyTopP,
  applyTypicalP,
  applyXtc,
  argmaxF32,
  argmaxPosition,
  Candidates,
  sampleDist,
} from "./sampler-stages.ts";

/** Token id -> bias added to its logit (-Infinity bans the token). */
export type LogitBias =
  | Readonly<Record<number | string, number>>
  | ReadonlyMap<number, number>
  | readonly (readonly [number, number])[];

/**
 * Sampling parameters. Each has an owl (camelCase) name and, where Ollama has one, Ollama's
 * snake_case name; give either (both only if equal).
 */
export interface SamplerParams {
  /** Default 0.8; <= 0 is greedy. */
  temperature?: number;
  /** Default 40; 0 disables. */
  topK?: number;
  top_k?: number;
  /** Default 0.95; 1 disables. */
  topP?: number;
  top_p?: number;
  /** Default 0.05; 0 disables. */
  minP?: number;
  min_p?: number;
  /** Default 1 (disabled). */
  typicalP?: number;
  typical_p?: number;
  /** Default -1 (disabled); keeps logits within n standard deviations of the maximum. */
  topNSigma?: number;
  top_n_sigma?: number;
  /** Default 1 (disabled): positive logits of recent tokens are divided by it, others multiplied. */
  repeatPenalty?: number;
  repeat_penalty?: number;
  /** Default 64: how many recent tokens the penalties look at; 0 disables, -1 the whole history. */
  repeatLastN?: number;
  repeat_last_n?: number;
  /** Default 0: subtracted from the logit of each token present in the window. */
  presencePenalty?: number;
  presence_penalty?: number;
  /** Default 0: times the token's count in the window, subtracted from its logit. */
  frequencyPenalty?: number;
  frequency_penalty?: number;
  /** Default 0 (off): dynamic temperature range (temperature +- range). */
  dynatempRange?: number;
  dynatemp_range?: number;
  /** Default 1: exponent of the normalized entropy in dynamic temperature. */
  dynatempExponent?: number;
  dynatemp_exponent?: number;
  /** Default 0 (off): chance that XTC removes the top choices. */
  xtcProbability?: number;
  xtc_probability?: number;
  /** Default 0.1: probability above which XTC removes a choice (> 0.5 disables). */
  xtcThreshold?: number;
  xtc_threshold?: number;
  /** Default 0: the truncating stages keep at least this many candidates. */
  minKeep?: number;
  min_keep?: number;
  /** Random seed (uint32); missing, -1 or 4294967295 (llama.cpp's LLAMA_DEFAULT_SEED): random. */
  seed?: number;
  /** Biases added to logits before anything else. */
  logitBias?: LogitBias;
  logit_bias?: LogitBias;
  /** Stop strings (used by generate()): the text ends before the first one. */
  stop?: string | readonly string[];
  /** Most tokens to generate (used by generate()); -1 (default): no limit. */
  maxTokens?: number;
  num_predict?: number;
}

/** Parameters after defaults and checks. */
export interface ResolvedSamplerParams {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  typicalP: number;
  topNSigma: number;
  repeatPenalty: number;
  repeatLastN: number;
  presencePenalty: number;
  frequencyPenalty: number;
  dynatempRange: number;
  dynatempExponent: number;
  xtcProbability: number;
  xtcThreshold: number;
  minKeep: number;
  /** The seed asked for; undefined: a random one (Sampler.seed says which). */
  seed: number | undefined;
  /** Bias entries sorted by token id. */
  logitBias: readonly (readonly [number, number])[];
  stop: readonly string[];
  maxTokens: number;
}

/** llama.cpp's defaults (common/common.h, common_params_sampling). */
export const DEFAULT_SAMPLER_PARAMS: Readonly<ResolvedSamplerParams> = Object.freeze({
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  typicalP: 1,
  topNSigma: -1,
  repeatPenalty: 1,
  repeatLastN: 64,
  presencePenalty: 0,
  frequencyPenalty: 0,
  dynatempRange: 0,
  dynatempExponent: 1,
  xtcProbability: 0,
  xtcThreshold: 0.1,
  minKeep: 0,
  seed: undefined,
  logitBias: [],
  stop: [],
  maxTokens: -1,
});

/** llama.cpp's LLAMA_DEFAULT_SEED: "pick a random seed". */
const LLAMA_DEFAULT_SEED = 0xffffffff;

function invalid(parameter: string, expected: string, found: unknown): OwlError {
  const shown = typeof found === "string" ? JSON.stringify(found) : String(found);
  return new OwlError("ERR_INVALID_ARGUMENT", `${parameter} must be ${expected}, found ${shown}`, {
    details: { parameter, expected, found },
  });
}

type NumberKey = {
  [K in keyof SamplerParams]-?: NonNullable<SamplerParams[K]> extends number ? K : never;
}[keyof SamplerParams];

/** The value of a parameter given by its owl name or Ollama alias (an error if both differ). */
function pick(p: SamplerParams, name: NumberKey, alias?: NumberKey): { name: string; value: unknown } {
  const a: unknown = p[name];
  const b: unknown = alias === undefined ? undefined : p[alias];
  if (a !== undefined && b !== undefined && !Object.is(a, b)) {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `${name} and ${alias} name the same parameter but differ: ${String(a)} and ${String(b)}`,
      { details: { parameter: name, alias, found: [a, b] } },
    );
  }
  return a !== undefined ? { name, value: a } : { name: alias ?? name, value: b };
}

function num(
  p: SamplerParams,
  name: NumberKey,
  alias: NumberKey | undefined,
  fallback: number,
  ok: (x: number) => boolean,
  expected: string,
  integer = false,
): number {
  const { name: given, value } = pick(p, name, alias);
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" ||
    Number.isNaN(value) ||
    (integer && !Number.isInteger(value)) ||
    !ok(value)
  ) {
    throw invalid(given, expected, value);
  }
  return value;
}

const finite = (x: number) => Number.isFinite(x);

function resolveLogitBias(bias: LogitBias | undefined, given: string): [number, number][] {
  if (bias === undefined) return [];
  let entries: [unknown, unknown][];
  if (bias instanceof Map) entries = [...bias.entries()];
  else if (Array.isArray(bias)) entries = bias.map((e) => (Array.isArray(e) ? [e[0], e[1]] : [e, undefined]));
  else if (typeof bias === "object" && bias !== null) entries = Object.entries(bias);
  else throw invalid(given, "an object, Map or array of [token id, bias] pairs", bias);
  const out = new Map<number, number>();
  for (const [k, v] of entries) {
    const id = typeof k === "string" && /^\d+$/.test(k) ? Number(k) : k;
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0x7fffffff) {
      throw invalid(`${given} token id`, "an integer token id >= 0", k);
    }
    if (typeof v !== "number" || Number.isNaN(v) || v === Number.POSITIVE_INFINITY) {
      throw invalid(`${given}[${id}]`, "a finite number or -Infinity (ban)", v);
    }
    out.set(id, (out.get(id) ?? 0) + v);
  }
  return [...out.entries()].sort((x, y) => x[0] - y[0]);
}

/** Apply defaults and check every parameter; throws ERR_INVALID_ARGUMENT naming the bad one. */
export function resolveSamplerParams(params: SamplerParams = {}): ResolvedSamplerParams {
  const d = DEFAULT_SAMPLER_PARAMS;
  const unit = (x: number) => x >= 0 && x <= 1;
  const temperature = num(
    params,
    "temperature",
    undefined,
    d.temperature,
    // NOTE: llama.cpp keeps it in float32: 1e39 would become Infinity.
    (x) => Number.isFinite(Math.fround(x)) && x >= 0,
    "a finite number >= 0 (0 = greedy)",
  );
  const topK = num(
    params,
    "topK",
    "top_k",
    d.topK,
    (x) => x >= 0 && x <= 0x7fffffff,
    "an integer >= 0 (0 = off)",
    true,
  );
  const topP = num(params, "topP", "top_p", d.topP, unit, "a number in [0, 1] (1 = off)");
  const minP = num(params, "minP", "min_p", d.minP, unit, "a number in [0, 1] (0 = off)");
  const typicalP = num(params, "typicalP", "typical_p", d.typicalP, unit, "a number in [0, 1] (1 = off)");
  const topNSigma = num(
    params,
    "topNSigma",
    "top_n_sigma",
    d.topNSigma,
    finite,
    "a finite number (<= 0 = off)",
  );
  const repeatPenalty = num(
    params,
    "repeatPenalty",
    "repeat_penalty",
    d.repeatPenalty,
    // As common_sampler_init: finite, > 0, with a finite reciprocal (in float32).
    (x) => finite(x) && x > 0 && Number.isFinite(Math.fround(1 / Math.fround(x))) && Math.fround(x) > 0,
    "a finite number > 0 (1 = off)",
  );
  const repeatLastN = num(
    params,
    "repeatLastN",
    "repeat_last_n",
    d.repeatLastN,
    (x) => x >= -1 && x <= 0x7fffffff,
    "an integer >= -1 (0 = off, -1 = all)",
    true,
  );
  const presencePenalty = num(
    params,
    "presencePenalty",
    "presence_penalty",
    d.presencePenalty,
    finite,
    "a finite number (0 = off)",
  );
  const frequencyPenalty = num(
    params,
    "frequencyPenalty",
    "frequency_penalty",
    d.frequencyPenalty,
    finite,
    "a finite number (0 = off)",
  );
  const dynatempRange = num(
    params,
    "dynatempRange",
    "dynatemp_range",
    d.dynatempRange,
    (x) => finite(x) && x >= 0,
    "a finite number >= 0 (0 = off)",
  );
  const dynatempExponent = num(
    params,
    "dynatempExponent",
    "dynatemp_exponent",
    d.dynatempExponent,
    (x) => finite(x) && x > 0,
    "a finite number > 0",
  );
  const xtcProbability = num(
    params,
    "xtcProbability",
    "xtc_probability",
    d.xtcProbability,
    unit,
    "a number in [0, 1] (0 = off)",
  );
  const xtcThreshold = num(
    params,
    "xtcThreshold",
    "xtc_threshold",
    d.xtcThreshold,
    unit,
    "a number in [0, 1] (> 0.5 = off)",
  );
  const minKeep = num(
    params,
    "minKeep",
    "min_keep",
    d.minKeep,
    (x) => x >= 0 && x <= 0x7fffffff,
    "an integer >= 0",
    true,
  );
  const maxTokens = num(
    params,
    "maxTokens",
    "num_predict",
    d.maxTokens,
    (x) => x >= -1 && x <= Number.MAX_SAFE_INTEGER,
    "an integer >= -1 (-1 = no limit)",
    true,
  );
  const seedIn = num(
    params,
    "seed",
    undefined,
    -1,
    (x) => x >= -1 && x <= LLAMA_DEFAULT_SEED,
    "an integer in [0, 4294967295] (-1 = random)",
    true,
  );
  const seed = seedIn === -1 || seedIn === LLAMA_DEFAULT_SEED ? undefined : seedIn;

  if (
    params.logitBias !== undefined &&
    params.logit_bias !== undefined &&
    params.logitBias !== params.logit_bias
  ) {
    throw new OwlError("ERR_INVALID_ARGUMENT", "logitBias and logit_bias name the same parameter; give one", {
      details: { parameter: "logitBias", alias: "logit_bias" },
    });
  }
  const logitBias = resolveLogitBias(
    params.logitBias ?? params.logit_bias,
    params.logitBias !== undefined ? "logitBias" : "logit_bias",
  );

  const stopIn: unknown = params.stop;
  let stop: string[] = [];
  if (typeof stopIn === "string") stop = [stopIn];
  else if (Array.isArray(stopIn)) stop = [...(stopIn as unknown[])] as string[];
  else if (stopIn !== undefined) throw invalid("stop", "a string or an array of strings", stopIn);
  stop.forEach((s, i) => {
    if (typeof s !== "string" || s.length === 0) throw invalid(`stop[${i}]`, "a non-empty string", s);
  });

  return {
    temperature,
    topK,
    topP,
    minP,
    typicalP,
    topNSigma,
    repeatPenalty,
    repeatLastN,
    presencePenalty,
    frequencyPenalty,
    dynatempRange,
    dynatempExponent,
    xtcProbability,
    xtcThreshold,
    minKeep,
    seed,
    logitBias,
    stop,
    maxTokens,
  };
}

/** A random uint32 seed other than LLAMA_DEFAULT_SEED (get_rng_seed's std::random_device). */
export function randomSeed(): number {
  const u = new Uint32Array(1);
  do crypto.getRandomValues(u);
  while (u[0] === LLAMA_DEFAULT_SEED);
  return u[0]!;
}

export interface SamplerOptions {
  /** Vocabulary size: checks logit bias ids now and allocates scratch up front. */
  nVocab?: number;
}

/**
 * A sampling chain with its state: the RNGs (dist and XTC, both seeded with `seed`) and the
 * tokens accepted so far (the penalty window when sample() gets no history). Per call it
 * allocates nothing once the vocabulary size is known.
 */
export class Sampler {
  readonly params: ResolvedSamplerParams;
  private seedCur: number;
  private readonly rng = new Mt19937();
  private readonly xtcRng = new Mt19937();
  private cand: Candidates | undefined;
  private counts: Int32Array | undefined;
  private readonly biasIds: Int32Array;
  private readonly biasValues: Float32Array;
  private accepted: number[] = [];
  /** temperature <= 0 without the stages that may drop the maximum (XTC, typical-p): argmax. */
  private readonly plainGreedy: boolean;
  /** Whether the penalties are on (a window and a penalty other than neutral). */
  private readonly penalties: boolean;
  /** The logits of the last sample() when it left the candidates unloaded (see candidates). */
  private unloaded: Float32Array | undefined;

  constructor(params: SamplerParams = {}, options: SamplerOptions = {}) {
    this.params = resolveSamplerParams(params);
    const p = this.params;
    const xtcOn = p.xtcProbability > 0 && p.xtcThreshold <= 0.5;
    this.plainGreedy = p.temperature <= 0 && !xtcOn && p.typicalP >= 1;
    this.penalties =
      p.repeatLastN !== 0 && !(p.repeatPenalty === 1 && p.frequencyPenalty === 0 && p.presencePenalty === 0);
    this.biasIds = Int32Array.from(this.params.logitBias, (e) => e[0]);
    this.biasValues = Float32Array.from(this.params.logitBias, (e) => e[1]);
    this.seedCur = this.params.seed ?? randomSeed();
    this.rng.seed(this.seedCur);
    this.xtcRng.seed(this.seedCur);
    if (options.nVocab !== undefined) this.ensureVocab(options.nVocab);
  }

  /** The seed in use: the one asked for, or the random one drawn (report it to reproduce a run). */
  get seed(): number {
    return this.seedCur;
  }

  /** Whether this sampler takes the argmax (temperature <= 0). */
  get greedy(): boolean {
    return this.params.temperature <= 0;
  }

  /**
   * The candidates after the last sample() (llama.cpp's cur_p): ids, logits, probabilities.
   * NOTE: after a greedy sample() that changed no logit (no bias, no penalty), they are loaded
   * here, on first read, from the logits array that sample() was given.
   */
  get candidates(): Candidates | undefined {
    if (this.unloaded !== undefined) {
      this.cand!.load(this.unloaded);
      this.unloaded = undefined;
    }
    return this.cand;
  }

  /** Tokens accepted since the last reset: at least the last repeatLastN (none when it is 0). */
  get history(): readonly number[] {
    return this.accepted;
  }

  /**
   * Choose the next token from `logits` (V). The penalties look at the last repeatLastN tokens of
   * `history` (the prompt and what was generated, as llama-server feeds them), or, without it, at
   * the tokens given to accept().
   */
  sample(logits: Float32Array, history?: readonly number[]): number {
    const V = logits.length;
    if (V === 0) throw invalid("logits", "a non-empty Float32Array", "an empty array");
    this.ensureVocab(V);
    const c = this.cand!;
    const p = this.params;
    const window = history ?? this.accepted;
    const penalize = this.penalties && window.length > 0;
    if (this.plainGreedy && this.biasIds.length === 0 && !penalize) {
      // Nothing changes a logit: the argmax of `logits` itself; the candidates are loaded only
      // if they are asked for (the getter).
      this.unloaded = logits;
      return argmaxF32(logits);
    }
    this.unloaded = undefined;
    c.load(logits);
    if (this.biasIds.length > 0) applyLogitBias(c, this.biasIds, this.biasValues);

    if (penalize) {
      const start = p.repeatLastN < 0 ? 0 : Math.max(0, window.length - p.repeatLastN);
      for (let i = start; i < window.length; i++) {
        const t = window[i]!;
        if (!Number.isInteger(t) || t < 0 || t >= V) {
          throw new OwlError(
            "ERR_TOKEN_OUT_OF_RANGE",
            `history token ${t} at index ${i} is not in the vocabulary (ids 0..${V - 1})`,
            { details: { token: t, index: i, V } },
          );
        }
      }
      applyPenalties(
        c,
        window,
        start,
        window.length,
        p.repeatPenalty,
        p.frequencyPenalty,
        p.presencePenalty,
        this.counts!,
      );
    }

    if (this.plainGreedy) {
      // llama_sampler_greedy on the untouched candidate order (ids 0..V-1): the first maximum.
      return argmaxF32(c.logit);
    }

    const xtcOn = p.xtcProbability > 0 && p.xtcThreshold <= 0.5;
    applyTopNSigma(c, p.topNSigma);
    // Nothing before top-k reorders the candidates: they are in id order.
    applyTopKInOrder(c, p.topK);
    applyTypicalP(c, p.typicalP, p.minKeep);
    applyTopP(c, p.topP, p.minKeep);
    applyMinP(c, p.minP, p.minKeep);
    if (xtcOn) applyXtc(c, p.xtcProbability, p.xtcThreshold, p.minKeep, this.xtcRng);
    if (p.temperature <= 0) return c.ids[argmaxPosition(c)]!;
    applyTempExt(c, p.temperature, p.dynatempRange, p.dynatempExponent);
    return c.ids[sampleDist(c, this.rng)]!;
  }

  /** Record a token as generated (llama_sampler_accept): it joins the penalty window. */
  accept(token: number): void {
    const n = this.params.repeatLastN;
    if (n === 0) return;
    this.accepted.push(token);
    if (n > 0 && this.accepted.length > 2 * n + 64) this.accepted = this.accepted.slice(-n);
  }

  /**
   * Forget accepted tokens and restart the RNGs (llama_sampler_reset): from the same seed, or from
   * a new random one when none was asked for (as llama.cpp's get_rng_seed does).
   */
  reset(): void {
    this.accepted = [];
    if (this.params.seed === undefined) this.seedCur = randomSeed();
    this.rng.seed(this.seedCur);
    this.xtcRng.seed(this.seedCur);
  }

  private ensureVocab(V: number): void {
    if (this.cand?.nVocab === V) return;
    const last = this.biasIds.length > 0 ? this.biasIds[this.biasIds.length - 1]! : -1;
    if (last >= V) {
      throw invalid("logit bias token id", `below the vocabulary size ${V}`, last);
    }
    this.cand = new Candidates(V);
    this.counts = new Int32Array(V);
  }
}
