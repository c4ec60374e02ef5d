/**
 * The owl engine backend: the same LoadedModel contract as llama.cpp's, on owl's own engine
 * (src/engine: loadModel on the WebAssembly kernels, one Session with its own KV cache per
 * sequence, the Sampler with llama.cpp's chain, typical-p included).
 *
 * Continuous batching behind a step barrier: a sequence that wants its next token queues the
 * request, and the requests queued in one event-loop turn are decoded together on the next turn
 * as ONE forward over one token per sequence, each at its own position against its own KV cache
 * (Model.evaluateBatch), so the weight matrices are read once per step for all of them (the
 * mat-mat kernels of prompt evaluation) instead of once per sequence. Sequences whose consumers
 * take their tokens in the same turn (complete() loops, the HTTP streams, which ask for the next
 * item right after writing one) thus step together. A single sequence never waits for others:
 * its step runs on the next turn through its own Session.evaluate, as the old one-at-a-time loop
 * did. When a sequence of the last step has not asked yet (its consumer is a turn late), the step
 * waits one more turn for it, and no longer, so that a late stream does not settle into steps of
 * its own. The engine is synchronous (the WASM thread pool blocks the caller), so a step blocks
 * the event loop while it runs. Prompts are evaluated per sequence in generate() (a prompt is a
 * mat-mat already), PROMPT_CHUNK tokens at a time with a turn of the event loop between chunks,
 * so that a long prompt does not hold up the other streams and the HTTP server. stepCounts()
 * counts the steps by their number of sequences.
 * What a batch gains is the kernels': on the bench machine (bench/serve.ts --owl, 15M and 110M
 * Q8_0, 2 threads, bench/RESULTS.md) a batched step of 4 sequences gives 1.8-2.0x the tokens/s
 * of a step of one and runs 1.5-1.7x faster than 4 steps of one (the small-T matmuls decode each
 * weight block once for up to 4 tokens; a 4-token Q8_0 product still costs about 2x a one-token
 * one, the WebAssembly SIMD bound without an 8-bit dot product). Through HTTP less of it shows:
 * the engine runs on the event loop, so the server's per-token work (JSON, socket writes, GC)
 * adds to each step rather than overlapping it as it does with llama.cpp's native threads.
 * Tried and reverted (commit 8028dba): the engine on a worker thread of its own, each sequence
 * asking for its next step before handing its token over, so that the HTTP work overlapped the
 * next forward. On the 2-core bench machine it gave 12-14% fewer tok/s at 1 and 4 streams and
 * the same 4-vs-1 ratio (an A/B of owl serve from both checkouts, alternating): the cores the
 * forward's pool already uses are the ones the HTTP work needs. On a machine with cores to spare
 * for the event loop it may pay.
 * Prefix reuse is the Session's own: it keeps the common prefix and evaluates the rest.
 * Logprobs are the log-softmax of the raw logits (before bias, penalties and temperature).
 * Embeddings: the final hidden state (the residual stream after the last layer, a forward hook,
 * then the model's output norm), pooled as the GGUF's pooling_type says (mean, first or last;
 * none, the default of generative models, takes the last token as llama.cpp does), L2-normalized.
 * Unsupported here, with ERR_UNSUPPORTED and a hint to use the llama.cpp backend: grammars and
 * LoRA adapters.
 * Not here: the completion loop over text (complete.ts), the engine itself.
 */
import { createWasmBackend, type WasmBackend } from "../engine/kernels/wasm/backend.ts";
import { loadModel, type Model, type Session } from "../engine/model.ts";
import { randomSeed, Sampler } from "../engine/sampler.ts";
import { openGguf } from "../formats/gguf/index.ts";
import { dequantize } from "../quant/index.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { OwlError } from "../util/errors.ts";
import {
  checkLoadOptions,
  commonPrefix,
  contextOverflow,
  disposedError,
  normalize,
  outputPieceBytes,
  readGgufFacts,
} from "./gguf-info.ts";
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

/** Yield to the event loop: other sequences, timers and I/O run between tokens. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

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
    const wasm = await createWasmBackend(options.threads !== undefined ? { threads: options.threads } : {});
    try {
      const model = await loadModel(options.modelPath, {
        backend: wasm,
        ...(options.signal && { signal: options.signal }),
      });
      return new OwlModel(model, wasm, facts.info, facts.tokenizer, facts.poolingType, options);
    } catch (e) {
      await wasm.dispose();
      throw e;
    }
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
  /** The forward runs synchronously on the calling (main) thread (module comment). */
  readonly decodesOnEventLoop = true;
  readonly numCtx: number;
  readonly numParallel: number;
  private readonly sequences: OwlSequence[] = [];
  private embedSession: Session | undefined;
  private outputNorm: Float32Array | undefined;
  disposed = false;
  /** steps[n]: decode steps of n sequences (stepCounts). */
  readonly steps: number[] = [];
  /** The step barrier (module comment): requests for the next step, and the last step's sequences. */
  private readonly pending = new Map<OwlSequence, StepRequest>();
  private lastStep = new Set<OwlSequence>();
  private stepScheduled = false;
  private waitedOnce = false;

  constructor(
    readonly model: Model,
    private readonly wasm: WasmBackend,
    readonly info: ModelInfo,
    readonly tokenizer: Tokenizer,
    private readonly poolingType: number | undefined,
    readonly options: LoadOptions,
  ) {
    this.numCtx = options.numCtx;
    this.numParallel = options.numParallel;
    for (let i = 0; i < options.numParallel; i++) {
      this.sequences.push(new OwlSequence(this, i, model.createSession({ nCtx: options.numCtx })));
    }
  }

  /**
   * The logits after `tokens` (the sequence's whole token list; its session holds all but the
   * last), decoded with the other sequences asking in this turn; undefined when the request was
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
      this.scheduleStep();
    });
  }

  /** `seq` stops generating: its pending request (if any) is dropped and no step waits for it. */
  leave(seq: OwlSequence): void {
    this.lastStep.delete(seq);
    const r = this.pending.get(seq);
    if (!r) return;
    this.pending.delete(seq);
    r.resolve(undefined);
  }

  private scheduleStep(): void {
    if (this.stepScheduled) return;
    this.stepScheduled = true;
    setImmediate(this.step);
  }

  /** One decode step of every pending request (see the module comment). */
  private readonly step = () => {
    this.stepScheduled = false;
    if (this.pending.size === 0) return;
    if (!this.waitedOnce) {
      for (const s of this.lastStep) {
        if (!this.pending.has(s)) {
          this.waitedOnce = true;
          this.scheduleStep();
          return;
        }
      }
    }
    this.waitedOnce = false;
    const batch: [OwlSequence, StepRequest][] = [];
    for (const [s, r] of this.pending) {
      if (r.signal?.aborted) r.resolve(undefined);
      else batch.push([s, r]);
    }
    this.pending.clear();
    this.lastStep = new Set(batch.map(([s]) => s));
    if (batch.length === 0) return;
    let logits: Float32Array[];
    try {
      if (this.disposed) throw disposedError(this.options.modelPath);
      if (batch.length === 1) {
        // One sequence: its own session's step, as before batching.
        const [s, r] = batch[0]!;
        logits = [s.session.evaluate(r.tokens, { logitsOut: s.logits }).logits];
      } else {
        const items = batch.map(([s, r]) => ({ session: s.session, tokens: r.tokens, logitsOut: s.logits }));
        logits = this.model.evaluateBatch(items, { maxRows: this.numParallel }).map((r) => r.logits);
      }
    } catch (e) {
      for (const [, r] of batch) r.reject(e);
      return;
    }
    this.steps[batch.length] = (this.steps[batch.length] ?? 0) + 1;
    for (const [i, [, r]] of batch.entries()) r.resolve(logits[i]);
  };

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
    if (this.disposed) throw disposedError(this.options.modelPath);
    const hp = this.model.hparams;
    const C = hp.C;
    this.embedSession ??= this.model.createSession({ nCtx: this.numCtx });
    const norm = this.finalNorm();
    const session = this.embedSession;
    const embeddings: Float32Array[] = [];
    let promptTokens = 0;
    const hookName = `blk.${hp.L - 1}.resid`;
    for (const [i, input] of inputs.entries()) {
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
      const hidden = new Float32Array(tokens.length * C);
      session.evaluate(tokens, {
        reuse: false,
        ...(options.signal && { signal: options.signal }),
        onActivation: (name, _layer, data, at) => {
          if (name === hookName) hidden.set(data.subarray(0, at.T * C), at.pos0 * C);
        },
      });
      embeddings.push(normalize(this.pool(hidden, tokens.length, C, norm, hp.rmsEps)));
      promptTokens += tokens.length;
      await tick();
    }
    return { embeddings, promptTokens };
  }

  /** output_norm.weight as float32 (C), read from the GGUF once. */
  private finalNorm(): Float32Array {
    if (this.outputNorm) return this.outputNorm;
    const file = openGguf(this.options.modelPath);
    try {
      const t = file.tensor("output_norm.weight");
      if (!t) {
        throw new OwlError(
          "ERR_UNSUPPORTED",
          `the model has no output_norm.weight: owl cannot embed with it`,
          {
            hint: USE_LLAMA_CPP,
          },
        );
      }
      this.outputNorm = dequantize(t.type, file.readTensor(t), t.nElements);
      return this.outputNorm;
    } finally {
      file.close();
    }
  }

  /** rms_norm(x) * w of each row, pooled over the T rows of `hidden` (T,C). */
  private pool(hidden: Float32Array, T: number, C: number, w: Float32Array, eps: number): Float32Array {
    // llama.cpp's enum llama_pooling_type: 1 mean, 2 cls (first token), 3 last; 0 / absent: none
    // (an embedding context then returns the last token's state).
    const rows =
      this.poolingType === 1
        ? Array.from({ length: T }, (_, t) => t)
        : this.poolingType === 2
          ? [0]
          : [T - 1];
    const out = new Float64Array(C);
    for (const t of rows) {
      const x = hidden.subarray(t * C, (t + 1) * C);
      let ss = 0;
      for (const v of x) ss += v * v;
      const scale = 1 / Math.sqrt(ss / C + eps);
      for (let c = 0; c < C; c++) out[c] = out[c]! + x[c]! * scale * w[c]!;
    }
    return Float32Array.from(out, (v) => v / rows.length);
  }

  memoryBytes(): number {
    return this.model.memory().totalBytes;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.model.dispose();
    await this.wasm.dispose();
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
  /** Bumped by each generate(): an older generator still suspended ends at its next step. */
  private epoch = 0;
  private stats: PromptStats = { reused: 0, evaluated: 0 };
  /**
   * This sequence's logits (V), rewritten by each of its evaluations (EvaluateOptions.logitsOut)
   * instead of a fresh array per token: generate() reads them (sampler, logprobs) before it asks
   * for the next step, and nothing else keeps them.
   */
  readonly logits: Float32Array;

  constructor(
    private readonly owner: OwlModel,
    readonly index: number,
    readonly session: Session,
  ) {
    this.logits = new Float32Array(owner.model.hparams.V);
  }

  get tokens(): readonly number[] {
    return this.session.tokens;
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
      { nVocab: this.owner.model.hparams.V },
    );
    const { signal } = options;
    const want = options.logprobs;
    const seq = [...prompt];
    let logits: Float32Array;
    try {
      // The prompt in chunks of PROMPT_CHUNK tokens with a turn of the event loop between them:
      // the engine runs on the event loop, so a long prompt evaluated at once would stall every
      // other stream (and the HTTP server) until it is done; between chunks their steps go on.
      const opts = { logitsOut: this.logits, ...(signal && { signal }) };
      const reused = Math.min(commonPrefix(this.session.tokens, seq), seq.length - 1);
      for (let end = reused + PROMPT_CHUNK; end < seq.length; end += PROMPT_CHUNK) {
        this.session.evaluate(seq.slice(0, end), opts);
        await tick();
        if (signal?.aborted || epoch !== this.epoch) return;
      }
      const r = this.session.evaluate(seq, opts);
      this.stats = { reused, evaluated: seq.length - reused };
      logits = r.logits;
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
        yield step;
        // The context holds prompt + generated tokens: nothing more fits.
        if (seq.length >= numCtx) return;
        if (signal?.aborted || epoch !== this.epoch) return;
        const next = await this.owner.next(this, seq, signal);
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
