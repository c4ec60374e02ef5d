/**
 * One generation for the OpenAI routes: resolve the model, map the request's parameters
 * (runtime/options.ts resolveOpenAIOptions), take a sequence from the scheduler, build the prompt
 * on the loaded model, check it fits the context (a 400 naming both numbers: OpenAI never cuts a
 * prompt), stream complete()'s events, and give the sequence back however the caller stops
 * (the end, an error, a client that went away). Also: OpenAI's ids, usage and the logprobs shapes.
 * Not here: the request bodies (schemas.ts), the response shapes of each route (chat.ts,
 * completions.ts).
 */
import { randomBytes } from "node:crypto";
import type { OpenAiTokenLogprob, OpenAiTopLogprob, OpenAiUsage } from "../../api/openai.ts";
import { complete } from "../../runtime/complete.ts";
import {
  checkLogitBias,
  type OpenAIOptionsInput,
  type ResolvedOptions,
  resolveOpenAIOptions,
} from "../../runtime/options.ts";
import type { ThinkingStart } from "../../runtime/thinking.ts";
import type { CompletionEvent, GrammarSpec, LoadedModel, TokenPiece } from "../../runtime/types.ts";
import type { ResolvedModel } from "../../store/types.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { logWarnings, type Warn } from "../warn.ts";

/** "chatcmpl-" / "cmpl-" + 24 random base62-ish characters, as OpenAI's ids look. */
export function openAiId(prefix: string): string {
  return `${prefix}${randomBytes(18).toString("base64url").replace(/[-_]/g, "x")}`;
}

/** Unix seconds. */
export function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

/** OpenAI's system_fingerprint: which backend produced the text (stable per backend). */
export function systemFingerprint(model: LoadedModel): string {
  return `fp_owl_${model.backend === "llama.cpp" ? "llamacpp" : "owl"}`;
}

export interface PromptBuild {
  tokens: number[];
  /** The request field the prompt comes from, for a context overflow's `param`. */
  param: string;
  /** Where a thinking answer starts: with a grammar, the model thinks first (complete.ts). */
  thinking?: ThinkingStart;
}

export interface GenerationPlan {
  /** The model name as the client gave it. */
  name: string;
  body: OpenAIOptionsInput;
  kind: "chat" | "completions";
  /** Overrides of the resolved options (completions' default max_tokens, a tool-call grammar). */
  adjust?: (options: ResolvedOptions, model: ResolvedModel) => void;
  /** The prompt on the loaded model (its template, its tokenizer). */
  buildPrompt: (model: LoadedModel, resolved: ResolvedModel) => PromptBuild;
  signal: AbortSignal;
  /** The request's warnings (a Modelfile PARAMETER owl ignores) go here; default: dropped. */
  warn?: Warn;
}

export interface Generation {
  model: LoadedModel;
  resolved: ResolvedModel;
  options: ResolvedOptions;
  prompt: PromptBuild;
  /** complete()'s events; the sequence goes back when the iteration ends, however it ends. */
  events: AsyncGenerator<CompletionEvent, void, void>;
}

/** The stored model; its errors (not found, a bad name) name the field `model`. */
export async function resolveModel(ctx: ServerContext, name: string): Promise<ResolvedModel> {
  try {
    return await ctx.store.resolve(name);
  } catch (e) {
    if (e instanceof OwlError && e.details?.["param"] === undefined) {
      throw new OwlError(e.code, e.message, {
        ...(e.hint !== undefined && { hint: e.hint }),
        details: { ...e.details, param: "model" },
        cause: e,
      });
    }
    throw e;
  }
}

/**
 * Everything up to the first token: errors here (unknown model, bad parameter, queue full, a
 * prompt too long) come before any response byte, so they get their own status.
 */
export async function startGeneration(ctx: ServerContext, plan: GenerationPlan): Promise<Generation> {
  const resolved = await resolveModel(ctx, plan.name);
  const options = resolveOpenAIOptions(plan.body, resolved.params, plan.kind);
  if (plan.warn) logWarnings(plan.warn, options.warnings);
  plan.adjust?.(options, resolved);
  const lease = await ctx.scheduler.acquire({
    name: plan.name,
    model: resolved,
    ...(options.numCtx !== undefined && { numCtx: options.numCtx }),
    signal: plan.signal,
  });
  try {
    const model = lease.model;
    const sequence = lease.sequence;
    if (sequence === undefined) throw new Error("internal error: the scheduler gave no sequence");
    checkLogitBias(options.sampling.logitBias, model.info.vocabSize);
    const prompt = plan.buildPrompt(model, resolved);
    if (prompt.tokens.length >= model.numCtx) {
      throw new OwlError(
        "ERR_CONTEXT_OVERFLOW",
        `the prompt has ${prompt.tokens.length} tokens but the model's context holds ${model.numCtx} (with room for at least one generated token)`,
        {
          hint: "shorten the prompt, or load the model with a larger context (OWL_CONTEXT_LENGTH)",
          details: { param: prompt.param, tokens: prompt.tokens.length, nCtx: model.numCtx },
        },
      );
    }
    const signal = lease.signal ?? plan.signal;
    const grammar: GrammarSpec | undefined = options.grammar;
    const inner = complete(model, sequence, {
      prompt: prompt.tokens,
      sampling: options.sampling,
      maxTokens: options.maxTokens,
      stop: options.stop,
      ...(grammar && { grammar }),
      ...(prompt.thinking && { thinking: prompt.thinking }),
      ...(options.logprobs !== undefined && { logprobs: options.logprobs }),
      signal,
    });
    async function* events(): AsyncGenerator<CompletionEvent, void, void> {
      try {
        yield* inner;
      } finally {
        lease.release();
      }
    }
    return { model, resolved, options, prompt, events: events() };
  } catch (e) {
    lease.release();
    throw e;
  }
}

export function usageOf(done: Extract<CompletionEvent, { type: "done" }>): OpenAiUsage {
  return {
    prompt_tokens: done.promptTokens,
    completion_tokens: done.evalTokens,
    total_tokens: done.promptTokens + done.evalTokens,
  };
}

/** A token in OpenAI's logprobs: its text, logprob and raw UTF-8 bytes (a token may hold part of
 * a character, so the bytes, not the text, are what concatenate correctly). */
function topEntry(model: LoadedModel, token: number, text: string, logprob: number): OpenAiTopLogprob {
  return { token: text, logprob, bytes: Array.from(model.tokenBytes(token)) };
}

/** Chat logprobs.content entries for the pieces of one text event. */
export function chatLogprobs(model: LoadedModel, pieces: readonly TokenPiece[]): OpenAiTokenLogprob[] {
  return pieces.map((p) => ({
    ...topEntry(model, p.token, p.text, p.logprob ?? 0),
    top_logprobs: (p.top ?? []).map((t) => topEntry(model, t.token, t.text, t.logprob)),
  }));
}
