/**
 * The thread pool of the WebAssembly backend: worker threads (worker.mjs) that instantiate the
 * kernels module over the same shared WebAssembly.Memory and take ops from a control block in
 * that memory, synchronized with Atomics (no message per op: decode runs hundreds of ops per
 * token). An op is cut into chunks; every thread, the caller included, claims chunks with a
 * compare-and-swap until none is left (the module's `work`), so the split balances itself and a
 * worker the OS has not scheduled yet (a busy machine) costs the caller nothing but doing its
 * share. `run` is synchronous and `threads` counts the caller.
 *
 * A worker that the OS deschedules while it holds a chunk does not hold up the caller either: the
 * caller waits about the time a chunk takes, then steals the chunks whose outputs nobody has
 * taken and runs them itself; the worker, when it runs again, finds its chunk taken and drops its
 * private results (assembly/index.ts `work`, `steal`). Under load (a third process wanting one
 * of two cores) this is the difference between 2 threads gaining and losing against 1.
 *
 * Control block (CONTROL_BYTES at `ctl`, layout in assembly/index.ts): i32 [0] wake sequence
 * (bumped to wake spinning or sleeping workers), [2] op code (-1 = exit), [3] error flag, [4..31]
 * the op's arguments ([25..27] set by the backend: thread regions), [64] chunks done, [96]
 * workers asleep in Atomics.wait, [112] argument version, [128] workers copying outputs; i64 at
 * byte 320 the claim word [op number:32][chunks:16][next chunk:16]; chunk states from byte 576;
 * per-thread argument copies from byte 1600. The done count, the claim word and the sleeper
 * count sit on cache lines of their own.
 * Not here: the kernels (assembly/), memory allocation (backend.ts).
 */
import { Worker } from "node:worker_threads";
import { assert, OwlError } from "../../../util/errors.ts";
import type { WasmMemory, WasmModule } from "./wasm-api.ts";

const SEQ = 0;
const DONE = 64;
const OP = 2;
const ERR = 3;
const ARGS = 4;
/** i32 index of the count of workers asleep in Atomics.wait (past the arguments). */
const SLEEPERS = 96;
/** i32 index of the argument version: the op number while the arguments are complete, else 0. */
const VERSION = 112;
/** i32 index of the count of workers between taking a chunk's outputs and finishing their copy. */
const INFLIGHT = 128;
/** Room for 64 threads' argument copies (assembly/index.ts SNAP). */
export const CONTROL_BYTES = 1600 + 64 * 128;
export const MAX_ARGS = 25;
/** Most chunks of one op (the chunk states' room, assembly/index.ts MAX_CHUNKS). */
export const MAX_CHUNKS = 256;
/** Microseconds the caller waits, past about one chunk's time, before it steals (a floor). */
const STEAL_FLOOR_US = 4;
/**
 * Solo or parallel, measured: on this shared 2-core machine a third process wanting a core can
 * make the workers cost more than they bring (110M Q4_0 decode: 43 tok/s on 2 threads against 66
 * on 1 at load 3; 126 against 85 when quiet). So the pool runs ops in phases: it keeps a mode
 * (workers, or the caller alone) for EXPLOIT_MS, then tries the other for EXPLORE_MS, and keeps
 * the explored mode only if the same ops (same op, cost and chunks) took less time in it: the
 * ratio of each op's mean time in the two phases, weighted by its share of the time (a forward's
 * ops differ a lot in time per multiply-add, so phases with different ops must not be compared
 * as a whole). In solo mode the workers are not woken: they go to sleep after their spin instead
 * of competing with the caller.
 */
const EXPLOIT_MS = 200;
const EXPLORE_MS = 20;
/** Ops with fewer multiply-adds do not count in the comparison (their time is mostly overhead). */
const MIN_MEASURED_COST = 1 << 18;

/** The module's `work` export: claims and runs chunks of the current op, returns how many. */
export type WorkFn = (ctl: number, tid: number, nth: number) => number;

/** The module's exports the pool drives. */
export interface PoolKernels {
  work: WorkFn;
  publish(ctl: number, seq: number, chunks: number): void;
  cancelChunks(ctl: number): number;
  /** Runs, on the caller, every chunk whose outputs no thread has taken; returns how many. */
  steal(ctl: number): number;
  /** Takes every chunk whose outputs no thread has taken, running none (after a failure). */
  takeAll(ctl: number): number;
}

export interface PoolOptions {
  /** Microseconds a waiting thread spins before it sleeps in Atomics.wait. */
  spin: number;
  /** Whether the pool may run ops on the caller alone when that measures faster (EXPLOIT_MS). */
  adaptive: boolean;
  /** Chunk times the caller waits for a worker's chunk before it steals it (1.5; 0 in tests: at once). */
  stealWait: number;
}

export class ThreadPool {
  readonly threads: number;
  private readonly c: Int32Array;
  private readonly f: Float32Array;
  private readonly workers: Worker[];
  private readonly spin: number;
  private lastWorkerError: string | undefined;
  private closed = false;

  private seq = 0;
  /** Whether arguments of the next op are being written (the version word is 0 meanwhile). */
  private writing = false;
  /** Ops run (alone: solo), and chunks the caller stole, since creation (for tests and benchmarks). */
  readonly stats = { ops: 0, soloOps: 0, stolenChunks: 0 };
  /** Current mode and phase (see EXPLOIT_MS). */
  private solo = false;
  private exploring = false;
  private phaseEnd = 0;
  /** Per op key (op, cost, chunks): [ms, count] in the current phase and in the last exploit phase. */
  private phaseTimes = new Map<number, [number, number]>();
  private keptTimes = new Map<number, [number, number]>();

  private constructor(
    private readonly k: PoolKernels,
    memory: WasmMemory,
    private readonly ctl: number,
    threads: number,
    workers: Worker[],
    spin: number,
    private readonly stealWait: number,
    private readonly adaptive: boolean,
  ) {
    this.threads = threads;
    this.c = new Int32Array(memory.buffer, ctl, CONTROL_BYTES / 4);
    this.f = new Float32Array(memory.buffer, ctl, CONTROL_BYTES / 4);
    this.workers = workers;
    this.spin = spin;
    for (const w of workers) {
      w.on("message", (m: { error?: string }) => {
        if (m.error) this.lastWorkerError = m.error;
      });
      // A worker idling in Atomics.wait must not keep the process alive. NOTE: only now, after
      // the listeners (adding one refs the worker again) and after it is ready (an unref'd worker
      // lets the process exit while start() awaits it).
      w.unref();
    }
  }

  /** Starts threads - 1 workers over `module` and `memory`; resolves when all are running. */
  static async start(
    module: WasmModule,
    memory: WasmMemory,
    kernels: PoolKernels,
    ctl: number,
    threads: number,
    options: PoolOptions,
  ): Promise<ThreadPool> {
    const workers: Worker[] = [];
    const ready: Promise<void>[] = [];
    for (let tid = 1; tid < threads; tid++) {
      const w = new Worker(new URL("./worker.mjs", import.meta.url), {
        workerData: { module, memory, ctl, tid, nth: threads, spin: options.spin },
        // NOTE: not the parent's flags (--input-type, --import tsx, ...): the worker is plain JS.
        execArgv: [],
      });
      workers.push(w);
      ready.push(
        new Promise<void>((resolve, reject) => {
          w.once("message", () => resolve());
          w.once("error", (e) =>
            reject(
              new OwlError("ERR_IO", `kernel worker ${tid} failed to start: ${String(e)}`, { cause: e }),
            ),
          );
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    return new ThreadPool(
      kernels,
      memory,
      ctl,
      threads,
      workers,
      options.spin,
      options.stealWait,
      options.adaptive,
    );
  }

  /** Sets argument i (an int: pointer, size or code). */
  setInt(i: number, v: number): void {
    assert(i < MAX_ARGS, "pool argument index");
    this.open();
    this.c[ARGS + i] = v | 0;
  }

  /** Sets argument i to a float32. */
  setFloat(i: number, v: number): void {
    assert(i < MAX_ARGS, "pool argument index");
    this.open();
    this.f[ARGS + i] = v;
  }

  /**
   * Sets the threads' regions: thread t's is `stride` bytes at base + t stride, its first
   * `scratchBytes` the kernels' scratch, the rest its private outputs (assembly/index.ts).
   */
  setRegions(base: number, stride: number, scratchBytes: number): void {
    this.open();
    this.c[ARGS + 25] = scratchBytes | 0;
    this.c[ARGS + 26] = base | 0;
    this.c[ARGS + 27] = stride | 0;
  }

  /** Marks the arguments as being written: a late worker of the last op then drops its chunk. */
  private open(): void {
    if (this.writing) return;
    Atomics.store(this.c, VERSION, 0);
    this.writing = true;
  }

  /** Ends a phase when its time is up: picks the mode of the next (see EXPLOIT_MS). */
  private nextPhase(now: number): void {
    if (this.exploring) {
      // The explored mode against the kept one, op by op: time-weighted mean of the time ratios.
      let weighted = 0;
      let weight = 0;
      for (const [key, [ms, n]] of this.phaseTimes) {
        const kept = this.keptTimes.get(key);
        if (!kept) continue;
        const keptMean = kept[0] / kept[1];
        weighted += (ms / n / keptMean) * kept[0];
        weight += kept[0];
      }
      // Keep the explored mode only if it measured clearly faster.
      if (!(weight > 0 && weighted / weight < 0.95)) this.solo = !this.solo;
      this.exploring = false;
      this.phaseEnd = now + EXPLOIT_MS;
    } else {
      this.keptTimes = this.phaseTimes;
      this.solo = !this.solo;
      this.exploring = true;
      this.phaseEnd = now + EXPLORE_MS;
    }
    this.phaseTimes = new Map();
  }

  /**
   * Runs op `op` with the arguments set, cut into `chunks` chunks (1..MAX_CHUNKS) that all
   * threads claim (or the caller alone, in solo mode); returns when every chunk is done. `cost`:
   * the op's multiply-adds, for the solo/parallel measurements.
   */
  run(op: number, chunks: number, cost = 0): void {
    assert(!this.closed, "thread pool used after dispose");
    assert(chunks >= 1 && chunks <= MAX_CHUNKS, "pool chunk count");
    const c = this.c;
    this.open();
    c[OP] = op;
    const nth = this.threads;
    this.seq = (this.seq + 1) | 0 || 1;
    Atomics.store(c, VERSION, this.seq);
    this.writing = false;
    this.k.publish(this.ctl, this.seq, chunks);
    const t0 = performance.now();
    if (this.adaptive && nth > 1 && t0 >= this.phaseEnd) this.nextPhase(t0);
    const solo = this.solo;
    if (nth > 1 && chunks > 1 && !solo) {
      Atomics.add(c, SEQ, 1); // wakes spinning workers
      if (Atomics.load(c, SLEEPERS) > 0) Atomics.notify(c, SEQ);
    }
    let ran = 0;
    try {
      ran = this.k.work(this.ctl, 0, nth);
      // Wait for the chunks other threads hold; past about one chunk's time, run them here.
      if (Atomics.load(c, DONE) < chunks) {
        const t1 = performance.now();
        const perChunk = ran > 0 ? (t1 - t0) / ran : t1 - t0;
        const stealAt = this.stealWait > 0 ? t1 + this.stealWait * perChunk + STEAL_FLOOR_US / 1000 : 0;
        let n = 0;
        while (Atomics.load(c, DONE) < chunks) {
          if ((++n & 63) !== 0) continue;
          if (performance.now() >= stealAt) {
            this.stats.stolenChunks += this.k.steal(this.ctl);
            break;
          }
        }
      }
    } catch (e) {
      // Nothing may be written after we return: take every chunk no worker has taken, then wait
      // for the workers that took one to finish copying it.
      this.k.cancelChunks(this.ctl);
      this.k.takeAll(this.ctl);
      this.waitFor(() => Atomics.load(c, INFLIGHT) === 0, op);
      throw e;
    }
    // What is left was taken by workers copying it out: a short wait.
    this.waitFor(() => Atomics.load(c, DONE) >= chunks, op);
    this.stats.ops++;
    if (solo) this.stats.soloOps++;
    if (this.adaptive && cost >= MIN_MEASURED_COST) {
      const key = op * 2 ** 44 + cost * 512 + chunks;
      const e = this.phaseTimes.get(key);
      const ms = performance.now() - t0;
      if (e) {
        e[0] += ms;
        e[1]++;
      } else this.phaseTimes.set(key, [ms, 1]);
    }
    if (Atomics.load(c, ERR) !== 0) {
      Atomics.store(c, ERR, 0);
      throw new OwlError("ERR_IO", `a kernel worker thread failed running op ${op}`, {
        details: { workerError: this.lastWorkerError },
      });
    }
  }

  /** Spins until cond() holds, then sleeps between checks; fails after 120 s. */
  private waitFor(cond: () => boolean, op: number): void {
    const c = this.c;
    let n = 0;
    let start = 0;
    while (!cond()) {
      if ((++n & 255) !== 0) continue;
      const now = performance.now();
      if (start === 0) start = now;
      else if ((now - start) * 1000 > this.spin) {
        Atomics.wait(c, DONE, Atomics.load(c, DONE), 1);
        if (now - start > 120_000) {
          throw new OwlError("ERR_IO", `kernel threads did not finish op ${op} within 120 s`);
        }
      }
    }
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.workers.length === 0) return;
    // Ref'd again while we await their exit, or the event loop could empty and end the process
    // with this promise pending.
    for (const w of this.workers) w.ref();
    const exited = this.workers.map((w) => new Promise<void>((resolve) => w.once("exit", () => resolve())));
    this.seq = (this.seq + 1) | 0 || 1;
    this.k.publish(this.ctl, this.seq, 0);
    Atomics.store(this.c, OP, -1);
    Atomics.add(this.c, SEQ, 1);
    Atomics.notify(this.c, SEQ);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), 2000);
    });
    if ((await Promise.race([Promise.all(exited), timeout])) === "timeout") {
      await Promise.all(this.workers.map((w) => w.terminate()));
    }
    clearTimeout(timer);
  }
}
