/**
 * A real owl server for the OpenAI API tests (server-openai*.test.ts): helpers/server.ts's loopback
 * server (temp store that lists the bundled stories260K, llama.cpp on one thread) with these tests'
 * settings (one model loaded, 2 sequences, context 256) and models kept loaded. Settings are given
 * explicitly, never read from the environment.
 */
import type { ServerSettings } from "../../src/util/env.ts";
import { startTestServer as startServer } from "./server.ts";

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
  const t = await startServer(testSettings(over), { prefix: "owl-openai-", keepAliveMs: -1 });
  return { url: t.server.url, ctx: t.ctx, close: () => t.close() };
}
