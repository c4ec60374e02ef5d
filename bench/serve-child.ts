/**
 * Child processes of bench/serve.ts, each started with UV_THREADPOOL_SIZE=1:
 *
 *   serve-child.ts direct <model.gguf> <config JSON>
 *     The peer of `owl serve`: node-llama-cpp 3.21.1 called directly on the same GGUF, with the
 *     settings owl's llama.cpp backend uses (flash attention off, one context of `sequences`
 *     sequences of `nCtx` cells each, `threads` threads), greedy sampling in llama.cpp's sampler.
 *     Prints {"ready":true} once loaded, then answers each command line on stdin (generate after
 *     these prompts at once, each on a sequence of its own) with a JSON line of timings, so that
 *     serve.ts can alternate its measurements with the server's.
 *
 *   serve-child.ts bare <body file>
 *     A bare node:http server on 127.0.0.1 (port 0) answering GET /api/tags with the body read
 *     from the file (the JSON owl's server answered), the peer of the /api/tags load test. Prints
 *     "listening <port>" and serves until killed.
 *
 * Not here: starting `owl serve` and the HTTP side of the benchmark (serve.ts).
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import type { LlamaContextSequence, Token } from "node-llama-cpp";

export interface DirectConfig {
  threads: number;
  /** Cells per sequence. */
  nCtx: number;
  /** Sequences of the one context (the most prompts a command may run at once). */
  sequences: number;
}

/** A command on stdin (one JSON line): generate after each prompt at once, or quit. */
export type DirectCommand = { op: "generate"; prompts: string[]; decode: number } | { op: "quit" };

export interface DirectRun {
  /** Prompt tokens, BOS included. */
  promptTokens: number;
  /** Tokens generated (end of generation not counted). */
  count: number;
  /** From evaluate() to the first token, and from the first token to the last, ms. */
  firstMs: number;
  decodeMs: number;
}

/** The answer to a generate command (one JSON line on stdout). */
export interface DirectAnswer {
  runs: DirectRun[];
  /** From the command to the last token of every prompt, ms. */
  wallMs: number;
  /** CPU time of the whole process (every thread) meanwhile, ms. */
  cpuMs: number;
}

/** Distinct prompts for each measured request, so that no cached prefix is reused (the server
 * keeps its sequences' KV caches; the peer clears them). */
export const singlePrompt = (rep: number, prompt: string) => `Take ${rep}. ${prompt}`;
export const streamPrompt = (n: number, i: number, rep: number, prompt: string) =>
  `Stream ${i} of ${n}, take ${rep}. ${prompt}`;

/** CPU time of this process since `since` (process.cpuUsage()), ms. */
function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

async function runDirect(path: string, config: DirectConfig): Promise<void> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const t0 = performance.now();
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path });
  const ctx = await model.createContext({
    contextSize: config.nCtx,
    sequences: config.sequences,
    flashAttention: false,
    threads: config.threads,
  });
  const loadMs = performance.now() - t0;
  const bos = model.tokens.bos;
  const tokenize = (text: string): Token[] => [...(bos !== null ? [bos] : []), ...model.tokenize(text)];
  const seqs: LlamaContextSequence[] = Array.from({ length: config.sequences }, () => ctx.getSequence());

  /** Greedy tokens after `prompt` until `n` or end of generation. */
  const generate = async (seq: LlamaContextSequence, text: string, n: number): Promise<DirectRun> => {
    const prompt = tokenize(text);
    await seq.clearHistory();
    const start = performance.now();
    let first = 0;
    let count = 0;
    for await (const token of seq.evaluate(prompt, { temperature: 0 })) {
      if (count === 0) first = performance.now();
      if (model.isEogToken(token)) break;
      if (++count >= n) break;
    }
    return {
      promptTokens: prompt.length,
      count,
      firstMs: first - start,
      decodeMs: performance.now() - first,
    };
  };

  await generate(seqs[0]!, "warm up", 8);
  process.stdout.write(`${JSON.stringify({ ready: true, loadMs })}\n`);
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const cmd = JSON.parse(line) as DirectCommand;
    if (cmd.op === "quit") break;
    const cpu = process.cpuUsage();
    const t = performance.now();
    const runs = await Promise.all(cmd.prompts.map((p, i) => generate(seqs[i]!, p, cmd.decode)));
    const answer: DirectAnswer = { runs, wallMs: performance.now() - t, cpuMs: cpuMs(cpu) };
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
  lines.close();
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
}

function runBare(bodyFile: string): void {
  const body = readFileSync(bodyFile);
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/api/tags") {
      res.writeHead(200, {
        "content-type": "application/json; charset=utf-8",
        "content-length": body.length,
      });
      res.end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [mode, arg, json] = process.argv.slice(2);
  if (mode === "direct" && arg && json) {
    await runDirect(arg, JSON.parse(json) as DirectConfig);
  } else if (mode === "bare" && arg) {
    runBare(arg);
  } else {
    process.stderr.write("usage: serve-child.ts direct <model.gguf> <config JSON> | bare <body file>\n");
    process.exit(2);
  }
}
