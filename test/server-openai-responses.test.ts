/**
 * POST /v1/responses (OpenAI's Responses API) over a real socket, driven by the official `openai`
 * npm package and by raw fetch: one server (test/helpers/server-openai.ts: the bundled
 * stories260K, llama.cpp on one thread) for the whole file. Expected values come from outside the
 * route under test: the same request through /v1/chat/completions (the path the route translates
 * onto, as Ollama's runs on its ChatHandler), llama2.c run.c's greedy text for stories260K, the
 * model's own tokenizer on prompts rendered by hand from a Modelfile TEMPLATE, and the event
 * sequence of Ollama's converter (openai/responses.go ResponsesStreamConverter.Process).
 * Not here: the chat route itself (server-openai.test.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { Stream } from "openai/streaming";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatGeneration } from "../src/server/openai/chat.ts";
import { streamResponse } from "../src/server/openai/responses.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { OwlError } from "../src/util/errors.ts";
import { fixturePath, REPO_ROOT } from "./helpers/fixtures.ts";
import { startTestServer } from "./helpers/server-openai.ts";

const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");
const MODEL = "stories260k";
const REF = "llama2c/reference/greedy_once_upon_a_time_n200.json";
/** A copy of stories260K whose Modelfile TEMPLATE shows every role and reads .Tools. */
const TOOLS_MODEL = "stories-resp-tools";
const TOOLS_TEMPLATE =
  "{{- if .Tools }}Tools:{{ range .Tools }} {{ .Function.Name }}{{ end }}\n{{ end }}" +
  "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant:";
/** A copy whose template opens a thinking block (Ollama's thinking capability). */
const THINK_MODEL = "stories-resp-think";
const THINK_TEMPLATE =
  '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
  '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}\n' +
  "{{ end }}{{ end }}Assistant:{{ if and $.IsThinkSet (not $.Think) }} Sure.{{ else }} <think>{{ end }}";

let srv: Awaited<ReturnType<typeof startTestServer>>;
let client: OpenAI;
const tok = Tokenizer.fromGgufFile(BUNDLED);

async function createModel(
  name: string,
  template: string | undefined,
  params: Record<string, string[]> = {},
) {
  await srv.ctx.store.create(name, {
    from: MODEL,
    ...(template !== undefined && { template }),
    params,
    adapters: [],
    license: [],
    messages: [],
  });
}

beforeAll(async () => {
  srv = await startTestServer();
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "x", maxRetries: 0 });
  await createModel(TOOLS_MODEL, TOOLS_TEMPLATE);
  await createModel(THINK_MODEL, THINK_TEMPLATE);
});

afterAll(async () => {
  await srv?.close();
});

/** The number of tokens of a prompt rendered by hand (with BOS, as the model's tokenizer adds it). */
function promptTokens(rendered: string): number {
  return tok.encode(rendered, { addSpecial: true }).length;
}

/**
 * A response without what differs between two runs of the same request (ids, clocks) and the
 * fields the `openai` package adds itself (output_text, parsed, output_parsed).
 */
function stable(r: unknown): unknown {
  return JSON.parse(JSON.stringify(r), (key, value) =>
    ["id", "call_id", "created_at", "completed_at", "output_text", "parsed", "output_parsed"].includes(key)
      ? undefined
      : value,
  );
}

interface SseEvent {
  event: string;
  data: { type: string; sequence_number: number; [k: string]: unknown };
}

/** POST /v1/responses with stream: true, read as raw server-sent events. */
async function rawStream(body: Record<string, unknown>): Promise<{ events: SseEvent[]; text: string }> {
  const res = await fetch(`${srv.url}/v1/responses`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const text = await res.text();
  const events = text
    .split("\n\n")
    .filter((block) => block !== "")
    .map((block) => {
      const lines = block.split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^event: /);
      expect(lines[1]).toMatch(/^data: /);
      return {
        event: lines[0]!.slice("event: ".length),
        data: JSON.parse(lines[1]!.slice("data: ".length)) as SseEvent["data"],
      };
    });
  return { events, text };
}

/** Event types with runs of the same delta event folded into one `type+`. */
function shape(events: readonly SseEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    const t = e.data.type.endsWith(".delta") ? `${e.data.type}+` : e.data.type;
    if (out.at(-1) !== t || !t.endsWith("+")) out.push(t);
  }
  return out;
}

const TEXT_EVENTS = [
  "response.output_item.added",
  "response.content_part.added",
  "response.output_text.delta+",
  "response.output_text.done",
  "response.content_part.done",
  "response.output_item.done",
];

function messageText(r: OpenAI.Responses.Response): string {
  const msg = r.output.find((o) => o.type === "message") as
    | OpenAI.Responses.ResponseOutputMessage
    | undefined;
  const part = msg?.content[0];
  return part?.type === "output_text" ? part.text : "";
}

describe("non-streaming", () => {
  it("string input: the chat route's greedy text (llama2.c run.c's for stories260K) and usage, in OpenAI's shape", async () => {
    const r = await client.responses.create({
      model: MODEL,
      input: "Once upon a time",
      temperature: 0,
      max_output_tokens: 40,
    });
    const chat = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Once upon a time" }],
      temperature: 0,
      max_tokens: 40,
    });
    const text = chat.choices[0]!.message.content!;
    if (fixturePath(REF)) {
      const ref = JSON.parse(readFileSync(fixturePath(REF)!, "utf8")) as { generated_tokens: number[] };
      expect(text).toBe(tok.decode(ref.generated_tokens.slice(0, 40)));
    }
    expect(r.id).toMatch(/^resp_/);
    expect(r.object).toBe("response");
    expect(Number.isInteger(r.created_at)).toBe(true);
    expect((r as unknown as { completed_at: number }).completed_at).toBeGreaterThanOrEqual(r.created_at);
    expect(r.model).toBe(MODEL);
    // Cut at max_output_tokens: OpenAI's "incomplete" (chat's finish_reason "length").
    expect(chat.choices[0]!.finish_reason).toBe("length");
    expect(r.status).toBe("incomplete");
    expect(r.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(r.error).toBeNull();
    expect(r.previous_response_id).toBeNull();
    expect((r as unknown as { store: boolean }).store).toBe(false);
    expect(r.max_output_tokens).toBe(40);
    expect(r.temperature).toBe(0);
    expect(r.text).toEqual({ format: { type: "text" } });
    expect(r.output).toHaveLength(1);
    const msg = r.output[0] as OpenAI.Responses.ResponseOutputMessage;
    expect(msg).toMatchObject({ type: "message", role: "assistant", status: "incomplete" });
    expect(msg.id).toMatch(/^msg_/);
    expect(msg.content).toEqual([{ type: "output_text", text, annotations: [], logprobs: [] }]);
    // The openai package's convenience field, built from the output items.
    expect(r.output_text).toBe(text);
    expect(r.usage).toEqual({
      input_tokens: chat.usage!.prompt_tokens,
      output_tokens: chat.usage!.completion_tokens,
      total_tokens: chat.usage!.total_tokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens_details: { reasoning_tokens: 0 },
    });
    expect(r.usage!.input_tokens).toBe(promptTokens("Once upon a time"));
  });

  it("a Modelfile stop ends the text before it: status completed, as the chat route's finish_reason stop", async () => {
    const full = await client.responses.create({
      model: MODEL,
      input: "Once upon a time",
      temperature: 0,
      max_output_tokens: 40,
    });
    const word = full.output_text.split(" ")[5]!;
    const STOP_MODEL = "stories-resp-stop";
    await createModel(STOP_MODEL, undefined, { stop: [word] });
    const r = await client.responses.create({
      model: STOP_MODEL,
      input: "Once upon a time",
      temperature: 0,
      max_output_tokens: 40,
    });
    expect(r.output_text).toBe(full.output_text.slice(0, full.output_text.indexOf(word)));
    expect(r.status).toBe("completed");
    expect(r.incomplete_details).toBeNull();
    expect((r.output[0] as OpenAI.Responses.ResponseOutputMessage).status).toBe("completed");
    const chat = await client.chat.completions.create({
      model: STOP_MODEL,
      messages: [{ role: "user", content: "Once upon a time" }],
      temperature: 0,
      max_tokens: 40,
    });
    expect(chat.choices[0]!.finish_reason).toBe("stop");
    expect(r.usage!.output_tokens).toBe(chat.usage!.completion_tokens);
  });

  it("instructions, message items (developer, text parts, an assistant turn) render as chat messages", async () => {
    const r = await client.responses.create({
      model: TOOLS_MODEL,
      instructions: "You tell stories.",
      input: [
        { role: "developer", content: "Be brief." },
        {
          type: "message",
          role: "user",
          content: [
            { type: "input_text", text: "Once upon " },
            { type: "input_text", text: "a time" },
          ],
        },
        {
          role: "assistant",
          content: [{ type: "output_text", text: "Hi." }],
        } as OpenAI.Responses.ResponseInputItem,
        { role: "user", content: "More" },
      ],
      temperature: 0,
      max_output_tokens: 12,
    });
    // The template by hand: instructions first as a system message, developer as system, and
    // the two joined into one (Ollama's collate in template/template.go: consecutive messages of
    // one role merged with a blank line).
    const rendered =
      "system: You tell stories.\n\nBe brief.\nuser: Once upon a time\nassistant: Hi.\nuser: More\nassistant:";
    expect(r.usage!.input_tokens).toBe(promptTokens(rendered));
    expect(r.instructions).toBe("You tell stories.");
    const chat = await client.chat.completions.create({
      model: TOOLS_MODEL,
      messages: [
        { role: "system", content: "You tell stories." },
        { role: "system", content: "Be brief." },
        { role: "user", content: "Once upon a time" },
        { role: "assistant", content: "Hi." },
        { role: "user", content: "More" },
      ],
      temperature: 0,
      max_tokens: 12,
    });
    expect(r.output_text).toBe(chat.choices[0]!.message.content);
    expect(r.usage!.output_tokens).toBe(chat.usage!.completion_tokens);
  });
});

describe("streaming", () => {
  const params = { model: MODEL, input: "Once upon a time", temperature: 0, max_output_tokens: 24 };

  it("Ollama's event sequence with named events and sequence numbers; the final response equals the non-streamed one", async () => {
    const whole = await client.responses.create(params);
    const { events, text } = await rawStream(params);
    // No `data: [DONE]` (OpenAI and Ollama end a response stream with its last event).
    expect(text).not.toContain("[DONE]");
    for (const e of events) expect(e.event).toBe(e.data.type);
    expect(events.map((e) => e.data.sequence_number)).toEqual(events.map((_, i) => i));
    // ResponsesStreamConverter.Process: created and in_progress on the first chunk, the message
    // item opened by the first text (processTextContent), closed by processCompletion; the last
    // event is response.incomplete here (Ollama's is always response.completed).
    expect(shape(events)).toEqual([
      "response.created",
      "response.in_progress",
      ...TEXT_EVENTS,
      "response.incomplete",
    ]);
    const created = events[0]!.data["response"] as OpenAI.Responses.Response;
    expect(created).toMatchObject({ status: "in_progress", output: [], usage: null });
    const deltas = events.filter((e) => e.data.type === "response.output_text.delta");
    expect(deltas.length).toBeGreaterThan(1);
    const streamed = deltas.map((e) => e.data["delta"]).join("");
    expect(streamed).toBe(whole.output_text);
    const itemId = (events[2]!.data["item"] as { id: string }).id;
    for (const e of events.slice(3, -1))
      expect(e.data["item_id"] ?? (e.data["item"] as { id: string }).id).toBe(itemId);
    const last = events.at(-1)!.data["response"] as OpenAI.Responses.Response;
    expect(last.id).toBe(created.id);
    expect(stable(last)).toEqual(stable(whole));
  });

  it("the openai package's stream iterator and ResponseStream helper consume it", async () => {
    const whole = await client.responses.create(params);
    const types: string[] = [];
    let text = "";
    for await (const e of await client.responses.create({ ...params, stream: true })) {
      types.push(e.type);
      if (e.type === "response.output_text.delta") text += e.delta;
    }
    expect(types[0]).toBe("response.created");
    expect(types.at(-1)).toBe("response.incomplete");
    expect(text).toBe(whole.output_text);
    const helper = client.responses.stream(params);
    let snapshot = "";
    helper.on("response.output_text.delta", (e) => {
      snapshot = e.snapshot;
    });
    const final = await helper.finalResponse();
    expect(final.output_text).toBe(whole.output_text);
    expect(snapshot).toBe(whole.output_text);
    expect(stable(final)).toEqual(stable(whole));
  });
});

describe("text.format", () => {
  it("json_schema constrains the text (owl's grammar, as response_format) and is echoed", async () => {
    const format = {
      type: "json_schema" as const,
      name: "mood",
      strict: true,
      schema: {
        type: "object",
        properties: { mood: { type: "string", enum: ["happy", "sad"] }, big: { type: "boolean" } },
        required: ["mood", "big"],
        additionalProperties: false,
      },
    };
    const r = await client.responses.create({
      model: MODEL,
      input: "Once upon a time",
      temperature: 0,
      max_output_tokens: 60,
      text: { format },
    });
    // NOTE: the grammar allows whitespace after the object, which JSON.parse ignores.
    const value = JSON.parse(r.output_text) as Record<string, unknown>;
    expect(Object.keys(value).sort()).toEqual(["big", "mood"]);
    expect(["happy", "sad"]).toContain(value["mood"]);
    expect(typeof value["big"]).toBe("boolean");
    expect(r.text?.format).toEqual(format);
  });

  it("json_object gives a JSON object", async () => {
    const r = await client.responses.create({
      model: MODEL,
      input: "Once upon a time",
      temperature: 0,
      max_output_tokens: 40,
      text: { format: { type: "json_object" } },
    });
    const trimmed = r.output_text.trim();
    expect(trimmed.startsWith("{")).toBe(true);
    // A cut object is fine at max_output_tokens; a finished one parses to an object.
    if (r.status === "completed") expect(typeof JSON.parse(trimmed)).toBe("object");
  });
});

describe("function tools", () => {
  const weather: OpenAI.Responses.FunctionTool = {
    type: "function",
    name: "get_weather",
    description: "Weather of a city",
    strict: false,
    parameters: {
      type: "object",
      properties: { city: { type: "string", enum: ["Paris", "Rome"] }, celsius: { type: "boolean" } },
      required: ["city", "celsius"],
    },
  };
  const chatWeather: OpenAI.ChatCompletionTool = {
    type: "function",
    function: { name: "get_weather", description: "Weather of a city", parameters: weather.parameters! },
  };

  it("tool_choice required: a function_call item, the chat route's call, arguments as reserialized JSON", async () => {
    const params = {
      model: TOOLS_MODEL,
      input: "What is the weather?",
      temperature: 0,
      max_output_tokens: 80,
      tools: [weather],
      tool_choice: "required" as const,
    };
    const r = await client.responses.create(params);
    const chat = await client.chat.completions.create({
      model: TOOLS_MODEL,
      messages: [{ role: "user", content: "What is the weather?" }],
      temperature: 0,
      max_tokens: 80,
      tools: [chatWeather],
      tool_choice: "required",
    });
    const chatCall = chat.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(r.status).toBe("completed");
    expect(r.output).toHaveLength(1);
    const call = r.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call).toMatchObject({ type: "function_call", status: "completed", name: "get_weather" });
    expect(call.id).toMatch(/^fc_/);
    expect(call.call_id.length).toBeGreaterThan(0);
    expect(call.arguments).toBe(chatCall.function.arguments);
    const args = JSON.parse(call.arguments) as Record<string, unknown>;
    // Parsed by the server, then written again: compact JSON.
    expect(JSON.stringify(args)).toBe(call.arguments);
    expect(["Paris", "Rome"]).toContain(args["city"]);
    expect(typeof args["celsius"]).toBe("boolean");
    expect(r.usage!.output_tokens).toBe(chat.usage!.completion_tokens);
    expect(r.tools).toEqual([weather]);
    expect(r.tool_choice).toBe("required");

    // Streamed: ResponsesStreamConverter.emitFunctionCallEvents, the call whole in one delta.
    const { events } = await rawStream(params);
    expect(shape(events)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.function_call_arguments.delta+",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(events[2]!.data["item"]).toMatchObject({
      type: "function_call",
      status: "in_progress",
      arguments: "",
    });
    expect(events[3]!.data["delta"]).toBe(call.arguments);
    expect(stable(events.at(-1)!.data["response"])).toEqual(stable(r));
  });

  it("a named tool_choice; the function_call and function_call_output items go back in as the conversation", async () => {
    const other: OpenAI.Responses.FunctionTool = {
      type: "function",
      name: "get_time",
      strict: false,
      parameters: { type: "object", properties: {} },
    };
    const final = await client.responses
      .stream({
        model: TOOLS_MODEL,
        input: "Weather?",
        temperature: 0,
        max_output_tokens: 80,
        tools: [other, weather],
        tool_choice: { type: "function", name: "get_weather" },
      })
      .finalResponse();
    const call = final.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    expect(call.name).toBe("get_weather");
    const next = await client.responses.create({
      model: TOOLS_MODEL,
      temperature: 0,
      max_output_tokens: 8,
      tools: [other, weather],
      tool_choice: "none",
      input: [
        { role: "user", content: "Weather?" },
        call,
        { type: "function_call_output", call_id: call.call_id, output: "sunny" },
      ],
    });
    expect(next.output.map((o) => o.type)).toEqual(["message"]);
    // The template by hand: tool_choice "none" leaves the tools out; the call is an assistant
    // turn (its content empty), the output a tool turn.
    expect(next.usage!.input_tokens).toBe(
      promptTokens("user: Weather?\nassistant: \ntool: sunny\nassistant:"),
    );
    const chat = await client.chat.completions.create({
      model: TOOLS_MODEL,
      temperature: 0,
      max_tokens: 8,
      messages: [
        { role: "user", content: "Weather?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: call.call_id, type: "function", function: { name: call.name, arguments: call.arguments } },
          ],
        },
        { role: "tool", tool_call_id: call.call_id, content: "sunny" },
      ],
    });
    expect(next.output_text).toBe(chat.choices[0]!.message.content);
  });

  it("tool_choice auto and a model that writes no call: a message, the chat route's text", async () => {
    const r = await client.responses.create({
      model: TOOLS_MODEL,
      input: "Once upon a time",
      temperature: 0,
      max_output_tokens: 20,
      tools: [weather],
    });
    const chat = await client.chat.completions.create({
      model: TOOLS_MODEL,
      messages: [{ role: "user", content: "Once upon a time" }],
      temperature: 0,
      max_tokens: 20,
      tools: [chatWeather],
    });
    expect(chat.choices[0]!.message.tool_calls).toBeUndefined();
    expect(r.output.map((o) => o.type)).toEqual(["message"]);
    expect(r.output_text).toBe(chat.choices[0]!.message.content);
    expect(r.usage!.input_tokens).toBe(
      promptTokens("Tools: get_weather\nuser: Once upon a time\nassistant:"),
    );
  });

  it("a Codex CLI-shaped request (its fields, item shapes and nulls) streams to completion", async () => {
    // The body Codex CLI's ResponsesApiRequest serializes (codex-rs codex-api common.rs): fields
    // owl ignores as Ollama does (store, include, prompt_cache_key, client_metadata, service_tier),
    // output items passed back with their ids and statuses, reasoning items with nulls.
    const body = {
      model: TOOLS_MODEL,
      instructions: "You are a coding agent.",
      input: [
        { type: "message", role: "developer", content: [{ type: "input_text", text: "Sandbox: none." }] },
        { type: "message", role: "user", content: [{ type: "input_text", text: "List files" }] },
        { type: "reasoning", id: "rs_1", summary: [], content: null, encrypted_content: null },
        {
          type: "function_call",
          id: "fc_1",
          status: "completed",
          call_id: "call_1",
          name: "shell",
          arguments: '{"command":["ls"]}',
        },
        { type: "function_call_output", call_id: "call_1", output: "a.txt" },
        {
          type: "message",
          id: "msg_1",
          status: "completed",
          role: "assistant",
          content: [{ type: "output_text", text: "One file.", annotations: [], logprobs: [] }],
        },
        { type: "message", role: "user", content: [{ type: "input_text", text: "Thanks" }] },
      ],
      tools: [
        {
          type: "function",
          name: "shell",
          description: "Runs a command",
          strict: false,
          parameters: {
            type: "object",
            properties: { command: { type: "array", items: { type: "string" } } },
            required: ["command"],
            additionalProperties: false,
          },
        },
      ],
      tool_choice: "auto",
      parallel_tool_calls: false,
      reasoning: null,
      store: false,
      stream: true,
      include: [],
      prompt_cache_key: "0199-thread",
      client_metadata: { originator: "codex_cli_rs" },
      text: { verbosity: "medium" },
      max_output_tokens: 6,
      temperature: 0,
    };
    const { events } = await rawStream(body);
    const last = events.at(-1)!.data["response"] as OpenAI.Responses.Response;
    expect(["response.completed", "response.incomplete"]).toContain(events.at(-1)!.data.type);
    expect(last.usage!.output_tokens).toBeGreaterThan(0);
    // The template by hand: instructions and developer joined as one system turn (collate), the
    // call an assistant turn (its content empty), the output a tool turn.
    const rendered =
      "Tools: shell\nsystem: You are a coding agent.\n\nSandbox: none.\nuser: List files\nassistant: \n" +
      "tool: a.txt\nassistant: One file.\nuser: Thanks\nassistant:";
    expect(last.usage!.input_tokens).toBe(promptTokens(rendered));
  });

  it("tools for a model whose template cannot show them: Ollama's 400 in OpenAI's shape", async () => {
    for (const stream of [false, true]) {
      await expect(
        client.responses.create({ model: MODEL, input: "Weather?", tools: [weather], stream }),
      ).rejects.toMatchObject({
        status: 400,
        error: { message: `${MODEL}:latest does not support tools`, type: "invalid_request_error" },
      });
    }
  });
});

describe("thinking models", () => {
  it("the thinking is a reasoning item (summary_text and encrypted_content, as Ollama) ahead of the message", async () => {
    // The template opens the thinking, so the whole answer is thinking: the model's raw
    // continuation of that prompt, less the whitespace after the tag.
    const raw = await client.completions.create({
      model: MODEL,
      prompt: "User: Once upon a time\nAssistant: <think>",
      temperature: 0,
      max_tokens: 20,
    });
    const thought = raw.choices[0]!.text.trimStart();
    expect(thought.length).toBeGreaterThan(0);
    const params = { model: THINK_MODEL, input: "Once upon a time", temperature: 0, max_output_tokens: 20 };
    const r = await client.responses.create(params);
    expect(r.output.map((o) => o.type)).toEqual(["reasoning", "message"]);
    const reasoning = r.output[0] as OpenAI.Responses.ResponseReasoningItem;
    expect(reasoning.id).toMatch(/^rs_/);
    expect(reasoning.summary).toEqual([{ type: "summary_text", text: thought }]);
    expect(reasoning.encrypted_content).toBe(thought);
    expect(messageText(r)).toBe("");
    expect(r.usage!.output_tokens).toBe(20);

    // Streamed: processThinking's item and summary deltas, with the summary part OpenAI opens
    // first; finishReasoning closes it; then the (empty) message item, as the non-streamed output.
    const { events } = await rawStream(params);
    expect(shape(events)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.reasoning_summary_part.added",
      "response.reasoning_summary_text.delta+",
      "response.reasoning_summary_text.done",
      "response.reasoning_summary_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.incomplete",
    ]);
    const deltas = events.filter((e) => e.data.type === "response.reasoning_summary_text.delta");
    expect(deltas.map((e) => e.data["delta"]).join("")).toBe(thought);
    expect(stable(events.at(-1)!.data["response"])).toEqual(stable(r));
    const final = await client.responses.stream(params).finalResponse();
    expect(stable(final)).toEqual(stable(r));
  });

  it("a forced call on a thinking model: a reasoning item, then a function_call item; both go back in", async () => {
    // The closing tag is ".", which stories260K writes greedily after some words.
    const TOOLS_THINK = "stories-resp-think-tools";
    await createModel(
      TOOLS_THINK,
      "{{- if .Tools }}Tools:{{ range .Tools }} {{ .Function.Name }}{{ end }}\n{{ end }}" +
        '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
        '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}.{{ end }}{{ .Content }}' +
        "{{ range .ToolCalls }}call {{ .Function.Name }}{{ end }}\n" +
        '{{ else if eq .Role "tool" }}Tool: {{ .Content }}\n{{ end }}{{ end }}Assistant: <think>',
    );
    const raw = await client.completions.create({
      model: MODEL,
      prompt: "Tools: get_weather\nUser: Once upon a time\nAssistant: <think>",
      temperature: 0,
      max_tokens: 40,
    });
    const text = raw.choices[0]!.text;
    expect(text.indexOf(".")).toBeGreaterThan(0);
    const thought = text.slice(0, text.indexOf(".")).trimStart();
    const tool: OpenAI.Responses.FunctionTool = {
      type: "function",
      name: "get_weather",
      strict: false,
      parameters: {
        type: "object",
        properties: { city: { type: "string", enum: ["Paris", "Rome"] } },
        required: ["city"],
      },
    };
    const params = {
      model: TOOLS_THINK,
      input: "Once upon a time",
      temperature: 0,
      max_output_tokens: 150,
      tools: [tool],
      tool_choice: "required" as const,
    };
    const r = await client.responses.create(params);
    expect(r.output.map((o) => o.type)).toEqual(["reasoning", "function_call"]);
    expect((r.output[0] as OpenAI.Responses.ResponseReasoningItem).summary[0]!.text).toBe(thought);
    const call = r.output[1] as OpenAI.Responses.ResponseFunctionToolCall;
    expect(["Paris", "Rome"]).toContain((JSON.parse(call.arguments) as { city: string }).city);
    // Streamed: finishReasoning closes the reasoning item before the call's events
    // (processToolCalls).
    const { events } = await rawStream(params);
    expect(shape(events)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.reasoning_summary_part.added",
      "response.reasoning_summary_text.delta+",
      "response.reasoning_summary_text.done",
      "response.reasoning_summary_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.function_call_arguments.delta+",
      "response.function_call_arguments.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(stable(events.at(-1)!.data["response"])).toEqual(stable(r));

    // Both items back as input (Ollama's FromResponsesRequest: the reasoning goes with the call's
    // assistant turn), with the call's output: the template by hand.
    const next = await client.responses.create({
      model: TOOLS_THINK,
      temperature: 0,
      max_output_tokens: 4,
      input: [
        { role: "user", content: "Once upon a time" },
        ...(r.output as OpenAI.Responses.ResponseInputItem[]),
        { type: "function_call_output", call_id: call.call_id, output: "sunny" },
      ],
    });
    expect(next.usage!.input_tokens).toBe(
      promptTokens(
        `User: Once upon a time\n<think>${thought}.call get_weather\nTool: sunny\nAssistant: <think>`,
      ),
    );
  });

  it("reasoning.effort none turns it off; a reasoning item passed back goes to the template as thinking", async () => {
    const off = await client.responses.create({
      model: THINK_MODEL,
      input: "Once upon a time",
      temperature: 0,
      max_output_tokens: 8,
      reasoning: { effort: "none" },
    });
    expect(off.output.map((o) => o.type)).toEqual(["message"]);
    expect(off.reasoning).toEqual({ effort: "none", summary: null });
    // The template's no-thinking branch: "Assistant: Sure." and the model's continuation.
    expect(off.usage!.input_tokens).toBe(promptTokens("User: Once upon a time\nAssistant: Sure."));

    const back = await client.responses.create({
      model: THINK_MODEL,
      temperature: 0,
      max_output_tokens: 4,
      input: [
        { role: "user", content: "Once upon a time" },
        {
          type: "reasoning",
          id: "rs_1",
          summary: [{ type: "summary_text", text: "a summary" }],
          encrypted_content: "deep thought",
        },
        { role: "assistant", content: "Yes." } as OpenAI.Responses.ResponseInputItem,
        { role: "user", content: "More" },
      ],
    });
    expect(back.usage!.input_tokens).toBe(
      promptTokens("User: Once upon a time\n<think>deep thought</think>Yes.\nUser: More\nAssistant: <think>"),
    );
  });

  it("an effort for a model that does not think, or an unknown effort: 400s naming reasoning.effort", async () => {
    await expect(
      client.responses.create({ model: MODEL, input: "Hi", reasoning: { effort: "high" } }),
    ).rejects.toMatchObject({ status: 400, message: expect.stringContaining("does not support thinking") });
    await expect(
      client.responses.create({ model: THINK_MODEL, input: "Hi", reasoning: { effort: "loads" as never } }),
    ).rejects.toMatchObject({
      status: 400,
      error: { message: expect.stringContaining("invalid reasoning value"), param: "reasoning.effort" },
    });
  });
});

describe("errors and what is not supported (raw requests)", () => {
  async function post(body: string | Record<string, unknown>) {
    const res = await fetch(`${srv.url}/v1/responses`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { error: Record<string, unknown> } };
  }

  it("malformed JSON, a missing or wrong-typed field: 400 in OpenAI's error shape naming the field", async () => {
    const bad = await post('{"model": "stories260k", "input": ');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ type: "invalid_request_error", code: "err_bad_request" });
    expect(bad.body.error["message"]).toContain("invalid JSON");
    const cases: [Record<string, unknown>, string][] = [
      [{ model: MODEL }, "input"],
      [{ input: "Hi" }, "model"],
      [{ model: MODEL, input: 5 }, "input"],
      [{ model: MODEL, input: "Hi", temperature: "hot" }, "temperature"],
      [{ model: MODEL, input: "Hi", max_output_tokens: 0 }, "max_output_tokens"],
      [
        { model: MODEL, input: [{ role: "user", content: [{ type: "input_image", image_url: "x" }] }] },
        "input.[0].content.[0].type",
      ],
      [{ model: MODEL, input: [{ role: "tool", content: "x" }] }, "input.[0].role"],
      [{ model: MODEL, input: [{ type: "item_reference", id: "msg_1" }] }, "input.[0].type"],
      [{ model: MODEL, input: "Hi", tools: [{ type: "web_search" }] }, "tools.[0].type"],
      [{ model: MODEL, input: "Hi", background: true }, "background"],
      [{ model: MODEL, input: "Hi", top_logprobs: 3 }, "top_logprobs"],
      [{ model: MODEL, input: "Hi", include: ["message.output_text.logprobs"] }, "include"],
      [{ model: MODEL, input: "Hi", text: { format: { type: "xml" } } }, "text.format.type"],
      // A schema the grammar cannot enforce: refused before generation, named as this route names it.
      [
        {
          model: MODEL,
          input: "Hi",
          text: { format: { type: "json_schema", name: "s", schema: { type: "string", pattern: "^a+$" } } },
        },
        "text.format.schema",
      ],
      [
        {
          model: MODEL,
          input: "Hi",
          tools: [{ type: "function", name: "f", parameters: {} }],
          tool_choice: { type: "function", name: "g" },
        },
        "tool_choice",
      ],
      [
        {
          model: MODEL,
          input: [
            { role: "user", content: "Hi" },
            { type: "function_call", call_id: "c1", name: "f", arguments: "{not json" },
          ],
        },
        "input.[1].arguments",
      ],
    ];
    for (const [body, param] of cases) {
      const r = await post(body);
      expect({ body, status: r.status }).toEqual({ body, status: 400 });
      expect(r.body.error).toMatchObject({ type: "invalid_request_error", param });
      expect(typeof r.body.error["message"]).toBe("string");
    }
  });

  it("a compressed body (Codex CLI's zstd for OpenAI's backend) is a 400 that says so, not a JSON error", async () => {
    const res = await fetch(`${srv.url}/v1/responses`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Content-Encoding": "zstd" },
      body: new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string; type: string } };
    expect(body.error.type).toBe("invalid_request_error");
    expect(body.error.message).toContain('Content-Encoding "zstd" are not supported');
  });

  it("a client that disconnects mid-stream frees its sequence; the server keeps serving", async () => {
    const res = await fetch(`${srv.url}/v1/responses`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: MODEL, input: "Once upon a time", stream: true, temperature: 0 }),
    });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toMatch(/^event: response\.created\n/);
    await reader.cancel();
    for (let i = 0; i < 200 && srv.ctx.scheduler.running().some((m) => m.active > 0); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(srv.ctx.scheduler.running().every((m) => m.active === 0)).toBe(true);
    const ok = await client.responses.create({
      model: MODEL,
      input: "Once upon a time",
      max_output_tokens: 3,
    });
    expect(ok.usage!.output_tokens).toBe(3);
  });

  it("an unknown model is OpenAI's 404 model_not_found, as on the chat route", async () => {
    const r = await post({ model: "no-such-model", input: "Hi" });
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ type: "not_found_error", code: "model_not_found", param: "model" });
    await expect(client.responses.create({ model: "no-such-model", input: "Hi" })).rejects.toBeInstanceOf(
      OpenAI.NotFoundError,
    );
  });

  it("no stored responses: previous_response_id and conversation are 400s naming the field (Ollama ignores them), store is answered false, GET /v1/responses/{id} is a 404", async () => {
    for (const extra of [{ previous_response_id: "resp_abc" }, { conversation: "conv_abc" }]) {
      const res = await fetch(`${srv.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, input: "Once upon a time", max_output_tokens: 4, ...extra }),
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { message: string; type: string; param: string } };
      expect(body.error.type).toBe("invalid_request_error");
      expect(body.error.param).toBe(Object.keys(extra)[0]);
      expect(body.error.message).toContain("send the whole conversation in input");
    }
    const r = await client.responses.create({
      model: MODEL,
      input: "Once upon a time",
      temperature: 0,
      max_output_tokens: 4,
      store: true,
    });
    expect(r.previous_response_id).toBeNull();
    expect((r as unknown as { store: boolean }).store).toBe(false);
    expect(r.usage!.input_tokens).toBe(promptTokens("Once upon a time"));
    const res = await fetch(`${srv.url}/v1/responses/${r.id}`);
    expect(res.status).toBe(404);
    const body = (await res.json()) as { error: { message: string; type: string } };
    expect(body.error.type).toBe("not_found_error");
    expect(body.error.message).toContain("does not store responses");
  });
});

describe("an error after the stream started", () => {
  it("is an error event in OpenAI's shape whose `error` object makes the openai package throw", async () => {
    // A chat generation that writes one piece of text, then fails (a model unloaded under it).
    async function* events() {
      yield { type: "text" as const, text: "Hi", pieces: [] };
      throw new OwlError("ERR_ABORTED", "the generation was stopped before its end");
    }
    const chat = {
      events: events(),
      mode: { kind: "none" },
      thinker: undefined,
      options: {},
      model: { backend: "llama.cpp" },
    } as unknown as ChatGeneration;
    const req = { model: MODEL, input: "Hi", stream: true };
    const out = [];
    for await (const e of streamResponse(
      { chat, chatRequest: { model: MODEL, messages: [], stream: true } },
      req,
    )) {
      out.push(e);
    }
    expect(out.map((e) => e.type)).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.delta",
      "error",
    ]);
    const last = out.at(-1)!;
    expect(last.sequence_number).toBe(5);
    // OpenAI's ResponseErrorEvent fields, plus the error object of owl's other streams (the
    // openai package's Stream throws an APIError on any event whose data has `error`).
    expect(last).toMatchObject({
      code: "err_aborted",
      message: "the generation was stopped before its end",
      param: null,
      error: {
        message: "the generation was stopped before its end",
        code: "err_aborted",
        type: expect.any(String),
      },
    });
    // The same events as the route writes them, through the openai package's SSE reader.
    const sse = out.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join("");
    const stream = Stream.fromSSEResponse<{ type: string }>(new Response(sse), new AbortController());
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const e of stream) seen.push(e.type);
      })(),
    ).rejects.toBeInstanceOf(OpenAI.APIError);
    expect(seen).toHaveLength(5);
  });
});
