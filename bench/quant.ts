/**
 * Benchmark: dequantize and dot throughput per ggml type, in GB/s of weight bytes, next to a
 * plain Float32Array copy of the same number of bytes measured in the same run (the ceiling).
 * Prints a markdown table. Run through `npm run bench` (bench/run.ts).
 */
import { KERNELS, requireGgmlType, rowBytes } from "../src/quant/index.ts";
import { GGML_TYPES } from "../src/util/ggml-types.ts";

const ROW = 4096;
const TARGET_BYTES = 32 << 20;
const MIN_MS = 400;

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

function normals(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

/** Repeat `fn` until MIN_MS has passed (after one warm-up); returns seconds per call. */
function time(fn: () => void): number {
  fn();
  let calls = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < MIN_MS) {
    fn();
    calls++;
    t = performance.now();
  }
  return (t - t0) / 1000 / calls;
}

export function runQuantBench(): string {
  const lines: string[] = [];
  // Ceiling: copy TARGET_BYTES as float32.
  const a = new Float32Array(TARGET_BYTES / 4);
  const b = new Float32Array(TARGET_BYTES / 4);
  const copyS = time(() => b.set(a));
  const copyGBs = TARGET_BYTES / copyS / 1e9;
  lines.push(`Ceiling: Float32Array copy of ${TARGET_BYTES >> 20} MiB: **${copyGBs.toFixed(2)} GB/s**.`);
  lines.push("");
  lines.push("| type | dequantize GB/s | vs copy | dot GB/s | vs copy | dot activation |");
  lines.push("| --- | ---: | ---: | ---: | ---: | --- |");
  const actFloats = normals(ROW, 7);
  for (const info of GGML_TYPES) {
    const k = KERNELS[info.name];
    if (!k?.dequantize) continue;
    const rb = rowBytes(info, ROW);
    const rows = Math.max(1, Math.floor(TARGET_BYTES / rb));
    const weights = new Uint8Array(rows * rb);
    if (k.quantize) {
      const src = normals(ROW, 1);
      const q = new Uint8Array(rb);
      k.quantize(src, q, ROW);
      for (let r = 0; r < rows; r++) weights.set(q, r * rb);
    } else {
      const r = rng(3);
      for (let i = 0; i < weights.length; i++) weights[i] = (r() * 256) | 0;
    }
    const out = new Float32Array(ROW);
    const deqS = time(() => {
      for (let r = 0; r < rows; r++) k.dequantize!(weights.subarray(r * rb, (r + 1) * rb), out, ROW);
    });
    const deqGBs = (rows * rb) / deqS / 1e9;
    let dotCell = "–";
    let dotRatio = "–";
    let act = "–";
    if (k.dot && k.dotActivation) {
      const at = requireGgmlType(GGML_TYPES.find((t) => t.name === k.dotActivation)!.id);
      const ak = KERNELS[at.name];
      const actBytes = new Uint8Array(rowBytes(at, ROW));
      if (at.name === "F32") actBytes.set(new Uint8Array(actFloats.buffer));
      else ak?.quantize?.(actFloats, actBytes, ROW);
      let sink = 0;
      const dotS = time(() => {
        for (let r = 0; r < rows; r++) sink += k.dot!(weights.subarray(r * rb, (r + 1) * rb), actBytes, ROW);
      });
      if (Number.isNaN(sink)) sink = 0;
      const g = (rows * rb) / dotS / 1e9;
      dotCell = g.toFixed(2);
      dotRatio = `${(g / copyGBs).toFixed(2)}x`;
      act = at.name;
    }
    lines.push(
      `| ${info.name} | ${deqGBs.toFixed(2)} | ${(deqGBs / copyGBs).toFixed(2)}x | ${dotCell} | ${dotRatio} | ${act} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${runQuantBench()}\n`);
}
