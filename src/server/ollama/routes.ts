/**
 * The Ollama-compatible routes (/api/...), one file per group: generate and chat (generate.ts),
 * embeddings (embed.ts), the model store (models.ts: tags, show, create, blobs, copy, delete,
 * pull, push) and running models (ps.ts). Same paths, fields, status codes and NDJSON streaming
 * as Ollama (ollama/ollama server/routes.go, docs/api.md).
 */
import type { Hono } from "hono";
import type { ServerContext } from "../context.ts";
import { registerEmbedRoutes } from "./embed.ts";
import { registerGenerateRoutes } from "./generate.ts";
import { registerModelRoutes } from "./models.ts";
import { registerPsRoutes } from "./ps.ts";

export function registerOllamaRoutes(app: Hono, ctx: ServerContext): void {
  registerGenerateRoutes(app, ctx);
  registerModelRoutes(app, ctx);
  registerEmbedRoutes(app, ctx);
  registerPsRoutes(app, ctx);
}
