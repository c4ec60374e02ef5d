/**
 * POST /v1/messages (Anthropic's Messages API) over a real socket, driven by raw fetch (no
 * Anthropic client in the dependencies): one server (test/helpers/server-openai.ts: the bundled
 * stories260K, llama.cpp on one thread) for the whole file, and one with an API key. Expected
 * values come from outside the route under test: the same request through /v1/chat/completions
 * (the path the route translates onto, as Ollama's runs on its ChatHandler), llama2.c run.c's
 * greedy text for stories260K, the model's own tokenizer on prompts rendered by hand from a
 * Modelfile TEMPLATE, and the event sequence of Ollama's converter (anthropic/anthropic.go
 * StreamConverter.Process).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { streamMessage } from "../src/server/anthropic/messages.ts";
import { errorResponse } from "../src/server/http-error.ts";
import type { ChatGeneration } from "../src/server/openai/chat.ts";
import { sseResponse } from "../src/server/stream.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { OwlError } from "../src/util/errors.ts";
import { fixturePath, REPO_ROOT } from "./helpers/fixtures.ts";
import { startTestServer } from "./helpers/server-openai.ts";

const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");
const MODEL = "stories260k";
const REF = "llama2c/reference/greedy_once_upon_a_time_n200.json";
/** A copy of stories260K whose Modelfile TEMPLATE shows every role and reads .Tools. */
const TOOLS_MODEL = "stories-anth-tools";
const TOOLS_TEMPLATE =
  "{{- if .Tools }}Tools:{{ range .Tools }} {{ .Function.Name }}{{ end }}\n{{ end }}" +
  "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant:";
/** A copy whose template opens a thinking block (Ollama's thinking capability). */
const THINK_MODEL = "stories-anth-think";
/** A thinking model with tools whose thinking ends at "." (which stories260K writes greedily). */
const TOOLS_THINK = "stories-anth-think-tools";
const TOOLS_THINK_TEMPLATE =
  "{{- if .Tools }}Tools:{{ range .Tools }} {{ .Function.Name }}{{ end }}\n{{ end }}" +
  '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
  '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}.{{ end }}{{ .Content }}' +
  "{{ range .ToolCalls }}call {{ .Function.Name }}{{ end }}\n" +
  '{{ else if eq .Role "tool" }}Tool: {{ .Content }}\n{{ end }}{{ end }}Assistant: <think>';
const THINK_TEMPLATE =
  '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
  '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}\n' +
  "{{ end }}{{ end }}Assistant:{{ if and $.IsThinkSet (not $.Think) }} Sure.{{ else }} <think>{{ end }}";

let srv: Awaited<ReturnType<typeof startTestServer>>;
const tok = Tokenizer.fromGgufFile(BUNDLED);

beforeAll(async () => {
  srv = await startTestServer();
  for (const [name, template] of [
    [TOOLS_MODEL, TOOLS_TEMPLATE],
    [THINK_MODEL, THINK_TEMPLATE],
    [TOOLS_THINK, TOOLS_THINK_TEMPLATE],
  ] as const) {
    await srv.ctx.store.create(name, {
      from: MODEL,
      template,
      params: {},
      adapters: [],
      license: [],
      messages: [],
    });
  }
});

afterAll(async () => {
  await srv?.close();
});

/** The number of tokens of a prompt rendered by hand (with BOS, as the model's tokenizer adds it). */
function promptTokens(rendered: string): number {
  return tok.encode(rendered, { addSpecial: true }).length;
}

// biome-ignore lint/suspicious/noExplicitAny: JSON answers checked field by field
type Json = any;

async function messages(body: unknown, headers: Record<string, string> = {}, url = srv.url) {
  const res = await fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "anthropic-version": "2023-06-01", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

async function chat(body: Record<string, unknown>): Promise<Json> {
  const res = await fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return res.json();
}

interface SseEvent {
  event: string;
  data: Json;
}

/** POST /v1/messages with stream: true, read as raw server-sent events. */
async function stream(body: Record<string, unknown>): Promise<SseEvent[]> {
  const res = await fetch(`${srv.url}/v1/messages`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...body, stream: true }),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((block) => block !== "")
    .map((block) => {
      const lines = block.split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^event: /);
      expect(lines[1]).toMatch(/^data: /);
      const event = lines[0]!.slice("event: ".length);
      const data = JSON.parse(lines[1]!.slice("data: ".length));
      expect(data.type).toBe(event);
      return { event, data };
    });
}

/** Event types, runs of deltas folded into one `content_block_delta+` (with the delta's type). */
function shape(events: readonly SseEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    const t = e.event === "content_block_delta" ? `${e.data.delta.type}+` : e.event;
    if (out.at(-1) !== t || !t.endsWith("+")) out.push(t);
  }
  return out;
}

function deltas(events: readonly SseEvent[], type: string, field: string): string {
  return events
    .filter((e) => e.event === "content_block_delta" && e.data.delta.type === type)
    .map((e) => e.data.delta[field] as string)
    .join("");
}

/** The text events of one block at `index` (Ollama's Process: start, deltas, stop). */
const textBlock = ["content_block_start", "text_delta+", "content_block_stop"];

describe("non-streaming", () => {
  it("the chat route's greedy text (llama2.c run.c's for stories260K) and usage, in Anthropic's shape", async () => {
    const r = await messages({
      model: MODEL,
      max_tokens: 40,
      temperature: 0,
      messages: [{ role: "user", content: "Once upon a time" }],
    });
    expect(r.status).toBe(200);
    const c = await chat({
      model: MODEL,
      messages: [{ role: "user", content: "Once upon a time" }],
      temperature: 0,
      max_tokens: 40,
    });
    const text = c.choices[0].message.content as string;
    if (fixturePath(REF)) {
      const ref = JSON.parse(readFileSync(fixturePath(REF)!, "utf8")) as { generated_tokens: number[] };
      expect(text).toBe(tok.decode(ref.generated_tokens.slice(0, 40)));
    }
    expect(r.body.id).toMatch(/^msg_/);
    expect(r.body).toEqual({
      id: r.body.id,
      type: "message",
      role: "assistant",
      model: MODEL,
      content: [{ type: "text", text }],
      stop_reason: "max_tokens",
      stop_sequence: null,
      usage: { input_tokens: c.usage.prompt_tokens, output_tokens: c.usage.completion_tokens },
    });
    expect(r.body.usage).toEqual({ input_tokens: promptTokens("Once upon a time"), output_tokens: 40 });
  });

  it("content blocks and a system prompt (string or text blocks) render as the template's messages", async () => {
    const rendered =
      "system: Be brief.\nuser: Once upon a time\nassistant: There was\nuser: And then\nassistant:";
    const body = {
      model: TOOLS_MODEL,
      max_tokens: 5,
      temperature: 0,
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "Once upon " },
            { type: "text", text: "a time", cache_control: { type: "ephemeral" } },
          ],
        },
        { role: "assistant", content: [{ type: "text", text: "There was" }] },
        { role: "user", content: "And then" },
      ],
    };
    const a = await messages({ ...body, system: "Be brief." });
    const b = await messages({
      ...body,
      system: [
        { type: "text", text: "Be " },
        { type: "text", text: "brief." },
      ],
    });
    expect(a.status).toBe(200);
    expect(a.body.usage.input_tokens).toBe(promptTokens(rendered));
    expect(b.body.usage).toEqual(a.body.usage);
    expect(b.body.content).toEqual(a.body.content);
  });

  it("stop_sequences cut the text before the sequence: stop_reason stop_sequence naming it", async () => {
    const body = {
      model: MODEL,
      max_tokens: 40,
      temperature: 0,
      messages: [{ role: "user", content: "Once upon a time" }],
    };
    const full = await messages(body);
    const fullText = full.body.content[0].text as string;
    const word = fullText.split(" ")[5]!;
    const r = await messages({ ...body, stop_sequences: ["zzzq", word] });
    const c = await chat({
      model: MODEL,
      messages: body.messages,
      temperature: 0,
      max_tokens: 40,
      stop: ["zzzq", word],
    });
    expect(r.body.content).toEqual([{ type: "text", text: fullText.slice(0, fullText.indexOf(word)) }]);
    expect(r.body.content[0].text).toBe(c.choices[0].message.content);
    expect(r.body.stop_reason).toBe("stop_sequence");
    expect(r.body.stop_sequence).toBe(word);
    expect(r.body.usage.output_tokens).toBe(c.usage.completion_tokens);
    // A sequence that never comes: the length limit, as before.
    const none = await messages({ ...body, stop_sequences: ["zzzq"] });
    expect(none.body).toMatchObject({ stop_reason: "max_tokens", stop_sequence: null });
    expect(none.body.content).toEqual(full.body.content);
  });

  it("top_k 1 is greedy whatever the temperature", async () => {
    const body = { model: MODEL, max_tokens: 30, messages: [{ role: "user", content: "Once upon a time" }] };
    const greedy = await messages({ ...body, temperature: 0 });
    const k1 = await messages({ ...body, temperature: 1, top_k: 1 });
    expect(k1.body.content).toEqual(greedy.body.content);
  });
});

describe("streaming", () => {
  it("Ollama's event sequence; the deltas make the non-streamed text; usage as the non-streamed", async () => {
    const body = {
      model: MODEL,
      max_tokens: 40,
      temperature: 0,
      messages: [{ role: "user", content: "Once upon a time" }],
    };
    const r = await messages(body);
    const events = await stream(body);
    // anthropic.go StreamConverter.Process: message_start on the first chunk, a text block, then
    // message_delta and message_stop on the last (no ping).
    expect(shape(events)).toEqual(["message_start", ...textBlock, "message_delta", "message_stop"]);
    const start = events[0]!.data;
    expect(start.message).toEqual({
      id: start.message.id,
      type: "message",
      role: "assistant",
      model: MODEL,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: r.body.usage.input_tokens, output_tokens: 0 },
    });
    expect(start.message.id).toMatch(/^msg_/);
    expect(events[1]!.data).toEqual({
      type: "content_block_start",
      index: 0,
      content_block: { type: "text", text: "" },
    });
    expect(events.filter((e) => e.event.startsWith("content_block")).every((e) => e.data.index === 0)).toBe(
      true,
    );
    expect(deltas(events, "text_delta", "text")).toBe(r.body.content[0].text);
    expect(events.at(-2)!.data).toEqual({
      type: "message_delta",
      delta: { stop_reason: "max_tokens", stop_sequence: null },
      usage: r.body.usage,
    });
    expect(events.at(-1)!.data).toEqual({ type: "message_stop" });
  });

  it("a stop sequence streamed: the same text and stop_reason as non-streamed", async () => {
    const body = {
      model: MODEL,
      max_tokens: 40,
      temperature: 0,
      messages: [{ role: "user", content: "Once upon a time" }],
    };
    const full = await messages(body);
    const word = (full.body.content[0].text as string).split(" ")[4]!;
    const r = await messages({ ...body, stop_sequences: [word] });
    const events = await stream({ ...body, stop_sequences: [word] });
    expect(deltas(events, "text_delta", "text")).toBe(r.body.content[0].text);
    expect(events.at(-2)!.data.delta).toEqual({ stop_reason: "stop_sequence", stop_sequence: word });
  });
});

describe("tools", () => {
  const weather = {
    name: "get_weather",
    description: "Weather of a city",
    input_schema: {
      type: "object",
      properties: { city: { type: "string", enum: ["Paris", "Rome"] }, celsius: { type: "boolean" } },
      required: ["city", "celsius"],
    },
  };
  const chatWeather = {
    type: "function",
    function: { name: weather.name, description: weather.description, parameters: weather.input_schema },
  };
  const ask = [{ role: "user", content: "What is the weather?" }];

  it("tool_choice any: a tool_use block with the chat route's call and its parsed input; streamed as Ollama's", async () => {
    const body = { model: TOOLS_MODEL, max_tokens: 80, temperature: 0, messages: ask, tools: [weather] };
    const r = await messages({ ...body, tool_choice: { type: "any" } });
    const c = await chat({
      model: TOOLS_MODEL,
      messages: ask,
      temperature: 0,
      max_tokens: 80,
      tools: [chatWeather],
      tool_choice: "required",
    });
    const call = c.choices[0].message.tool_calls[0];
    expect(r.status).toBe(200);
    expect(r.body.content).toHaveLength(1);
    const use = r.body.content[0];
    expect(use).toEqual({
      type: "tool_use",
      id: use.id,
      name: "get_weather",
      input: JSON.parse(call.function.arguments),
    });
    expect(use.id.length).toBeGreaterThan(0);
    expect(["Paris", "Rome"]).toContain(use.input.city);
    expect(typeof use.input.celsius).toBe("boolean");
    expect(r.body.stop_reason).toBe("tool_use");
    expect(r.body.usage).toEqual({
      input_tokens: c.usage.prompt_tokens,
      output_tokens: c.usage.completion_tokens,
    });
    expect(r.body.usage.input_tokens).toBe(
      promptTokens("Tools: get_weather\nuser: What is the weather?\nassistant:"),
    );
    // A named tool: the same call (one tool).
    const named = await messages({ ...body, tool_choice: { type: "tool", name: "get_weather" } });
    expect(named.body.content[0].input).toEqual(use.input);

    // Streamed: Process's tool_use block: start with an empty input, the whole input in one
    // input_json_delta, stop; stop_reason tool_use.
    const events = await stream({ ...body, tool_choice: { type: "any" } });
    expect(shape(events)).toEqual([
      "message_start",
      "content_block_start",
      "input_json_delta+",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    expect(events[1]!.data.content_block).toEqual({
      type: "tool_use",
      id: events[1]!.data.content_block.id,
      name: "get_weather",
      input: {},
    });
    expect(JSON.parse(deltas(events, "input_json_delta", "partial_json"))).toEqual(use.input);
    expect(events.at(-2)!.data.delta.stop_reason).toBe("tool_use");
    expect(events.at(-2)!.data.usage).toEqual(r.body.usage);
  });

  it("tool_use and tool_result going back in render as the template's assistant and tool messages", async () => {
    const history = [
      ...ask,
      {
        role: "assistant",
        content: [
          { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris", celsius: true } },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: "sunny" }] },
          { type: "text", text: "Thanks" },
        ],
      },
    ];
    const r = await messages({
      model: TOOLS_MODEL,
      max_tokens: 5,
      temperature: 0,
      messages: history,
      tools: [weather],
    });
    expect(r.status).toBe(200);
    // Ollama's convertMessage: the tool results first, then the user's text.
    const rendered =
      "Tools: get_weather\nuser: What is the weather?\nassistant: \ntool: sunny\nuser: Thanks\nassistant:";
    expect(r.body.usage.input_tokens).toBe(promptTokens(rendered));
    const c = await chat({
      model: TOOLS_MODEL,
      temperature: 0,
      max_tokens: 5,
      tools: [chatWeather],
      messages: [
        ...ask,
        {
          role: "assistant",
          content: "",
          tool_calls: [
            {
              id: "toolu_1",
              type: "function",
              function: { name: "get_weather", arguments: '{"city":"Paris","celsius":true}' },
            },
          ],
        },
        { role: "tool", tool_call_id: "toolu_1", content: "sunny" },
        { role: "user", content: "Thanks" },
      ],
    });
    expect(r.body.usage.input_tokens).toBe(c.usage.prompt_tokens);
    expect(
      r.body.content
        .filter((b: Json) => b.type === "text")
        .map((b: Json) => b.text)
        .join(""),
    ).toBe(c.choices[0].message.content ?? "");
  });

  it("tools for a model whose template cannot show them: Ollama's 400 in Anthropic's shape", async () => {
    const r = await messages({ model: MODEL, max_tokens: 5, messages: ask, tools: [weather] });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      type: "error",
      error: { type: "invalid_request_error", message: expect.stringContaining("does not support tools") },
    });
  });
});

describe("a Claude Code-shaped request", () => {
  it("cache_control, metadata, a tool schema with $schema, an is_error tool result, ?beta=true: answered and streamed to message_stop", async () => {
    const bash = {
      name: "Bash",
      description: "Run a command",
      input_schema: {
        type: "object",
        properties: { command: { type: "string", description: "The command" } },
        required: ["command"],
        additionalProperties: false,
        $schema: "http://json-schema.org/draft-07/schema#",
      },
      cache_control: { type: "ephemeral" },
    };
    const body = {
      model: TOOLS_MODEL,
      max_tokens: 32000,
      temperature: 0,
      system: [
        { type: "text", text: "You are a CLI.", cache_control: { type: "ephemeral" } },
        { type: "text", text: " Be brief." },
      ],
      messages: [
        {
          role: "user",
          content: [{ type: "text", text: "List files", cache_control: { type: "ephemeral" } }],
        },
        {
          role: "assistant",
          content: [
            { type: "text", text: "Sure." },
            { type: "tool_use", id: "toolu_01", name: "Bash", input: { command: "ls" } },
          ],
        },
        {
          role: "user",
          content: [
            {
              type: "tool_result",
              tool_use_id: "toolu_01",
              is_error: true,
              content: [{ type: "text", text: "denied" }],
              cache_control: { type: "ephemeral" },
            },
          ],
        },
      ],
      tools: [bash],
      metadata: { user_id: "user_abc_account__session_1" },
    };
    const headers = {
      "Content-Type": "application/json",
      "anthropic-version": "2023-06-01",
      "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
      "x-app": "cli",
    };
    const res = await fetch(`${srv.url}/v1/messages?beta=true`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    const r = (await res.json()) as Json;
    // The tool result goes in ahead of nothing else (no text with it), after the assistant's turn.
    const rendered =
      "Tools: Bash\nsystem: You are a CLI. Be brief.\nuser: List files\nassistant: Sure.\ntool: denied\nassistant:";
    expect(r.usage.input_tokens).toBe(promptTokens(rendered));
    expect(["end_turn", "max_tokens", "tool_use"]).toContain(r.stop_reason);
    const streamed = await fetch(`${srv.url}/v1/messages?beta=true`, {
      method: "POST",
      headers,
      body: JSON.stringify({ ...body, stream: true }),
    });
    expect(streamed.status).toBe(200);
    const text = await streamed.text();
    const names = text
      .split("\n\n")
      .filter((b) => b !== "")
      .map((b) => b.split("\n")[0]);
    expect(names[0]).toBe("event: message_start");
    expect(names.at(-1)).toBe("event: message_stop");
    const last = text.split("\n\n").filter((b) => b.startsWith("event: message_delta"))[0]!;
    expect(JSON.parse(last.split("\n")[1]!.slice("data: ".length)).usage).toEqual(r.usage);
  });
});

describe("thinking", () => {
  it("a thinking model's thinking is a thinking block first; thinking disabled turns it off; streamed as thinking_delta", async () => {
    // The template opens the thinking, so the whole answer is thinking: the model's raw
    // continuation of that prompt, less the whitespace after the tag.
    const res = await fetch(`${srv.url}/v1/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model: MODEL,
        prompt: "User: Once upon a time\nAssistant: <think>",
        temperature: 0,
        max_tokens: 20,
      }),
    });
    const thought = ((await res.json()) as Json).choices[0].text.trimStart() as string;
    expect(thought.length).toBeGreaterThan(0);
    const body = {
      model: THINK_MODEL,
      max_tokens: 20,
      temperature: 0,
      messages: [{ role: "user", content: "Once upon a time" }],
    };
    const r = await messages({ ...body, thinking: { type: "enabled", budget_tokens: 1024 } });
    expect(r.status).toBe(200);
    expect(r.body.content).toEqual([{ type: "thinking", thinking: thought }]);
    expect(r.body.stop_reason).toBe("max_tokens");
    // Unset: the model's default (a thinking model thinks), as Ollama.
    const dflt = await messages(body);
    expect(dflt.body.content).toEqual(r.body.content);

    // Adaptive, and output_config.effort (Claude Code's): a level, so thinking on (Ollama's
    // FromMessagesRequest); disabled wins over an effort.
    const adaptive = await messages({ ...body, thinking: { type: "adaptive" } });
    expect(adaptive.body.content).toEqual(r.body.content);
    const effort = await messages({
      ...body,
      thinking: { type: "adaptive" },
      output_config: { effort: "xhigh" },
    });
    expect(effort.body.content).toEqual(r.body.content);
    const offEffort = await messages({
      ...body,
      thinking: { type: "disabled" },
      output_config: { effort: "high" },
    });
    expect(offEffort.body.content.map((b: Json) => b.type)).toEqual(["text"]);

    const off = await messages({ ...body, thinking: { type: "disabled" } });
    expect(off.body.content.map((b: Json) => b.type)).toEqual(["text"]);
    expect(off.body.usage.input_tokens).toBe(promptTokens("User: Once upon a time\nAssistant: Sure."));

    const events = await stream({ ...body, thinking: { type: "enabled", budget_tokens: 1024 } });
    expect(shape(events)).toEqual([
      "message_start",
      "content_block_start",
      "thinking_delta+",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    expect(events[1]!.data.content_block).toEqual({ type: "thinking", thinking: "" });
    expect(deltas(events, "thinking_delta", "thinking")).toBe(thought);
  });

  it("a thinking block going back in is the assistant turn's thinking in the template", async () => {
    const r = await messages({
      model: THINK_MODEL,
      max_tokens: 3,
      temperature: 0,
      messages: [
        { role: "user", content: "Hi" },
        {
          role: "assistant",
          content: [
            { type: "thinking", thinking: "hmm", signature: "x" },
            { type: "text", text: "Hello" },
          ],
        },
        { role: "user", content: "Bye" },
      ],
    });
    expect(r.status).toBe(200);
    expect(r.body.usage.input_tokens).toBe(
      promptTokens("User: Hi\n<think>hmm</think>Hello\nUser: Bye\nAssistant: <think>"),
    );
  });

  it("thinking, then text: two blocks, indices 0 and 1 streamed (Process closes the thinking when text comes)", async () => {
    const body = {
      model: TOOLS_THINK,
      max_tokens: 40,
      temperature: 0,
      messages: [{ role: "user", content: "Once upon a time" }],
    };
    const c = await chat({ ...body, messages: body.messages });
    const msg = c.choices[0].message;
    expect(msg.reasoning.length).toBeGreaterThan(0);
    expect(msg.content.length).toBeGreaterThan(0);
    const r = await messages(body);
    expect(r.body.content).toEqual([
      { type: "thinking", thinking: msg.reasoning },
      { type: "text", text: msg.content },
    ]);
    const events = await stream(body);
    expect(shape(events)).toEqual([
      "message_start",
      "content_block_start",
      "thinking_delta+",
      "content_block_stop",
      ...textBlock,
      "message_delta",
      "message_stop",
    ]);
    const blocks = events.filter((e) => e.event.startsWith("content_block"));
    expect(blocks.filter((e) => e.data.index === 0).at(-1)!.event).toBe("content_block_stop");
    expect(blocks.findIndex((e) => e.data.index === 1)).toBe(
      blocks.findIndex((e) => e.data.index === 0 && e.event === "content_block_stop") + 1,
    );
    expect(deltas(events, "thinking_delta", "thinking")).toBe(msg.reasoning);
    expect(deltas(events, "text_delta", "text")).toBe(msg.content);
  });

  it("thinking, then a forced tool_use; both go back in as the assistant turn", async () => {
    const raw = await fetch(`${srv.url}/v1/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model: MODEL,
        prompt: "Tools: get_weather\nUser: Once upon a time\nAssistant: <think>",
        temperature: 0,
        max_tokens: 40,
      }),
    });
    const text = ((await raw.json()) as Json).choices[0].text as string;
    expect(text.indexOf(".")).toBeGreaterThan(0);
    const thought = text.slice(0, text.indexOf(".")).trimStart();
    const tool = {
      name: "get_weather",
      input_schema: {
        type: "object",
        properties: { city: { type: "string", enum: ["Paris", "Rome"] } },
        required: ["city"],
      },
    };
    const body = {
      model: TOOLS_THINK,
      max_tokens: 150,
      temperature: 0,
      messages: [{ role: "user", content: "Once upon a time" }],
      tools: [tool],
      tool_choice: { type: "any" },
    };
    const r = await messages(body);
    expect(r.body.content.map((b: Json) => b.type)).toEqual(["thinking", "tool_use"]);
    expect(r.body.content[0].thinking).toBe(thought);
    expect(["Paris", "Rome"]).toContain(r.body.content[1].input.city);
    expect(r.body.stop_reason).toBe("tool_use");
    // Streamed: the thinking block closes before the tool_use block (Process's tool-call branch).
    const events = await stream(body);
    expect(shape(events)).toEqual([
      "message_start",
      "content_block_start",
      "thinking_delta+",
      "content_block_stop",
      "content_block_start",
      "input_json_delta+",
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    expect(events.filter((e) => e.event === "content_block_start").map((e) => e.data.index)).toEqual([0, 1]);
    // Back in: the thinking and the call are one assistant turn, the result a tool message.
    const use = r.body.content[1];
    const next = await messages({
      ...body,
      max_tokens: 3,
      tool_choice: { type: "none" },
      messages: [
        ...body.messages,
        { role: "assistant", content: r.body.content },
        { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "sunny" }] },
      ],
    });
    expect(next.status).toBe(200);
    expect(next.body.usage.input_tokens).toBe(
      promptTokens(
        `User: Once upon a time\n<think>${thought}.call get_weather\nTool: sunny\nAssistant: <think>`,
      ),
    );
  });

  it("thinking enabled or an effort for a model that does not think: Ollama's 400", async () => {
    for (const extra of [
      { thinking: { type: "enabled", budget_tokens: 1024 } },
      { output_config: { effort: "low" } },
    ]) {
      const r = await messages({
        model: MODEL,
        max_tokens: 5,
        messages: [{ role: "user", content: "Hi" }],
        ...extra,
      });
      expect(r.status).toBe(400);
      expect(r.body).toEqual({
        type: "error",
        error: {
          type: "invalid_request_error",
          message: expect.stringContaining("does not support thinking"),
        },
      });
    }
    // Disabled, or adaptive with no effort, is fine there (the model's default: no thinking).
    for (const thinking of [{ type: "disabled" }, { type: "adaptive" }]) {
      const r = await messages({
        model: MODEL,
        max_tokens: 5,
        messages: [{ role: "user", content: "Hi" }],
        thinking,
      });
      expect(r.status).toBe(200);
      expect(r.body.content.map((b: Json) => b.type)).toEqual(["text"]);
    }
  });
});

describe("errors (Anthropic's shape, Ollama's statuses)", () => {
  it("malformed JSON, missing or wrong-typed fields, unsupported blocks and tools: 400 invalid_request_error naming the field", async () => {
    const bad = await messages('{"model": "stories260k", ');
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({
      type: "error",
      error: { type: "invalid_request_error", message: expect.any(String) },
    });
    const hi = [{ role: "user", content: "Hi" }];
    const cases: [unknown, string][] = [
      [{ model: MODEL, messages: hi }, "max_tokens is required and must be positive"],
      [{ model: MODEL, max_tokens: 0, messages: hi }, "max_tokens is required and must be positive"],
      [{ max_tokens: 5, messages: hi }, "model is required"],
      [{ model: MODEL, max_tokens: 5 }, "messages is required"],
      [{ model: MODEL, max_tokens: 5, messages: [] }, "messages is required"],
      [{ model: MODEL, max_tokens: 5, messages: hi, temperature: "hot" }, "temperature"],
      [{ model: MODEL, max_tokens: 5, messages: hi, temperature: 1.5 }, "temperature"],
      [{ model: MODEL, max_tokens: 5, messages: [{ role: "system", content: "Hi" }] }, "messages.[0].role"],
      [
        {
          model: MODEL,
          max_tokens: 5,
          messages: [
            {
              role: "user",
              content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "" } }],
            },
          ],
        },
        "messages.[0].content.[0].type",
      ],
      [
        {
          model: MODEL,
          max_tokens: 5,
          messages: hi,
          tools: [{ type: "web_search_20250305", name: "web_search" }],
        },
        "'tools.[0].type': server tools",
      ],
      [
        { model: MODEL, max_tokens: 5, messages: hi, tool_choice: { type: "tool", name: "nope" } },
        "tool_choice",
      ],
      [{ model: MODEL, max_tokens: 5, messages: hi, thinking: { type: "sometimes" } }, "thinking"],
      [
        { model: MODEL, max_tokens: 5, messages: hi, output_config: { effort: "huge" } },
        "output_config.effort",
      ],
    ];
    for (const [body, says] of cases) {
      const r = await messages(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.type).toBe("error");
      expect(r.body.error.type).toBe("invalid_request_error");
      expect(r.body.error.message).toContain(says);
    }
  });

  it("count_tokens (Ollama has no such route) and batches are 404 not_found_error", async () => {
    for (const path of ["/v1/messages/count_tokens", "/v1/messages/batches"]) {
      const res = await fetch(`${srv.url}${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Hi" }] }),
      });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({
        type: "error",
        error: { type: "not_found_error", message: expect.any(String) },
      });
    }
  });

  it("an error after the stream started is an `error` event in Anthropic's shape", async () => {
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
      prompt: { tokens: [1, 2, 3] },
      model: { backend: "llama.cpp" },
    } as unknown as ChatGeneration;
    const gen = { chat, chatRequest: { model: MODEL, messages: [], stream: true }, done: () => undefined };
    const req = { model: MODEL, max_tokens: 5, messages: [], stream: true };
    const app = new Hono();
    app.post("/v1/messages", (c) => sseResponse(c, streamMessage(gen, req), { typedEvents: true }));
    app.onError((e, c) => errorResponse(c, e));
    const res = await app.request("/v1/messages", { method: "POST" });
    const blocks = (await res.text()).split("\n\n").filter((b) => b !== "");
    expect(blocks.map((b) => b.split("\n")[0])).toEqual([
      "event: message_start",
      "event: content_block_start",
      "event: content_block_delta",
      "event: error",
    ]);
    expect(JSON.parse(blocks.at(-1)!.split("\n")[1]!.slice("data: ".length))).toEqual({
      type: "error",
      error: { type: "api_error", message: "the generation was stopped before its end" },
    });
  });

  it("a prompt longer than the context: 400 in Anthropic's words (Claude Code compacts on them)", async () => {
    const long = "Once upon a time there was a cat. ".repeat(40);
    const n = promptTokens(long);
    expect(n).toBeGreaterThan(256);
    const r = await messages({ model: MODEL, max_tokens: 5, messages: [{ role: "user", content: long }] });
    expect(r.status).toBe(400);
    expect(r.body.error.type).toBe("invalid_request_error");
    expect(r.body.error.message).toMatch(new RegExp(`^prompt is too long: ${n} tokens > 255 maximum`));
  });

  it("a client that disconnects mid-stream frees its sequence; the server keeps serving", async () => {
    const res = await fetch(`${srv.url}/v1/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model: MODEL,
        max_tokens: 200,
        stream: true,
        messages: [{ role: "user", content: "Once upon a time" }],
      }),
    });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toMatch(/^event: message_start\n/);
    await reader.cancel();
    for (let i = 0; i < 200 && srv.ctx.scheduler.running().some((m) => m.active > 0); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(srv.ctx.scheduler.running().every((m) => m.active === 0)).toBe(true);
    const ok = await messages({
      model: MODEL,
      max_tokens: 3,
      temperature: 0,
      messages: [{ role: "user", content: "Hi" }],
    });
    expect(ok.body.usage.output_tokens).toBe(3);
  });

  it("an unknown model is a 404 not_found_error", async () => {
    const r = await messages({
      model: "no-such-model",
      max_tokens: 5,
      messages: [{ role: "user", content: "Hi" }],
    });
    expect(r.status).toBe(404);
    expect(r.body).toEqual({
      type: "error",
      error: { type: "not_found_error", message: expect.stringContaining("no-such-model") },
    });
  });
});

describe("API keys", () => {
  it("x-api-key (Anthropic's header) or a Bearer key; none or a wrong one is a 401 authentication_error", async () => {
    const locked = await startTestServer({ apiKeys: ["sekrit"] });
    try {
      const body = {
        model: MODEL,
        max_tokens: 3,
        temperature: 0,
        messages: [{ role: "user", content: "Hi" }],
      };
      const none = await messages(body, {}, locked.url);
      expect(none.status).toBe(401);
      expect(none.body).toEqual({
        type: "error",
        error: { type: "authentication_error", message: expect.any(String) },
      });
      const wrong = await messages(body, { "x-api-key": "nope" }, locked.url);
      expect(wrong.status).toBe(401);
      const ok = await messages(body, { "x-api-key": "sekrit" }, locked.url);
      expect(ok.status).toBe(200);
      const bearer = await messages(body, { Authorization: "Bearer sekrit" }, locked.url);
      expect(bearer.status).toBe(200);
      expect(bearer.body.content).toEqual(ok.body.content);
      // A browser's preflight (Anthropic's SDK in a page): open, and its headers allowed.
      const pre = await fetch(`${locked.url}/v1/messages`, {
        method: "OPTIONS",
        headers: {
          Origin: "http://localhost:3000",
          "Access-Control-Request-Method": "POST",
          "Access-Control-Request-Headers":
            "x-api-key,anthropic-version,anthropic-dangerous-direct-browser-access",
        },
      });
      expect(pre.status).toBe(204);
      const allowed = (pre.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(",");
      for (const h of ["x-api-key", "anthropic-version", "anthropic-dangerous-direct-browser-access"]) {
        expect(allowed).toContain(h);
      }
      // The OpenAI routes take x-api-key too.
      const models = await fetch(`${locked.url}/v1/models`, { headers: { "x-api-key": "sekrit" } });
      expect(models.status).toBe(200);
    } finally {
      await locked.close();
    }
  });
});
