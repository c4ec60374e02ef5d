/**
 * Ollama's API served by owl over a real loopback socket, driven by the official `ollama` npm
 * client (and raw fetch for the error cases): one server for the whole file (temp store root,
 * llama.cpp backend with 1 thread, 2 parallel sequences, the bundled stories260K), so the model is
 * loaded once.
 *
 * Expected values come from outside the code under test: greedy text is llama2.c run.c's
 * reference output for the same model and prompt; statuses, fields and error texts are Ollama's
 * (server/routes.go, api/types.go); embeddings are checked for unit length and for agreeing with
 * themselves across batches.
 * Not here: the core middleware (server-core.test.ts).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ollama } from "ollama";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { gu32, writeGguf } from "../src/formats/gguf/index.ts";
import { createBackend } from "../src/runtime/backends.ts";
import { Scheduler } from "../src/runtime/scheduler.ts";
import { type RunningServer, startServer } from "../src/server/serve.ts";
import { ModelStore } from "../src/store/store.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import type { ServerSettings } from "../src/util/env.ts";
import { tinyModel } from "./helpers/engine-tiny-model.ts";
import { fixturePath, REPO_ROOT } from "./helpers/fixtures.ts";
import { writeTinyLora } from "./helpers/runtime.ts";
import { startTestServer, type TestServer } from "./helpers/server.ts";

const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");
const REF = "llama2c/reference/greedy_once_upon_a_time_n200.json";
const MODEL = "stories260k";
const N = 40;

let t: TestServer;
let server: RunningServer;
let client: Ollama;
let root: string;
let settings: ServerSettings;

beforeAll(async () => {
  t = await startTestServer(
    { numParallel: 2, maxQueue: 8, contextLength: 256 },
    { prefix: "owl-server-ollama-" },
  );
  ({ server, root, settings } = t);
  client = new Ollama({ host: server.url });
});

afterAll(async () => {
  await t?.close();
  expect(t?.internalErrors ?? []).toEqual([]);
});

/** run.c's first n generated tokens as text (the reference the CLI test uses too). */
function expectedGreedy(n: number): string {
  const ref = JSON.parse(readFileSync(fixturePath(REF)!, "utf8")) as { generated_tokens: number[] };
  const dec = Tokenizer.fromGgufFile(BUNDLED).streamingDecoder();
  let text = "";
  for (const id of ref.generated_tokens.slice(0, n)) text += dec.push(id);
  return text + dec.flush();
}

async function post(
  path: string,
  body: unknown,
  method = "POST",
): Promise<{ status: number; body: unknown }> {
  const r = await fetch(`${server.url}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: r.status, body: parsed };
}

// run.c's text is the argmax with no penalty. llama.cpp's chain (so Ollama's runner) penalizes
// before the greedy pick, so repeat_penalty must be 1: Ollama's default since its commit 6a261db7
// (api/types.go), set here anyway so that the reference holds whatever the default.
const greedy = { temperature: 0, num_predict: N, repeat_penalty: 1 };

describe.skipIf(!fixturePath(REF))("generate", () => {
  it("raw, not streamed: greedy text equals run.c's; the final object has Ollama's fields and real timings", async () => {
    const r = await client.generate({
      model: MODEL,
      prompt: "Once upon a time",
      raw: true,
      stream: false,
      options: greedy,
    });
    expect(r.response).toBe(expectedGreedy(N));
    expect(r.done).toBe(true);
    expect(r.done_reason).toBe("length");
    expect(r.model).toBe(MODEL);
    expect(Number.isNaN(Date.parse(String(r.created_at)))).toBe(false);
    expect(r.eval_count).toBe(N);
    // "Once upon a time" is BOS + 4 tokens in stories260K's vocabulary (run.c's prompt_tokens).
    expect(r.prompt_eval_count).toBe(5);
    for (const k of ["total_duration", "prompt_eval_duration", "eval_duration"] as const) {
      expect(r[k]).toBeGreaterThan(0);
    }
    expect(r.load_duration).toBeGreaterThanOrEqual(0);
    expect(r.total_duration).toBeGreaterThanOrEqual(r.prompt_eval_duration + r.eval_duration);
    // raw answers carry no context (Ollama).
    expect(r.context).toBeUndefined();
  });

  it("streamed: NDJSON chunks concatenate to the same text", async () => {
    const stream = await client.generate({
      model: MODEL,
      prompt: "Once upon a time",
      raw: true,
      stream: true,
      options: greedy,
    });
    let text = "";
    let chunks = 0;
    let last: Awaited<ReturnType<typeof client.generate>> | undefined;
    for await (const part of stream) {
      chunks++;
      text += part.response;
      last = part;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(last?.done).toBe(true);
    expect(last?.done_reason).toBe("length");
    expect(text).toBe(expectedGreedy(N));
  });

  it("templated: context = prompt + answer tokens, and a follow-up with it continues after them", async () => {
    const first = await client.generate({ model: MODEL, prompt: "Lily", stream: false, options: greedy });
    expect(first.done_reason).toBe("length");
    const ctxTokens = first.context ?? [];
    expect(ctxTokens.length).toBe(first.prompt_eval_count + N);
    const next = await client.generate({
      model: MODEL,
      prompt: "Then",
      context: ctxTokens,
      stream: false,
      options: { temperature: 0, num_predict: 5 },
    });
    expect(next.eval_count).toBe(5);
    expect(next.prompt_eval_count).toBeGreaterThan(ctxTokens.length);
    expect(next.context?.slice(0, ctxTokens.length)).toEqual(ctxTokens);
  });

  it("logprobs: one per token, greedy picks the most likely, top_logprobs sorted", async () => {
    const r = await post("/api/generate", {
      model: MODEL,
      prompt: "Once upon a time",
      raw: true,
      stream: false,
      logprobs: true,
      top_logprobs: 3,
      options: { temperature: 0, num_predict: 10 },
    });
    expect(r.status).toBe(200);
    const body = r.body as {
      response: string;
      logprobs: {
        token: string;
        logprob: number;
        bytes: number[];
        top_logprobs: { token: string; logprob: number }[];
      }[];
    };
    expect(body.response).toBe(expectedGreedy(10));
    expect(body.logprobs.length).toBe(10);
    expect(body.logprobs.map((l) => l.token).join("")).toBe(body.response);
    for (const l of body.logprobs) {
      expect(l.logprob).toBeLessThanOrEqual(0);
      expect(Buffer.from(l.bytes).toString("utf8")).toBe(l.token);
      expect(l.top_logprobs.length).toBe(3);
      expect(l.top_logprobs[0]?.token).toBe(l.token);
      expect(l.top_logprobs[0]?.logprob).toBeCloseTo(l.logprob, 5);
      for (let i = 1; i < 3; i++) {
        expect(l.top_logprobs[i]!.logprob).toBeLessThanOrEqual(l.top_logprobs[i - 1]!.logprob);
      }
    }
    const tooMany = await post("/api/generate", {
      model: MODEL,
      prompt: "x",
      logprobs: true,
      top_logprobs: 21,
    });
    expect(tooMany.status).toBe(400);
    expect((tooMany.body as { error: string }).error).toContain("top_logprobs");
  });

  it("stop strings end the answer before them", async () => {
    const full = expectedGreedy(N);
    const r = await client.generate({
      model: MODEL,
      prompt: "Once upon a time",
      raw: true,
      stream: false,
      options: { ...greedy, stop: ["girl"] },
    });
    expect(r.response).toBe(full.slice(0, full.indexOf("girl")));
    expect(r.done_reason).toBe("stop");
  });

  it("format json and a JSON schema constrain the answer", async () => {
    const j = await client.generate({
      model: MODEL,
      prompt: "Once upon a time",
      format: "json",
      stream: false,
      options: { temperature: 0, num_predict: 60 },
    });
    // The grammar guarantees a JSON prefix; a complete object parses.
    expect(String(j.response).trimStart().startsWith("{")).toBe(true);
    const schema = {
      type: "object",
      properties: { name: { type: "string", enum: ["Lily", "Tom"] }, age: { type: "integer" } },
      required: ["name", "age"],
    };
    const s = await client.generate({
      model: MODEL,
      prompt: "Once upon a time",
      format: schema,
      stream: false,
      options: { temperature: 0, num_predict: 100 },
    });
    const parsed = JSON.parse(String(s.response)) as { name: string; age: number };
    expect(["Lily", "Tom"]).toContain(parsed.name);
    expect(Number.isInteger(parsed.age)).toBe(true);
  });
});

describe("chat", () => {
  it("streams assistant messages and ends with the timings", async () => {
    const stream = await client.chat({
      model: MODEL,
      messages: [{ role: "user", content: "Once upon a time" }],
      stream: true,
      options: { temperature: 0, num_predict: 20 },
    });
    let content = "";
    let last: Awaited<ReturnType<typeof client.chat>> | undefined;
    for await (const part of stream) {
      expect(part.message.role).toBe("assistant");
      content += part.message.content;
      last = part;
    }
    expect(content.length).toBeGreaterThan(0);
    expect(last?.done).toBe(true);
    expect(last?.eval_count).toBeLessThanOrEqual(20);
    expect(last?.prompt_eval_count).toBeGreaterThan(0);
  });

  it("with tools and a JSON schema forcing a call, the tool call comes back in message.tool_calls", async () => {
    const tools = [
      {
        type: "function",
        function: {
          name: "get_weather",
          description: "the weather in a city",
          parameters: {
            type: "object",
            properties: { city: { type: "string" } },
            required: ["city"],
          },
        },
      },
    ];
    const format = {
      type: "object",
      properties: {
        name: { type: "string", enum: ["get_weather"] },
        arguments: {
          type: "object",
          properties: { city: { type: "string", enum: ["Paris", "Rome"] } },
          required: ["city"],
        },
      },
      required: ["name", "arguments"],
    };
    const messages = [
      { role: "system", content: "You call tools." },
      { role: "user", content: "What is the weather in Paris?" },
    ];
    // Ollama (CheckCapabilities): tools for a model whose template cannot show them is a 400.
    const refused = await post("/api/chat", { model: MODEL, messages, tools, stream: false });
    expect(refused).toEqual({ status: 400, body: { error: "stories260k:latest does not support tools" } });
    // A template that reads .Tools gives the model the "tools" capability.
    const TOOLS_MODEL = "stories-tools";
    await client.create({
      model: TOOLS_MODEL,
      from: MODEL,
      template:
        "{{- if .Tools }}Tools:{{ range .Tools }} {{ .Function.Name }}{{ end }}\n{{ end }}" +
        "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}assistant:",
    });
    expect((await client.show({ model: TOOLS_MODEL })).capabilities).toEqual(["completion", "tools"]);
    const r = await client.chat({
      model: TOOLS_MODEL,
      messages,
      tools,
      format,
      stream: false,
      options: { temperature: 0, num_predict: 60 },
    });
    expect(r.message.tool_calls?.length).toBe(1);
    const call = r.message.tool_calls?.[0];
    expect(call?.function.name).toBe("get_weather");
    expect(["Paris", "Rome"]).toContain(call?.function.arguments["city"]);
    expect(r.message.content).toBe("");

    // Streamed: the call arrives whole in one chunk.
    const stream = await client.chat({
      model: TOOLS_MODEL,
      messages,
      tools,
      format,
      stream: true,
      options: { temperature: 0, num_predict: 60 },
    });
    const withCalls = [];
    for await (const part of stream) if (part.message.tool_calls?.length) withCalls.push(part);
    expect(withCalls.length).toBe(1);
    const fns = (calls: typeof r.message.tool_calls) => calls?.map((t) => t.function);
    expect(fns(withCalls[0]?.message.tool_calls)).toEqual(fns(r.message.tool_calls));
    // Each call has an id, as Ollama's (and OpenAI's) "call_..." ids.
    expect((r.message.tool_calls?.[0] as { id?: string } | undefined)?.id).toMatch(/^call_/);

    // Tools offered but no call made: the answer streams as content, chunk by chunk.
    const plain = await client.chat({
      model: TOOLS_MODEL,
      messages: [{ role: "user", content: "Once upon a time" }],
      tools,
      stream: true,
      options: { temperature: 0, num_predict: 20 },
    });
    let contentChunks = 0;
    for await (const part of plain) {
      expect(part.message.tool_calls).toBeUndefined();
      if (part.message.content !== "") contentChunks++;
    }
    expect(contentChunks).toBeGreaterThan(1);

    // The tool's result goes back as a tool message, and the conversation goes on.
    const follow = await client.chat({
      model: TOOLS_MODEL,
      messages: [
        ...messages,
        { role: "assistant", content: "", tool_calls: r.message.tool_calls },
        { role: "tool", content: "sunny, 21 C", tool_name: "get_weather" },
      ],
      tools,
      stream: false,
      options: { temperature: 0, num_predict: 8 },
    });
    expect(follow.done).toBe(true);
  });
});

describe("thinking models", () => {
  it("a template with thinking tags: think on by default, the thinking comes apart from the content; think false turns it off", async () => {
    const THINK_MODEL = "stories-think";
    const PROMPT_TEXT = "Once upon a time";
    await client.create({
      model: THINK_MODEL,
      from: MODEL,
      template:
        '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
        '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}\n' +
        "{{ end }}{{ end }}Assistant:{{ if and $.IsThinkSet (not $.Think) }} Sure.{{ else }} <think>{{ end }}",
    });
    expect((await client.show({ model: THINK_MODEL })).capabilities).toEqual(["completion", "thinking"]);
    const messages = [{ role: "user", content: PROMPT_TEXT }];
    const options = { ...greedy, num_predict: 20 };
    // The template opens the thinking itself, so all the model writes is thinking: the same text
    // as the model's raw continuation of that prompt (less the whitespace after the tag).
    const raw = await post("/api/generate", {
      model: MODEL,
      prompt: `User: ${PROMPT_TEXT}\nAssistant: <think>`,
      raw: true,
      stream: false,
      options,
    });
    const rawText = (raw.body as { response: string }).response;
    expect(rawText).not.toContain("</think>");
    const r = await client.chat({ model: THINK_MODEL, messages, stream: false, options });
    expect(r.message.thinking).toBe(rawText.trimStart());
    expect(r.message.content).toBe("");
    // Streamed: thinking chunks, concatenating to the same.
    let thought = "";
    for await (const part of await client.chat({ model: THINK_MODEL, messages, stream: true, options })) {
      thought += part.message.thinking ?? "";
      expect(part.message.content).toBe("");
    }
    expect(thought).toBe(rawText.trimStart());
    // /api/generate: the same split, in "thinking".
    const g = await client.generate({ model: THINK_MODEL, prompt: PROMPT_TEXT, stream: false, options });
    expect(g.thinking).toBe(rawText.trimStart());
    expect(g.response).toBe("");
    // think: false renders the template's no-thinking branch and parses nothing.
    const off = await client.chat({ model: THINK_MODEL, messages, think: false, stream: false, options });
    expect(off.message.thinking).toBeUndefined();
    expect(off.message.content.length).toBeGreaterThan(0);
    // A model that does not think: think is a 400; think false is fine.
    const refused = await post("/api/chat", { model: MODEL, messages, think: true });
    expect(refused).toEqual({ status: 400, body: { error: `"${MODEL}" does not support thinking` } });
    const bad = await post("/api/chat", { model: THINK_MODEL, messages, think: "maybe" });
    expect(bad.status).toBe(400);
    expect(
      (await post("/api/chat", { model: MODEL, messages, think: false, stream: false, options })).status,
    ).toBe(200);
    await client.delete({ model: THINK_MODEL });
  });

  it("a format on a thinking model: it thinks unconstrained, the format applies once the thinking ends", async () => {
    const schema = {
      type: "object",
      properties: { name: { type: "string", enum: ["Lily", "Tom"] }, age: { type: "integer" } },
      required: ["name", "age"],
      additionalProperties: false,
    };
    const expectSchema = (content: string) => {
      const value = JSON.parse(content) as Record<string, unknown>;
      expect(Object.keys(value).sort()).toEqual(["age", "name"]);
      expect(["Lily", "Tom"]).toContain(value["name"]);
      expect(Number.isInteger(value["age"])).toBe(true);
    };
    const messages = [{ role: "user", content: "Once upon a time" }];
    const options = { ...greedy, num_predict: 150 };
    /** The model's unconstrained greedy continuation of a raw prompt (no format, no thinking). */
    const continuation = async (prompt: string) => {
      const r = await post("/api/generate", { model: MODEL, prompt, raw: true, stream: false, options });
      return (r.body as { response: string }).response;
    };
    /** A thinking template with these tags; `opens`: the prompt ends with the opening tag. */
    const template = (open: string, close: string, opens: boolean) =>
      '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
      `{{ else if eq .Role "assistant" }}{{ if .Thinking }}${open}{{ .Thinking }}${close}{{ end }}{{ .Content }}\n` +
      `{{ end }}{{ end }}Assistant:{{ if and $.IsThinkSet (not $.Think) }} Sure.{{ else if ${opens} }} ${open}{{ end }}`;
    // The tags are texts stories260K writes greedily. "." ends on a token's end; "pa" ends inside
    // the token "ar" of " park" (the tag's "a" is kept, re-tokenized, and what follows it is
    // written under the format); "Anna," is the answer's own first word, so the model opens the
    // thinking itself instead of the prompt.
    const cases = [
      { open: "<think>", close: ".", opens: true },
      { open: "<think>", close: "pa", opens: true },
      { open: "Anna,", close: ".", opens: false },
    ];
    for (const [i, c] of cases.entries()) {
      const name = `stories-think-format-${i}`;
      await client.create({ model: name, from: MODEL, template: template(c.open, c.close, c.opens) });
      expect((await client.show({ model: name })).capabilities).toEqual(["completion", "thinking"]);
      const raw = await continuation(`User: Once upon a time\nAssistant:${c.opens ? ` ${c.open}` : ""}`);
      // The thinking, as Ollama's parser splits it: after the opening tag (and the whitespace
      // after it), up to the closing tag.
      const after = c.opens ? raw : raw.trimStart().slice(c.open.length);
      const end = after.indexOf(c.close);
      expect(end).toBeGreaterThan(0);
      const thought = after.slice(0, end).trimStart();
      expect(thought.length).toBeGreaterThan(10);

      const r = await client.chat({ model: name, messages, format: schema, stream: false, options });
      expect(r.message.thinking).toBe(thought);
      expectSchema(r.message.content);
      // Streamed: the thinking first, then the content, the same.
      let thinking = "";
      let content = "";
      for await (const part of await client.chat({
        model: name,
        messages,
        format: schema,
        stream: true,
        options,
      })) {
        if (part.message.thinking) expect(content).toBe("");
        thinking += part.message.thinking ?? "";
        content += part.message.content;
      }
      expect(thinking).toBe(thought);
      expect(content).toBe(r.message.content);
      // /api/generate: the same (its prompt renders as the chat's).
      const g = await client.generate({
        model: name,
        prompt: "Once upon a time",
        format: schema,
        stream: false,
        options,
      });
      expect(g.thinking).toBe(thought);
      expect(g.response).toBe(r.message.content);
      // Without a format, the same thinking and the unconstrained rest.
      const free = await client.chat({ model: name, messages, stream: false, options });
      expect(free.message.thinking).toBe(thought);
      expect(() => JSON.parse(free.message.content)).toThrow();
      // A schema the grammar cannot enforce is a 400 before any thinking, streamed or not.
      for (const stream of [true, false]) {
        const bad = await post("/api/chat", {
          model: name,
          messages,
          format: { type: "object", properties: { a: { type: "string", pattern: "^x" } } },
          stream,
          options,
        });
        expect(bad.status).toBe(400);
        expect((bad.body as { error: string }).error).toContain("pattern");
      }
      await client.delete({ model: name });
    }

    // An answer that does not open with the thinking tag has no thinking: the format applies
    // from its first token, the same answer as the raw prompt with the format.
    const name = "stories-think-format-none";
    await client.create({ model: name, from: MODEL, template: template("<think>", "</think>", false) });
    const r = await client.chat({ model: name, messages, format: schema, stream: false, options });
    expect(r.message.thinking).toBeUndefined();
    const rawFormat = await client.generate({
      model: MODEL,
      prompt: "User: Once upon a time\nAssistant:",
      raw: true,
      format: schema,
      stream: false,
      options,
    });
    expectSchema(String(rawFormat.response));
    expect(r.message.content).toBe(rawFormat.response);
    await client.delete({ model: name });
  });
});

describe("embeddings", () => {
  it("embed: one unit vector per input, the same text gives the same vector in any batch", async () => {
    const r = await client.embed({ model: MODEL, input: ["Once upon a time", "Lily saw a ball"] });
    expect(r.model).toBe(MODEL);
    expect(r.embeddings.length).toBe(2);
    for (const v of r.embeddings) {
      expect(v.length).toBe(64); // stories260K's embedding_length
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    }
    expect(r.prompt_eval_count).toBeGreaterThan(0);
    const single = await client.embed({ model: MODEL, input: "Lily saw a ball" });
    expect(single.embeddings[0]?.length).toBe(64);
    for (let i = 0; i < 64; i++)
      expect(single.embeddings[0]?.[i]).toBeCloseTo(r.embeddings[1]?.[i] ?? Number.NaN, 5);
    const short = await post("/api/embed", { model: MODEL, input: "Once upon a time", dimensions: 16 });
    const sv = (short.body as { embeddings: number[][] }).embeddings[0] ?? [];
    expect(sv.length).toBe(16);
    expect(Math.hypot(...sv)).toBeCloseTo(1, 5);
  });

  it("the legacy /api/embeddings answers one vector", async () => {
    const r = await client.embeddings({ model: MODEL, prompt: "Once upon a time" });
    expect(r.embedding.length).toBe(64);
  });
});

describe("the model store", () => {
  it("list, show, copy, create (from a stored model and from an uploaded blob), pull, delete", async () => {
    const list = await client.list();
    const builtin = list.models.find((m) => m.name === "stories260k:latest");
    expect(builtin?.details.family).toBe("llama");
    expect(builtin?.details.parameter_size).toBe("260K");
    expect(builtin?.digest).toMatch(/^[0-9a-f]{64}$/);

    const show = await client.show({ model: MODEL });
    // NOTE: the client types model_info as a Map; on the wire it is a JSON object.
    const info = show.model_info as unknown as Record<string, unknown>;
    expect(info["general.architecture"]).toBe("llama");
    expect(info["llama.context_length"]).toBe(512);
    expect(info["llama.embedding_length"]).toBe(64);
    expect(info["tokenizer.ggml.tokens"]).toBeNull();
    expect(show.capabilities).toEqual(["completion"]);
    expect(show.modelfile).toContain("FROM ");
    expect(show.details.quantization_level).toBe("F32");
    const verbose = await post("/api/show", { model: MODEL, verbose: true });
    const vb = verbose.body as {
      model_info: Record<string, unknown>;
      tensors: { name: string; type: string; shape: number[] }[];
    };
    expect((vb.model_info["tokenizer.ggml.tokens"] as string[]).length).toBe(512);
    expect(vb.tensors.find((t) => t.name === "token_embd.weight")).toEqual({
      name: "token_embd.weight",
      type: "F32",
      shape: [64, 512],
    });

    await client.copy({ source: MODEL, destination: "copied:v1" });
    expect((await client.list()).models.map((m) => m.name)).toContain("copied:v1");

    const progress: string[] = [];
    for await (const p of await client.create({
      model: "story-teller",
      from: MODEL,
      system: "You tell stories.",
      parameters: { temperature: 0.3, stop: ["The end"] },
      stream: true,
    })) {
      progress.push(p.status);
    }
    expect(progress[progress.length - 1]).toBe("success");
    const told = await client.show({ model: "story-teller" });
    expect(told.system).toBe("You tell stories.");
    expect(told.parameters).toContain("temperature");
    expect(told.parameters).toContain('"The end"');

    // The older Modelfile text form.
    const fromText = await post("/api/create", {
      model: "from-text",
      modelfile: `FROM ${MODEL}\nPARAMETER num_predict 7\nSYSTEM """Be brief."""\n`,
      stream: false,
    });
    expect(fromText).toEqual({ status: 200, body: { status: "success" } });
    const ft = await client.show({ model: "from-text" });
    expect(ft.system).toBe("Be brief.");
    expect(ft.parameters).toMatch(/^num_predict\s+7$/m);
    // Its PARAMETER applies to a request that sets no num_predict of its own.
    const brief = await client.generate({
      model: "from-text",
      prompt: "Lily",
      raw: true,
      stream: false,
      keep_alive: 0,
      options: { temperature: 0 },
    });
    expect(brief.eval_count).toBe(7);
    // keep_alive 0: unloaded as soon as the request ended.
    expect((await client.ps()).models.map((m) => m.name)).not.toContain("from-text:latest");
    await client.delete({ model: "from-text" });

    // Ollama's current create flow: upload the GGUF as a blob, then create from its digest.
    const bytes = readFileSync(BUNDLED);
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    const head = await fetch(`${server.url}/api/blobs/${digest}`, { method: "HEAD" });
    expect([200, 404]).toContain(head.status);
    const bad = await fetch(`${server.url}/api/blobs/sha256:${"0".repeat(64)}`, {
      method: "POST",
      body: bytes,
    });
    expect(bad.status).toBe(400);
    const up = await fetch(`${server.url}/api/blobs/${digest}`, { method: "POST", body: bytes });
    expect([200, 201]).toContain(up.status);
    expect((await fetch(`${server.url}/api/blobs/${digest}`, { method: "HEAD" })).status).toBe(200);
    // (The ollama client's types lack `files`; the request is Ollama's documented JSON.)
    const created = await post("/api/create", {
      model: "from-blob",
      files: { "stories260k.gguf": digest },
      stream: false,
    });
    expect(created).toEqual({ status: 200, body: { status: "success" } });
    expect((await client.show({ model: "from-blob" })).details.family).toBe("llama");

    // pull of a model that is here: Ollama's progress lines, ending in success.
    const pulled: string[] = [];
    for await (const p of await client.pull({ model: "copied:v1", stream: true })) pulled.push(p.status);
    expect(pulled[0]).toBe("pulling manifest");
    expect(pulled[pulled.length - 1]).toBe("success");
    await expect(client.pull({ model: "not-here-at-all" })).rejects.toThrow(
      /pull model manifest: file does not exist/,
    );

    await client.delete({ model: "copied:v1" });
    await client.delete({ model: "from-blob" });
    const names = (await client.list()).models.map((m) => m.name);
    expect(names).not.toContain("copied:v1");
    expect(names).toContain("story-teller:latest");
    const gone = await post("/api/delete", { model: "copied:v1" }, "DELETE");
    expect(gone).toEqual({ status: 404, body: { error: "model 'copied:v1' not found" } });
  });

  it("ps lists the loaded model with its context length", async () => {
    await client.generate({ model: MODEL, prompt: "", stream: false });
    const ps = await client.ps();
    const m = ps.models.find((x) => x.name === "stories260k:latest") as
      | ((typeof ps.models)[number] & { context_length: number })
      | undefined;
    expect(m?.context_length).toBe(256);
    expect(m?.size).toBeGreaterThan(0);
    expect(Date.parse(String(m?.expires_at))).toBeGreaterThan(Date.now());
  });
});

/** A rank-1 GGUF LoRA adapter on stories260K's last ffn_down (llama.cpp's adapter format). */
async function loraBytes(dir: string): Promise<Buffer> {
  const path = join(dir, "lora.gguf");
  await writeTinyLora(path);
  return readFileSync(path);
}

describe("create with an adapter", () => {
  it("an uploaded LoRA blob in `adapters` is applied: show lists it, greedy text changes", async () => {
    const bytes = await loraBytes(root);
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    expect((await fetch(`${server.url}/api/blobs/${digest}`, { method: "POST", body: bytes })).status).toBe(
      201,
    );
    const created = await post("/api/create", {
      model: "with-lora",
      from: MODEL,
      adapters: { "lora.gguf": digest },
      stream: false,
    });
    expect(created).toEqual({ status: 200, body: { status: "success" } });
    expect((await client.show({ model: "with-lora" })).modelfile).toContain("ADAPTER ");
    const r = await client.generate({
      model: "with-lora",
      prompt: "Once upon a time",
      raw: true,
      stream: false,
      keep_alive: 0,
      options: greedy,
    });
    expect(r.eval_count).toBe(N);
    expect(r.response).not.toBe(expectedGreedy(N));
    await client.delete({ model: "with-lora" });
  });
});

describe("bad input", () => {
  it("an unknown model is Ollama's 404", async () => {
    for (const path of ["/api/generate", "/api/chat", "/api/embed"]) {
      const r = await post(path, {
        model: "nope",
        prompt: "x",
        messages: [{ role: "user", content: "x" }],
        input: "x",
      });
      expect(r).toEqual({ status: 404, body: { error: 'model "nope" not found, try pulling it first' } });
    }
    const show = await post("/api/show", { model: "nope" });
    expect(show).toEqual({ status: 404, body: { error: "model 'nope' not found" } });
  });

  it("capabilities are checked before loading: an embedding model neither generates nor chats, tools need a template for them", async () => {
    // Ollama (server/images.go): a GGUF with <arch>.pooling_type is an embedding model, which has
    // no "completion" capability; scheduleRunner checks capabilities before it loads anything.
    const input = tinyModel({ arch: "llama", type: "F32", seed: 3, C: 64, nFf: 128, nHead: 4, nHeadKv: 4 });
    input.metadata.set("llama.pooling_type", gu32(1));
    const gguf = join(root, "tiny-embed.gguf");
    await writeGguf(gguf, input);
    const store = new ModelStore(root);
    const EMBED = "tiny-embed";
    await store.create(EMBED, { from: gguf, params: {}, adapters: [], license: [], messages: [] });
    expect((await client.show({ model: EMBED })).capabilities).toEqual(["embedding"]);
    const gen = await post("/api/generate", { model: EMBED, prompt: "x" });
    expect(gen).toEqual({ status: 400, body: { error: `"${EMBED}" does not support generate` } });
    const chat = await post("/api/chat", { model: EMBED, messages: [{ role: "user", content: "x" }] });
    expect(chat).toEqual({ status: 400, body: { error: `"${EMBED}" does not support chat` } });
    // Loading it (an empty prompt or no messages) is refused the same way.
    expect((await post("/api/chat", { model: EMBED, messages: [] })).status).toBe(400);
    expect((await post("/api/generate", { model: EMBED })).status).toBe(400);
    // Tools for a model whose template cannot show them: refused, and nothing was loaded for it.
    const COPY = "stories-no-tools";
    await client.copy({ source: MODEL, destination: COPY });
    const tools = [
      { type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } },
    ];
    const refused = await post("/api/chat", {
      model: COPY,
      messages: [{ role: "user", content: "x" }],
      tools,
    });
    expect(refused).toEqual({ status: 400, body: { error: `${COPY}:latest does not support tools` } });
    const ps = (await client.ps()).models.map((m) => m.name);
    expect(ps).not.toContain(`${COPY}:latest`);
    expect(ps).not.toContain(`${EMBED}:latest`);
    await client.delete({ model: COPY });
    await client.delete({ model: EMBED });
  });

  it("negative or absurd options are 400s naming the option", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: -1 }, "options.temperature"],
      [{ top_p: 3 }, "options.top_p"],
      [{ num_ctx: "big" }, "options.num_ctx"],
      [{ num_predict: -7 }, "options.num_predict"],
    ];
    for (const [options, field] of cases) {
      const r = await post("/api/generate", { model: MODEL, prompt: "x", options, stream: false });
      expect(r.status).toBe(400);
      expect((r.body as { error: string }).error).toContain(field);
    }
    const ka = await post("/api/generate", { model: MODEL, prompt: "x", keep_alive: "forever" });
    expect(ka.status).toBe(400);
    expect((ka.body as { error: string }).error).toContain("keep_alive");
    // stories260K's template takes no suffix: Ollama's "does not support insert".
    const insert = await post("/api/generate", { model: MODEL, prompt: "def f(", suffix: "return 1" });
    expect(insert.status).toBe(400);
    expect((insert.body as { error: string }).error).toContain("does not support insert");
    const raw = await post("/api/generate", { model: MODEL, prompt: "x", raw: true, system: "s" });
    expect(raw).toEqual({
      status: 400,
      body: { error: "raw mode does not support template, system, or context" },
    });
  });

  it("with truncate: false, a prompt longer than the context is a 400 naming both numbers", async () => {
    // Ollama cuts such a prompt unless truncate is false (server/routes.go; server-gaps.test.ts).
    const r = await post("/api/generate", {
      model: MODEL,
      prompt: "Lily ".repeat(400),
      raw: true,
      stream: true,
      truncate: false,
    });
    expect(r.status).toBe(400);
    const msg = (r.body as { error: string }).error;
    expect(msg).toMatch(/\b256\b/);
    const n = /(\d+) tokens/.exec(msg);
    expect(Number(n?.[1])).toBeGreaterThan(256);
  });

  it("a chat longer than the context is a 400 with truncate: false, else cut from the oldest messages", async () => {
    const messages = [
      { role: "system", content: "You tell stories." },
      { role: "user", content: "Lily ".repeat(150) },
      { role: "assistant", content: "Tom ".repeat(150) },
      { role: "user", content: "Once upon a time" },
    ];
    const r = await post("/api/chat", { model: MODEL, messages, stream: false, truncate: false });
    expect(r.status).toBe(400);
    const msg = (r.body as { error: string }).error;
    expect(msg).toMatch(/\b256\b/);
    expect(Number(/(\d+) tokens/.exec(msg)?.[1])).toBeGreaterThan(256);
    const cut = await client.chat({
      model: MODEL,
      messages,
      stream: false,
      truncate: true,
      options: { temperature: 0, num_predict: 5 },
    } as Parameters<typeof client.chat>[0] & { stream: false });
    expect(cut.done).toBe(true);
    expect(cut.prompt_eval_count).toBeLessThan(256);
  });

  it("a client that disconnects mid-stream: the server goes on serving others", async () => {
    const ac = new AbortController();
    const r = await fetch(`${server.url}/api/generate`, {
      method: "POST",
      body: JSON.stringify({
        model: MODEL,
        prompt: "Once upon a time",
        raw: true,
        options: { temperature: 0.8, num_predict: -1 },
      }),
      signal: ac.signal,
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/x-ndjson");
    const reader = r.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('"done":false');
    ac.abort();
    await reader.cancel().catch(() => {});
    // Both sequences are usable again: two requests at once both finish.
    const [a, b] = await Promise.all([
      client.generate({
        model: MODEL,
        prompt: "Once upon a time",
        raw: true,
        stream: false,
        options: greedy,
      }),
      client.generate({
        model: MODEL,
        prompt: "Once upon a time",
        raw: true,
        stream: false,
        options: greedy,
      }),
    ]);
    expect(a.response).toBe(expectedGreedy(N));
    expect(b.response).toBe(expectedGreedy(N));
  });
});

describe("the queue", () => {
  it("beyond OWL_MAX_QUEUE waiting requests: 503; a disconnect frees the only sequence", async () => {
    // A second server over the same store: one sequence, no queue.
    const busySettings: ServerSettings = { ...settings, numParallel: 1, maxQueue: 0, contextLength: 512 };
    const sched = new Scheduler({
      createBackend: (n) => createBackend(n),
      maxLoadedModels: 1,
      numParallel: 1,
      maxQueue: 0,
      defaultKeepAliveMs: 60_000,
      defaultNumCtx: 512,
      defaultBackend: "llama.cpp",
      threads: 1,
    });
    const stop = new AbortController();
    const srv = await startServer(
      {
        store: new ModelStore(root),
        scheduler: sched,
        settings: busySettings,
        version: "t",
        shutdown: stop.signal,
      },
      { host: "127.0.0.1", port: 0 },
    );
    try {
      const body = (extra: Record<string, unknown>) =>
        JSON.stringify({ model: MODEL, prompt: "Once upon a time", raw: true, ...extra });
      const ac = new AbortController();
      const holder = await fetch(`${srv.url}/api/generate`, {
        method: "POST",
        body: body({ options: { temperature: 0.8, num_predict: -1 } }),
        signal: ac.signal,
      });
      const reader = holder.body!.getReader();
      await reader.read();
      const busy = await fetch(`${srv.url}/api/generate`, { method: "POST", body: body({ stream: false }) });
      expect(busy.status).toBe(503);
      expect(((await busy.json()) as { error: string }).error).toContain("OWL_MAX_QUEUE");
      ac.abort();
      await reader.cancel().catch(() => {});
      await vi.waitFor(() => expect(sched.running()[0]?.active).toBe(0), { timeout: 10_000, interval: 20 });
      const ok = await fetch(`${srv.url}/api/generate`, {
        method: "POST",
        body: body({ stream: false, options: greedy }),
      });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as { response: string }).response).toBe(expectedGreedy(N));

      // Shutting down while a client reads: its stream ends with an error line, close() returns.
      const reading = await fetch(`${srv.url}/api/generate`, {
        method: "POST",
        body: body({ options: { temperature: 0.8, num_predict: -1 } }),
      });
      const lines = reading.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = (await lines.read()).value ?? "";
      stop.abort();
      const closed = srv.close({ graceMs: 10_000 });
      for (;;) {
        const r = await lines.read();
        if (r.done) break;
        text += r.value;
      }
      await closed;
      const last = JSON.parse(text.trim().split("\n").pop() ?? "{}") as { error?: string };
      expect(last.error).toBe("the generation was cancelled: the server is shutting down");
    } finally {
      await srv.close({ graceMs: 1000 });
      await sched.close();
    }
  });
});

describe("load and unload (last: it unloads the model)", () => {
  it("an empty prompt loads the model; with keep_alive 0 it unloads it", async () => {
    const load = await client.generate({ model: MODEL, prompt: "", stream: false });
    expect(load.done).toBe(true);
    expect(load.done_reason).toBe("load");
    expect((await client.ps()).models.map((m) => m.name)).toContain("stories260k:latest");
    const unload = await client.generate({ model: MODEL, prompt: "", keep_alive: 0, stream: false });
    expect(unload.done_reason).toBe("unload");
    expect((await client.ps()).models).toEqual([]);
  });
});
