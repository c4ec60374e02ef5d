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
