/**
 * The llama.cpp backend: node-llama-cpp 3.21.1 runs a GGUF with one context of numParallel
 * sequences (createContext({sequences})), each able to hold numCtx tokens (node-llama-cpp sizes
 * the context as contextSize x sequences). Sequences generating at the same time are batched into
 * one decode by node-llama-cpp (its batching dispatches the pending evaluations of all sequences
 * on the next event-loop cycle, "maximumParallelism"), which is the continuous batching the
 * scheduler relies on, behind a step barrier of owl's: a sequence asks for its next token only
 * once no other sequence of the model is still waiting for the current step's. Without it the
 * batches split: node-llama-cpp samples each sequence of a batch in turn (one thread-pool job
 * each) and, still holding its context lock, decodes whatever was queued meanwhile, so the
 * sequences sampled first run ahead in a batch of their own (measured with node-llama-cpp
 * 3.21.1 on the 15M bench model: 2 streams gave batches of 1 token, 4 streams batches of 3; with
 * the barrier every step is one batch of 2, 4 or 8 tokens). A single sequence never waits.
 * What a full batch buys is llama.cpp's: on the bench machine (2-core AMD EPYC, AVX2, shared; one
 * model thread) a decode step of 4 sequences costs 1.9-3.4x a step of one from run to run, for
 * Q8_0, Q4_0 and F32 alike (timed around node-llama-cpp's decodeBatch), so 4 streams give
 * 1.3-1.8x the tokens/s of one, not 4x, through owl serve and node-llama-cpp direct alike
 * (bench/RESULTS.md, "serve"). Two threads batch better, but their one-sequence steps collapse
 * on a loaded 2-core machine (llama.cpp's threads spin).
 * Ask-ahead: a sequence asks for its next token as soon as it has one, before handing it to the
 * caller, and a step of one sequence is dispatched at once (node-llama-cpp's default waits for
 * the next event-loop cycle, after the caller's work): llama.cpp decodes on its own thread while
 * the caller (complete(), the HTTP route, the socket write) works, instead of after it. When the
 * caller stops, that one step was decoded for nothing and the sequence's next generate() waits
 * for it.
 *
 * Sampling maps onto node-llama-cpp's evaluate options (temperature, topK, topP, minP, seed,
 * repeatPenalty with the window of recent tokens, tokenBias from logitBias, grammars through
 * LlamaGrammarEvaluationState). Logprobs come from evaluateWithMetadata, which computes them over
 * the candidates after node-llama-cpp's sampler chain. So that they are the model's distribution
 * (the softmax of the logits after logit bias and penalties, before truncation and temperature),
 * a request with logprobs at temperature > 0 runs node-llama-cpp's chain up to the penalties only
 * (greedy), takes the whole distribution, and draws with owl's Sampler (the rest of llama.cpp's
 * chain, same seed, same result), feeding the chosen token back; node-llama-cpp has no typical-p
 * sampler, so typicalP < 1 takes the same path. NOTE: with a grammar the grammar's state follows
 * node-llama-cpp's own pick: there the logprobs are those after its whole chain, and typicalP is
 * ignored.
 *
 * Prefix reuse: a sequence keeps its evaluated tokens; generate() erases what follows the common
 * prefix with the new prompt and evaluates only the rest (always at least the last prompt token).
 * Embeddings run in a separate embedding context created on first use (the model's pooling; for
 * a model without one llama.cpp gives the last token's hidden state), L2-normalized here.
 * Not here: the completion loop over text (complete.ts), the shared Llama instance (backends.ts).
 */
import type {
  Llama,
  LlamaContext,
  LlamaContextSequence,
  LlamaEmbeddingContext,
  LlamaGrammar,
  LlamaGrammarEvaluationState,
  LlamaModel,
  SequenceEvaluateOptions,
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
      let loaded: LlamaCppModel | undefined;
      const context = await model.createContext({
        contextSize: options.numCtx,
        sequences: options.numParallel,
        flashAttention: false,
        failedCreationRemedy: false,
        batching: {
          dispatchSchedule: (dispatch) => (loaded ? loaded.scheduleDecode(dispatch) : setImmediate(dispatch)),
        },
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
      const info = facts.tokenizer ? facts.info : infoFromLlamaCpp(facts.info, model);
      loaded = new LlamaCppModel(lib, llama, model, context, info, facts.tokenizer, options);
      return loaded;
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

const utf8 = new TextEncoder();

/** Grammars kept per model (clients tend to send the same few schemas). */
const GRAMMAR_CACHE = 32;

/** What evaluateWithMetadata yields. */
type EvaluateOutput = { token: Token; confidence?: number; probabilities?: Map<Token, number> };

/**
 * owl's Sampler for the chain after node-llama-cpp's bias and penalties: top-k, typical-p, top-p,
 * min-p, temperature and the seeded draw, over log-probabilities (those stages do not change
 * when every logit moves by the same amount, so log p works as well as the raw logits).
 */
function ownSampler(s: SamplingOptions, nVocab: number): { sampler: Sampler; nVocab: number } {
  const sampler = new Sampler(
    {
      temperature: s.temperature,
      // NOTE: as node-llama-cpp's topK 0 (all candidates, sorted), so the draw matches its own.
      topK: s.topK > 0 ? s.topK : nVocab,
      topP: s.topP,
      minP: s.minP,
      typicalP: s.typicalP,
      repeatLastN: 0,
      seed: s.seed ?? randomSeed32(),
    },
    { nVocab },
  );
  return { sampler, nVocab };
}

type NodeLlamaCpp = typeof import("node-llama-cpp");

class LlamaCppModel implements LoadedModel {
  readonly backend: BackendName = "llama.cpp";
  readonly numCtx: number;
  readonly numParallel: number;
  private readonly sequences: LlamaCppSequence[] = [];
  private embedding: Promise<LlamaEmbeddingContext> | undefined;
  /** What the embedding context holds (KV cache and compute buffers), once created. */
  private embeddingBytes = 0;
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  disposed = false;
  /** The step barrier (module comment): sequences waiting for a decode now, and those held back. */
  private inFlight = 0;
  private held: (() => void)[] = [];
  private releasing = false;
  private readonly releaseHeld = () => {
    this.releasing = false;
    const held = this.held;
    this.held = [];
    // In flight from now on, before any of them runs: scheduleDecode sees the whole step.
    this.inFlight += held.length;
    for (const go of held) go();
  };

  constructor(
    readonly lib: NodeLlamaCpp,
    readonly llama: Llama,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    readonly info: ModelInfo,
    private readonly tokenizer: Tokenizer | undefined,
    readonly options: LoadOptions,
  ) {
    this.numCtx = options.numCtx;
    this.numParallel = options.numParallel;
    for (let i = 0; i < options.numParallel; i++) {
      this.sequences.push(new LlamaCppSequence(this, i, context.getSequence()));
    }
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
    if (this.tokenizer) return this.tokenizer.pieceBytes(token, true);
    // NOTE: without owl's tokenizer a byte token of a split character comes back as U+FFFD.
    return utf8.encode(this.model.detokenize([token as Token], true));
  }

  tryAcquireSequence(prompt?: readonly number[]): Sequence | undefined {
    let best: LlamaCppSequence | undefined;
    let bestLength = -1;
    for (const s of this.sequences) {
      if (s.busy) continue;
      const n = prompt ? commonPrefix(s.tokens, prompt) : 0;
      if (n > bestLength) {
        best = s;
        bestLength = n;
      }
    }
    if (best) best.busy = true;
    return best;
  }

  /**
   * The next evaluation of `it`, once no other sequence still waits for its token of the current
   * step; the held sequences go together on the next event-loop cycle after the last token of the
   * step arrived, so that their evaluations reach node-llama-cpp as one batch.
   */
  async step<T, V>(it: AsyncGenerator<T, void, V>, value: V): Promise<IteratorResult<T, void>> {
    if (this.inFlight > 0 || this.held.length > 0 || this.releasing) {
      // releaseHeld counts this sequence in flight.
      await new Promise<void>((go) => {
        this.held.push(go);
        this.releaseSoon();
      });
    } else {
      this.inFlight++;
    }
    try {
      return await it.next(value);
    } finally {
      this.inFlight--;
      this.releaseSoon();
    }
  }

  /**
   * node-llama-cpp's dispatchSchedule: when the first evaluation of a step is queued. A step of
   * one sequence is decoded at once, not on the next event-loop cycle, so the decode runs while
   * the caller handles the token before (see ask-ahead in the module comment) rather than after;
   * a step of several waits for the next cycle, by when all of them have queued theirs.
   */
  scheduleDecode(dispatch: () => void): void {
    if (this.inFlight <= 1 && this.held.length === 0 && !this.releasing) dispatch();
    else setImmediate(dispatch);
  }

  private releaseSoon(): void {
    if (this.inFlight === 0 && this.held.length > 0 && !this.releasing) {
      this.releasing = true;
      setImmediate(this.releaseHeld);
    }
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
    return this.info.weightBytes + (ctx > 0 ? ctx : this.context.stateSize) + this.embeddingBytes;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (this.embedding) await (await this.embedding.catch(() => undefined))?.dispose();
    await this.context.dispose();
    await this.model.dispose();
  }
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
  /** Bumped by each generate(): an older generator still suspended ends at its next step. */
  private epoch = 0;
  private inner: AsyncGenerator<unknown, void, unknown> | undefined;
  private stats: PromptStats = { reused: 0, evaluated: 0 };

  constructor(
    private readonly owner: LlamaCppModel,
    readonly index: number,
    private readonly seq: LlamaContextSequence,
  ) {}

  get tokens(): readonly number[] {
    return this.seq.contextTokens;
  }

  lastPrompt(): PromptStats {
    return { ...this.stats };
  }

  release(): void {
    this.busy = false;
  }

  async *generate(
    prompt: readonly number[],
    options: SequenceGenerateOptions,
  ): AsyncGenerator<SampledToken, void, void> {
    const numCtx = this.owner.numCtx;
    if (this.owner.disposed) throw disposedError(this.owner.options.modelPath);
    if (prompt.length === 0) {
      throw new OwlError("ERR_INVALID_ARGUMENT", "generate needs a prompt of at least one token");
    }
    if (prompt.length >= numCtx) throw contextOverflow(prompt.length, numCtx);
    const vocab = this.owner.info.vocabSize;
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
    // A generator abandoned without return() would keep node-llama-cpp's sampler: end it first.
    await this.inner?.return(undefined);
    this.inner = undefined;
    let ahead: Promise<IteratorResult<unknown, void>> | undefined;
    try {
      const grammarState = options.grammar
        ? new this.owner.lib.LlamaGrammarEvaluationState({
            model: this.owner.model,
            grammar: await this.owner.grammar(options.grammar),
          })
        : undefined;
      if (options.signal?.aborted || epoch !== this.epoch) return;

      // Keep the common prefix, evaluate at least the last prompt token (its logits are needed).
      let keep = commonPrefix(this.seq.contextTokens, prompt);
      if (keep === prompt.length) keep--;
      if (keep < this.seq.nextTokenIndex) {
        await this.seq.eraseContextTokenRanges([{ start: keep, end: this.seq.nextTokenIndex }]);
      }
      this.stats = { reused: keep, evaluated: prompt.length - keep };

      const all = [...prompt];
      const s = options.sampling;
      const want = options.logprobs;
      // With logprobs or typical-p at temperature > 0 (and no grammar, whose state follows
      // node-llama-cpp's own pick), node-llama-cpp runs only bias + penalties + greedy and reports
      // the whole distribution; owl's Sampler draws from it with the rest of llama.cpp's chain.
      const own =
        s.temperature > 0 &&
        !grammarState &&
        this.owner.info.vocabSize > 0 &&
        (want !== undefined || s.typicalP < 1);
      const evalOptions = this.evaluateOptions(own ? { ...s, temperature: 0 } : s, all, grammarState);
      const sampler = own ? ownSampler(s, this.owner.info.vocabSize) : undefined;
      const room = numCtx - prompt.length;
      const input = prompt.slice(keep) as Token[];
      const it: AsyncGenerator<Token | EvaluateOutput, void, Token | undefined> =
        want === undefined && !own
          ? this.seq.evaluate(input, evalOptions)
          : this.seq.evaluateWithMetadata(
              input,
              own || (want !== undefined && want > 0) ? { probabilities: true } : { confidence: true },
              evalOptions,
            );
      this.inner = it;
      let produced = 0;
      let next = await this.owner.step(it, undefined);
      while (!next.done) {
        if (options.signal?.aborted || epoch !== this.epoch) return;
        const out = next.value;
        const meta = typeof out === "number" ? undefined : out;
        let token = typeof out === "number" ? out : out.token;
        let logits: Float32Array | undefined;
        if (sampler && meta?.probabilities) {
          logits = new Float32Array(sampler.nVocab).fill(Number.NEGATIVE_INFINITY);
          for (const [id, q] of meta.probabilities) logits[id] = Math.log(q);
          token = sampler.sampler.sample(logits) as Token;
          sampler.sampler.accept(token);
        }
        const step: SampledToken = { token };
        if (want !== undefined && meta) {
          const p = meta.probabilities ? (meta.probabilities.get(token) ?? 0) : (meta.confidence ?? 0);
          step.logprob = Math.log(p);
          if (want > 0 && meta.probabilities) {
            const top: TopLogprob[] = [];
            for (const [id, q] of meta.probabilities) {
              if (top.length >= want) break;
              top.push({ token: id, logprob: Math.log(q) });
            }
            step.top = top;
          }
        }
        all.push(token);
        produced++;
        // Ask for the next token before handing this one out: llama.cpp decodes it on its thread
        // while the caller turns this one into text and writes it to the client. The next token
        // depends only on the tokens so far, so the results are the same; when the caller stops
        // here, one step was decoded for nothing and the next generate() on this sequence waits
        // for it (this.inner stays set). The context holds prompt + generated tokens: no step
        // past it (node-llama-cpp would shift the context). The token to evaluate next is ours
        // when owl's Sampler chose it.
        ahead =
          produced < room && !options.signal?.aborted
            ? this.owner.step(it, sampler ? token : undefined)
            : undefined;
        // Its failure is seen when it is awaited below, or by nobody when the caller stopped.
        ahead?.catch(() => {});
        yield step;
        if (options.signal?.aborted || epoch !== this.epoch || !ahead) return;
        next = (await ahead) as typeof next;
        ahead = undefined;
      }
    } finally {
      if (epoch === this.epoch && !ahead) this.inner = undefined;
    }
  }

  private evaluateOptions(
    s: SamplingOptions,
    history: number[],
    grammarEvaluationState: LlamaGrammarEvaluationState | undefined,
  ): SequenceEvaluateOptions {
    const o: SequenceEvaluateOptions = {
      temperature: s.temperature,
      // NOTE: node-llama-cpp's topK 0 means "all candidates", the same as llama.cpp's "off".
      topK: Math.max(0, s.topK),
      topP: s.topP,
      minP: s.minP,
      seed: s.seed ?? randomSeed32(),
      // The generator yields end-of-generation tokens: the caller decides when to stop.
      yieldEogToken: true,
    };
    const lastN = s.repeatLastN;
    if (lastN !== 0 && (s.repeatPenalty !== 1 || s.presencePenalty !== 0 || s.frequencyPenalty !== 0)) {
      o.repeatPenalty = {
        penalty: s.repeatPenalty,
        frequencyPenalty: s.frequencyPenalty,
        presencePenalty: s.presencePenalty,
        maxPunishTokens: lastN < 0 ? this.owner.numCtx : lastN,
        punishTokens: () => (lastN < 0 ? history : history.slice(-lastN)) as Token[],
      };
    }
    if (s.logitBias.size > 0) {
      const bias = new this.owner.lib.TokenBias(this.owner.model.tokenizer);
      for (const [id, b] of s.logitBias)
        bias.set(id as Token, b === Number.NEGATIVE_INFINITY ? "never" : { logit: b });
      o.tokenBias = bias;
    }
    if (grammarEvaluationState) o.grammarEvaluationState = grammarEvaluationState;
    return o;
  }
}
