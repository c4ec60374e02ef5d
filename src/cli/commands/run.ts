/**
 * `owl run [model] [prompt...]`: generate text from a model, streamed to stdout as the tokens
 * arrive, like `ollama run`. The model is a stored name (`owl list`; the bundled "stories260k"
 * needs no set-up) or a GGUF path. No model: the bundled models/stories260k.gguf (found from the
 * package root, not the cwd); a first argument that is neither a file nor a stored model (and
 * neither ends in .gguf nor looks like a name with a tag or namespace) is the start of the prompt
 * for the bundled model. No prompt: an interactive chat when stdin is a terminal (chat.ts), else
 * all of stdin is the prompt.
 *
 * Through a server: when a stored model is named and an owl server answers at OWL_HOST (a quick
 * GET /api/version), the generation runs there, as `ollama run` does: /api/generate for a prompt,
 * /api/chat for the chat, streamed; the model stays loaded for the next run. `--no-server`, an
 * explicit `--backend`, or a GGUF path run in this process instead (`--threads` only applies
 * there). A stored model run in process is prompted as the server would (its Modelfile TEMPLATE,
 * SYSTEM and MESSAGEs, else the GGUF's chat template; runtime/prompt.ts), with its PARAMETERs as
 * defaults under the flags; a GGUF path gets the prompt as is (the chat uses its chat template).
 *
 * Sampling flags take Ollama's option names and defaults (run-params.ts); --backend owl runs the
 * owl engine on its WebAssembly backend, --backend llama.cpp runs node-llama-cpp (run-backend.ts);
 * --verbose prints Ollama's timing lines (and the owl engine's memory) to stderr after the answer
 * (through a server: the final chunk's timings).
 * Not here: the HTTP client (client.ts), the chat loop (chat.ts).
 */

import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { renderGeneratePrompt, type ThinkValue } from "../../runtime/prompt.ts";
import { isValidModelName } from "../../store/names.ts";
import { ModelStore } from "../../store/store.ts";
import type { ResolvedModel } from "../../store/types.ts";
import { chatTemplateTokens } from "../../tokenizer/chat-template-source.ts";
import { owlHome } from "../../util/env.ts";
import { isOwlError, OwlError } from "../../util/errors.ts";
import { localChat, runChat, serverChat } from "../chat.ts";
import { type GenerateChunk, OwlClient } from "../client.ts";
import type { CliIO } from "../io.ts";
import { type ModelRunner, openRunner, type RunBackendName } from "../run-backend.ts";
import {
  defaultRunParams,
  flagName,
  NUMERIC_PARAMS,
  PARAM_NAMES,
  paramName,
  type RunParams,
  serverOptions,
  setParam,
} from "../run-params.ts";
import { formatServerStats, formatStats } from "../run-stats.ts";
import {
  localThinking,
  parseThinkFlag,
  ThinkingDisplay,
  type ThinkingOptions,
  thinkingOutput,
} from "../thinking-display.ts";

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

/** Which arguments are the model and which the prompt (GGUF paths and the bundled model only). */
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
        hint: "give the path of a GGUF file, a stored model name (owl list), or no model to run the bundled stories260K",
        details: { path: first },
      },
    );
  }
  return { model: BUNDLED_MODEL, prompt: join([first, ...rest]) };
}

/** What `owl run` runs: a GGUF file, or a stored model (then `name` is what the user typed). */
export type RunTarget =
  | { kind: "file"; path: string; prompt: string | undefined }
  | { kind: "stored"; name: string; model: ResolvedModel; prompt: string | undefined };

/**
 * The model and prompt of `owl run <first> <rest...>`: a file; else a stored model; else (a word
 * that is no stored model) the start of the prompt for the bundled model, unless it can only be a
 * model name (it has a tag, a namespace or a host): then ERR_MODEL_NOT_FOUND.
 */
export async function resolveRunTarget(
  first: string | undefined,
  rest: readonly string[],
  storeRoot: string,
): Promise<RunTarget> {
  const join = (parts: readonly string[]) => (parts.length > 0 ? parts.join(" ") : undefined);
  if (first !== undefined && !isFile(first) && !/\.gguf$/i.test(first) && !existsSync(first)) {
    if (isValidModelName(first)) {
      try {
        const model = await new ModelStore(storeRoot).resolve(first);
        return { kind: "stored", name: first, model, prompt: join(rest) };
      } catch (e) {
        if (!isOwlError(e, "ERR_MODEL_NOT_FOUND")) throw e;
        if (/[:/]/.test(first)) {
          throw new OwlError("ERR_MODEL_NOT_FOUND", `model "${first}" not found`, {
            hint: "`owl list` shows the stored models; `owl create <name> --from file.gguf` adds one",
            details: { model: first },
            cause: e,
          });
        }
      }
    }
  }
  const r = resolveModelAndPrompt(first, rest);
  return { kind: "file", path: r.model, prompt: r.prompt };
}

/** A stored model's Modelfile PARAMETERs (the ones `owl run` knows) as the base of the flags. */
function paramsFromModelfile(model: ResolvedModel): RunParams {
  const params = defaultRunParams();
  for (const [key, value] of Object.entries(model.params)) {
    const name = paramName(key);
    if (name === undefined || !(PARAM_NAMES as readonly string[]).includes(name)) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      setParam(params, name, String(v), `PARAMETER ${key} of model "${model.name}"`);
    }
  }
  return params;
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

/** The parameters the flags give (`base`, by default Ollama's defaults, for the rest). */
export function paramsFromFlags(flags: RunFlags, base: RunParams = defaultRunParams()): RunParams {
  const params = base;
  for (const spec of NUMERIC_PARAMS) {
    const v = flags[camel(spec.name)];
    if (typeof v === "string") setParam(params, spec.name, v, flagName(spec.name));
  }
  const stops = flags.stop;
  for (const s of Array.isArray(stops) ? stops : []) setParam(params, "stop", s, "--stop");
  return params;
}

/**
 * A stored model's one-shot prompt as the server renders /api/generate's (runtime/prompt.ts):
 * through its Modelfile TEMPLATE or the GGUF's chat template as a user message, or as is when it
 * has neither (Ollama's "{{ .Prompt }}"); BOS added unless the text starts with it.
 */
function storedPromptTokens(
  runner: ModelRunner,
  model: ResolvedModel,
  prompt: string,
  think?: ThinkValue,
): number[] {
  const specials = chatTemplateTokens(runner.tokenizer.vocab);
  const text = renderGeneratePrompt({
    prompt,
    ...(think !== undefined ? { think } : {}),
    storedMessages: model.messages,
    modelName: model.name,
    ...specials,
    ...(model.template !== undefined ? { template: model.template } : {}),
    ...(model.system !== undefined ? { modelSystem: model.system } : {}),
    ...(runner.chatTemplate !== undefined ? { chatTemplate: runner.chatTemplate } : {}),
  }).prompt;
  const addSpecial = !(specials.bosToken !== undefined && text.startsWith(specials.bosToken));
  return runner.tokenizer.encode(text, { addSpecial, parseSpecial: true });
}

/** Stream one answer to `prompt` from the server; the text goes to io.out, timings with --verbose. */
async function generateThroughServer(
  client: OwlClient,
  model: string,
  prompt: string,
  params: RunParams,
  keepAlive: string | undefined,
  verbose: boolean,
  io: CliIO,
  thinking: ThinkingOptions,
): Promise<void> {
  let text = "";
  let last: GenerateChunk | undefined;
  const display = new ThinkingDisplay((t) => io.out(t), thinking.hide);
  for await (const chunk of client.stream<GenerateChunk>("/api/generate", {
    model,
    prompt,
    options: serverOptions(params),
    ...(keepAlive !== undefined ? { keep_alive: keepAlive } : {}),
    ...(thinking.think !== undefined ? { think: thinking.think } : {}),
  })) {
    display.thinking(chunk.thinking);
    if (chunk.response) {
      text += chunk.response;
      display.content(chunk.response);
    }
    if (chunk.done) last = chunk;
  }
  display.close();
  if (text.length > 0 && !text.endsWith("\n")) io.out("\n");
  if (verbose && last) io.err(`\n${formatServerStats(last, client.baseUrl)}`);
}

export function registerRun(program: Command, io: CliIO): void {
  const rio = io as RunIO;
  const cmd = program
    .command("run")
    .description("generate text from a model, streamed as it comes; no prompt: an interactive chat")
    .argument(
      "[model]",
      "a stored model (owl list) or a GGUF file (default: the bundled stories260K); anything else starts the prompt",
    )
    .argument("[prompt...]", "the prompt; none: a chat on a terminal, else stdin is read as the prompt")
    .option(
      "--backend <name>",
      "run in this process on owl (the owl engine, WebAssembly; the default) or llama.cpp (node-llama-cpp)",
    )
    .option("--threads <n>", "CPU threads (in this process)", "2")
    .option("--no-server", "run in this process even when an owl server is running at OWL_HOST")
    .option("--keepalive <duration>", "through a server: how long the model stays loaded (5m, 1h, 0, -1)")
    .option(
      "--think [value]",
      "through a server, thinking models: true (the default), false, or high/medium/low",
    )
    .option("--hidethinking", "through a server: show a thinking model's answer without its thinking")
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
    const backend = flags.backend === undefined ? "owl" : parseBackend(String(flags.backend));
    const threads = parseThreads(String(flags.threads));
    const verbose = flags.verbose === true;
    const keepAlive = typeof flags.keepalive === "string" ? flags.keepalive : undefined;
    const thinking: ThinkingOptions = {
      think: parseThinkFlag(flags.think as string | boolean | undefined),
      hide: flags.hidethinking === true,
    };
    const storeRoot = join(io.owlHome ?? owlHome(), "models");
    const target = await resolveRunTarget(first, rest, storeRoot);
    const params = paramsFromFlags(
      flags,
      target.kind === "stored" && (flags.server === false || flags.backend !== undefined)
        ? paramsFromModelfile(target.model)
        : defaultRunParams(),
    );

    const input = rio.input ?? process.stdin;
    const isTTY = rio.input !== undefined ? rio.inputIsTTY === true : process.stdin.isTTY === true;
    let prompt = target.prompt;
    if (prompt === undefined && !isTTY) prompt = await readAll(input);
    const chatIO = {
      params,
      verbose,
      input,
      io,
      terminal: isTTY && rio.input === undefined,
      terminalOutput: rio.terminalOutput ?? process.stdout,
    };

    if (target.kind === "stored" && flags.server !== false && flags.backend === undefined) {
      const client = OwlClient.fromEnv();
      if ((await client.probe()) !== undefined) {
        if (prompt === undefined) {
          await runChat({ ...chatIO, chat: serverChat(client, target.name, keepAlive, thinking) });
        } else {
          await generateThroughServer(client, target.name, prompt, params, keepAlive, verbose, io, thinking);
        }
        return;
      }
      // No server: the Modelfile's PARAMETERs are the defaults here (the server would apply them).
      Object.assign(params, paramsFromFlags(flags, paramsFromModelfile(target.model)));
    }

    const path = target.kind === "stored" ? target.model.modelPath : target.path;
    const runner: ModelRunner = await openRunner(path, { backend, threads });
    try {
      // A stored model's template decides whether it thinks (as the server's): its thinking is
      // then shown apart, as through a server. A GGUF path is run without a template.
      const local = target.kind === "stored" ? localThinking(runner, target.model, thinking) : undefined;
      if (local === undefined && (thinking.think !== undefined || thinking.hide) && target.kind !== "stored")
        io.err(
          "owl: --think and --hidethinking apply to stored models (a template); a GGUF path runs as it is\n",
        );
      if (prompt === undefined) {
        await runChat({
          ...chatIO,
          chat: localChat(runner, target.kind === "stored" ? target.model : undefined, local),
        });
        return;
      }
      const tokens =
        target.kind === "stored"
          ? storedPromptTokens(runner, target.model, prompt, local?.think)
          : runner.tokenizer.encode(prompt);
      const show = thinkingOutput(local, (t) => io.out(t), runner.tokenizer.decode(tokens.slice(-16)));
      const result = await runner.generate(tokens, params, show.text);
      show.end();
      const shown = show.content() ?? result.text;
      if (shown.length > 0 && !shown.endsWith("\n")) io.out("\n");
      // With no --num-predict the answer ends at a full context; with one it may go past it (the
      // context shifts, ContextShift, as the server's does).
      if (result.stopReason === "context")
        io.err(
          `owl: stopped: the context is full (${tokens.length + result.tokens.length} tokens); raise --num-ctx (up to the model's context length), or give --num-predict to go on past it (the context then shifts)\n`,
        );
      if (verbose) io.err(`\n${formatStats(runner, result)}`);
    } finally {
      await runner.dispose();
    }
  });
}
