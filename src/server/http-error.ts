/**
 * Error responses in the shape of the API a request belongs to: `/v1/messages` answers Anthropic's
 * `{"type": "error", "error": {...}}`, other `/v1/...` routes OpenAI's `{"error": {...}}`, every
 * other route Ollama's `{"error": "..."}` (statuses and bodies from
 * error-map.ts). Used by the app's error handler, the auth and body-limit middleware and the
 * streaming helpers (an error line in the middle of a stream).
 * Not here: which code maps to which status (error-map.ts).
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  anthropicErrorBody,
  type MappedError,
  mapError,
  ollamaErrorBody,
  openAiErrorBody,
} from "./error-map.ts";

export type ApiFamily = "ollama" | "openai" | "anthropic";

/** Which API a path belongs to. */
export function apiFamily(path: string): ApiFamily {
  if (path === "/v1/messages" || path.startsWith("/v1/messages/")) return "anthropic";
  return path === "/v1" || path.startsWith("/v1/") ? "openai" : "ollama";
}

/** The error body of `family` for a mapped error. */
export function errorBody(family: ApiFamily, mapped: MappedError, param: string | null = null): unknown {
  if (family === "anthropic") return anthropicErrorBody(mapped);
  return family === "openai" ? openAiErrorBody(mapped, param) : ollamaErrorBody(mapped);
}

/** The JSON error response for anything thrown, in the shape of the request's API. */
export function errorResponse(c: Context, e: unknown): Response {
  const mapped = mapError(e);
  const param = paramOf(e);
  const headers: Record<string, string> = {};
  if (mapped.status === 401) headers["WWW-Authenticate"] = "Bearer";
  return c.json(errorBody(apiFamily(c.req.path), mapped, param), statusCode(mapped.status), headers);
}

/** The request field an error names (OwlError details.param or details.field), for OpenAI's `param`. */
function paramOf(e: unknown): string | null {
  if (typeof e !== "object" || e === null || !("details" in e)) return null;
  const details = (e as { details?: Record<string, unknown> }).details;
  const p = details?.["param"] ?? details?.["field"];
  return typeof p === "string" ? p : null;
}

/** Hono's status type is a literal union; every status error-map.ts gives is one with a body. */
export function statusCode(status: number): ContentfulStatusCode {
  return status as ContentfulStatusCode;
}
