/**
 * One owl server on a loopback port for a test file: a temp store root, a Scheduler over the real
 * backends (one model thread: llama.cpp's spinning threads crawl on a busy 2-core machine), the
 * app with its warnings and internal errors collected, and a close() that undoes all of it.
 *
 *   const t = await startTestServer({ numParallel: 2, contextLength: 256 });
 *   await fetch(`${t.server.url}/api/tags`); ...; await t.close();
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBackend } from "../../src/runtime/backends.ts";
import { Scheduler } from "../../src/runtime/scheduler.ts";
import type { ServerContext, ServerWarning } from "../../src/server/context.ts";
import { type RunningServer, startServer } from "../../src/server/serve.ts";
import { ModelStore } from "../../src/store/store.ts";
import type { ServerSettings } from "../../src/util/env.ts";

export interface TestServer {
  server: RunningServer;
  ctx: ServerContext;
  scheduler: Scheduler;
  settings: ServerSettings;
  /** The store's temp root (removed by close()). */
  root: string;
  /** ServerContext.warn's warnings, in order. */
  warnings: ServerWarning[];
  /** Errors the app reported as its own bugs (answered 500). */
  internalErrors: unknown[];
  close(): Promise<void>;
}

export async function startTestServer(
  overrides: Partial<ServerSettings> = {},
  options: { prefix?: string; version?: string; keepAliveMs?: number } = {},
): Promise<TestServer> {
  const settings: ServerSettings = {
    host: "127.0.0.1",
    port: 0,
    maxLoadedModels: 2,
    numParallel: 1,
    maxQueue: 8,
    keepAlive: "5m",
    apiKeys: [],
    maxBodyBytes: 64 * 1024,
    contextLength: 256,
    backend: "llama.cpp",
    origins: [],
    ...overrides,
  };
  const root = mkdtempSync(join(tmpdir(), options.prefix ?? "owl-test-server-"));
  const shutdown = new AbortController();
  const scheduler = new Scheduler({
    createBackend: (n) => createBackend(n),
    maxLoadedModels: settings.maxLoadedModels,
    numParallel: settings.numParallel,
    maxQueue: settings.maxQueue,
    defaultKeepAliveMs: options.keepAliveMs ?? 5 * 60_000,
    defaultNumCtx: settings.contextLength,
    defaultBackend: settings.backend,
    threads: 1,
  });
  const warnings: ServerWarning[] = [];
  const internalErrors: unknown[] = [];
  const ctx: ServerContext = {
    store: new ModelStore(root),
    scheduler,
    settings,
    version: options.version ?? "0.0.0-test",
    shutdown: shutdown.signal,
    warn: (w) => warnings.push(w),
  };
  const server = await startServer(
    ctx,
    { host: "127.0.0.1", port: 0 },
    { onInternalError: (e) => internalErrors.push(e) },
  );
  return {
    server,
    ctx,
    scheduler,
    settings,
    root,
    warnings,
    internalErrors,
    async close() {
      shutdown.abort();
      await server.close({ graceMs: 1000 });
      await scheduler.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
