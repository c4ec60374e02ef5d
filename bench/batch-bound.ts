/**
 * What batching 4 streams can gain on this machine, whoever schedules them: the decode step of 4
 * sequences against the step of one, in llama.cpp itself (node-llama-cpp 3.21.1's decodeBatch,
 * no owl code: bench/serve-child.ts direct, steps) and in the owl engine (Model.evaluateBatch:
 * serve-child.ts owl-steps), on the generated 15M and 110M llamas of bench/engine.ts in every
 * weight type the engine section measures, each with 1 and 2 threads.
 *
 * A server's 4-stream aggregate over its single-stream one is bounded by the model's step of 4
 * against its step of 1 (each stream gets one token per step; the server only adds its own work
 * per token): "best 4 / best 1" = the most tokens/s a step of 4 gives with any thread count over
 * the most a step of 1 gives with any thread count, the bound of any scheduler with any
 * threading. Batching pays where reading the weights dominates a step (memory-bound decode); on a
 * 2-core machine with 24 GB/s, a quantized dot costs more than its bytes, so a step of 4 costs
 * several steps of one.
 * Prints markdown. Run through `npx tsx bench/run.ts bound` or alone with tsx.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { GgmlTypeName } from "../src/util/ggml-types.ts";
import { SHAPES, writeModel } from "./engine.ts";
import type { DirectConfig, OwlStepsConfig, StepsAnswer } from "./serve-child.ts";

const ROOT = resolve(import.meta.dirname, "..");
const TYPES: GgmlTypeName[] = ["F32", "F16", "Q8_0", "Q4_0", "Q4_K"];
const SIZES = [1, 4];
const THREADS = [1, 2];
const STEPS = 16;

function childEnv(): NodeJS.ProcessEnv {
  return { ...process.env, UV_THREADPOOL_SIZE: "1" };
}

async function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  return new Promise((res) => child.once("exit", res));
}

/** llama.cpp's decode steps (serve-child.ts direct + a steps command). */
async function llamaSteps(gguf: string, log: string): Promise<StepsAnswer> {
  const config: DirectConfig = { threads: 1, nCtx: 1024, sequences: Math.max(...SIZES) };
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "bench", "serve-child.ts"), "direct", gguf, JSON.stringify(config)],
    { cwd: ROOT, env: childEnv(), stdio: ["pipe", "pipe", openSync(log, "w")] },
  );
  try {
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const next = async () => {
      const r = await lines.next();
      if (r.done)
        throw new Error(`the node-llama-cpp child exited: ${readFileSync(log, "utf8").slice(-2000)}`);
      return r.value;
    };
    await next(); // ready
    child.stdin!.write(`${JSON.stringify({ op: "steps", sizes: SIZES, steps: STEPS, threads: THREADS })}\n`);
    const answer = JSON.parse(await next()) as StepsAnswer;
    child.stdin!.end(`${JSON.stringify({ op: "quit" })}\n`);
    await waitExit(child);
    return answer;
  } finally {
    if (child.exitCode === null) child.kill();
  }
}

/** The owl engine's decode steps (serve-child.ts owl-steps). */
async function owlSteps(gguf: string, log: string): Promise<StepsAnswer> {
  const config: OwlStepsConfig = { sizes: SIZES, steps: STEPS, threads: THREADS };
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "bench", "serve-child.ts"), "owl-steps", gguf, JSON.stringify(config)],
    { cwd: ROOT, env: childEnv(), stdio: ["ignore", "pipe", openSync(log, "w")] },
  );
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const code = await waitExit(child);
  if (code !== 0) throw new Error(`owl-steps exited with ${code}: ${readFileSync(log, "utf8").slice(-2000)}`);
  return JSON.parse(out) as StepsAnswer;
}

/** tok/s of a step of `size` sequences with `threads` threads. */
function tps(a: StepsAnswer, size: number, threads: number): number {
  const s = a.steps.find((x) => x.size === size && x.threads === threads);
  return s ? (size / s.ms) * 1000 : Number.NaN;
}

interface Row {
  label: string;
  mb: number;
  engine: string;
  a: StepsAnswer;
}

function rowCells(r: Row): string {
  const f0 = (x: number) => x.toFixed(0);
  const f2 = (x: number) => `${x.toFixed(2)}x`;
  const same = THREADS.map((t) => f2(tps(r.a, 4, t) / tps(r.a, 1, t)));
  const best1 = Math.max(...THREADS.map((t) => tps(r.a, 1, t)));
  const best4 = Math.max(...THREADS.map((t) => tps(r.a, 4, t)));
  return (
    `| ${r.label} | ${r.mb.toFixed(0)} | ${r.engine} | ${THREADS.map((t) => f0(tps(r.a, 1, t))).join(" / ")} | ` +
    `${THREADS.map((t) => f0(tps(r.a, 4, t))).join(" / ")} | ${same.join(" / ")} | **${f2(best4 / best1)}** |`
  );
}

export async function runBatchBoundBench(): Promise<string> {
  const t0 = performance.now();
  const load0 = loadavg();
  const dir = mkdtempSync(join(tmpdir(), "owl-bench-bound-"));
  const rows: Row[] = [];
  try {
    for (const shape of SHAPES) {
      for (const type of TYPES) {
        const gguf = join(dir, `${shape.name}-${type}.gguf`);
        process.stderr.write(`bench bound: ${shape.name} ${type}...\n`);
        const gen = await writeModel(gguf, shape, type);
        const mb = [...gen.types.values()].reduce((a, b) => a + b, 0) / 1e6;
        const stored = [...gen.types.keys()].join("+");
        const label = `${shape.name} ${type}${stored !== type ? ` (stored: ${stored})` : ""}`;
        rows.push({ label, mb, engine: "llama.cpp", a: await llamaSteps(gguf, join(dir, "llama.log")) });
        rows.push({ label, mb, engine: "owl engine", a: await owlSteps(gguf, join(dir, "owl.log")) });
        rmSync(gguf, { force: true });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const load1 = loadavg();
  const fl = (l: number[]) => l.map((x) => x.toFixed(2)).join(", ");
  const lines = [
    `Command: \`npx tsx bench/run.ts bound --update\`. Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 16)}Z. ` +
      `Load average (1, 5, 15 min) at the start: ${fl(load0)}; at the end: ${fl(load1)}.`,
    "",
    "Decode steps of 1 and 4 sequences at once (one token each with its logits, after a prompt of its own per sequence; " +
      `median of ${STEPS} steps): llama.cpp through node-llama-cpp's decodeBatch in a child (owl's llama.cpp backend settings, ` +
      "no scheduling, no sampling), the owl engine through Model.evaluateBatch in a child (WebAssembly kernels). " +
      "Threads 1 / 2 in each cell. A server's 4-stream aggregate over its single-stream one cannot exceed the model's step " +
      "of 4 over its step of 1; the last column is that bound for any scheduler and any thread count: the best tok/s of a " +
      "step of 4 over the best tok/s of a step of 1.",
    "",
    "| model (weights) | weights MB | engine | 1 sequence tok/s (1 / 2 threads) | 4 sequences tok/s | 4 vs 1, same threads | best 4 / best 1 |",
    "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ...rows.map(rowCells),
    "",
    `Section wall time: ${((performance.now() - t0) / 1000).toFixed(0)} s.`,
  ];
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${await runBatchBoundBench()}\n`);
}
