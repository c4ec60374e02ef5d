/**
 * POST /v1/completions (OpenAI's legacy text completions): the prompt is continued as it is, no
 * chat template (OpenAI's and llama.cpp's server's meaning; Ollama's compatibility layer applies
 * the template instead, which turns a continuation into a chat turn), tokenized with BOS when the
 * model adds one and special tokens parsed (as llama.cpp's server does). max_tokens defaults to 16
 * as OpenAI's does (0 with echo returns just the prompt); `echo` puts the prompt before the text;
 * `logprobs` n gives the chosen token's logprob and the n most likely. Streaming is SSE.
 * Refused with a 400 naming the field: suffix (schemas.ts), n/best_of > 1, and echo together with
 * logprobs (that needs the prompt tokens' logprobs, which the backends do not compute).
 * Not here: chat (chat.ts).
 */
import type {
  OpenAiCompletion,
  OpenAiCompletionLogprobs,
  OpenAiCompletionRequest,
} from "../../api/openai.ts";
import { promptTokens } from "../../runtime/prompt.ts";
import type { CompletionEvent, LoadedModel, TokenPiece } from "../../runtime/types.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import type { Warn } from "../warn.ts";
import {
  type Generation,
  openAiId,
  startGeneration,
  systemFingerprint,
  unixNow,
  usageOf,
} from "./generate.ts";
import { badRequest } from "./schemas.ts";

/** OpenAI's default max_tokens for /v1/completions. */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

type Done = Extract<CompletionEvent, { type: "done" }>;

function promptText(req: OpenAiCompletionRequest): string {
  return typeof req.prompt === "string" ? req.prompt : (req.prompt[0] ?? "");
}

export async function startCompletion(
  ctx: ServerContext,
  req: OpenAiCompletionRequest,
  signal: AbortSignal,
  warn?: Warn,
): Promise<Generation> {
  if (req.echo && req.logprobs !== undefined && req.logprobs !== null) {
    throw badRequest(
      "echo with logprobs is not supported: it needs the prompt tokens' logprobs, which owl does not compute",
      "echo",
    );
  }
  const maxTokens = req.max_tokens ?? DEFAULT_COMPLETION_MAX_TOKENS;
  const { max_tokens: _ignored, ...body } = req;
  const text = promptText(req);
  return startGeneration(ctx, {
    name: req.model,
    body,
    kind: "completions",
    ...(warn !== undefined && { warn }),
    adjust: (options) => {
      options.maxTokens = maxTokens;
    },
    buildPrompt: (model) => ({
      tokens: promptTokens(model, text),
      param: "prompt",
    }),
    signal,
  });
}

/** Legacy logprobs: parallel arrays; text_offset counts UTF-16 code units into the choice text. */
class LogprobsBuilder {
  readonly value: OpenAiCompletionLogprobs = {
    tokens: [],
    token_logprobs: [],
    top_logprobs: [],
    text_offset: [],
  };
  constructor(private offset: number) {}
  add(pieces: readonly TokenPiece[]): OpenAiCompletionLogprobs {
    const part: OpenAiCompletionLogprobs = {
      tokens: [],
      token_logprobs: [],
      top_logprobs: [],
      text_offset: [],
    };
    for (const p of pieces) {
      const top: Record<string, number> = {};
      for (const t of p.top ?? []) if (!(t.text in top)) top[t.text] = t.logprob;
      for (const target of [part, this.value]) {
        target.tokens.push(p.text);
        target.token_logprobs.push(p.logprob ?? null);
        target.top_logprobs?.push(top);
        target.text_offset.push(this.offset);
      }
      this.offset += p.text.length;
    }
    return part;
  }
}

function finishReason(done: Done): "stop" | "length" {
  if (done.reason === "abort") {
    throw new OwlError(
      "ERR_ABORTED",
      "the generation was stopped before its end (server shutting down or model unloaded)",
    );
  }
  return done.reason;
}

function header(id: string, created: number, req: OpenAiCompletionRequest, model: LoadedModel) {
  return {
    id,
    object: "text_completion" as const,
    created,
    model: req.model,
    system_fingerprint: systemFingerprint(model),
  };
}

export async function completeText(gen: Generation, req: OpenAiCompletionRequest): Promise<OpenAiCompletion> {
  const id = openAiId("cmpl-");
  const created = unixNow();
  const echo = req.echo ? promptText(req) : "";
  const logprobs = gen.options.logprobs !== undefined ? new LogprobsBuilder(echo.length) : undefined;
  let text = echo;
  let done: Done | undefined;
  for await (const ev of gen.events) {
    if (ev.type === "text") {
      text += ev.text;
      logprobs?.add(ev.pieces);
    } else done = ev;
  }
  if (done === undefined) throw new Error("internal error: the completion ended without its done event");
  return {
    ...header(id, created, req, gen.model),
    choices: [{ text, index: 0, logprobs: logprobs?.value ?? null, finish_reason: finishReason(done) }],
    usage: usageOf(done),
  };
}

/** The SSE chunks of a streamed completion (stream.ts sseResponse writes them and `[DONE]`). */
export async function* streamText(
  gen: Generation,
  req: OpenAiCompletionRequest,
): AsyncGenerator<OpenAiCompletion> {
  const id = openAiId("cmpl-");
  const created = unixNow();
  const head = header(id, created, req, gen.model);
  const includeUsage = req.stream_options?.include_usage === true;
  const usageField = includeUsage ? { usage: null } : {};
  const echo = req.echo ? promptText(req) : "";
  const logprobs = gen.options.logprobs !== undefined ? new LogprobsBuilder(echo.length) : undefined;
  const chunk = (text: string, lp: OpenAiCompletionLogprobs | null, reason: "stop" | "length" | null) => ({
    ...head,
    choices: [{ text, index: 0, logprobs: lp, finish_reason: reason }],
    ...usageField,
  });
  if (echo !== "") yield chunk(echo, null, null);
  for await (const ev of gen.events) {
    if (ev.type === "text") {
      yield chunk(ev.text, logprobs ? logprobs.add(ev.pieces) : null, null);
    } else {
      yield chunk("", null, finishReason(ev));
      if (includeUsage) yield { ...head, choices: [], usage: usageOf(ev) };
    }
  }
}
