/**
 * The OpenAI-compatible routes (/v1/...). Placeholder until the OpenAI routes land: app.ts calls
 * registerOpenAiRoutes so both route sets share one app, its middleware and its error handling.
 */
import type { Hono } from "hono";
import type { ServerContext } from "../context.ts";

export function registerOpenAiRoutes(_app: Hono, _ctx: ServerContext): void {}
