/**
 * The scheduler: which models are loaded, for how long, and which request gets a sequence.
 * Implements SchedulerApi (types.ts) the way Ollama's server/sched.go behaves:
 *
 * - A loaded model ("runner") is keyed by its GGUF + adapters, the backend and the effective
 *   context length (min(num_ctx asked, the model's training context), read from the GGUF header
 *   before loading). A request for the same GGUF with another backend or num_ctx waits until the
 *   loaded one is idle and then reloads it; meanwhile the old one takes no new requests, so a
 *   stream of requests for the old settings cannot starve it.
 * - acquire() hands out one of the model's numParallel sequences (given request.prompt, the free
 *   one with the longest cached prefix of it); when all are busy the request waits in one FIFO
 *   queue. Requests that a load in progress will serve (up to numParallel of
 *   them) share that load and are not counted as queued; beyond maxQueue queued requests the next
 *   one gets ERR_QUEUE_FULL at once (HTTP 503).
 * - Aborting a request's signal while it is queued or loading rejects it with ERR_ABORTED and
 *   frees its place. A failed load rejects every request waiting for it with ERR_MODEL_LOAD; the
 *   next request tries again.
 * - Keep-alive: when a model's last lease ends, its timer starts with the latest request's
 *   keep_alive (0: unload now; negative: never). Beyond maxLoadedModels the least recently used
 *   idle model is unloaded; with none idle, the request waits in the queue.
 * - Every lease has its own AbortSignal: it fires when the request's signal does, or when the
 *   model is unloaded (unload(), close()). Disposal waits for those leases to be released.
 *
 * Not here: prompts, sampling and streaming (complete.ts), the backends themselves, HTTP.
 */
import { performance } from "node:perf_hooks";
import { getNumber, getString, openGguf } from "../formats/gguf/index.ts";
import { archKeys, GENERAL } from "../formats/gguf/keys.ts";
import type { ResolvedModel } from "../store/types.ts";
import { OwlError } from "../util/errors.ts";
import type {
  Backend,
  BackendName,
  Lease,
  LoadedModel,
  ModelRequest,
  RunningModel,
  SchedulerApi,
  Sequence,
} from "./types.ts";

export interface SchedulerOptions {
  /** Called once per backend name, on first use. */
  createBackend: (name: BackendName) => Backend;
  /** OWL_MAX_LOADED_MODELS (>= 1). */
  maxLoadedModels: number;
  /** OWL_NUM_PARALLEL: sequences per loaded model (>= 1). */
  numParallel: number;
  /** OWL_MAX_QUEUE: requests that may wait for a sequence or a free model slot (>= 0). */
  maxQueue: number;
  /** OWL_KEEP_ALIVE in milliseconds (0: unload when idle; negative: forever). */
  defaultKeepAliveMs: number;
  /** OWL_CONTEXT_LENGTH. */
  defaultNumCtx: number;
  /** OWL_BACKEND. */
  defaultBackend: BackendName;
  /** CPU threads passed to Backend.load; undefined: the backend's default. */
  threads?: number;
  /** The model's training context length; default: read from the GGUF header (cached per path).
   * undefined: unknown (num_ctx is then not capped). */
  trainContextLength?: (modelPath: string) => number | undefined;
  /** Clock for keep-alive deadlines, milliseconds (default Date.now). */
  now?: () => number;
  /** Timer for keep-alive (default setTimeout, unref()'d so a server can exit). */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

/** setTimeout's largest delay; longer keep-alives re-arm the timer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Runner {
  key: string;
  /** The GGUF + adapters, whatever the backend and context. */
  modelId: string;
  /** First name it was asked for (shown by running()); `names` has every one. */
  name: string;
  names: Set<string>;
  resolved: ResolvedModel;
  backend: BackendName;
  numCtx: number;
  state: "loading" | "ready";
  model: LoadedModel | undefined;
  /** Settles (never rejects) when the load ends either way. */
  loadPromise: Promise<void>;
  loadAbort: AbortController;
  /** performance.now() when the load ended. */
  loadedAt: number | undefined;
  leases: Set<SchedulerLease>;
  /** Latest request's keep-alive, ms. */
  keepAliveMs: number;
  timer: unknown;
  /** Idle deadline (now() ms); null: forever; undefined: not idle. */
  expiresAt: number | null | undefined;
  /** LRU order (a counter, not a time, so that equal clock readings still order). */
  lastUsed: number;
  /** A queued request needs this GGUF with other settings: no new leases, reload when idle. */
  draining: boolean;
  /** unload() or close() asked for it: no new leases. */
  unloadRequested: boolean;
  /** Resolved when the last lease is released. */
  idleWaiters: (() => void)[];
  disposing: Promise<void> | undefined;
}

interface Waiter {
  request: ModelRequest;
  key: string;
  modelId: string;
  backend: BackendName;
  numCtx: number;
  wantSequence: boolean;
  /** The loading runner this request shares (not counted as queued). */
  runner: Runner | undefined;
  /** performance.now() when it started waiting for a load. */
  boundAt: number | undefined;
  /** request.prompt's answer, and the model it was computed for. */
  promptTokens: readonly number[] | undefined;
  promptModel: LoadedModel | undefined;
  done: boolean;
  resolve: (lease: Lease) => void;
  reject: (e: unknown) => void;
  detach: () => void;
}

class SchedulerLease implements Lease {
  readonly model: LoadedModel;
  readonly sequence: Sequence | undefined;
  readonly loadNs: number;
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private released = false;
  private readonly detach: () => void;

  constructor(
    model: LoadedModel,
    sequence: Sequence | undefined,
    loadNs: number,
    requestSignal: AbortSignal | undefined,
    private readonly onRelease: (lease: SchedulerLease) => void,
  ) {
    this.model = model;
    this.sequence = sequence;
    this.loadNs = loadNs;
    this.signal = this.controller.signal;
    if (requestSignal === undefined) {
      this.detach = () => {};
    } else if (requestSignal.aborted) {
      this.controller.abort(requestSignal.reason);
      this.detach = () => {};
    } else {
      const onAbort = () => this.controller.abort(requestSignal.reason);
      requestSignal.addEventListener("abort", onAbort, { once: true });
      this.detach = () => requestSignal.removeEventListener("abort", onAbort);
    }
  }

  abort(reason: unknown): void {
    this.controller.abort(reason);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.detach();
    this.onRelease(this);
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The training context length from a GGUF header (`<arch>.context_length`). */
export function ggufTrainContextLength(modelPath: string): number | undefined {
  const file = openGguf(modelPath);
  try {
    const arch = getString(file.metadata, GENERAL.architecture);
    if (arch === undefined) return undefined;
    return getNumber(file.metadata, archKeys(arch).contextLength);
  } finally {
    file.close();
  }
}

export class Scheduler implements SchedulerApi {
  private readonly options: SchedulerOptions;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly backends = new Map<BackendName, Backend>();
  private readonly trainCtxCache = new Map<string, number | undefined>();
  private readonly runners = new Map<string, Runner>();
  private readonly queue: Waiter[] = [];
  /** Disposals in progress: a load waits for them, so memory is freed first. */
  private readonly unloading = new Set<Promise<void>>();
  private useCounter = 0;
  private closed = false;
  private pumping = false;
  private pumpAgain = false;

  constructor(options: SchedulerOptions) {
    for (const [k, min] of [
      ["maxLoadedModels", 1],
      ["numParallel", 1],
      ["maxQueue", 0],
      ["defaultNumCtx", 1],
    ] as const) {
      const v = options[k];
      if (!Number.isInteger(v) || v < min) {
        throw new OwlError(
          "ERR_INVALID_ARGUMENT",
          `scheduler option ${k} must be an integer >= ${min}, found ${v}`,
        );
      }
    }
    this.options = options;
    this.now = options.now ?? Date.now;
    this.setTimer =
      options.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref();
        return t;
      });
    this.clearTimer = options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  }

  acquire(request: ModelRequest): Promise<Lease> {
    return this.enqueue(request, true);
  }

  acquireModel(request: ModelRequest): Promise<Lease> {
    return this.enqueue(request, false);
  }

  async unload(name: string): Promise<boolean> {
    const targets = [...this.runners.values()].filter((r) => this.matches(r, name));
    if (targets.length === 0) return false;
    await Promise.all(targets.map((r) => this.drainAndUnload(r, `model "${r.name}" was unloaded`)));
    return true;
  }

  running(): RunningModel[] {
    const now = this.now();
    const out: RunningModel[] = [];
    for (const r of this.runners.values()) {
      if (r.state !== "ready" || r.model === undefined) continue;
      let expiresAt: Date | null;
      if (r.expiresAt === null) expiresAt = null;
      else if (r.expiresAt !== undefined) expiresAt = new Date(r.expiresAt);
      else expiresAt = r.keepAliveMs < 0 ? null : new Date(now + r.keepAliveMs);
      let active = 0;
      for (const l of r.leases) if (l.sequence !== undefined) active++;
      out.push({
        name: r.name,
        digest: r.resolved.digest,
        modelPath: r.resolved.modelPath,
        backend: r.backend,
        numCtx: r.numCtx,
        size: r.model.memoryBytes(),
        expiresAt,
        active,
      });
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.queue.splice(0)) {
      this.settle(w);
      w.reject(
        new OwlError(
          "ERR_ABORTED",
          `request for model "${w.request.name}" was cancelled: the server is shutting down`,
        ),
      );
    }
    const runners = [...this.runners.values()];
    for (const r of runners) r.loadAbort.abort(new OwlError("ERR_ABORTED", "the server is shutting down"));
    await Promise.all(runners.map((r) => this.drainAndUnload(r, "the server is shutting down")));
    await Promise.all(this.unloading);
  }

  // -------------------------------------------------------------------------------------------

  private enqueue(request: ModelRequest, wantSequence: boolean): Promise<Lease> {
    if (this.closed) {
      return Promise.reject(
        new OwlError(
          "ERR_ABORTED",
          `request for model "${request.name}" refused: the server is shutting down`,
        ),
      );
    }
    if (request.signal?.aborted) return Promise.reject(this.abortError(request, "queued"));
    let target: { key: string; modelId: string; backend: BackendName; numCtx: number };
    try {
      target = this.target(request);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<Lease>((resolve, reject) => {
      const w: Waiter = {
        request,
        ...target,
        wantSequence,
        runner: undefined,
        boundAt: undefined,
        promptTokens: undefined,
        promptModel: undefined,
        done: false,
        resolve,
        reject,
        detach: () => {},
      };
      this.queue.push(w);
      this.pump();
      if (w.done) return;
      if (w.runner === undefined) {
        let queued = 0;
        for (const o of this.queue) if (o !== w && !o.done && o.runner === undefined) queued++;
        const max = this.options.maxQueue;
        if (queued >= max) {
          this.settle(w);
          const why =
            max === 0
              ? `model "${request.name}" is busy and OWL_MAX_QUEUE is 0 (no request may wait)`
              : `${queued} requests already wait, the most OWL_MAX_QUEUE (${max}) allows`;
          reject(
            new OwlError("ERR_QUEUE_FULL", `server busy: ${why}; try again later`, {
              details: { queued, maxQueue: max, model: request.name },
            }),
          );
          this.pump();
          return;
        }
      }
      const signal = request.signal;
      if (signal !== undefined) {
        const onAbort = () => {
          if (w.done) return;
          const wasLoading = w.runner !== undefined;
          this.settle(w);
          reject(this.abortError(request, wasLoading ? "loading" : "queued"));
          this.pump();
        };
        signal.addEventListener("abort", onAbort, { once: true });
        w.detach = () => signal.removeEventListener("abort", onAbort);
      }
    });
  }

  private abortError(request: ModelRequest, where: "queued" | "loading"): OwlError {
    const what = where === "loading" ? "while the model was loading" : "while waiting in the queue";
    return new OwlError("ERR_ABORTED", `request for model "${request.name}" was aborted ${what}`, {
      cause: request.signal?.reason,
    });
  }

  /** Marks a waiter finished and takes it out of the queue. */
  private settle(w: Waiter): void {
    w.done = true;
    w.detach();
    const i = this.queue.indexOf(w);
    if (i >= 0) this.queue.splice(i, 1);
  }

  private target(request: ModelRequest): {
    key: string;
    modelId: string;
    backend: BackendName;
    numCtx: number;
  } {
    const backend = request.backend ?? this.options.defaultBackend;
    const asked = request.numCtx ?? this.options.defaultNumCtx;
    if (!Number.isInteger(asked) || asked < 1) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `num_ctx must be a positive integer, found ${asked}`);
    }
    const { modelPath, adapters } = request.model;
    const train = this.trainContext(request.name, modelPath);
    const numCtx = train !== undefined && train > 0 ? Math.min(asked, train) : asked;
    const modelId = JSON.stringify([modelPath, adapters]);
    return { key: JSON.stringify([modelPath, adapters, backend, numCtx]), modelId, backend, numCtx };
  }

  private trainContext(name: string, modelPath: string): number | undefined {
    if (this.trainCtxCache.has(modelPath)) return this.trainCtxCache.get(modelPath);
    let v: number | undefined;
    try {
      v = (this.options.trainContextLength ?? ggufTrainContextLength)(modelPath);
    } catch (e) {
      throw new OwlError(
        "ERR_MODEL_LOAD",
        `could not load model "${name}": reading ${modelPath}: ${messageOf(e)}`,
        {
          cause: e,
          details: { model: name, modelPath },
        },
      );
    }
    this.trainCtxCache.set(modelPath, v);
    return v;
  }

  private matches(r: Runner, name: string): boolean {
    const full = name.includes(":") ? name : `${name}:latest`;
    for (const n of [name, full]) {
      if (r.names.has(n) || r.resolved.name === n) return true;
    }
    return false;
  }

  /** Serve whatever can be served, in FIFO order. */
  private pump(): void {
    if (this.closed) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        // A runner drains only while a waiting request needs its GGUF with other settings (that
        // request may have been aborted or refused since).
        for (const r of this.runners.values()) {
          if (!r.draining) continue;
          r.draining = this.queue.some((w) => !w.done && w.modelId === r.modelId && w.key !== r.key);
        }
        for (const w of this.queue.slice()) if (!w.done) this.tryServe(w);
      } while (this.pumpAgain && !this.closed);
    } finally {
      this.pumping = false;
    }
  }

  private tryServe(w: Waiter): void {
    const r = this.runners.get(w.key);
    if (r !== undefined) {
      if (r.state === "loading") {
        if (w.runner === r) return;
        if (!w.wantSequence || this.boundSequences(r) < this.options.numParallel) this.bind(w, r);
        return;
      }
      w.runner = undefined;
      if (r.draining || r.unloadRequested || r.model === undefined) return;
      if (w.wantSequence) {
        const model = r.model;
        const promptFn = w.request.prompt;
        if (promptFn !== undefined && w.promptModel !== model) {
          try {
            w.promptTokens = promptFn(model);
            w.promptModel = model;
          } catch (e) {
            this.settle(w);
            w.reject(e);
            return;
          }
        }
        const seq = model.tryAcquireSequence(w.promptTokens);
        if (seq !== undefined) this.grant(w, r, seq);
      } else {
        this.grant(w, r, undefined);
      }
      return;
    }
    // The same GGUF loaded with other settings: reload once it is idle.
    let blocked = false;
    for (const o of [...this.runners.values()]) {
      if (o.modelId !== w.modelId) continue;
      if (o.state === "ready" && o.leases.size === 0) {
        this.unloadRunner(o);
      } else {
        if (o.state === "ready") o.draining = true;
        blocked = true;
      }
    }
    if (blocked) return;
    if (this.runners.size >= this.options.maxLoadedModels) {
      let victim: Runner | undefined;
      for (const o of this.runners.values()) {
        if (o.state !== "ready" || o.leases.size > 0) continue;
        if (victim === undefined || o.lastUsed < victim.lastUsed) victim = o;
      }
      if (victim === undefined) return;
      this.unloadRunner(victim);
    }
    this.startLoad(w);
  }

  private boundSequences(r: Runner): number {
    let n = 0;
    for (const w of this.queue) if (!w.done && w.runner === r && w.wantSequence) n++;
    return n;
  }

  private bind(w: Waiter, r: Runner): void {
    w.runner = r;
    w.boundAt = performance.now();
    r.keepAliveMs = w.request.keepAliveMs ?? this.options.defaultKeepAliveMs;
    r.names.add(w.request.name);
  }

  private grant(w: Waiter, r: Runner, sequence: Sequence | undefined): void {
    const model = r.model;
    if (model === undefined) throw new Error("internal error: grant on a model that is not loaded");
    this.settle(w);
    const loadNs =
      w.boundAt !== undefined && r.loadedAt !== undefined
        ? Math.max(0, Math.round((r.loadedAt - w.boundAt) * 1e6))
        : 0;
    this.cancelTimer(r);
    r.expiresAt = undefined;
    r.keepAliveMs = w.request.keepAliveMs ?? this.options.defaultKeepAliveMs;
    r.names.add(w.request.name);
    r.lastUsed = ++this.useCounter;
    const lease = new SchedulerLease(model, sequence, loadNs, w.request.signal, (l) => this.onRelease(r, l));
    r.leases.add(lease);
    w.resolve(lease);
  }

  private startLoad(w: Waiter): void {
    const resolved = w.request.model;
    const r: Runner = {
      key: w.key,
      modelId: w.modelId,
      name: w.request.name,
      names: new Set([w.request.name]),
      resolved,
      backend: w.backend,
      numCtx: w.numCtx,
      state: "loading",
      model: undefined,
      loadPromise: Promise.resolve(),
      loadAbort: new AbortController(),
      loadedAt: undefined,
      leases: new Set(),
      keepAliveMs: this.options.defaultKeepAliveMs,
      timer: undefined,
      expiresAt: undefined,
      lastUsed: ++this.useCounter,
      draining: false,
      unloadRequested: false,
      idleWaiters: [],
      disposing: undefined,
    };
    this.runners.set(r.key, r);
    this.bind(w, r);
    const load = async (): Promise<LoadedModel> => {
      // Let models being unloaded free their memory first.
      await Promise.all(this.unloading);
      let backend = this.backends.get(r.backend);
      if (backend === undefined) {
        backend = this.options.createBackend(r.backend);
        this.backends.set(r.backend, backend);
      }
      return backend.load({
        modelPath: resolved.modelPath,
        adapters: resolved.adapters.map((path) => ({ path, scale: 1 })),
        numCtx: r.numCtx,
        numParallel: this.options.numParallel,
        ...(this.options.threads !== undefined ? { threads: this.options.threads } : {}),
        signal: r.loadAbort.signal,
      });
    };
    r.loadPromise = load().then(
      (model) => this.loadDone(r, model),
      (e) => this.loadFailed(r, e),
    );
  }

  private loadDone(r: Runner, model: LoadedModel): void {
    r.model = model;
    r.state = "ready";
    r.loadedAt = performance.now();
    if (this.closed || this.runners.get(r.key) !== r) {
      // close() is under way: it unloads this runner (drainAndUnload waits for this load).
      return;
    }
    this.pump();
    this.onIdle(r);
  }

  private loadFailed(r: Runner, e: unknown): void {
    if (this.runners.get(r.key) === r) this.runners.delete(r.key);
    for (const fn of r.idleWaiters.splice(0)) fn();
    const error = new OwlError(
      "ERR_MODEL_LOAD",
      `could not load model "${r.name}" (${r.resolved.modelPath}) with the ${r.backend} backend: ${messageOf(e)}`,
      {
        cause: e,
        details: { model: r.name, modelPath: r.resolved.modelPath, backend: r.backend, numCtx: r.numCtx },
      },
    );
    // Every request waiting for this load (bound or queued behind it) gets the error; later
    // requests try again.
    for (const w of this.queue.slice()) {
      if (w.done || w.key !== r.key) continue;
      this.settle(w);
      w.reject(error);
    }
    this.pump();
  }

  private onRelease(r: Runner, lease: SchedulerLease): void {
    try {
      lease.sequence?.release();
    } finally {
      r.leases.delete(lease);
      r.lastUsed = ++this.useCounter;
      if (r.leases.size === 0) for (const fn of r.idleWaiters.splice(0)) fn();
      this.pump();
      this.onIdle(r);
    }
  }

  /** The runner has no lease: start its keep-alive (or unload it now). */
  private onIdle(r: Runner): void {
    if (this.closed || r.state !== "ready" || r.leases.size > 0) return;
    if (this.runners.get(r.key) !== r || r.unloadRequested) return;
    if (r.draining) {
      // pump() already reloaded it if a queued request still wants other settings.
      r.draining = false;
    }
    this.cancelTimer(r);
    const ms = r.keepAliveMs;
    if (ms === 0) {
      this.unloadRunner(r);
      this.pump();
      return;
    }
    if (ms < 0 || !Number.isFinite(ms)) {
      r.expiresAt = null;
      return;
    }
    r.expiresAt = this.now() + ms;
    this.armTimer(r);
  }

  private armTimer(r: Runner): void {
    const expiresAt = r.expiresAt;
    if (expiresAt === null || expiresAt === undefined) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - this.now()));
    r.timer = this.setTimer(() => {
      r.timer = undefined;
      if (this.closed || this.runners.get(r.key) !== r || r.leases.size > 0 || r.expiresAt !== expiresAt)
        return;
      if (this.now() < expiresAt) {
        this.armTimer(r);
        return;
      }
      this.unloadRunner(r);
      this.pump();
    }, delay);
  }

  private cancelTimer(r: Runner): void {
    if (r.timer !== undefined) {
      this.clearTimer(r.timer);
      r.timer = undefined;
    }
  }

  /** Remove an idle, loaded runner and dispose its model in the background. */
  private unloadRunner(r: Runner): void {
    if (this.runners.get(r.key) === r) this.runners.delete(r.key);
    this.cancelTimer(r);
    r.expiresAt = undefined;
    if (r.disposing !== undefined || r.model === undefined) return;
    const model = r.model;
    const p: Promise<void> = Promise.resolve()
      .then(() => model.dispose())
      .catch(() => undefined)
      .finally(() => {
        this.unloading.delete(p);
        this.pump();
      });
    r.disposing = p;
    this.unloading.add(p);
  }

  /** Stop new leases, abort running ones, wait for them to end, then dispose. */
  private async drainAndUnload(r: Runner, reason: string): Promise<void> {
    r.unloadRequested = true;
    this.cancelTimer(r);
    await r.loadPromise;
    if (r.model === undefined) return; // the load failed
    if (r.leases.size > 0) {
      const idle = new Promise<void>((resolve) => r.idleWaiters.push(resolve));
      for (const l of r.leases) l.abort(new OwlError("ERR_ABORTED", reason));
      await idle;
    }
    this.unloadRunner(r);
    await r.disposing;
    this.pump();
  }
}
