/**
 * POST /v1/responses: OpenAI's Responses API as a translation layer onto the chat route, as
 * Ollama's compatibility layer runs it on its ChatHandler (openai/responses.go
 * FromResponsesRequest, ToResponse, ResponsesStreamConverter; middleware/openai.go
 * ResponsesMiddleware). The request becomes a chat completion request (chat.ts runs it: the
 * template, tools, grammars, thinking, usage), and the chat's answer or chunks become a Response
 * or its server-sent events.
 *
 * Input: `instructions` is a system message first; a string input is a user message; message
 * items keep their role (developer is system, as on the chat route); function_call items become
 * an assistant message's tool_calls (consecutive calls, and an assistant message replayed between
 * a call and its output, join one message, as Ollama), function_call_output items tool messages;
 * a reasoning item's thinking (encrypted_content, which owl writes as plain text as Ollama does,
 * else its reasoning text or summary) goes with the next assistant turn.
 * Options: max_output_tokens, temperature, top_p as on chat; text.format json_object / json_schema
 * as response_format (Ollama maps only json_schema); reasoning.effort as reasoning_effort;
 * function tools and tool_choice as chat's tools (Ollama has no tool_choice).
 * Output: a thinking model's thinking is a reasoning item first (summary_text and
 * encrypted_content, as Ollama), then the text as a message item, then one function_call item
 * per call. Ollama drops text that comes with calls; owl keeps it as a message item ahead of the
 * calls. A generation cut at max_output_tokens (or the context's end) is status "incomplete" with
 * incomplete_details.reason "max_output_tokens", as OpenAI answers (Ollama always says
 * "completed"), and its stream ends with response.incomplete.
 * Streamed: the event sequence of Ollama's ResponsesStreamConverter.Process, plus
 * response.reasoning_summary_part.added/.done around the summary's deltas (OpenAI sends them, and
 * the `openai` package's ResponseStream needs the part before a delta), a message item closed
 * before function calls start, and an empty message item at the end when nothing else came (so the
 * final output equals the non-streamed one). An error after the first event is an `error` event.
 * NOTE: text a model writes after a call (auto tool_choice) is, streamed, a second message item
 * after the calls; non-streamed it joins the message ahead of them (the chat route answers one
 * content).
 * Not here: validation (responses-schema.ts), the generation itself (chat.ts, generate.ts).
 */
import type {
  OpenAiChatCompletionChunk,
  OpenAiChatCompletionRequest,
  OpenAiChatMessage,
} from "../../api/openai.ts";
import type {
  ResponsesFunctionCallItem,
  ResponsesOutputItem,
  ResponsesOutputMessage,
  ResponsesReasoningItem,
  ResponsesRequest,
  ResponsesResponse,
  ResponsesStreamEvent,
  ResponsesTextPart,
  ResponsesUsage,
} from "../../api/openai-responses.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { mapError, openAiErrorBody } from "../error-map.ts";
import type { Warn } from "../warn.ts";
import { type ChatGeneration, completeChat, startChat, streamChat } from "./chat.ts";
import { openAiId, unixNow } from "./generate.ts";
import { badRequest } from "./schemas.ts";

function partsText(content: string | readonly ResponsesTextPart[]): string {
  return typeof content === "string" ? content : content.map((p) => p.text).join("");
}

/** The input items as chat messages (see the module comment). */
function toChatMessages(req: ResponsesRequest): OpenAiChatMessage[] {
  const messages: OpenAiChatMessage[] = [];
  if (req.instructions) messages.push({ role: "system", content: req.instructions });
  if (typeof req.input === "string") {
    messages.push({ role: "user", content: req.input });
    return messages;
  }
  const items = req.input;
  let thinking: string | undefined;
  items.forEach((item, i) => {
    const last = messages.at(-1);
    switch (item.type) {
      case "reasoning": {
        const text =
          item.encrypted_content ||
          (item.content ?? []).map((c) => c.text).join("") ||
          (item.summary ?? []).map((s) => s.text).join("");
        if (text !== "") thinking = text;
        return;
      }
      case "function_call": {
        let args: unknown = {};
        if (item.arguments.trim() !== "") {
          try {
            args = JSON.parse(item.arguments);
          } catch {
            args = undefined;
          }
        }
        if (typeof args !== "object" || args === null || Array.isArray(args)) {
          throw badRequest(
            `function call arguments must be a JSON object, found ${JSON.stringify(item.arguments.slice(0, 80))}`,
            `input.[${i}].arguments`,
          );
        }
        const call = {
          id: item.call_id,
          type: "function" as const,
          function: { name: item.name, arguments: JSON.stringify(args) },
        };
        if (last?.role === "assistant") {
          last.tool_calls = [...(last.tool_calls ?? []), call];
          if (thinking !== undefined) last.reasoning = thinking;
        } else {
          messages.push({
            role: "assistant",
            content: null,
            tool_calls: [call],
            ...(thinking !== undefined && { reasoning: thinking }),
          });
        }
        thinking = undefined;
        return;
      }
      case "function_call_output":
        messages.push({ role: "tool", tool_call_id: item.call_id, content: partsText(item.output) });
        return;
      default: {
        const text = partsText(item.content);
        if (item.role === "assistant") {
          // Ollama: an assistant message replayed between a call and its output joins the call's
          // message, so that the tool result follows the call it answers.
          const next = items[i + 1];
          if (
            next?.type === "function_call_output" &&
            last?.role === "assistant" &&
            last.tool_calls?.some((c) => c.id === next.call_id)
          ) {
            const before = typeof last.content === "string" ? last.content : "";
            last.content = before !== "" && text !== "" ? `${before}\n${text}` : before + text;
            if (thinking !== undefined) last.reasoning = thinking;
            thinking = undefined;
            return;
          }
          messages.push({
            role: "assistant",
            content: text,
            ...(thinking !== undefined && { reasoning: thinking }),
          });
          thinking = undefined;
          return;
        }
        messages.push({ role: item.role, content: text });
      }
    }
  });
  // Ollama: reasoning with no turn after it is an assistant turn of its own.
  if (thinking !== undefined) messages.push({ role: "assistant", content: "", reasoning: thinking });
  return messages;
}

/** The chat completion request the chat route runs for a Responses request. */
export function toChatRequest(req: ResponsesRequest): OpenAiChatCompletionRequest {
  const out: OpenAiChatCompletionRequest = { model: req.model, messages: toChatMessages(req) };
  if (req.max_output_tokens != null) out.max_completion_tokens = req.max_output_tokens;
  if (req.temperature != null) out.temperature = req.temperature;
  if (req.top_p != null) out.top_p = req.top_p;
  const format = req.text?.format;
  if (format?.type === "json_object") out.response_format = { type: "json_object" };
  if (format?.type === "json_schema") {
    out.response_format = {
      type: "json_schema",
      json_schema: {
        name: format.name,
        schema: format.schema,
        ...(format.description !== undefined && { description: format.description }),
        ...(format.strict != null && { strict: format.strict }),
      },
    };
  }
  if (req.reasoning?.effort != null) out.reasoning_effort = req.reasoning.effort;
  if (req.tools !== undefined) {
    out.tools = req.tools.map((t) => ({
      type: "function",
      function: {
        name: t.name,
        ...(t.description != null && { description: t.description }),
        ...(t.parameters != null && { parameters: t.parameters }),
        ...(t.strict != null && { strict: t.strict }),
      },
    }));
  }
  const choice = req.tool_choice;
  if (choice !== undefined) {
    out.tool_choice =
      typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } };
  }
  if (req.stream) {
    out.stream = true;
    out.stream_options = { include_usage: true };
  }
  return out;
}

/** The chat route's field names in an error's param, as the Responses request names them. */
function responsesParam(param: string): string {
  if (param === "messages" || param.startsWith("messages.")) return "input";
  if (param === "reasoning_effort") return "reasoning.effort";
  if (param === "max_completion_tokens" || param === "max_tokens") return "max_output_tokens";
  if (param === "response_format.json_schema.schema") return "text.format.schema";
  if (param.startsWith("response_format")) return "text.format";
  return param;
}

function renameParam(e: unknown): unknown {
  if (!(e instanceof OwlError) || e.details === undefined) return e;
  const details = { ...e.details };
  let changed = false;
  for (const key of ["param", "field"]) {
    const v = details[key];
    if (typeof v === "string" && responsesParam(v) !== v) {
      details[key] = responsesParam(v);
      changed = true;
    }
  }
  if (!changed) return e;
  return new OwlError(e.code, e.message, {
    ...(e.hint !== undefined && { hint: e.hint }),
    details,
    cause: e,
  });
}

export interface ResponseGeneration {
  chat: ChatGeneration;
  chatRequest: OpenAiChatCompletionRequest;
}

/** Everything up to the first token, on the chat route: errors here get their own status. */
export async function startResponse(
  ctx: ServerContext,
  req: ResponsesRequest,
  signal: AbortSignal,
  warn?: Warn,
): Promise<ResponseGeneration> {
  const chatRequest = toChatRequest(req);
  try {
    return { chat: await startChat(ctx, chatRequest, signal, warn), chatRequest };
  } catch (e) {
    throw renameParam(e);
  }
}

/** The Response's fields that echo the request (Ollama's ToResponse defaults). */
function responseObject(
  req: ResponsesRequest,
  id: string,
  createdAt: number,
  status: ResponsesResponse["status"],
  output: ResponsesOutputItem[],
  usage: ResponsesUsage | null,
): ResponsesResponse {
  const effort = req.reasoning?.effort ?? null;
  const summary = req.reasoning?.summary ?? req.reasoning?.generate_summary ?? null;
  return {
    id,
    object: "response",
    created_at: createdAt,
    completed_at: status === "in_progress" ? null : unixNow(),
    status,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    model: req.model,
    previous_response_id: null,
    instructions: req.instructions || null,
    output,
    error: null,
    tools: req.tools ?? [],
    tool_choice: req.tool_choice ?? "auto",
    truncation: req.truncation ?? "disabled",
    parallel_tool_calls: req.parallel_tool_calls ?? true,
    text: { format: req.text?.format ?? { type: "text" } },
    top_p: req.top_p ?? 1,
    temperature: req.temperature ?? 1,
    presence_penalty: 0,
    frequency_penalty: 0,
    top_logprobs: 0,
    reasoning: effort === null && summary === null ? null : { effort, summary },
    usage,
    max_output_tokens: req.max_output_tokens ?? null,
    max_tool_calls: null,
    store: false,
    background: false,
    service_tier: "default",
    metadata: req.metadata ?? {},
    safety_identifier: null,
    prompt_cache_key: null,
  };
}

function toUsage(u: { prompt_tokens: number; completion_tokens: number }): ResponsesUsage {
  return {
    input_tokens: u.prompt_tokens,
    output_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens_details: { reasoning_tokens: 0 },
  };
}

function reasoningItem(id: string, thinking: string): ResponsesReasoningItem {
  return {
    id,
    type: "reasoning",
    summary: [{ type: "summary_text", text: thinking }],
    encrypted_content: thinking,
  };
}

function messageItem(
  id: string,
  text: string,
  status: ResponsesOutputMessage["status"],
): ResponsesOutputMessage {
  return {
    id,
    type: "message",
    status,
    role: "assistant",
    content: [{ type: "output_text", text, annotations: [], logprobs: [] }],
  };
}

function callItem(id: string, call: { id: string; function: { name: string; arguments: string } }) {
  const item: ResponsesFunctionCallItem = {
    id,
    type: "function_call",
    status: "completed",
    call_id: call.id,
    name: call.function.name,
    arguments: call.function.arguments,
  };
  return item;
}

export async function completeResponse(
  gen: ResponseGeneration,
  req: ResponsesRequest,
): Promise<ResponsesResponse> {
  const createdAt = unixNow();
  const completion = await completeChat(gen.chat, gen.chatRequest);
  const choice = completion.choices[0];
  if (choice === undefined) throw new Error("internal error: the chat completion has no choice");
  const status = choice.finish_reason === "length" ? "incomplete" : "completed";
  const msg = choice.message;
  const calls = msg.tool_calls ?? [];
  const output: ResponsesOutputItem[] = [];
  if (msg.reasoning) output.push(reasoningItem(openAiId("rs_"), msg.reasoning));
  const text = msg.content ?? "";
  if (calls.length === 0 || text !== "") output.push(messageItem(openAiId("msg_"), text, status));
  for (const call of calls) output.push(callItem(openAiId("fc_"), call));
  return responseObject(req, openAiId("resp_"), createdAt, status, output, toUsage(completion.usage));
}

type Delta = OpenAiChatCompletionChunk["choices"][number]["delta"];

/**
 * Chat chunks -> Responses events (Ollama's ResponsesStreamConverter, with the differences the
 * module comment lists). Items are closed in order: the reasoning when text or a call comes, the
 * message when a call comes; output_index counts the items opened.
 */
class EventWriter {
  private seq = 0;
  private readonly output: ResponsesOutputItem[] = [];
  private reasoning: { id: string; index: number; text: string } | undefined;
  private message: { id: string; index: number; text: string } | undefined;
  private calls = 0;
  private finish: string | null = null;
  readonly id = openAiId("resp_");
  readonly createdAt = unixNow();

  constructor(private readonly req: ResponsesRequest) {}

  private event(type: string, data: Record<string, unknown>): ResponsesStreamEvent {
    return { type, sequence_number: this.seq++, ...data };
  }

  start(): ResponsesStreamEvent[] {
    const response = responseObject(this.req, this.id, this.createdAt, "in_progress", [], null);
    return [
      this.event("response.created", { response }),
      this.event("response.in_progress", { response: { ...response } }),
    ];
  }

  chunk(chunk: OpenAiChatCompletionChunk): ResponsesStreamEvent[] {
    const choice = chunk.choices[0];
    if (choice === undefined) {
      // The usage chunk: the last one.
      return chunk.usage ? this.end(chunk.usage) : [];
    }
    if (choice.finish_reason !== null) this.finish = choice.finish_reason;
    return this.delta(choice.delta);
  }

  private delta(d: Delta): ResponsesStreamEvent[] {
    const events: ResponsesStreamEvent[] = [];
    if (d.reasoning) events.push(...this.think(d.reasoning));
    if (d.content) events.push(...this.closeReasoning(), ...this.text(d.content));
    for (const call of d.tool_calls ?? []) {
      if (call.id === undefined || call.function?.name === undefined) continue;
      events.push(...this.closeReasoning(), ...this.closeMessage("completed"));
      events.push(
        ...this.call({
          id: call.id,
          function: { name: call.function.name, arguments: call.function.arguments ?? "" },
        }),
      );
    }
    return events;
  }

  private think(text: string): ResponsesStreamEvent[] {
    const events: ResponsesStreamEvent[] = [];
    if (this.reasoning === undefined) {
      this.reasoning = { id: openAiId("rs_"), index: this.output.length, text: "" };
      this.output.push(reasoningItem(this.reasoning.id, ""));
      const { id, index } = this.reasoning;
      events.push(
        this.event("response.output_item.added", {
          output_index: index,
          item: { id, type: "reasoning", summary: [] },
        }),
        this.event("response.reasoning_summary_part.added", {
          item_id: id,
          output_index: index,
          summary_index: 0,
          part: { type: "summary_text", text: "" },
        }),
      );
    }
    const r = this.reasoning;
    r.text += text;
    events.push(
      this.event("response.reasoning_summary_text.delta", {
        item_id: r.id,
        output_index: r.index,
        summary_index: 0,
        delta: text,
      }),
    );
    return events;
  }

  private closeReasoning(): ResponsesStreamEvent[] {
    const r = this.reasoning;
    if (r === undefined) return [];
    this.reasoning = undefined;
    const item = reasoningItem(r.id, r.text);
    this.output[r.index] = item;
    const at = { item_id: r.id, output_index: r.index, summary_index: 0 };
    return [
      this.event("response.reasoning_summary_text.done", { ...at, text: r.text }),
      this.event("response.reasoning_summary_part.done", {
        ...at,
        part: { type: "summary_text", text: r.text },
      }),
      this.event("response.output_item.done", { output_index: r.index, item }),
    ];
  }

  private text(text: string): ResponsesStreamEvent[] {
    const events: ResponsesStreamEvent[] = [];
    if (this.message === undefined) {
      this.message = { id: openAiId("msg_"), index: this.output.length, text: "" };
      this.output.push(messageItem(this.message.id, "", "in_progress"));
      const { id, index } = this.message;
      events.push(
        this.event("response.output_item.added", {
          output_index: index,
          item: { id, type: "message", status: "in_progress", role: "assistant", content: [] },
        }),
        this.event("response.content_part.added", {
          item_id: id,
          output_index: index,
          content_index: 0,
          part: { type: "output_text", text: "", annotations: [], logprobs: [] },
        }),
      );
    }
    const m = this.message;
    if (text === "") return events;
    m.text += text;
    events.push(
      this.event("response.output_text.delta", {
        item_id: m.id,
        output_index: m.index,
        content_index: 0,
        delta: text,
        logprobs: [],
      }),
    );
    return events;
  }

  private closeMessage(status: ResponsesOutputMessage["status"]): ResponsesStreamEvent[] {
    const m = this.message;
    if (m === undefined) return [];
    this.message = undefined;
    const item = messageItem(m.id, m.text, status);
    this.output[m.index] = item;
    const at = { item_id: m.id, output_index: m.index, content_index: 0 };
    return [
      this.event("response.output_text.done", { ...at, text: m.text, logprobs: [] }),
      this.event("response.content_part.done", { ...at, part: item.content[0] }),
      this.event("response.output_item.done", { output_index: m.index, item }),
    ];
  }

  private call(call: { id: string; function: { name: string; arguments: string } }): ResponsesStreamEvent[] {
    const index = this.output.length;
    const item = callItem(openAiId("fc_"), call);
    this.output.push(item);
    this.calls++;
    const at = { item_id: item.id, output_index: index };
    return [
      this.event("response.output_item.added", {
        output_index: index,
        item: { ...item, status: "in_progress", arguments: "" },
      }),
      this.event("response.function_call_arguments.delta", { ...at, delta: item.arguments }),
      this.event("response.function_call_arguments.done", { ...at, arguments: item.arguments }),
      this.event("response.output_item.done", { output_index: index, item }),
    ];
  }

  private end(usage: { prompt_tokens: number; completion_tokens: number }): ResponsesStreamEvent[] {
    const status = this.finish === "length" ? "incomplete" : "completed";
    const events = this.closeReasoning();
    // As the non-streamed answer: a message item whenever no call was made, if only an empty one.
    if (this.message === undefined && this.calls === 0) events.push(...this.text(""));
    events.push(...this.closeMessage(status));
    const response = responseObject(this.req, this.id, this.createdAt, status, this.output, toUsage(usage));
    events.push(
      this.event(status === "incomplete" ? "response.incomplete" : "response.completed", { response }),
    );
    return events;
  }

  /**
   * An error after the stream started: OpenAI's `error` event, plus the `error` object of owl's
   * other streams, which makes the `openai` package throw it as an APIError.
   */
  error(e: unknown): ResponsesStreamEvent {
    const mapped = mapError(e);
    const param =
      e instanceof OwlError && typeof e.details?.["param"] === "string" ? e.details["param"] : null;
    const body = openAiErrorBody(mapped, param);
    return this.event("error", {
      code: body.error.code,
      message: body.error.message,
      param,
      error: body.error,
    });
  }
}

/** The server-sent events of a streamed response (the route writes each with its `event:` line). */
export async function* streamResponse(
  gen: ResponseGeneration,
  req: ResponsesRequest,
): AsyncGenerator<ResponsesStreamEvent> {
  const writer = new EventWriter(req);
  const it = streamChat(gen.chat, gen.chatRequest)[Symbol.asyncIterator]();
  let started = false;
  try {
    for (;;) {
      let next: IteratorResult<OpenAiChatCompletionChunk>;
      try {
        next = await it.next();
      } catch (e) {
        // Before the first event: a plain error response with its status (stream.ts).
        if (!started) throw e;
        yield writer.error(e);
        return;
      }
      if (next.done) return;
      if (!started) {
        started = true;
        yield* writer.start();
      }
      yield* writer.chunk(next.value);
    }
  } finally {
    // NOTE: iterated by hand, so ending early (a client that went away) must end the chat's
    // stream too: that gives the sequence back.
    await it.return?.(undefined);
  }
}
