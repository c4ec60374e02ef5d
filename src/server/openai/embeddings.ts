/**
 * POST /v1/embeddings: one vector per input through the model's embed() (normalized), in OpenAI's
 * shape, as floats or as base64 of the little-endian float32 bytes (encoding_format).
 * `dimensions` shortens the vectors the way Ollama does (the first n components, normalized
 * again, as Matryoshka-trained models expect); more than the model's size is a 400. Token-array
 * inputs are refused in schemas.ts. An input longer than the context is a 400 naming both
 * numbers (OpenAI does not truncate either). Not here: /api/embed (the Ollama routes).
 */
import type { OpenAiEmbeddingRequest, OpenAiEmbeddingResponse } from "../../api/openai.ts";
import { isOwlError, OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { resolveModel } from "./generate.ts";
import { badRequest } from "./schemas.ts";

/** base64 of the vector's float32 values, little-endian (what the openai client decodes). */
export function float32Base64(v: Float32Array): string {
  const bytes = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) bytes.writeFloatLE(v[i] ?? 0, i * 4);
  return bytes.toString("base64");
}

/** The first n components, L2-normalized again. */
export function shorten(v: Float32Array, n: number): Float32Array {
  const out = v.slice(0, n);
  let sum = 0;
  for (const x of out) sum += x * x;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < out.length; i++) out[i] = (out[i] ?? 0) / norm;
  return out;
}

export async function createEmbeddings(
  ctx: ServerContext,
  req: OpenAiEmbeddingRequest,
  signal: AbortSignal,
): Promise<OpenAiEmbeddingResponse> {
  const inputs = typeof req.input === "string" ? [req.input] : (req.input as string[]);
  const model = await resolveModel(ctx, req.model);
  const lease = await ctx.scheduler.acquireModel({ name: req.model, model, signal });
  try {
    const size = lease.model.info.embeddingLength;
    if (req.dimensions !== undefined && req.dimensions > size) {
      throw badRequest(
        `dimensions must be at most the model's embedding size ${size}, found ${req.dimensions}`,
        "dimensions",
      );
    }
    let result: Awaited<ReturnType<typeof lease.model.embed>>;
    try {
      result = await lease.model.embed(inputs, { truncate: false, signal: lease.signal ?? signal });
    } catch (e) {
      // An input too long for the context, or empty: the field at fault is `input`.
      if (isOwlError(e, "ERR_CONTEXT_OVERFLOW") || isOwlError(e, "ERR_INVALID_ARGUMENT")) {
        throw new OwlError(e.code, e.message, { details: { ...e.details, param: "input" }, cause: e });
      }
      throw e;
    }
    const data = result.embeddings.map((v, index) => {
      const vec = req.dimensions !== undefined && req.dimensions < v.length ? shorten(v, req.dimensions) : v;
      return {
        object: "embedding" as const,
        index,
        embedding: req.encoding_format === "base64" ? float32Base64(vec) : Array.from(vec),
      };
    });
    return {
      object: "list",
      data,
      model: req.model,
      usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
    };
  } finally {
    lease.release();
  }
}
