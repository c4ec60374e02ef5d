/**
 * WasmBackend against RefBackend (src/engine/kernels/ref, the oracle the forward pass runs on)
 * through the KernelBackend interface, on the same inputs: every matmul weight type (T = 1, 2, 3,
 * 4, 5, 8: one token, the small-T kernels, the tiles), getRow, rmsNorm, rope (NEOX with frequency factors, normal), GQA attention, softmax,
 * swiglu. Tolerances as in the twin tests: matmul 4e-7 * sum|w a|, rmsNorm 4e-7 relative, rope
 * and attention 2e-6 absolute (values ~1), swiglu 1e-6 relative, softmax 2e-6 relative (see
 * there); getRow exact.
 * Not here: the finer per-kernel cases (engine-wasm-matmul / -ops / -quantize tests).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Buf, KernelBackend, RopeParams } from "../src/engine/backend.ts";
import { RefBackend } from "../src/engine/kernels/ref/backend.ts";
import { createWasmBackend, type WasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import type { GgmlTypeName } from "../src/util/ggml-types.ts";
import { expectClose, quantizeMatrix, randomFloats, refMatmul } from "./helpers/engine-wasm-reference.ts";

let wasm: WasmBackend;
let ref: RefBackend;

beforeAll(async () => {
  wasm = await createWasmBackend({ threads: 2, minParallelWork: 0 });
  ref = new RefBackend();
});

afterAll(async () => {
  await wasm?.dispose();
  await ref?.dispose();
});

const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Runs `op` on both backends over uploaded copies of `inputs`; returns the f32 contents of the output buffer. */
function both(
  inputs: Uint8Array[],
  outBytes: number,
  op: (b: KernelBackend, bufs: Buf[], out: Buf) => void,
  outIndex = -1,
): [Float32Array, Float32Array] {
  const res: Float32Array[] = [];
  for (const b of [wasm, ref] as KernelBackend[]) {
    const bufs = inputs.map((d) => b.upload(d));
    const out = b.alloc(outBytes);
    op(b, bufs, out);
    res.push(b.f32(outIndex >= 0 ? bufs[outIndex]! : out).slice());
  }
  return [res[0]!, res[1]!];
}

describe("WasmBackend vs RefBackend", () => {
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
    "Q5_K",
    "Q6_K",
  ];
  for (const type of types) {
    it(`matmul and getRow ${type}`, () => {
      // T = 2..8: the small-T kernels where a type has them (matmul-small.ts), else the tiles.
      for (const T of [1, 2, 3, 4, 5, 8]) {
        const [C, OC] = [512, 19];
        const w = quantizeMatrix(type, randomFloats(OC * C, 5 + T, 1), OC, C);
        const x = randomFloats(T * C, 6 + T, 1);
        const [got, want] = both([w, bytes(x)], T * OC * 4, (b, [wb, xb], y) =>
          b.matmul(type, wb!, xb!, y, T, C, OC),
        );
        const mag = refMatmul(type, w, x, T, C, OC).mag;
        expectClose(`${type} T=${T} vs RefBackend`, got, want, (i) => 4e-7 * mag[i]! + 1e-6);
      }
      const e = quantizeMatrix(type, randomFloats(4 * 256, 9, 1), 4, 256);
      const [g, r] = both([e], 256 * 4, (b, [eb], out) => b.getRow(type, eb!, 2, 256, out));
      expect(Array.from(g)).toEqual(Array.from(r));
    });
  }

  it("rmsNorm", () => {
    const [T, C] = [3, 288];
    const x = randomFloats(T * C, 1, 2);
    const w = randomFloats(C, 2, 1);
    const [got, want] = both([bytes(x), bytes(w)], T * C * 4, (b, [xb, wb], out) =>
      b.rmsNorm(xb!, wb!, out, T, C, 1e-6),
    );
    expectClose("rmsNorm vs RefBackend", got, want, (i) => 4e-7 * Math.abs(want[i]!) + 1e-30);
  });

  for (const neox of [false, true]) {
    it(`rope ${neox ? "NEOX with frequency factors" : "normal"}`, () => {
      const [T, nHeads, headDim, nRot] = [4, 3, 64, 64];
      const x = randomFloats(T * nHeads * headDim, 3, 1);
      const ff = Float32Array.from({ length: nRot / 2 }, (_, i) => 1 + i / 8);
      const positions = Int32Array.from([0, 3, 700, 9000]);
      const [got, want] = both(
        [bytes(x), bytes(ff)],
        4,
        (b, [xb, fb]) => {
          const p: RopeParams = {
            nRot,
            freqBase: 10000,
            freqScale: 1,
            neox,
            ...(neox ? { freqFactors: fb! } : {}),
          };
          b.rope(xb!, T, nHeads, headDim, positions, p);
        },
        0,
      );
      expectClose("rope vs RefBackend", got, want, () => 2e-6);
    });
  }

  it("attention (GQA, T = 3 at position 40)", () => {
    const [T, pos0, nHead, nHeadKv, headDim] = [3, 40, 8, 2, 32];
    const n = pos0 + T;
    const q = randomFloats(T * nHead * headDim, 1, 1);
    const k = randomFloats(n * nHeadKv * headDim, 2, 1);
    const v = randomFloats(n * nHeadKv * headDim, 3, 1);
    const [got, want] = both([bytes(q), bytes(k), bytes(v)], q.byteLength, (b, [qb, kb, vb], out) =>
      b.attention(qb!, kb!, vb!, out, T, pos0, nHead, nHeadKv, headDim),
    );
    expectClose("attention vs RefBackend", got, want, () => 2e-6);
  });

  it("softmax and swiglu", () => {
    const x = randomFloats(2 * 1000, 4, 5);
    const [gs, ws] = both([bytes(x)], 4, (b, [xb]) => b.softmax(xb!, 2, 1000), 0);
    // 2e-6, not 1e-6: RefBackend's softmax takes exp(x - max) with the subtraction in float64,
    // ggml (and WasmBackend) in float32; far below the max that moves the result by ~1e-6.
    expectClose("softmax vs RefBackend", gs, ws, (i) => 2e-6 * ws[i]! + 1e-37);
    const g = randomFloats(1000, 5, 6);
    const u = randomFloats(1000, 6, 1);
    const [gg, wg] = both([bytes(g), bytes(u)], 4, (b, [gb, ub]) => b.swiglu(gb!, ub!, 1000), 0);
    expectClose("swiglu vs RefBackend", gg, wg, (i) => 1e-6 * Math.abs(wg[i]!) + 1e-30);
  });
});
