/**
 * The HTTP server's core over a real loopback socket (no model is loaded here): Ollama's probe
 * routes (GET|HEAD / answers "Ollama is running", /api/version), unknown routes, malformed JSON,
 * wrong field types, the body size limit (413, with and without Content-Length), bearer API keys
 * (401 in each API's shape, / and /api/version open), refusing a non-loopback bind without keys
 * (ERR_UNSAFE_BIND), CORS for loopback origins and OWL_ORIGINS, the Host check against DNS
 * rebinding, and a graceful close.
 * Not here: the Ollama routes with a model (server-ollama.test.ts), the OpenAI routes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import { Scheduler } from "../src/runtime/scheduler.ts";
import type { ServerContext } from "../src/server/context.ts";
import { type RunningServer, startServer } from "../src/server/serve.ts";
import { ModelStore } from "../src/store/store.ts";
import type { ServerSettings } from "../src/util/env.ts";
import { isOwlError } from "../src/util/errors.ts";

const root = mkdtempSync(join(tmpdir(), "owl-server-core-"));
const shutdown = new AbortController();

function settings(over: Partial<ServerSettings> = {}): ServerSettings {
  return {
    host: "127.0.0.1",
    port: 0,
    maxLoadedModels: 1,
    numParallel: 1,
    maxQueue: 4,
    keepAlive: "5m",
    apiKeys: [],
    maxBodyBytes: 4096,
    contextLength: 256,
    backend: "llama.cpp",
    origins: ["https://app.example.com"],
    ...over,
  };
}

function context(s: ServerSettings): ServerContext {
  const scheduler = new Scheduler({
    createBackend: (n) => createBackend(n),
    maxLoadedModels: s.maxLoadedModels,
    numParallel: s.numParallel,
    maxQueue: s.maxQueue,
    defaultKeepAliveMs: 60_000,
    defaultNumCtx: s.contextLength,
    defaultBackend: s.backend,
    threads: 1,
  });
  return { store: new ModelStore(root), scheduler, settings: s, version: "9.8.7", shutdown: shutdown.signal };
}

let open: RunningServer;
let locked: RunningServer;
const KEY = "s3cret-key";

beforeAll(async () => {
  open = await startServer(context(settings()), { host: "127.0.0.1", port: 0 });
  locked = await startServer(context(settings({ apiKeys: ["other", KEY] })), { host: "127.0.0.1", port: 0 });
});

afterAll(async () => {
  await open?.close();
  await locked?.close();
  shutdown.abort();
  rmSync(root, { recursive: true, force: true });
});

async function json(r: Response): Promise<unknown> {
  expect(r.headers.get("content-type")).toMatch(/^application\/json/);
  return r.json();
}

/** A raw HTTP/1.1 request (fetch cannot set Host or send a chunked body of our choosing). */
function raw(
  url: string,
  options: { method: string; path: string; headers?: Record<string, string>; chunks?: string[] },
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        method: options.method,
        path: options.path,
        headers: options.headers,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on("error", reject);
    for (const c of options.chunks ?? []) req.write(c);
    req.end();
  });
}

describe("probe routes", () => {
  it("GET / answers Ollama's exact text; HEAD / answers 200 with no body", async () => {
    const r = await fetch(`${open.url}/`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("Ollama is running");
    const h = await fetch(`${open.url}/`, { method: "HEAD" });
    expect(h.status).toBe(200);
    expect(await h.text()).toBe("");
  });

  it("/api/version answers the version", async () => {
    const r = await fetch(`${open.url}/api/version`);
    expect(r.status).toBe(200);
    expect(await json(r)).toEqual({ version: "9.8.7" });
  });

  it("unknown routes are 404 in each API's error shape", async () => {
    const o = await fetch(`${open.url}/api/nothing-here`, { method: "POST", body: "{}" });
    expect(o.status).toBe(404);
    const ob = (await json(o)) as { error: string };
    expect(ob.error).toContain("/api/nothing-here");
    const v = await fetch(`${open.url}/v1/nothing-here`);
    expect(v.status).toBe(404);
    const vb = (await json(v)) as { error: { message: string; type: string } };
    expect(vb.error.message).toContain("/v1/nothing-here");
    expect(vb.error.type).toBe("not_found_error");
  });
});

describe("bad input", () => {
  it("malformed JSON is a 400 naming the problem; an empty body is Ollama's 'missing request body'", async () => {
    const r = await fetch(`${open.url}/api/show`, { method: "POST", body: '{"model": "x",' });
    expect(r.status).toBe(400);
    const body = (await json(r)) as { error: string };
    expect(body.error).toMatch(/^invalid JSON in request body: /);
    const e = await fetch(`${open.url}/api/show`, { method: "POST", body: "" });
    expect(e.status).toBe(400);
    expect(await json(e)).toEqual({ error: "missing request body" });
  });

  it("a wrong type is a 400 naming the field, the type expected and what was found", async () => {
    const r = await fetch(`${open.url}/api/show`, { method: "POST", body: JSON.stringify({ model: 42 }) });
    expect(r.status).toBe(400);
    expect(await json(r)).toEqual({ error: 'field "model": expected string, found number 42' });
    const n = await fetch(`${open.url}/api/embed`, {
      method: "POST",
      body: JSON.stringify({ model: "m", input: ["a", 7] }),
    });
    expect(n.status).toBe(400);
    const nb = (await json(n)) as { error: string };
    expect(nb.error).toContain('field "input"');
    expect(nb.error).toContain("expected a string or an array of strings");
    const m = await fetch(`${open.url}/api/embed`, { method: "POST", body: JSON.stringify({ input: "x" }) });
    expect(m.status).toBe(400);
    expect(await json(m)).toEqual({ error: 'field "model" is required (expected string)' });
    const a = await fetch(`${open.url}/api/embed`, { method: "POST", body: "[1,2]" });
    expect(a.status).toBe(400);
    expect(await json(a)).toEqual({ error: "request body: expected a JSON object, found array (2 items)" });
  });

  it("a body over the limit is 413, with or without Content-Length", async () => {
    const big = JSON.stringify({ model: "x", prompt: "a".repeat(5000) });
    const r = await fetch(`${open.url}/api/generate`, { method: "POST", body: big });
    expect(r.status).toBe(413);
    const body = (await json(r)) as { error: string };
    expect(body.error).toContain("4096 bytes");
    const chunked = await raw(open.url, {
      method: "POST",
      path: "/api/generate",
      headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      chunks: [big.slice(0, 3000), big.slice(3000)],
    });
    expect(chunked.status).toBe(413);
    expect((JSON.parse(chunked.body) as { error: string }).error).toContain("4096 bytes");
  });
});

describe("API keys", () => {
  it("every route but / and /api/version needs a bearer key: 401 in each API's shape", async () => {
    expect((await fetch(`${locked.url}/`)).status).toBe(200);
    expect((await fetch(`${locked.url}/api/version`)).status).toBe(200);
    const none = await fetch(`${locked.url}/api/tags`);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe("Bearer");
    const nb = (await json(none)) as { error: string };
    expect(nb.error).toMatch(/^unauthorized/);
    expect(nb.error).toContain("OWL_API_KEYS");
    const wrong = await fetch(`${locked.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}x` } });
    expect(wrong.status).toBe(401);
    const wb = (await json(wrong)) as { error: { type: string } };
    expect(wb.error.type).toBe("authentication_error");
    const ok = await fetch(`${locked.url}/api/tags`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(ok.status).toBe(200);
    const list = (await json(ok)) as { models: { name: string }[] };
    expect(list.models.map((m) => m.name)).toContain("stories260k:latest");
    // Unknown routes are not revealed without a key either.
    expect((await fetch(`${locked.url}/api/nothing`)).status).toBe(401);
  });

  it("refuses to listen beyond loopback without keys, naming OWL_API_KEYS; with keys it listens", async () => {
    for (const host of ["0.0.0.0", "::", "192.168.1.23"]) {
      const err = await startServer(context(settings({ host })), { host, port: 0 }).catch((e: unknown) => e);
      expect(isOwlError(err, "ERR_UNSAFE_BIND")).toBe(true);
      const e = err as { message: string; hint?: string };
      expect(e.message).toContain(host);
      expect(e.hint).toContain("OWL_API_KEYS");
    }
    const s = await startServer(context(settings({ host: "0.0.0.0", apiKeys: [KEY] })), {
      host: "0.0.0.0",
      port: 0,
    });
    try {
      const r = await fetch(`http://127.0.0.1:${s.port}/api/tags`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      expect(r.status).toBe(200);
    } finally {
      await s.close();
    }
  });
});

describe("browsers", () => {
  it("CORS allows loopback origins and OWL_ORIGINS, not others", async () => {
    const preflight = (origin: string) =>
      fetch(`${open.url}/api/chat`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type",
        },
      });
    for (const origin of ["http://localhost:5173", "http://127.0.0.1:8080", "https://app.example.com"]) {
      const r = await preflight(origin);
      expect(r.status).toBe(204);
      expect(r.headers.get("access-control-allow-origin")).toBe(origin);
      expect(r.headers.get("access-control-allow-methods")).toContain("POST");
    }
    const evil = await preflight("https://evil.example");
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    const get = await fetch(`${open.url}/api/version`, { headers: { origin: "http://localhost:3000" } });
    expect(get.headers.get("access-control-allow-origin")).toBe("http://localhost:3000");
    expect(get.headers.get("vary")).toBe("Origin");
    // No Origin header: no CORS request, no CORS headers (gin-contrib/cors, Ollama's, returns at
    // once without one).
    const plain = await raw(open.url, { method: "GET", path: "/api/version" });
    expect(plain.status).toBe(200);
    expect(plain.headers["access-control-allow-origin"]).toBeUndefined();
    expect(plain.headers.vary).toBeUndefined();
  });

  it("a loopback server refuses a public Host name (DNS rebinding), accepts local ones", async () => {
    const bad = await raw(open.url, {
      method: "GET",
      path: "/api/version",
      headers: { host: "attacker.example:11434" },
    });
    expect(bad.status).toBe(403);
    for (const host of ["localhost:11434", "127.0.0.1", "[::1]:11434", "myhost.local"]) {
      const ok = await raw(open.url, { method: "GET", path: "/api/version", headers: { host } });
      expect(ok.status).toBe(200);
    }
  });
});

describe("lifetime", () => {
  it("close() stops the server; a second close() is harmless", async () => {
    const s = await startServer(context(settings()), { host: "127.0.0.1", port: 0 });
    expect((await fetch(`${s.url}/`)).status).toBe(200);
    await s.close();
    await s.close();
    await expect(fetch(`${s.url}/`)).rejects.toThrow();
  });

  it("a port in use is a clear error", async () => {
    const err = await startServer(context(settings()), { host: "127.0.0.1", port: open.port }).catch(
      (e: unknown) => e,
    );
    expect(isOwlError(err, "ERR_IO")).toBe(true);
    expect((err as Error).message).toContain("in use");
  });
});
