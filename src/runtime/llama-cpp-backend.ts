/**
 * The llama.cpp backend: node-llama-cpp 3.21.1 loads a GGUF and creates one context of
 * numParallel sequences (createContext({sequences})), each able to hold numCtx tokens
 * (node-llama-cpp sizes the context as contextSize x sequences); owl drives the decode loop itself
 * on node-llama-cpp's native addon, not through LlamaContextSequence.evaluate.
 *
 * Why: evaluate() costs about 0.5 ms of main-thread JavaScript a token (its batch queue, locks,
 * token meter, sampler config resolved and applied every token, checkpoints), which on a loaded
 * 2-core machine is the difference between owl serve and llama.cpp: measured on the 15M Q8_0
 * bench model, one thread, a step of 4 sequences cost 10.5-12.8 ms through evaluate() and
 * 6.5-8.2 ms through the addon directly; a step of one 2.7-3.3 ms and 2.4-2.8 ms. Through this
 * backend (generate(), greedy, the evaluate()-based backend and this one alternately in one
 * process, median of 6, load 2.7-2.9): a step of 4 sequences 10.5 ms before, 9.1 ms now; a step
 * of one 3.8 ms before, 3.3 ms now. `owl serve` single stream went from 0.91x node-llama-cpp
 * called directly to 1.05-1.20x (bench/serve.ts, load 2-3.7).
 *
 * The loop (LlamaCppModel.drain): the sequences wanting their next token are decoded as ONE batch
 * (initBatch, addToBatch for each, decodeBatch), then each is sampled (sampleToken calls issued
 * together; they run one after another on the one thread-pool thread), then the next batch goes,
 * with every request queued by then, until none is left. A prompt goes in chunks of at most the
 * context's batch size, with logits for its last token only; sequences wanting one token go
 * first in a batch, and are answered after each chunk, so a long prompt does not stall them. One
 * drain runs at a time per context (initBatch resets the addon's one batch, and sampling reads
 * the logits the next decode overwrites): it is the context's lock. Everything that touches the
 * context's KV cache (removing a sequence's cells for prefix reuse) happens inside it, between
 * decodes. owl tracks each sequence's tokens itself (LlamaCppSequence.cached: exactly what its
 * KV cells hold); the sequences are the addon's sequence ids 0..numParallel-1, and
 * node-llama-cpp's LlamaContextSequence objects are never created, so there is no second view of
 * the cache to disagree with. The embedding context is a context of its own
 * (createEmbeddingContext) and never shares this one.
 *
 * One batch a step, and ask-ahead: a sequence's next request is made from the answer to its
 * last one, inside the drain, when its caller already waits for that token: so every sequence
 * still generating is queued again before the drain builds its next batch, and a step of any
 * number of sequences is one decode that starts as soon as the last sampling ends (no event-loop
 * turn in between). The token is handed to the caller after its next step was asked for:
 * llama.cpp decodes on its own thread while the caller (complete(), the HTTP route, the socket
 * write) turns the token into text, instead of after it. A caller still busy with the token
 * before gets the new one when it asks, and its sequence asks for the next step then, joining
 * the drain's next batch (never more than one step ahead of its caller). When the caller stops,
 * that one step was decoded for nothing and the sequence's next generate() waits for it.
 * (With node-llama-cpp's own batching the sequences sampled first ran ahead in batches of their
 * own: 2 streams gave batches of 1 token, 4 streams batches of 3; owl first held each sequence
 * back until the step's last token had arrived, one event-loop turn a step.) What a full batch
 * buys is llama.cpp's: on the bench machine (2-core AMD EPYC, AVX2, shared; one model thread) a
 * decode of 4 sequences costs 1.5-3x a decode of one from run to run, so 4 streams give well
 * under 4x the tokens/s of one (bench/RESULTS.md, "serve"); that is with the batch's sequences in
 * increasing id order (decodeOnce), without which llama.cpp splits the step into several passes. Two threads batch better, but their
 * one-sequence steps collapse on a loaded 2-core machine (llama.cpp's threads spin).
 * decodeCounts() counts the decodes by their number of sequences (tests, benchmarks).
 *
 * Sampling: one llama.cpp sampler chain per generation (the addon's AddonSampler, as
 * node-llama-cpp makes one per evaluate()), configured with exactly the object node-llama-cpp's
 * LlamaContextSequence._resolveSamplerConfig builds from the same evaluate options (temperature,
 * topK, topP, minP, seed, repeat penalty over the window of recent tokens, token bias from
 * logitBias, grammar state), so the same seed gives the same tokens as before; one difference:
 * a bias on an end-of-generation token is kept (TokenBias drops those; OpenAI's logit_bias on EOS
 * must work, as it does on the owl engine). node-llama-cpp applies it before every token; the addon compares it with its state
 * and changes nothing unless the token history differs from what its chain accepted itself, so
 * owl applies it once and again only when it fed back a token of its own choosing (below).
 * Grammars: the chain holds the LlamaGrammarEvaluationState, and sampleToken accepts the chosen
 * token into it. Logprobs: sampleToken returns the distribution over the candidates after the
 * chain (or the chosen token's probability). So that they are the model's distribution (the
 * softmax of the logits after logit bias and penalties, before truncation and temperature), a
 * request with logprobs at temperature > 0 runs the chain up to the penalties only (greedy),
 * takes the whole distribution, and draws with owl's Sampler (the rest of llama.cpp's chain, same
 * seed, same result), feeding the chosen token back; llama.cpp's chain here has no typical-p, so
 * typicalP < 1 takes the same path. NOTE: with a grammar the grammar's state follows llama.cpp's
 * own pick: there the logprobs are those after its whole chain, and typicalP is ignored.
 *
 * Prefix reuse: generate() keeps the common prefix of the sequence's tokens and the new prompt,
 * removes the rest of its cells (removeTokenCellsFromSequence(id, keep, -1)) and evaluates only
 * the rest of the prompt (always at least its last token). Where llama.cpp cannot remove part of
 * a sequence (recurrent models; a sliding-window cache that dropped the prefix's first cells) the
 * whole sequence is cleared and the prompt evaluated again, as node-llama-cpp does without
 * checkpoints (it keeps state checkpoints for those models; owl does not).
 * Failures: a decode that fails rejects the sequences of that batch with ERR_DECODE; their cells
 * past what they held before are removed, and the context goes on serving the others.
 *
 * node-llama-cpp 3.21.1 internals used (the version is pinned exactly; load() checks that they
 * are there): LlamaContext._ctx (the AddonContext: initBatch, addToBatch(sequenceId,
 * firstTokenSequenceIndex, Uint32Array tokens, Uint32Array logitIndexes), decodeBatch,
 * sampleToken(batchLogitIndex, sampler[, probabilities, confidence]),
 * removeTokenCellsFromSequence, getSequenceKvCacheMinPosition, setThreads), Llama._bindings.
 * AddonSampler (new AddonSampler(LlamaModel._model), applyConfig, dispose),
 * LlamaGrammarEvaluationState._state, and the context's thread reservation (_reserveThreads,
 * _threadSplitterConsumer.getAllocationToConsume before each decode and its handle disposed
 * after it, _scheduleToFreeReservedThreads after a drain, _freeReservedThreads), through which
 * contexts decoding at the same time share the process's threads as node-llama-cpp's own loop
 * shares them. NOTE: node-llama-cpp also serializes
 * decodes of all contexts on Vulkan (a crash workaround); owl runs llama.cpp on the CPU unless
 * configured otherwise, and does not.
 *
 * Embeddings run in a separate embedding context created on first use (the model's pooling; for
 * a model without one llama.cpp gives the last token's hidden state), L2-normalized here.
 * Not here: the completion loop over text (complete.ts), the shared Llama instance (backends.ts).
 */
import type {
  Llama,
  LlamaContext,
  LlamaEmbeddingContext,
  LlamaGrammar,
  LlamaGrammarEvaluationState,
  LlamaModel,
  Token,
} from "node-llama-cpp";
import { Sampler } from "../engine/sampler.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { OwlError } from "../util/errors.ts";
import {
  checkLoadOptions,
  commonPrefix,
  contextOverflow,
  disposedError,
  normalize,
  outputPieceBytes,
  randomSeed32,
  readGgufFacts,
} from "./gguf-info.ts";
import { checkJsonSchema, JSON_OBJECT_GBNF } from "./grammar.ts";
import type {
  Backend,
  BackendName,
  EmbedResult,
  GrammarSpec,
  LoadedModel,
  LoadOptions,
  ModelInfo,
  PromptStats,
  SampledToken,
  SamplingOptions,
  Sequence,
  SequenceGenerateOptions,
  TopLogprob,
} from "./types.ts";

function aborted(signal: AbortSignal | undefined): OwlError {
  return new OwlError("ERR_ABORTED", "loading the model was aborted", { cause: signal?.reason });
}

export interface LlamaCppBackendOptions {
  /**
   * Type of the KV cache's keys and values: "F16" (llama.cpp's default, half the memory) or "F32"
   * (exact; differential tests against the owl engine use it). node-llama-cpp marks this option
   * experimental.
   */
  kvCacheType?: "F16" | "F32";
}

export class LlamaCppBackend implements Backend {
  readonly name = "llama.cpp";

  /** `llama`: the process's shared Llama instance (backends.ts creates it on first use). */
  constructor(
    private readonly llama: () => Promise<Llama>,
    private readonly backendOptions: LlamaCppBackendOptions = {},
  ) {}

  async load(options: LoadOptions): Promise<LoadedModel> {
    checkLoadOptions(options);
    const { signal } = options;
    if (signal?.aborted) throw aborted(signal);
    const facts = readGgufFacts(options.modelPath);
    const llama = await this.llama();
    // Imported on use: loading node-llama-cpp takes seconds that an owl-only process need not pay.
    const lib = await import("node-llama-cpp");
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: options.modelPath, ...(signal && { loadSignal: signal }) });
    } catch (e) {
      if (signal?.aborted) throw aborted(signal);
      throw new OwlError(
        "ERR_MODEL_LOAD",
        `llama.cpp could not load ${options.modelPath}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    try {
      const context = await model.createContext({
        contextSize: options.numCtx,
        sequences: options.numParallel,
        flashAttention: false,
        failedCreationRemedy: false,
        ...(this.backendOptions.kvCacheType === "F32" && {
          experimentalKvCacheKeyType: "F32",
          experimentalKvCacheValueType: "F32",
        }),
        ...(options.threads !== undefined && { threads: options.threads }),
        ...(options.adapters.length > 0 && {
          lora: { adapters: options.adapters.map((a) => ({ filePath: a.path, scale: a.scale })) },
        }),
        ...(signal && { createSignal: signal }),
      });
      let addon: Addon;
      try {
        addon = addonOf(llama, model, context);
      } catch (e) {
        await context.dispose();
        throw e;
      }
      const info = facts.tokenizer ? facts.info : infoFromLlamaCpp(facts.info, model);
      return new LlamaCppModel(lib, llama, model, context, addon, info, facts.tokenizer, options);
    } catch (e) {
      await model.dispose();
      if (signal?.aborted) throw aborted(signal);
      if (e instanceof OwlError) throw e;
      throw new OwlError(
        "ERR_MODEL_LOAD",
        `llama.cpp could not create a context of ${options.numParallel} x ${options.numCtx} tokens` +
          `${options.adapters.length > 0 ? ` with adapters ${options.adapters.map((a) => a.path).join(", ")}` : ""}` +
          ` for ${options.modelPath}: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
}

/** The vocabulary facts from llama.cpp itself, for a vocabulary owl's tokenizer cannot read. */
function infoFromLlamaCpp(info: ModelInfo, model: LlamaModel): ModelInfo {
  const t = model.tokens;
  const tokens = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
  return {
    ...info,
    vocabSize: Array.isArray(tokens) ? tokens.length : info.vocabSize,
    eogTokens: [...new Set([t.eos, t.eot].filter((x): x is Token => x !== null))].sort((a, b) => a - b),
    bosToken: t.bos ?? undefined,
    eosToken: t.eos ?? undefined,
    addBos: t.shouldPrependBosToken,
  };
}

// ---------------------------------------------------------------------------------------------
// node-llama-cpp 3.21.1's internals (module comment): the native addon's context and sampler.

/** What sampleToken gives with probabilities or confidence asked for. */
type SampleTuple = [token: number, probabilities?: number[], confidence?: number];

/** node-llama-cpp's AddonContext (llama/addon/AddonContext.cpp). */
interface AddonContext {
  /** A fresh batch of room for `tokens` tokens (at most the context's batch size). */
  initBatch(tokens: number): void;
  /** Adds tokens of one sequence from `firstTokenSequenceIndex` on; the batch indexes of the
   * tokens whose logits are kept (`logitIndexes`: indexes into `tokens`, ascending). */
  addToBatch(
    sequenceId: number,
    firstTokenSequenceIndex: number,
    tokens: Uint32Array,
    logitIndexes: Uint32Array,
  ): Uint32Array;
  /** llama_decode of the batch on a thread-pool thread. */
  decodeBatch(): Promise<void>;
  /** Runs the sampler's chain on one set of logits of the last decode and accepts the token
   * (penalty history, grammar); -1 when no token could be chosen. */
  sampleToken(batchLogitIndex: number, sampler: AddonSampler): Promise<number>;
  sampleToken(
    batchLogitIndex: number,
    sampler: AddonSampler,
    probabilities: boolean,
    confidence: boolean,
  ): Promise<SampleTuple>;
  /** llama_memory_seq_rm(sequenceId, start, end); false when llama.cpp cannot remove that part. */
  removeTokenCellsFromSequence(sequenceId: number, start: number, end: number): boolean;
  /** Smallest position of the sequence's cells; -1 for none. */
  getSequenceKvCacheMinPosition(sequenceId: number): number;
  setThreads(threads: number): void;
}

/** node-llama-cpp's AddonSampler (llama/addon/AddonSampler.cpp). */
interface AddonSampler {
  applyConfig(config: SamplerConfig): void;
  dispose(): void;
}

/**
 * The config object node-llama-cpp 3.21.1's LlamaContextSequence._resolveSamplerConfig builds
 * (null fields removed). NOTE: its dryRepeatPenalty* fields are left out: the addon reads them
 * only with a dryRepeatPenaltyStrength, which owl never sets; likewise repeatPenaltyMaxTokens and
 * the penalties without repeatPenaltyTokens, and xtc*.
 */
interface SamplerConfig {
  temperature: number;
  minP: number;
  topK: number;
  topP: number;
  seed: number;
  repeatPenalty?: number;
  repeatPenaltyMaxTokens?: number;
  repeatPenaltyTokens?: Uint32Array;
  repeatPenaltyPresencePenalty?: number;
  repeatPenaltyFrequencyPenalty?: number;
  tokenBiasKeys?: Uint32Array;
  tokenBiasValues?: Float32Array;
  grammarEvaluationState?: object;
}

interface ThreadsConsumer {
  getAllocationToConsume():
    | [number, { dispose(): void }]
    | Promise<[number, { dispose(): void }] | undefined>;
}

/** The internals of one loaded model, found once at load. */
interface Addon {
  ctx: AddonContext;
  newSampler(): AddonSampler;
  /** The native state inside a grammar evaluation state. */
  grammarState(state: LlamaGrammarEvaluationState): object;
  /** The context's claim on the process's threads while it decodes (node-llama-cpp's splitter):
   * reserved for a drain, a share allocated for each decode, freed soon after the drain. */
  reserveThreads(): ThreadsConsumer;
  scheduleFreeThreads(): void;
  freeThreads(): void;
}

/** The addon objects behind node-llama-cpp's public ones, checked: a version that moved them fails
 * the load with a clear message rather than a decode with a TypeError. */
function addonOf(llama: Llama, model: LlamaModel, context: LlamaContext): Addon {
  const l = llama as unknown as { _bindings?: { AddonSampler?: new (model: unknown) => AddonSampler } };
  const m = model as unknown as { _model?: unknown };
  const c = context as unknown as {
    _ctx?: Partial<AddonContext>;
    _reserveThreads?: () => void;
    _scheduleToFreeReservedThreads?: () => void;
    _freeReservedThreads?: () => void;
    _threadSplitterConsumer?: ThreadsConsumer;
  };
  const ctx = c._ctx;
  const Sampler = l._bindings?.AddonSampler;
  const missing = [
    !ctx && "LlamaContext._ctx",
    ctx && typeof ctx.initBatch !== "function" && "AddonContext.initBatch",
    ctx && typeof ctx.addToBatch !== "function" && "AddonContext.addToBatch",
    ctx && typeof ctx.decodeBatch !== "function" && "AddonContext.decodeBatch",
    ctx && typeof ctx.sampleToken !== "function" && "AddonContext.sampleToken",
    ctx &&
      typeof ctx.removeTokenCellsFromSequence !== "function" &&
      "AddonContext.removeTokenCellsFromSequence",
    ctx &&
      typeof ctx.getSequenceKvCacheMinPosition !== "function" &&
      "AddonContext.getSequenceKvCacheMinPosition",
    ctx && typeof ctx.setThreads !== "function" && "AddonContext.setThreads",
    typeof Sampler !== "function" && "Llama._bindings.AddonSampler",
    m._model === undefined && "LlamaModel._model",
    typeof c._reserveThreads !== "function" && "LlamaContext._reserveThreads",
    typeof c._scheduleToFreeReservedThreads !== "function" && "LlamaContext._scheduleToFreeReservedThreads",
    typeof c._freeReservedThreads !== "function" && "LlamaContext._freeReservedThreads",
  ].filter((x): x is string => typeof x === "string");
  if (missing.length > 0 || !ctx || !Sampler) {
    throw new OwlError(
      "ERR_MODEL_LOAD",
      `node-llama-cpp's internals that owl's decode loop drives are missing: ${missing.join(", ")} ` +
        "(owl expects node-llama-cpp 3.21.1 exactly)",
      { hint: "reinstall the pinned dependencies (npm ci)" },
    );
  }
  return {
    ctx: ctx as AddonContext,
    newSampler: () => new Sampler(m._model),
    grammarState: (state) => (state as unknown as { _state: object })._state,
    reserveThreads: () => {
      c._reserveThreads?.();
      const consumer = c._threadSplitterConsumer;
      if (!consumer) throw new Error("internal error: node-llama-cpp reserved no threads consumer");
      return consumer;
    },
    scheduleFreeThreads: () => c._scheduleToFreeReservedThreads?.(),
    freeThreads: () => c._freeReservedThreads?.(),
  };
}

// ---------------------------------------------------------------------------------------------

const utf8 = new TextEncoder();

/** Grammars kept per model (clients tend to send the same few schemas). */
const GRAMMAR_CACHE = 32;

const NO_LOGITS = new Uint32Array(0);

/** A sampled token with what was asked of it: the distribution after the chain (token id,
 * probability pairs, most likely first) or the chosen token's probability. */
interface Sampled {
  token: number;
  probabilities?: number[];
  confidence?: number;
}

/** A request's share of one batch: `n` of its tokens; `logit`: the batch index of the last one's
 * logits when they are its last tokens, else -1. */
interface BatchPart {
  r: DecodeRequest;
  n: number;
  logit: number;
}

/** A sequence's request for a decode and a sample, waiting for (or in) the drain. */
interface DecodeRequest {
  seq: LlamaCppSequence;
  /** Tokens to append to the sequence's cells; the last one's logits are sampled. */
  tokens: readonly number[];
  /** How many of `tokens` are in the KV cache already (a prompt goes in chunks). */
  done: number;
  /**
   * Prefix reuse: keep only the first `keep` cells of the sequence before decoding, and the whole
   * prompt when llama.cpp cannot cut there (then `prompt` is decoded from its start and
   * `reused(0)` is told). undefined: append to what the sequence holds.
   */
  trim?: { keep: number; prompt: readonly number[]; reused: (n: number) => void };
  sample: (batchLogitIndex: number) => Promise<Sampled>;
  resolve: (s: Sampled) => void;
  reject: (e: unknown) => void;
}

/**
 * owl's Sampler for the chain after llama.cpp's bias and penalties: top-k, typical-p, top-p,
 * min-p, temperature and the seeded draw, over log-probabilities (those stages do not change
 * when every logit moves by the same amount, so log p works as well as the raw logits).
 */
function ownSampler(s: SamplingOptions, nVocab: number): Sampler {
  return new Sampler(
    {
      temperature: s.temperature,
      // NOTE: as llama.cpp's top-k 0 in node-llama-cpp (all candidates, sorted), so the draw matches.
      topK: s.topK > 0 ? s.topK : nVocab,
      topP: s.topP,
      minP: s.minP,
      typicalP: s.typicalP,
      repeatLastN: 0,
      seed: s.seed ?? randomSeed32(),
    },
    { nVocab },
  );
}

/**
 * Decodes of a llama.cpp-backend model by their number of sequences: counts[n] decodes held tokens
 * of n sequences (prompt chunks included). undefined for a model of another backend.
 */
export function decodeCounts(model: LoadedModel): readonly number[] | undefined {
  return model instanceof LlamaCppModel ? Array.from(model.decodes, (n) => n ?? 0) : undefined;
}

type NodeLlamaCpp = typeof import("node-llama-cpp");

class LlamaCppModel implements LoadedModel {
  readonly backend: BackendName = "llama.cpp";
  /** llama.cpp decodes on a native thread (node-llama-cpp's async decode). */
  readonly decodesOnEventLoop = false;
  readonly numCtx: number;
  readonly numParallel: number;
  private readonly sequences: LlamaCppSequence[] = [];
  private embedding: Promise<LlamaEmbeddingContext> | undefined;
  /** What the embedding context holds (KV cache and compute buffers), once created. */
  private embeddingBytes = 0;
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  disposed = false;
  /** decodes[n]: decodeBatch calls that held tokens of n sequences (decodeCounts). */
  readonly decodes: number[] = [];
  /** Most tokens one decode takes (the context's batch size). */
  private readonly batchSize: number;
  /** Requests for the next decode, in order of arrival. */
  private queue: DecodeRequest[] = [];
  /** The drain running now: the context's lock. */
  private draining: Promise<void> | undefined;
  /** llama.cpp's state size, read between decodes (memoryBytes). */
  private stateBytes = 0;
  /** The threads llama.cpp was last told to use (setThreads). */
  private threadsNow: number | undefined;
  /** Callers to wake once the drain's next decode is on its way (later()). */
  private wakes: (() => void)[] = [];

  constructor(
    readonly lib: NodeLlamaCpp,
    readonly llama: Llama,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    readonly addon: Addon,
    readonly info: ModelInfo,
    private readonly tokenizer: Tokenizer | undefined,
    readonly options: LoadOptions,
  ) {
    this.numCtx = options.numCtx;
    this.numParallel = options.numParallel;
    this.batchSize = context.batchSize;
    this.stateBytes = context.stateSize;
    for (let i = 0; i < options.numParallel; i++) this.sequences.push(new LlamaCppSequence(this, i));
  }

  tokenize(text: string, options: { addBos: boolean; parseSpecial: boolean }): number[] {
    // NOTE: node-llama-cpp's tokenize never adds BOS (llama_tokenize with add_special false).
    const ids = this.model.tokenize(text, options.parseSpecial) as number[];
    const bos = this.info.bosToken;
    if (options.addBos && this.info.addBos && bos !== undefined) return [bos, ...ids];
    return [...ids];
  }

  detokenize(tokens: readonly number[]): string {
    return this.model.detokenize(tokens as Token[], true);
  }

  tokenBytes(token: number): Uint8Array {
    if (this.tokenizer) return outputPieceBytes(this.tokenizer, token);
    // NOTE: without owl's tokenizer a byte token of a split character comes back as U+FFFD.
    return utf8.encode(this.model.detokenize([token as Token], true));
  }

  tryAcquireSequence(prompt?: readonly number[]): Sequence | undefined {
    let best: LlamaCppSequence | undefined;
    let bestLength = -1;
    for (const s of this.sequences) {
      if (s.busy) continue;
      const n = prompt ? commonPrefix(s.cached, prompt) : 0;
      if (n > bestLength) {
        best = s;
        bestLength = n;
      }
    }
    if (best) best.busy = true;
    return best;
  }

  /**
   * Queues a decode and sample. With no drain running, one starts at once (a sequence's first
   * request, or one that waited for its caller): llama.cpp decodes while the caller goes on. A
   * drain running now takes the request into its next batch, with every other request queued by
   * then (the sequences answered by the last batch ask from their answer, so they all are).
   */
  decode(request: DecodeRequest): void {
    if (this.disposed) {
      request.reject(disposedError(this.options.modelPath));
      return;
    }
    this.queue.push(request);
    if (!this.draining) this.draining = this.drain();
  }

  /** Decodes the queue batch by batch and samples each request whose tokens are all in; the one
   * place that touches the context (module comment). */
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        if (this.disposed) {
          const error = disposedError(this.options.modelPath);
          for (const r of this.queue.splice(0)) r.reject(error);
          return;
        }
        const parts: BatchPart[] = [];
        try {
          await this.decodeOnce(parts);
        } catch (e) {
          // Not a failed decode (those are handled inside): initBatch, a trim, the threads. The
          // requests of this batch fail (all queued ones when none was chosen yet); the rest go on.
          this.fail(parts.length > 0 ? parts.map((p) => p.r) : [...this.queue], e);
        }
      }
    } finally {
      this.draining = undefined;
      this.wakeCallers();
      // Idle: the threads go back to the process unless a decode follows at once.
      if (!this.disposed) this.addon.scheduleFreeThreads();
    }
  }

  /** One batch: the queue's requests up to the batch size (filled into `parts`), decoded; those
   * whose tokens are all in are sampled and answered. */
  private async decodeOnce(parts: BatchPart[]): Promise<void> {
    const { ctx } = this.addon;
    for (const r of this.queue) {
      if (r.trim) this.trim(r);
      r.trim = undefined;
    }
    // Sequences wanting one token first, then prompts in order of arrival, up to a batch.
    let size = 0;
    for (const single of [true, false]) {
      for (const r of this.queue) {
        const left = r.tokens.length - r.done;
        if ((left === 1) !== single || size >= this.batchSize) continue;
        const n = Math.min(left, this.batchSize - size);
        parts.push({ r, n, logit: -1 });
        size += n;
      }
    }
    // In increasing sequence id: llama.cpp's per-sequence KV cache (node-llama-cpp's contexts are not
    // kv_unified) splits a batch into ubatches of consecutive, increasing sequence ids
    // (llama-batch.cpp split_equal, "accept only increasing sequence ids"), each a forward pass
    // of its own: in arrival order a step of sequences 1, 3, 2, 0 ran as four passes, not one
    // (15M Q8_0, 1 thread, 4 streams: 11.0-11.9 ms a step against 7.7-8.0 ms sorted).
    parts.sort((a, b) => a.r.seq.index - b.r.seq.index);
    ctx.initBatch(size);
    const added: BatchPart[] = [];
    for (const part of parts) {
      const { r, n } = part;
      const last = r.done + n === r.tokens.length;
      try {
        const at = ctx.addToBatch(
          r.seq.index,
          r.seq.cached.length,
          Uint32Array.from(r.tokens.slice(r.done, r.done + n)),
          last ? Uint32Array.of(n - 1) : NO_LOGITS,
        );
        if (last) part.logit = at[0] ?? -1;
        added.push(part);
      } catch (e) {
        this.fail([r], e);
      }
    }
    if (added.length === 0) return;
    // This context's share of the process's threads for this decode, as node-llama-cpp asks
    // before each decode and gives back after it (other contexts decoding get their share).
    const allocation = this.addon.reserveThreads().getAllocationToConsume();
    const [threads, share] = (allocation instanceof Promise ? await allocation : allocation) ?? [
      this.context.currentThreads,
      { dispose() {} },
    ];
    try {
      if (threads !== this.threadsNow) {
        ctx.setThreads(threads);
        this.threadsNow = threads;
      }
      const decoding = ctx.decodeBatch();
      // The callers answered by the last batch go on now, while llama.cpp decodes (ask-ahead).
      this.wakeCallers();
      await decoding;
    } catch (e) {
      this.fail(
        added.map((p) => p.r),
        e,
      );
      return;
    } finally {
      share.dispose();
    }
    this.decodes[added.length] = (this.decodes[added.length] ?? 0) + 1;
    const finished: BatchPart[] = [];
    for (const part of added) {
      const { r, n } = part;
      for (let i = r.done; i < r.done + n; i++) r.seq.cached.push(r.tokens[i] as number);
      r.done += n;
      if (r.done === r.tokens.length) finished.push(part);
    }
    if (finished.length === 0) return;
    const gone = new Set(finished.map((p) => p.r));
    this.queue = this.queue.filter((r) => !gone.has(r));
    parts.length = 0; // answered below, whatever happens: no longer this batch's to fail
    // Issued together: they run one after another on the thread pool, in one round trip.
    await Promise.all(
      finished.map(({ r, logit }) =>
        r.sample(logit).then(r.resolve, (e: unknown) => r.reject(decodeError("sample from", [r], e))),
      ),
    );
  }

  /** Prefix reuse before a request's first tokens go in: drop the sequence's cells past `keep`;
   * all of them, and the whole prompt to decode, where llama.cpp cannot cut there. */
  private trim(r: DecodeRequest): void {
    const t = r.trim;
    const seq = r.seq;
    if (!t || t.keep >= seq.cached.length) return;
    const { ctx } = this.addon;
    // A sliding-window cache may have dropped the first cells already: nothing to keep then.
    const min = seq.cached.length === 0 ? 0 : Math.max(0, ctx.getSequenceKvCacheMinPosition(seq.index));
    const cut = t.keep > min && ctx.removeTokenCellsFromSequence(seq.index, t.keep, -1);
    if (cut) {
      seq.cached.length = t.keep;
      return;
    }
    ctx.removeTokenCellsFromSequence(seq.index, 0, -1);
    seq.cached.length = 0;
    r.tokens = t.prompt;
    t.reused(0);
  }

  /** Rejects requests whose tokens could not be decoded, and removes any cells the failed decode
   * may have left past what their sequences hold (the context stays usable). */
  private fail(requests: DecodeRequest[], e: unknown): void {
    const error = decodeError("decode", requests, e);
    const gone = new Set(requests);
    this.queue = this.queue.filter((r) => !gone.has(r));
    for (const r of requests) {
      try {
        this.addon.ctx.removeTokenCellsFromSequence(r.seq.index, r.seq.cached.length, -1);
      } catch {
        // The context is gone (disposed): nothing to clean.
      }
      r.reject(error);
    }
  }

  /**
   * Runs `wake` (a caller's turn to handle its token) once the drain's next decode has been
   * handed to llama.cpp, or the drain ends: the decode then overlaps the caller's work however
   * many microtask turns the drain takes to start it. At once when no drain runs.
   */
  later(wake: () => void): void {
    if (this.draining) this.wakes.push(wake);
    else wake();
  }

  private wakeCallers(): void {
    const wakes = this.wakes;
    if (wakes.length === 0) return;
    this.wakes = [];
    for (const wake of wakes) wake();
  }

  /** The grammar for a spec, built once per model and spec. */
  grammar(spec: GrammarSpec): Promise<LlamaGrammar> {
    const key = JSON.stringify(spec);
    let g = this.grammars.get(key);
    if (g) {
      // Most recently used last: the oldest goes first when the cache is full.
      this.grammars.delete(key);
    } else {
      g = buildGrammar(this.llama, spec);
      g.catch(() => this.grammars.delete(key));
      const oldest = this.grammars.keys().next();
      if (this.grammars.size >= GRAMMAR_CACHE && !oldest.done) this.grammars.delete(oldest.value);
    }
    this.grammars.set(key, g);
    return g;
  }

  async embed(
    inputs: readonly string[],
    options: { truncate: boolean; signal?: AbortSignal },
  ): Promise<EmbedResult> {
    if (this.disposed) throw disposedError(this.options.modelPath);
    // NOTE: node-llama-cpp's embedding context takes inputs strictly shorter than its size.
    this.embedding ??= this.model
      .createEmbeddingContext({
        contextSize: this.numCtx + 1,
        ...(this.options.threads !== undefined && { threads: this.options.threads }),
      })
      .then(async (ctx) => {
        this.embeddingBytes = await embeddingContextBytes(this.model, ctx, this.numCtx + 1);
        return ctx;
      });
    const ctx = await this.embedding;
    const embeddings: Float32Array[] = [];
    let promptTokens = 0;
    for (const [i, input] of inputs.entries()) {
      if (options.signal?.aborted) {
        throw new OwlError("ERR_ABORTED", "embedding was aborted", { cause: options.signal.reason });
      }
      let tokens = this.tokenize(input, { addBos: true, parseSpecial: true });
      if (tokens.length > this.numCtx) {
        if (!options.truncate) {
          throw new OwlError(
            "ERR_CONTEXT_OVERFLOW",
            `input ${i} has ${tokens.length} tokens and the context holds ${this.numCtx}`,
            {
              hint: "shorten the input, raise num_ctx, or set truncate",
              details: { tokens: tokens.length, nCtx: this.numCtx, index: i },
            },
          );
        }
        tokens = tokens.slice(0, this.numCtx);
      }
      if (tokens.length === 0) {
        throw new OwlError("ERR_INVALID_ARGUMENT", `input ${i} is empty: nothing to embed`);
      }
      const e = await ctx.getEmbeddingFor(tokens as Token[]);
      embeddings.push(normalize(Float32Array.from(e.vector)));
      promptTokens += tokens.length;
    }
    return { embeddings, promptTokens };
  }

  memoryBytes(): number {
    // Weights plus node-llama-cpp's estimate of the context (KV cache and compute buffers), made
    // when the context was created; llama.cpp's own state size when there is no estimate. Plus
    // the embedding context once /api/embed made one: it stays until the model is unloaded, as
    // Ollama's size counts all the runner holds.
    const m = this.context.memoryUsage;
    const ctx = m.ram + m.vram;
    // NOTE: stateSize asks llama.cpp (llama_state_get_size), which reads the KV cache: never while
    // a decode runs on it; the last size read between decodes then.
    if (ctx === 0 && !this.draining && !this.disposed) this.stateBytes = this.context.stateSize;
    return this.info.weightBytes + (ctx > 0 ? ctx : this.stateBytes) + this.embeddingBytes;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    // The decode or sampling in flight finishes first (the drain then rejects what is queued):
    // the native context must not be freed under it.
    while (this.draining) await this.draining;
    this.addon.freeThreads();
    for (const s of this.sequences) s.endGeneration();
    if (this.embedding) await (await this.embedding.catch(() => undefined))?.dispose();
    await this.context.dispose();
    await this.model.dispose();
  }
}

/** ERR_DECODE for requests whose decode (or sample) llama.cpp failed. */
function decodeError(what: string, requests: readonly DecodeRequest[], e: unknown): OwlError {
  if (e instanceof OwlError) return e;
  const seqs = requests.map((r) => r.seq.index).join(", ");
  const model = requests[0]?.seq.modelPath ?? "the model";
  const reason = e instanceof Error ? e.message : String(e);
  return new OwlError(
    "ERR_DECODE",
    `llama.cpp failed to ${what} the batch of sequence${requests.length === 1 ? "" : "s"} ${seqs} of ` +
      `${model}: ${reason}`,
    { cause: e, details: { sequences: requests.map((r) => r.seq.index) } },
  );
}

/**
 * The memory of an embedding context as node-llama-cpp counts its contexts' (memoryUsage: the
 * estimate it reserved at creation). NOTE: LlamaEmbeddingContext does not expose it in 3.21.1;
 * its inner LlamaContext (`_llamaContext`, internal) does. Without it, the same estimate asked of
 * the model's GGUF insights (public) for the size the context was made with.
 */
async function embeddingContextBytes(
  model: LlamaModel,
  ctx: LlamaEmbeddingContext,
  contextSize: number,
): Promise<number> {
  const inner = (ctx as unknown as { _llamaContext?: { memoryUsage?: { ram: number; vram: number } } })
    ._llamaContext?.memoryUsage;
  if (inner !== undefined && inner.ram + inner.vram > 0) return inner.ram + inner.vram;
  const est = await model.fileInsights.estimateContextResourceRequirementsV2({
    contextSize,
    modelGpuLayers: model.gpuLayers,
    isEmbeddingContext: true,
    sequences: 1,
  });
  return est.cpuRam + est.gpuVram;
}

async function buildGrammar(llama: Llama, spec: GrammarSpec): Promise<LlamaGrammar> {
  try {
    switch (spec.type) {
      case "json":
        return await llama.createGrammar({ grammar: JSON_OBJECT_GBNF });
      case "json_schema": {
        const schema = checkJsonSchema(spec.schema);
        // biome-ignore lint/suspicious/noExplicitAny: checkJsonSchema has checked the shape at run time.
        return await llama.createGrammarForJsonSchema(schema as any);
      }
      case "gbnf":
        return await llama.createGrammar({ grammar: spec.grammar });
    }
  } catch (e) {
    if (e instanceof OwlError) throw e;
    const what =
      spec.type === "gbnf" ? "GBNF grammar" : spec.type === "json" ? "JSON grammar" : "JSON schema";
    throw new OwlError("ERR_GRAMMAR", `cannot build a grammar from the ${what}: ${(e as Error).message}`, {
      cause: e,
      hint:
        spec.type === "json_schema"
          ? "llama.cpp supports a subset of JSON Schema: type, properties, required, items, enum, const, anyOf/oneOf, $defs"
          : undefined,
    });
  }
}

class LlamaCppSequence implements Sequence {
  busy = false;
  /** The tokens in this sequence's KV cells, in order: changed only by the model's drain. */
  readonly cached: number[] = [];
  /** Bumped by each generate(): an older generator still suspended ends at its next step. */
  private epoch = 0;
  /** The last step asked for (a generation's ask-ahead may outlive it): the next generate()
   * waits for it, so that `cached` and the KV cache agree before the prefix is compared. */
  private inFlight: Promise<unknown> | undefined;
  /** Ends the current generation's sampler, once its last step is done. */
  private end: (() => void) | undefined;
  private stats: PromptStats = { reused: 0, evaluated: 0 };

  constructor(
    private readonly owner: LlamaCppModel,
    readonly index: number,
  ) {}

  get tokens(): readonly number[] {
    return this.cached;
  }

  get modelPath(): string {
    return this.owner.options.modelPath;
  }

  lastPrompt(): PromptStats {
    return { ...this.stats };
  }

  release(): void {
    this.busy = false;
  }

  /** Disposes the last generation's sampler (after its step in flight, if any). */
  endGeneration(): void {
    this.end?.();
    this.end = undefined;
  }

  async *generate(
    prompt: readonly number[],
    options: SequenceGenerateOptions,
  ): AsyncGenerator<SampledToken, void, void> {
    const owner = this.owner;
    const numCtx = owner.numCtx;
    if (owner.disposed) throw disposedError(owner.options.modelPath);
    if (prompt.length === 0) {
      throw new OwlError("ERR_INVALID_ARGUMENT", "generate needs a prompt of at least one token");
    }
    if (prompt.length >= numCtx) throw contextOverflow(prompt.length, numCtx);
    const vocab = owner.info.vocabSize;
    if (vocab > 0) {
      for (const [i, id] of prompt.entries()) {
        if (!Number.isInteger(id) || id < 0 || id >= vocab) {
          throw new OwlError(
            "ERR_TOKEN_OUT_OF_RANGE",
            `prompt token ${id} at index ${i} is not in the vocabulary (ids 0..${vocab - 1})`,
            { details: { token: id, index: i, V: vocab } },
          );
        }
      }
    }
    const epoch = ++this.epoch;
    // The last generation's step still in flight (a step asked ahead for a caller that stopped)
    // ends first, then its sampler.
    await this.inFlight?.catch(() => {});
    this.endGeneration();
    if (epoch !== this.epoch) return;
    const grammarState = options.grammar
      ? new owner.lib.LlamaGrammarEvaluationState({
          model: owner.model,
          grammar: await owner.grammar(options.grammar),
        })
      : undefined;
    if (options.signal?.aborted || epoch !== this.epoch) return;
    if (owner.disposed) throw disposedError(owner.options.modelPath);

    const s = options.sampling;
    const want = options.logprobs;
    // With logprobs or typical-p at temperature > 0 (and no grammar, whose state follows
    // llama.cpp's own pick), llama.cpp runs only bias + penalties + greedy and reports the whole
    // distribution; owl's Sampler draws from it with the rest of llama.cpp's chain.
    const own = s.temperature > 0 && !grammarState && vocab > 0 && (want !== undefined || s.typicalP < 1);
    const drawer = own ? ownSampler(s, vocab) : undefined;
    const chainOptions = own ? { ...s, temperature: 0 } : s;
    const probabilities = own || (want !== undefined && want > 0);
    const confidence = !probabilities && want !== undefined;
    const seed = s.seed ?? randomSeed32();
    const all = [...prompt];
    const sampler = owner.addon.newSampler();
    let configured = false;
    const sample = async (batchLogitIndex: number): Promise<Sampled> => {
      // node-llama-cpp applies the config before every token; unchanged, the addon keeps its
      // state (module comment). With a token of owl's choosing fed back, the history changed.
      if (!configured || drawer) {
        sampler.applyConfig(this.samplerConfig(chainOptions, seed, all, grammarState));
        configured = true;
      }
      const ctx = owner.addon.ctx;
      const r =
        probabilities || confidence
          ? await ctx.sampleToken(batchLogitIndex, sampler, probabilities, confidence)
          : await ctx.sampleToken(batchLogitIndex, sampler);
      const token = typeof r === "number" ? r : r[0];
      if (token === -1) {
        throw new OwlError("ERR_DECODE", `llama.cpp's sampler chose no token for sequence ${this.index}`, {
          ...(grammarState && { hint: "the grammar may allow no token here" }),
        });
      }
      if (typeof r === "number") return { token };
      return {
        token,
        ...(r[1] !== undefined && { probabilities: r[1] }),
        ...(r[2] !== undefined && { confidence: r[2] }),
      };
    };
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const pending = this.inFlight;
      if (pending)
        pending.then(
          () => sampler.dispose(),
          () => sampler.dispose(),
        );
      else sampler.dispose();
    };
    this.end = end;

    // Keep the common prefix, evaluate at least the last prompt token (its logits are needed).
    let keep = commonPrefix(this.cached, prompt);
    if (keep === prompt.length) keep--;
    this.stats = { reused: keep, evaluated: prompt.length - keep };
    const room = numCtx - prompt.length;
    let produced = 0;
    /** Answers not yet handed out (at most one: the next request goes out only after one is). */
    const answers: ({ step: SampledToken } | { error: unknown })[] = [];
    /** Wakes the generator waiting for an answer. */
    let wake: (() => void) | undefined;
    /** Whether a request of this generation is queued or in the drain. */
    let open = false;
    let finished = false;
    // More steps: the context has room, nobody stopped this generation.
    const goOn = () => !finished && epoch === this.epoch && !options.signal?.aborted && produced < room;
    const ask = (tokens: readonly number[], trim?: DecodeRequest["trim"]) => {
      open = true;
      let settle = () => {};
      this.inFlight = new Promise<void>((r) => {
        settle = r;
      });
      owner.decode({
        seq: this,
        tokens,
        done: 0,
        ...(trim && { trim }),
        sample,
        resolve: (sampled) => {
          open = false;
          settle();
          if (finished || epoch !== this.epoch) return;
          let step: SampledToken;
          try {
            step = this.answer(sampled, drawer, want, vocab);
          } catch (e) {
            answers.push({ error: e });
            if (wake) owner.later(wake);
            return;
          }
          all.push(step.token);
          produced++;
          answers.push({ step });
          if (wake) {
            // Ask-ahead: the caller already waits for this token, so the next one is asked for
            // now and goes into the drain's next batch with every other sequence answered by
            // this one; the caller gets this token once that decode is on its way (later()), and
            // llama.cpp decodes while the caller turns the token into text and writes it out. The next token depends only on
            // the tokens so far, so the results are the same; when the caller stops here, one
            // step was decoded for nothing and the next generate() on this sequence waits for
            // it. The context holds prompt + generated tokens: no step past it.
            if (goOn()) ask([step.token]);
            owner.later(wake);
          }
        },
        reject: (e) => {
          open = false;
          settle();
          answers.push({ error: e });
          if (wake) owner.later(wake);
        },
      });
    };

    ask(prompt.slice(keep), {
      keep,
      prompt,
      reused: (n) => {
        this.stats = { reused: n, evaluated: prompt.length - n };
      },
    });
    try {
      while (true) {
        if (answers.length === 0) {
          // Nothing more coming: the context is full (or the generation was stopped).
          if (!open) return;
          await new Promise<void>((r) => {
            wake = r;
          });
          wake = undefined;
        }
        if (options.signal?.aborted || epoch !== this.epoch) return;
        const a = answers.shift();
        if (!a) continue;
        if ("error" in a) throw a.error;
        // The answer came while the caller was busy with the last token: ask for the next now,
        // before handing this one out (ask-ahead, as above).
        if (!open && goOn()) ask([a.step.token]);
        yield a.step;
      }
    } finally {
      finished = true;
      wake = undefined;
      if (this.end === end) this.end = undefined;
      end();
    }
  }

  /** The token a sample gives, with its logprobs when asked for: owl's Sampler draws it from the
   * distribution when the chain stopped after the penalties (module comment). */
  private answer(
    sampled: Sampled,
    drawer: Sampler | undefined,
    want: number | undefined,
    vocab: number,
  ): SampledToken {
    let token = sampled.token;
    const p = sampled.probabilities;
    if (drawer && p) {
      const logits = new Float32Array(vocab).fill(Number.NEGATIVE_INFINITY);
      for (let i = 0; i + 1 < p.length; i += 2) logits[p[i] as number] = Math.log(p[i + 1] as number);
      token = drawer.sample(logits);
      drawer.accept(token);
    }
    const step: SampledToken = { token };
    if (want !== undefined) {
      step.logprob = Math.log(p ? probabilityOf(p, token) : (sampled.confidence ?? 0));
      if (want > 0 && p) {
        const top: TopLogprob[] = [];
        for (let i = 0; i + 1 < p.length && top.length < want; i += 2) {
          top.push({ token: p[i] as number, logprob: Math.log(p[i + 1] as number) });
        }
        step.top = top;
      }
    }
    return step;
  }

  /** The sampler config node-llama-cpp 3.21.1 builds from owl's evaluate options of before
   * (LlamaContextSequence._resolveSamplerConfig), for the tokens so far. */
  private samplerConfig(
    s: SamplingOptions,
    seed: number,
    history: readonly number[],
    grammar: LlamaGrammarEvaluationState | undefined,
  ): SamplerConfig {
    const owner = this.owner;
    const config: SamplerConfig = {
      temperature: s.temperature,
      minP: s.minP,
      // NOTE: topK 0 means "all candidates", the same as llama.cpp's "off".
      topK: Math.max(0, s.topK),
      topP: s.topP,
      seed: Math.max(0, Number.isFinite(seed) ? Math.floor(seed) : Math.floor(Date.now() / 1000)),
    };
    const lastN = s.repeatLastN;
    if (lastN !== 0 && (s.repeatPenalty !== 1 || s.presencePenalty !== 0 || s.frequencyPenalty !== 0)) {
      const tokens = lastN < 0 ? history : history.slice(-lastN);
      config.repeatPenalty = s.repeatPenalty;
      config.repeatPenaltyMaxTokens = Math.max(lastN < 0 ? owner.numCtx : lastN, tokens.length);
      config.repeatPenaltyTokens = Uint32Array.from(tokens);
      config.repeatPenaltyPresencePenalty = s.presencePenalty;
      config.repeatPenaltyFrequencyPenalty = s.frequencyPenalty;
    }
    if (s.logitBias.size > 0) {
      // llama.cpp's logit-bias sampler adds each value to its token's logit (-Infinity bans it).
      // NOTE: unlike node-llama-cpp's TokenBias, which leaves end-of-generation tokens out, these
      // are kept: OpenAI's logit_bias on EOS must work, and the owl engine biases them too.
      const keys: number[] = [];
      const values: number[] = [];
      for (const [id, b] of s.logitBias) {
        keys.push(id);
        values.push(b);
      }
      if (keys.length > 0) {
        config.tokenBiasKeys = Uint32Array.from(keys);
        config.tokenBiasValues = Float32Array.from(values);
      }
    }
    if (grammar) config.grammarEvaluationState = owner.addon.grammarState(grammar);
    return config;
  }
}

/** The probability of `token` in a sampleToken distribution (id, probability pairs); 0 if absent. */
function probabilityOf(pairs: readonly number[], token: number): number {
  for (let i = 0; i + 1 < pairs.length; i += 2) if (pairs[i] === token) return pairs[i + 1] as number;
  return 0;
}
