/**
 * Wire types of owl's OpenAI-compatible API (/v1/chat/completions, /v1/completions,
 * /v1/embeddings, /v1/models), in OpenAI's documented field names and shapes
 * (platform.openai.com/docs/api-reference). Only the fields owl reads or writes are listed; a
 * request may carry others, which are ignored (as `user`) or refused with a 400 naming the field.
 * Imports nothing internal. Not here: validation (server/openai/schemas.ts), the mapping onto the
 * runtime (server/openai/*.ts).
 */

// ---------------------------------------------------------------------------------------------
// Errors

/** `{"error": {...}}`: OpenAI's error body. `param` names the request field at fault when known. */
export interface OpenAiErrorResponse {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
  };
}

// ---------------------------------------------------------------------------------------------
// Chat completions: requests

export interface OpenAiContentPartText {
  type: "text";
  text: string;
}

export interface OpenAiToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface OpenAiChatMessage {
  role: "system" | "developer" | "user" | "assistant" | "tool";
  /** A string, text parts, or null on an assistant message that only calls tools. */
  content?: string | OpenAiContentPartText[] | null;
  name?: string;
  /** Assistant messages: the calls it made. */
  tool_calls?: OpenAiToolCall[];
  /** Tool messages: the call this result answers. */
  tool_call_id?: string;
  /** Assistant messages: the model's reasoning on that turn (Ollama's field; a thinking model's). */
  reasoning?: string | null;
}

export interface OpenAiFunctionTool {
  type: "function";
  function: {
    name: string;
    description?: string;
    /** JSON Schema of the arguments object. */
    parameters?: Record<string, unknown>;
    strict?: boolean | null;
  };
}

export type OpenAiToolChoice =
  | "none"
  | "auto"
  | "required"
  | { type: "function"; function: { name: string } };

export type OpenAiResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | {
      type: "json_schema";
      json_schema: {
        name: string;
        description?: string;
        schema?: Record<string, unknown>;
        strict?: boolean | null;
      };
    };

export interface OpenAiStreamOptions {
  include_usage?: boolean;
}

export interface OpenAiChatCompletionRequest {
  model: string;
  messages: OpenAiChatMessage[];
  stream?: boolean | null;
  stream_options?: OpenAiStreamOptions | null;
  /** Deprecated by OpenAI in favour of max_completion_tokens; both accepted. */
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  /** Token id (as a string key) -> bias in [-100, 100]. */
  logit_bias?: Record<string, number> | null;
  seed?: number | null;
  /** A string or up to 4 strings. */
  stop?: string | string[] | null;
  /** Only 1. */
  n?: number | null;
  logprobs?: boolean | null;
  /** 0..20; needs logprobs: true. */
  top_logprobs?: number | null;
  tools?: OpenAiFunctionTool[];
  tool_choice?: OpenAiToolChoice;
  parallel_tool_calls?: boolean;
  response_format?: OpenAiResponseFormat;
  /** Thinking models: "none" turns thinking off, the others on (Ollama's mapping to think). */
  reasoning_effort?: string | null;
  /** The same as { effort }. */
  reasoning?: { effort?: string | null } | null;
  /** Ignored. */
  user?: string;
}

// ---------------------------------------------------------------------------------------------
// Chat completions: responses

export interface OpenAiTopLogprob {
  token: string;
  logprob: number;
  /** The token's UTF-8 bytes (a token may hold part of a character). */
  bytes: number[] | null;
}

export interface OpenAiTokenLogprob extends OpenAiTopLogprob {
  top_logprobs: OpenAiTopLogprob[];
}

export interface OpenAiChoiceLogprobs {
  content: OpenAiTokenLogprob[] | null;
  refusal: OpenAiTokenLogprob[] | null;
}

export type OpenAiFinishReason = "stop" | "length" | "tool_calls";

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface OpenAiChatCompletion {
  /** "chatcmpl-..." */
  id: string;
  object: "chat.completion";
  /** Unix seconds. */
  created: number;
  model: string;
  system_fingerprint: string;
  choices: {
    index: number;
    message: {
      role: "assistant";
      content: string | null;
      refusal: null;
      /** A thinking model's thinking, apart from the content (Ollama's field). */
      reasoning?: string;
      tool_calls?: OpenAiToolCall[];
    };
    logprobs: OpenAiChoiceLogprobs | null;
    finish_reason: OpenAiFinishReason;
  }[];
  usage: OpenAiUsage;
}

/** A tool call in a stream delta: `index` says which call a fragment extends. */
export interface OpenAiToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function?: { name?: string; arguments?: string };
}

export interface OpenAiChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  system_fingerprint: string;
  /** Empty on the final usage chunk (stream_options.include_usage). */
  choices: {
    index: number;
    delta: {
      role?: "assistant";
      content?: string | null;
      refusal?: null;
      /** A thinking model's thinking (Ollama's field). */
      reasoning?: string;
      tool_calls?: OpenAiToolCallDelta[];
    };
    logprobs: OpenAiChoiceLogprobs | null;
    finish_reason: OpenAiFinishReason | null;
  }[];
  /** null on every chunk but the last when include_usage was asked for. */
  usage?: OpenAiUsage | null;
}

// ---------------------------------------------------------------------------------------------
// Legacy completions

export interface OpenAiCompletionRequest {
  model: string;
  /** A string, or a list of exactly one string (owl generates one choice). */
  prompt: string | string[];
  suffix?: string | null;
  /** Default 16, as OpenAI. */
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  seed?: number | null;
  stop?: string | string[] | null;
  n?: number | null;
  best_of?: number | null;
  /** Return the prompt before the completion. */
  echo?: boolean | null;
  /** 0..5: the chosen token's logprob plus this many top alternatives. */
  logprobs?: number | null;
  stream?: boolean | null;
  stream_options?: OpenAiStreamOptions | null;
  user?: string;
}

/** The legacy completions' logprobs: parallel arrays over the tokens of `text`. */
export interface OpenAiCompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: Record<string, number>[] | null;
  text_offset: number[];
}

export interface OpenAiCompletion {
  /** "cmpl-..." */
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  system_fingerprint: string;
  choices: {
    text: string;
    index: number;
    logprobs: OpenAiCompletionLogprobs | null;
    /** null on stream chunks before the last. */
    finish_reason: "stop" | "length" | null;
  }[];
  usage?: OpenAiUsage | null;
}

// ---------------------------------------------------------------------------------------------
// Embeddings

export interface OpenAiEmbeddingRequest {
  model: string;
  /** A string, strings, or token arrays (tokens of the model's own vocabulary). */
  input: string | string[] | number[] | number[][];
  encoding_format?: "float" | "base64";
  /** Only the model's own size (owl does not shorten embeddings). */
  dimensions?: number;
  user?: string;
}

export interface OpenAiEmbedding {
  object: "embedding";
  index: number;
  /** Floats, or base64 of the little-endian float32 bytes. */
  embedding: number[] | string;
}

export interface OpenAiEmbeddingResponse {
  object: "list";
  data: OpenAiEmbedding[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

// ---------------------------------------------------------------------------------------------
// Models

export interface OpenAiModel {
  id: string;
  object: "model";
  /** Unix seconds: when the model was stored. */
  created: number;
  owned_by: string;
}

export interface OpenAiModelList {
  object: "list";
  data: OpenAiModel[];
}
