/**
 * The WebAssembly backend's thread pool under stress: with stealWait 0 the caller steals every
 * chunk a worker still holds once its own are done, so workers keep finding their chunks taken
 * and dropping their private results (pool.ts, assembly/index.ts `work` / `steal`). Whatever the
 * interleaving, matmul (every weight type, one token and several) and attention (one token over
 * cache blocks, several tokens) must give the same bits as on one thread, op after op, with the
 * outputs of one op the inputs of the next (a late write from a worker would show).
 * Not here: the kernels' numerics (engine-wasm-matmul / -ops tests).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Buf } from "../src/engine/backend.ts";
import { createWasmBackend, type WasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import type { GgmlTypeName } from "../src/util/ggml-types.ts";
import { quantizeMatrix, randomFloats } from "./helpers/engine-wasm-reference.ts";

let one: WasmBackend;
let two: WasmBackend;

beforeAll(async () => {
  one = await createWasmBackend({ threads: 1 });
  two = await createWasmBackend({ threads: 2, minParallelWork: 0, stealWait: 0, adaptive: false });
});

afterAll(async () => {
  await one?.dispose();
  await two?.dispose();
});

const put = (b: WasmBackend, x: Float32Array): Buf =>
  b.upload(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));

describe("thread pool with chunk stealing", () => {
  it("a chain of matmuls gives the same bits on 2 threads as on 1", () => {
    const types: GgmlTypeName[] = [
      "F32",
      "F16",
      "BF16",
      "Q8_0",
      "Q4_0",
      "Q4_1",
      "Q5_0",
      "Q5_1",
      "Q2_K",
      "Q3_K",
      "Q4_K",
      "Q6_K",
    ];
    const C = 256;
    for (const T of [1, 6]) {
      // x -> w0 -> w1 -> ... : each output (T,C) feeds the next matmul.
      const ws = types.map((t, i) => ({ t, w: quantizeMatrix(t, randomFloats(C * C, 700 + i, 0.1), C, C) }));
      const run = (b: WasmBackend) => {
        const wb = ws.map(({ t, w }) => ({ t, buf: b.upload(w) }));
        let x = put(b, randomFloats(T * C, 7, 1));
        const outs: number[] = [];
        for (let rep = 0; rep < 20; rep++) {
          for (const { t, buf } of wb) {
            const y = b.alloc(T * C * 4);
            b.matmul(t, buf, x, y, T, C, C);
            b.rmsNorm(y, x, y, T, C, 1e-5); // keep the values in range
            x = y;
          }
          outs.push(...b.f32(x).slice(0, 8));
        }
        return outs;
      };
      expect(run(two), `T=${T}`).toEqual(run(one));
    }
  });

  it("attention over cache blocks and over several tokens gives the same bits on 2 threads", () => {
    const [nHead, nHeadKv, headDim, n] = [8, 2, 32, 300];
    const k = randomFloats(n * nHeadKv * headDim, 11, 1);
    const v = randomFloats(n * nHeadKv * headDim, 12, 1);
    const q = randomFloats(5 * nHead * headDim, 13, 1);
    const run = (b: WasmBackend) => {
      const kb = put(b, k);
      const vb = put(b, v);
      const qb = put(b, q);
      const outs: number[] = [];
      for (let rep = 0; rep < 20; rep++) {
        const o1 = b.alloc(nHead * headDim * 4);
        b.attention(qb, kb, vb, o1, 1, n - 1 - rep, nHead, nHeadKv, headDim); // blocks of 64 positions
        const o5 = b.alloc(5 * nHead * headDim * 4);
        b.attention(qb, kb, vb, o5, 5, n - 5 - rep, nHead, nHeadKv, headDim);
        outs.push(...b.f32(o1), ...b.f32(o5));
      }
      return outs;
    };
    expect(run(two)).toEqual(run(one));
  });
});
