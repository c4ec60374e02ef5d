/**
 * The owl engine on a thread of its own, as the owl backend sees it: EngineThread starts a
 * worker (owl-engine-worker.mjs, which loads owl-engine-host.ts) that owns the model, its
 * sessions and its kernels' thread pool, and turns the host's messages into promises. The
 * engine's forward passes are synchronous; on the server's event loop each one would block the
 * HTTP work of every stream until it ends, and the per-token work of the streams (sampling,
 * JSON, socket writes) would add to each step instead of overlapping it.
 *
 *   const engine = await EngineThread.start({ modelPath, numCtx: 2048, numParallel: 4 });
 *   const r = await engine.request({ type: "evaluate", seq: 0, tokens: Int32Array.of(1, 450) });
 *
 * Requests are answered in the order they were sent (the host runs one at a time). A thread that
 * dies (an exception outside a request, out of memory) fails every request in flight and every
 * later one with ERR_DECODE: the model must be loaded again.
 * Not here: the forward itself (src/engine), the step barrier and sampling (owl-backend.ts).
 */
import { type TransferListItem, Worker } from "node:worker_threads";
import { OwlError, type OwlErrorCode } from "../util/errors.ts";

/** What the host needs to load the model (workerData). */
export interface EngineInit {
  modelPath: string;
  /** Threads of the kernels' pool, the host's thread included (default: every core). */
  threads?: number;
  numCtx: number;
  /** Sessions (sequences) to create, indexed 0..numParallel-1 in requests. */
  numParallel: number;
}

/** The loaded model's facts the main thread needs. */
export interface EngineFacts {
  /** Vocabulary size (length of every logits array). */
  V: number;
  /** Embedding width. */
  C: number;
  /** Backend memory in use (weights, KV caches, scratch). */
  memoryBytes: number;
}

/** An error as it crosses the thread boundary; `code` absent for a non-OwlError (a bug). */
export interface WireError {
  code?: OwlErrorCode;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

/** A request as the main thread writes it (the id is EngineThread's). */
export type EngineCall =
  /** Session.evaluate(tokens) on session `seq`: prompts, and a step of one sequence. */
  | { type: "evaluate"; seq: number; tokens: Int32Array }
  /** One decode step of several sessions at once (Model.evaluateBatch), tokens[i] for seqs[i]. */
  | { type: "step"; seqs: number[]; tokens: Int32Array[] }
  /** The pooled, normalized final hidden state of `tokens` (the embedding session). */
  | { type: "embed"; tokens: Int32Array; poolingType: number | undefined }
  | { type: "dispose" };

export type EngineRequest = EngineCall & { id: number };

export type EngineReply =
  /** logits[i] for the i-th session of the request; lengths[i] the tokens it now holds. */
  | { id: number; type: "logits"; logits: Float32Array[]; lengths: number[] }
  | { id: number; type: "embedding"; embedding: Float32Array; memoryBytes: number }
  /** lengths: as for logits (what the failed evaluation left in each session). */
  | { id: number; type: "error"; error: WireError; lengths: number[] }
  | { id: number; type: "disposed" };

/** The OwlError a WireError stands for (ERR_DECODE for an unexpected failure in the host). */
export function fromWire(e: WireError): OwlError {
  if (e.code === undefined) {
    return new OwlError("ERR_DECODE", `the owl engine failed: ${e.message}`);
  }
  return new OwlError(e.code, e.message, {
    ...(e.hint !== undefined && { hint: e.hint }),
    ...(e.details !== undefined && { details: e.details }),
  });
}

type Settle = { resolve: (r: EngineReply) => void; reject: (e: unknown) => void };

export class EngineThread {
  private nextId = 1;
  private readonly inFlight = new Map<number, Settle>();
  /** Set once the thread is gone (disposed or died): every later request fails with it. */
  private dead: OwlError | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly facts: EngineFacts,
    private readonly modelPath: string,
  ) {
    worker.on("message", (reply: EngineReply) => {
      const s = this.inFlight.get(reply.id);
      if (!s) return;
      this.inFlight.delete(reply.id);
      s.resolve(reply);
    });
    worker.on("error", (e) => this.die(e instanceof Error ? e.message : String(e)));
    worker.on("exit", (code) => this.die(`it exited with code ${code}`));
  }

  /**
   * Start the thread and load the model on it. The load's own errors (a bad GGUF, an
   * architecture the engine does not run) are thrown here as the OwlErrors they are; `signal`
   * stops the load (ERR_ABORTED) by ending the thread.
   */
  static start(init: EngineInit, signal?: AbortSignal): Promise<EngineThread> {
    const aborted = () =>
      new OwlError("ERR_ABORTED", `loading ${init.modelPath} was aborted`, { cause: signal?.reason });
    if (signal?.aborted) return Promise.reject(aborted());
    return new Promise((resolve, reject) => {
      const worker = new Worker(new URL("./owl-engine-worker.mjs", import.meta.url), { workerData: init });
      const loadError = (why: string) =>
        new OwlError("ERR_MODEL_LOAD", `the owl engine's thread ${why} while loading ${init.modelPath}`);
      const onAbort = () => done(aborted());
      const onError = (e: Error) => done(loadError(`failed (${e.message})`));
      const onExit = (code: number) => done(loadError(`exited (code ${code})`));
      const onMessage = (m: { type: "ready"; facts: EngineFacts } | { type: "failed"; error: WireError }) =>
        done(
          m.type === "ready"
            ? new EngineThread(worker, m.facts, init.modelPath)
            : m.error.code === undefined
              ? loadError(`failed (${m.error.message})`)
              : fromWire(m.error),
        );
      const done = (r: EngineThread | OwlError) => {
        signal?.removeEventListener("abort", onAbort);
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
        if (r instanceof EngineThread) return resolve(r);
        void worker.terminate();
        reject(r);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      worker.on("message", onMessage);
      worker.on("error", onError);
      worker.on("exit", onExit);
    });
  }

  /** Send a request; the reply as it came (an "error" reply is the caller's to throw). */
  request(call: EngineCall, transfer: TransferListItem[] = []): Promise<EngineReply> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.inFlight.set(id, { resolve, reject });
      this.worker.postMessage({ ...call, id }, transfer);
    });
  }

  /** Unload the model and end the thread (requests in flight are answered first). */
  async dispose(): Promise<void> {
    if (this.dead) return;
    try {
      await this.request({ type: "dispose" });
    } finally {
      this.die("the model was unloaded");
      await this.worker.terminate();
    }
  }

  private die(why: string): void {
    if (this.dead) return;
    this.dead = new OwlError(
      "ERR_DECODE",
      `the owl engine's thread for ${this.modelPath} has stopped (${why}): load the model again`,
    );
    for (const s of this.inFlight.values()) s.reject(this.dead);
    this.inFlight.clear();
  }
}
