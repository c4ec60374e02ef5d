// A kernel thread of the WebAssembly backend (pool.ts starts it): instantiates the kernels module
// over the shared memory, then loops: wait for the control block's wake sequence to move, claim
// and run chunks of the current op (the module's `work`) until none is left. No postMessage per
// op. Plain JavaScript, so it starts without a TypeScript loader.
// Control block (i32 at ctl): [0] wake sequence, [2] op (-1 = exit), [3] error flag, [64] chunks
// done, [96] workers asleep (layout: pool.ts, assembly/index.ts).
import { parentPort, workerData } from "node:worker_threads";

const { module, memory, ctl, tid, nth, spin } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory } });
const { work, cancelChunks } = instance.exports;
const c = new Int32Array(memory.buffer, ctl, 128);
const DONE = 64;
const SLEEPERS = 96;

let seen = Atomics.load(c, 0);
parentPort.postMessage({ ready: true });
for (;;) {
  // Spin for `spin` µs before sleeping: the next op of a forward pass usually comes within
  // microseconds, and waking from Atomics.wait costs tens of them, by which time the caller has
  // claimed most chunks. (A count of iterations ran out in a few µs: a load is under a ns.)
  let n = 0;
  let t0 = 0;
  while (Atomics.load(c, 0) === seen) {
    if ((++n & 255) !== 0) continue;
    const now = performance.now();
    if (t0 === 0) t0 = now;
    else if ((now - t0) * 1000 > spin) {
      Atomics.add(c, SLEEPERS, 1);
      Atomics.wait(c, 0, seen);
      Atomics.sub(c, SLEEPERS, 1);
      t0 = 0;
    }
  }
  seen = Atomics.load(c, 0);
  if (Atomics.load(c, 2) === -1) break;
  try {
    if (work(ctl, tid, nth) > 0) Atomics.notify(c, DONE);
  } catch (e) {
    // The failed chunk's outputs were not taken: the caller steals it (and the ones nobody
    // claimed) and runs it itself; the error flag makes it report this.
    Atomics.store(c, 3, 1);
    cancelChunks(ctl);
    parentPort.postMessage({ error: String(e?.stack ?? e) });
  }
}
