// A kernel thread of the WebAssembly backend (pool.ts starts it): instantiates the kernels module
// over the shared memory, then loops: wait for the control block's wake sequence to move, claim
// and run chunks of the current op (the module's `work`) until none is left. No postMessage per
// op. Plain JavaScript, so it starts without a TypeScript loader.
// Control block (i32 at ctl): [0] wake sequence, [1] chunks done, [2] op (-1 = exit), [3] error
// flag, [40] workers asleep (layout: pool.ts).
import { parentPort, workerData } from "node:worker_threads";

const { module, memory, ctl, tid, nth, spin } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory } });
const { work, cancelChunks } = instance.exports;
const c = new Int32Array(memory.buffer, ctl, 64);
const SLEEPERS = 40;

let seen = Atomics.load(c, 0);
parentPort.postMessage({ ready: true });
for (;;) {
  // Spin a little before sleeping: the next op of a forward pass usually comes within
  // microseconds, and waking from Atomics.wait costs tens of them.
  let n = 0;
  while (Atomics.load(c, 0) === seen) {
    if (++n > spin) {
      Atomics.add(c, SLEEPERS, 1);
      Atomics.wait(c, 0, seen);
      Atomics.sub(c, SLEEPERS, 1);
      n = 0;
    }
  }
  seen = Atomics.load(c, 0);
  if (Atomics.load(c, 2) === -1) break;
  try {
    if (work(ctl, tid, nth) > 0) Atomics.notify(c, 1);
  } catch (e) {
    // The chunk that failed is not counted done: count it, and the ones nobody will run now.
    Atomics.store(c, 3, 1);
    Atomics.add(c, 1, 1 + cancelChunks(ctl));
    Atomics.notify(c, 1);
    parentPort.postMessage({ error: String(e?.stack ?? e) });
  }
}
