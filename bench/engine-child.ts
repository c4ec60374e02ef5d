/**
 * Child process of bench/engine.ts: times one engine (owl on its WebAssembly backend, or
 * llama.cpp through node-llama-cpp) on one GGUF, in a process of its own started with
 * UV_THREADPOOL_SIZE=1. Usage: engine-child.ts owl|llama.cpp <model.gguf> [vocab] [reps] [threads].
 * Per repetition: prompt eval of PROMPT tokens, then DECODE greedy tokens after it ("after 512"),
 * then DECODE greedy tokens after a 1-token prompt ("from empty"). Prints JSON with the
 * figures of every repetition (tok/s) and the load time.
 * Both engines see the same token ids (BOS then seeded random ids, no tokenizer), an F32 KV cache
 * of 1024 positions, greedy sampling (owl: argmax in JS; llama.cpp: temperature 0 in its sampler).
 */
import type { Token } from "node-llama-cpp";
import { argmax } from "../src/engine/greedy.ts";
import { createWasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import { loadModel } from "../src/engine/model.ts";
import { openGguf } from "../src/formats/gguf/index.ts";

export const PROMPT = 512;
export const DECODE = 128;
export const N_CTX = 1024;

export interface ChildResult {
  loadMs: number;
  /** tok/s of each repetition. */
  prompt: number[];
  decodeDeep: number[];
  decodeEmpty: number[];
}

/** BOS then n - 1 seeded random ids in [3, V). */
export function promptTokens(n: number, V: number, seed = 1234): number[] {
  let s = seed >>> 0;
  const out = [1];
  while (out.length < n) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(3 + (s % (V - 3)));
  }
  return out;
}

/** One run: time to the first greedy token (prompt eval), then the time of DECODE more. */
interface Timing {
  promptMs: number;
  decodeMs: number;
}

async function runOwl(path: string, V: number, reps: number, threads: number): Promise<ChildResult> {
  const t0 = performance.now();
  const backend = await createWasmBackend({ threads });
  const file = openGguf(path);
  const model = await loadModel(file, { backend });
  file.close();
  const loadMs = performance.now() - t0;
  const session = model.createSession({ nCtx: N_CTX });
  if (model.hparams.V !== V) throw new Error(`vocabulary ${model.hparams.V}, expected ${V}`);
  const run = (prompt: number[]): Timing => {
    const t1 = performance.now();
    let logits = session.evaluate(prompt, { reuse: false }).logits;
    const seq = [...prompt, argmax(logits)];
    const t2 = performance.now();
    for (let i = 0; i < DECODE; i++) {
      logits = session.evaluate(seq).logits;
      seq.push(argmax(logits));
    }
    return { promptMs: t2 - t1, decodeMs: performance.now() - t2 };
  };
  const result = await measure(run, V, reps, loadMs);
  await model.dispose();
  await backend.dispose();
  return result;
}

async function runLlamaCpp(path: string, V: number, reps: number, threads: number): Promise<ChildResult> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const t0 = performance.now();
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path });
  const ctx = await model.createContext({
    contextSize: N_CTX,
    batchSize: PROMPT,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    threads,
  });
  const loadMs = performance.now() - t0;
  const seq = ctx.getSequence();
  const run = async (prompt: number[]): Promise<Timing> => {
    await seq.clearHistory();
    const t1 = performance.now();
    let t2 = 0;
    let n = 0;
    for await (const _ of seq.evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
      if (n === 0) t2 = performance.now();
      if (n++ === DECODE) break;
    }
    return { promptMs: t2 - t1, decodeMs: performance.now() - t2 };
  };
  const result = await measure(run, V, reps, loadMs);
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return result;
}

async function measure(
  run: (prompt: number[]) => Timing | Promise<Timing>,
  V: number,
  reps: number,
  loadMs: number,
): Promise<ChildResult> {
  const prompt = promptTokens(PROMPT, V);
  const out: ChildResult = { loadMs, prompt: [], decodeDeep: [], decodeEmpty: [] };
  await run(prompt.slice(0, 16)); // warm-up
  for (let r = 0; r < reps; r++) {
    const deep = await run(prompt);
    out.prompt.push((PROMPT / deep.promptMs) * 1000);
    out.decodeDeep.push((DECODE / deep.decodeMs) * 1000);
    const empty = await run(prompt.slice(0, 1));
    out.decodeEmpty.push((DECODE / empty.decodeMs) * 1000);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [engine, path, V = "32000", reps = "3", threads = "2"] = process.argv.slice(2);
  if (!path || (engine !== "owl" && engine !== "llama.cpp")) {
    process.stderr.write("usage: engine-child.ts owl|llama.cpp <model.gguf> [vocab] [reps] [threads]\n");
    process.exit(2);
  }
  const fn = engine === "owl" ? runOwl : runLlamaCpp;
  const result = await fn(path, Number(V), Number(reps), Number(threads));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
