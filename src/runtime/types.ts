/**
 * The runtime's contract: one Backend interface with two implementations (llama.cpp through
 * node-llama-cpp 3.21.1 in llama-cpp-backend.ts, the owl engine in owl-backend.ts), the loaded
 * model and its sequences, the sampling and grammar options, and the text-level completion that
 * both HTTP APIs stream (complete.ts). The scheduler (scheduler.ts) owns loaded models.
 * Not here: HTTP shapes (api/, server/), the store (store/), prompt rendering (prompt.ts).
 *
 * Vocabulary: a *sequence* is one slot of a loaded model's context with its own KV cache
 * (node-llama-cpp's LlamaContextSequence; an engine Session). A loaded model has numParallel of
 * them; sequences evaluated at the same time are batched together by the backend.
 */

import type { ThinkingStart } from "./thinking.ts";

export type BackendName = "llama.cpp" | "owl";

/** Sampling, Ollama's option names turned camelCase; every field resolved (no undefined but seed). */
export interface SamplingOptions {
  /** 0: greedy. */
  temperature: number;
  /** <= 0: off. */
  topK: number;
  /** 1: off. */
  topP: number;
  /** 0: off. */
  minP: number;
  /** 1: off. */
  typicalP: number;
  /** 1: off. */
  repeatPenalty: number;
  /** Window of the penalties; -1: the whole context; 0: off. */
  repeatLastN: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** undefined: a random seed per request. */
  seed: number | undefined;
  /** Token id -> bias added to its logit; -Infinity bans the token. */
  logitBias: ReadonlyMap<number, number>;
}

/** Constrained output. json: any JSON object (Ollama format "json", OpenAI json_object). */
export type GrammarSpec =
  | { type: "json" }
  | { type: "json_schema"; schema: unknown }
  | { type: "gbnf"; grammar: string };

export interface LoadOptions {
  /** GGUF file. */
  modelPath: string;
  /** GGUF LoRA adapters, applied in order. */
  adapters: readonly { path: string; scale: number }[];
  /** Context length of each sequence (capped by the caller at the model's training context). */
  numCtx: number;
  /** Sequences generated at once (OWL_NUM_PARALLEL). */
  numParallel: number;
  /** CPU threads for evaluation; undefined: the backend's default (all cores). */
  threads?: number;
  signal?: AbortSignal;
}

export interface ModelInfo {
  /** general.architecture. */
  architecture: string;
  /** The model's training context length. */
  trainContextLength: number;
  embeddingLength: number;
  vocabSize: number;
  /** tokenizer.chat_template, when the GGUF has one. */
  chatTemplate: string | undefined;
  /** Tokens that end a generation (EOS, EOT, ...). */
  eogTokens: readonly number[];
  bosToken: number | undefined;
  eosToken: number | undefined;
  /** Whether a prompt starts with BOS (tokenizer.ggml.add_bos_token). */
  addBos: boolean;
  /** Bytes of weights (the GGUF's tensor data). */
  weightBytes: number;
}

export interface Backend {
  readonly name: BackendName;
  load(options: LoadOptions): Promise<LoadedModel>;
}

export interface TopLogprob {
  token: number;
  /** Natural log of the probability after the sampler's temperature-free softmax of the raw logits. */
  logprob: number;
}

export interface SampledToken {
  token: number;
  /** Present when logprobs were asked for. */
  logprob?: number;
  /** The `top` most likely tokens (when asked for), most likely first. */
  top?: TopLogprob[];
}

export interface SequenceGenerateOptions {
  sampling: SamplingOptions;
  grammar?: GrammarSpec;
  /** undefined: no logprobs; 0: the chosen token's only; n: plus the top n. */
  logprobs?: number;
  signal?: AbortSignal;
}

export interface PromptStats {
  /** Tokens of the prompt found in this sequence's KV cache and not evaluated again. */
  reused: number;
  /** Tokens evaluated for the prompt. */
  evaluated: number;
}

export interface Sequence {
  readonly index: number;
  /** Tokens now in this sequence's KV cache (the last prompt plus what was generated). */
  readonly tokens: readonly number[];
  /**
   * Evaluate `prompt` (the whole token sequence, BOS first; the prefix already in the KV cache is
   * reused and the rest dropped) and then sample tokens one at a time, yielding each, end-of-
   * generation tokens included: the caller decides when to stop and simply stops iterating.
   * ERR_CONTEXT_OVERFLOW when the prompt does not fit; ERR_ABORTED-free on abort: the generator
   * just returns. ERR_GRAMMAR for a grammar the backend cannot build (ERR_UNSUPPORTED where it
   * takes none). With options.signal aborted already it yields nothing, but still throws what
   * the prompt and the grammar call for: complete() checks a grammar so before it is used.
   */
  generate(
    prompt: readonly number[],
    options: SequenceGenerateOptions,
  ): AsyncGenerator<SampledToken, void, void>;
  /** Stats of the last prompt evaluated by generate. */
  lastPrompt(): PromptStats;
  /** Give the sequence back to its model; its KV cache is kept for prefix reuse. */
  release(): void;
}

export interface EmbedResult {
  /** One vector per input, L2-normalized (Ollama's /api/embed). */
  embeddings: Float32Array[];
  /** Tokens of all inputs together. */
  promptTokens: number;
}

export interface LoadedModel {
  readonly backend: BackendName;
  readonly info: ModelInfo;
  /** Context length of each sequence. */
  readonly numCtx: number;
  readonly numParallel: number;
  /**
   * Whether decoding runs on the JavaScript event loop: true for the owl engine, whose forward is
   * synchronous on the main thread (nothing of the next token happens until the caller's turn
   * ends); false for llama.cpp, which decodes on a native thread while the event loop goes on.
   * A consumer that defers its own per-token work by a turn so that it overlaps the next decode
   * (server/stream.ts writeAtOnce) gains nothing from that when this is true.
   */
  readonly decodesOnEventLoop: boolean;
  tokenize(text: string, options: { addBos: boolean; parseSpecial: boolean }): number[];
  /** Text of a token sequence, special tokens rendered as text. */
  detokenize(tokens: readonly number[]): string;
  /**
   * The raw bytes of one token's text (llama.cpp's token_to_piece, special tokens rendered), for
   * streaming that never splits a UTF-8 character (complete.ts).
   */
  tokenBytes(token: number): Uint8Array;
  /**
   * A free sequence, or undefined when all numParallel are in use. Given the prompt about to be
   * generated from, the free sequence whose KV cache shares the longest prefix with it.
   */
  tryAcquireSequence(prompt?: readonly number[]): Sequence | undefined;
  /**
   * Embeddings of each input (mean-pooled or the model's pooling, normalized). ERR_CONTEXT_OVERFLOW
   * for an input longer than numCtx unless truncate (then cut to numCtx tokens).
   */
  embed(
    inputs: readonly string[],
    options: { truncate: boolean; signal?: AbortSignal },
  ): Promise<EmbedResult>;
  /** Resident bytes: weights + KV caches + scratch (for /api/ps "size"). */
  memoryBytes(): number;
  dispose(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Text-level completion (complete.ts): what both HTTP APIs and `owl run` stream.

export interface CompletionRequest {
  /** The whole prompt as tokens, BOS first when the model adds one. */
  prompt: readonly number[];
  sampling: SamplingOptions;
  /** -1: until end of generation or a full context. */
  maxTokens: number;
  /** Stop strings: generation ends before the first occurrence; the stop text is not returned. */
  stop: readonly string[];
  grammar?: GrammarSpec;
  /**
   * With a grammar, a thinking model's answer (thinking.ts thinkingStart): the grammar applies
   * once the thinking has ended, not from the first token (complete.ts). Ignored without one.
   */
  thinking?: ThinkingStart;
  logprobs?: number;
  signal?: AbortSignal;
  /**
   * Context shift (Ollama's default, llama-server's --context-shift): when the sequence's
   * context fills before the end, keep the first numKeep tokens (plus BOS when the prompt starts
   * with it), drop half of the rest, and go on generating; numKeep < 0 keeps the whole prompt
   * (llama-server's n_keep -1). Absent: a full context ends the completion (reason length).
   */
  shift?: { numKeep: number };
}

export interface TokenPiece {
  token: number;
  /** The token's text (raw bytes decoded as UTF-8, may be a partial character). */
  text: string;
  logprob?: number;
  top?: { token: number; text: string; logprob: number }[];
}

export type CompletionEvent =
  /** Text ready to show: never half a UTF-8 character, never part of a possible stop string. */
  | { type: "text"; text: string; pieces: TokenPiece[] }
  | {
      type: "done";
      /** stop: end-of-generation token or stop string; length: maxTokens or a full context;
       * abort: the signal fired (client went away). */
      reason: "stop" | "length" | "abort";
      /** Prompt tokens (all of them, reused ones included, as Ollama counts). */
      promptTokens: number;
      /** Prompt tokens actually evaluated. */
      promptEvaluated: number;
      /** From start to the first sampled token, in nanoseconds. */
      promptEvalNs: number;
      evalTokens: number;
      /** From the first sampled token to the end, in nanoseconds. */
      evalNs: number;
      /** prompt + generated tokens (Ollama's /api/generate "context"). */
      context: number[];
      /** Context shifts made on the way (CompletionRequest.shift); 0 when none. */
      shifts?: number;
      /** The stop string (CompletionRequest.stop) that ended the text, when one did. */
      stopText?: string;
    };

// ---------------------------------------------------------------------------------------------
// The scheduler (scheduler.ts): which models are loaded, for how long, and who gets a sequence.

export interface ModelRequest {
  /** The name the client used, for /api/ps and messages. */
  name: string;
  model: import("../store/types.ts").ResolvedModel;
  /** undefined: the server's default (OWL_BACKEND). */
  backend?: BackendName;
  /** Context length asked for (num_ctx); undefined: OWL_CONTEXT_LENGTH. Capped at the model's
   * training context. A loaded model with another numCtx or backend is reloaded. */
  numCtx?: number;
  /** How long the model stays loaded after this request: undefined: the default (OWL_KEEP_ALIVE);
   * 0: unload when the request ends; negative: forever. */
  keepAliveMs?: number;
  /** Aborting while queued or loading rejects with ERR_ABORTED and frees the queue slot. */
  signal?: AbortSignal;
  /**
   * acquire() only: the prompt's tokens for the loaded model, asked once the model is loaded and
   * before a sequence is chosen, so that the free sequence whose KV cache shares the longest
   * prefix with it is picked (tryAcquireSequence(prompt)). A throw rejects the request with it.
   */
  prompt?: (model: LoadedModel) => readonly number[];
}

export interface Lease {
  model: LoadedModel;
  /** undefined for acquireModel (embeddings, preload). */
  sequence: Sequence | undefined;
  /** Time spent loading the model for this request (0 when it was loaded already), nanoseconds. */
  loadNs: number;
  /** Aborted when the request's own signal fires or the scheduler unloads the model (unload(),
   * close()): pass it to generate/embed so the work ends. */
  signal?: AbortSignal;
  /** Give the sequence back and start the keep-alive timer; idempotent. */
  release(): void;
}

export interface RunningModel {
  name: string;
  /** Manifest digest (sha256 hex). */
  digest: string;
  modelPath: string;
  backend: BackendName;
  numCtx: number;
  /** LoadedModel.memoryBytes(). */
  size: number;
  /** null: kept forever (negative keep_alive). */
  expiresAt: Date | null;
  /** Sequences in use now. */
  active: number;
}

export interface SchedulerApi {
  /**
   * A sequence of the model, loading it first when needed (evicting the least recently used idle
   * model beyond OWL_MAX_LOADED_MODELS). Waits in a FIFO queue when every sequence is busy;
   * ERR_QUEUE_FULL when OWL_MAX_QUEUE requests already wait.
   */
  acquire(request: ModelRequest): Promise<Lease>;
  /** The loaded model without a sequence (embeddings; Ollama's load-only request). */
  acquireModel(request: ModelRequest): Promise<Lease>;
  /** Unload now (waits for running generations to end, which it aborts). False: not loaded. */
  unload(name: string): Promise<boolean>;
  running(): RunningModel[];
  /** Unload everything and reject queued requests. */
  close(): Promise<void>;
}
