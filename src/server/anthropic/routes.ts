/**
 * The Anthropic-compatible route on the server's Hono app: POST /v1/messages (messages.ts, on the
 * chat path), as Ollama serves it for Claude Code and other Anthropic clients
 * (ANTHROPIC_BASE_URL pointed at the server). Bodies are read by validate.ts and checked by
 * schema.ts; every error is answered in Anthropic's shape (http-error.ts); a streamed answer is
 * SSE with named events and no `data: [DONE]`. Ollama has no count_tokens route, nor has owl.
 * Not here: the app's middleware (auth takes x-api-key too: auth.ts).
 */
import type { Hono } from "hono";
import type { ServerContext } from "../context.ts";
import { requestAbort, sseResponse, writeAtOnce } from "../stream.ts";
import { readJsonValue } from "../validate.ts";
import { requestWarn } from "../warn.ts";
import { completeMessage, startMessage, streamMessage } from "./messages.ts";
import { parseMessagesRequest } from "./schema.ts";

export function registerAnthropicRoutes(app: Hono, ctx: ServerContext): void {
  app.post("/v1/messages", async (c) => {
    const req = parseMessagesRequest(await readJsonValue(c));
    const abort = requestAbort(c, ctx.shutdown);
    const gen = await startMessage(ctx, req, abort.signal, requestWarn(ctx, c));
    if (req.stream) {
      return sseResponse(c, streamMessage(gen, req), {
        onCancel: () => abort.abort(),
        writeAtOnce: writeAtOnce(gen.chat.model),
        typedEvents: true,
      });
    }
    return c.json(await completeMessage(gen, req));
  });
}
