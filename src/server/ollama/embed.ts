/**
 * Ollama's embedding routes: POST /api/embed (input: a string or an array of strings; truncate,
 * default true, cuts each input to the context, false makes a longer input a 400; dimensions
 * keeps the first n values and normalizes again, as Ollama; every vector L2-normalized; timings
 * and the prompt token count) and the legacy POST /api/embeddings (prompt -> embedding). An empty
 * input only loads the model, as Ollama.
 * Not here: pooling and normalization (the backends' LoadedModel.embed).
 */
import type { Context, Hono } from "hono";
import type { OllamaEmbeddingResponse, OllamaEmbedResponse } from "../../api/ollama.ts";
import { parseKeepAlive, resolveOllamaOptions } from "../../runtime/options.ts";
import type { Lease } from "../../runtime/types.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { requestAbort } from "../stream.ts";
import { readJson } from "../validate.ts";
import { logWarnings, requestWarn } from "../warn.ts";
import { nsSince, requireModelName, resolveModel } from "./common.ts";
import { embeddingsSchema, embedSchema } from "./schemas.ts";

/** The first `n` values, normalized again (Ollama's dimensions). */
function shorten(v: Float32Array, n: number | undefined): number[] {
  const out = Array.from(n !== undefined && n > 0 && n < v.length ? v.subarray(0, n) : v);
  if (n === undefined || n <= 0 || n >= v.length) return out;
  let sum = 0;
  for (const x of out) sum += x * x;
  const scale = 1 / Math.max(Math.sqrt(sum), 1e-12);
  return out.map((x) => x * scale);
}

export function registerEmbedRoutes(app: Hono, ctx: ServerContext): void {
  const acquire = async (
    c: Context,
    name: string,
    body: { options?: Record<string, unknown> | null; keep_alive?: string | number | null },
  ): Promise<{ lease: Lease; signal: AbortSignal }> => {
    const model = await resolveModel(ctx, name);
    const opts = resolveOllamaOptions({ options: body.options ?? undefined, params: model.params });
    logWarnings(requestWarn(ctx, c), opts.warnings);
    const keepAliveMs = parseKeepAlive(body.keep_alive);
    const abort = requestAbort(c, ctx.shutdown);
    const lease = await ctx.scheduler.acquireModel({
      name,
      model,
      ...(opts.numCtx !== undefined && { numCtx: opts.numCtx }),
      ...(keepAliveMs !== undefined && { keepAliveMs }),
      signal: abort.signal,
    });
    return { lease, signal: lease.signal ?? abort.signal };
  };

  app.post("/api/embed", async (c) => {
    const t0 = process.hrtime.bigint();
    const body = await readJson(c, embedSchema);
    const name = requireModelName(body);
    const inputs = body.input == null ? [] : typeof body.input === "string" ? [body.input] : body.input;
    const nonEmpty = typeof body.input === "string" ? inputs.filter((s) => s !== "") : inputs;
    for (const [i, s] of nonEmpty.entries()) {
      if (s === "")
        throw new OwlError("ERR_BAD_REQUEST", `field "input[${i}]": expected a non-empty string, found ""`);
    }
    const { lease, signal } = await acquire(c, name, body);
    try {
      const loadNs = lease.loadNs;
      if (nonEmpty.length === 0) {
        const empty: OllamaEmbedResponse = { model: name, embeddings: [] };
        return c.json(empty);
      }
      const r = await lease.model.embed(nonEmpty, { truncate: body.truncate !== false, signal });
      const dims = body.dimensions ?? undefined;
      const resp: OllamaEmbedResponse = {
        model: name,
        embeddings: r.embeddings.map((v) => shorten(v, dims)),
        total_duration: nsSince(t0),
        load_duration: loadNs,
        prompt_eval_count: r.promptTokens,
      };
      return c.json(resp);
    } finally {
      lease.release();
    }
  });

  app.post("/api/embeddings", async (c) => {
    const body = await readJson(c, embeddingsSchema);
    const name = requireModelName(body);
    const { lease, signal } = await acquire(c, name, body);
    try {
      const prompt = body.prompt ?? "";
      if (prompt === "") {
        const empty: OllamaEmbeddingResponse = { embedding: [] };
        return c.json(empty);
      }
      const r = await lease.model.embed([prompt], { truncate: true, signal });
      const resp: OllamaEmbeddingResponse = { embedding: Array.from(r.embeddings[0] ?? []) };
      return c.json(resp);
    } finally {
      lease.release();
    }
  });
}
