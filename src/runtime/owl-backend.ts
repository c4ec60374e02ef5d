/**
 * The owl engine backend: the same LoadedModel contract as llama.cpp's, on owl's own engine
 * (src/engine: loadModel on the WebAssembly kernels, one Session with its own KV cache per
 * sequence, the Sampler with llama.cpp's chain, typical-p included).
 *
 * The engine runs on a thread of its own (owl-engine.ts EngineThread, owl-engine-host.ts): it
 * owns the model and the sessions and answers evaluation requests in order; this side keeps the
 * tokenizer, the samplers and a copy of the tokens each session holds. The engine is synchronous,
 * so on the event loop a step would block the HTTP server while it ran, and the streams'
 * per-token work (sampling, JSON, socket writes) would add to each step. Here a sequence asks
 * for its next step as soon as it has sampled a token, before it hands the token to its caller:
 * the engine computes step k+1 while the server writes out the tokens of step k. Not after a
 * token that ends the text or the caller's last one (SequenceGenerateOptions.maxTokens), so no
 * step is wasted at the end of a request (one may be, at a stop string).
 *
 * Continuous batching behind a step barrier: the requests of the sequences that want their next
 * token are decoded together as ONE forward over one token per sequence, each at its own position
 * against its own KV cache (Model.evaluateBatch), so the weight matrices are read once per step
 * for all of them (the mat-mat kernels of prompt evaluation) instead of once per sequence. One
 * step is on the engine's thread at a time; the next goes out the moment every sequence of the
 * last one has asked again (they do as they sample, in the turn the step's logits come back). A
 * sequence that is not in that set (one starting, or one whose caller was late) is picked up on
 * the next turn of the event loop; when a sequence of the last step has not asked by then, the
 * step waits one more turn for it, and no longer, so that a late stream does not settle into
 * steps of its own. A single sequence never waits for others: its step is its own Session.evaluate.
 * Prompts are evaluated per sequence (a prompt is a mat-mat already), PROMPT_CHUNK tokens a
 * request, so that the other streams' steps go between the chunks of a long prompt; a step waits
 * for a prompt's last chunk already on the thread (it would run after it anyway), so sequences
 * starting together step together from their first token. stepCounts() counts the steps by
 * their number of sequences.
 * What a batch gains is the kernels': on the bench machine (bench/serve.ts --owl, 15M and 110M
 * Q8_0, 2 threads, bench/RESULTS.md) a batched step of 4 sequences gives 1.5-2.2x the tokens/s
 * of a step of one (the small-T matmuls decode each weight block once for up to 4 tokens; a
 * 4-token Q8_0 product still costs about 2x a one-token one, the WebAssembly SIMD bound without
 * an 8-bit dot product).
 * Prefix reuse is the Session's own: it keeps the common prefix and evaluates the rest.
 * Logprobs are the log-softmax of the raw logits (before bias, penalties and temperature).
 * Embeddings (owl-engine-host.ts): the final hidden state (the residual stream after the last
 * layer, a forward hook, then the model's output norm), pooled as the GGUF's pooling_type says
 * (mean, first or last; none, the default of generative models, takes the last token as
 * llama.cpp does), L2-normalized.
 * Unsupported here, with ERR_UNSUPPORTED and a hint to use the llama.cpp backend: grammars and
 * LoRA adapters.
 * Not here: the completion loop over text (complete.ts), the engine itself.
 */
import { randomSeed, Sampler } from "../engine/sampler.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { OwlError } from "../util/errors.ts";
import {
  checkLoadOptions,
  commonPrefix,
  contextOverflow,
  disposedError,
  outputPieceBytes,
  readGgufFacts,
} from "./gguf-info.ts";
import { type EngineReply, EngineThread, fromWire } from "./owl-engine.ts";
import type {
  Backend,
  BackendName,
  EmbedResult,
  LoadedModel,
  LoadOptions,
  ModelInfo,
  PromptStats,
  SampledToken,
  Sequence,
  SequenceGenerateOptions,
  TopLogprob,
} from "./types.ts";

const USE_LLAMA_CPP = "use the llama.cpp backend (OWL_BACKEND=llama.cpp, the default)";

/** Prompt tokens evaluated between two turns of the event loop (OwlSequence.generate). */
const PROMPT_CHUNK = 64;

function isAbort(e: unknown): boolean {
  return (
    (e instanceof OwlError && e.code === "ERR_ABORTED") || (e instanceof Error && e.name === "AbortError")
  );
}

export class OwlBackend implements Backend {
  readonly name = "owl";

  async load(options: LoadOptions): Promise<LoadedModel> {
    checkLoadOptions(options);
    if (options.adapters.length > 0) {
      throw new OwlError(
        "ERR_UNSUPPORTED",
        `the owl engine does not apply LoRA adapters (asked for ${options.adapters.map((a) => a.path).join(", ")})`,
        { hint: USE_LLAMA_CPP },
      );
    }
    const facts = readGgufFacts(options.modelPath);
    if (!facts.tokenizer) {
      throw new OwlError(
        "ERR_UNSUPPORTED_TOKENIZER",
        `owl cannot read the vocabulary of ${options.modelPath}`,
        {
          hint: USE_LLAMA_CPP,
        },
      );
    }
    const engine = await EngineThread.start(
      {
        modelPath: options.modelPath,
        ...(options.threads !== undefined && { threads: options.threads }),
        numCtx: options.numCtx,
        numParallel: options.numParallel,
      },
      options.signal,
    );
    return new OwlModel(engine, facts.info, facts.tokenizer, facts.poolingType, options);
  }
}

/**
 * Decode steps of an owl-backend model by batch size: counts[n] steps decoded n sequences at once
 * (the next-token steps; prompts are not counted). undefined for a model of another backend.
 */
export function stepCounts(model: LoadedModel): readonly number[] | undefined {
  return model instanceof OwlModel ? [...model.steps] : undefined;
}

/** A sequence's request for its next logits, waiting for the step. */
interface StepRequest {
  tokens: readonly number[];
  signal: AbortSignal | undefined;
  /** undefined: the sequence no longer wants it (aborted, a new generate(), the caller left). */
  resolve: (logits: Float32Array | undefined) => void;
  reject: (e: unknown) => void;
}

class OwlModel implements LoadedModel {
  readonly backend: BackendName = "owl";
  readonly numCtx: number;
  readonly numParallel: number;
  private readonly sequences: OwlSequence[] = [];
  private memory: number;
  disposed = false;
  /** steps[n]: decode steps of n sequences (stepCounts). */
  readonly steps: number[] = [];
  /** The step barrier (module comment): requests for the next step, and the last step's sequences. */
  private readonly pending = new Map<OwlSequence, StepRequest>();
  private lastStep = new Set<OwlSequence>();
  private stepScheduled = false;
  private waitedOnce = false;
  /** A step is on the engine's thread: the next one waits for it (its sequences will be in it). */
  private stepInFlight = false;
  /**
   * Sequences whose prompt's last chunk is on the engine's thread: the next step waits for them
   * (the thread answers in order, so a step sent now would run after that chunk anyway).
   */
  private readonly joining = new Set<OwlSequence>();

  constructor(
    private readonly engine: EngineThread,
    readonly info: ModelInfo,
    readonly tokenizer: Tokenizer,
    private readonly poolingType: number | undefined,
    readonly options: LoadOptions,
  ) {
    this.numCtx = options.numCtx;
    this.numParallel = options.numParallel;
    this.memory = engine.facts.memoryBytes;
    for (let i = 0; i < options.numParallel; i++) this.sequences.push(new OwlSequence(this, i));
  }

  get nVocab(): number {
    return this.engine.facts.V;
  }

  /**
   * Session.evaluate(tokens) on `seq`'s session, on the engine's thread: the logits after the last
   * token. The sequence's copy of its session's tokens follows what the session holds.
   */
  async evaluate(seq: OwlSequence, tokens: readonly number[], last: boolean): Promise<Float32Array> {
    if (this.disposed) throw disposedError(this.options.modelPath);
    const sent = Int32Array.from(tokens);
    if (last) this.joining.add(seq);
    try {
      const reply = await this.engine.request({ type: "evaluate", seq: seq.index, tokens: sent });
      return this.logitsOf(reply, [[seq, tokens]])[0]!;
    } finally {
      if (last) {
        this.joining.delete(seq);
        // The sequence asks for its first step right away; if it does not (an error, an abort),
        // the others must not wait for it.
        if (this.pending.size > 0) this.scheduleStep();
      }
    }
  }

  /** The logits of a reply, after updating each sequence's tokens; throws an error reply. */
  private logitsOf(reply: EngineReply, sent: [OwlSequence, readonly number[]][]): Float32Array[] {
    if (reply.type !== "logits" && reply.type !== "error")
      throw new Error(`internal error: the owl engine answered an evaluation with ${reply.type}`);
    for (const [i, [s, tokens]] of sent.entries()) {
      const n = reply.lengths[i] ?? 0;
      s.cached = n === tokens.length ? tokens.slice() : tokens.slice(0, n);
    }
    if (reply.type === "error") throw fromWire(reply.error);
    return reply.logits;
  }

  /**
   * The logits after `tokens` (the sequence's whole token list; its session holds all but the
   * last), decoded with the other sequences asking for this step; undefined when the request was
   * dropped (leave(), or its signal fired before the step).
   */
  next(
    seq: OwlSequence,
    tokens: readonly number[],
    signal: AbortSignal | undefined,
  ): Promise<Float32Array | undefined> {
    return new Promise((resolve, reject) => {
      this.pending.get(seq)?.resolve(undefined);
      this.pending.set(seq, { tokens, signal, resolve, reject });
      if (this.lastStepAllAsked()) this.step();
      else this.scheduleStep();
    });
  }

  /** `seq` stops generating: its pending request (if any) is dropped and no step waits for it. */
  leave(seq: OwlSequence): void {
    this.lastStep.delete(seq);
    const r = this.pending.get(seq);
    if (r) {
      this.pending.delete(seq);
      r.resolve(undefined);
    }
    if (this.pending.size > 0) this.scheduleStep();
  }

  /** Every sequence of the last step has asked for the next one (none in flight, none joining). */
  private lastStepAllAsked(): boolean {
    if (this.stepInFlight || this.joining.size > 0 || this.lastStep.size === 0) return false;
    for (const s of this.lastStep) if (!this.pending.has(s)) return false;
    return true;
  }

  private scheduleStep(): void {
    if (this.stepScheduled || this.stepInFlight) return;
    this.stepScheduled = true;
    setImmediate(this.onTurn);
  }

  /** The turn after a request that did not complete the last step's set (module comment). */
  private readonly onTurn = () => {
    this.stepScheduled = false;
    // A joining sequence's reply schedules the step again.
    if (this.stepInFlight || this.joining.size > 0 || this.pending.size === 0) return;
    if (!this.waitedOnce) {
      for (const s of this.lastStep) {
        if (!this.pending.has(s)) {
          this.waitedOnce = true;
          this.scheduleStep();
          return;
        }
      }
    }
    this.step();
  };

  /** One decode step of every pending request, on the engine's thread (see the module comment). */
  private step(): void {
    this.waitedOnce = false;
    const batch: [OwlSequence, StepRequest][] = [];
    for (const [s, r] of this.pending) {
      if (r.signal?.aborted) r.resolve(undefined);
      else batch.push([s, r]);
    }
    this.pending.clear();
    this.lastStep = new Set(batch.map(([s]) => s));
    if (batch.length === 0) return;
    if (this.disposed) {
      for (const [, r] of batch) r.reject(disposedError(this.options.modelPath));
      return;
    }
    this.stepInFlight = true;
    const sent = batch.map(([s, r]): [OwlSequence, readonly number[]] => [s, r.tokens]);
    const tokens = sent.map(([, t]) => Int32Array.from(t));
    const call =
      batch.length === 1
        ? this.engine.request({ type: "evaluate", seq: batch[0]![0].index, tokens: tokens[0]! })
        : this.engine.request({ type: "step", seqs: batch.map(([s]) => s.index), tokens });
    call
      .then((reply) => {
        const logits = this.logitsOf(reply, sent);
        this.steps[batch.length] = (this.steps[batch.length] ?? 0) + 1;
        this.stepInFlight = false;
        for (const [i, [, r]] of batch.entries()) r.resolve(logits[i]);
      })
      .catch((e: unknown) => {
        this.stepInFlight = false;
        for (const [, r] of batch) r.reject(e);
      })
      .finally(() => {
        // Requests that came while the step ran (a sequence joining) go in the next one; the
        // sequences of this step ask again as they take their token (usually before this runs).
        if (this.pending.size > 0) this.scheduleStep();
      });
  }

  tokenize(text: string, options: { addBos: boolean; parseSpecial: boolean }): number[] {
    // NOTE: addSpecial also adds EOS for the rare vocabularies with add_eos_token, as llama.cpp does.
    return this.tokenizer.encode(text, { addSpecial: options.addBos, parseSpecial: options.parseSpecial });
  }

  detokenize(tokens: readonly number[]): string {
    return this.tokenizer.decode(tokens, { renderSpecial: true });
  }

  tokenBytes(token: number): Uint8Array {
    return outputPieceBytes(this.tokenizer, token);
  }

  tryAcquireSequence(prompt?: readonly number[]): Sequence | undefined {
    let best: OwlSequence | undefined;
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

  async embed(
    inputs: readonly string[],
    options: { truncate: boolean; signal?: AbortSignal },
  ): Promise<EmbedResult> {
    const embeddings: Float32Array[] = [];
    let promptTokens = 0;
    for (const [i, input] of inputs.entries()) {
      if (this.disposed) throw disposedError(this.options.modelPath);
      if (options.signal?.aborted)
        throw new OwlError("ERR_ABORTED", "embedding was aborted", { cause: options.signal.reason });
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
      if (tokens.length === 0)
        throw new OwlError("ERR_INVALID_ARGUMENT", `input ${i} is empty: nothing to embed`);
      const reply = await this.engine.request({
        type: "embed",
        tokens: Int32Array.from(tokens),
        poolingType: this.poolingType,
      });
      if (reply.type === "error") throw fromWire(reply.error);
      if (reply.type !== "embedding")
        throw new Error(`internal error: the owl engine answered an embedding with ${reply.type}`);
      this.memory = reply.memoryBytes;
      embeddings.push(reply.embedding);
      promptTokens += tokens.length;
    }
    return { embeddings, promptTokens };
  }

  memoryBytes(): number {
    return this.memory;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const r of this.pending.values()) r.resolve(undefined);
    this.pending.clear();
    await this.engine.dispose();
  }
}

/** log-softmax of `logits` at the given ids, in float64. */
function logSoftmaxAt(logits: Float32Array): (id: number) => number {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return (id) => logits[id]! - lse;
}

/** The n largest logits' ids, largest first (ties: lower id first). */
function topIds(logits: Float32Array, n: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!;
    if (top.length === n && v <= logits[top[n - 1]!]!) continue;
    let j = top.length < n ? top.length : n - 1;
    if (top.length < n) top.push(i);
    while (j > 0 && logits[top[j - 1]!]! < v) {
      top[j] = top[j - 1]!;
      j--;
    }
    top[j] = i;
  }
  return top;
}

class OwlSequence implements Sequence {
  busy = false;
  /** The tokens its session on the engine's thread holds (OwlModel.logitsOf keeps it exact). */
  cached: readonly number[] = [];
  /** Bumped by each generate(): an older generator still suspended ends at its next step. */
  private epoch = 0;
  private stats: PromptStats = { reused: 0, evaluated: 0 };

  constructor(
    private readonly owner: OwlModel,
    readonly index: number,
  ) {}

  get tokens(): readonly number[] {
    return this.cached;
  }

  lastPrompt(): PromptStats {
    return { ...this.stats };
  }

  release(): void {
    this.busy = false;
    // A generator left suspended by its caller neither holds a step nor makes one wait.
    this.owner.leave(this);
  }

  async *generate(
    prompt: readonly number[],
    options: SequenceGenerateOptions,
  ): AsyncGenerator<SampledToken, void, void> {
    const numCtx = this.owner.numCtx;
    if (this.owner.disposed) throw disposedError(this.owner.options.modelPath);
    if (options.grammar) {
      throw new OwlError(
        "ERR_UNSUPPORTED",
        `the owl engine does not constrain output with grammars (asked for a ${options.grammar.type} grammar)`,
        { hint: USE_LLAMA_CPP },
      );
    }
    if (prompt.length === 0) {
      throw new OwlError("ERR_INVALID_ARGUMENT", "generate needs a prompt of at least one token");
    }
    if (prompt.length >= numCtx) throw contextOverflow(prompt.length, numCtx);
    const epoch = ++this.epoch;
    // An older generator still waiting for a step ends without it.
    this.owner.leave(this);
    const s = options.sampling;
    const sampler = new Sampler(
      {
        temperature: s.temperature,
        topK: Math.max(0, s.topK),
        topP: s.topP,
        minP: s.minP,
        typicalP: s.typicalP,
        repeatPenalty: s.repeatPenalty,
        repeatLastN: s.repeatLastN,
        presencePenalty: s.presencePenalty,
        frequencyPenalty: s.frequencyPenalty,
        seed: s.seed ?? randomSeed(),
        logitBias: s.logitBias,
      },
      { nVocab: this.owner.nVocab },
    );
    const { signal } = options;
    const want = options.logprobs;
    const eog = this.owner.info.eogTokens;
    const seq = [...prompt];
    let yielded = 0;
    try {
      // The prompt in chunks of PROMPT_CHUNK tokens: the engine's thread answers requests in
      // order, so the other streams' steps go on between the chunks of a long prompt.
      const reused = Math.min(commonPrefix(this.cached, seq), seq.length - 1);
      for (let end = reused + PROMPT_CHUNK; end < seq.length; end += PROMPT_CHUNK) {
        await this.owner.evaluate(this, seq.slice(0, end), false);
        if (signal?.aborted || epoch !== this.epoch) return;
      }
      let logits = await this.owner.evaluate(this, seq, true);
      this.stats = { reused, evaluated: seq.length - reused };
      for (;;) {
        if (signal?.aborted || epoch !== this.epoch) return;
        const token = sampler.sample(logits, seq);
        sampler.accept(token);
        const step: SampledToken = { token };
        if (want !== undefined) {
          const lp = logSoftmaxAt(logits);
          step.logprob = lp(token);
          if (want > 0)
            step.top = topIds(logits, want).map((id): TopLogprob => ({ token: id, logprob: lp(id) }));
        }
        seq.push(token);
        yielded++;
        // The context holds prompt + generated tokens: nothing more fits.
        const full = seq.length >= numCtx;
        // Ask for the next step before handing the token over: the engine's thread computes it
        // while the caller shows this one (the server's JSON and socket writes). Not after a token
        // that ends the text or the caller's last one (the step would be wasted).
        const last =
          full ||
          eog.includes(token) ||
          (options.maxTokens !== undefined && options.maxTokens >= 0 && yielded >= options.maxTokens);
        const nextStep = last ? undefined : this.owner.next(this, seq, signal);
        // Observed at once: a caller that stops at this token never awaits it.
        nextStep?.catch(() => {});
        yield step;
        if (full) return;
        if (signal?.aborted || epoch !== this.epoch) return;
        const next = await (nextStep ?? this.owner.next(this, seq, signal));
        if (next === undefined || epoch !== this.epoch) return;
        logits = next;
      }
    } catch (e) {
      if (isAbort(e)) return;
      throw e;
    } finally {
      if (epoch === this.epoch) this.owner.leave(this);
    }
  }
}
