/**
 * The generation parameters of `owl run` and its chat: Ollama's option names (temperature,
 * num_predict, top_k, ...), Ollama's defaults (runtime/options.ts OLLAMA_DEFAULTS, the values the
 * server uses too; num_ctx the server's default context, OWL_CONTEXT_LENGTH), and the checks that turn a bad value into an error
 * naming the flag (or /set parameter name), the range expected and the value found.
 * Flags are the names in kebab-case (--num-predict); /set parameter takes either spelling.
 * Not here: sampling itself (engine/sampler.ts), the backends (run-backend.ts).
 */
import { OLLAMA_DEFAULTS } from "../runtime/options.ts";
import { defaultContextLength } from "../util/env.ts";
import { OwlError } from "../util/errors.ts";

export interface RunParams {
  temperature: number;
  /** -1: until an end-of-generation token or a full context; a count may go past a full context,
   * which then shifts (num_keep). */
  num_predict: number;
  /** undefined: a random seed per generation. */
  seed: number | undefined;
  top_k: number;
  top_p: number;
  min_p: number;
  typical_p: number;
  /** undefined: not given, Ollama's default (1, off) here and the server's (a model's PARAMETER)
   * through a server; a given value applies at any temperature, greedy too (llama.cpp's chain
   * penalizes before it picks, as Ollama's runner does). */
  repeat_penalty: number | undefined;
  repeat_last_n: number;
  presence_penalty: number;
  frequency_penalty: number;
  /** Context length asked for; the backends cap it at the model's training context. */
  num_ctx: number;
  /** Tokens of the prompt's start kept when a full context shifts (-1: the whole prompt). */
  num_keep: number;
  stop: string[];
}

/** Ollama's defaults (api/types.go DefaultOptions, through OLLAMA_DEFAULTS); num_ctx the server's. */
export function defaultRunParams(): RunParams {
  const d = OLLAMA_DEFAULTS;
  return {
    temperature: d.temperature,
    num_predict: d.num_predict,
    seed: undefined,
    top_k: d.top_k,
    top_p: d.top_p,
    min_p: d.min_p,
    typical_p: d.typical_p,
    repeat_penalty: undefined,
    repeat_last_n: d.repeat_last_n,
    presence_penalty: d.presence_penalty,
    frequency_penalty: d.frequency_penalty,
    num_ctx: defaultContextLength(),
    num_keep: d.num_keep,
    stop: [],
  };
}

/** The repeat penalty a generation uses (see RunParams.repeat_penalty). */
export function effectiveRepeatPenalty(p: RunParams): number {
  return p.repeat_penalty ?? OLLAMA_DEFAULTS.repeat_penalty;
}

type NumericName = Exclude<keyof RunParams, "stop">;

interface ParamSpec {
  name: NumericName;
  integer: boolean;
  ok: (x: number) => boolean;
  expected: string;
  description: string;
}

const finite = Number.isFinite;
const unit = (x: number) => x >= 0 && x <= 1;

export const NUMERIC_PARAMS: readonly ParamSpec[] = [
  {
    name: "temperature",
    integer: false,
    ok: (x) => finite(Math.fround(x)) && x >= 0,
    expected: "a number >= 0 (0 = greedy)",
    description: "randomness of sampling; 0 = greedy (always the most likely token)",
  },
  {
    name: "num_predict",
    integer: true,
    ok: (x) => x >= -1 && x <= Number.MAX_SAFE_INTEGER,
    expected: "an integer >= -1 (-1 = until the end of text or a full context)",
    description:
      "most tokens to generate; -1 = until the model ends the text or the context is full (a count past the context shifts it)",
  },
  {
    name: "seed",
    integer: true,
    ok: (x) => x >= -1 && x <= 0xffffffff,
    expected: "an integer in [0, 4294967295] (-1 = random)",
    description: "random seed (same seed, same text); -1 = random",
  },
  {
    name: "top_k",
    integer: true,
    ok: (x) => x >= 0 && x <= 0x7fffffff,
    expected: "an integer >= 0 (0 = off)",
    description: "sample among the k most likely tokens; 0 = off",
  },
  {
    name: "top_p",
    integer: false,
    ok: unit,
    expected: "a number in [0, 1] (1 = off)",
    description: "nucleus sampling: the smallest set of tokens whose probabilities reach p",
  },
  {
    name: "min_p",
    integer: false,
    ok: unit,
    expected: "a number in [0, 1] (0 = off)",
    description: "drop tokens less likely than min_p times the most likely one",
  },
  {
    name: "typical_p",
    integer: false,
    ok: unit,
    expected: "a number in [0, 1] (1 = off)",
    description: "locally typical sampling (owl backend only)",
  },
  {
    name: "repeat_penalty",
    integer: false,
    ok: (x) => finite(x) && x > 0 && finite(Math.fround(1 / Math.fround(x))) && Math.fround(x) > 0,
    expected: "a number > 0 (1 = off)",
    description: `penalty for tokens seen in the last repeat_last_n (default ${OLLAMA_DEFAULTS.repeat_penalty}, off, as Ollama)`,
  },
  {
    name: "repeat_last_n",
    integer: true,
    ok: (x) => x >= -1 && x <= 0x7fffffff,
    expected: "an integer >= -1 (0 = off, -1 = the whole context)",
    description: "how many recent tokens the penalties look at; 0 = off, -1 = all",
  },
  {
    name: "presence_penalty",
    integer: false,
    ok: finite,
    expected: "a finite number (0 = off)",
    description: "subtracted from the logit of each token present in the window",
  },
  {
    name: "frequency_penalty",
    integer: false,
    ok: finite,
    expected: "a finite number (0 = off)",
    description: "times a token's count in the window, subtracted from its logit",
  },
  {
    name: "num_ctx",
    integer: true,
    ok: (x) => x >= 1 && x <= 0x7fffffff,
    expected: "an integer >= 1",
    description: "context length (capped at the model's)",
  },
  {
    name: "num_keep",
    integer: true,
    ok: (x) => x >= -1 && x <= 0x7fffffff,
    expected: "an integer >= -1 (-1 = the whole prompt)",
    description: "when the context is full: tokens of the prompt's start kept, then half of the rest dropped",
  },
];

/** All parameter names, for /show parameters and /set. */
export const PARAM_NAMES: readonly (keyof RunParams)[] = [...NUMERIC_PARAMS.map((p) => p.name), "stop"];

/** "num_predict" -> "--num-predict". */
export function flagName(name: string): string {
  return `--${name.replaceAll("_", "-")}`;
}

/** A parameter name from a flag or /set spelling ("num-predict", "num_predict"), or undefined. */
export function paramName(name: string): keyof RunParams | undefined {
  const n = name.replace(/^--/, "").replaceAll("-", "_").toLowerCase();
  return (PARAM_NAMES as readonly string[]).includes(n) ? (n as keyof RunParams) : undefined;
}

/** Parse and check one value; `label` names it in errors ("--top-p", "parameter top_p"). */
export function parseParamValue(name: NumericName, raw: string, label: string): number | undefined {
  const spec = NUMERIC_PARAMS.find((p) => p.name === name)!;
  const text = raw.trim();
  const value = text === "" ? Number.NaN : Number(text);
  if (!Number.isFinite(value) || (spec.integer && !Number.isInteger(value)) || !spec.ok(value)) {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `${label} must be ${spec.expected}, found ${JSON.stringify(raw)}`,
      {
        details: { parameter: name, expected: spec.expected, found: raw },
      },
    );
  }
  if (name === "seed" && value === -1) return undefined;
  return value;
}

/** Set a parameter from text (a flag value or /set parameter); stop appends. */
export function setParam(params: RunParams, name: keyof RunParams, raw: string, label: string): void {
  if (name === "stop") {
    if (raw.length === 0) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `${label} must be a non-empty string, found ""`, {
        details: { parameter: "stop", expected: "a non-empty string", found: raw },
      });
    }
    params.stop.push(raw);
    return;
  }
  const v = parseParamValue(name, raw, label);
  if (name === "seed" || name === "repeat_penalty") params[name] = v;
  else params[name] = v!;
}

/** "name value" lines for /show parameters and --verbose. */
export function formatParams(params: RunParams): string {
  const width = Math.max(...PARAM_NAMES.map((n) => n.length)) + 2;
  const lines: string[] = [];
  for (const name of PARAM_NAMES) {
    let v: string;
    if (name === "stop")
      v = params.stop.length === 0 ? "(none)" : params.stop.map((s) => JSON.stringify(s)).join(" ");
    else if (name === "seed") v = params.seed === undefined ? "-1 (random)" : String(params.seed);
    else if (name === "repeat_penalty")
      v =
        params.repeat_penalty === undefined
          ? `${effectiveRepeatPenalty(params)} (default)`
          : String(params.repeat_penalty);
    else v = String(params[name]);
    lines.push(`  ${name.padEnd(width)}${v}\n`);
  }
  return lines.join("");
}

/**
 * The options of an Ollama request (/api/generate, /api/chat) for these parameters, as
 * `ollama run` sends them: only what differs from Ollama's defaults (so a stored model's
 * Modelfile PARAMETERs and the server's num_ctx apply otherwise), repeat_penalty only when given,
 * seed only when fixed, stop only when set.
 */
export function serverOptions(params: RunParams): Record<string, number | string[]> {
  const defaults = defaultRunParams();
  const out: Record<string, number | string[]> = {};
  for (const spec of NUMERIC_PARAMS) {
    const v = params[spec.name];
    if (v === undefined) continue;
    if (spec.name === "seed" || spec.name === "repeat_penalty" || v !== defaults[spec.name])
      out[spec.name] = v;
  }
  if (params.stop.length > 0) out.stop = [...params.stop];
  return out;
}
