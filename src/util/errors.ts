/**
 * OwlError: the one error class of owl, with a closed union of codes grouped by domain.
 *
 * A message says what was expected, what was found and where. Only cli/main.ts maps codes to
 * exit codes, and only server/error-map.ts maps them to HTTP statuses. Internal invariants use
 * assert(): a failure there is our bug, not the user's input.
 */

export type OwlErrorCode =
  // generic I/O and input
  | "ERR_FILE_NOT_FOUND"
  | "ERR_IO"
  | "ERR_INVALID_ARGUMENT"
  | "ERR_UNSUPPORTED"
  | "ERR_ABORTED"
  // bytes-level decoding shared by every format
  | "ERR_TRUNCATED"
  | "ERR_INVALID_UTF8"
  // GGUF
  | "ERR_GGUF_BAD_MAGIC"
  | "ERR_GGUF_UNSUPPORTED_VERSION"
  | "ERR_GGUF_BAD_COUNT"
  | "ERR_GGUF_BAD_VALUE_TYPE"
  | "ERR_GGUF_BAD_STRING"
  | "ERR_GGUF_DUPLICATE_KEY"
  | "ERR_GGUF_BAD_ALIGNMENT"
  | "ERR_GGUF_BAD_TENSOR_INFO"
  | "ERR_GGUF_MISALIGNED_TENSOR"
  | "ERR_GGUF_DUPLICATE_TENSOR"
  | "ERR_GGUF_METADATA_TYPE"
  | "ERR_GGUF_WRITE"
  // tensors (any format)
  | "ERR_TENSOR_OUT_OF_BOUNDS"
  | "ERR_TENSOR_OVERLAP"
  | "ERR_TENSOR_NOT_FOUND"
  | "ERR_TENSOR_SHAPE"
  | "ERR_UNKNOWN_TENSOR_TYPE"
  | "ERR_UNKNOWN_DTYPE"
  // safetensors
  | "ERR_SAFETENSORS_BAD_HEADER"
  | "ERR_SAFETENSORS_HEADER_TOO_LARGE"
  | "ERR_SAFETENSORS_BAD_INDEX"
  | "ERR_SAFETENSORS_DUPLICATE_KEY"
  | "ERR_SAFETENSORS_BAD_METADATA"
  | "ERR_SAFETENSORS_INCOMPLETE_BUFFER"
  | "ERR_SAFETENSORS_WRITE"
  // llama2.c checkpoints and tokenizers
  | "ERR_LLAMA2C_BAD_HEADER"
  | "ERR_LLAMA2C_SIZE_MISMATCH"
  | "ERR_LLAMA2C_BAD_TOKENIZER"
  // quantization
  | "ERR_QUANT_UNSUPPORTED_TYPE"
  | "ERR_QUANT_BAD_LENGTH"
  // tokenizers (vocabulary metadata, encode/decode)
  | "ERR_TOKENIZER_MISSING_METADATA"
  | "ERR_TOKENIZER_BAD_METADATA"
  | "ERR_UNSUPPORTED_TOKENIZER"
  | "ERR_TOKEN_OUT_OF_RANGE"
  // chat templates (Jinja): parse, render, and the template's own raise_exception
  | "ERR_TEMPLATE_PARSE"
  | "ERR_TEMPLATE_RENDER"
  | "ERR_TEMPLATE_RAISED"
  // models and architectures
  | "ERR_UNKNOWN_FORMAT"
  | "ERR_UNSUPPORTED_ARCH"
  | "ERR_MODEL_NOT_FOUND"
  // the owl engine: hyperparameters, evaluation
  | "ERR_MODEL_METADATA"
  | "ERR_CONTEXT_OVERFLOW"
  // the model store: names, manifests, blobs, Modelfiles
  | "ERR_INVALID_NAME"
  | "ERR_MODELFILE_PARSE"
  | "ERR_DIGEST_MISMATCH"
  | "ERR_STORE_CORRUPT"
  | "ERR_BLOB_NOT_FOUND"
  // the runtime: loading, scheduling, generation
  | "ERR_MODEL_LOAD"
  | "ERR_QUEUE_FULL"
  | "ERR_GRAMMAR"
  /** llama.cpp failed to decode a batch or to sample from it (the model stays usable). */
  | "ERR_DECODE"
  // the HTTP server and its clients
  | "ERR_BAD_REQUEST"
  | "ERR_BODY_TOO_LARGE"
  | "ERR_UNAUTHORIZED"
  | "ERR_NOT_FOUND_ROUTE"
  | "ERR_UNSAFE_BIND"
  | "ERR_SERVER_UNREACHABLE";

export interface OwlErrorOptions {
  /** A short next step for the user: "re-download the file", "pass --tokenizer". */
  hint?: string;
  /** Machine-readable facts: offsets, expected and found values, file paths. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class OwlError extends Error {
  readonly code: OwlErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: OwlErrorCode, message: string, options: OwlErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OwlError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }
}

export function isOwlError(e: unknown, code?: OwlErrorCode): e is OwlError {
  return e instanceof OwlError && (code === undefined || e.code === code);
}

/** Internal invariant. A failure is a bug in owl, never the user's input. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new Error(`internal error: ${message}`);
}
