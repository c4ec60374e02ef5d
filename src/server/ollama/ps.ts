/**
 * GET /api/ps: the models loaded now (the scheduler's running()), in Ollama's shape, the one
 * that expires last first. size_vram is 0: owl runs on the CPU. A model kept forever (negative
 * keep_alive) expires, as in Ollama, at now + Go's largest duration (about 292 years).
 * Not here: loading and unloading (runtime/scheduler.ts).
 */
import type { Hono } from "hono";
import type { OllamaModelDetails, OllamaProcessModel, OllamaProcessResponse } from "../../api/ollama.ts";
import type { ServerContext } from "../context.ts";
import { ollamaDetails, timestamp } from "./common.ts";

/** Go's math.MaxInt64 nanoseconds, in milliseconds. */
const FOREVER_MS = 9_223_372_036_854;

export function registerPsRoutes(app: Hono, ctx: ServerContext): void {
  app.get("/api/ps", async (c) => {
    const models: OllamaProcessModel[] = [];
    for (const r of ctx.scheduler.running()) {
      let details: OllamaModelDetails = {
        parent_model: "",
        format: "gguf",
        family: "",
        families: null,
        parameter_size: "",
        quantization_level: "",
      };
      let name = r.name;
      try {
        const m = await ctx.store.resolve(r.name);
        details = ollamaDetails(m.details);
        name = m.name;
      } catch {
        // Removed from the store while loaded: still running, listed with what the scheduler knows.
      }
      const expires = r.expiresAt ?? new Date(Date.now() + FOREVER_MS);
      models.push({
        name,
        model: name,
        size: r.size,
        digest: r.digest,
        details,
        expires_at: timestamp(expires),
        size_vram: 0,
        context_length: r.numCtx,
      });
    }
    models.sort((a, b) => b.expires_at.localeCompare(a.expires_at));
    const body: OllamaProcessResponse = { models };
    return c.json(body);
  });
}
