/**
 * Benchmark: `owl show` on a generated 2 GB GGUF (a 1B-class llama layout in F16 with a 32000
 * token vocabulary). Reports wall time of the whole CLI process and the peak resident memory,
 * which must not grow with the file (tensor data is never read).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { writeGguf } from "../src/formats/gguf/index.ts";
import { archKeys, GENERAL, TENSOR, TOKENIZER } from "../src/formats/gguf/keys.ts";
import type { GgufTensorInput, GgufValue } from "../src/formats/gguf/types.ts";
import { GgmlType, requireGgmlType } from "../src/util/ggml-types.ts";

const ROOT = resolve(import.meta.dirname, "..");

async function makeModel(path: string): Promise<void> {
  const C = 2048;
  const FF = 5632;
  const V = 32000;
  const L = 21;
  const f16 = requireGgmlType(GgmlType.F16);
  const f32 = requireGgmlType(GgmlType.F32);
  const zeros = new Uint8Array(Math.max(FF, V) * C * 2);
  const t = (name: string, dims: number[], type = f16): GgufTensorInput => ({
    name,
    dims,
    type,
    data: () => zeros.subarray(0, dims.reduce((a, b) => a * b, 1) * (type === f16 ? 2 : 4)),
  });
  const tensors: GgufTensorInput[] = [t(TENSOR.tokenEmbd, [C, V]), t(TENSOR.outputNorm, [C], f32)];
  for (let i = 0; i < L; i++) {
    const b = TENSOR.blk(i);
    tensors.push(
      t(b.attnNorm, [C], f32),
      t(b.attnQ, [C, C]),
      t(b.attnK, [C, 256]),
      t(b.attnV, [C, 256]),
      t(b.attnOutput, [C, C]),
      t(b.ffnNorm, [C], f32),
      t(b.ffnGate, [C, FF]),
      t(b.ffnUp, [C, FF]),
      t(b.ffnDown, [FF, C]),
    );
  }
  const k = archKeys("llama");
  const u32 = (value: number): GgufValue => ({ type: "UINT32", value });
  const metadata = new Map<string, GgufValue>([
    [GENERAL.architecture, { type: "STRING", value: "llama" }],
    [GENERAL.name, { type: "STRING", value: "bench-2gb" }],
    [GENERAL.fileType, u32(1)],
    [k.contextLength, u32(2048)],
    [k.embeddingLength, u32(C)],
    [k.blockCount, u32(L)],
    [k.feedForwardLength, u32(FF)],
    [k.headCount, u32(32)],
    [k.headCountKv, u32(4)],
    [TOKENIZER.model, { type: "STRING", value: "llama" }],
    [
      TOKENIZER.tokens,
      { type: "ARRAY", value: { itemType: "STRING", items: Array.from({ length: V }, (_, i) => `tok${i}`) } },
    ],
    [TOKENIZER.scores, { type: "ARRAY", value: { itemType: "FLOAT32", items: new Float32Array(V) } }],
  ]);
  await writeGguf(path, { metadata, tensors });
}

export async function runShowBench(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "owl-bench-show-"));
  try {
    const file = join(dir, "bench-2gb.gguf");
    await makeModel(file);
    const size = statSync(file).size;
    const runs: { ms: number; rssMiB: number }[] = [];
    for (let i = 0; i < 5; i++) {
      const out = execFileSync(
        process.execPath,
        ["--import", "tsx", join(ROOT, "bench", "show-child.ts"), file],
        { cwd: ROOT, encoding: "utf8" },
      );
      runs.push(JSON.parse(out) as { ms: number; rssMiB: number });
    }
    const t0 = performance.now();
    execFileSync(process.execPath, [join(ROOT, "bin", "owl.js"), "show", file], {
      cwd: ROOT,
      stdio: "ignore",
    });
    const cliMs = performance.now() - t0;
    const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return [
      `Generated GGUF: ${(size / 1e9).toFixed(2)} GB (${2 + 21 * 9} tensors, 32000-token vocabulary).`,
      "",
      "| measure | value |",
      "| --- | ---: |",
      `| open + summarize, in a fresh process (median of 5) | ${med(runs.map((r) => r.ms)).toFixed(1)} ms |`,
      `| peak RSS of that process (median of 5) | ${med(runs.map((r) => r.rssMiB)).toFixed(0)} MiB |`,
      `| whole \`owl show\` CLI process, wall time incl. Node + tsx start-up | ${cliMs.toFixed(0)} ms |`,
      `| peak RSS / file size | ${((med(runs.map((r) => r.rssMiB)) * (1 << 20)) / size).toFixed(3)} |`,
    ].join("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${await runShowBench()}\n`);
}
