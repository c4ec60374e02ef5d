/**
 * `owl run` in process (runCli + captureIO) on the bundled stories260K: greedy output equals
 * llama2.c run.c's text on both backends (owl engine and llama.cpp), --verbose prints the timing
 * lines, bad flags and a missing model give clear errors, stdin is read as the prompt when it is
 * not a terminal, and the chat loop is driven through a fake input stream.
 * Not here: the sampler's agreement with llama.cpp (engine-sampler-llamacpp.test.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { RunIO } from "../src/cli/commands/run.ts";
import { captureIO } from "../src/cli/io.ts";
import { runCli } from "../src/cli/main.ts";
import { defaultRunParams, effectiveRepeatPenalty } from "../src/cli/run-params.ts";
import { createBackend } from "../src/runtime/backends.ts";
import { resolveOllamaOptions } from "../src/runtime/options.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { fixturePath, REPO_ROOT } from "./helpers/fixtures.ts";
import { run } from "./helpers/runtime.ts";

const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");
const REF = "llama2c/reference/greedy_once_upon_a_time_n200.json";
const PROMPT = "Once upon a time";
const N = 60;

async function owl(args: string[], input?: { text: string | string[]; tty: boolean }) {
  const io: RunIO & ReturnType<typeof captureIO> = captureIO();
  if (input) {
    io.input = Readable.from(Array.isArray(input.text) ? input.text.map((l) => `${l}\n`) : [input.text]);
    io.inputIsTTY = input.tty;
  }
  const code = await runCli(args, io);
  return { code, out: io.stdout(), err: io.stderr() };
}

/** run.c's first N generated tokens as text (its stdout is the prompt followed by them). */
function expectedGreedy(): string {
  const ref = JSON.parse(readFileSync(fixturePath(REF)!, "utf8")) as {
    generated_tokens: number[];
    stdout: string;
  };
  const tok = Tokenizer.fromGgufFile(BUNDLED);
  const dec = tok.streamingDecoder();
  let text = "";
  for (const id of ref.generated_tokens.slice(0, N)) text += dec.push(id);
  text += dec.flush();
  // run.c prints the prompt (its first piece without the SPM space prefix), then the same text.
  expect(ref.stdout.startsWith(PROMPT + text)).toBe(true);
  return text;
}

describe.skipIf(!fixturePath(REF))("owl run: greedy equals llama2.c run.c", () => {
  // NOTE: run.c's text is the argmax without a penalty; both backends penalize before the greedy
  // pick (llama.cpp's chain, as Ollama's runner), so these rely on repeat_penalty 1, Ollama's
  // default since its commit 6a261db7 (api/types.go DefaultOptions; checked below).
  it("owl backend (the default), the prompt as the only argument", async () => {
    const r = await owl(["run", PROMPT, "--temperature", "0", "--num-predict", String(N)]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${expectedGreedy()}\n`);
  });

  it("llama.cpp backend, the model given explicitly", async () => {
    const r = await owl([
      "run",
      BUNDLED,
      PROMPT,
      "--temperature",
      "0",
      "--num-predict",
      String(N),
      "--backend",
      "llama.cpp",
      // NOTE: llama.cpp's 2 spinning threads take seconds per token on a busy 2-core machine
      // (vitest runs test files in parallel); one thread takes about 1 ms.
      "--threads",
      "1",
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe(`${expectedGreedy()}\n`);
  }, 60_000);

  it("a repeat penalty given at temperature 0 applies before the greedy pick, the same on both backends", async () => {
    // llama.cpp's sampler chain (and so Ollama's runner) penalizes the logits, then picks the
    // largest: greedy with a penalty is not run.c's text. Both backends must agree on it.
    const args = ["run", BUNDLED, PROMPT, "--temperature", "0", "--num-predict", String(N)];
    const penalty = ["--repeat-penalty", "1.5", "--threads", "1"];
    const owlEngine = await owl([...args, ...penalty]);
    const llamaCpp = await owl([...args, ...penalty, "--backend", "llama.cpp"]);
    expect(owlEngine.code).toBe(0);
    expect(llamaCpp.code).toBe(0);
    expect(owlEngine.out).toBe(llamaCpp.out);
    expect(owlEngine.out).not.toBe(`${expectedGreedy()}\n`);
  }, 60_000);
});

describe("owl run's defaults are Ollama's DefaultOptions (api/types.go), the server's too", () => {
  it("temperature 0.8, top_k 40, top_p 0.9, repeat_last_n 64, repeat_penalty 1 (off) when sampling", () => {
    const p = defaultRunParams();
    // Ollama's api/types.go DefaultOptions (repeat_penalty 1.0 since its commit 6a261db7,
    // 2026-08-11); min_p unset there (0); num_ctx the server's default (OWL_CONTEXT_LENGTH, 4096).
    expect(p).toMatchObject({
      temperature: 0.8,
      num_predict: -1,
      top_k: 40,
      top_p: 0.9,
      min_p: 0,
      typical_p: 1,
      repeat_last_n: 64,
      presence_penalty: 0,
      frequency_penalty: 0,
      num_ctx: 4096,
      stop: [],
    });
    expect(effectiveRepeatPenalty(p)).toBe(1);
    expect(effectiveRepeatPenalty({ ...p, temperature: 0 })).toBe(1);
    // The server resolves a request without options to the same values.
    const server = resolveOllamaOptions({}).sampling;
    expect(server).toMatchObject({
      temperature: p.temperature,
      topK: p.top_k,
      topP: p.top_p,
      minP: p.min_p,
      typicalP: p.typical_p,
      repeatPenalty: effectiveRepeatPenalty(p),
      repeatLastN: p.repeat_last_n,
      presencePenalty: p.presence_penalty,
      frequencyPenalty: p.frequency_penalty,
    });
  });
});

describe("owl run", () => {
  it("--verbose prints Ollama's timing lines and the engine's memory", async () => {
    const r = await owl(["run", PROMPT, "--temperature", "0", "--num-predict", "8", "--verbose"]);
    expect(r.code).toBe(0);
    for (const line of [
      /^total duration: +[\d.]+(s|ms|µs)$/m,
      /^load duration: +[\d.]+(s|ms|µs)$/m,
      /^prompt eval count: +5 token\(s\)$/m,
      /^prompt eval duration: +[\d.]+(s|ms|µs)$/m,
      /^prompt eval rate: +[\d.]+ tokens\/s$/m,
      /^eval count: +8 token\(s\)$/m,
      /^eval duration: +[\d.]+(s|ms|µs)$/m,
      /^eval rate: +[\d.]+ tokens\/s$/m,
      /^resident memory: +[\d.]+ MiB \(weights [\d.]+ MiB, KV cache [\d.]+ MiB, scratch [\d.]+ MiB\)$/m,
    ]) {
      expect(r.err).toMatch(line);
    }
  });

  it("--stop ends the text before the stop string; a seed makes sampling repeatable", async () => {
    const a = await owl(["run", PROMPT, "--seed", "42", "--num-predict", "40", "--stop", "Lily"]);
    const b = await owl(["run", PROMPT, "--seed", "42", "--num-predict", "40", "--stop", "Lily"]);
    expect(a.code).toBe(0);
    expect(a.out).toBe(b.out);
    expect(a.out).not.toContain("Lily");
    const g = await owl(["run", PROMPT, "--temperature", "0", "--stop", "Lily"]);
    expect(g.out).toBe(", there was a little girl named \n");
  });

  it.each([
    [["--temperature", "-1"], /--temperature must be a number >= 0 \(0 = greedy\), found "-1"/],
    [["--top-p", "1.5"], /--top-p must be a number in \[0, 1\] \(1 = off\), found "1.5"/],
    [["--num-predict", "ten"], /--num-predict must be an integer >= -1 .*, found "ten"/],
    [["--top-k", "2.5"], /--top-k must be an integer >= 0 \(0 = off\), found "2.5"/],
    [["--num-ctx", "0"], /--num-ctx must be an integer >= 1, found "0"/],
    [["--backend", "vllm"], /--backend must be owl or llama.cpp, found "vllm"/],
  ])("rejects %j with exit code 2", async (flags, message) => {
    const r = await owl(["run", PROMPT, ...flags]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.out).toBe("");
  });

  it("an unknown flag is a usage error", async () => {
    const r = await owl(["run", PROMPT, "--temprature", "0"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown option '--temprature'/);
  });

  it("a model path that does not exist is a clear error", async () => {
    const r = await owl(["run", "/nonexistent/model.gguf", "hello"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/model file "\/nonexistent\/model.gguf" does not exist/);
  });

  it("reads the prompt from stdin when it is not a terminal", async () => {
    const r = await owl(["run", "--temperature", "0", "--num-predict", "8"], { text: PROMPT, tty: false });
    expect(r.code).toBe(0);
    expect(r.out).toBe(", there was a little girl\n");
  });

  it("chat: /set parameter, a turn, /show parameters, /clear, /bye", async () => {
    const r = await owl(["run", "--num-predict", "8"], {
      tty: true,
      text: [
        "/set parameter temperature 0",
        "/set parameter top_k nope",
        PROMPT,
        " She loved",
        "/show parameters",
        "/clear",
        "/?",
        "/nope",
        "/bye",
        "never read",
      ],
    });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("Set parameter 'temperature' to '0'\n");
    expect(r.out).toContain('error: parameter top_k must be an integer >= 0 (0 = off), found "nope"\n');
    // Plain continuation (stories260K has no chat template): the first turn continues the prompt,
    // the second continues the whole text so far.
    expect(r.out).toContain(`>>> ${PROMPT}\n, there was a little girl\n`);
    expect(r.out).toMatch(/>>> {2}She loved\n.+\n/);
    expect(r.out).toMatch(/Parameters:\n(.*\n)*\s+temperature\s+0\n/);
    expect(r.out).toContain("Cleared session context\n");
    expect(r.out).toContain("/set parameter <name> <value>");
    expect(r.out).toContain("Unknown command '/nope'. Type /? for help\n");
    expect(r.out).not.toContain("never read");
  });

  it("in process with no --num-predict, an answer cut by a full context says so on stderr", async () => {
    for (const backend of ["owl", "llama.cpp"]) {
      const r = await owl([
        "run",
        PROMPT,
        "--backend",
        backend,
        "--num-ctx",
        "64",
        "--temperature",
        "0",
        "--threads",
        "1",
      ]);
      expect(r.code).toBe(0);
      expect(r.out.length).toBeGreaterThan(0);
      expect(r.err).toMatch(/the context is full \(64 tokens\); raise --num-ctx .* give --num-predict/);
    }
  });

  it("in process, --num-predict past the context shifts it as the server does (num_keep, then half of the rest dropped)", async () => {
    // The oracle: runtime/complete.ts's context shift (the server's, itself checked against a
    // hand-built shifted context in runtime-complete-shift.test.ts) over the same backend.
    const N_CTX = 64;
    for (const backend of ["owl", "llama.cpp"] as const) {
      const args = ["run", PROMPT, "--backend", backend, "--num-ctx", String(N_CTX), "--num-predict", "150"];
      // One thread: llama.cpp's two spinning threads crawl on a loaded 2-core machine.
      const r = await owl([...args, "--temperature", "0", "--threads", "1", "--verbose"]);
      expect(r.code).toBe(0);
      expect(r.err).not.toMatch(/context is full/);
      expect(r.err).toMatch(/eval count:\s+150 token/);
      const model = await createBackend(backend).load({
        modelPath: BUNDLED,
        adapters: [],
        numCtx: N_CTX,
        numParallel: 1,
        threads: 1,
      });
      try {
        const seq = model.tryAcquireSequence()!;
        const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
        const ref = await run(model, seq, { prompt, maxTokens: 150, shift: { numKeep: 4 } });
        seq.release();
        expect(ref.done.shifts).toBeGreaterThanOrEqual(2);
        expect(r.out).toBe(ref.text.endsWith("\n") ? ref.text : `${ref.text}\n`);
      } finally {
        await model.dispose();
      }
    }
  }, 60_000);
});
