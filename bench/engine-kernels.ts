/**
 * Benchmark of the engine's WebAssembly kernels (src/engine/kernels/wasm): matrix-vector
 * throughput per weight type in GB/s of weights and GFLOP/s, on 1 and 2 threads, next to the
 * plain TypeScript reference (src/quant's dot per row, 1 thread) measured in the same run;
 * a matrix-matrix column (T = 16); per-call cost of small decode-sized ops; attention.
 * Prints markdown. Run through `npm run bench` (bench/run.ts) or alone with tsx.
 */
import type { Buf } from "../src/engine/backend.ts";
import { createWasmBackend, type WasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import { KERNELS } from "../src/quant/index.ts";
import { type GgmlTypeName, ggmlTypeByName, rowBytes } from "../src/util/ggml-types.ts";

const C = 4096;
const TARGET_BYTES = 48 << 20;
const MIN_MS = 300;
const TYPES: GgmlTypeName[] = [
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

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function floats(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r() + r() + r() - 1.5;
  return out;
}

/** Repeat `fn` until MIN_MS has passed (after one warm-up); seconds per call. */
function time(fn: () => void, minMs = MIN_MS): number {
  fn();
  let calls = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < minMs) {
    fn();
    calls++;
    t = performance.now();
  }
  return (t - t0) / 1000 / calls;
}

/** OC rows of C values as `type`: 64 quantized random rows, tiled (the bytes read are what counts). */
function weights(type: GgmlTypeName, OC: number): Uint8Array {
  const info = ggmlTypeByName(type)!;
  const rb = rowBytes(info, C);
  const base = new Uint8Array(64 * rb);
  const src = floats(64 * C, 1);
  for (let r = 0; r < 64; r++)
    KERNELS[type]!.quantize!(src.subarray(r * C, (r + 1) * C), base.subarray(r * rb), C);
  const out = new Uint8Array(OC * rb);
  for (let r = 0; r < OC; r += 64) out.set(base.subarray(0, Math.min(64, OC - r) * rb), r * rb);
  return out;
}

interface Loaded {
  w: Buf;
  x: Buf;
  y: Buf;
}

function load(b: WasmBackend, w: Uint8Array, x: Float32Array, T: number, OC: number): Loaded {
  return {
    w: b.upload(w),
    x: b.upload(new Uint8Array(x.buffer, x.byteOffset, T * C * 4)),
    y: b.alloc(T * OC * 4),
  };
}

export async function runEngineKernelsBench(): Promise<string> {
  const b1 = await createWasmBackend({ threads: 1 });
  const b2 = await createWasmBackend({ threads: 2 });
  const lines: string[] = [];
  try {
    lines.push(
      `Matrix-vector y = W x, C = ${C}, W about ${TARGET_BYTES >> 20} MiB (larger than the caches), activation quantized ` +
        "inside the call as ggml does. GB/s of weight bytes; GFLOP/s = 2 C OC / time. TS ref = src/quant's dot per row " +
        "(plain TypeScript, 1 thread). T = 16: the same weights times 16 tokens (prefill), 2 threads.",
    );
    lines.push("");
    lines.push(
      "| type | TS ref GB/s | wasm 1T GB/s | wasm 2T GB/s | 1T GFLOP/s | 2T GFLOP/s | 1T vs ref | 2T vs 1T | T=16 2T GFLOP/s |",
    );
    lines.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    const x = floats(16 * C, 2);
    for (const type of TYPES) {
      const info = ggmlTypeByName(type)!;
      const rb = rowBytes(info, C);
      const OC = Math.floor(TARGET_BYTES / rb / 64) * 64;
      const w = weights(type, OC);
      const bytes = OC * rb;
      const flop = 2 * C * OC;
      // TS reference: quantize the activation once, then src/quant's dot on each row.
      const k = KERNELS[type]!;
      const act = new Uint8Array(rowBytes(ggmlTypeByName(k.dotActivation!)!, C));
      KERNELS[k.dotActivation!]!.quantize!(x.subarray(0, C), act, C);
      let sink = 0;
      const refRows = Math.min(OC, 2048);
      const refS =
        (time(() => {
          for (let r = 0; r < refRows; r++) sink += k.dot!(w.subarray(r * rb, (r + 1) * rb), act, C);
        }) *
          OC) /
        refRows;
      const l1 = load(b1, w, x, 1, OC);
      const s1 = time(() => b1.matmul(type, l1.w, l1.x, l1.y, 1, C, OC));
      const l2 = load(b2, w, x, 16, OC);
      const s2 = time(() => b2.matmul(type, l2.w, l2.x, l2.y, 1, C, OC));
      const s16 = time(() => b2.matmul(type, l2.w, l2.x, l2.y, 16, C, OC));
      if (Number.isNaN(sink)) sink = 0;
      const gb = (s: number) => (bytes / s / 1e9).toFixed(2);
      const gf = (s: number, T = 1) => ((flop * T) / s / 1e9).toFixed(1);
      lines.push(
        `| ${type} | ${gb(refS)} | ${gb(s1)} | ${gb(s2)} | ${gf(s1)} | ${gf(s2)} | ${(refS / s1).toFixed(1)}x | ${(s1 / s2).toFixed(2)}x | ${gf(s16, 16)} |`,
      );
      // Release nothing: the bump allocator keeps everything; 13 types x 2 x 48 MiB fit in 4 GiB.
    }
    lines.push("");
    lines.push(
      "Per-call cost of decode-sized ops (a 15M-parameter model: C = 288, nFf = 768), µs per call, 1 and 2 threads:",
    );
    lines.push("");
    lines.push("| op | 1 thread µs | 2 threads µs |");
    lines.push("| --- | ---: | ---: |");
    const small: [string, (b: WasmBackend) => () => void][] = [
      [
        "matmul Q8_0 288x288",
        (b) => {
          const l = load(
            b,
            weights("Q8_0", 288).subarray(0, 288 * rowBytes(ggmlTypeByName("Q8_0")!, 288)),
            x,
            1,
            288,
          );
          return () => b.matmul("Q8_0", l.w, l.x, l.y, 1, 288, 288);
        },
      ],
      [
        "matmul F32 768x288",
        (b) => {
          const w = new Uint8Array(floats(768 * 288, 3).buffer);
          const l = {
            w: b.upload(w),
            x: b.upload(new Uint8Array(x.buffer, 0, 288 * 4)),
            y: b.alloc(768 * 4),
          };
          return () => b.matmul("F32", l.w, l.x, l.y, 1, 288, 768);
        },
      ],
      [
        "rmsNorm C=288",
        (b) => {
          const xb = b.upload(new Uint8Array(x.buffer, 0, 288 * 4));
          return () => b.rmsNorm(xb, xb, xb, 1, 288, 1e-5);
        },
      ],
      [
        "attention 6 heads x 48, pos 255",
        (b) => {
          const kv = b.upload(new Uint8Array(floats(256 * 288, 4).buffer));
          const q = b.upload(new Uint8Array(x.buffer, 0, 288 * 4));
          const o = b.alloc(288 * 4);
          return () => b.attention(q, kv, kv, o, 1, 255, 6, 6, 48);
        },
      ],
      [
        "attention 32 heads x 128 (GQA 8), pos 1023",
        (b) => {
          const kv = b.upload(new Uint8Array(floats(1024 * 8 * 128, 5).buffer));
          const q = b.upload(new Uint8Array(x.buffer, 0, 4096 * 4));
          const o = b.alloc(4096 * 4);
          return () => b.attention(q, kv, kv, o, 1, 1023, 32, 8, 128);
        },
      ],
      [
        "softmax 32000",
        (b) => {
          const v = b.upload(new Uint8Array(floats(32000, 6).buffer));
          return () => b.softmax(v, 1, 32000);
        },
      ],
    ];
    for (const [name, make] of small) {
      const f1 = make(b1);
      const f2 = make(b2);
      lines.push(`| ${name} | ${(time(f1) * 1e6).toFixed(1)} | ${(time(f2) * 1e6).toFixed(1)} |`);
    }
  } finally {
    await b1.dispose();
    await b2.dispose();
  }
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${await runEngineKernelsBench()}\n`);
}
