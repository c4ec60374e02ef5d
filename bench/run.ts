/**
 * `npm run bench`: runs every benchmark and rewrites bench/RESULTS.md with the figures, the
 * machine they came from and the command that produced them. Figures are ratios against a peer
 * measured in the same run; these machines are noisy, so compare ratios, not absolute numbers.
 * `tsx bench/run.ts <word>` runs only the sections whose title contains the word and prints them;
 * add `--update` to also replace just those sections in RESULTS.md (the others are kept as they are).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { runBatchBoundBench } from "./batch-bound.ts";
import { runEngineBench } from "./engine.ts";
import { runEngineKernelsBench } from "./engine-kernels.ts";
import { runQuantBench } from "./quant.ts";
import { runOwlServeBench, runServeBench } from "./serve.ts";
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
  [
    "Serving: `owl serve` vs node-llama-cpp called directly; concurrent streams; /api/tags requests/s",
    runServeBench,
  ],
  [
    "Serving on the owl engine: concurrent streams batched by `owl serve` (OWL_BACKEND=owl)",
    runOwlServeBench,
  ],
  [
    "Batching bound: a decode step of 4 sequences against a step of one, llama.cpp and the owl engine, by weight type",
    runBatchBoundBench,
  ],
];

const args = process.argv.slice(2);
const update = args.includes("--update");
const only = args.find((a) => !a.startsWith("--"));
const ran: [string, string][] = [];
let md = "# Benchmark results\n\n";
md += "Produced by `npm run bench` (bench/run.ts); rerun it to refresh this file.\n\n";
md += `Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}.\n\n`;
for (const [title, run] of sections) {
  if (only && !title.toLowerCase().includes(only.toLowerCase())) continue;
  process.stderr.write(`bench: ${title}...\n`);
  const body = await run();
  md += `## ${title}\n\n${body}\n\n`;
  ran.push([title, `## ${title}\n\n${body}\n\n`]);
}
process.stdout.write(md);
const resultsPath = join(import.meta.dirname, "RESULTS.md");
if (!only) writeFileSync(resultsPath, md);
else if (update) writeFileSync(resultsPath, replaceSections(readFileSync(resultsPath, "utf8"), ran));

/** `text` with each `## title` section replaced by the new one (appended when it was not there). */
function replaceSections(text: string, fresh: [string, string][]): string {
  const parts = text.split(/^(?=## )/m);
  for (const [title, section] of fresh) {
    const i = parts.findIndex((p) => p.startsWith(`## ${title}\n`));
    if (i >= 0) parts[i] = section;
    else parts.push(section);
  }
  return parts.join("");
}
