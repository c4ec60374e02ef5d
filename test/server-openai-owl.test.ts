/**
 * The OpenAI routes on the owl engine backend (OWL_BACKEND=owl as a setting): the same openai
 * client calls give llama2.c run.c's greedy text for stories260K, streaming equals non-streaming,
 * logprobs have OpenAI's shape; what the owl backend does not support (grammars: forced tool
 * calls, response_format) is a 400 with a hint, not a broken stream.
 * Not here: the llama.cpp backend (server-openai.test.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { fixturePath, REPO_ROOT } from "./helpers/fixtures.ts";
import { startTestServer } from "./helpers/server-openai.ts";

const MODEL = "stories260k";
const REF = "llama2c/reference/greedy_once_upon_a_time_n200.json";
const tok = Tokenizer.fromGgufFile(join(REPO_ROOT, "models", "stories260k.gguf"));

let srv: Awaited<ReturnType<typeof startTestServer>>;
let client: OpenAI;

beforeAll(async () => {
  srv = await startTestServer({ backend: "owl" });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "x", maxRetries: 0 });
});

afterAll(async () => {
  await srv?.close();
});

describe.skipIf(!fixturePath(REF))("owl backend", () => {
  it("greedy completion equals llama2.c run.c's text, streamed or not", async () => {
    const ref = JSON.parse(readFileSync(fixturePath(REF)!, "utf8")) as { generated_tokens: number[] };
    const expected = tok.decode(ref.generated_tokens.slice(0, 30));
    const params = { model: MODEL, prompt: "Once upon a time", max_tokens: 30, temperature: 0 };
    const r = await client.completions.create(params);
    expect(r.choices[0]!.text).toBe(expected);
    expect(r.choices[0]!.finish_reason).toBe("length");
    let text = "";
    for await (const ch of await client.completions.create({ ...params, stream: true }))
      text += ch.choices[0]?.text ?? "";
    expect(text).toBe(expected);
  });

  it("chat with logprobs: the chosen token is the most likely at temperature 0", async () => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Once upon a time" }],
      temperature: 0,
      max_tokens: 8,
      logprobs: true,
      top_logprobs: 2,
    });
    for (const t of r.choices[0]!.logprobs!.content!) {
      expect(t.top_logprobs).toHaveLength(2);
      expect(t.logprob).toBeCloseTo(t.top_logprobs[0]!.logprob, 5);
    }
  });

  it("a forced tool call needs a grammar: 400 saying so, streamed or not", async () => {
    // A template that shows tools (else the request is refused before that: "does not support
    // tools", as Ollama).
    const TOOLS_MODEL = "stories-tools";
    await srv.ctx.store.create(TOOLS_MODEL, {
      from: MODEL,
      template: "{{ if .Tools }}Tools: {{ .Tools }}\n{{ end }}{{ .Prompt }}",
      params: {},
      adapters: [],
      license: [],
      messages: [],
    });
    for (const stream of [false, true]) {
      let error: unknown;
      try {
        await client.chat.completions.create({
          model: TOOLS_MODEL,
          messages: [{ role: "user", content: "hi" }],
          tools: [
            { type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } },
          ],
          tool_choice: "required",
          stream,
        });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as Error).message).toMatch(/grammar|llama\.cpp/i);
    }
  });

  it("a format on a thinking model is refused the same, before any thinking is streamed", async () => {
    const THINK_MODEL = "stories-think";
    await srv.ctx.store.create(THINK_MODEL, {
      from: MODEL,
      template:
        '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
        '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}.{{ end }}{{ .Content }}\n' +
        "{{ end }}{{ end }}Assistant: <think>",
      params: {},
      adapters: [],
      license: [],
      messages: [],
    });
    for (const stream of [false, true]) {
      let error: unknown;
      try {
        const r = await client.chat.completions.create({
          model: THINK_MODEL,
          messages: [{ role: "user", content: "Once upon a time" }],
          response_format: { type: "json_object" },
          max_tokens: 20,
          stream,
        });
        if (stream) for await (const _ of r as AsyncIterable<unknown>);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as Error).message).toMatch(/grammar/i);
    }
  });
});
