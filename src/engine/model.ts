/**
 * Loading a GGUF model into a KernelBackend and evaluating token sequences.
 *
 *   const model = await loadModel("model.gguf");            // RefBackend unless one is given
 *   const s = model.createSession({ nCtx: 512 });
 *   const { logits } = s.evaluate([1, 450, 4996]);           // logits (V) of the last token
 *   s.evaluate([1, 450, 4996, 17354]);                       // evaluates only the new token
 *
 * A Session owns a KV cache and remembers the tokens it holds: evaluate() of a sequence sharing
 * a prefix with them truncates the cache to the common prefix and runs only the rest (at least
 * the last token, whose logits are returned). `evaluatedTokens` counts tokens run through the
 * forward. Weights stay in their stored type; memory() reports weights, KV cache and scratch.
 *
 *   model.evaluateBatch([{ session: a, tokens: seqA }, { session: b, tokens: seqB }]);
 *
 * evaluates several sessions in one forward per step (continuous batching: usually one new token
 * per session, so the weight matrices are read once for all of them), each item with the same
 * prefix reuse, checks and result as Session.evaluate; rows beyond maxRows go in further steps.
 * Not here: architectures (arch/), kernels (kernels/), sampling beyond argmax (greedy.ts).
 */
import { type GgufFile, getString, openGguf } from "../formats/gguf/index.ts";
import { GENERAL } from "../formats/gguf/keys.ts";
import { OwlError } from "../util/errors.ts";
import { ARCHITECTURES } from "./arch/index.ts";
import type { ForwardFn } from "./arch/types.ts";
import type { Buf, KernelBackend } from "./backend.ts";
import { type ActivationHook, allocScratch, type Scratch } from "./forward.ts";
import type { Hyperparams } from "./hyperparams.ts";
import { RefBackend } from "./kernels/ref/backend.ts";
import { KvCache } from "./kv-cache.ts";
import { loadWeights } from "./weights.ts";

export interface LoadModelOptions {
  /** Where weights and activations live; default a new RefBackend (disposed with the model). */
  backend?: KernelBackend;
  /** Called after each tensor is uploaded. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** Options of the session model.evaluate() uses. */
  session?: SessionOptions;
}

export interface SessionOptions {
  /** Context length of the KV cache (default min(context_length, 2048)). */
  nCtx?: number;
  /** Tokens per forward step when evaluating a prompt (default 32). */
  nBatch?: number;
}

export interface EvaluateOptions {
  /** Also return the logits of every evaluated position (allLogits). */
  allLogits?: boolean;
  /** Reuse the cached prefix (default true); false evaluates every token again. */
  reuse?: boolean;
  /** Activation hook, see forward.ts. */
  onActivation?: ActivationHook;
  signal?: AbortSignal;
  /**
   * A Float32Array of length V to write the logits into; the result's `logits` is then this same
   * array. Default: a fresh array per call. For a decode loop that reads each token's logits
   * before asking for the next (its sampler, its logprobs), one buffer it owns spares a V-float
   * allocation and its garbage collection per token; whatever kept the array sees it overwritten
   * by the next call. Checked before anything is evaluated (ERR_INVALID_ARGUMENT).
   */
  logitsOut?: Float32Array;
}

export interface EvaluateResult {
  /** Logits (V) after the last token: the options' logitsOut when given, else a fresh array the caller owns. */
  logits: Float32Array;
  /** Position of the first token evaluated by this call; earlier ones came from the cache. */
  firstPosition: number;
  /** Tokens evaluated by this call (tokens.length - firstPosition). */
  evaluated: number;
  /** With allLogits: (evaluated, V), row i for position firstPosition + i. */
  allLogits?: Float32Array;
}

/** One sequence of a batch: like Session.evaluate(tokens) on `session`. */
export interface BatchItem {
  session: Session;
  /** The whole sequence, from position 0 (the cached prefix is reused). */
  tokens: readonly number[];
  /** As EvaluateOptions.logitsOut, for this item's logits. */
  logitsOut?: Float32Array;
}

export interface EvaluateBatchOptions {
  /** Rows (tokens of all items together) per forward step; default 32. */
  maxRows?: number;
  signal?: AbortSignal;
  /** Not supported in a batch (ERR_UNSUPPORTED): use Session.evaluate. */
  onActivation?: ActivationHook;
}

/** Default rows per batched step (as a session's default nBatch). */
const BATCH_ROWS = 32;

export interface MemoryReport {
  /** Weights in backend memory (stored types). */
  weightsBytes: number;
  /** KV caches of all sessions. */
  kvBytes: number;
  /** Activation scratch of all sessions. */
  scratchBytes: number;
  /** Everything the backend has allocated (the sum above plus alignment padding). */
  totalBytes: number;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new OwlError("ERR_ABORTED", "evaluation was aborted", { cause: signal.reason });
}

/** EvaluateOptions.logitsOut: a Float32Array of V floats (or absent). */
function checkLogitsOut(out: Float32Array | undefined, V: number, where = ""): void {
  if (out === undefined || (out instanceof Float32Array && out.length === V)) return;
  const found =
    out instanceof Float32Array
      ? `a Float32Array of length ${out.length}`
      : ((out as object | null)?.constructor?.name ?? typeof out);
  throw new OwlError(
    "ERR_INVALID_ARGUMENT",
    `${where}logitsOut must be a Float32Array of length V = ${V}, found ${found}`,
    {
      details: { parameter: "logitsOut", expected: V, found },
    },
  );
}

/** Tokens to evaluate from position 0: not empty, every id in 0..V-1, at most nCtx of them. */
function checkTokens(tokens: readonly number[], V: number, nCtx: number, where = ""): void {
  if (tokens.length === 0)
    throw new OwlError("ERR_INVALID_ARGUMENT", `${where}evaluate needs at least one token`);
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new OwlError(
        "ERR_TOKEN_OUT_OF_RANGE",
        `${where}token ${id} at index ${i} is not in the vocabulary (ids 0..${V - 1}, V = ${V})`,
        { details: { token: id, index: i, V } },
      );
    }
  }
  if (tokens.length > nCtx) {
    throw new OwlError(
      "ERR_CONTEXT_OVERFLOW",
      `${where}${tokens.length} tokens do not fit the context of ${nCtx} tokens`,
      {
        hint: "shorten the input or create the session with a larger nCtx",
        details: { tokens: tokens.length, nCtx },
      },
    );
  }
}

export class Model {
  private readonly sessions: Session[] = [];
  private defaultSession: Session | undefined;
  /** Activations of evaluateBatch, allocated on first use and grown (to a power of two) when needed. */
  private batchScratch: Scratch | undefined;

  constructor(
    readonly arch: string,
    readonly hparams: Hyperparams,
    readonly backend: KernelBackend,
    /** Bytes of weights uploaded. */
    readonly weightsBytes: number,
    /** @internal the forward pass over the loaded weights. */
    readonly forward: ForwardFn,
    private readonly ownsBackend: boolean,
    private readonly sessionDefaults: SessionOptions = {},
  ) {}

  /** A new sequence with its own KV cache. */
  createSession(options: SessionOptions = {}): Session {
    const s = new Session(this, { ...this.sessionDefaults, ...options });
    this.sessions.push(s);
    return s;
  }

  /** Evaluate with the model's default session (created on first use); see Session.evaluate. */
  evaluate(tokens: readonly number[], options?: EvaluateOptions): EvaluateResult {
    this.defaultSession ??= this.createSession();
    return this.defaultSession.evaluate(tokens, options);
  }

  /** The default session (created on first use). */
  get session(): Session {
    this.defaultSession ??= this.createSession();
    return this.defaultSession;
  }

  /**
   * Evaluate several sessions together: for each item what Session.evaluate(item.tokens) does
   * (prefix reuse, the same checks and errors, naming the item), with the rows of all items in
   * one forward per step of at most maxRows rows. Results in item order. Every item is checked
   * before anything is evaluated; an abort between steps leaves each cache holding what was
   * evaluated so far, as Session.evaluate does.
   */
  evaluateBatch(items: readonly BatchItem[], options: EvaluateBatchOptions = {}): EvaluateResult[] {
    const hp = this.hparams;
    const { V } = hp;
    if (options.onActivation) {
      throw new OwlError("ERR_UNSUPPORTED", "activation hooks are not called in a batched evaluation", {
        hint: "evaluate each session with Session.evaluate(tokens, { onActivation })",
      });
    }
    const maxRows = options.maxRows ?? BATCH_ROWS;
    if (!Number.isInteger(maxRows) || maxRows <= 0) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `maxRows must be a positive integer, found ${maxRows}`);
    }
    const seen = new Map<Session, number>();
    for (const [i, item] of items.entries()) {
      if (item.session.model !== this) {
        throw new OwlError("ERR_INVALID_ARGUMENT", `batch item ${i}: the session belongs to another model`);
      }
      const j = seen.get(item.session);
      if (j !== undefined) {
        throw new OwlError(
          "ERR_INVALID_ARGUMENT",
          `batch items ${j} and ${i} are the same session: a session takes one item per batch`,
        );
      }
      seen.set(item.session, i);
      checkTokens(item.tokens, V, item.session.nCtx, `batch item ${i}: `);
      checkLogitsOut(item.logitsOut, V, `batch item ${i}: `);
    }
    checkAborted(options.signal);

    // Every row: its session's cache, position and token; the last row of each item gets logits.
    const kvs: KvCache[] = [];
    const owners: Session[] = [];
    const positions: number[] = [];
    const tokens: number[] = [];
    const results: EvaluateResult[] = [];
    const outRowOf: number[] = [];
    for (const item of items) {
      const { kv, keep } = item.session.beginBatch(item.tokens);
      for (let p = keep; p < item.tokens.length; p++) {
        kvs.push(kv);
        owners.push(item.session);
        positions.push(p);
        tokens.push(item.tokens[p]!);
      }
      outRowOf.push(tokens.length - 1);
      results.push({
        logits: new Float32Array(0),
        firstPosition: keep,
        evaluated: item.tokens.length - keep,
      });
    }
    const be = this.backend;
    const total = tokens.length;
    let item = 0;
    for (let start = 0; start < total; start += maxRows) {
      checkAborted(options.signal);
      const end = Math.min(start + maxRows, total);
      const T = end - start;
      const scratch = this.scratchFor(T, maxRows);
      const rows = [];
      for (let t = start; t < end; t++) rows.push({ kv: kvs[t]!, pos: positions[t]! });
      const firstItem = item;
      const outRows: number[] = [];
      while (item < items.length && outRowOf[item]! < end) outRows.push(outRowOf[item++]! - start);
      this.forward({
        backend: be,
        scratch,
        kv: kvs[start]!,
        tokens: tokens.slice(start, end),
        pos0: positions[start]!,
        outFrom: T,
        rows,
        outRows,
      });
      for (let t = start; t < end; t++) {
        kvs[t]!.append([tokens[t]!]);
        owners[t]!.countEvaluated(1);
      }
      for (let i = 0; i < outRows.length; i++) {
        const row = be.f32({ offset: scratch.logits.offset + i * V * 4, bytes: V * 4 });
        const out = items[firstItem + i]!.logitsOut;
        if (out) out.set(row);
        results[firstItem + i]!.logits = out ?? row.slice();
      }
    }
    return results;
  }

  /** The batch scratch, at least `rows` rows (of at most maxRows when grown). */
  private scratchFor(rows: number, maxRows: number): Scratch {
    if (!this.batchScratch || this.batchScratch.nBatch < rows) {
      let n = 1;
      while (n < rows) n *= 2;
      n = Math.max(rows, Math.min(n, maxRows));
      this.batchScratch = allocScratch(this.backend, this.hparams, n, n);
    }
    return this.batchScratch;
  }

  memory(): MemoryReport {
    let kvBytes = 0;
    let scratchBytes = this.batchScratch?.bytes ?? 0;
    for (const s of this.sessions) {
      kvBytes += s.kvBytes;
      scratchBytes += s.scratchBytes;
    }
    return { weightsBytes: this.weightsBytes, kvBytes, scratchBytes, totalBytes: this.backend.usedBytes() };
  }

  async dispose(): Promise<void> {
    if (this.ownsBackend) await this.backend.dispose();
  }
}

export class Session {
  readonly nCtx: number;
  readonly nBatch: number;
  private readonly kv: KvCache;
  private readonly scratch: Scratch;
  /** Logits (nBatch, V), allocated on the first allLogits request. */
  private batchLogits: Buf | undefined;
  private evaluatedCount = 0;

  constructor(
    readonly model: Model,
    options: SessionOptions,
  ) {
    const hp = model.hparams;
    const nCtx = options.nCtx ?? Math.min(hp.nCtxTrain, 2048);
    const nBatch = Math.min(options.nBatch ?? 32, nCtx);
    if (!Number.isInteger(nCtx) || nCtx <= 0) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `nCtx must be a positive integer, found ${nCtx}`);
    }
    if (!Number.isInteger(nBatch) || nBatch <= 0) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `nBatch must be a positive integer, found ${nBatch}`);
    }
    this.nCtx = nCtx;
    this.nBatch = nBatch;
    this.kv = new KvCache(model.backend, hp.L, nCtx, hp.nHeadKv * hp.headDim);
    this.scratch = allocScratch(model.backend, hp, nBatch, 1);
  }

  /** Tokens whose keys and values the cache holds (positions 0..length-1). */
  get tokens(): readonly number[] {
    return this.kv.tokens();
  }

  /** Tokens run through the forward pass since the session was created (prefix hits excluded). */
  get evaluatedTokens(): number {
    return this.evaluatedCount;
  }

  get kvBytes(): number {
    return this.kv.bytes;
  }

  get scratchBytes(): number {
    return this.scratch.bytes + (this.batchLogits ? this.nBatch * this.model.hparams.V * 4 : 0);
  }

  /** Forget the cached tokens. */
  reset(): void {
    this.kv.truncate(0);
  }

  /**
   * @internal Model.evaluateBatch, after checking `tokens`: keep the common prefix (at least the
   * last token is evaluated again) and drop the rest; the cache and the first position to evaluate.
   */
  beginBatch(tokens: readonly number[]): { kv: KvCache; keep: number } {
    let keep = this.kv.commonPrefix(tokens);
    if (keep === tokens.length) keep--;
    this.kv.truncate(keep);
    return { kv: this.kv, keep };
  }

  /** @internal Model.evaluateBatch: tokens it ran through the forward for this session. */
  countEvaluated(n: number): void {
    this.evaluatedCount += n;
  }

  memory(): MemoryReport {
    return {
      weightsBytes: this.model.weightsBytes,
      kvBytes: this.kvBytes,
      scratchBytes: this.scratchBytes,
      totalBytes: this.model.backend.usedBytes(),
    };
  }

  /**
   * Evaluate `tokens` (the whole sequence, from position 0) and return the logits after the last
   * one. Tokens already in the cache as a prefix are not evaluated again (unless reuse is false).
   */
  evaluate(tokens: readonly number[], options: EvaluateOptions = {}): EvaluateResult {
    const hp = this.model.hparams;
    const { V } = hp;
    checkTokens(tokens, V, this.nCtx);
    checkLogitsOut(options.logitsOut, V);
    checkAborted(options.signal);

    // Reuse the common prefix, but always evaluate the last token (its logits are the result).
    let keep = options.reuse === false ? 0 : this.kv.commonPrefix(tokens);
    if (keep === tokens.length) keep--;
    this.kv.truncate(keep);

    const all = options.allLogits === true;
    if (all) this.batchLogits ??= this.model.backend.alloc(this.nBatch * V * 4);
    const n = tokens.length - keep;
    const allOut = all ? new Float32Array(n * V) : undefined;
    const be = this.model.backend;
    for (let start = keep; start < tokens.length; start += this.nBatch) {
      checkAborted(options.signal);
      const chunk = tokens.slice(start, Math.min(start + this.nBatch, tokens.length));
      const T = chunk.length;
      const last = start + T === tokens.length;
      const scratch = all
        ? { ...this.scratch, logits: this.batchLogits!, logitRows: this.nBatch }
        : this.scratch;
      this.model.forward({
        backend: be,
        scratch,
        kv: this.kv,
        tokens: chunk,
        pos0: start,
        outFrom: all ? 0 : last ? T - 1 : T,
        hook: options.onActivation,
      });
      this.kv.append(chunk);
      this.evaluatedCount += T;
      if (allOut) allOut.set(be.f32({ offset: scratch.logits.offset, bytes: T * V * 4 }), (start - keep) * V);
    }
    const last = allOut
      ? allOut.subarray((n - 1) * V)
      : be.f32({ offset: this.scratch.logits.offset, bytes: V * 4 });
    const out = options.logitsOut;
    if (out) out.set(last);
    const logits = out ?? last.slice();
    const result: EvaluateResult = { logits, firstPosition: keep, evaluated: n };
    if (allOut) result.allLogits = allOut;
    return result;
  }
}

/**
 * Load a GGUF model (a path, or a GgufFile the caller keeps open) into `options.backend`.
 * Throws ERR_UNSUPPORTED_ARCH for an architecture the engine does not run, ERR_MODEL_METADATA
 * for missing hyperparameters, ERR_TENSOR_NOT_FOUND / ERR_TENSOR_SHAPE for tensors that do not
 * match them.
 */
export async function loadModel(source: string | GgufFile, options: LoadModelOptions = {}): Promise<Model> {
  const file = typeof source === "string" ? openGguf(source) : source;
  try {
    const md = file.metadata;
    const archName = getString(md, GENERAL.architecture);
    if (archName === undefined) {
      throw new OwlError(
        "ERR_MODEL_METADATA",
        `metadata key "${GENERAL.architecture}" is missing from ${file.name}`,
        {
          details: { key: GENERAL.architecture },
        },
      );
    }
    const arch = ARCHITECTURES.get(archName);
    if (!arch) {
      const supported = [...ARCHITECTURES.keys()].join(", ");
      throw new OwlError(
        "ERR_UNSUPPORTED_ARCH",
        `architecture "${archName}" is not supported by the owl engine; supported: ${supported}`,
        { details: { arch: archName, supported: [...ARCHITECTURES.keys()] } },
      );
    }
    const hp = arch.hyperparams(md);
    const specs = arch.tensors(hp, (name) => file.tensor(name) !== undefined);
    checkAborted(options.signal);
    // Reserve the weights up front so that the reference backend does not copy while loading.
    let weightBytes = 0;
    for (const spec of specs) weightBytes += (file.tensor(spec.name)?.byteSize ?? 0) + 64;
    const backend = options.backend ?? new RefBackend({ initialBytes: weightBytes + (1 << 20) });
    const { weights, bytes } = loadWeights(file, specs, backend, options.onProgress);
    const forward = arch.build(weights, hp);
    return new Model(arch.name, hp, backend, bytes, forward, options.backend === undefined, options.session);
  } finally {
    if (typeof source === "string") file.close();
  }
}
