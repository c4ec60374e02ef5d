/**
 * What the Ollama route groups share: the model a request names (`model`, or `name` from older
 * clients; 400 "model is required"), resolving it in the store with Ollama's 404 text, model
 * details in Ollama's shape, timestamps, and answering a stream of values either as NDJSON or,
 * with `"stream": false`, as one JSON object (Ollama's waitForStream: the last value).
 * Not here: the routes (generate.ts, embed.ts, models.ts, ps.ts).
 */
import type { Context } from "hono";
import type { OllamaModelDetails } from "../../api/ollama.ts";
import type { ModelDetails, ResolvedModel } from "../../store/types.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { ndjsonResponse, type StreamOptions } from "../stream.ts";

/** The model a request names; ERR_BAD_REQUEST "model is required" when neither field is set. */
export function requireModelName(body: { model?: string | null; name?: string | null }): string {
  const name = (body.model ?? "").trim() || (body.name ?? "").trim();
  if (name === "") throw new OwlError("ERR_BAD_REQUEST", "model is required");
  return name;
}

/** Ollama's message for a model that is not in the store (server/routes.go handleScheduleError). */
export function modelNotFound(name: string, cause?: unknown): OwlError {
  return new OwlError("ERR_MODEL_NOT_FOUND", `model "${name}" not found, try pulling it first`, {
    details: { model: name },
    cause,
  });
}

/** The stored model, or 404 in Ollama's words; a bad name is 400 (ERR_INVALID_NAME). */
export async function resolveModel(ctx: ServerContext, name: string): Promise<ResolvedModel> {
  try {
    return await ctx.store.resolve(name);
  } catch (e) {
    if (e instanceof OwlError && e.code === "ERR_MODEL_NOT_FOUND") throw modelNotFound(name, e);
    throw e;
  }
}

export function ollamaDetails(d: ModelDetails): OllamaModelDetails {
  return {
    parent_model: d.parent_model,
    format: d.format,
    family: d.family,
    families: d.families.length > 0 ? d.families : null,
    parameter_size: d.parameter_size,
    quantization_level: d.quantization_level,
  };
}

/** Go's time.Time in JSON (RFC 3339, UTC). */
export function timestamp(d: Date = new Date()): string {
  return d.toISOString();
}

/** Nanoseconds since `start` (a process.hrtime.bigint() reading). */
export function nsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start);
}

/**
 * A stream of values answered as NDJSON, or with `stream: false` as the last value alone (errors
 * then get their own status, as Ollama's waitForStream).
 */
export async function streamOrLast(
  c: Context,
  stream: boolean,
  values: AsyncIterable<unknown>,
  options: StreamOptions = {},
): Promise<Response> {
  if (stream) return ndjsonResponse(c, values, options);
  let last: unknown;
  for await (const v of values) last = v;
  return c.json(last ?? {});
}
