/**
 * `npm run bench`: runs every benchmark and rewrites bench/RESULTS.md with the figures, the
 * machine they came from and the command that produced them. Figures are ratios against a peer
 * measured in the same run; these machines are noisy, so compare ratios, not absolute numbers.
 */
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { runEngineBench } from "./engine.ts";
import { runEngineKernelsBench } from "./engine-kernels.ts";
import { runQuantBench } from "./quant.ts";
import { runShowBench } from "./show.ts";
import { runTokenizerBench } from "./tokenizer.ts";

const sections: [string, () => string | Promise<string>][] = [
  ["Dequantize and dot throughput (src/quant, plain TypeScript kernels, 1 thread)", runQuantBench],
  ["`owl show` on a 2 GB GGUF", runShowBench],
  ["Engine kernels: WebAssembly SIMD, 1 and 2 threads, vs plain TypeScript", runEngineKernelsBench],
  [
    "Tokenizer encode throughput vs @huggingface/tokenizers (same tokenizer.json, same text)",
    runTokenizerBench,
  ],
  ["owl engine vs llama.cpp (node-llama-cpp 3.21.1): prompt eval and decode, 2 threads", runEngineBench],
];

const only = process.argv[2];
let md = "# Benchmark results\n\n";
md += "Produced by `npm run bench` (bench/run.ts); rerun it to refresh this file.\n\n";
md += `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.\n\n`;
for (const [title, run] of sections) {
  if (only && !title.toLowerCase().includes(only.toLowerCase())) continue;
  process.stderr.write(`bench: ${title}...\n`);
  const body = await run();
  md += `## ${title}\n\n${body}\n\n`;
}
process.stdout.write(md);
if (!only) writeFileSync(join(import.meta.dirname, "RESULTS.md"), md);
