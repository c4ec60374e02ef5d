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

function rows(withSpecial = false): Float32Array[] {
  const n = 1024;
  const out = [randomFloats(n, 1, 1), randomFloats(n, 2, 1e-3), randomFloats(n, 3, 3e4)];
  const edge = new Float32Array(n);
  // Block 0 stays zero; block 1 holds exact ties of x / d; block 2 spans huge and subnormal values.
  for (let i = 0; i < 32; i++) edge[32 + i] = (i - 16) * 0.5 * (127 / 16);
  for (let i = 0; i < 32; i++) edge[64 + i] = i % 2 ? 1e-40 * i : -3e38 / (i + 1);
  for (let i = 256; i < 512; i++) edge[i] = i === 300 ? -7 : Math.sin(i);
  for (let i = 512; i < 768; i++) edge[i] = (i % 7) - 3;
  out.push(edge);
  if (!withSpecial) return out;
  // Q8_K's largest magnitude: NaN skipped, the first of two equal magnitudes (the negative one),
  // infinities.
  const special = randomFloats(n, 4, 1);
  special[0] = Number.NaN;
  special[7] = -5;
  special[9] = 5;
  special[300] = Number.NEGATIVE_INFINITY;
  special[600] = Number.POSITIVE_INFINITY;
  special[601] = Number.NaN;
  special[900] = Number.NaN;
  out.push(special);
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
      for (const x of rows(type === "Q8_K")) {
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

describe("F16 activation rounding (prepareAct for F16 weights, 4 lanes at a time)", () => {
  it("equals the half's value, bit for bit, at every half, every tie between halves and their neighbours", () => {
    const xs: number[] = [];
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const half = new Uint16Array(1);
    const halfBytes = new Uint8Array(half.buffer);
    const asFloat = new Float32Array(1);
    const h2f = (h: number) => {
      half[0] = h;
      KERNELS.F16!.dequantize!(halfBytes, asFloat, 1);
      return asFloat[0]!;
    };
    for (let h = 0; h < 0x7c00; h++) {
      const v = h2f(h);
      const next = h2f(h + 1); // 0x7c00 = inf past the largest half
      const mid = Number.isFinite(next) ? (v + next) / 2 : 65520;
      f32[0] = mid;
      const bits = u32[0]!;
      for (const x of [v, -v, mid, -mid]) xs.push(x);
      for (const d of [-1, 1]) {
        u32[0] = bits + d;
        xs.push(f32[0]!, -f32[0]!);
      }
    }
    xs.push(
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      1e-30,
      -1e-30,
      3e38,
      65519.99,
      2 ** -25,
      2 ** -26,
      0,
      -0,
    );
    const x = Float32Array.from(xs);
    const want = new Float32Array(x.length);
    const bits = new Uint8Array(2 * x.length);
    KERNELS.F16!.quantize!(x, bits, x.length);
    KERNELS.F16!.dequantize!(bits, want, x.length);
    const xb = b.upload(new Uint8Array(x.buffer));
    const out = b.alloc(x.byteLength);
    b.kernels.prepareAct(1, xb.offset, 1, x.length, out.offset, 0, 0, 0, 0, 1);
    const got = b.f32(out);
    let bad = 0;
    for (let i = 0; i < x.length; i++) {
      const same = Number.isNaN(want[i]!) ? Number.isNaN(got[i]!) : Object.is(got[i], want[i]);
      if (!same && bad++ < 5) expect.soft(`${x[i]} -> ${got[i]}`).toBe(`${x[i]} -> ${want[i]}`);
    }
    expect(bad).toBe(0);
  });
});
