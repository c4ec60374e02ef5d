/**
 * Streaming responses written straight to Node's socket (src/server/stream.ts): what reaches a raw
 * HTTP client over loopback. Ollama's NDJSON and OpenAI's SSE arrive one item per chunk, carry the
 * CORS headers the middleware chose (and `Vary: Origin`; none without an Origin header), end with the API's last line/event, and a
 * client that goes away mid-stream frees its sequence while the server keeps serving.
 * Expected text: llama2.c run.c's greedy output for the bundled stories260K (reference file).
 * Not here: the routes' fields (server-ollama, server-openai tests).
 */
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../src/server/serve.ts";
import { fixturePath } from "./helpers/fixtures.ts";
import { startTestServer, type TestServer } from "./helpers/server.ts";

const REF_FILE = "llama2c/reference/greedy_once_upon_a_time_n200.json";
const refPath = fixturePath(REF_FILE);
if (!refPath) throw new Error(`missing fixture ${REF_FILE} (test/fixtures or ../shared/fixtures)`);
const REF = JSON.parse(readFileSync(refPath, "utf8")) as { stdout: string };
const PROMPT = "Once upon a time";
const ORIGIN = "http://localhost:5173";

let t: TestServer;
let server: RunningServer;
const settings = { contextLength: 256 };

beforeAll(async () => {
  t = await startTestServer(
    { ...settings, maxLoadedModels: 1, maxQueue: 4 },
    { prefix: "owl-server-stream-" },
  );
  server = t.server;
});

afterAll(async () => {
  await t?.close();
  expect(t?.internalErrors ?? []).toEqual([]);
});

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  chunks: string[];
}

/** POST a JSON body; collect the response's chunks as they arrive; stop early if asked. */
function post(
  path: string,
  body: unknown,
  stopAfterChunks = Number.POSITIVE_INFINITY,
  /** null: no Origin header. */
  origin: string | null = ORIGIN,
): Promise<RawAnswer> {
  const url = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        headers: { "Content-Type": "application/json", ...(origin !== null && { Origin: origin }) },
      },
      (res) => {
        const chunks: string[] = [];
        const answer = () => ({ status: res.statusCode ?? 0, headers: res.headers, chunks });
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          chunks.push(d);
          if (chunks.length >= stopAfterChunks) {
            req.destroy();
            resolve(answer());
          }
        });
        res.on("end", () => resolve(answer()));
        res.on("error", () => resolve(answer()));
      },
    );
    req.on("error", (e) => (stopAfterChunks === Number.POSITIVE_INFINITY ? reject(e) : undefined));
    req.end(JSON.stringify(body));
  });
}

describe("streams written to the socket", () => {
  it("Ollama NDJSON: one object per line, run.c's greedy text, CORS headers, done last", async () => {
    const r = await post("/api/generate", {
      model: "stories260k",
      prompt: PROMPT,
      stream: true,
      options: { temperature: 0, num_predict: 24, repeat_penalty: 1 },
    });
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("application/x-ndjson");
    expect(r.headers["access-control-allow-origin"]).toBe(ORIGIN);
    expect(String(r.headers.vary)).toMatch(/Origin/);
    expect(r.headers["transfer-encoding"]).toBe("chunked");
    const lines = r.chunks
      .join("")
      .split("\n")
      .filter((l) => l.length > 0);
    const objects = lines.map(
      (l) => JSON.parse(l) as { response: string; done: boolean; eval_count?: number },
    );
    expect(objects.at(-1)?.done).toBe(true);
    expect(objects.slice(0, -1).every((o) => !o.done)).toBe(true);
    expect(objects.at(-1)?.eval_count).toBe(24);
    const text = objects.map((o) => o.response).join("");
    expect(REF.stdout.startsWith(PROMPT + text)).toBe(true);
    // Written item by item, not gathered into one body: several chunks reached the client.
    expect(r.chunks.length).toBeGreaterThan(1);
  });

  it("without an Origin header (no CORS request): the same stream, no CORS headers, as Ollama's", async () => {
    const body = {
      model: "stories260k",
      prompt: PROMPT,
      stream: true,
      options: { temperature: 0, num_predict: 12, repeat_penalty: 1 },
    };
    for (const path of ["/api/generate", "/v1/completions"]) {
      const r = await post(
        path,
        path === "/api/generate"
          ? body
          : { model: "stories260k", prompt: PROMPT, stream: true, temperature: 0, max_tokens: 12 },
        Number.POSITIVE_INFINITY,
        null,
      );
      expect(r.status, path).toBe(200);
      expect(r.headers["access-control-allow-origin"], path).toBeUndefined();
      expect(r.headers.vary, path).toBeUndefined();
      const all = r.chunks.join("");
      // Ended as the API ends a stream, with nothing after it (no second set of headers or error).
      if (path === "/api/generate") expect(JSON.parse(all.trim().split("\n").at(-1)!).done).toBe(true);
      else expect(all.endsWith("data: [DONE]\n\n")).toBe(true);
      expect(all).not.toContain("Cannot write headers");
    }
  });

  it("OpenAI SSE: data events, run.c's greedy text, [DONE] last, CORS headers", async () => {
    const r = await post("/v1/completions", {
      model: "stories260k",
      prompt: PROMPT,
      stream: true,
      temperature: 0,
      max_tokens: 16,
    });
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(r.headers["access-control-allow-origin"]).toBe(ORIGIN);
    const events = r.chunks
      .join("")
      .split("\n\n")
      .filter((e) => e.length > 0);
    expect(events.at(-1)).toBe("data: [DONE]");
    const text = events
      .slice(0, -1)
      .map(
        (e) =>
          (JSON.parse(e.slice("data: ".length)) as { choices: { text: string }[] }).choices[0]?.text ?? "",
      )
      .join("");
    expect(REF.stdout.startsWith(PROMPT + text)).toBe(true);
    expect(text.length).toBeGreaterThan(0);
  });

  it("a client gone after two chunks frees the only sequence; the next request streams in full", async () => {
    const cut = await post(
      "/api/generate",
      { model: "stories260k", prompt: PROMPT, options: { temperature: 0, num_predict: 200 } },
      2,
    );
    expect(cut.status).toBe(200);
    // numParallel 1: this waits for the departed client's sequence to be released.
    const r = await post("/api/generate", {
      model: "stories260k",
      prompt: "Lily wanted to",
      stream: true,
      options: { temperature: 0, num_predict: 8 },
    });
    const last = JSON.parse(r.chunks.join("").trim().split("\n").at(-1) ?? "{}") as { done?: boolean };
    expect(last.done).toBe(true);
  });
});

describe("context shift on the Ollama routes (num_ctx 256)", () => {
  const last = (r: RawAnswer) =>
    JSON.parse(r.chunks.join("").trim().split("\n").at(-1) ?? "{}") as {
      done?: boolean;
      done_reason?: string;
      eval_count?: number;
      prompt_eval_count?: number;
    };

  it("by default a generation goes past the context (Ollama's shift), ending at num_predict", async () => {
    const r = await post("/api/generate", {
      model: "stories260k",
      prompt: PROMPT,
      stream: false,
      options: { temperature: 0, num_predict: 400 },
    });
    expect(r.status).toBe(200);
    const done = last(r);
    expect(done.done_reason).toBe("length");
    expect(done.eval_count).toBe(400);
  });

  it('"shift": false ends at the full context: prompt + generated = num_ctx', async () => {
    const r = await post("/api/generate", {
      model: "stories260k",
      prompt: PROMPT,
      stream: false,
      shift: false,
      options: { temperature: 0, num_predict: 400 },
    });
    const done = last(r);
    expect(done.done_reason).toBe("length");
    expect((done.eval_count ?? 0) + (done.prompt_eval_count ?? 0)).toBe(settings.contextLength);
  });

  it('a prompt longer than the context: cut by default; "shift": false is a 400 naming both numbers', async () => {
    const long = Array.from({ length: 80 }, () => "Once upon a time").join(" ");
    const cut = await post("/api/generate", {
      model: "stories260k",
      prompt: long,
      stream: false,
      options: { temperature: 0, num_predict: 4 },
    });
    expect(cut.status).toBe(200);
    expect(last(cut).prompt_eval_count).toBeLessThan(settings.contextLength);
    const refused = await post("/api/generate", {
      model: "stories260k",
      prompt: long,
      stream: false,
      shift: false,
      options: { temperature: 0, num_predict: 4 },
    });
    expect(refused.status).toBe(400);
    expect(refused.chunks.join("")).toMatch(/256/);
  });
});
