/**
 * Ollama's inference routes: POST /api/generate and POST /api/chat, streamed as NDJSON (the
 * default) or answered as one object with `"stream": false`, as Ollama's GenerateHandler and
 * ChatHandler do:
 *
 * - generate: prompt (+ system, template, suffix, context from an earlier answer) rendered with
 *   the model's template unless raw; an empty prompt only loads the model (done_reason "load"),
 *   and with keep_alive 0 unloads it (done_reason "unload"); the last chunk carries done_reason,
 *   context (prompt + answer tokens, not with raw) and the timings.
 * - chat: messages (system, user, assistant with tool_calls, tool results) with the Modelfile's
 *   SYSTEM and MESSAGEs first; with tools, the answer is parsed for tool calls as it streams
 *   (runtime/tool-calls.ts ToolCallStream): a call comes in message.tool_calls as a whole, in one
 *   chunk, and the text around it as content.
 *
 * Truncation, as Ollama (api/types.go "truncate", on unless a request sets false): a chat, and
 * generate's system + MESSAGEs + prompt, lose their oldest messages first (server/prompt.go
 * chatPrompt); a prompt still longer than num_ctx - 1 keeps its first num_keep tokens (+ BOS)
 * and its last (llm/llama_server.go; runtime/prompt.ts truncatePromptTokens). Each cut goes to the
 * server's log (ServerContext.warn). With "truncate": false (or "shift": false) a prompt too long
 * is a 400 naming both numbers. Context shift ("shift", on unless false, as Ollama's runner):
 * a generation that fills the context keeps num_keep tokens, drops half of the rest and goes on
 * (runtime/complete.ts); with "shift": false it ends there with done_reason "length".
 *
 * A format on a thinking model: the model thinks unconstrained and the format applies once its
 * thinking ends (runtime/complete.ts), as Ollama's ChatHandler does ("structured outputs via
 * double request"). /api/generate does the same, by decision: Ollama's GenerateHandler hands the
 * format to the runner from the first token, so the thinking tag can never be written and a
 * prompt that opens the thinking gets its JSON as "thinking".
 *
 * Timings are measured here and in complete(): total_duration from the request's arrival,
 * load_duration from the scheduler (0 when the model was loaded), prompt_eval_* and eval_* from
 * complete(); all in nanoseconds. A client that disconnects aborts the generation (its sequence
 * goes back at once) and the server goes on serving the others.
 * Not here: prompt rendering (runtime/prompt.ts), tool-call parsing (runtime/tool-calls.ts),
 * option resolution (runtime/options.ts), the completion loop (runtime/complete.ts).
 */
import type { Hono } from "hono";
import type {
  OllamaChatResponse,
  OllamaGenerateResponse,
  OllamaLogprob,
  OllamaMessage,
  OllamaMetrics,
  OllamaToolCall,
} from "../../api/ollama.ts";
import { complete } from "../../runtime/complete.ts";
import { contextOverflow } from "../../runtime/gguf-info.ts";
import { parseKeepAlive, type ResolvedOptions, resolveOllamaOptions } from "../../runtime/options.ts";
import {
  bosText,
  type ChatPromptInput,
  fitChatPrompt,
  fitPrompt,
  type PromptMessage,
  planGeneratePrompt,
  promptTokens,
  truncatePromptTokens,
} from "../../runtime/prompt.ts";
import { type ThinkingStart, thinkingParser, thinkingStart } from "../../runtime/thinking.ts";
import { type ParsedToolCalls, ToolCallStream, toolCallTag } from "../../runtime/tool-calls.ts";
import type { CompletionEvent, Lease, LoadedModel, TokenPiece } from "../../runtime/types.ts";
import type { ResolvedModel } from "../../store/types.ts";
import type { ToolDefinition } from "../../tokenizer/chat-template.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { type RequestAbort, requestAbort, writeAtOnce } from "../stream.ts";
import { readJson } from "../validate.ts";
import { logWarnings, requestWarn, type Warn } from "../warn.ts";
import { checkCapabilities, resolveThink } from "./capabilities.ts";
import { nsSince, requireModelName, resolveModel, streamOrLast, timestamp } from "./common.ts";
import { type ChatBody, chatSchema, type GenerateBody, generateSchema } from "./schemas.ts";

type Done = Extract<CompletionEvent, { type: "done" }>;

/** The minute that createdAt() last formatted (ms since the epoch) and its ISO text up to "mm:". */
let minuteMs = Number.NaN;
let minuteText = "";

/**
 * timestamp() of `now` (Date's toISOString, UTC, milliseconds) for a streamed chunk, formatting
 * only the seconds per call: the rest of the text is kept for the minute.
 */
export function createdAt(now: number = Date.now()): string {
  const ms = now % 60_000;
  const minute = now - ms;
  if (minute !== minuteMs || !Number.isInteger(now) || now < 0) {
    // Before 1970, past year 9999 or a fraction of a millisecond: Date formats it.
    if (!Number.isInteger(now) || now < 0 || now >= 253402300800000) return timestamp(new Date(now));
    minuteMs = minute;
    minuteText = timestamp(new Date(minute)).slice(0, 17);
  }
  const sec = (ms / 1000) | 0;
  const milli = ms - sec * 1000;
  return `${minuteText}${sec < 10 ? "0" : ""}${sec}.${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}Z`;
}

interface Run {
  lease: Lease;
  events: AsyncGenerator<CompletionEvent>;
}

/**
 * Take a sequence, build the prompt on the loaded model, check it fits, and start complete().
 * Everything that can fail before the first token fails here (so the client gets a plain error
 * with its status); the returned generator releases the lease however it ends.
 */
async function startRun(
  ctx: ServerContext,
  name: string,
  model: ResolvedModel,
  options: ResolvedOptions,
  keepAliveMs: number | undefined,
  abort: RequestAbort,
  logprobs: number | undefined,
  truncation: Truncation,
  buildPrompt: (loaded: LoadedModel) => number[],
  /** After buildPrompt: where a thinking answer starts (with a format, complete() lets the
   * model think first, then applies the format). */
  thinkingOf: () => ThinkingStart | undefined,
): Promise<Run> {
  const lease = await ctx.scheduler.acquire({
    name,
    model,
    ...(options.numCtx !== undefined && { numCtx: options.numCtx }),
    ...(keepAliveMs !== undefined && { keepAliveMs }),
    signal: abort.signal,
  });
  try {
    const sequence = lease.sequence;
    if (sequence === undefined) throw new Error("internal error: acquire() gave no sequence");
    const prompt = fitTokens(lease.model, buildPrompt(lease.model), options.numKeep, truncation);
    if (prompt.length >= lease.model.numCtx) throw contextOverflow(prompt.length, lease.model.numCtx);
    const signal = lease.signal ? AbortSignal.any([lease.signal, abort.signal]) : abort.signal;
    const thinking = thinkingOf();
    const inner = complete(lease.model, sequence, {
      prompt,
      sampling: options.sampling,
      maxTokens: options.maxTokens,
      stop: options.stop,
      ...(options.grammar && { grammar: options.grammar }),
      ...(thinking && { thinking }),
      ...(logprobs !== undefined && { logprobs }),
      ...(truncation.shift && { shift: { numKeep: options.numKeep } }),
      signal,
    });
    async function* events(): AsyncGenerator<CompletionEvent> {
      try {
        yield* inner;
      } finally {
        lease.release();
      }
    }
    return { lease, events: events() };
  } catch (e) {
    lease.release();
    throw e;
  }
}

/** A request's truncation: Ollama's `truncate` and `shift` (both on by default) and where to log a cut. */
interface Truncation {
  truncate: boolean;
  /** Context shift (api/types.go "shift", unset means true: server/routes.go `req.Shift == nil ||
   * *req.Shift`): a generation that fills the context drops half of it and goes on, and a prompt
   * too long is cut by tokens only with both truncate and shift (llm/llama_server.go). */
  shift: boolean;
  warn: Warn;
}

/**
 * Ollama's "truncate" (api/types.go): unset means true (server/routes.go: `req.Truncate == nil ||
 * *req.Truncate`), so a prompt too long for the context is cut unless the request says false.
 */
function truncationOf(
  body: { truncate?: boolean | null | undefined; shift?: boolean | null | undefined },
  warn: Warn,
): Truncation {
  return { truncate: body.truncate !== false, shift: body.shift !== false, warn };
}

/** With truncation, the runner's cut of a prompt too long (runtime/prompt.ts truncatePromptTokens),
 * logged as Ollama logs it ("truncating input prompt"); without, the prompt as it is. */
function fitTokens(model: LoadedModel, tokens: number[], numKeep: number, t: Truncation): number[] {
  if (!t.truncate || !t.shift) return tokens;
  const cut = truncatePromptTokens(tokens, { numCtx: model.numCtx, numKeep, addsBos: model.info.addBos });
  if (cut.discarded > 0) {
    t.warn(
      `truncating input prompt: ${tokens.length} tokens, context ${model.numCtx} (num_ctx): kept the first ${cut.keep} and the last ${cut.tokens.length - cut.keep}, ${cut.tokens.length} in all`,
    );
  }
  return cut.tokens;
}

function metrics(t0: bigint, loadNs: number, done: Done): OllamaMetrics {
  return {
    total_duration: nsSince(t0),
    load_duration: loadNs,
    prompt_eval_count: done.promptTokens,
    prompt_eval_duration: done.promptEvalNs,
    eval_count: done.evalTokens,
    eval_duration: done.evalNs,
  };
}

/**
 * Ollama's done_reason, "stop" or "length". A run that was aborted while its client still reads
 * (the server shutting down, the model unloaded) ends with an error line instead of a done chunk.
 */
function doneReason(done: Done, shutdown: AbortSignal): string {
  if (done.reason === "abort") {
    throw new OwlError(
      "ERR_ABORTED",
      shutdown.aborted
        ? "the generation was cancelled: the server is shutting down"
        : "the generation was cancelled (the client went away, or the model was unloaded)",
    );
  }
  return done.reason;
}

/** complete()'s logprobs for a request's logprobs / top_logprobs (undefined: none). */
function logprobsOf(body: { logprobs?: boolean | null; top_logprobs?: number | null }): number | undefined {
  return body.logprobs === true ? (body.top_logprobs ?? 0) : undefined;
}

/** Ollama's logprobs of a text event's tokens (undefined when none were asked for). */
function ollamaLogprobs(model: LoadedModel, pieces: readonly TokenPiece[]): OllamaLogprob[] | undefined {
  if (!pieces.some((p) => p.logprob !== undefined)) return undefined;
  const bytes = (token: number) => Array.from(model.tokenBytes(token));
  return pieces.map((p) => {
    const out: OllamaLogprob = { token: p.text, logprob: p.logprob ?? 0, bytes: bytes(p.token) };
    if (p.top)
      out.top_logprobs = p.top.map((t) => ({ token: t.text, logprob: t.logprob, bytes: bytes(t.token) }));
    return out;
  });
}

/** Keep-alive and options of a request, checked before anything is loaded. */
function requestSettings(
  body: { options?: Record<string, unknown> | null; format?: unknown; keep_alive?: string | number | null },
  model: ResolvedModel,
  warn: Warn,
): { options: ResolvedOptions; keepAliveMs: number | undefined } {
  const options = resolveOllamaOptions({
    options: body.options ?? undefined,
    format: body.format ?? undefined,
    params: model.params,
  });
  // Ollama logs an unknown option ("invalid option provided") and answers anyway.
  logWarnings(warn, options.warnings);
  return { options, keepAliveMs: parseKeepAlive(body.keep_alive) };
}

/** Load only (an empty prompt, no messages): the model is loaded and kept for keep_alive. */
async function loadOnly(
  ctx: ServerContext,
  name: string,
  model: ResolvedModel,
  options: ResolvedOptions,
  keepAliveMs: number | undefined,
  abort: RequestAbort,
): Promise<void> {
  const lease = await ctx.scheduler.acquireModel({
    name,
    model,
    ...(options.numCtx !== undefined && { numCtx: options.numCtx }),
    ...(keepAliveMs !== undefined && { keepAliveMs }),
    signal: abort.signal,
  });
  lease.release();
}

export function registerGenerateRoutes(app: Hono, ctx: ServerContext): void {
  app.post("/api/generate", async (c) => {
    const t0 = process.hrtime.bigint();
    const body: GenerateBody = await readJson(c, generateSchema);
    const name = requireModelName(body);
    if (body.raw && (body.template || body.system || (body.context && body.context.length > 0))) {
      throw new OwlError("ERR_BAD_REQUEST", "raw mode does not support template, system, or context");
    }
    if (body.images && body.images.length > 0) {
      throw new OwlError("ERR_UNSUPPORTED", `"${name}" does not support images: owl runs text models only`);
    }
    const model = await resolveModel(ctx, name);
    const warn = requestWarn(ctx, c);
    const { options, keepAliveMs } = requestSettings(body, model, warn);
    const thinking = resolveThink(model, name, body.think);
    const prompt = body.prompt ?? "";
    const unloadOnly = prompt === "" && !body.suffix && keepAliveMs === 0;
    // Ollama (scheduleRunner, before loading): an embedding model does not generate; a suffix
    // needs a template with .Suffix.
    if (!unloadOnly)
      checkCapabilities(model, name, "generate", body.suffix ? ["completion", "insert"] : ["completion"]);

    // Ollama: an empty prompt with keep_alive 0 unloads; an empty prompt loads.
    if (prompt === "" && !body.suffix) {
      if (keepAliveMs === 0) {
        await ctx.scheduler.unload(name);
        const resp: OllamaGenerateResponse = {
          model: name,
          created_at: timestamp(),
          response: "",
          done: true,
          done_reason: "unload",
        };
        return c.json(resp);
      }
      const abort = requestAbort(c, ctx.shutdown);
      await loadOnly(ctx, name, model, options, keepAliveMs, abort);
      const resp: OllamaGenerateResponse = {
        model: name,
        created_at: timestamp(),
        response: "",
        done: true,
        done_reason: "load",
      };
      return c.json(resp);
    }

    const abort = requestAbort(c, ctx.shutdown);
    const context = body.context ?? [];
    const truncation = truncationOf(body, warn);
    let renderedPrompt = "";
    const run = await startRun(
      ctx,
      name,
      model,
      options,
      keepAliveMs,
      abort,
      logprobsOf(body),
      truncation,
      (loaded) => {
        const plan = planGeneratePrompt({
          prompt,
          raw: body.raw === true,
          modelName: name,
          ...(body.system != null && { system: body.system }),
          ...(body.template != null && { requestTemplate: body.template }),
          ...(body.suffix != null && { suffix: body.suffix }),
          ...(model.template !== undefined && { template: model.template }),
          ...(model.system !== undefined && { modelSystem: model.system }),
          // Ollama: a request continuing an earlier answer (context) does not repeat the MESSAGEs.
          ...(context.length === 0 && { storedMessages: model.messages }),
          ...(loaded.info.chatTemplate !== undefined && { chatTemplate: loaded.info.chatTemplate }),
          ...(thinking.think !== undefined && { think: thinking.think }),
          ...templateTokens(loaded),
        });
        // Ollama's GenerateHandler: a chat-like prompt (system, MESSAGEs, prompt) goes through
        // chatPrompt, which drops the oldest MESSAGEs first when truncating.
        const numCtx = loaded.numCtx;
        const fitted =
          "chat" in plan
            ? fitChatPrompt(loaded, plan.chat, { numCtx, truncate: truncation.truncate })
            : undefined;
        if (fitted !== undefined && fitted.droppedMessages > 0) {
          warn(
            `truncating input messages which exceed context length: dropped ${fitted.droppedMessages} of the oldest`,
          );
        }
        const rendered = fitted?.prompt ?? ("chat" in plan ? "" : plan.prompt);
        renderedPrompt = rendered;
        if (context.length === 0) {
          if (fitted !== undefined) return fitted.tokens;
          return truncation.truncate ? promptTokens(loaded, rendered) : fitPrompt(loaded, rendered, numCtx);
        }
        // The earlier answer's tokens as they are, then the new turn (no second BOS).
        const vocab = loaded.info.vocabSize;
        const badToken = context.find((t) => t >= vocab);
        if (badToken !== undefined) {
          throw new OwlError(
            "ERR_BAD_REQUEST",
            `field "context": token ${badToken} is outside the model's vocabulary of ${vocab} tokens (a context from another model?)`,
          );
        }
        const tokens = [...context, ...loaded.tokenize(rendered, { addBos: false, parseSpecial: true })];
        if (!truncation.truncate && tokens.length > numCtx) throw contextOverflow(tokens.length, numCtx);
        return tokens;
      },
      () => thinkingStart(thinking, renderedPrompt),
    );
    const raw = body.raw === true;
    const thinker = thinkingParser(thinking, renderedPrompt);
    async function* chunks(): AsyncGenerator<OllamaGenerateResponse> {
      for await (const ev of run.events) {
        if (ev.type === "text") {
          const logprobs = ollamaLogprobs(run.lease.model, ev.pieces);
          const split = thinker?.add(ev.text) ?? { thinking: "", content: ev.text };
          yield {
            model: name,
            created_at: createdAt(),
            response: split.content,
            ...(split.thinking !== "" && { thinking: split.thinking }),
            done: false,
            ...(logprobs && { logprobs }),
          };
        } else {
          yield {
            model: name,
            created_at: createdAt(),
            response: "",
            done: true,
            done_reason: doneReason(ev, ctx.shutdown),
            ...(raw ? {} : { context: ev.context }),
            ...metrics(t0, run.lease.loadNs, ev),
          };
        }
      }
    }
    if (body.stream !== false) {
      return streamOrLast(c, true, chunks(), {
        onCancel: () => abort.abort(),
        writeAtOnce: writeAtOnce(run.lease.model),
      });
    }
    let text = "";
    let thought = "";
    let last: OllamaGenerateResponse | undefined;
    const logprobs: OllamaLogprob[] = [];
    for await (const chunk of chunks()) {
      text += chunk.response;
      thought += chunk.thinking ?? "";
      if (chunk.logprobs) logprobs.push(...chunk.logprobs);
      last = chunk;
    }
    return c.json({
      ...last,
      response: text,
      ...(thought !== "" && { thinking: thought }),
      ...(logprobs.length > 0 && { logprobs }),
    });
  });

  app.post("/api/chat", async (c) => {
    const t0 = process.hrtime.bigint();
    const body: ChatBody = await readJson(c, chatSchema);
    const name = requireModelName(body);
    const model = await resolveModel(ctx, name);
    const warn = requestWarn(ctx, c);
    const { options, keepAliveMs } = requestSettings(body, model, warn);
    const thinking = resolveThink(model, name, body.think);
    const messages = chatMessages(body);
    const tools = (body.tools ?? []).map(
      (t): ToolDefinition => ({
        type: "function",
        function: {
          name: t.function.name,
          ...(t.function.description != null && { description: t.function.description }),
          ...(t.function.parameters != null && { parameters: t.function.parameters }),
        },
      }),
    );

    // Ollama (scheduleRunner, before loading): an embedding model does not chat; tools need a
    // template that shows them to the model.
    checkCapabilities(model, name, "chat", tools.length > 0 ? ["completion", "tools"] : ["completion"]);

    // Ollama: no messages loads the model (keep_alive 0: unloads it).
    if (messages.length === 0) {
      if (keepAliveMs === 0) await ctx.scheduler.unload(name);
      else await loadOnly(ctx, name, model, options, keepAliveMs, requestAbort(c, ctx.shutdown));
      const resp: OllamaChatResponse = {
        model: name,
        created_at: timestamp(),
        message: { role: "assistant", content: "" },
        done: true,
        done_reason: keepAliveMs === 0 ? "unload" : "load",
      };
      return c.json(resp);
    }

    const abort = requestAbort(c, ctx.shutdown);
    const truncation = truncationOf(body, warn);
    let renderedPrompt = "";
    const run = await startRun(
      ctx,
      name,
      model,
      options,
      keepAliveMs,
      abort,
      logprobsOf(body),
      truncation,
      (loaded) => {
        const input: ChatPromptInput = {
          ...(thinking.think !== undefined && { think: thinking.think }),
          messages,
          ...(tools.length > 0 && { tools }),
          ...(model.system !== undefined && { system: model.system }),
          storedMessages: model.messages,
          ...(model.template !== undefined && { template: model.template }),
          ...(loaded.info.chatTemplate !== undefined && { chatTemplate: loaded.info.chatTemplate }),
          ...templateTokens(loaded),
        };
        // Ollama (server/prompt.go chatPrompt, truncate on unless the request says false): the
        // oldest messages go first, system messages and the last message stay; what is still too
        // long is cut by tokens in startRun. Every cut is logged; truncate: false gets a 400
        // naming both numbers instead.
        const fitted = fitChatPrompt(loaded, input, { numCtx: loaded.numCtx, truncate: truncation.truncate });
        renderedPrompt = fitted.prompt;
        if (fitted.droppedMessages > 0) {
          warn(
            `truncating input messages which exceed context length: dropped ${fitted.droppedMessages} of the oldest`,
          );
        }
        return fitted.tokens;
      },
      () => thinkingStart(thinking, renderedPrompt),
    );
    // With tools, text that may start a tool call is held back until it is one (then the call
    // comes whole, in one chunk) or is not (then it comes as content), as Ollama streams them.
    const tag = model.template === undefined ? undefined : toolCallTag(model.template);
    const parser = tools.length > 0 ? new ToolCallStream(tools, tag === undefined ? {} : { tag }) : undefined;
    let callIndex = 0;
    const thinker = thinkingParser(thinking, renderedPrompt);
    const chunk = (
      parsed: ParsedToolCalls,
      logprobs: OllamaLogprob[] | undefined,
      thought = "",
    ): OllamaChatResponse => {
      const message: OllamaMessage = { role: "assistant", content: parsed.content };
      if (thought !== "") message.thinking = thought;
      if (parsed.calls.length > 0) {
        message.tool_calls = parsed.calls.map((call) => ({
          id: call.id,
          function: { index: callIndex++, name: call.name, arguments: call.arguments },
        }));
      }
      return {
        model: name,
        created_at: createdAt(),
        message,
        done: false,
        ...(logprobs !== undefined && logprobs.length > 0 && { logprobs }),
      };
    };
    async function* chunks(): AsyncGenerator<OllamaChatResponse> {
      let pendingLogprobs: OllamaLogprob[] = [];
      // After a call, whitespace is held: it is shown only if more text follows (a grammar lets a
      // model pad the end of its JSON with newlines).
      let heldSpace = "";
      const visible = (parsed: ParsedToolCalls): ParsedToolCalls => {
        if (callIndex === 0 && parsed.calls.length === 0) return parsed;
        const text = heldSpace + parsed.content;
        if (text.trim() === "") {
          heldSpace = text;
          return { content: "", calls: parsed.calls };
        }
        heldSpace = "";
        return { content: text, calls: parsed.calls };
      };
      for await (const ev of run.events) {
        if (ev.type === "text") {
          const logprobs = ollamaLogprobs(run.lease.model, ev.pieces);
          // A thinking model's text: its thinking first, then the answer (Ollama: a chunk with
          // neither waits for more text).
          const split = thinker?.add(ev.text) ?? { thinking: "", content: ev.text };
          if (parser === undefined) {
            if (thinker === undefined || split.thinking !== "" || split.content !== "")
              yield chunk({ content: split.content, calls: [] }, logprobs, split.thinking);
            else if (logprobs) pendingLogprobs.push(...logprobs);
            continue;
          }
          if (logprobs) pendingLogprobs.push(...logprobs);
          const parsed = visible(parser.push(split.content));
          if (parsed.content !== "" || parsed.calls.length > 0 || split.thinking !== "") {
            yield chunk(parsed, pendingLogprobs, split.thinking);
            pendingLogprobs = [];
          }
          continue;
        }
        if (parser !== undefined) {
          const parsed = visible(parser.finish());
          if (parsed.content !== "" || parsed.calls.length > 0 || pendingLogprobs.length > 0) {
            yield chunk(parsed, pendingLogprobs);
          }
        }
        yield {
          model: name,
          created_at: createdAt(),
          message: { role: "assistant", content: "" },
          done: true,
          done_reason: doneReason(ev, ctx.shutdown),
          ...metrics(t0, run.lease.loadNs, ev),
        };
      }
    }
    if (body.stream !== false) {
      return streamOrLast(c, true, chunks(), {
        onCancel: () => abort.abort(),
        writeAtOnce: writeAtOnce(run.lease.model),
      });
    }
    let content = "";
    let thought = "";
    const toolCalls: OllamaToolCall[] = [];
    const logprobs: OllamaLogprob[] = [];
    let last: OllamaChatResponse | undefined;
    for await (const chunk of chunks()) {
      content += chunk.message.content;
      thought += chunk.message.thinking ?? "";
      if (chunk.message.tool_calls) toolCalls.push(...chunk.message.tool_calls);
      if (chunk.logprobs) logprobs.push(...chunk.logprobs);
      last = chunk;
    }
    const message: OllamaMessage = { role: "assistant", content };
    if (thought !== "") message.thinking = thought;
    if (toolCalls.length > 0) message.tool_calls = toolCalls;
    return c.json({ ...last, message, ...(logprobs.length > 0 && { logprobs }) });
  });
}

/** The BOS/EOS texts a Jinja template may write. */
function templateTokens(loaded: LoadedModel): { bosToken?: string; eosToken?: string } {
  const bos = bosText(loaded);
  const eosId = loaded.info.eosToken;
  const eos = eosId === undefined ? undefined : loaded.detokenize([eosId]);
  return { ...(bos !== undefined && { bosToken: bos }), ...(eos !== undefined && { eosToken: eos }) };
}

/** The request's messages in the prompt renderer's form (roles lower-cased, as Ollama). */
function chatMessages(body: ChatBody): PromptMessage[] {
  return (body.messages ?? []).map((m): PromptMessage => {
    const out: PromptMessage = { role: m.role.toLowerCase(), content: m.content ?? "" };
    if (m.images && m.images.length > 0) out.images = m.images;
    if (m.thinking != null) out.thinking = m.thinking;
    if (m.tool_calls && m.tool_calls.length > 0) {
      out.tool_calls = m.tool_calls.map((t) => ({
        ...(t.id != null && { id: t.id }),
        type: "function" as const,
        function: {
          name: t.function.name,
          arguments: t.function.arguments ?? {},
          ...(t.function.index != null && { index: t.function.index }),
        },
      }));
    }
    if (m.tool_name != null) out.tool_name = m.tool_name;
    if (m.tool_call_id != null) out.tool_call_id = m.tool_call_id;
    return out;
  });
}
