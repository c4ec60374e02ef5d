/**
 * Wire types of Ollama's HTTP API (ollama/ollama api/types.go and docs/api.md), as owl's server
 * answers them and as a client of owl may import them. Durations are nanoseconds (Go's
 * time.Duration), times are RFC 3339 strings. Only the fields owl reads or writes are listed;
 * Ollama ignores unknown request fields and so does owl.
 * Not here: request validation (server/ollama/schemas.ts), the OpenAI API (api/openai.ts).
 */

/** Ollama's options: Modelfile PARAMETER names (temperature, num_ctx, stop, ...). */
export type OllamaOptions = Record<string, unknown>;

/** "json", a JSON schema object, or absent. */
export type OllamaFormat = "json" | Record<string, unknown>;

/** A Go duration string ("5m", "1h30m", "-1s"), or a number of seconds. */
export type OllamaKeepAlive = string | number;

export interface OllamaToolCallFunction {
  /** Position of the call among the calls of one message. */
  index?: number;
  name: string;
  arguments: Record<string, unknown>;
}

export interface OllamaToolCall {
  id?: string;
  function: OllamaToolCallFunction;
}

export interface OllamaTool {
  type: string;
  function: {
    name: string;
    description?: string;
    parameters?: Record<string, unknown>;
  };
}

export interface OllamaMessage {
  /** "system", "user", "assistant" or "tool". */
  role: string;
  content: string;
  thinking?: string;
  images?: string[];
  tool_calls?: OllamaToolCall[];
  /** For role "tool": the tool whose result this is. */
  tool_name?: string;
  tool_call_id?: string;
}

/** A token's log probability (api.TokenLogprob): its text, natural log probability, UTF-8 bytes. */
export interface OllamaTokenLogprob {
  token: string;
  logprob: number;
  bytes?: number[];
}

/** One generated token's log probability and, when asked for, the most likely alternatives. */
export interface OllamaLogprob extends OllamaTokenLogprob {
  top_logprobs?: OllamaTokenLogprob[];
}

/** Timings of a finished generation (api.Metrics), nanoseconds. */
export interface OllamaMetrics {
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
}

export interface OllamaGenerateRequest {
  model: string;
  prompt?: string;
  suffix?: string;
  system?: string;
  template?: string;
  context?: number[];
  stream?: boolean;
  raw?: boolean;
  format?: OllamaFormat;
  keep_alive?: OllamaKeepAlive;
  images?: string[];
  options?: OllamaOptions;
  think?: boolean | string;
  truncate?: boolean;
  /** Log probabilities of the generated tokens. */
  logprobs?: boolean;
  /** With logprobs: the n most likely tokens at each position, 0..20. */
  top_logprobs?: number;
}

/** One NDJSON line of /api/generate (or the whole answer with stream false). */
export interface OllamaGenerateResponse extends OllamaMetrics {
  model: string;
  created_at: string;
  response: string;
  /** A thinking model's thinking (the text between its thinking tags), when it has some. */
  thinking?: string;
  done: boolean;
  /** "stop", "length", "load", "unload". */
  done_reason?: string;
  context?: number[];
  logprobs?: OllamaLogprob[];
}

export interface OllamaChatRequest {
  model: string;
  messages?: OllamaMessage[];
  tools?: OllamaTool[];
  stream?: boolean;
  format?: OllamaFormat;
  keep_alive?: OllamaKeepAlive;
  options?: OllamaOptions;
  think?: boolean | string;
  truncate?: boolean;
  logprobs?: boolean;
  top_logprobs?: number;
}

export interface OllamaChatResponse extends OllamaMetrics {
  model: string;
  created_at: string;
  message: OllamaMessage;
  done: boolean;
  done_reason?: string;
  logprobs?: OllamaLogprob[];
}

export interface OllamaEmbedRequest {
  model: string;
  input?: string | string[];
  truncate?: boolean;
  dimensions?: number;
  keep_alive?: OllamaKeepAlive;
  options?: OllamaOptions;
}

export interface OllamaEmbedResponse {
  model: string;
  embeddings: number[][];
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
}

/** The legacy /api/embeddings. */
export interface OllamaEmbeddingRequest {
  model: string;
  prompt?: string;
  keep_alive?: OllamaKeepAlive;
  options?: OllamaOptions;
}

export interface OllamaEmbeddingResponse {
  embedding: number[];
}

export interface OllamaModelDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[] | null;
  parameter_size: string;
  quantization_level: string;
}

export interface OllamaListModel {
  name: string;
  model: string;
  modified_at: string;
  size: number;
  digest: string;
  details: OllamaModelDetails;
}

export interface OllamaListResponse {
  models: OllamaListModel[];
}

export interface OllamaShowRequest {
  model?: string;
  /** Older clients send `name`. */
  name?: string;
  verbose?: boolean;
}

/** A tensor of the model file (/api/show with verbose). Shape in GGUF order (row length first). */
export interface OllamaTensor {
  name: string;
  /** ggml type name: "F32", "Q4_K", ... */
  type: string;
  shape: number[];
}

export interface OllamaShowResponse {
  license?: string;
  modelfile?: string;
  parameters?: string;
  template?: string;
  system?: string;
  details: OllamaModelDetails;
  messages?: OllamaMessage[];
  model_info: Record<string, unknown>;
  capabilities?: string[];
  modified_at?: string;
  tensors?: OllamaTensor[];
}

/** /api/create, Ollama's current JSON form, plus the older `modelfile` text. */
export interface OllamaCreateRequest {
  model?: string;
  name?: string;
  stream?: boolean;
  from?: string;
  /** File name -> blob digest ("sha256:<hex>"), uploaded before with POST /api/blobs/:digest. */
  files?: Record<string, string>;
  adapters?: Record<string, string>;
  template?: string;
  license?: string | string[];
  system?: string;
  parameters?: Record<string, unknown>;
  messages?: OllamaMessage[];
  quantize?: string;
  /** Deprecated Modelfile text form. */
  modelfile?: string;
}

export interface OllamaProgressResponse {
  status: string;
  digest?: string;
  total?: number;
  completed?: number;
}

export interface OllamaCopyRequest {
  source: string;
  destination: string;
}

export interface OllamaDeleteRequest {
  model?: string;
  name?: string;
}

export interface OllamaPullRequest {
  model?: string;
  name?: string;
  insecure?: boolean;
  stream?: boolean;
}

export type OllamaPushRequest = OllamaPullRequest;

export interface OllamaProcessModel {
  name: string;
  model: string;
  size: number;
  digest: string;
  details: OllamaModelDetails;
  expires_at: string;
  size_vram: number;
  context_length: number;
}

export interface OllamaProcessResponse {
  models: OllamaProcessModel[];
}

export interface OllamaVersionResponse {
  version: string;
}

export interface OllamaErrorResponse {
  error: string;
}
