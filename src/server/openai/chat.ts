/**
 * POST /v1/chat/completions. (In progress: waits for runtime/prompt.ts and tool-calls.ts.)
 */
import type {
  OpenAiChatCompletion,
  OpenAiChatCompletionChunk,
  OpenAiChatCompletionRequest,
} from "../../api/openai.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import type { Generation } from "./generate.ts";

export async function startChat(
  _ctx: ServerContext,
  _req: OpenAiChatCompletionRequest,
  _signal: AbortSignal,
): Promise<Generation> {
  throw new OwlError("ERR_UNSUPPORTED", "chat completions are not ready yet");
}

export async function completeChat(
  _gen: Generation,
  _req: OpenAiChatCompletionRequest,
): Promise<OpenAiChatCompletion> {
  throw new OwlError("ERR_UNSUPPORTED", "chat completions are not ready yet");
}

export function streamChat(
  _gen: Generation,
  _req: OpenAiChatCompletionRequest,
): AsyncGenerator<OpenAiChatCompletionChunk> {
  throw new OwlError("ERR_UNSUPPORTED", "chat completions are not ready yet");
}
