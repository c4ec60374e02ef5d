/**
 * Request options of both HTTP APIs, resolved and checked: Ollama's `options` object (the fields
 * of api/types.go Options and Runner) over the Modelfile PARAMETERs over Ollama's DefaultOptions;
 * the OpenAI chat/completions parameters mapped onto the same form the way Ollama's compatibility
 * layer does (openai/openai.go: temperature and top_p default to 1, max_tokens -> num_predict);
 * Ollama's `format` and OpenAI's `response_format` as a GrammarSpec; keep_alive durations.
 * Not here: prompt rendering (prompt.ts), tool calls (tool-calls.ts), HTTP shapes (api/).
 *
 * Like Ollama, an unknown option key is not an error but a warning (Ollama logs "invalid option
 * provided"); the caller logs `warnings`. Unlike Ollama, values are range-checked: a negative
 * num_ctx or a top_p of 3 is ERR_BAD_REQUEST naming the field, what was expected and what was
 * found, where Ollama would pass it on to the runner.
 */
import { z } from "zod";
import type { ResolvedModel } from "../store/types.ts";
import { OwlError, type OwlErrorCode } from "../util/errors.ts";
import type { GrammarSpec, SamplingOptions } from "./types.ts";

/** The largest num_ctx accepted (16 Mi tokens); anything beyond is a typo, not a context. */
export const MAX_NUM_CTX = 1 << 24;

/**
 * Ollama's DefaultOptions (api/types.go), the one source of owl's defaults: the server's and
 * `owl run`'s (cli/run-params.ts). NOTE: repeat_penalty is 1.0 (off): Ollama changed it from 1.1
 * in commit 6a261db7 ("api: stop applying repeat_penalty 1.1 to models that don't set one",
 * 2026-08-11), as llama.cpp did in 2024; a model that wants a penalty sets it as a PARAMETER.
 * min_p is not set there (Go's zero value, 0); seed -1 is a random seed. num_ctx is not here:
 * Ollama's comes from OLLAMA_CONTEXT_LENGTH (envconfig), owl's from OWL_CONTEXT_LENGTH.
 */
export const OLLAMA_DEFAULTS = {
  num_keep: 4,
  num_predict: -1,
  seed: -1,
  temperature: 0.8,
  top_k: 40,
  top_p: 0.9,
  min_p: 0,
  typical_p: 1,
  repeat_last_n: 64,
  repeat_penalty: 1,
  presence_penalty: 0,
  frequency_penalty: 0,
  num_batch: 512,
} as const;

/** Options that only matter when the model is loaded (Ollama's Runner). */
export interface RunnerOptions {
  /** undefined: the server's default (OWL_CONTEXT_LENGTH). */
  numCtx: number | undefined;
  numBatch: number;
  /** undefined: the backend's default. */
  numThread: number | undefined;
  useMmap: boolean | undefined;
}

export interface ResolvedOptions {
  sampling: SamplingOptions;
  /** -1: until end of generation or a full context (Ollama's -2, "fill the context", maps here too). */
  maxTokens: number;
  /** undefined: the server's default (OWL_CONTEXT_LENGTH). */
  numCtx: number | undefined;
  stop: string[];
  /** Tokens of the prompt start kept when the context shifts (Ollama's num_keep). */
  numKeep: number;
  runner: RunnerOptions;
  /** Constrained output (Ollama format, OpenAI response_format). */
  grammar?: GrammarSpec;
  /** undefined: no logprobs; 0: the chosen token's; n: plus the top n (OpenAI only here). */
  logprobs?: number;
  /** Things ignored, for the server's log: unknown option names, unsupported options. */
  warnings: string[];
}

type Value = number | boolean | string | string[];

interface OptionSpec {
  schema: z.ZodType;
  expected: string;
  /** Known to Ollama (now or in older versions) but without effect in owl: warn when set. */
  ignored?: string;
}

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.number().int().min(min).max(max);
const unitInterval = z.number().min(0).max(1);
const bool = z.boolean();
/** A float32 in Go: a finite number whose float32 rounding is finite too. */
const float32 = z.number().refine((x) => Number.isFinite(Math.fround(x)));

/** Every option of Ollama's Options and Runner (api/types.go), plus the ones older Ollamas had. */
export const OLLAMA_OPTION_SPECS: Readonly<Record<string, OptionSpec>> = {
  num_ctx: { schema: int(1, MAX_NUM_CTX), expected: `an integer in [1, ${MAX_NUM_CTX}]` },
  num_batch: { schema: int(1, MAX_NUM_CTX), expected: `an integer in [1, ${MAX_NUM_CTX}]` },
  num_gpu: {
    schema: int(-1, 1 << 20),
    expected: "an integer >= -1",
    ignored: "owl runs on the CPU",
  },
  main_gpu: { schema: int(0, 1 << 20), expected: "an integer >= 0", ignored: "owl runs on the CPU" },
  use_mmap: { schema: bool, expected: "a boolean" },
  num_thread: { schema: int(0, 1 << 16), expected: "an integer in [0, 65536] (0 = the default)" },
  draft_num_predict: {
    schema: int(0, 1 << 20),
    expected: "an integer >= 0",
    ignored: "owl has no draft model",
  },
  num_keep: { schema: int(-1), expected: "an integer >= -1 (-1 = the whole prompt)" },
  seed: { schema: int(Number.MIN_SAFE_INTEGER), expected: "an integer (negative = random)" },
  num_predict: {
    schema: int(-2),
    expected: "an integer >= -2 (-1 = until the end of text, -2 = fill the context)",
  },
  top_k: { schema: int(-1, 0x7fffffff), expected: "an integer in [-1, 2147483647] (<= 0 = off)" },
  top_p: { schema: unitInterval, expected: "a number in [0, 1] (1 = off)" },
  min_p: { schema: unitInterval, expected: "a number in [0, 1] (0 = off)" },
  typical_p: { schema: unitInterval, expected: "a number in [0, 1] (1 = off)" },
  repeat_last_n: {
    schema: int(-1, 0x7fffffff),
    expected: "an integer >= -1 (0 = off, -1 = the whole context)",
  },
  temperature: { schema: float32.pipe(z.number().min(0)), expected: "a number >= 0 (0 = greedy)" },
  repeat_penalty: {
    schema: float32.pipe(z.number().gt(0)),
    expected: "a number > 0 (1 = off)",
  },
  presence_penalty: { schema: float32, expected: "a finite number (0 = off)" },
  frequency_penalty: { schema: float32, expected: "a finite number (0 = off)" },
  stop: { schema: z.array(z.string()), expected: "an array of strings" },
  // Older Ollamas (and many clients) still send these; Ollama itself now warns and ignores them.
  mirostat: {
    schema: int(0, 2),
    expected: "0, 1 or 2",
    ignored: "mirostat sampling is not supported",
  },
  mirostat_tau: { schema: float32, expected: "a finite number", ignored: "mirostat is not supported" },
  mirostat_eta: { schema: float32, expected: "a finite number", ignored: "mirostat is not supported" },
  tfs_z: { schema: float32, expected: "a finite number", ignored: "tail-free sampling is not supported" },
  penalize_newline: { schema: bool, expected: "a boolean", ignored: "no longer an option in Ollama" },
  numa: { schema: bool, expected: "a boolean", ignored: "no longer an option in Ollama" },
  low_vram: { schema: bool, expected: "a boolean", ignored: "no longer an option in Ollama" },
  f16_kv: { schema: bool, expected: "a boolean", ignored: "no longer an option in Ollama" },
  logits_all: { schema: bool, expected: "a boolean", ignored: "no longer an option in Ollama" },
  vocab_only: { schema: bool, expected: "a boolean", ignored: "no longer an option in Ollama" },
  use_mlock: { schema: bool, expected: "a boolean", ignored: "no longer an option in Ollama" },
};

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string")
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  if (Array.isArray(value)) return `an array (${JSON.stringify(value).slice(0, 80)})`;
  return `an object (${JSON.stringify(value).slice(0, 80)})`;
}

function bad(code: OwlErrorCode, field: string, expected: string, found: unknown): OwlError {
  return new OwlError(code, `${field} must be ${expected}, found ${describe(found)}`, {
    details: { field, expected, found },
  });
}

/** Check one option value against its spec; `label` names it ("options.top_p", "PARAMETER top_p"). */
function checkOption(key: string, value: unknown, label: string, code: OwlErrorCode): Value {
  const spec = OLLAMA_OPTION_SPECS[key];
  if (spec === undefined) throw new Error(`internal error: no spec for option ${key}`);
  const r = spec.schema.safeParse(value);
  if (!r.success) throw bad(code, label, spec.expected, value);
  return r.data as Value;
}

/** Layered option values (later layers win), checked. */
type OptionMap = Map<string, Value>;

function applyLayer(
  into: OptionMap,
  layer: Readonly<Record<string, unknown>> | undefined,
  source: "request" | "modelfile",
  warnings: string[],
): void {
  if (layer === undefined) return;
  for (const [key, value] of Object.entries(layer)) {
    // Ollama skips a null option (api/types.go FromMap).
    if (value === null || value === undefined) continue;
    const spec = OLLAMA_OPTION_SPECS[key];
    const label = source === "request" ? `options.${key}` : `Modelfile PARAMETER ${key}`;
    if (spec === undefined) {
      warnings.push(`invalid option provided: ${label} is not an Ollama option; ignored`);
      continue;
    }
    const checked = checkOption(
      key,
      value,
      label,
      source === "request" ? "ERR_BAD_REQUEST" : "ERR_MODELFILE_PARSE",
    );
    if (spec.ignored !== undefined) warnings.push(`${label}: ${spec.ignored}; ignored`);
    into.set(key, checked);
  }
}

function num(m: OptionMap, key: keyof typeof OLLAMA_DEFAULTS): number {
  const v = m.get(key);
  return typeof v === "number" ? v : OLLAMA_DEFAULTS[key];
}

function optNum(m: OptionMap, key: string): number | undefined {
  const v = m.get(key);
  return typeof v === "number" ? v : undefined;
}

/** A seed as llama.cpp takes it: negative = random; others wrap to uint32 as Go's uint32() does. */
function resolveSeed(seed: number | undefined): number | undefined {
  if (seed === undefined || seed < 0) return undefined;
  return seed % 0x1_0000_0000;
}

function finish(m: OptionMap, warnings: string[], extra: Partial<ResolvedOptions> = {}): ResolvedOptions {
  const stop = ((m.get("stop") as string[] | undefined) ?? []).filter((s) => {
    if (s !== "") return true;
    warnings.push("an empty stop string would end every generation at once; ignored");
    return false;
  });
  const maxTokens = num(m, "num_predict");
  const numThread = optNum(m, "num_thread");
  const useMmap = m.get("use_mmap");
  return {
    sampling: {
      temperature: num(m, "temperature"),
      topK: num(m, "top_k"),
      topP: num(m, "top_p"),
      minP: num(m, "min_p"),
      typicalP: num(m, "typical_p"),
      repeatPenalty: num(m, "repeat_penalty"),
      repeatLastN: num(m, "repeat_last_n"),
      presencePenalty: num(m, "presence_penalty"),
      frequencyPenalty: num(m, "frequency_penalty"),
      seed: resolveSeed(num(m, "seed")),
      logitBias: new Map(),
    },
    maxTokens: maxTokens < 0 ? -1 : maxTokens,
    numCtx: optNum(m, "num_ctx"),
    stop,
    numKeep: num(m, "num_keep"),
    runner: {
      numCtx: optNum(m, "num_ctx"),
      numBatch: num(m, "num_batch"),
      numThread: numThread === undefined || numThread === 0 ? undefined : numThread,
      useMmap: typeof useMmap === "boolean" ? useMmap : undefined,
    },
    warnings,
    ...extra,
  };
}

function asObject(value: unknown, field: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value))
    throw bad("ERR_BAD_REQUEST", field, "an object", value);
  return value as Record<string, unknown>;
}

export interface OllamaOptionsInput {
  /** The request's `options` object (unknown: checked here). */
  options?: unknown;
  /** The request's `format` ("json", a JSON schema object, or ""/null for none). */
  format?: unknown;
  /** The model's Modelfile PARAMETERs (ResolvedModel.params). */
  params?: ResolvedModel["params"];
}

/**
 * Ollama's precedence: request options > Modelfile PARAMETERs > DefaultOptions. A request's `stop`
 * replaces the Modelfile's (Ollama's FromMap sets the whole slice).
 */
export function resolveOllamaOptions(input: OllamaOptionsInput): ResolvedOptions {
  const warnings: string[] = [];
  const m: OptionMap = new Map();
  applyLayer(m, input.params, "modelfile", warnings);
  applyLayer(m, asObject(input.options, "options"), "request", warnings);
  const grammar = formatToGrammar(input.format);
  return finish(m, warnings, grammar === undefined ? {} : { grammar });
}

/** Ollama's `format`: "json" -> any JSON object; a JSON schema object -> that schema; ""/null -> none. */
export function formatToGrammar(format: unknown): GrammarSpec | undefined {
  if (format === undefined || format === null || format === "") return undefined;
  if (format === "json") return { type: "json" };
  if (typeof format === "object" && !Array.isArray(format)) return { type: "json_schema", schema: format };
  throw bad("ERR_BAD_REQUEST", "format", `"json" or a JSON schema object`, format);
}

/** The parameters of OpenAI's chat/completions and completions requests that shape generation. */
export interface OpenAIOptionsInput {
  temperature?: unknown;
  top_p?: unknown;
  max_tokens?: unknown;
  max_completion_tokens?: unknown;
  stop?: unknown;
  seed?: unknown;
  frequency_penalty?: unknown;
  presence_penalty?: unknown;
  logit_bias?: unknown;
  n?: unknown;
  response_format?: unknown;
  /** chat: boolean; completions: an integer 0..5 (the number of top logprobs). */
  logprobs?: unknown;
  /** chat: 0..20, with logprobs: true. */
  top_logprobs?: unknown;
}

function openaiField<T>(
  body: Record<string, unknown>,
  key: string,
  schema: z.ZodType<T>,
  expected: string,
): T | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  const r = schema.safeParse(value);
  if (!r.success) throw bad("ERR_BAD_REQUEST", key, expected, value);
  return r.data;
}

/**
 * OpenAI request parameters -> the resolved form. As Ollama's compatibility layer: temperature and
 * top_p default to 1 (OpenAI's defaults) and override the Modelfile's; everything else not given
 * falls back to the Modelfile PARAMETERs and then Ollama's defaults. Ranges are OpenAI's
 * (temperature [0, 2], penalties [-2, 2], logit_bias values [-100, 100]); n must be 1.
 */
export function resolveOpenAIOptions(
  body: OpenAIOptionsInput,
  params: ResolvedModel["params"] | undefined,
  kind: "chat" | "completions",
): ResolvedOptions {
  const b = body as Record<string, unknown>;
  const warnings: string[] = [];
  const m: OptionMap = new Map();
  applyLayer(m, params, "modelfile", warnings);

  const n = openaiField(b, "n", z.number().int(), "1 (owl generates one choice per request)");
  if (n !== undefined && n !== 1)
    throw bad("ERR_BAD_REQUEST", "n", "1 (owl generates one choice per request)", n);

  m.set("temperature", openaiField(b, "temperature", z.number().min(0).max(2), "a number in [0, 2]") ?? 1);
  m.set("top_p", openaiField(b, "top_p", unitInterval, "a number in [0, 1]") ?? 1);
  const maxExpected = "an integer >= 1";
  const maxCompletion = openaiField(b, "max_completion_tokens", int(1), maxExpected);
  const maxTokens = openaiField(b, "max_tokens", int(1), maxExpected);
  // max_completion_tokens is the newer name; it wins when both are given.
  const limit = maxCompletion ?? maxTokens;
  if (limit !== undefined) m.set("num_predict", limit);
  const seed = openaiField(b, "seed", int(Number.MIN_SAFE_INTEGER), "an integer");
  if (seed !== undefined) m.set("seed", seed);
  const penalty = z.number().min(-2).max(2);
  const fp = openaiField(b, "frequency_penalty", penalty, "a number in [-2, 2]");
  if (fp !== undefined) m.set("frequency_penalty", fp);
  const pp = openaiField(b, "presence_penalty", penalty, "a number in [-2, 2]");
  if (pp !== undefined) m.set("presence_penalty", pp);
  const stop = openaiField(
    b,
    "stop",
    z.union([z.string(), z.array(z.string())]),
    "a string or an array of strings",
  );
  if (stop !== undefined) m.set("stop", typeof stop === "string" ? [stop] : stop);

  const extra: Partial<ResolvedOptions> = {};
  const grammar = responseFormatToGrammar(b["response_format"]);
  if (grammar !== undefined) extra.grammar = grammar;
  const logprobs = resolveOpenAILogprobs(b, kind);
  if (logprobs !== undefined) extra.logprobs = logprobs;
  const resolved = finish(m, warnings, extra);
  const bias = parseLogitBias(b["logit_bias"]);
  if (bias.size > 0) resolved.sampling = { ...resolved.sampling, logitBias: bias };
  return resolved;
}

function resolveOpenAILogprobs(b: Record<string, unknown>, kind: "chat" | "completions"): number | undefined {
  if (kind === "completions") {
    return openaiField(b, "logprobs", int(0, 5), "an integer in [0, 5]");
  }
  const on = openaiField(b, "logprobs", z.boolean(), "a boolean");
  const top = openaiField(b, "top_logprobs", int(0, 20), "an integer in [0, 20]");
  if (top !== undefined && top > 0 && on !== true) {
    throw bad("ERR_BAD_REQUEST", "logprobs", "true when top_logprobs is given", on ?? false);
  }
  return on === true ? (top ?? 0) : undefined;
}

/** OpenAI logit_bias: {"<token id>": bias in [-100, 100]}; -100 bans the token (-Infinity). */
export function parseLogitBias(value: unknown): Map<number, number> {
  const out = new Map<number, number>();
  const obj = asObject(value, "logit_bias");
  if (obj === undefined) return out;
  for (const [key, bias] of Object.entries(obj)) {
    if (!/^(0|[1-9][0-9]{0,9})$/.test(key) || Number(key) > 0x7fffffff) {
      throw bad("ERR_BAD_REQUEST", "logit_bias key", "a token id (a non-negative integer as a string)", key);
    }
    if (typeof bias !== "number" || !Number.isFinite(bias) || bias < -100 || bias > 100) {
      throw bad("ERR_BAD_REQUEST", `logit_bias["${key}"]`, "a number in [-100, 100]", bias);
    }
    out.set(Number(key), bias === -100 ? Number.NEGATIVE_INFINITY : bias);
  }
  return out;
}

/** Check logit_bias token ids against the model's vocabulary (once the model is known). */
export function checkLogitBias(logitBias: ReadonlyMap<number, number>, vocabSize: number): void {
  for (const token of logitBias.keys()) {
    if (token >= vocabSize) {
      throw bad(
        "ERR_BAD_REQUEST",
        "logit_bias key",
        `a token id below the vocabulary size ${vocabSize}`,
        String(token),
      );
    }
  }
}

/**
 * OpenAI response_format: {type:"text"} -> none; {type:"json_object"} -> any JSON object;
 * {type:"json_schema", json_schema:{name, schema, strict?}} -> that schema.
 */
export function responseFormatToGrammar(value: unknown): GrammarSpec | undefined {
  const rf = asObject(value, "response_format");
  if (rf === undefined) return undefined;
  const type = rf["type"];
  if (type === "text") return undefined;
  if (type === "json_object") return { type: "json" };
  if (type === "json_schema") {
    const js = asObject(rf["json_schema"], "response_format.json_schema");
    const schema = js?.["schema"];
    if (schema === undefined || schema === null || typeof schema !== "object" || Array.isArray(schema)) {
      throw bad("ERR_BAD_REQUEST", "response_format.json_schema.schema", "a JSON schema object", schema);
    }
    return { type: "json_schema", schema };
  }
  throw bad("ERR_BAD_REQUEST", "response_format.type", `"text", "json_object" or "json_schema"`, type);
}

/** Keep the model loaded forever (ModelRequest.keepAliveMs: negative). */
export const KEEP_ALIVE_FOREVER = -1;

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's time.ParseDuration, in milliseconds (fractions kept); undefined when the text is not one. */
export function parseGoDuration(text: string): number | undefined {
  const m = /^([+-]?)(.*)$/s.exec(text);
  if (m === null) return undefined;
  const sign = m[1] === "-" ? -1 : 1;
  const rest = m[2] ?? "";
  if (rest === "0") return 0;
  if (rest === "") return undefined;
  const part = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < rest.length) {
    part.lastIndex = pos;
    const p = part.exec(rest);
    if (p === null) return undefined;
    total += Number(p[1]) * DURATION_UNITS_MS[p[2]!]!;
    pos = part.lastIndex;
  }
  // Go's Duration is an int64 of nanoseconds: about 292 years at most.
  if (total > 9.2e15 / 1e3) return undefined;
  return sign * total;
}

/**
 * Ollama's keep_alive (api/types.go Duration): a Go duration string ("5m", "1h30m", "10s") or a
 * number of seconds; negative: forever (KEEP_ALIVE_FOREVER); 0: unload when the request ends.
 * undefined/null: undefined (the server's default). A string of digits counts as seconds, as
 * Ollama's OLLAMA_KEEP_ALIVE does. Anything else: ERR_BAD_REQUEST.
 */
export function parseKeepAlive(value: unknown, field = "keep_alive"): number | undefined {
  if (value === undefined || value === null) return undefined;
  let ms: number | undefined;
  if (typeof value === "number" && Number.isFinite(value)) ms = value * 1000;
  else if (typeof value === "string") {
    const t = value.trim();
    ms = /^[+-]?\d+$/.test(t) ? Number(t) * 1000 : parseGoDuration(t);
  }
  if (ms === undefined) {
    throw bad(
      "ERR_BAD_REQUEST",
      field,
      `a duration such as "5m", "1h30m" or "10s", or a number of seconds (negative = forever)`,
      value,
    );
  }
  // NOTE: beyond Go's largest Duration (about 292 years) is forever too.
  if (ms < 0 || ms > 9.2e12) return KEEP_ALIVE_FOREVER;
  return Math.round(ms);
}
