/**
 * The OpenAI-compatible routes on the server's Hono app: POST /v1/chat/completions,
 * POST /v1/completions, POST /v1/responses (on the chat path: responses.ts), POST /v1/embeddings,
 * GET /v1/models, GET /v1/models/{model}. Responses are not stored (as Ollama's): GET
 * /v1/responses/{id} is a 404 that says so.
 * Bodies are read by validate.ts (malformed JSON: 400) and checked by schemas.ts; every error is
 * thrown and answered by the app's error handler in OpenAI's shape with `param` (http-error.ts).
 * Streaming answers are SSE (stream.ts); a client that goes away aborts its generation and frees
 * its sequence. Not here: the app's middleware (auth, body limit, CORS: app.ts).
 *
 * Where owl differs from api.openai.com, by decision (each a 400 naming the field, never a silent
 * change): n and best_of must be 1; /v1/completions takes one prompt string (no token arrays), no
 * suffix, and not echo together with logprobs (prompt logprobs are not computed); embeddings take
 * text, not token arrays (ids of another tokenizer), and `dimensions` up to the model's size
 * (shorter: the first n components renormalized, as Ollama); image and audio parts are refused.
 * /v1/completions continues the prompt as given (no chat template, unlike Ollama's compatibility
 * layer) with max_tokens 16 by default, as OpenAI. A prompt longer than the context is a 400
 * context_length_exceeded naming both numbers. temperature and top_p default to 1 (OpenAI's
 * defaults, as Ollama maps them); other sampling options fall back to the Modelfile PARAMETERs.
 * `user`, `parallel_tool_calls` and unknown fields are ignored.
 */
import type { Hono } from "hono";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { requestAbort, sseResponse, writeAtOnce } from "../stream.ts";
import { readJsonValue } from "../validate.ts";
import { requestWarn } from "../warn.ts";
import { completeChat, startChat, streamChat } from "./chat.ts";
import { completeText, startCompletion, streamText } from "./completions.ts";
import { createEmbeddings } from "./embeddings.ts";
import { listModels, retrieveModel } from "./models.ts";
import { completeResponse, startResponse, streamResponse } from "./responses.ts";
import { parseResponsesRequest } from "./responses-schema.ts";
import { parseChatRequest, parseCompletionRequest, parseEmbeddingRequest } from "./schemas.ts";

export function registerOpenAiRoutes(app: Hono, ctx: ServerContext): void {
  app.post("/v1/chat/completions", async (c) => {
    const req = parseChatRequest(await readJsonValue(c));
    const abort = requestAbort(c, ctx.shutdown);
    const chat = await startChat(ctx, req, abort.signal, requestWarn(ctx, c));
    if (req.stream) {
      return sseResponse(c, streamChat(chat, req), {
        onCancel: () => abort.abort(),
        writeAtOnce: writeAtOnce(chat.model),
      });
    }
    return c.json(await completeChat(chat, req));
  });

  app.post("/v1/completions", async (c) => {
    const req = parseCompletionRequest(await readJsonValue(c));
    const abort = requestAbort(c, ctx.shutdown);
    const gen = await startCompletion(ctx, req, abort.signal, requestWarn(ctx, c));
    if (req.stream) {
      return sseResponse(c, streamText(gen, req), {
        onCancel: () => abort.abort(),
        writeAtOnce: writeAtOnce(gen.model),
      });
    }
    return c.json(await completeText(gen, req));
  });

  app.post("/v1/responses", async (c) => {
    // NOTE: Codex CLI compresses bodies with zstd for OpenAI's own backend (Ollama decompresses
    // them); Node 20 has no zstd, so say what is wrong instead of "invalid JSON".
    const encoding = c.req.header("content-encoding");
    if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") {
      throw new OwlError(
        "ERR_UNSUPPORTED",
        `request bodies with Content-Encoding ${JSON.stringify(encoding)} are not supported: send the JSON uncompressed`,
      );
    }
    const req = parseResponsesRequest(await readJsonValue(c));
    const abort = requestAbort(c, ctx.shutdown);
    const gen = await startResponse(ctx, req, abort.signal, requestWarn(ctx, c));
    if (req.stream) {
      // Named events and no `data: [DONE]`, as OpenAI and Ollama stream a response.
      return sseResponse(c, streamResponse(gen, req), {
        onCancel: () => abort.abort(),
        writeAtOnce: writeAtOnce(gen.chat.model),
        typedEvents: true,
      });
    }
    return c.json(await completeResponse(gen, req));
  });

  // Ollama stores no responses either (its router has no such route: a 404).
  app.get("/v1/responses/:id{.+}", (c) => {
    throw new OwlError(
      "ERR_NOT_FOUND_ROUTE",
      `response ${JSON.stringify(c.req.param("id"))} not found: owl does not store responses (send the whole conversation as input)`,
    );
  });

  app.post("/v1/embeddings", async (c) => {
    const req = parseEmbeddingRequest(await readJsonValue(c));
    const abort = requestAbort(c, ctx.shutdown);
    return c.json(await createEmbeddings(ctx, req, abort.signal));
  });

  app.get("/v1/models", async (c) => c.json(await listModels(ctx)));

  // A model name may hold "/" (namespace/model:tag): the rest of the path is the name.
  app.get("/v1/models/:model{.+}", async (c) => c.json(await retrieveModel(ctx, c.req.param("model"))));
}
