/**
 * The one place that maps owl's error codes to HTTP statuses and to each API's error shape:
 * Ollama routes answer `{"error": "..."}`, OpenAI routes answer
 * `{"error": {"message", "type", "param", "code"}}` (OpenAI's documented shape), Anthropic's
 * `{"type": "error", "error": {"type", "message"}}` (Ollama's anthropic.NewError).
 * Errors that are not OwlErrors are our bugs: 500 with a generic message (the detail is logged).
 */
import { OwlError, type OwlErrorCode } from "../util/errors.ts";

/** HTTP status for an error code. */
export function statusFor(code: OwlErrorCode): number {
  switch (code) {
    case "ERR_BAD_REQUEST":
    case "ERR_INVALID_ARGUMENT":
    case "ERR_INVALID_NAME":
    case "ERR_MODELFILE_PARSE":
    case "ERR_CONTEXT_OVERFLOW":
    case "ERR_GRAMMAR":
    case "ERR_TEMPLATE_PARSE":
    case "ERR_TEMPLATE_RENDER":
    case "ERR_TEMPLATE_RAISED":
    case "ERR_TOKEN_OUT_OF_RANGE":
    case "ERR_DIGEST_MISMATCH":
    case "ERR_UNKNOWN_FORMAT":
    case "ERR_UNSUPPORTED_ARCH":
    case "ERR_UNSUPPORTED":
      return 400;
    case "ERR_UNAUTHORIZED":
      return 401;
    case "ERR_MODEL_NOT_FOUND":
    case "ERR_BLOB_NOT_FOUND":
    case "ERR_FILE_NOT_FOUND":
    case "ERR_NOT_FOUND_ROUTE":
      return 404;
    case "ERR_BODY_TOO_LARGE":
      return 413;
    case "ERR_ABORTED":
      return 499;
    case "ERR_QUEUE_FULL":
      return 503;
    default:
      // A malformed file the client supplied (a GGUF or safetensors upload, a Modelfile's FROM)
      // is the client's input, not our failure.
      if (/^ERR_(GGUF|SAFETENSORS|LLAMA2C|TENSOR)_/.test(code) || code === "ERR_TRUNCATED") return 400;
      if (code === "ERR_UNKNOWN_TENSOR_TYPE" || code === "ERR_UNKNOWN_DTYPE" || code === "ERR_INVALID_UTF8")
        return 400;
      return 500;
  }
}

export interface MappedError {
  status: number;
  message: string;
  code: OwlErrorCode | "ERR_INTERNAL";
}

/** Status and message for anything thrown by a handler. */
export function mapError(e: unknown): MappedError {
  if (e instanceof OwlError) {
    const message = e.hint ? `${e.message} (${e.hint})` : e.message;
    return { status: statusFor(e.code), message, code: e.code };
  }
  return { status: 500, message: "internal server error", code: "ERR_INTERNAL" };
}

/** Ollama's error body. */
export function ollamaErrorBody(e: MappedError): { error: string } {
  return { error: e.message };
}

/** OpenAI's error type for a status, as api.openai.com answers. */
function openAiType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 503 || status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/** OpenAI's error body. `param` names the request field at fault when known. */
export function openAiErrorBody(
  e: MappedError,
  param: string | null = null,
): { error: { message: string; type: string; param: string | null; code: string | null } } {
  // OpenAI's own codes where one exists (clients test for them), else owl's code in lower case.
  const code =
    e.code === "ERR_MODEL_NOT_FOUND"
      ? "model_not_found"
      : e.code === "ERR_CONTEXT_OVERFLOW"
        ? "context_length_exceeded"
        : e.code === "ERR_UNAUTHORIZED"
          ? "invalid_api_key"
          : e.code.toLowerCase();
  return { error: { message: e.message, type: openAiType(e.status), param, code } };
}

/** Anthropic's error type for a status (Ollama's anthropic.NewError). */
function anthropicType(status: number): string {
  if (status === 400) return "invalid_request_error";
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status === 503 || status === 529) return "overloaded_error";
  return "api_error";
}

/** Anthropic's error body (as Ollama's middleware writes it, less its random request_id). */
export function anthropicErrorBody(e: MappedError): {
  type: "error";
  error: { type: string; message: string };
} {
  return { type: "error", error: { type: anthropicType(e.status), message: e.message } };
}
