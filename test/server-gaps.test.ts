/**
 * Ollama behaviours of the serving path that the first version left out, each checked against
 * Ollama's source (github.com/ollama/ollama, cited per test) on a real loopback server (temp store,
 * llama.cpp backend on one thread, context 256, the bundled stories260K):
 * - unknown and ignored options are logged (api/types.go FromMap: slog.Warn "invalid option
 *   provided") and the request is answered;
 * - a chat on a model with no template uses Ollama's DefaultTemplate "{{ .Prompt }}"
 *   (template/template.go), on /api/chat and /v1/chat/completions alike: stories260K, a base
 *   model, continues "Once upon a time" exactly as llama2.c's run.c does;
 * - truncation, on unless a request says "truncate": false (server/routes.go): a chat drops its
 *   oldest messages (server/prompt.go chatPrompt), a prompt still too long keeps its first
 *   num_keep tokens + BOS and its last ones (llm/llama_server.go completionPromptForRequest),
 *   each cut logged; with false, a 400 naming both numbers;
 * - /api/ps size counts the embedding context once /api/embed made one (Ollama's size is all
 *   the runner holds).
 * Not here: the routes' ordinary behaviour (server-ollama.test.ts, server-openai*.test.ts).
 */
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerWarning } from "../src/server/context.ts";
import type { RunningServer } from "../src/server/serve.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { fixturePath } from "./helpers/fixtures.ts";
import { BUNDLED, REF, referenceText } from "./helpers/runtime.ts";
import { startTestServer, type TestServer } from "./helpers/server.ts";

const MODEL = "stories260k";
const NUM_CTX = 256;

let t: TestServer;
let server: RunningServer;
let warnings: ServerWarning[];

beforeAll(async () => {
  t = await startTestServer(
    { contextLength: NUM_CTX, maxBodyBytes: 256 * 1024 },
    { prefix: "owl-server-gaps-" },
  );
  server = t.server;
  warnings = t.warnings;
});

afterAll(async () => {
  await t?.close();
  expect(t?.internalErrors ?? []).toEqual([]);
});

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  // Some routes (/api/copy) answer 200 with an empty body, as Ollama's.
  return { status: r.status, body: (text === "" ? {} : JSON.parse(text)) as Record<string, unknown> };
}

/** The warnings logged while `f` runs. */
async function warned(f: () => Promise<unknown>): Promise<ServerWarning[]> {
  const from = warnings.length;
  await f();
  return warnings.slice(from);
}

const GREEDY = { temperature: 0, num_predict: 3 };

describe("unknown options are logged, not refused (api/types.go FromMap)", () => {
  it("/api/generate: an unknown key and an option owl ignores each give one warning line", async () => {
    let r: Awaited<ReturnType<typeof post>> | undefined;
    const w = await warned(async () => {
      r = await post("/api/generate", {
        model: MODEL,
        prompt: "Once upon a time",
        raw: true,
        stream: false,
        options: { ...GREEDY, no_such_option: 1, mirostat: 2 },
      });
    });
    expect(r?.status).toBe(200);
    expect(r?.body["done"]).toBe(true);
    expect(w).toHaveLength(2);
    expect(w.every((x) => x.method === "POST" && x.path === "/api/generate")).toBe(true);
    expect(w.map((x) => x.message)).toEqual([
      expect.stringMatching(/^invalid option provided: options\.no_such_option\b/),
      expect.stringMatching(/^options\.mirostat: mirostat sampling is not supported; ignored$/),
    ]);
  });

  it("/api/chat and /api/embed log theirs too; a request without any logs nothing", async () => {
    const chat = await warned(() =>
      post("/api/chat", {
        model: MODEL,
        messages: [{ role: "user", content: "Once upon a time" }],
        stream: false,
        options: { ...GREEDY, tfs_z: 0.5 },
      }),
    );
    expect(chat).toEqual([
      {
        method: "POST",
        path: "/api/chat",
        message: "options.tfs_z: tail-free sampling is not supported; ignored",
      },
    ]);
    const embed = await warned(() =>
      post("/api/embed", { model: MODEL, input: "Lily", options: { bogus: true } }),
    );
    expect(embed.map((x) => [x.path, x.message.split(":")[0]])).toEqual([
      ["/api/embed", "invalid option provided"],
    ]);
    const none = await warned(() =>
      post("/api/generate", { model: MODEL, prompt: "Lily", raw: true, stream: false, options: GREEDY }),
    );
    expect(none).toEqual([]);
  });

  it("/v1/chat/completions logs a Modelfile PARAMETER owl ignores", async () => {
    const created = await post("/api/create", {
      model: "gaps-mirostat",
      from: MODEL,
      parameters: { mirostat: 1 },
      stream: false,
    });
    expect(created.status).toBe(200);
    const w = await warned(async () => {
      const r = await post("/v1/chat/completions", {
        model: "gaps-mirostat",
        messages: [{ role: "user", content: "Once upon a time" }],
        max_tokens: 3,
        temperature: 0,
      });
      expect(r.status).toBe(200);
    });
    expect(w).toEqual([
      {
        method: "POST",
        path: "/v1/chat/completions",
        message: "Modelfile PARAMETER mirostat: mirostat sampling is not supported; ignored",
      },
    ]);
  });
});

describe.skipIf(!fixturePath(REF))('a model with no template: Ollama\'s "{{ .Prompt }}", not ChatML', () => {
  const N = 24;
  // The system message has no place in "{{ .Prompt }}"; the user's text is the whole prompt, so
  // greedy decoding continues it as run.c continues "Once upon a time".
  const messages = [
    { role: "system", content: "You tell stories." },
    { role: "user", content: "Once upon a time" },
  ];

  it("/api/chat answers run.c's greedy continuation", async () => {
    const r = await post("/api/chat", {
      model: MODEL,
      messages,
      stream: false,
      options: { temperature: 0, num_predict: N },
    });
    expect(r.status).toBe(200);
    expect((r.body["message"] as { content: string }).content).toBe(referenceText(N));
    // BOS + the 4 tokens of "Once upon a time", as run.c's prompt.
    expect(r.body["prompt_eval_count"]).toBe(5);
  });

  it("/v1/chat/completions renders the same prompt (Ollama's OpenAI layer goes through its chat)", async () => {
    const r = await post("/v1/chat/completions", { model: MODEL, messages, temperature: 0, max_tokens: N });
    expect(r.status).toBe(200);
    const choice = (r.body["choices"] as { message: { content: string } }[])[0]!;
    expect(choice.message.content).toBe(referenceText(N));
    expect((r.body["usage"] as { prompt_tokens: number }).prompt_tokens).toBe(5);
  });
});

describe("truncation (Ollama's default: on unless truncate is false)", () => {
  const tok = Tokenizer.fromGgufFile(BUNDLED);
  const long = `Once upon a time ${"Lily saw a big red ball. ".repeat(40)}The end`;
  /** BOS + the tokens of `text`, by owl's tokenizer (the server tokenizes with llama.cpp's). */
  const tokens = (text: string) => tok.encode(text, { addSpecial: true });
  // By hand from llm/llama_server.go for num_ctx 256, num_keep 4 (DefaultOptions), a model that
  // adds BOS: keep 4 + 1 = 5 tokens, then the last ones up to 256 - floor((256 - 5) / 2) = 131.
  const KEEP = 5;
  const LIMIT = 131;

  it("/api/generate keeps the first num_keep tokens + BOS and the last, 131 in all, and logs the cut", async () => {
    const all = tokens(long);
    expect(all.length).toBeGreaterThan(NUM_CTX);
    let r: Awaited<ReturnType<typeof post>> | undefined;
    const w = await warned(async () => {
      r = await post("/api/generate", { model: MODEL, prompt: long, stream: false, options: GREEDY });
    });
    expect(r?.status).toBe(200);
    expect(r?.body["prompt_eval_count"]).toBe(LIMIT);
    // context: the prompt's tokens as evaluated, then the answer's.
    const context = r?.body["context"] as number[];
    expect(context.slice(0, LIMIT)).toEqual([
      ...all.slice(0, KEEP),
      ...all.slice(all.length - (LIMIT - KEEP)),
    ]);
    expect(w).toHaveLength(1);
    expect(w[0]!.message).toMatch(
      /^truncating input prompt: \d+ tokens, context 256 \(num_ctx\): kept the first 5 and the last 126, 131 in all$/,
    );
  });

  it("num_keep 0 from options keeps the BOS (Ollama adds one for it) and the end", async () => {
    const all = tokens(long);
    const r = await post("/api/generate", {
      model: MODEL,
      prompt: long,
      stream: false,
      options: { ...GREEDY, num_keep: 0 },
    });
    expect(r.status).toBe(200);
    // keep 0 + 1 (BOS) = 1; limit 256 - floor(255 / 2) = 129: BOS, then the last 128.
    expect(r.body["prompt_eval_count"]).toBe(129);
    expect((r.body["context"] as number[]).slice(0, 129)).toEqual([all[0], ...all.slice(all.length - 128)]);
  });

  it("truncate: false is a 400 naming both numbers; raw prompts are cut the same way", async () => {
    const refused = await post("/api/generate", {
      model: MODEL,
      prompt: long,
      raw: true,
      stream: false,
      truncate: false,
      options: GREEDY,
    });
    expect(refused.status).toBe(400);
    const msg = refused.body["error"] as string;
    expect(msg).toContain(`${tokens(long).length} tokens`);
    expect(msg).toContain("256");
    const raw = await post("/api/generate", {
      model: MODEL,
      prompt: long,
      raw: true,
      stream: false,
      options: GREEDY,
    });
    expect(raw.status).toBe(200);
    expect(raw.body["prompt_eval_count"]).toBe(LIMIT);
  });

  it("/api/chat drops the oldest messages, keeps the system message and the last, and logs it", async () => {
    const template = "{{ range .Messages }}<{{ .Role }}>{{ .Content }}{{ end }}";
    const created = await post("/api/create", {
      model: "gaps-template",
      from: MODEL,
      template,
      stream: false,
    });
    expect(created.status).toBe(200);
    const messages = [
      { role: "system", content: "S" },
      { role: "user", content: "Lily ".repeat(120) },
      { role: "assistant", content: "Tom ".repeat(60) },
      { role: "user", content: "Once upon a time" },
    ];
    let r: Awaited<ReturnType<typeof post>> | undefined;
    const w = await warned(async () => {
      r = await post("/api/chat", { model: "gaps-template", messages, stream: false, options: GREEDY });
    });
    expect(r?.status).toBe(200);
    // Without the first user message the prompt fits (the Tom turn is ~130 tokens): that prompt.
    const expected = tokens(`<system>S<assistant>${"Tom ".repeat(60)}<user>Once upon a time`);
    expect(expected.length).toBeLessThan(NUM_CTX);
    expect(r?.body["prompt_eval_count"]).toBe(expected.length);
    expect(w.map((x) => x.message)).toEqual([
      "truncating input messages which exceed context length: dropped 1 of the oldest",
    ]);
    const refused = await post("/api/chat", {
      model: "gaps-template",
      messages,
      stream: false,
      truncate: false,
      options: GREEDY,
    });
    expect(refused.status).toBe(400);
  });

  it("/api/chat with one message too long: cut by tokens as a prompt", async () => {
    const r = await post("/api/chat", {
      model: MODEL,
      messages: [{ role: "user", content: long }],
      stream: false,
      options: GREEDY,
    });
    expect(r.status).toBe(200);
    expect(r.body["prompt_eval_count"]).toBe(LIMIT);
  });
});

describe("/api/ps size", () => {
  it("grows by the embedding context's memory once /api/embed made one", async () => {
    // A context size no other test uses: a runner of its own, with no embedding context yet.
    // NOTE: node-llama-cpp rounds a context size up to a multiple of 256 unless that reaches the
    // model's training context (512 here): 301 tokens stay 301.
    const numCtx = 300;
    const options = { num_ctx: numCtx };
    const size = async () => {
      const ps = (await (await fetch(`${server.url}/api/ps`)).json()) as {
        models: { size: number; context_length: number }[];
      };
      return ps.models.find((m) => m.context_length === numCtx)?.size;
    };
    expect((await post("/api/generate", { model: MODEL, prompt: "", options })).status).toBe(200);
    const loaded = await size();
    expect(loaded).toBeGreaterThan(0);
    expect((await post("/api/embed", { model: MODEL, input: "Lily", options })).status).toBe(200);
    const withEmbeddings = await size();
    // node-llama-cpp's own estimate for that context (public GGUF insights): num_ctx + 1 tokens
    // (it takes inputs shorter than its size), one sequence, a batch of the whole context.
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: BUNDLED });
    try {
      const est = await model.fileInsights.estimateContextResourceRequirementsV2({
        contextSize: numCtx + 1,
        batchSize: numCtx + 1,
        modelGpuLayers: 0,
        isEmbeddingContext: true,
        sequences: 1,
      });
      expect(est.cpuRam).toBeGreaterThan(0);
      expect(withEmbeddings! - loaded!).toBe(est.cpuRam + est.gpuVram);
    } finally {
      await model.dispose();
    }
  });
});
