// A kernel thread of the WebAssembly backend (pool.ts starts it): instantiates the kernels module
// over the shared memory, then loops: wait for the control block's sequence number to move,
// run this thread's share of the op (the module's `work`), count itself done. No postMessage per
// op. Plain JavaScript, so it starts without a TypeScript loader.
// Control block (i32 at ctl): [0] sequence, [1] done count, [2] op (-1 = exit), [3] error flag.
import { parentPort, workerData } from "node:worker_threads";

const { module, memory, ctl, tid, nth, spin } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory } });
const work = instance.exports.work;
const c = new Int32Array(memory.buffer, ctl, 4);

let seen = Atomics.load(c, 0);
parentPort.postMessage({ ready: true });
for (;;) {
  // Spin a little before sleeping: the next op of a forward pass usually comes within
  // microseconds, and waking from Atomics.wait costs tens of them.
  let n = 0;
  while (Atomics.load(c, 0) === seen) {
    if (++n > spin) {
      Atomics.wait(c, 0, seen);
      n = 0;
    }
  }
  seen = Atomics.load(c, 0);
  if (Atomics.load(c, 2) === -1) break;
  try {
    work(ctl, tid, nth);
  } catch (e) {
    Atomics.store(c, 3, 1);
    parentPort.postMessage({ error: String(e?.stack ?? e) });
  }
  if (Atomics.add(c, 1, 1) === nth - 2) Atomics.notify(c, 1);
}
