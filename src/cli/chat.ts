/**
 * The interactive chat of `owl run` (like `ollama run`): reads lines from an input stream with
 * node:readline, keeps the conversation across turns and streams each answer to the CliIO.
 *
 * - A model with tokenizer.chat_template: the messages are rendered with it (generation prompt
 *   added) and tokenized with special tokens parsed; BOS is added unless the template wrote it.
 * - A model without one (stories260K, base models): plain continuation. Each line continues the
 *   running text (prompts and answers as one text); no "User:/Assistant:" framing, which a base
 *   model would only imitate.
 * - A stored model run in process: the server's prompt rules (runtime/prompt.ts): its Modelfile
 *   TEMPLATE, SYSTEM and MESSAGEs, else the GGUF's chat template; plain continuation without any.
 * Either way each turn sends the whole sequence and the backend reuses the KV-cached prefix, so
 * earlier turns are not evaluated again (owl backend and llama.cpp alike).
 *
 * Through a server (`owl run <name>` with `owl serve` running): the messages go to /api/chat,
 * which renders the model's template; the answer streams back and Ctrl-C cancels the request.
 *
 * Commands: /bye, /clear, /set parameter <name> <value>, /set verbose|quiet, /show parameters,
 * /? (help). Ctrl-C while generating stops the answer and returns to the prompt; Ctrl-C or
 * Ctrl-D at an empty prompt ends the chat.
 * Not here: the backends (run-backend.ts), parameter checks (run-params.ts), HTTP (client.ts).
 */

import { createInterface } from "node:readline";
import {
  type ChatPromptInput,
  type PromptMessage,
  renderChatPrompt,
  type ThinkValue,
} from "../runtime/prompt.ts";
import type { ResolvedModel } from "../store/types.ts";
import type { ChatMessage } from "../tokenizer/chat-template.ts";
import { compileChatTemplate } from "../tokenizer/chat-template.ts";
import { chatTemplateTokens } from "../tokenizer/chat-template-source.ts";
import { OwlError } from "../util/errors.ts";
import type { ChatChunk, ChatMessageWire, OwlClient } from "./client.ts";
import type { CliIO } from "./io.ts";
import type { GenerationResult, ModelRunner } from "./run-backend.ts";
import { formatParams, paramName, type RunParams, serverOptions, setParam } from "./run-params.ts";
import { formatServerStats, formatStats } from "./run-stats.ts";
import {
  type LocalThinking,
  ThinkingDisplay,
  type ThinkingOptions,
  thinkingOutput,
} from "./thinking-display.ts";

/** One answer of the chat. */
export interface ChatAnswer {
  text: string;
  stopReason: GenerationResult["stopReason"];
  /** The --verbose block (timings). */
  stats: () => string;
}

/** Who answers the chat: a model in this process (localChat) or a server (serverChat). */
export interface ChatEngine {
  /** Printed before the first prompt. */
  readonly note: string | undefined;
  /** Answer `line` (the conversation so far is kept), streaming text to onText. */
  send(
    line: string,
    params: RunParams,
    onText: (text: string) => void,
    signal: AbortSignal,
    firstTurn: boolean,
  ): Promise<ChatAnswer>;
  clear(): void;
}

export interface ChatOptions {
  chat: ChatEngine;
  /** Changed in place by /set parameter. */
  params: RunParams;
  verbose: boolean;
  input: NodeJS.ReadableStream;
  /** Answers and messages. */
  io: CliIO;
  /** A terminal: readline edits lines and echoes to `terminalOutput`, Ctrl-C arrives as SIGINT. */
  terminal?: boolean;
  terminalOutput?: NodeJS.WritableStream;
}

const HELP = `Available commands:
  /set parameter <name> <value>   set a parameter (temperature, num_predict, seed, top_k, top_p,
                                  min_p, typical_p, repeat_penalty, repeat_last_n,
                                  presence_penalty, frequency_penalty, num_ctx, stop)
  /set verbose | /set quiet       show or hide the timings after each answer
  /show parameters                the parameters in use
  /clear                          forget the conversation
  /bye                            exit
  /?, /help                       this help

Ctrl-C stops an answer; Ctrl-C or Ctrl-D at an empty prompt exits.
`;

/** The conversation: what a turn sends to the model. */
interface Conversation {
  /**
   * Token sequence for the next answer after `line`. When the history does not leave room for an
   * answer in `nCtx` tokens, the oldest messages (never a system message nor the new one) are
   * dropped first, as Ollama's server does (server/prompt.go chatPrompt); a history without
   * messages keeps its latest half.
   */
  prompt(line: string, nCtx: number): number[];
  /** Record the answer to the last prompt. */
  answered(prompt: readonly number[], result: GenerationResult): void;
  clear(): void;
}

function templateConversation(runner: ModelRunner, source: string): Conversation {
  const template = compileChatTemplate(source, { name: "tokenizer.chat_template" });
  const specials = chatTemplateTokens(runner.tokenizer.vocab);
  let messages: ChatMessage[] = [];
  const render = (list: ChatMessage[]) => {
    const text = template.render({ messages: list, addGenerationPrompt: true, ...specials });
    const addSpecial = !(specials.bosToken !== undefined && text.startsWith(specials.bosToken));
    return runner.tokenizer.encode(text, { addSpecial, parseSpecial: true });
  };
  return {
    prompt(line, nCtx) {
      messages.push({ role: "user", content: line });
      const kept = dropOldest(messages, nCtx, render);
      messages = kept.list;
      return kept.tokens;
    },
    answered(_prompt, result) {
      messages.push({ role: "assistant", content: result.text });
    },
    clear() {
      messages = [];
    },
  };
}

function plainConversation(runner: ModelRunner): Conversation {
  let history: number[] = [];
  return {
    prompt(line, nCtx) {
      if (history.length === 0) return runner.tokenizer.encode(line);
      const next = runner.tokenizer.encode(line, { addSpecial: false });
      if (history.length + next.length < nCtx) return [...history, ...next];
      // Too long: the first token (BOS) and the latest half of the context.
      const tail = [...history.slice(1), ...next].slice(-Math.floor(nCtx / 2));
      return [...history.slice(0, 1), ...tail];
    },
    answered(prompt, result) {
      history = [...prompt, ...result.tokens];
    },
    clear() {
      history = [];
    },
  };
}

/**
 * `messages` less its k oldest non-system messages (never the last one), for the least k whose
 * rendering leaves room for an answer in nCtx tokens (render(list).length < nCtx), or all of them
 * when none does; with that rendering. Dropping one message more never lengthens the rendering,
 * so "it fits after dropping k" is false up to some k and true from there on: a binary search
 * over k finds what dropping one at a time until it fits finds, with O(log n) renders instead of
 * one per dropped message (each a whole template render and tokenization).
 */
function dropOldest<M extends { role: string }>(
  messages: M[],
  nCtx: number,
  render: (m: M[]) => number[],
): { list: M[]; tokens: number[] } {
  const whole = render(messages);
  if (whole.length < nCtx) return { list: messages, tokens: whole };
  // Indices of the messages that may go, oldest first.
  const droppable: number[] = [];
  for (let i = 0; i < messages.length - 1; i++) if (messages[i]!.role !== "system") droppable.push(i);
  const without = (k: number): M[] => {
    const gone = new Set(droppable.slice(0, k));
    return messages.filter((_, i) => !gone.has(i));
  };
  // The answer is in (lo, hi]: k = lo does not fit; k = hi fits, or is every droppable message.
  let lo = 0;
  let hi = droppable.length;
  let best: { list: M[]; tokens: number[] } | undefined;
  while (hi - lo > 1) {
    const mid = lo + ((hi - lo) >> 1);
    const list = without(mid);
    const tokens = render(list);
    if (tokens.length < nCtx) {
      hi = mid;
      best = { list, tokens };
    } else lo = mid;
  }
  if (best) return best;
  if (hi === 0) return { list: messages, tokens: whole };
  const list = without(hi);
  return { list, tokens: render(list) };
}

/** Run the chat until /bye, Ctrl-D or the end of the input. */
export async function runChat(options: ChatOptions): Promise<void> {
  const { chat, params, io } = options;
  let verbose = options.verbose;
  const terminal = options.terminal === true;
  const rl = createInterface({
    input: options.input,
    ...(terminal && options.terminalOutput ? { output: options.terminalOutput } : {}),
    terminal,
    prompt: ">>> ",
  });

  const lines: string[] = [];
  let closed = false;
  let wake: (() => void) | undefined;
  let generation: AbortController | undefined;
  rl.on("line", (line) => {
    lines.push(line);
    wake?.();
  });
  rl.on("close", () => {
    // Lines already read are still answered (a piped or test input ends before they are).
    closed = true;
    wake?.();
  });
  rl.on("SIGINT", () => {
    if (generation) generation.abort();
    else if (rl.line.length > 0) {
      // Ctrl-C on a line being typed clears it, as a shell does.
      rl.write(null, { ctrl: true, name: "u" });
    } else rl.close();
  });
  const nextLine = async (): Promise<string | undefined> => {
    while (lines.length === 0 && !closed) await new Promise<void>((r) => (wake = r));
    wake = undefined;
    return lines.shift();
  };
  const prompt = () => {
    if (terminal) rl.prompt();
    else io.out(">>> ");
  };

  if (chat.note !== undefined) io.out(`${chat.note}\n`);
  let firstTurn = true;
  try {
    for (;;) {
      prompt();
      const raw = await nextLine();
      if (raw === undefined) break;
      if (!terminal) io.out(`${raw}\n`);
      const line = raw.trim();
      if (line === "") continue;
      if (line.startsWith("/")) {
        const words = line.split(/\s+/);
        const cmd = words[0]!;
        if (cmd === "/bye" || cmd === "/exit") break;
        if (cmd === "/?" || cmd === "/help") {
          io.out(HELP);
        } else if (cmd === "/clear") {
          chat.clear();
          io.out("Cleared session context\n");
        } else if (cmd === "/show" && words[1] === "parameters") {
          io.out(`Parameters:\n${formatParams(params)}`);
        } else if (cmd === "/set" && (words[1] === "verbose" || words[1] === "quiet")) {
          verbose = words[1] === "verbose";
          io.out(`Set '${words[1]}' mode.\n`);
        } else if (cmd === "/set" && words[1] === "parameter") {
          const name = words[2] === undefined ? undefined : paramName(words[2]);
          const value = line.split(/\s+/).slice(3).join(" ");
          if (name === undefined || value === "") {
            io.out("Usage: /set parameter <name> <value>  (/? lists the names)\n");
          } else {
            try {
              setParam(params, name, value, `parameter ${name}`);
              io.out(`Set parameter '${name}' to '${value}'\n`);
            } catch (e) {
              if (!(e instanceof OwlError)) throw e;
              io.out(`error: ${e.message}\n`);
            }
          }
        } else {
          io.out(`Unknown command '${line}'. Type /? for help\n`);
        }
        continue;
      }

      generation = new AbortController();
      let result: ChatAnswer;
      try {
        result = await chat.send(line, params, (t) => io.out(t), generation.signal, firstTurn);
      } catch (e) {
        if (!(e instanceof OwlError)) throw e;
        io.out(`error: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
        continue;
      } finally {
        generation = undefined;
      }
      if (!result.text.endsWith("\n")) io.out("\n");
      if (result.stopReason === "aborted") io.out("(stopped)\n");
      if (result.stopReason === "context")
        io.out("(the context is full: the next turn drops the oldest messages, or /clear starts again)\n");
      if (verbose) io.err(result.stats());
      io.out("\n");
      firstTurn = false;
    }
  } finally {
    rl.close();
  }
}

/** A stored model's prompt: Modelfile TEMPLATE/SYSTEM/MESSAGEs, else the GGUF's template. */
function storedConversation(runner: ModelRunner, model: ResolvedModel, think?: ThinkValue): Conversation {
  const specials = chatTemplateTokens(runner.tokenizer.vocab);
  let messages: PromptMessage[] = [];
  const render = (list: PromptMessage[]) => {
    const input: ChatPromptInput = { messages: list, storedMessages: model.messages, ...specials };
    if (think !== undefined) input.think = think;
    if (model.system !== undefined) input.system = model.system;
    if (model.template !== undefined) input.template = model.template;
    if (runner.chatTemplate !== undefined) input.chatTemplate = runner.chatTemplate;
    const text = renderChatPrompt(input).prompt;
    const addSpecial = !(specials.bosToken !== undefined && text.startsWith(specials.bosToken));
    return runner.tokenizer.encode(text, { addSpecial, parseSpecial: true });
  };
  return {
    prompt(line, nCtx) {
      const kept = dropOldest([...messages, { role: "user", content: line }], nCtx, render);
      messages = kept.list;
      return kept.tokens;
    },
    answered(_prompt, result) {
      messages.push({ role: "assistant", content: result.text });
    },
    clear() {
      messages = [];
    },
  };
}

/**
 * The chat with a model loaded in this process; the prompt is built here (template or plain).
 * `stored`: the stored model it came from, whose Modelfile template, system and messages apply.
 */
export function localChat(runner: ModelRunner, stored?: ResolvedModel, thinking?: LocalThinking): ChatEngine {
  const hasTemplate = runner.chatTemplate !== undefined || stored?.template !== undefined;
  const conversation =
    stored !== undefined && hasTemplate
      ? storedConversation(runner, stored, thinking?.think)
      : runner.chatTemplate !== undefined
        ? templateConversation(runner, runner.chatTemplate)
        : plainConversation(runner);
  return {
    note: hasTemplate
      ? undefined
      : "(this model has no chat template: each line continues the text so far; /? for help)",
    async send(line, params, onText, signal, firstTurn) {
      const tokens = conversation.prompt(line, Math.min(params.num_ctx, runner.nCtxTrain));
      // A thinking model's thinking is shown apart and kept out of the history, as through a server.
      const show = thinkingOutput(thinking, onText, runner.tokenizer.decode(tokens.slice(-16)));
      const result = await runner.generate(tokens, params, show.text, signal);
      show.end();
      const content = show.content();
      conversation.answered(tokens, content === undefined ? result : { ...result, text: content });
      return {
        ...result,
        ...(content !== undefined && { text: content }),
        stats: () => formatStats(runner, result, firstTurn),
      };
    },
    clear: () => conversation.clear(),
  };
}

/** The chat with a model on an owl server: the messages go to /api/chat each turn. */
export function serverChat(
  client: OwlClient,
  model: string,
  keepAlive?: string,
  thinking: ThinkingOptions = { think: undefined, hide: false },
): ChatEngine {
  let messages: ChatMessageWire[] = [];
  return {
    note: undefined,
    async send(line, params, onText, signal) {
      const sent: ChatMessageWire[] = [...messages, { role: "user", content: line }];
      let text = "";
      let last: ChatChunk | undefined;
      let stopReason: GenerationResult["stopReason"] = "eog";
      const display = new ThinkingDisplay(onText, thinking.hide);
      try {
        for await (const chunk of client.stream<ChatChunk>(
          "/api/chat",
          {
            model,
            messages: sent,
            options: serverOptions(params),
            ...(keepAlive !== undefined ? { keep_alive: keepAlive } : {}),
            ...(thinking.think !== undefined ? { think: thinking.think } : {}),
          },
          signal,
        )) {
          display.thinking(chunk.message?.thinking);
          const piece = chunk.message?.content ?? "";
          if (piece !== "") {
            text += piece;
            display.content(piece);
          }
          if (chunk.done) last = chunk;
        }
        display.close();
        if (last?.done_reason === "length") stopReason = "length";
      } catch (e) {
        if (!(e instanceof OwlError && e.code === "ERR_ABORTED")) throw e;
        stopReason = "aborted";
      }
      messages = [...sent, { role: "assistant", content: text }];
      const metrics = last ?? {};
      return { text, stopReason, stats: () => formatServerStats(metrics, client.baseUrl) };
    },
    clear() {
      messages = [];
    },
  };
}
