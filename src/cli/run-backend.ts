/**
 * The two ways `owl run` runs a GGUF model: the owl engine on its WebAssembly backend, or
 * llama.cpp through node-llama-cpp 3.21.1. Both take the whole token sequence of a turn (from BOS),
 * reuse the prefix already in their KV cache, sample with the same parameters (Ollama's names),
 * and stream text through owl's tokenizer (StreamingDecoder: never half a UTF-8 character) and
 * StopMatcher, so the two print the same text for the same tokens. Each generation reports the
 * counts and durations `--verbose` prints.
 * Not here: flags and their checks (run-params.ts), the chat loop (chat.ts), the engine itself.
 */
import { performance } from "node:perf_hooks";
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { generate } from "../engine/generate.ts";
import { createWasmBackend, type WasmBackend } from "../engine/kernels/wasm/backend.ts";
import { loadModel, type MemoryReport, type Model, type Session } from "../engine/model.ts";
import { randomSeed, Sampler } from "../engine/sampler.ts";
import { StopMatcher } from "../engine/sampler-stop.ts";
import { getNumber, getString, openGguf } from "../formats/gguf/index.ts";
import { shiftContext } from "../runtime/complete.ts";
import { chatTemplateFromGgufMetadata } from "../tokenizer/chat-template-source.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { OwlError } from "../util/errors.ts";
import { effectiveRepeatPenalty, type RunParams } from "./run-params.ts";

export type RunBackendName = "owl" | "llama.cpp";

export interface GenerationStats {
  /** Tokens run through the model for the prompt (those not already in the KV cache). */
  promptTokens: number;
  /** Until the first token was sampled. */
  promptMs: number;
  /** Tokens generated (an end-of-generation token not counted). */
  evalTokens: number;
  /** From the first token to the last. */
  evalMs: number;
  totalMs: number;
}

export interface GenerationResult {
  tokens: number[];
  text: string;
  stopReason: "eog" | "stop" | "length" | "context" | "aborted";
  stats: GenerationStats;
  /** Times a full context shifted (Ollama's context shift, ContextShift) to go on generating. */
  shifts?: number;
}

export interface ModelRunner {
  readonly backend: RunBackendName;
  readonly tokenizer: Tokenizer;
  /** tokenizer.chat_template from the GGUF, when it has one. */
  readonly chatTemplate: string | undefined;
  /** The model's training context length. */
  readonly nCtxTrain: number;
  /** Milliseconds spent loading the model. */
  readonly loadMs: number;
  /**
   * Generate after `tokens` (the whole sequence, BOS first), streaming text to onText. An abort
   * ends it early (stopReason "aborted") with what was generated so far.
   */
  generate(
    tokens: readonly number[],
    params: RunParams,
    onText: (text: string) => void,
    signal?: AbortSignal,
  ): Promise<GenerationResult>;
  /** Weights, KV cache and scratch in memory (owl backend only). */
  memory(): MemoryReport | undefined;
  dispose(): Promise<void>;
}

export interface OpenRunnerOptions {
  backend: RunBackendName;
  threads: number;
}

/** Tokens the context can still take for generation, or an error when the prompt fills it. */
function budget(promptLength: number, nCtx: number): number {
  if (promptLength >= nCtx) {
    throw new OwlError(
      "ERR_CONTEXT_OVERFLOW",
      `the prompt has ${promptLength} tokens and the context holds ${nCtx}: no room to generate`,
      {
        hint: "use a shorter prompt, raise --num-ctx (up to the model's context length), or /clear the chat",
        details: { tokens: promptLength, nCtx },
      },
    );
  }
  return nCtx - promptLength;
}

function isAbort(e: unknown): boolean {
  return (
    (e instanceof OwlError && e.code === "ERR_ABORTED") || (e instanceof Error && e.name === "AbortError")
  );
}

/** Thrown by ContextShift when a full context cannot shift (num_keep leaves nothing to drop). */
const CONTEXT_FULL = new Error("the context is full");

/**
 * Ollama's context shift over a growing token list (runtime/complete.ts shiftContext, the rule
 * the server's completion loop applies to a backend's sequence): the tokens in the context are a
 * window of prompt + generated; when it reaches nCtx it keeps the first num_keep tokens (+ BOS;
 * -1: the whole prompt), drops half of the rest, and the session evaluates the window again
 * (its cached prefix, the kept tokens, is reused), so generation goes on past the context length.
 */
export class ContextShift {
  private win: number[] = [];
  private consumed = 0;
  shifts = 0;

  constructor(
    private readonly prompt: readonly number[],
    private readonly nCtx: number,
    private readonly numKeep: number,
    private readonly bosToken: number | undefined,
  ) {}

  /** The tokens to hold in the context for the sequence `seq` (prompt + every token so far). */
  window(seq: readonly number[]): readonly number[] {
    for (let i = this.consumed; i < seq.length; i++) this.win.push(seq[i]!);
    this.consumed = seq.length;
    if (this.win.length >= this.nCtx) {
      const shifted = shiftContext(this.win, this.prompt.length, this.numKeep, this.bosToken);
      if (shifted === undefined) throw CONTEXT_FULL;
      this.win = shifted;
      this.shifts++;
    }
    return this.win;
  }
}

/** Yield to the event loop so that Ctrl-C (readline's SIGINT) is seen between tokens. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Open `path` with the chosen backend. */
export async function openRunner(path: string, options: OpenRunnerOptions): Promise<ModelRunner> {
  const t0 = performance.now();
  const file = openGguf(path);
  let tokenizer: Tokenizer;
  let chatTemplate: string | undefined;
  let nCtxTrain: number;
  try {
    tokenizer = Tokenizer.fromGguf(file.metadata, path);
    chatTemplate = chatTemplateFromGgufMetadata(file.metadata)?.default;
    const arch = getString(file.metadata, "general.architecture");
    nCtxTrain = (arch !== undefined ? getNumber(file.metadata, `${arch}.context_length`) : undefined) ?? 2048;
    if (options.backend === "owl") {
      const backend = await createWasmBackend({ threads: options.threads });
      try {
        const model = await loadModel(file, { backend });
        return new OwlRunner(
          model,
          backend,
          tokenizer,
          chatTemplate,
          model.hparams.nCtxTrain,
          performance.now() - t0,
        );
      } catch (e) {
        await backend.dispose();
        throw e;
      }
    }
  } finally {
    file.close();
  }
  // Imported on use: loading node-llama-cpp takes seconds that the owl backend need not pay.
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  try {
    const model = await llama.loadModel({ modelPath: path });
    return new LlamaCppRunner(
      llama,
      model,
      options.threads,
      tokenizer,
      chatTemplate,
      nCtxTrain,
      performance.now() - t0,
    );
  } catch (e) {
    await llama.dispose();
    throw e;
  }
}

class OwlRunner implements ModelRunner {
  readonly backend = "owl";
  private session: Session | undefined;

  constructor(
    private readonly model: Model,
    private readonly wasm: WasmBackend,
    readonly tokenizer: Tokenizer,
    readonly chatTemplate: string | undefined,
    readonly nCtxTrain: number,
    readonly loadMs: number,
  ) {}

  private sessionFor(numCtx: number): Session {
    const nCtx = Math.min(numCtx, this.nCtxTrain);
    // NOTE: sessions keep their KV cache until the model is disposed; a new one is made only when
    // num_ctx changes, which is rare (a /set parameter num_ctx).
    if (this.session?.nCtx !== nCtx) this.session = this.model.createSession({ nCtx });
    return this.session;
  }

  async generate(
    tokens: readonly number[],
    params: RunParams,
    onText: (text: string) => void,
    signal?: AbortSignal,
  ): Promise<GenerationResult> {
    const session = this.sessionFor(params.num_ctx);
    // No --num-predict: up to a full context; a given count may go past it (the context shifts).
    const room = budget(tokens.length, session.nCtx);
    const maxTokens = params.num_predict < 0 ? room : params.num_predict;
    const v = this.tokenizer.vocab;
    const shift = new ContextShift(tokens, session.nCtx, params.num_keep, v.addBos ? v.bos : undefined);
    const sampler = new Sampler({
      temperature: params.temperature,
      top_k: params.top_k,
      top_p: params.top_p,
      min_p: params.min_p,
      typical_p: params.typical_p,
      repeat_penalty: effectiveRepeatPenalty(params),
      repeat_last_n: params.repeat_last_n,
      presence_penalty: params.presence_penalty,
      frequency_penalty: params.frequency_penalty,
      seed: params.seed ?? randomSeed(),
      stop: params.stop,
    });
    const t0 = performance.now();
    let promptMs = -1;
    let promptTokens = 0;
    const out: GenerationResult = {
      tokens: [],
      text: "",
      stopReason: "length",
      stats: { promptTokens: 0, promptMs: 0, evalTokens: 0, evalMs: 0, totalMs: 0 },
    };
    const logitsOut = new Float32Array(this.model.hparams.V);
    const it = generate({
      prompt: tokens,
      sampler,
      decoder: this.tokenizer.streamingDecoder({ renderSpecial: false }),
      stopTokens: (id) => this.tokenizer.isEog(id),
      maxTokens,
      signal,
      // generate() samples from each token's logits before it asks for the next: one buffer for
      // them all (EvaluateOptions.logitsOut) instead of a fresh V floats per token.
      evaluate: (seq, sig) => {
        const r = session.evaluate(shift.window(seq), { signal: sig, logitsOut });
        if (promptMs < 0) promptTokens = r.evaluated;
        return r.logits;
      },
    });
    try {
      for (;;) {
        const step = await it.next();
        if (promptMs < 0 && (step.done || step.value.token !== null)) promptMs = performance.now() - t0;
        if (step.done) {
          out.stopReason = step.value.stopReason;
          if (step.value.stopReason === "length" && params.num_predict < 0) out.stopReason = "context";
          break;
        }
        if (step.value.token !== null) out.tokens.push(step.value.token);
        if (step.value.text !== "") {
          out.text += step.value.text;
          onText(step.value.text);
        }
        await tick();
      }
    } catch (e) {
      if (e === CONTEXT_FULL) out.stopReason = "context";
      else if (isAbort(e)) out.stopReason = "aborted";
      else throw e;
    }
    out.shifts = shift.shifts;
    const totalMs = performance.now() - t0;
    if (promptMs < 0) promptMs = totalMs;
    out.stats = {
      promptTokens,
      promptMs,
      evalTokens: out.tokens.length,
      evalMs: totalMs - promptMs,
      totalMs,
    };
    return out;
  }

  memory(): MemoryReport {
    return this.model.memory();
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
    await this.wasm.dispose();
  }
}

class LlamaCppRunner implements ModelRunner {
  readonly backend = "llama.cpp";
  private context: LlamaContext | undefined;
  private sequence: LlamaContextSequence | undefined;

  constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly threads: number,
    readonly tokenizer: Tokenizer,
    readonly chatTemplate: string | undefined,
    readonly nCtxTrain: number,
    readonly loadMs: number,
  ) {}

  private async sequenceFor(numCtx: number): Promise<LlamaContextSequence> {
    const nCtx = Math.min(numCtx, this.nCtxTrain);
    if (this.context?.contextSize !== nCtx || !this.sequence) {
      await this.context?.dispose();
      this.context = await this.model.createContext({
        contextSize: nCtx,
        flashAttention: false,
        threads: this.threads,
      });
      this.sequence = this.context.getSequence();
    }
    return this.sequence;
  }

  async generate(
    tokens: readonly number[],
    params: RunParams,
    onText: (text: string) => void,
    signal?: AbortSignal,
  ): Promise<GenerationResult> {
    if (params.typical_p < 1) {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `--typical-p ${params.typical_p} is not available with --backend llama.cpp (node-llama-cpp has no typical-p sampler)`,
        { hint: "use --backend owl, or leave typical_p at 1" },
      );
    }
    const seq = await this.sequenceFor(params.num_ctx);
    // The context asked for (llama.cpp may pad the one it makes): where it shifts, as the server.
    const nCtx = Math.min(params.num_ctx, this.nCtxTrain, this.context!.contextSize);
    // No --num-predict: up to a full context; a given count may go past it (the context shifts).
    const room = budget(tokens.length, nCtx);
    const maxTokens = params.num_predict < 0 ? room : params.num_predict;
    const v = this.tokenizer.vocab;
    const shift = new ContextShift(tokens, nCtx, params.num_keep, v.addBos ? v.bos : undefined);
    /** Evaluates `input` reusing the common prefix of what the sequence holds (at least one token is new). */
    const reuse = async (input: readonly number[]): Promise<number> => {
      const held = seq.contextTokens;
      let keep = 0;
      while (keep < held.length && keep < input.length && held[keep] === input[keep]) keep++;
      if (keep === input.length) keep--;
      if (keep < seq.nextTokenIndex)
        await seq.eraseContextTokenRanges([{ start: keep, end: seq.nextTokenIndex }]);
      return keep;
    };
    let input: readonly number[] = tokens;
    let keep = await reuse(input);

    const all = [...tokens];
    const penalty = effectiveRepeatPenalty(params);
    const lastN = params.repeat_last_n;
    const penalize =
      lastN !== 0 && (penalty !== 1 || params.presence_penalty !== 0 || params.frequency_penalty !== 0);
    const window = () => (lastN < 0 ? all : all.slice(-lastN)) as Token[];
    const decoder = this.tokenizer.streamingDecoder({ renderSpecial: false });
    const matcher = new StopMatcher(params.stop);
    const out: GenerationResult = {
      tokens: [],
      text: "",
      stopReason: "length",
      stats: { promptTokens: tokens.length - keep, promptMs: 0, evalTokens: 0, evalMs: 0, totalMs: 0 },
    };
    const emit = (text: string) => {
      if (text === "") return;
      out.text += text;
      onText(text);
    };
    const t0 = performance.now();
    let promptMs = -1;
    let stopped = false;
    try {
      // Each pass evaluates the context's tokens and generates until the context is full; then
      // it shifts (ContextShift: the same window the owl backend evaluates) and goes on.
      while (maxTokens > 0 && !stopped) {
        let full = false;
        const sinceInput: number[] = [];
        for await (const token of seq.evaluate(input.slice(keep) as Token[], {
          temperature: params.temperature,
          topK: params.top_k,
          topP: params.top_p,
          minP: params.min_p,
          seed: params.seed ?? randomSeed(),
          ...(penalize && {
            repeatPenalty: {
              penalty,
              frequencyPenalty: params.frequency_penalty,
              presencePenalty: params.presence_penalty,
              maxPunishTokens: lastN < 0 ? nCtx : lastN,
              punishTokens: window,
            },
          }),
        })) {
          if (promptMs < 0) promptMs = performance.now() - t0;
          if (signal?.aborted) {
            out.stopReason = "aborted";
            stopped = true;
            break;
          }
          if (this.tokenizer.isEog(token)) {
            out.stopReason = "eog";
            break;
          }
          all.push(token);
          out.tokens.push(token);
          sinceInput.push(token);
          const r = matcher.push(decoder.push(token));
          emit(r.text);
          if (r.stopped) {
            out.stopReason = "stop";
            stopped = true;
            break;
          }
          if (out.tokens.length >= maxTokens) {
            if (params.num_predict < 0) out.stopReason = "context";
            break;
          }
          // The context holds the input and the tokens since: the next one would not fit.
          if (input.length + sinceInput.length >= nCtx) {
            full = true;
            break;
          }
          await tick();
        }
        if (!full) break;
        input = shift.window(all);
        keep = await reuse(input);
      }
    } catch (e) {
      if (e === CONTEXT_FULL) out.stopReason = "context";
      else if (isAbort(e)) {
        out.stopReason = "aborted";
        stopped = true;
      } else throw e;
    }
    out.shifts = shift.shifts;
    if (!stopped) {
      const r = matcher.push(decoder.flush());
      emit(r.stopped ? r.text : r.text + matcher.flush());
      if (r.stopped) out.stopReason = "stop";
    }
    const totalMs = performance.now() - t0;
    if (promptMs < 0) promptMs = totalMs;
    out.stats.promptMs = promptMs;
    out.stats.evalTokens = out.tokens.length;
    out.stats.evalMs = totalMs - promptMs;
    out.stats.totalMs = totalMs;
    return out;
  }

  memory(): undefined {
    return undefined;
  }

  async dispose(): Promise<void> {
    await this.context?.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}
