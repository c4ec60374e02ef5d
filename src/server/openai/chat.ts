/**
 * POST /v1/chat/completions: OpenAI's messages rendered with the model's chat template
 * (runtime/prompt.ts), generated with complete(), answered as one ChatCompletion or as SSE
 * chunks (first delta with the role, content deltas with their logprobs, a last chunk with
 * finish_reason and an empty delta, then usage with no choices when stream_options.include_usage).
 *
 * Messages: text parts are joined; "developer" is rendered as "system" (templates do not know
 * it, OpenAI treats it the same way for such models); an assistant's tool_calls go to the
 * template with their arguments parsed into objects (the transformers convention most templates
 * follow); a tool message gets the name of the call it answers (Ollama's nameFromToolCallID).
 *
 * Tools need a model whose template shows them (ollama/capabilities.ts checkCapabilities, as
 * Ollama's ChatHandler): else, whatever tool_choice says, a 400 "<name> does not support tools"
 * before the model is loaded. tool_choice "auto" (the default with tools) lets the model answer
 * or call; its output is parsed for calls in the formats models are trained to write
 * (runtime/tool-calls.ts, plus the tag a Modelfile TEMPLATE shows). "required" and a named
 * function force one call with a grammar (toolCallGrammar), whose bare JSON the same parser
 * reads. "none" leaves the tools out of the prompt, so the model writes text. Streamed, text that could start a call is held back until it
 * is one (then it goes out whole as a tool_calls delta with its index, id and arguments) or is not
 * (then as content), as Ollama streams calls. finish_reason is "tool_calls" when calls were made.
 * response_format json_object / json_schema constrain the content with a grammar
 * (runtime/options.ts; a schema the grammar cannot enforce is a 400 before generation).
 * Thinking models (runtime/thinking.ts), as Ollama's OpenAI layer: they think unless
 * reasoning_effort (or reasoning.effort) is "none"; the thinking goes to message.reasoning, or
 * streamed to delta.reasoning chunks ahead of the content; an assistant message's reasoning goes
 * back to the template as its thinking; an effort for a model that does not think is a 400.
 * With a grammar (response_format, a forced tool call) a thinking model thinks unconstrained and
 * the grammar applies once its thinking ends (runtime/complete.ts), as Ollama's ChatHandler does
 * for a format (Ollama has no forced calls).
 * Not here: validation (schemas.ts), generation plumbing (generate.ts).
 */
import type {
  OpenAiChatCompletion,
  OpenAiChatCompletionChunk,
  OpenAiChatCompletionRequest,
  OpenAiChatMessage,
  OpenAiFinishReason,
  OpenAiTokenLogprob,
  OpenAiToolCall,
} from "../../api/openai.ts";
import { checkJsonSchema } from "../../runtime/grammar.ts";
import type { ResolvedOptions } from "../../runtime/options.ts";
import {
  type ChatPromptInput,
  promptTokens,
  renderChatPrompt,
  type ThinkValue,
} from "../../runtime/prompt.ts";
import { type ThinkingParser, thinkingParser, thinkingStart } from "../../runtime/thinking.ts";
import {
  parseToolCalls,
  type ToolCall,
  ToolCallStream,
  toolCallGrammar,
  toolCallTag,
} from "../../runtime/tool-calls.ts";
import type { CompletionEvent } from "../../runtime/types.ts";
import type { ChatMessage, ToolDefinition } from "../../tokenizer/chat-template.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { checkCapabilities, resolveThink } from "../ollama/capabilities.ts";
import type { Warn } from "../warn.ts";
import {
  chatLogprobs,
  type Generation,
  openAiId,
  startGeneration,
  systemFingerprint,
  unixNow,
  usageOf,
} from "./generate.ts";
import { badRequest } from "./schemas.ts";

type Done = Extract<CompletionEvent, { type: "done" }>;

/** How the request's tools are used. */
type ToolMode = { kind: "none" } | { kind: "auto" } | { kind: "forced"; name?: string };

export interface ChatGeneration extends Generation {
  tools: ToolDefinition[];
  mode: ToolMode;
  /** The tag the model's Modelfile TEMPLATE writes before calls, if any. */
  toolTag: string | undefined;
  /** A thinking model's parser: its thinking goes to `reasoning`, apart from the content. */
  thinker: ThinkingParser | undefined;
}

/**
 * OpenAI's reasoning effort as Ollama's think (openai.go thinkFromReasoningEffort): unset leaves
 * the model's default, "none" is false, "minimal" low, the efforts past "high" high (owl's top).
 */
function thinkOfEffort(effort: string): boolean | string | undefined {
  if (effort === "") return undefined;
  if (effort === "none") return false;
  if (effort === "minimal") return "low";
  if (effort === "low" || effort === "medium" || effort === "high") return effort;
  if (effort === "xhigh" || effort === "ultra" || effort === "max") return "high";
  throw badRequest(
    `invalid reasoning value: ${JSON.stringify(effort)} (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", or "none")`,
    "reasoning_effort",
  );
}

function contentText(m: OpenAiChatMessage): string | null {
  if (m.content === undefined || m.content === null) return null;
  if (typeof m.content === "string") return m.content;
  return m.content.map((p) => p.text).join("");
}

/** OpenAI messages -> the chat template's messages (see the module comment). */
export function toTemplateMessages(messages: readonly OpenAiChatMessage[]): ChatMessage[] {
  const callNames = new Map<string, string>();
  return messages.map((m, i) => {
    const out: ChatMessage = { role: m.role === "developer" ? "system" : m.role, content: contentText(m) };
    if (m.name !== undefined) out.name = m.name;
    if (m.reasoning) out.thinking = m.reasoning;
    if (m.role === "assistant" && m.tool_calls?.length) {
      out.tool_calls = m.tool_calls.map((tc, j) => {
        callNames.set(tc.id, tc.function.name);
        let args: unknown;
        try {
          args = JSON.parse(tc.function.arguments);
        } catch {
          throw badRequest(
            `tool call arguments must be a JSON object, found ${JSON.stringify(tc.function.arguments.slice(0, 80))}`,
            `messages.[${i}].tool_calls.[${j}].function.arguments`,
          );
        }
        if (typeof args !== "object" || args === null || Array.isArray(args)) {
          throw badRequest(
            "tool call arguments must be a JSON object",
            `messages.[${i}].tool_calls.[${j}].function.arguments`,
          );
        }
        return {
          id: tc.id,
          type: "function",
          function: { name: tc.function.name, arguments: args as Record<string, unknown> },
        };
      });
    }
    if (m.role === "tool" && m.tool_call_id !== undefined) {
      out.tool_call_id = m.tool_call_id;
      const name = m.name ?? callNames.get(m.tool_call_id);
      if (name !== undefined) out.name = name;
    }
    return out;
  });
}

function toolMode(req: OpenAiChatCompletionRequest): ToolMode {
  const tools = req.tools ?? [];
  const choice = req.tool_choice ?? (tools.length > 0 ? "auto" : "none");
  if (tools.length === 0 || choice === "none") return { kind: "none" };
  if (choice === "auto") return { kind: "auto" };
  if (choice === "required") return { kind: "forced" };
  return { kind: "forced", name: choice.function.name };
}

/** What another API's layer onto the chat route sets that OpenAI's request cannot say. */
export interface ChatOverrides {
  /** Think or not, or how hard, in place of reasoning_effort (Anthropic's thinking, effort). */
  think?: boolean | "low" | "medium" | "high";
  /** Last changes to the resolved options (Anthropic's top_k). */
  adjust?: (options: ResolvedOptions) => void;
}

export async function startChat(
  ctx: ServerContext,
  req: OpenAiChatCompletionRequest,
  signal: AbortSignal,
  warn?: Warn,
  overrides: ChatOverrides = {},
): Promise<ChatGeneration> {
  const mode = toolMode(req);
  const tools: ToolDefinition[] =
    mode.kind === "none"
      ? []
      : (req.tools ?? []).map((t) => ({ type: "function", function: { ...t.function } }));
  const messages = toTemplateMessages(req.messages);
  const wantThink = overrides.think ?? thinkOfEffort(req.reasoning?.effort ?? req.reasoning_effort ?? "");
  let thinking: ReturnType<typeof resolveThink> = { think: undefined, tags: undefined };
  let rendered = "";
  const gen = await startGeneration(ctx, {
    name: req.model,
    body: req,
    kind: "chat",
    ...(warn !== undefined && { warn }),
    adjust: (options, resolved) => {
      // Ollama's ChatHandler: a thinking model thinks unless told not to; asking one that does not
      // think to is a 400.
      thinking = resolveThink(resolved, req.model, wantThink);
      // Ollama's OpenAI layer forwards to ChatHandler, whose scheduleRunner checks the model's
      // capabilities before loading it (server/routes.go): tools for a model whose template
      // cannot show them, whatever tool_choice says (openai.go passes tools on as they are), is
      // a 400 "<name> does not support tools", answered in OpenAI's shape (middleware/openai.go
      // writeError); an embedding model "does not support chat".
      checkCapabilities(
        resolved,
        req.model,
        "chat",
        (req.tools?.length ?? 0) > 0 ? ["completion", "tools"] : ["completion"],
      );
      if (options.grammar?.type === "json_schema") {
        // Refused schemas (pattern, allOf, ...) are a 400 naming the field before any generation.
        try {
          checkJsonSchema(options.grammar.schema);
        } catch (e) {
          if (!(e instanceof OwlError)) throw e;
          throw new OwlError(e.code, e.message, {
            details: { ...e.details, param: "response_format.json_schema.schema" },
            cause: e,
          });
        }
      }
      if (mode.kind === "forced") {
        options.grammar = toolCallGrammar(tools, mode.name);
      }
      overrides.adjust?.(options);
    },
    buildPrompt: (model, resolved) => {
      const input: ChatPromptInput = { messages, tools, storedMessages: resolved.messages };
      if (resolved.system !== undefined) input.system = resolved.system;
      if (resolved.template !== undefined) input.template = resolved.template;
      if (model.info.chatTemplate !== undefined) input.chatTemplate = model.info.chatTemplate;
      const bos = model.info.bosToken;
      const eos = model.info.eosToken;
      if (bos !== undefined) input.bosToken = model.detokenize([bos]);
      if (eos !== undefined) input.eosToken = model.detokenize([eos]);
      if (thinking.think !== undefined) input.think = thinking.think as ThinkValue;
      rendered = renderChatPrompt(input).prompt;
      const start = thinkingStart(thinking, rendered);
      return { tokens: promptTokens(model, rendered), param: "messages", ...(start && { thinking: start }) };
    },
    signal,
  });
  const template = gen.resolved.template;
  const thinker = thinkingParser(thinking, rendered);
  return {
    ...gen,
    tools,
    mode,
    toolTag: template === undefined ? undefined : toolCallTag(template),
    thinker,
  };
}

function toOpenAiCalls(calls: readonly ToolCall[]): OpenAiToolCall[] {
  return calls.map((c) => ({
    id: c.id,
    type: "function",
    function: { name: c.name, arguments: JSON.stringify(c.arguments) },
  }));
}

/** A parser of the answer's tool calls, or undefined when tools are not in play. */
function toolParser(gen: ChatGeneration): ToolCallStream | undefined {
  if (gen.mode.kind === "none") return undefined;
  return new ToolCallStream(gen.tools, gen.toolTag === undefined ? {} : { tag: gen.toolTag });
}

function finishReason(done: Done, calls: readonly OpenAiToolCall[]): OpenAiFinishReason {
  if (done.reason === "abort") {
    throw new OwlError(
      "ERR_ABORTED",
      "the generation was stopped before its end (server shutting down or model unloaded)",
    );
  }
  return calls.length > 0 ? "tool_calls" : done.reason;
}

/** The fields every answer starts with, in OpenAI's order. */
function header<O extends string>(
  object: O,
  id: string,
  created: number,
  req: OpenAiChatCompletionRequest,
  gen: Generation,
) {
  return { id, object, created, model: req.model, system_fingerprint: systemFingerprint(gen.model) };
}

export async function completeChat(
  gen: ChatGeneration,
  req: OpenAiChatCompletionRequest,
): Promise<OpenAiChatCompletion> {
  const id = openAiId("chatcmpl-");
  const created = unixNow();
  const wantLogprobs = gen.options.logprobs !== undefined;
  const logprobs: OpenAiTokenLogprob[] = [];
  let text = "";
  let done: Done | undefined;
  for await (const ev of gen.events) {
    if (ev.type === "text") {
      text += ev.text;
      if (wantLogprobs) logprobs.push(...chatLogprobs(gen.model, ev.pieces));
    } else done = ev;
  }
  if (done === undefined) throw new Error("internal error: the completion ended without its done event");
  let reasoning = "";
  if (gen.thinker !== undefined) {
    const split = gen.thinker.add(text);
    reasoning = split.thinking;
    text = split.content;
  }
  let content: string | null = text;
  let calls: OpenAiToolCall[] = [];
  if (gen.mode.kind !== "none") {
    const parsed = parseToolCalls(text, gen.tools, gen.toolTag === undefined ? {} : { tag: gen.toolTag });
    calls = toOpenAiCalls(parsed.calls);
    if (calls.length > 0) content = parsed.content === "" ? null : parsed.content;
  }
  return {
    ...header("chat.completion", id, created, req, gen),
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content,
          refusal: null,
          ...(reasoning !== "" && { reasoning }),
          ...(calls.length > 0 && { tool_calls: calls }),
        },
        logprobs: wantLogprobs ? { content: logprobs, refusal: null } : null,
        finish_reason: finishReason(done, calls),
      },
    ],
    usage: usageOf(done),
  };
}

/** The SSE chunks of a streamed chat completion (stream.ts writes them and `data: [DONE]`). */
export async function* streamChat(
  gen: ChatGeneration,
  req: OpenAiChatCompletionRequest,
): AsyncGenerator<OpenAiChatCompletionChunk> {
  const head = {
    ...header("chat.completion.chunk", openAiId("chatcmpl-"), unixNow(), req, gen),
  };
  const includeUsage = req.stream_options?.include_usage === true;
  const usageField = includeUsage ? { usage: null } : {};
  const wantLogprobs = gen.options.logprobs !== undefined;
  const chunk = (
    delta: OpenAiChatCompletionChunk["choices"][number]["delta"],
    logprobs: OpenAiTokenLogprob[] | null,
    finish: OpenAiFinishReason | null,
  ): OpenAiChatCompletionChunk => ({
    ...head,
    choices: [
      {
        index: 0,
        delta,
        logprobs: logprobs === null ? null : { content: logprobs, refusal: null },
        finish_reason: finish,
      },
    ],
    ...usageField,
  });

  const parser = toolParser(gen);
  const calls: OpenAiToolCall[] = [];
  // Logprobs of tokens whose text the tool-call parser still holds back: they go out with the
  // next chunk that carries text or a call.
  let pending: OpenAiTokenLogprob[] = [];
  function* emit(parsed: { content: string; calls: ToolCall[] }): Generator<OpenAiChatCompletionChunk> {
    if (parsed.content !== "") {
      yield chunk({ content: parsed.content }, wantLogprobs ? pending : null, null);
      pending = [];
    }
    for (const call of toOpenAiCalls(parsed.calls)) {
      yield chunk(
        { tool_calls: [{ index: calls.length, id: call.id, type: "function", function: call.function }] },
        wantLogprobs ? pending : null,
        null,
      );
      pending = [];
      calls.push(call);
    }
  }

  // NOTE: the first event is awaited before the role chunk, so that an error raised when
  // generation starts (a grammar the backend refuses) is still a plain error response.
  const it = gen.events[Symbol.asyncIterator]();
  try {
    let next = await it.next();
    yield chunk({ role: "assistant", content: "", refusal: null }, null, null);
    for (; !next.done; next = await it.next()) {
      const ev = next.value;
      if (ev.type === "text") {
        if (wantLogprobs) pending.push(...chatLogprobs(gen.model, ev.pieces));
        let text = ev.text;
        if (gen.thinker !== undefined) {
          // Ollama (openai.go ToStreamChunks): the thinking in a chunk of its own, first.
          const split = gen.thinker.add(text);
          text = split.content;
          if (split.thinking !== "") {
            yield chunk({ reasoning: split.thinking }, wantLogprobs ? pending : null, null);
            pending = [];
          }
          if (text === "") continue;
        }
        if (parser === undefined) {
          if (text !== "" || pending.length > 0) {
            yield chunk({ content: text }, wantLogprobs ? pending : null, null);
            pending = [];
          }
        } else {
          yield* emit(parser.push(text));
        }
        continue;
      }
      if (parser !== undefined) yield* emit(parser.finish());
      yield chunk({}, null, finishReason(ev, calls));
      if (includeUsage) yield { ...head, choices: [], usage: usageOf(ev) };
    }
  } finally {
    // NOTE: iterated by hand, so ending this generator early (a client that went away) must end
    // the events too: that gives the sequence back.
    await it.return?.();
  }
}
