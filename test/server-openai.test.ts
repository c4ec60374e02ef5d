/**
 * The OpenAI-compatible API over a real socket, driven by the official `openai` npm package:
 * one server (startServer + a temp store with the bundled stories260K, llama.cpp with one thread)
 * for the whole file. Expected values come from outside the code under test: llama2.c run.c's
 * greedy text for stories260K, the model's own tokenizer (src/tokenizer) for token counts and
 * token bytes, OpenAI's documented shapes, and JSON Schema checked by hand.
 * Not here: error cases and authentication (server-openai-errors.test.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { fixturePath, REPO_ROOT } from "./helpers/fixtures.ts";
import { startTestServer } from "./helpers/server-openai.ts";

const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");
const MODEL = "stories260k";
const REF = "llama2c/reference/greedy_once_upon_a_time_n200.json";

let srv: Awaited<ReturnType<typeof startTestServer>>;
let client: OpenAI;
const tok = Tokenizer.fromGgufFile(BUNDLED);

beforeAll(async () => {
  srv = await startTestServer();
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "x", maxRetries: 0 });
});

afterAll(async () => {
  await srv?.close();
});

/** run.c's first n generated tokens as text. */
function referenceText(n: number): string {
  const ref = JSON.parse(readFileSync(fixturePath(REF)!, "utf8")) as { generated_tokens: number[] };
  return tok.decode(ref.generated_tokens.slice(0, n));
}

describe("models", () => {
  it("GET /v1/models lists the bundled stories260k in OpenAI's shape", async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    expect(ids).toContain("stories260k:latest");
    const m = page.data.find((x) => x.id === "stories260k:latest")!;
    expect(m.object).toBe("model");
    expect(m.owned_by).toBe("library");
    expect(Number.isInteger(m.created)).toBe(true);
  });

  it("GET /v1/models/{id} retrieves one by any name the store resolves", async () => {
    const m = await client.models.retrieve(MODEL);
    expect(m).toMatchObject({ id: MODEL, object: "model", owned_by: "library" });
  });
});

describe.skipIf(!fixturePath(REF))("completions", () => {
  it("greedy continuation equals llama2.c run.c's text, finish_reason length at max_tokens", async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: "Once upon a time",
      max_tokens: 40,
      temperature: 0,
    });
    expect(r.object).toBe("text_completion");
    expect(r.id).toMatch(/^cmpl-/);
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]!.text).toBe(referenceText(40));
    expect(r.choices[0]!.finish_reason).toBe("length");
    // BOS + the prompt's tokens, counted by owl's own tokenizer (checked against llama.cpp elsewhere).
    const promptTokens = tok.encode("Once upon a time", { addSpecial: true }).length;
    expect(r.usage).toEqual({
      prompt_tokens: promptTokens,
      completion_tokens: 40,
      total_tokens: promptTokens + 40,
    });
  });

  it("max_tokens defaults to 16 (OpenAI's default); echo puts the prompt first", async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: "Once upon a time",
      temperature: 0,
      echo: true,
    });
    expect(r.choices[0]!.text).toBe(`Once upon a time${referenceText(16)}`);
    expect(r.usage?.completion_tokens).toBe(16);
  });

  it("streams the same text, then usage when stream_options.include_usage", async () => {
    const stream = await client.completions.create({
      model: MODEL,
      prompt: "Once upon a time",
      max_tokens: 30,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      if (chunk.choices.length === 0) usage = chunk.usage;
      for (const ch of chunk.choices) {
        text += ch.text;
        finish = ch.finish_reason ?? finish;
      }
    }
    expect(text).toBe(referenceText(30));
    expect(finish).toBe("length");
    expect(usage?.completion_tokens).toBe(30);
  });

  it("logit_bias -100 bans run.c's first greedy token; the same seed repeats a sampled text", async () => {
    const ref = JSON.parse(readFileSync(fixturePath(REF)!, "utf8")) as { generated_tokens: number[] };
    const first = ref.generated_tokens[0]!;
    const banned = await client.completions.create({
      model: MODEL,
      prompt: "Once upon a time",
      max_tokens: 1,
      temperature: 0,
      logit_bias: { [String(first)]: -100 },
    });
    expect(banned.choices[0]!.text).not.toBe(tok.decode([first]));
    const sampled = { model: MODEL, prompt: "Once upon a time", max_tokens: 20, temperature: 1, seed: 1234 };
    const a = await client.completions.create(sampled);
    const b = await client.completions.create(sampled);
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
  });

  it("stop ends before the stop string, finish_reason stop", async () => {
    const full = referenceText(40);
    const word = full.split(" ")[5]!;
    const r = await client.completions.create({
      model: MODEL,
      prompt: "Once upon a time",
      max_tokens: 40,
      temperature: 0,
      stop: [word],
    });
    expect(r.choices[0]!.text).toBe(full.slice(0, full.indexOf(word)));
    expect(r.choices[0]!.finish_reason).toBe("stop");
  });

  it("logprobs n: tokens spell the text, top alternatives hold the chosen one at temperature 0", async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: "Once upon a time",
      max_tokens: 8,
      temperature: 0,
      logprobs: 3,
    });
    const lp = r.choices[0]!.logprobs!;
    expect(lp.tokens!.join("")).toBe(r.choices[0]!.text);
    expect(lp.token_logprobs).toHaveLength(8);
    let offset = 0;
    for (let i = 0; i < 8; i++) {
      expect(lp.text_offset![i]).toBe(offset);
      offset += lp.tokens![i]!.length;
      const top = lp.top_logprobs![i]!;
      const best = Math.max(...Object.values(top));
      expect(lp.token_logprobs![i]).toBeCloseTo(best, 5);
      expect(lp.token_logprobs![i]!).toBeLessThanOrEqual(0);
    }
  });
});

describe("embeddings", () => {
  it("float and base64 give the same normalized vector; usage counts the input tokens", async () => {
    const input = "Once upon a time";
    const f = await client.embeddings.create({ model: MODEL, input, encoding_format: "float" });
    // The openai client decodes base64 into floats itself when asked for float; ask the raw form.
    const b = await client.embeddings.create({ model: MODEL, input, encoding_format: "base64" });
    expect(f.object).toBe("list");
    expect(f.data).toHaveLength(1);
    const vf = f.data[0]!.embedding;
    expect(vf.length).toBe(64); // stories260K's embedding size
    const raw = b.data[0]!.embedding as unknown as string;
    expect(typeof raw).toBe("string");
    const buf = Buffer.from(raw, "base64");
    const vb = Array.from({ length: buf.length / 4 }, (_, i) => buf.readFloatLE(i * 4));
    expect(vb).toEqual(vf);
    const norm = Math.sqrt(vf.reduce((s, x) => s + x * x, 0));
    expect(norm).toBeCloseTo(1, 5);
    expect(f.usage.prompt_tokens).toBe(tok.encode(input, { addSpecial: true }).length);
  });

  it("several inputs in order; dimensions shortens and renormalizes", async () => {
    const r = await client.embeddings.create({ model: MODEL, input: ["a cat", "a dog"] });
    expect(r.data.map((d) => d.index)).toEqual([0, 1]);
    const short = await client.embeddings.create({ model: MODEL, input: "a cat", dimensions: 16 });
    const v = short.data[0]!.embedding;
    expect(v).toHaveLength(16);
    const full = r.data[0]!.embedding.slice(0, 16);
    const n = Math.sqrt(full.reduce((s, x) => s + x * x, 0));
    for (let i = 0; i < 16; i++) expect(v[i]).toBeCloseTo(full[i]! / n, 6);
  });
});

/**
 * The prompt Ollama renders for a model without a template (stories260K has none), by hand: its
 * DefaultTemplate "{{ .Prompt }}" (template/template.go) gets {{ .Response }} appended and runs
 * once per user turn with that turn's answer, so the prompt is the user and assistant texts one
 * after another; system and tool messages have no place in it.
 */
function defaultTemplate(messages: { role: string; content: string }[]): string {
  return messages
    .filter((m) => m.role === "user" || m.role === "assistant")
    .map((m) => m.content)
    .join("");
}

describe("thinking models", () => {
  it("reasoning apart from the content (message.reasoning, delta.reasoning), unless reasoning_effort is none", async () => {
    const THINK_MODEL = "stories-think";
    await srv.ctx.store.create(THINK_MODEL, {
      from: MODEL,
      template:
        '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
        '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}\n' +
        "{{ end }}{{ end }}Assistant:{{ if and $.IsThinkSet (not $.Think) }} Sure.{{ else }} <think>{{ end }}",
      params: {},
      adapters: [],
      license: [],
      messages: [],
    });
    const messages = [{ role: "user" as const, content: "Once upon a time" }];
    const base = { model: THINK_MODEL, messages, temperature: 0, max_tokens: 20 };
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
    const r = await client.chat.completions.create(base);
    const msg = r.choices[0]!.message as (typeof r.choices)[0]["message"] & { reasoning?: string };
    expect(msg.reasoning).toBe(thought);
    expect(msg.content).toBe("");
    let streamed = "";
    for await (const c of await client.chat.completions.create({ ...base, stream: true })) {
      const d = c.choices[0]?.delta as { reasoning?: string; content?: string | null } | undefined;
      streamed += d?.reasoning ?? "";
      expect(d?.content ?? "").toBe("");
    }
    expect(streamed).toBe(thought);
    // reasoning_effort "none": the template's no-thinking branch, no reasoning.
    const off = await client.chat.completions.create({ ...base, reasoning_effort: "none" as never });
    expect((off.choices[0]!.message as { reasoning?: string }).reasoning).toBeUndefined();
    expect(off.choices[0]!.message.content!.length).toBeGreaterThan(0);
    // An effort for a model that does not think, or an unknown effort: OpenAI-shaped 400s.
    await expect(
      client.chat.completions.create({ ...base, model: MODEL, reasoning_effort: "high" }),
    ).rejects.toMatchObject({
      status: 400,
      message: expect.stringContaining("does not support thinking"),
    });
    await expect(
      client.chat.completions.create({ ...base, reasoning_effort: "loads" as never }),
    ).rejects.toMatchObject({
      status: 400,
      message: expect.stringContaining("invalid reasoning value"),
    });
  });
});

describe("thinking models with response_format", () => {
  it("the model thinks unconstrained, the format applies once its thinking ends (Ollama's ChatHandler)", async () => {
    // The closing tag is ".", which stories260K writes greedily after some words.
    const THINK_MODEL = "stories-think-dot";
    await srv.ctx.store.create(THINK_MODEL, {
      from: MODEL,
      template:
        '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
        '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}.{{ end }}{{ .Content }}\n' +
        "{{ end }}{{ end }}Assistant:{{ if and $.IsThinkSet (not $.Think) }} Sure.{{ else }} <think>{{ end }}",
      params: {},
      adapters: [],
      license: [],
      messages: [],
    });
    // The thinking: the model's raw greedy continuation of the prompt up to the closing tag.
    const raw = await client.completions.create({
      model: MODEL,
      prompt: "User: Once upon a time\nAssistant: <think>",
      temperature: 0,
      max_tokens: 40,
    });
    const text = raw.choices[0]!.text;
    expect(text.indexOf(".")).toBeGreaterThan(0);
    const thought = text.slice(0, text.indexOf(".")).trimStart();
    const params = {
      model: THINK_MODEL,
      messages: [{ role: "user" as const, content: "Once upon a time" }],
      temperature: 0,
      max_tokens: 150,
      response_format: {
        type: "json_schema" as const,
        json_schema: {
          name: "hero",
          strict: true,
          schema: {
            type: "object",
            properties: { hero: { type: "string", enum: ["Lily", "Tom"] }, brave: { type: "boolean" } },
            required: ["hero", "brave"],
            additionalProperties: false,
          },
        },
      },
    };
    const r = await client.chat.completions.create(params);
    const msg = r.choices[0]!.message as (typeof r.choices)[0]["message"] & { reasoning?: string };
    expect(msg.reasoning).toBe(thought);
    const value = JSON.parse(msg.content!) as Record<string, unknown>;
    expect(Object.keys(value).sort()).toEqual(["brave", "hero"]);
    expect(["Lily", "Tom"]).toContain(value["hero"]);
    expect(typeof value["brave"]).toBe("boolean");
    // Streamed: delta.reasoning chunks first, then the content, the same.
    let reasoning = "";
    let content = "";
    for await (const c of await client.chat.completions.create({ ...params, stream: true })) {
      const d = c.choices[0]?.delta as { reasoning?: string; content?: string | null } | undefined;
      if (d?.reasoning) expect(content).toBe("");
      reasoning += d?.reasoning ?? "";
      content += d?.content ?? "";
    }
    expect(reasoning).toBe(thought);
    expect(content).toBe(msg.content);
  });

  it("a forced tool call on a thinking model: the thinking first, then the call's grammar", async () => {
    const TOOLS_THINK = "stories-think-tools";
    await srv.ctx.store.create(TOOLS_THINK, {
      from: MODEL,
      template:
        "{{- if .Tools }}Tools:{{ range .Tools }} {{ .Function.Name }}{{ end }}\n{{ end }}" +
        '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
        '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}.{{ end }}{{ .Content }}\n' +
        "{{ end }}{{ end }}Assistant: <think>",
      params: {},
      adapters: [],
      license: [],
      messages: [],
    });
    const raw = await client.completions.create({
      model: MODEL,
      prompt: "Tools: get_weather\nUser: Once upon a time\nAssistant: <think>",
      temperature: 0,
      max_tokens: 40,
    });
    const text = raw.choices[0]!.text;
    expect(text.indexOf(".")).toBeGreaterThan(0);
    const r = await client.chat.completions.create({
      model: TOOLS_THINK,
      messages: [{ role: "user", content: "Once upon a time" }],
      temperature: 0,
      max_tokens: 150,
      tools: [
        {
          type: "function",
          function: {
            name: "get_weather",
            parameters: {
              type: "object",
              properties: { city: { type: "string", enum: ["Paris", "Rome"] } },
              required: ["city"],
            },
          },
        },
      ],
      tool_choice: "required",
    });
    const msg = r.choices[0]!.message as (typeof r.choices)[0]["message"] & { reasoning?: string };
    expect(msg.reasoning).toBe(text.slice(0, text.indexOf(".")).trimStart());
    expect(r.choices[0]!.finish_reason).toBe("tool_calls");
    const call = msg.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(["Paris", "Rome"]).toContain((JSON.parse(call.function.arguments) as { city: string }).city);
  });
});

describe("chat completions", () => {
  const messages = [
    { role: "system" as const, content: "You tell stories." },
    { role: "user" as const, content: "Once upon a time" },
  ];

  it("non-streaming: OpenAI's shape; usage counts the rendered prompt's tokens", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages,
      temperature: 0,
      max_tokens: 24,
    });
    expect(r.object).toBe("chat.completion");
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.model).toBe(MODEL);
    expect(typeof r.system_fingerprint).toBe("string");
    expect(r.choices).toHaveLength(1);
    const c = r.choices[0]!;
    expect(c.index).toBe(0);
    expect(c.message.role).toBe("assistant");
    expect(c.message.refusal).toBeNull();
    expect(c.message.tool_calls).toBeUndefined();
    expect(typeof c.message.content).toBe("string");
    expect(c.logprobs).toBeNull();
    expect(["stop", "length"]).toContain(c.finish_reason);
    const promptTokens = tok.encode(defaultTemplate(messages), { addSpecial: true }).length;
    expect(r.usage!.prompt_tokens).toBe(promptTokens);
    expect(r.usage!.total_tokens).toBe(promptTokens + r.usage!.completion_tokens);
  });

  it("text parts are joined and a developer message is a system message (same prompt tokens)", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      temperature: 0,
      max_tokens: 1,
      messages: [
        { role: "developer", content: "You tell stories." },
        {
          role: "user",
          content: [
            { type: "text", text: "Once upon " },
            { type: "text", text: "a time" },
          ],
        },
      ],
    });
    expect(r.usage!.prompt_tokens).toBe(tok.encode(defaultTemplate(messages), { addSpecial: true }).length);
  });

  it("streaming assembles to the non-streaming text (temperature 0, same seed); role first, usage last", async () => {
    const params = { model: MODEL, messages, temperature: 0, seed: 7, max_tokens: 32 };
    const whole = await client.chat.completions.create(params);
    const stream = await client.chat.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const ch of stream) chunks.push(ch);
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const ids = new Set(chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(whole.choices[0]!.message.content);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(whole.usage);
    const finish = chunks[chunks.length - 2]!.choices[0]!;
    expect(finish.finish_reason).toBe(whole.choices[0]!.finish_reason);
    expect(finish.delta).toEqual({});
  });

  it("the openai client's stream helper reassembles the same message", async () => {
    const params = { model: MODEL, messages, temperature: 0, max_tokens: 16 };
    const whole = await client.chat.completions.create(params);
    const final = await client.chat.completions.stream(params).finalChatCompletion();
    expect(final.choices[0]!.message.content).toBe(whole.choices[0]!.message.content);
  });

  it("max_tokens and max_completion_tokens end with finish_reason length", async () => {
    for (const limit of [{ max_tokens: 5 }, { max_completion_tokens: 5 }]) {
      const r = await client.chat.completions.create({ model: MODEL, messages, temperature: 0, ...limit });
      expect(r.choices[0]!.finish_reason).toBe("length");
      expect(r.usage!.completion_tokens).toBe(5);
    }
  });

  it("stop: the text ends before the first stop string, finish_reason stop", async () => {
    const whole = await client.chat.completions.create({
      model: MODEL,
      messages,
      temperature: 0,
      max_tokens: 40,
    });
    const text = whole.choices[0]!.message.content!;
    const words = text.split(" ").filter((w) => w.length > 2);
    const word = words[Math.min(3, words.length - 1)]!;
    const r = await client.chat.completions.create({
      model: MODEL,
      messages,
      temperature: 0,
      max_tokens: 40,
      stop: ["zzzz", word],
    });
    expect(r.choices[0]!.message.content).toBe(text.slice(0, text.indexOf(word)));
    expect(r.choices[0]!.finish_reason).toBe("stop");
  });

  it("logprobs with top_logprobs 3: sorted, the chosen token is the most likely at temperature 0", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages,
      temperature: 0,
      max_tokens: 10,
      logprobs: true,
      top_logprobs: 3,
    });
    const c = r.choices[0]!;
    const content = c.logprobs!.content!;
    expect(content.length).toBe(r.usage!.completion_tokens - (c.finish_reason === "stop" ? 1 : 0));
    const bytes: number[] = [];
    for (const t of content) {
      expect(t.top_logprobs).toHaveLength(3);
      const lps = t.top_logprobs.map((x) => x.logprob);
      expect([...lps].sort((a, b) => b - a)).toEqual(lps);
      expect(t.logprob).toBeCloseTo(lps[0]!, 5);
      expect(t.token).toBe(t.top_logprobs[0]!.token);
      expect(t.logprob).toBeLessThanOrEqual(0);
      bytes.push(...t.bytes!);
    }
    // The tokens' raw bytes spell the message (a token may hold part of a UTF-8 character).
    expect(Buffer.from(bytes).toString("utf8")).toBe(c.message.content);
  });

  it("response_format json_schema: the content parses and follows the schema", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages,
      temperature: 0,
      max_tokens: 60,
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "mood",
          strict: true,
          schema: {
            type: "object",
            properties: { mood: { type: "string", enum: ["happy", "sad"] }, big: { type: "boolean" } },
            required: ["mood", "big"],
            additionalProperties: false,
          },
        },
      },
    });
    // NOTE: node-llama-cpp's JSON-schema grammar allows whitespace after the object, which a
    // small model may fill up to max_tokens: JSON.parse ignores it.
    const value = JSON.parse(r.choices[0]!.message.content!) as Record<string, unknown>;
    expect(Object.keys(value).sort()).toEqual(["big", "mood"]);
    expect(["happy", "sad"]).toContain(value["mood"]);
    expect(typeof value["big"]).toBe("boolean");
  });

  const weatherTool: OpenAI.ChatCompletionTool = {
    type: "function",
    function: {
      name: "get_weather",
      description: "Weather of a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string", enum: ["Paris", "Rome"] }, celsius: { type: "boolean" } },
        required: ["city", "celsius"],
      },
    },
  };

  /** A copy of stories260K whose Modelfile TEMPLATE reads .Tools: Ollama's "tools" capability. */
  const TOOLS_MODEL = "stories-tools";
  const toolsTemplate =
    "{{- if .Tools }}Tools:{{ range .Tools }} {{ .Function.Name }}{{ end }}\n{{ end }}" +
    "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant:";

  beforeAll(async () => {
    await srv.ctx.store.create(TOOLS_MODEL, {
      from: MODEL,
      template: toolsTemplate,
      params: {},
      adapters: [],
      license: [],
      messages: [],
    });
  });

  it("tools for a model whose template cannot show them: Ollama's 400, OpenAI-shaped, before any load", async () => {
    // A copy nothing else uses, so that the scheduler's list shows whether it was loaded.
    const COPY = "stories-copy";
    await srv.ctx.store.create(COPY, {
      from: MODEL,
      params: {},
      adapters: [],
      license: [],
      messages: [],
    });
    // Ollama's OpenAI layer passes tools on whatever tool_choice says (openai/openai.go
    // FromChatRequest); ChatHandler's scheduleRunner refuses them (server/routes.go
    // CheckCapabilities: "<name> does not support tools", 400) and middleware/openai.go writes
    // that as OpenAI's error object (openai.NewError: type "invalid_request_error" for a 400).
    const choices = ["auto", "required", "none", { type: "function", function: { name: "get_weather" } }];
    for (const model of [MODEL, COPY]) {
      for (const tool_choice of choices) {
        for (const stream of [false, true]) {
          let error: unknown;
          try {
            await client.chat.completions.create({
              model,
              messages: [{ role: "user", content: "What is the weather?" }],
              tools: [weatherTool],
              tool_choice: tool_choice as OpenAI.ChatCompletionToolChoiceOption,
              stream,
            });
          } catch (e) {
            error = e;
          }
          expect(error).toBeInstanceOf(OpenAI.BadRequestError);
          const e = error as InstanceType<typeof OpenAI.BadRequestError>;
          expect(e.status).toBe(400);
          expect(e.error).toMatchObject({
            message: `${model}:latest does not support tools`,
            type: "invalid_request_error",
          });
        }
      }
    }
    expect(srv.ctx.scheduler.running().map((m) => m.name)).not.toContain(COPY);
    // Without tools the same model chats.
    const ok = await client.chat.completions.create({
      model: COPY,
      messages: [{ role: "user", content: "Once upon a time" }],
      temperature: 0,
      max_tokens: 4,
    });
    expect(ok.choices[0]!.message.content!.length).toBeGreaterThan(0);
    await srv.ctx.scheduler.unload(COPY);
  });

  it("tool_choice auto: a model that writes no call answers with text, streamed the same", async () => {
    const params = {
      model: TOOLS_MODEL,
      messages: [{ role: "user" as const, content: "Once upon a time" }],
      temperature: 0,
      max_tokens: 30,
      tools: [weatherTool],
    };
    const whole = await client.chat.completions.create(params);
    const c = whole.choices[0]!;
    expect(c.message.tool_calls).toBeUndefined();
    expect(c.finish_reason).not.toBe("tool_calls");
    expect(c.message.content!.length).toBeGreaterThan(0);
    let text = "";
    for await (const ch of await client.chat.completions.create({ ...params, stream: true })) {
      text += ch.choices[0]?.delta.content ?? "";
      expect(ch.choices[0]?.delta.tool_calls).toBeUndefined();
    }
    expect(text).toBe(c.message.content);
  });

  it("tools with tool_choice required: tool_calls with JSON arguments that follow the schema", async () => {
    const r = await client.chat.completions.create({
      model: TOOLS_MODEL,
      messages: [{ role: "user", content: "What is the weather?" }],
      temperature: 0,
      max_tokens: 80,
      tools: [weatherTool],
      tool_choice: "required",
    });
    const c = r.choices[0]!;
    expect(c.finish_reason).toBe("tool_calls");
    expect(c.message.tool_calls!.length).toBeGreaterThanOrEqual(1);
    const call = c.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.type).toBe("function");
    expect(call.id.length).toBeGreaterThan(0);
    expect(call.function.name).toBe("get_weather");
    const args = JSON.parse(call.function.arguments) as Record<string, unknown>;
    expect(["Paris", "Rome"]).toContain(args["city"]);
    expect(typeof args["celsius"]).toBe("boolean");
  });

  it("a named tool_choice, streamed: the client assembles the call; the tool result goes back in", async () => {
    const other: OpenAI.ChatCompletionTool = {
      type: "function",
      function: { name: "get_time", parameters: { type: "object", properties: {} } },
    };
    const final = await client.chat.completions
      .stream({
        model: TOOLS_MODEL,
        messages: [{ role: "user", content: "Weather?" }],
        temperature: 0,
        max_tokens: 80,
        tools: [other, weatherTool],
        tool_choice: { type: "function", function: { name: "get_weather" } },
      })
      .finalChatCompletion();
    const msg = final.choices[0]!.message;
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
    const call = msg.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe("get_weather");
    expect(["Paris", "Rome"]).toContain((JSON.parse(call.function.arguments) as { city: string }).city);

    // The call and its result in the history: rendered by the template, answered as text.
    const next = await client.chat.completions.create({
      model: TOOLS_MODEL,
      temperature: 0,
      max_tokens: 8,
      tools: [other, weatherTool],
      tool_choice: "none",
      messages: [
        { role: "user", content: "Weather?" },
        { role: "assistant", content: null, tool_calls: [call] },
        { role: "tool", tool_call_id: call.id, content: "sunny" },
      ],
    });
    expect(next.choices[0]!.message.tool_calls).toBeUndefined();
    expect(typeof next.choices[0]!.message.content).toBe("string");
    // The template by hand: tool_choice "none" leaves the tools out, every turn is rendered.
    const rendered = "user: Weather?\nassistant: \ntool: sunny\nassistant:";
    expect(next.usage!.prompt_tokens).toBe(tok.encode(rendered, { addSpecial: true }).length);
  });
});
