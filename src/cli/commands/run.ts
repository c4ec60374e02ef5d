/**
 * `owl run [model] [prompt...]`: generate text from a GGUF model, streamed to stdout as the tokens
 * arrive, like `ollama run`. No model: the bundled models/stories260k.gguf (found from the package
 * root, not the cwd); a first argument that is not an existing file (and does not end in .gguf)
 * is the start of the prompt for the bundled model. No prompt: an interactive chat when stdin is a
 * terminal (chat.ts), else all of stdin is the prompt.
 *
 * Sampling flags take Ollama's option names and defaults (run-params.ts); --backend owl runs the
 * owl engine on its WebAssembly backend, --backend llama.cpp runs node-llama-cpp (run-backend.ts);
 * --verbose prints Ollama's timing lines (and the owl engine's memory) to stderr after the answer.
 * Not here: model names and the store (a later issue).
 */
import { existsSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { OwlError } from "../../util/errors.ts";
import { runChat } from "../chat.ts";
import type { CliIO } from "../io.ts";
import { type ModelRunner, openRunner, type RunBackendName } from "../run-backend.ts";
import { defaultRunParams, flagName, NUMERIC_PARAMS, type RunParams, setParam } from "../run-params.ts";
import { formatStats } from "../run-stats.ts";

/** The bundled model, relative to this file (package root/models). */
export const BUNDLED_MODEL = fileURLToPath(new URL("../../../models/stories260k.gguf", import.meta.url));

/** A CliIO that can also supply stdin; without `input`, process.stdin is used. */
export interface RunIO extends CliIO {
  input?: NodeJS.ReadableStream;
  /** Whether `input` is a terminal (default: process.stdin.isTTY when input is not given). */
  inputIsTTY?: boolean;
  /** Where a terminal chat echoes its prompt (default process.stdout). */
  terminalOutput?: NodeJS.WritableStream;
}

function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Which arguments are the model and which the prompt. */
export function resolveModelAndPrompt(
  first: string | undefined,
  rest: readonly string[],
): { model: string; prompt: string | undefined } {
  const join = (parts: readonly string[]) => (parts.length > 0 ? parts.join(" ") : undefined);
  if (first === undefined) return { model: BUNDLED_MODEL, prompt: join(rest) };
  if (isFile(first)) return { model: first, prompt: join(rest) };
  if (/\.gguf$/i.test(first) || existsSync(first)) {
    throw new OwlError(
      "ERR_MODEL_NOT_FOUND",
      existsSync(first) ? `model "${first}" is not a file` : `model file "${first}" does not exist`,
      {
        hint: "give the path of a GGUF file, or no model to run the bundled stories260K",
        details: { path: first },
      },
    );
  }
  return { model: BUNDLED_MODEL, prompt: join([first, ...rest]) };
}

async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input)
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(Buffer.concat(chunks));
}

function parseThreads(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `--threads must be an integer in [1, 256], found ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

function parseBackend(raw: string): RunBackendName {
  if (raw === "owl" || raw === "llama.cpp") return raw;
  throw new OwlError(
    "ERR_INVALID_ARGUMENT",
    `--backend must be owl or llama.cpp, found ${JSON.stringify(raw)}`,
  );
}

type RunFlags = Record<string, string | string[] | boolean | undefined>;

/** The parameters the flags give (defaults for the rest). */
export function paramsFromFlags(flags: RunFlags): RunParams {
  const params = defaultRunParams();
  for (const spec of NUMERIC_PARAMS) {
    const v = flags[camel(spec.name)];
    if (typeof v === "string") setParam(params, spec.name, v, flagName(spec.name));
  }
  const stops = flags.stop;
  for (const s of Array.isArray(stops) ? stops : []) setParam(params, "stop", s, "--stop");
  return params;
}

export function registerRun(program: Command, io: CliIO): void {
  const rio = io as RunIO;
  const cmd = program
    .command("run")
    .description("generate text from a model, streamed as it comes; no prompt: an interactive chat")
    .argument("[model]", "GGUF file (default: the bundled stories260K); anything else starts the prompt")
    .argument("[prompt...]", "the prompt; none: a chat on a terminal, else stdin is read as the prompt")
    .option("--backend <name>", "owl (the owl engine, WebAssembly) or llama.cpp (node-llama-cpp)", "owl")
    .option("--threads <n>", "CPU threads", "2")
    .option("--verbose", "print timings (and the owl engine's memory) after the answer");
  for (const spec of NUMERIC_PARAMS) {
    cmd.option(`${flagName(spec.name)} <value>`, `${spec.description} [${spec.expected}]`);
  }
  cmd.option(
    "--stop <text>",
    "stop before this text (repeatable)",
    (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
  );
  cmd.action(async (first: string | undefined, rest: string[], flags: RunFlags) => {
    const backend = parseBackend(String(flags.backend));
    const threads = parseThreads(String(flags.threads));
    const params = paramsFromFlags(flags);
    const verbose = flags.verbose === true;
    const { model, prompt: argPrompt } = resolveModelAndPrompt(first, rest);

    const input = rio.input ?? process.stdin;
    const isTTY = rio.input !== undefined ? rio.inputIsTTY === true : process.stdin.isTTY === true;
    let prompt = argPrompt;
    if (prompt === undefined && !isTTY) prompt = await readAll(input);

    const runner: ModelRunner = await openRunner(model, { backend, threads });
    try {
      if (prompt === undefined) {
        await runChat({
          runner,
          params,
          verbose,
          input,
          io,
          terminal: isTTY && rio.input === undefined,
          terminalOutput: rio.terminalOutput ?? process.stdout,
        });
        return;
      }
      const tokens = runner.tokenizer.encode(prompt);
      const result = await runner.generate(tokens, params, (t) => io.out(t));
      if (result.text.length > 0 && !result.text.endsWith("\n")) io.out("\n");
      if (verbose) io.err(`\n${formatStats(runner, result)}`);
    } finally {
      await runner.dispose();
    }
  });
}
