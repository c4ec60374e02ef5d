/**
 * The thread pool of the WebAssembly backend: worker threads (worker.mjs) that instantiate the
 * kernels module over the same shared WebAssembly.Memory and take ops from a control block in
 * that memory, synchronized with Atomics (no message per op: decode runs hundreds of ops per
 * token). An op is cut into chunks; every thread, the caller included, claims chunks with a
 * compare-and-swap until none is left (the module's `work`), so the split balances itself and a
 * worker the OS has not scheduled yet (a busy machine) costs the caller nothing but doing its
 * share. `run` is synchronous and `threads` counts the caller.
 *
 * Control block (512 bytes at `ctl`): i32 [0] wake sequence (bumped to wake spinning or sleeping
 * workers), [2] op code (-1 = exit), [3] error flag, [4..31] the op's arguments, [64] chunks
 * done, [96] workers asleep in Atomics.wait; i64 at
 * byte 320 the claim word [op number:32][chunks:16][next chunk:16] (assembly/index.ts). The
 * done count, the claim word and the sleeper count sit on cache lines of their own.
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
export const CONTROL_BYTES = 512;
export const MAX_ARGS = 28;
/** Most chunks of one op (16 bits of the claim word). */
export const MAX_CHUNKS = 65535;

/** The module's `work` export: claims and runs chunks of the current op, returns how many. */
export type WorkFn = (ctl: number, tid: number, nth: number) => number;

/** The module's exports the pool drives. */
export interface PoolKernels {
  work: WorkFn;
  publish(ctl: number, seq: number, chunks: number): void;
  cancelChunks(ctl: number): number;
}

export interface PoolOptions {
  /** Microseconds a waiting thread spins before it sleeps in Atomics.wait. */
  spin: number;
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

  private constructor(
    private readonly k: PoolKernels,
    memory: WasmMemory,
    private readonly ctl: number,
    threads: number,
    workers: Worker[],
    spin: number,
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
    return new ThreadPool(kernels, memory, ctl, threads, workers, options.spin);
  }

  /** Sets argument i (an int: pointer, size or code). */
  setInt(i: number, v: number): void {
    assert(i < MAX_ARGS, "pool argument index");
    this.c[ARGS + i] = v | 0;
  }

  /** Sets argument i to a float32. */
  setFloat(i: number, v: number): void {
    assert(i < MAX_ARGS, "pool argument index");
    this.f[ARGS + i] = v;
  }

  /**
   * Runs op `op` with the arguments set, cut into `chunks` chunks (1..MAX_CHUNKS) that all
   * threads claim; returns when every chunk is done.
   */
  run(op: number, chunks: number): void {
    assert(!this.closed, "thread pool used after dispose");
    assert(chunks >= 1 && chunks <= MAX_CHUNKS, "pool chunk count");
    const c = this.c;
    c[OP] = op;
    const nth = this.threads;
    this.seq = (this.seq + 1) | 0;
    this.k.publish(this.ctl, this.seq, chunks);
    if (nth > 1 && chunks > 1) {
      Atomics.add(c, SEQ, 1); // wakes spinning workers
      if (Atomics.load(c, SLEEPERS) > 0) Atomics.notify(c, SEQ);
    }
    let failure: unknown;
    let skipped = 0;
    try {
      this.k.work(this.ctl, 0, nth);
    } catch (e) {
      failure = e;
      skipped = this.k.cancelChunks(this.ctl);
    }
    // Wait for chunks other threads are still running (also when ours failed: they read the arguments).
    let n = 0;
    let start = 0;
    for (;;) {
      const done = Atomics.load(c, DONE);
      if (done + skipped >= chunks) break;
      if ((++n & 255) !== 0) continue;
      const now = performance.now();
      if (start === 0) start = now;
      else if ((now - start) * 1000 > this.spin) {
        Atomics.wait(c, DONE, done, 1);
        if (now - start > 120_000) {
          throw new OwlError("ERR_IO", `kernel threads did not finish op ${op} within 120 s`);
        }
      }
    }
    if (failure !== undefined) throw failure;
    if (Atomics.load(c, ERR) !== 0) {
      Atomics.store(c, ERR, 0);
      throw new OwlError("ERR_IO", `a kernel worker thread failed running op ${op}`, {
        details: { workerError: this.lastWorkerError },
      });
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
    this.seq = (this.seq + 1) | 0;
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
