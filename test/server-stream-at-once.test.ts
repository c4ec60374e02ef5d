/**
 * StreamOptions.writeAtOnce (src/server/stream.ts): an item goes to the socket in the event-loop
 * turn that produced it, before work the producer queued for the next turn (the owl engine's next
 * decode step); by default it waits for that turn, as llama.cpp's streams do. Same bytes either
 * way. writeAtOnce() follows LoadedModel.decodesOnEventLoop, which the two backends' loaded
 * models set: true for the owl engine (its forward runs on the main thread), false for llama.cpp.
 * Not here: what the routes stream (server-stream, server-ollama, server-openai tests).
 */
import { request, type Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import type { BackendName } from "../src/runtime/types.ts";
import { ndjsonResponse, sseResponse, writeAtOnce } from "../src/server/stream.ts";
import { BUNDLED } from "./helpers/runtime.ts";

/** What happened, in order: "write <item>" (a socket write of an item) or "step <n>". */
let log: string[] = [];
let server: Server;
let base = "";
const realWrite = ServerResponse.prototype.write;

/** Items 0..n-1; before yielding each it queues a "step" for the next turn (setImmediate). */
async function* producer(n: number): AsyncGenerator<{ i: number }> {
  for (let i = 0; i < n; i++) {
    setImmediate(() => log.push(`step ${i}`));
    yield { i };
  }
}

beforeAll(async () => {
  const app = new Hono();
  app.get("/ndjson", (c) => ndjsonResponse(c, producer(4), { writeAtOnce: c.req.query("once") === "1" }));
  app.get("/sse", (c) => sseResponse(c, producer(4), { writeAtOnce: c.req.query("once") === "1" }));
  server = createAdaptorServer({ fetch: app.fetch, hostname: "127.0.0.1" }) as Server;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  ServerResponse.prototype.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    const text = typeof chunk === "string" ? chunk : String(chunk);
    const m = /"i":(\d+)/.exec(text);
    if (m) log.push(`write ${m[1]}`);
    return (realWrite as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof ServerResponse.prototype.write;
});

afterAll(async () => {
  ServerResponse.prototype.write = realWrite;
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function get(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("writeAtOnce", () => {
  it("writes each item before the step its producer queued; by default after it; same bytes", async () => {
    for (const path of ["/ndjson", "/sse"]) {
      log = [];
      const once = await get(`${path}?once=1`);
      const onceLog = log;
      log = [];
      const later = await get(path);
      const laterLog = log;
      expect(once).toBe(later);
      // The first item is awaited before the response starts (errors before it get a status).
      for (const i of [1, 2, 3]) {
        expect(onceLog.indexOf(`write ${i}`), `${path} at once, item ${i}`).toBeLessThan(
          onceLog.indexOf(`step ${i}`),
        );
        expect(laterLog.indexOf(`write ${i}`), `${path} default, item ${i}`).toBeGreaterThan(
          laterLog.indexOf(`step ${i}`),
        );
      }
    }
  });

  it("follows the model's decodesOnEventLoop, whatever its backend's name", () => {
    expect(writeAtOnce({ decodesOnEventLoop: true })).toBe(true);
    expect(writeAtOnce({ decodesOnEventLoop: false })).toBe(false);
    const named = (backend: string, decodesOnEventLoop: boolean) => ({ backend, decodesOnEventLoop });
    expect(writeAtOnce(named("llama.cpp", true))).toBe(true);
    expect(writeAtOnce(named("owl", false))).toBe(false);
  });

  it("is on for the owl engine's loaded models, off for llama.cpp's", async () => {
    const expected: Record<BackendName, boolean> = { owl: true, "llama.cpp": false };
    for (const name of ["owl", "llama.cpp"] as const) {
      const model = await createBackend(name).load({
        modelPath: BUNDLED,
        adapters: [],
        numCtx: 64,
        numParallel: 1,
        threads: 1,
      });
      try {
        expect(model.backend).toBe(name);
        expect(model.decodesOnEventLoop, name).toBe(expected[name]);
        expect(writeAtOnce(model), name).toBe(expected[name]);
      } finally {
        await model.dispose();
      }
    }
  }, 60_000);
});
