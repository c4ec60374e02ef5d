/**
 * Child processes of bench/serve.ts, each started with UV_THREADPOOL_SIZE=1:
 *
 *   serve-child.ts direct <model.gguf> <config JSON>
 *     The peer of `owl serve`: node-llama-cpp 3.21.1 called directly on the same GGUF, with the
 *     settings owl's llama.cpp backend uses (flash attention off, one context of `sequences`
 *     sequences of `nCtx` cells each, `threads` threads), greedy sampling in llama.cpp's sampler,
 *     through its public LlamaContextSequence.evaluate, helped by a step barrier (a sequence asks
 *     for its next token once no other is still waiting for the current step's, so that each step
 *     is one batch, without which node-llama-cpp 3.21.1 splits the batches; a step of one sequence
 *     is dispatched at once, not on the next event-loop cycle). That barrier is how owl's llama.cpp
 *     backend worked before it drove node-llama-cpp's addon itself (src/runtime/llama-cpp-backend.ts):
 *     the peer is node-llama-cpp used well through its public API.
 *     Prints {"ready":true} once loaded, then answers each command line on stdin (generate after
 *     these prompts at once, each on a sequence of its own; or time decode steps of 1, 2, 4 and 8
 *     sequences at once) with a JSON line of timings, so that serve.ts can alternate its
 *     measurements with the server's. It counts the tokens of each batch llama.cpp decodes by
 *     wrapping node-llama-cpp's internal addon context (`_ctx`: initBatch, decodeBatch).
 *
 *   serve-child.ts bare <body file>
 *     A bare node:http server on 127.0.0.1 (port 0) answering GET /api/tags with the body read
 *     from the file (the JSON owl's server answered), the peer of the /api/tags load test. Prints
 *     "listening <port>" and serves until killed.
 *
 *   serve-child.ts owl-steps <model.gguf> <config JSON>
 *     What a batch costs the owl engine: decode steps of 1, 2, 4, 8 sequences at once, one token
 *     each with its logits, through Model.evaluateBatch (the owl backend's step), each sequence a
 *     Session after a prompt of its own, on a WasmBackend of each thread count asked for. Prints
 *     one JSON line (StepsAnswer: median ms a step) and exits.
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
export type DirectCommand =
  | { op: "generate"; prompts: string[]; decode: number }
  | { op: "steps"; sizes: number[]; steps: number; threads?: number[] }
  | { op: "quit" };

/** The answer to a steps command: median ms of a decode step of `size` sequences, one token each,
 * with `threads` llama.cpp threads. */
export interface StepsAnswer {
  /** owl-steps adds serialMs: the same size's sequences one at a time (Session.evaluate each),
   * timed alternately with the batched steps (median ms for all of them). */
  steps: { threads: number; size: number; ms: number; serialMs?: number }[];
}

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
  /** Decode batches llama.cpp ran meanwhile (those of at most `sequences` tokens) and their tokens. */
  batches: number;
  batchTokens: number;
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
  // The step barrier (module comment).
  let inFlight = 0;
  let held: (() => void)[] = [];
  let releasing = false;
  const ctx = await model.createContext({
    contextSize: config.nCtx,
    sequences: config.sequences,
    flashAttention: false,
    threads: config.threads,
    // As the backend: a step of one sequence is decoded at once, one of several on the next cycle.
    batching: {
      dispatchSchedule: (dispatch) => {
        if (inFlight <= 1 && held.length === 0 && !releasing) dispatch();
        else setImmediate(dispatch);
      },
    },
  });
  const loadMs = performance.now() - t0;
  // Count the batches node-llama-cpp hands llama.cpp (internal API of 3.21.1, bench only).
  const addon = (ctx as unknown as { _ctx: AddonContext })._ctx;
  let batches = 0;
  let batchTokens = 0;
  (ctx as unknown as { _ctx: AddonContext })._ctx = new Proxy(addon, {
    get(target, prop) {
      if (prop === "initBatch")
        return (n: number) => {
          // Decode batches only (at most one token per sequence), not prompt batches.
          if (n <= config.sequences) {
            batches++;
            batchTokens += n;
          }
          return target.initBatch(n);
        };
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  // The step barrier (module comment): state declared above.
  const releaseHeld = () => {
    releasing = false;
    const h = held;
    held = [];
    inFlight += h.length;
    for (const go of h) go();
  };
  const releaseSoon = () => {
    if (inFlight === 0 && held.length > 0 && !releasing) {
      releasing = true;
      setImmediate(releaseHeld);
    }
  };
  const step = async (it: AsyncGenerator<Token, void, void>): Promise<IteratorResult<Token, void>> => {
    if (inFlight > 0 || held.length > 0 || releasing) {
      await new Promise<void>((go) => {
        held.push(go);
        releaseSoon();
      });
    } else {
      inFlight++;
    }
    try {
      return await it.next();
    } finally {
      inFlight--;
      releaseSoon();
    }
  };
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
    const it = seq.evaluate(prompt, { temperature: 0 });
    for (let r = await step(it); !r.done; r = await step(it)) {
      if (count === 0) first = performance.now();
      if (model.isEogToken(r.value)) break;
      if (++count >= n) break;
    }
    await it.return();
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
    if (cmd.op === "steps") {
      const answer = await timeSteps(addon, seqs, tokenize(PROMPT_STEPS), cmd, config.threads);
      process.stdout.write(`${JSON.stringify(answer)}\n`);
      continue;
    }
    const cpu = process.cpuUsage();
    const t = performance.now();
    batches = 0;
    batchTokens = 0;
    const runs = await Promise.all(cmd.prompts.map((p, i) => generate(seqs[i]!, p, cmd.decode)));
    const answer: DirectAnswer = {
      runs,
      wallMs: performance.now() - t,
      cpuMs: cpuMs(cpu),
      batches,
      batchTokens,
    };
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
  lines.close();
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
}

/** node-llama-cpp 3.21.1's internal addon context: what the bench wraps or calls. */
interface AddonContext {
  initBatch(n: number): void;
  addToBatch(
    sequenceId: number,
    firstTokenIndex: number,
    tokens: Uint32Array,
    logitIndexes: Uint32Array,
  ): unknown;
  decodeBatch(): Promise<void>;
  removeTokenCellsFromSequence(sequenceId: number, startPos: number, endPos: number): boolean;
  setThreads(threads: number): void;
}

const PROMPT_STEPS = "Once upon a time there was a little owl who lived in a tall tree";

/**
 * Decode steps of `size` sequences at once, one token each with its logits (what a decode step of
 * that many streams is), each sequence after a prompt of its own: the median time of `steps`
 * steps per size, llama.cpp's cost of a batch without node-llama-cpp's scheduling or sampling.
 */
async function timeSteps(
  addon: AddonContext,
  seqs: LlamaContextSequence[],
  prompt: Token[],
  cmd: { sizes: number[]; steps: number; threads?: number[] },
  threads: number,
): Promise<StepsAnswer> {
  const n = Math.max(...cmd.sizes);
  const ids = seqs.slice(0, n).map((s) => (s as unknown as { _sequenceId: number })._sequenceId);
  for (const s of seqs.slice(0, n)) await s.clearHistory();
  const pos = ids.map(() => prompt.length);
  const tokens = Uint32Array.from(prompt);
  for (const id of ids) {
    addon.initBatch(tokens.length);
    addon.addToBatch(id, 0, tokens, Uint32Array.from([tokens.length - 1]));
    await addon.decodeBatch();
  }
  const steps: StepsAnswer["steps"] = [];
  for (const t of cmd.threads ?? [threads]) {
    addon.setThreads(t);
    for (const size of cmd.sizes) {
      const ms: number[] = [];
      for (let k = 0; k < cmd.steps; k++) {
        addon.initBatch(size);
        for (let i = 0; i < size; i++) {
          addon.addToBatch(
            ids[i]!,
            pos[i]!++,
            Uint32Array.from([tokens[k % tokens.length]!]),
            Uint32Array.from([0]),
          );
        }
        const t0 = performance.now();
        await addon.decodeBatch();
        ms.push(performance.now() - t0);
      }
      ms.sort((a, b) => a - b);
      steps.push({ threads: t, size, ms: ms[ms.length >> 1]! });
    }
  }
  addon.setThreads(threads);
  // node-llama-cpp does not know of these cells (its sequences are empty): remove them.
  for (const [i, id] of ids.entries()) addon.removeTokenCellsFromSequence(id, 0, pos[i]!);
  return { steps };
}

/** owl-steps: sizes and steps per size as the steps command; `threads`: WasmBackend threads. */
export interface OwlStepsConfig {
  sizes: number[];
  steps: number;
  threads: number[];
}

async function runOwlSteps(path: string, config: OwlStepsConfig): Promise<void> {
  const { createWasmBackend } = await import("../src/engine/kernels/wasm/backend.ts");
  const { loadModel } = await import("../src/engine/model.ts");
  const out: StepsAnswer["steps"] = [];
  const n = Math.max(...config.sizes);
  for (const t of config.threads) {
    const backend = await createWasmBackend({ threads: t });
    try {
      const model = await loadModel(path, { backend });
      const V = model.hparams.V;
      // A 16-token prompt of its own per sequence (BOS, then ids from a fixed stride).
      const seqs = Array.from({ length: n }, (_, i) =>
        Array.from({ length: 16 }, (_, k) => (k === 0 ? 1 : (1000 + 97 * (i * 16 + k)) % V)),
      );
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
      for (const size of config.sizes) {
        // Two sets of sessions at the same depths: one stepped batched, one a sequence at a time
        // (the owl backend before batching), alternately, so that both see the same load.
        const sets = [0, 1].map(() => seqs.slice(0, size).map(() => model.createSession({ nCtx: 1024 })));
        const tokens = [0, 1].map(() => seqs.slice(0, size).map((s) => [...s]));
        for (const [j, set] of sets.entries()) for (const [i, s] of set.entries()) s.evaluate(tokens[j]![i]!);
        const ms: number[] = [];
        const serial: number[] = [];
        for (let k = 0; k < config.steps + 2; k++) {
          for (const set of tokens) for (const [i, seq] of set.entries()) seq.push((3000 + 31 * (k + i)) % V);
          const t0 = performance.now();
          model.evaluateBatch(tokens[0]!.map((seq, i) => ({ session: sets[0]![i]!, tokens: seq })));
          const t1 = performance.now();
          for (const [i, seq] of tokens[1]!.entries()) sets[1]![i]!.evaluate(seq);
          // The first two steps warm the batch's scratch and code paths.
          if (k >= 2) {
            ms.push(t1 - t0);
            serial.push(performance.now() - t1);
          }
        }
        out.push({ threads: t, size, ms: median(ms), serialMs: median(serial) });
      }
      await model.dispose();
    } finally {
      await backend.dispose();
    }
  }
  process.stdout.write(`${JSON.stringify({ steps: out } satisfies StepsAnswer)}\n`);
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
  } else if (mode === "owl-steps" && arg && json) {
    await runOwlSteps(arg, JSON.parse(json) as OwlStepsConfig);
  } else {
    process.stderr.write(
      "usage: serve-child.ts direct <model.gguf> <config JSON> | bare <body file> | owl-steps <model.gguf> <config JSON>\n",
    );
    process.exit(2);
  }
}
