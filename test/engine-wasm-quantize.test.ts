/**
 * The WebAssembly activation quantizers (assembly/quantize.ts) against their TypeScript twins,
 * byte for byte: Q8_0 and Q8_1 as ggml's reference quantizers (src/quant) and as ggml-cpu's x86
 * build (kernels/ref/activations.ts), Q8_K, and the F16 / BF16 row conversions, on random rows and on edge cases (all-zero blocks, ties, huge and subnormal
 * values, a negative largest value).
 * Not here: the dot products (engine-wasm-matmul.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { quantizeQ8_0X86, quantizeQ8_1X86 } from "../src/engine/kernels/ref/activations.ts";
import { createWasmBackend, type WasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import { KERNELS } from "../src/quant/index.ts";
import { ggmlTypeByName, rowBytes } from "../src/util/ggml-types.ts";
import { randomFloats } from "./helpers/engine-wasm-reference.ts";

let b: WasmBackend;

beforeAll(async () => {
  b = await createWasmBackend({ threads: 1 });
});

afterAll(async () => {
  await b?.dispose();
});

function rows(): Float32Array[] {
  const n = 1024;
  const out = [randomFloats(n, 1, 1), randomFloats(n, 2, 1e-3), randomFloats(n, 3, 3e4)];
  const edge = new Float32Array(n);
  // Block 0 stays zero; block 1 holds exact ties of x / d; block 2 spans huge and subnormal values.
  for (let i = 0; i < 32; i++) edge[32 + i] = (i - 16) * 0.5 * (127 / 16);
  for (let i = 0; i < 32; i++) edge[64 + i] = i % 2 ? 1e-40 * i : -3e38 / (i + 1);
  for (let i = 256; i < 512; i++) edge[i] = i === 300 ? -7 : Math.sin(i);
  for (let i = 512; i < 768; i++) edge[i] = (i % 7) - 3;
  out.push(edge);
  return out;
}

type Quantizer = (x: Float32Array, dst: Uint8Array, n: number) => void;

// [label, type, wasm export, its x86 flag, the TypeScript twin]
const CASES: [
  string,
  "Q8_0" | "Q8_1" | "Q8_K" | "F16" | "BF16",
  keyof WasmBackend["kernels"],
  number,
  Quantizer,
][] = [
  ["Q8_0 (reference)", "Q8_0", "quantizeQ8_0", 0, KERNELS.Q8_0!.quantize!],
  ["Q8_0 (x86)", "Q8_0", "quantizeQ8_0", 1, quantizeQ8_0X86],
  ["Q8_1 (reference)", "Q8_1", "quantizeQ8_1", 0, KERNELS.Q8_1!.quantize!],
  ["Q8_1 (x86)", "Q8_1", "quantizeQ8_1", 1, quantizeQ8_1X86],
  ["Q8_K", "Q8_K", "quantizeQ8K", 0, KERNELS.Q8_K!.quantize!],
  ["F16", "F16", "toF16Row", 0, KERNELS.F16!.quantize!],
  ["BF16", "BF16", "toBf16Row", 0, KERNELS.BF16!.quantize!],
];

describe("activation quantizers", () => {
  for (const [label, type, fn, x86, twin] of CASES) {
    it(`${label}: byte-identical to its TypeScript twin`, () => {
      for (const x of rows()) {
        const n = x.length;
        const bytes = rowBytes(ggmlTypeByName(type)!, n);
        const want = new Uint8Array(bytes);
        twin(x, want, n);
        const xb = b.upload(new Uint8Array(x.buffer));
        const out = b.alloc(bytes);
        (b.kernels[fn] as (x: number, dst: number, n: number, x86: number) => void)(
          xb.offset,
          out.offset,
          n,
          x86,
        );
        const got = b.u8(out);
        let first = -1;
        for (let i = 0; i < bytes && first < 0; i++) if (got[i] !== want[i]) first = i;
        expect(first, `${type}: first differing byte`).toBe(-1);
      }
    });
  }
});
