/**
 * The generation loop: evaluate -> sample -> decode, until an end-of-generation token, a stop
 * string or the token limit, yielding each token with the text that may be shown so far.
 *
 *   const session = model.createSession();
 *   const sampler = new Sampler({ temperature: 0.8, seed: 42, stop: ["\n\n"], num_predict: 64 });
 *   const decoder = tokenizer.streamingDecoder();
 *   for await (const step of generate({
 *     prompt, sampler, decoder,
 *     evaluate: (tokens) => session.evaluate(tokens).logits,
 *     stopTokens: (id) => tokenizer.isEog(id),
 *   })) show(step.text);
 *
 * As in llama-server: the penalties see the prompt and the generated tokens; an end-of-generation
 * token ends the text without being decoded into it; the text stops right before a stop string
 * (held back while it could still be one); the token limit counts generated tokens.
 * Not here: the sampler (sampler.ts), stop-string matching (sampler-stop.ts), the forward pass.
 */
import { OwlError } from "../util/errors.ts";
import type { Sampler } from "./sampler.ts";
import { StopMatcher } from "./sampler-stop.ts";

/** Turns token ids into text one at a time (the tokenizer's StreamingDecoder fits). */
export interface TokenDecoder {
  push(id: number): string;
  /** End of stream: what the decoder still holds (an incomplete character, as U+FFFD). */
  flush?(): string;
}

export interface GenerateOptions {
  /** Prompt token ids; must not be empty. */
  prompt: readonly number[];
  /**
   * Logits (V) after the last of `tokens`, the whole sequence so far (prompt first). A Session's
   * evaluate() reuses its cached prefix, so each call runs only the new token. The array is read
   * (sampled from) before the next call, never after: it may be one buffer that every call
   * rewrites (Session.evaluate's logitsOut).
   */
  evaluate: (tokens: readonly number[], signal?: AbortSignal) => Float32Array | Promise<Float32Array>;
  sampler: Sampler;
  /** Without a decoder, steps carry no text and stop strings are not looked for. */
  decoder?: TokenDecoder;
  /** End-of-generation tokens (EOS, EOT, ...): a set, a list or a predicate. */
  stopTokens?: ReadonlySet<number> | readonly number[] | ((id: number) => boolean);
  /** Stop strings; default the sampler's `stop`. */
  stop?: readonly string[];
  /** Most tokens to generate; default the sampler's maxTokens / num_predict (-1: no limit). */
  maxTokens?: number;
  signal?: AbortSignal;
}

export interface GenerateStep {
  /** The token generated, or null for the text left in the decoder and the stop matcher at the end. */
  token: number | null;
  /** Text that may be shown now ("" while it could still begin a stop string). */
  text: string;
}

export type StopReason = "eog" | "stop" | "length";

export interface GenerateResult {
  /** Generated tokens, the one that completed a stop string included, an end-of-generation one not. */
  tokens: number[];
  /** All the text yielded. */
  text: string;
  stopReason: StopReason;
  /** The end-of-generation token that ended it. */
  eogToken?: number;
  /** The stop string that ended it. */
  stop?: string;
  /** The sampler's seed (to reproduce the run). */
  seed: number;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new OwlError("ERR_ABORTED", "generation was aborted", { cause: signal.reason });
}

function eogTest(stopTokens: GenerateOptions["stopTokens"]): (id: number) => boolean {
  if (stopTokens === undefined) return () => false;
  if (typeof stopTokens === "function") return stopTokens;
  const set = stopTokens instanceof Set ? stopTokens : new Set(stopTokens as readonly number[]);
  return (id) => set.has(id);
}

/** Generate after `prompt`; yields each token and its showable text, returns the summary. */
export async function* generate(
  options: GenerateOptions,
): AsyncGenerator<GenerateStep, GenerateResult, void> {
  const { sampler, decoder, signal } = options;
  if (options.prompt.length === 0) {
    throw new OwlError("ERR_INVALID_ARGUMENT", "generate needs a prompt of at least one token (BOS)");
  }
  const maxTokens = options.maxTokens ?? sampler.params.maxTokens;
  if (!Number.isInteger(maxTokens) || maxTokens < -1) {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `maxTokens must be an integer >= -1 (-1 = no limit), found ${maxTokens}`,
      {
        details: { parameter: "maxTokens", expected: "an integer >= -1", found: maxTokens },
      },
    );
  }
  const stops = options.stop ?? sampler.params.stop;
  for (const [i, s] of stops.entries()) {
    if (typeof s !== "string" || s.length === 0) {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `stop[${i}] must be a non-empty string, found ${JSON.stringify(s)}`,
        {
          details: { parameter: "stop", expected: "non-empty strings", found: s },
        },
      );
    }
  }
  const isEog = eogTest(options.stopTokens);
  const matcher = decoder ? new StopMatcher(stops) : undefined;
  const seq = [...options.prompt];
  const tokens: number[] = [];
  let text = "";
  let stopReason: StopReason = "length";
  let eogToken: number | undefined;

  while (maxTokens < 0 || tokens.length < maxTokens) {
    checkAborted(signal);
    const logits = await options.evaluate(seq, signal);
    checkAborted(signal);
    const token = sampler.sample(logits, seq);
    sampler.accept(token);
    if (isEog(token)) {
      stopReason = "eog";
      eogToken = token;
      break;
    }
    seq.push(token);
    tokens.push(token);
    if (!decoder || !matcher) {
      yield { token, text: "" };
      continue;
    }
    const r = matcher.push(decoder.push(token));
    text += r.text;
    yield { token, text: r.text };
    if (r.stopped) {
      const result: GenerateResult = { tokens, text, stopReason: "stop", seed: sampler.seed };
      if (r.stop !== undefined) result.stop = r.stop;
      return result;
    }
  }

  const result: GenerateResult = { tokens, text, stopReason, seed: sampler.seed };
  if (eogToken !== undefined) result.eogToken = eogToken;
  if (decoder && matcher) {
    // What the decoder still held may complete a stop string; otherwise the held text is shown.
    const r = matcher.push(decoder.flush?.() ?? "");
    const rest = r.stopped ? r.text : r.text + matcher.flush();
    if (r.stopped) {
      result.stopReason = "stop";
      if (r.stop !== undefined) result.stop = r.stop;
    }
    if (rest.length > 0) {
      result.text += rest;
      yield { token: null, text: rest };
    }
  }
  return result;
}
