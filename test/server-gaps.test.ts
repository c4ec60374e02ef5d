/**
 * Ollama behaviours of the serving path that the first version left out, each checked against
 * Ollama's source (github.com/ollama/ollama, cited per test) on a real loopback server (temp store,
 * llama.cpp backend on one thread, context 256, the bundled stories260K):
 * - unknown and ignored options are logged (api/types.go FromMap: slog.Warn "invalid option
 *   provided") and the request is answered;
 * - a chat on a model with no template uses Ollama's DefaultTemplate "{{ .Prompt }}"
 *   (template/template.go), on /api/chat and /v1/chat/completions alike: stories260K, a base
 *   model, continues "Once upon a time" exactly as llama2.c's run.c does.
 * Not here: the routes' ordinary behaviour (server-ollama.test.ts, server-openai*.test.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import { Scheduler } from "../src/runtime/scheduler.ts";
import type { ServerContext, ServerWarning } from "../src/server/context.ts";
import { type RunningServer, startServer } from "../src/server/serve.ts";
import { ModelStore } from "../src/store/store.ts";
import type { ServerSettings } from "../src/util/env.ts";
import { fixturePath } from "./helpers/fixtures.ts";
import { REF, referenceText } from "./helpers/runtime.ts";

const MODEL = "stories260k";
const NUM_CTX = 256;

const root = mkdtempSync(join(tmpdir(), "owl-server-gaps-"));
const shutdown = new AbortController();
let server: RunningServer;
let scheduler: Scheduler;
const warnings: ServerWarning[] = [];
const internalErrors: unknown[] = [];

const settings: ServerSettings = {
  host: "127.0.0.1",
  port: 0,
  maxLoadedModels: 2,
  numParallel: 1,
  maxQueue: 8,
  keepAlive: "5m",
  apiKeys: [],
  maxBodyBytes: 256 * 1024,
  contextLength: NUM_CTX,
  backend: "llama.cpp",
  origins: [],
};

beforeAll(async () => {
  scheduler = new Scheduler({
    createBackend: (n) => createBackend(n),
    maxLoadedModels: settings.maxLoadedModels,
    numParallel: settings.numParallel,
    maxQueue: settings.maxQueue,
    defaultKeepAliveMs: 5 * 60_000,
    defaultNumCtx: settings.contextLength,
    defaultBackend: "llama.cpp",
    // NOTE: llama.cpp's spinning threads crawl on a busy 2-core machine; one thread is fast here.
    threads: 1,
  });
  const ctx: ServerContext = {
    store: new ModelStore(root),
    scheduler,
    settings,
    version: "0.0.0-test",
    shutdown: shutdown.signal,
    warn: (w) => warnings.push(w),
  };
  server = await startServer(
    ctx,
    { host: "127.0.0.1", port: 0 },
    { onInternalError: (e) => internalErrors.push(e) },
  );
});

afterAll(async () => {
  shutdown.abort();
  await server?.close({ graceMs: 1000 });
  await scheduler?.close();
  rmSync(root, { recursive: true, force: true });
  expect(internalErrors).toEqual([]);
});

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: JSON.parse(text) as Record<string, unknown> };
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
