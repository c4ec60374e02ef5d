/**
 * POST /v1/messages: Anthropic's Messages API as a translation layer onto the chat route, as
 * Ollama's compatibility layer runs it on its ChatHandler (anthropic/anthropic.go
 * FromMessagesRequest, ToMessagesResponse, StreamConverter; middleware/anthropic.go). The request
 * becomes a chat completion request (chat.ts runs it: the template, tools, grammars, thinking,
 * usage), and the chat's answer or chunks become a message or its server-sent events.
 *
 * Input (Ollama's convertMessage): `system` (a string, or its text blocks joined) is a system
 * message first; a message's text blocks are joined; an assistant's tool_use blocks are its
 * tool_calls and its thinking block its thinking (given back to the template); a user's
 * tool_result blocks are tool messages ahead of the user's text; a message with no text, calls
 * or thinking is dropped.
 * Options: max_tokens, temperature, top_p, top_k, stop_sequences as the chat's; tools as
 * function tools; tool_choice auto / any / tool / none as the chat's auto / required / a named
 * function / none (Ollama ignores tool_choice); thinking enabled / disabled as think true / false
 * (a model that does not think: Ollama's 400 "does not support thinking"); unset or adaptive,
 * output_config.effort's level if given, else the model's default (a thinking model thinks).
 * NOTE: temperature and top_p default to 1 (the chat route's defaults, Anthropic's too); Ollama
 * leaves unset ones to the Modelfile.
 * Output (ToMessagesResponse): a thinking block (no signature, as Ollama), a text block unless
 * the text is empty, one tool_use block per call with its input parsed; stop_reason tool_use when
 * calls were made, max_tokens at the limit, stop_sequence with the sequence in stop_sequence when
 * one of stop_sequences ended the answer (Ollama says end_turn there), else end_turn; usage
 * input_tokens / output_tokens are the chat's prompt / completion tokens.
 * A prompt longer than the context is a 400 "prompt is too long: N tokens > M maximum", as
 * Anthropic words it (Claude Code compacts on it); Ollama's ChatHandler cuts old messages instead.
 * Streamed: the events of Ollama's StreamConverter.Process (no ping: Ollama sends none), with
 * message_start's input_tokens the prompt's token count and stop_sequence set as above. An error
 * after the first event is an `error` event in Anthropic's shape (stream.ts).
 * Not here: validation (schema.ts), the generation itself (openai/chat.ts, openai/generate.ts).
 */
import type {
  AnthropicContentBlock,
  AnthropicInputBlock,
  AnthropicMessage,
  AnthropicMessagesRequest,
  AnthropicStopReason,
  AnthropicStreamEvent,
  AnthropicUsage,
} from "../../api/anthropic.ts";
import type {
  OpenAiChatCompletionChunk,
  OpenAiChatCompletionRequest,
  OpenAiChatMessage,
  OpenAiToolCall,
} from "../../api/openai.ts";
import type { CompletionEvent } from "../../runtime/types.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { type ChatGeneration, completeChat, startChat, streamChat } from "../openai/chat.ts";
import { openAiId } from "../openai/generate.ts";
import type { Warn } from "../warn.ts";

type Done = Extract<CompletionEvent, { type: "done" }>;

/** One Anthropic message as chat messages (Ollama's convertMessage). */
function convertMessage(
  role: "user" | "assistant",
  content: string | AnthropicInputBlock[],
): OpenAiChatMessage[] {
  const blocks: AnthropicInputBlock[] =
    typeof content === "string" ? [{ type: "text", text: content }] : content;
  let text = "";
  let thinking = "";
  const calls: OpenAiToolCall[] = [];
  const results: OpenAiChatMessage[] = [];
  for (const b of blocks) {
    switch (b.type) {
      case "text":
        text += b.text;
        break;
      case "thinking":
        thinking = b.thinking;
        break;
      case "tool_use":
        calls.push({
          id: b.id,
          type: "function",
          function: { name: b.name, arguments: JSON.stringify(b.input) },
        });
        break;
      case "tool_result": {
        const c = b.content ?? "";
        results.push({
          role: "tool",
          tool_call_id: b.tool_use_id,
          content: typeof c === "string" ? c : c.map((t) => t.text).join(""),
        });
        break;
      }
    }
  }
  const out: OpenAiChatMessage[] = [];
  if (role === "user") out.push(...results);
  if (text !== "" || calls.length > 0 || thinking !== "") {
    if (role === "assistant") {
      out.push({
        role: "assistant",
        content: text,
        ...(calls.length > 0 && { tool_calls: calls }),
        ...(thinking !== "" && { reasoning: thinking }),
      });
    } else {
      out.push({ role: "user", content: text });
    }
  }
  if (role !== "user") out.push(...results);
  return out;
}

/** The chat completion request the chat route runs for a Messages request. */
export function toChatRequest(req: AnthropicMessagesRequest): OpenAiChatCompletionRequest {
  const messages: OpenAiChatMessage[] = [];
  const system = typeof req.system === "string" ? req.system : (req.system ?? []).map((b) => b.text).join("");
  if (system !== "") messages.push({ role: "system", content: system });
  for (const m of req.messages) messages.push(...convertMessage(m.role, m.content));
  const out: OpenAiChatCompletionRequest = {
    model: req.model,
    messages,
    max_completion_tokens: req.max_tokens,
  };
  if (req.temperature !== undefined) out.temperature = req.temperature;
  if (req.top_p !== undefined) out.top_p = req.top_p;
  if (req.stop_sequences !== undefined && req.stop_sequences.length > 0) out.stop = req.stop_sequences;
  if (req.tools !== undefined && req.tools.length > 0) {
    out.tools = req.tools.map((t) => ({
      type: "function",
      function: {
        name: t.name,
        ...(t.description !== undefined && { description: t.description }),
        parameters: t.input_schema,
      },
    }));
  }
  const choice = req.tool_choice;
  if (choice !== undefined) {
    out.tool_choice =
      choice.type === "tool"
        ? { type: "function", function: { name: choice.name } }
        : choice.type === "any"
          ? "required"
          : choice.type;
  }
  if (req.stream) {
    out.stream = true;
    out.stream_options = { include_usage: true };
  }
  return out;
}

/**
 * A prompt longer than the context in Anthropic's words, "prompt is too long: N tokens > M
 * maximum", which Claude Code reads as its cue to compact the conversation.
 */
function tooLong(e: unknown): unknown {
  if (!(e instanceof OwlError) || e.code !== "ERR_CONTEXT_OVERFLOW") return e;
  const tokens = e.details?.["tokens"];
  const nCtx = e.details?.["nCtx"];
  if (typeof tokens !== "number" || typeof nCtx !== "number") return e;
  return new OwlError(
    "ERR_CONTEXT_OVERFLOW",
    `prompt is too long: ${tokens} tokens > ${nCtx - 1} maximum (the model's context holds ${nCtx} tokens, with room for at least one generated token)`,
    { ...(e.hint !== undefined && { hint: e.hint }), details: e.details, cause: e },
  );
}

/**
 * Ollama's think for a request (FromMessagesRequest): thinking enabled / disabled is true /
 * false; else (unset or adaptive) output_config.effort's level (xhigh and max are owl's top,
 * high); else the model's default.
 */
function thinkOf(req: AnthropicMessagesRequest): boolean | "low" | "medium" | "high" | undefined {
  if (req.thinking?.type === "enabled") return true;
  if (req.thinking?.type === "disabled") return false;
  const effort = req.output_config?.effort;
  if (effort === "xhigh" || effort === "max") return "high";
  return effort;
}

export interface MessageGeneration {
  chat: ChatGeneration;
  chatRequest: OpenAiChatCompletionRequest;
  /** The generation's done event, once it came (for stop_sequence). */
  done: () => Done | undefined;
}

/** Everything up to the first token, on the chat route: errors here get their own status. */
export async function startMessage(
  ctx: ServerContext,
  req: AnthropicMessagesRequest,
  signal: AbortSignal,
  warn?: Warn,
): Promise<MessageGeneration> {
  const chatRequest = toChatRequest(req);
  const topK = req.top_k;
  const think = thinkOf(req);
  let chat: ChatGeneration;
  try {
    chat = await startChat(ctx, chatRequest, signal, warn, {
      ...(think !== undefined && { think }),
      ...(topK !== undefined && {
        adjust: (options) => {
          options.sampling = { ...options.sampling, topK };
        },
      }),
    });
  } catch (e) {
    throw tooLong(e);
  }
  let done: Done | undefined;
  const inner = chat.events;
  async function* tapped(): AsyncGenerator<CompletionEvent, void, void> {
    for await (const ev of inner) {
      if (ev.type === "done") done = ev;
      yield ev;
    }
  }
  return { chat: { ...chat, events: tapped() }, chatRequest, done: () => done };
}

/** The stop sequence that ended the answer, if one did (complete()'s done event names it). */
function stopSequenceOf(gen: MessageGeneration): string | null {
  return gen.done()?.stopText ?? null;
}

function stopReason(
  finish: string | null,
  calls: boolean,
  stopSequence: string | null,
): AnthropicStopReason | null {
  if (calls || finish === "tool_calls") return "tool_use";
  if (finish === "length") return "max_tokens";
  if (stopSequence !== null) return "stop_sequence";
  return finish === null ? null : "end_turn";
}

function parsedInput(args: string): Record<string, unknown> {
  const v: unknown = args.trim() === "" ? {} : JSON.parse(args);
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export async function completeMessage(
  gen: MessageGeneration,
  req: AnthropicMessagesRequest,
): Promise<AnthropicMessage> {
  const completion = await completeChat(gen.chat, gen.chatRequest);
  const choice = completion.choices[0];
  if (choice === undefined) throw new Error("internal error: the chat completion has no choice");
  const msg = choice.message;
  const calls = msg.tool_calls ?? [];
  const content: AnthropicContentBlock[] = [];
  if (msg.reasoning) content.push({ type: "thinking", thinking: msg.reasoning });
  if (msg.content) content.push({ type: "text", text: msg.content });
  for (const c of calls) {
    content.push({
      type: "tool_use",
      id: c.id,
      name: c.function.name,
      input: parsedInput(c.function.arguments),
    });
  }
  const stopSequence = calls.length > 0 ? null : stopSequenceOf(gen);
  return {
    id: openAiId("msg_"),
    type: "message",
    role: "assistant",
    model: req.model,
    content,
    stop_reason: stopReason(choice.finish_reason, calls.length > 0, stopSequence),
    stop_sequence: stopSequence,
    usage: {
      input_tokens: completion.usage.prompt_tokens,
      output_tokens: completion.usage.completion_tokens,
    },
  };
}

/**
 * Chat chunks -> Anthropic events, block by block as Ollama's StreamConverter.Process: a thinking
 * block, then a text block, then one block per tool call (start, one input_json_delta with the
 * whole input, stop); `index` counts the blocks opened.
 */
class EventWriter {
  private index = 0;
  private thinkingStarted = false;
  private thinkingDone = false;
  private textStarted = false;
  private calls = 0;
  private finish: string | null = null;

  constructor(
    private readonly gen: MessageGeneration,
    private readonly req: AnthropicMessagesRequest,
  ) {}

  start(): AnthropicStreamEvent[] {
    return [
      {
        type: "message_start",
        message: {
          id: openAiId("msg_"),
          type: "message",
          role: "assistant",
          model: this.req.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: this.gen.chat.prompt.tokens.length, output_tokens: 0 },
        },
      },
    ];
  }

  private stopBlock(): AnthropicStreamEvent {
    return { type: "content_block_stop", index: this.index };
  }

  chunk(chunk: OpenAiChatCompletionChunk): AnthropicStreamEvent[] {
    const choice = chunk.choices[0];
    if (choice === undefined) return chunk.usage ? this.end(chunk.usage) : [];
    if (choice.finish_reason !== null) this.finish = choice.finish_reason;
    const d = choice.delta;
    const events: AnthropicStreamEvent[] = [];
    if (d.reasoning && !this.thinkingDone) {
      if (this.textStarted) {
        events.push(this.stopBlock());
        this.index++;
        this.textStarted = false;
      }
      if (!this.thinkingStarted) {
        this.thinkingStarted = true;
        events.push({
          type: "content_block_start",
          index: this.index,
          content_block: { type: "thinking", thinking: "" },
        });
      }
      events.push({
        type: "content_block_delta",
        index: this.index,
        delta: { type: "thinking_delta", thinking: d.reasoning },
      });
    }
    if (d.content) {
      events.push(...this.closeThinking());
      if (!this.textStarted) {
        this.textStarted = true;
        events.push({
          type: "content_block_start",
          index: this.index,
          content_block: { type: "text", text: "" },
        });
      }
      events.push({
        type: "content_block_delta",
        index: this.index,
        delta: { type: "text_delta", text: d.content },
      });
    }
    for (const call of d.tool_calls ?? []) {
      if (call.id === undefined || call.function?.name === undefined) continue;
      events.push(...this.closeThinking());
      if (this.textStarted) {
        events.push(this.stopBlock());
        this.index++;
        this.textStarted = false;
      }
      const input = parsedInput(call.function.arguments ?? "");
      events.push(
        {
          type: "content_block_start",
          index: this.index,
          content_block: { type: "tool_use", id: call.id, name: call.function.name, input: {} },
        },
        {
          type: "content_block_delta",
          index: this.index,
          delta: { type: "input_json_delta", partial_json: JSON.stringify(input) },
        },
        this.stopBlock(),
      );
      this.index++;
      this.calls++;
    }
    return events;
  }

  private closeThinking(): AnthropicStreamEvent[] {
    if (!this.thinkingStarted || this.thinkingDone) return [];
    this.thinkingDone = true;
    const ev = this.stopBlock();
    this.index++;
    return [ev];
  }

  private end(usage: { prompt_tokens: number; completion_tokens: number }): AnthropicStreamEvent[] {
    const events: AnthropicStreamEvent[] = [];
    if (this.textStarted || (this.thinkingStarted && !this.thinkingDone)) events.push(this.stopBlock());
    const stopSequence = this.calls > 0 ? null : stopSequenceOf(this.gen);
    const out: AnthropicUsage = { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens };
    events.push(
      {
        type: "message_delta",
        delta: {
          stop_reason: stopReason(this.finish, this.calls > 0, stopSequence),
          stop_sequence: stopSequence,
        },
        usage: out,
      },
      { type: "message_stop" },
    );
    return events;
  }
}

/** The server-sent events of a streamed message (the route writes each with its `event:` line). */
export async function* streamMessage(
  gen: MessageGeneration,
  req: AnthropicMessagesRequest,
): AsyncGenerator<AnthropicStreamEvent> {
  const writer = new EventWriter(gen, req);
  let started = false;
  for await (const chunk of streamChat(gen.chat, gen.chatRequest)) {
    if (!started) {
      started = true;
      yield* writer.start();
    }
    yield* writer.chunk(chunk);
  }
}
