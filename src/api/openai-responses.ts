/**
 * Wire types of owl's OpenAI Responses API (POST /v1/responses), in OpenAI's field names
 * (platform.openai.com/docs/api-reference/responses, the `openai` package's
 * resources/responses) and the subset Ollama's compatibility layer answers (openai/responses.go):
 * text and function-call items in and out, a thinking model's thinking as a reasoning item, the
 * streamed events. Only the fields owl reads or writes are listed; others in a request are ignored
 * or refused with a 400 naming them (server/openai/responses-schema.ts).
 * Imports nothing internal. Not here: chat completions (openai.ts), the mapping onto the chat
 * route (server/openai/responses.ts).
 */

// ---------------------------------------------------------------------------------------------
// Requests

/** A content part of an input message: text in, or a previous answer's text. */
export interface ResponsesTextPart {
  type: "input_text" | "output_text";
  text: string;
}

export interface ResponsesInputMessage {
  type?: "message";
  role: "system" | "developer" | "user" | "assistant";
  content: string | ResponsesTextPart[];
}

/** A previous turn's function call (an output item passed back). */
export interface ResponsesFunctionCallInput {
  type: "function_call";
  call_id: string;
  name: string;
  /** The arguments object as JSON text. */
  arguments: string;
  id?: string;
}

/** The client's result of a function call. */
export interface ResponsesFunctionCallOutputInput {
  type: "function_call_output";
  call_id: string;
  output: string | ResponsesTextPart[];
}

/** A previous turn's reasoning: its thinking goes back to the template with the next assistant turn. */
export interface ResponsesReasoningInput {
  type: "reasoning";
  id?: string;
  summary?: { type: "summary_text"; text: string }[] | null;
  content?: { type: "reasoning_text"; text: string }[] | null;
  /** owl (as Ollama) writes the plain thinking here, so it round-trips. */
  encrypted_content?: string | null;
}

export type ResponsesInputItem =
  | ResponsesInputMessage
  | ResponsesFunctionCallInput
  | ResponsesFunctionCallOutputInput
  | ResponsesReasoningInput;

export interface ResponsesFunctionTool {
  type: "function";
  name: string;
  description?: string | null;
  /** JSON Schema of the arguments object. */
  parameters?: Record<string, unknown> | null;
  strict?: boolean | null;
}

export type ResponsesToolChoice = "none" | "auto" | "required" | { type: "function"; name: string };

export type ResponsesTextFormat =
  | { type: "text" }
  | { type: "json_object" }
  | {
      type: "json_schema";
      name: string;
      schema: Record<string, unknown>;
      description?: string;
      strict?: boolean | null;
    };

export interface ResponsesRequest {
  model: string;
  input: string | ResponsesInputItem[];
  /** A system message ahead of the input. */
  instructions?: string | null;
  max_output_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  text?: { format?: ResponsesTextFormat | null; verbosity?: string | null } | null;
  /** Thinking models: "none" turns thinking off, the others on (Ollama's mapping to think). */
  reasoning?: { effort?: string | null; summary?: string | null; generate_summary?: string | null } | null;
  tools?: ResponsesFunctionTool[];
  tool_choice?: ResponsesToolChoice;
  parallel_tool_calls?: boolean | null;
  stream?: boolean | null;
  /** Ignored, as Ollama: owl stores no responses (answered as null). */
  previous_response_id?: string | null;
  /** Ignored: owl stores no responses (answered as false). */
  store?: boolean | null;
  metadata?: Record<string, string> | null;
  truncation?: "auto" | "disabled" | null;
}

// ---------------------------------------------------------------------------------------------
// Responses

export interface ResponsesOutputText {
  type: "output_text";
  text: string;
  annotations: never[];
  logprobs: never[];
}

export interface ResponsesOutputMessage {
  id: string;
  type: "message";
  status: "in_progress" | "completed" | "incomplete";
  role: "assistant";
  content: ResponsesOutputText[];
}

export interface ResponsesFunctionCallItem {
  id: string;
  type: "function_call";
  status: "in_progress" | "completed";
  call_id: string;
  name: string;
  arguments: string;
}

export interface ResponsesReasoningItem {
  id: string;
  type: "reasoning";
  summary: { type: "summary_text"; text: string }[];
  /** The plain thinking (as Ollama), so that a client passing the item back keeps it. */
  encrypted_content?: string;
}

export type ResponsesOutputItem = ResponsesOutputMessage | ResponsesFunctionCallItem | ResponsesReasoningItem;

export interface ResponsesUsage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  input_tokens_details: { cached_tokens: number };
  /** reasoning_tokens is 0: the thinking's tokens are counted in output_tokens (as Ollama). */
  output_tokens_details: { reasoning_tokens: number };
}

export interface ResponsesResponse {
  /** "resp_..." */
  id: string;
  object: "response";
  /** Unix seconds. */
  created_at: number;
  completed_at: number | null;
  status: "in_progress" | "completed" | "incomplete";
  incomplete_details: { reason: "max_output_tokens" } | null;
  model: string;
  previous_response_id: null;
  instructions: string | null;
  output: ResponsesOutputItem[];
  error: null;
  tools: ResponsesFunctionTool[];
  tool_choice: ResponsesToolChoice;
  truncation: "auto" | "disabled";
  parallel_tool_calls: boolean;
  text: { format: ResponsesTextFormat };
  top_p: number;
  temperature: number;
  presence_penalty: number;
  frequency_penalty: number;
  top_logprobs: number;
  reasoning: { effort: string | null; summary: string | null } | null;
  usage: ResponsesUsage | null;
  max_output_tokens: number | null;
  max_tool_calls: null;
  store: false;
  background: false;
  service_tier: "default";
  metadata: Record<string, string>;
  safety_identifier: null;
  prompt_cache_key: null;
}

/**
 * One server-sent event of a streamed response: `type` names it (also written as the SSE
 * `event:` line); sequence_number counts the stream's events from 0.
 */
export interface ResponsesStreamEvent {
  type: string;
  sequence_number: number;
  [field: string]: unknown;
}
