/**
 * A real owl server for the OpenAI API tests (server-openai*.test.ts): startServer + createApp on
 * 127.0.0.1 port 0, a temp store (never ~/.owl) that lists the bundled stories260K, the scheduler
 * with the llama.cpp backend on one thread and a small context. Settings are given explicitly,
 * never read from the environment.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackend } from "../../src/runtime/backends.ts";
import { Scheduler } from "../../src/runtime/scheduler.ts";
import type { ServerContext } from "../../src/server/context.ts";
import { type RunningServer, startServer } from "../../src/server/serve.ts";
import { ModelStore } from "../../src/store/store.ts";
import type { ServerSettings } from "../../src/util/env.ts";

export function testSettings(over: Partial<ServerSettings> = {}): ServerSettings {
  return {
    host: "127.0.0.1",
    port: 0,
    maxLoadedModels: 1,
    numParallel: 2,
    maxQueue: 8,
    keepAlive: "5m",
    apiKeys: [],
    maxBodyBytes: 64 * 1024,
    contextLength: 256,
    backend: "llama.cpp",
    origins: [],
    // NOTE: a cast because Partial<> admits explicit undefined where optional fields do not.
    ...(over as Record<string, never>),
  };
}

export async function startTestServer(over: Partial<ServerSettings> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "owl-openai-"));
  const settings = testSettings(over);
  const shutdown = new AbortController();
  const scheduler = new Scheduler({
    createBackend: (name) => createBackend(name),
    maxLoadedModels: settings.maxLoadedModels,
    numParallel: settings.numParallel,
    maxQueue: settings.maxQueue,
    defaultKeepAliveMs: -1,
    defaultNumCtx: settings.contextLength,
    defaultBackend: settings.backend,
    // NOTE: llama.cpp's spinning threads crawl on a busy 2-core machine; one thread is fast.
    threads: 1,
  });
  const ctx: ServerContext = {
    store: new ModelStore(join(dir, "models")),
    scheduler,
    settings,
    version: "0.0.0-test",
    shutdown: shutdown.signal,
  };
  const server: RunningServer = await startServer(ctx, { host: "127.0.0.1", port: 0 });
  return {
    url: server.url,
    ctx,
    async close() {
      shutdown.abort();
      await server.close({ graceMs: 1000 });
      await scheduler.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
