/**
 * What both backends need to know about a GGUF before running it: the ModelInfo of the runtime
 * contract (architecture, training context, width, vocabulary, chat template, BOS/EOS/EOG, bytes
 * of weights) and owl's tokenizer for the file (token bytes for UTF-8-safe streaming), read with
 * owl's own GGUF reader so that the two backends report the same facts.
 * Not here: loading weights (the backends), the checks of LoadOptions (checkLoadOptions below is
 * shared by both backends).
 */
import { getNumber, getString, openGguf } from "../formats/gguf/index.ts";
import { chatTemplateFromGgufMetadata } from "../tokenizer/chat-template-source.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { OwlError } from "../util/errors.ts";
import type { LoadOptions, ModelInfo } from "./types.ts";

export interface GgufFacts {
  info: ModelInfo;
  /** owl's tokenizer, or undefined when owl cannot build one for this vocabulary. */
  tokenizer: Tokenizer | undefined;
  /** `<arch>.pooling_type` (llama.cpp's enum: 0 none, 1 mean, 2 cls, 3 last), undefined if absent. */
  poolingType: number | undefined;
}

/** Read the facts of the GGUF at `path`; ERR_MODEL_LOAD (with the reader's error as cause) if unreadable. */
export function readGgufFacts(path: string): GgufFacts {
  let file: ReturnType<typeof openGguf>;
  try {
    file = openGguf(path);
  } catch (e) {
    if (e instanceof OwlError && e.code === "ERR_FILE_NOT_FOUND") throw e;
    throw new OwlError("ERR_MODEL_LOAD", `cannot read the GGUF model ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    const md = file.metadata;
    const arch = getString(md, "general.architecture") ?? "unknown";
    let tokenizer: Tokenizer | undefined;
    try {
      tokenizer = Tokenizer.fromGguf(md, path);
      // The model codec is built on first use: a vocabulary type owl cannot decode fails here.
      tokenizer.decode(Array.from({ length: Math.min(tokenizer.size, 512) }, (_, i) => i));
    } catch {
      // NOTE: a vocabulary owl cannot read still runs on llama.cpp; token bytes then come from it.
      tokenizer = undefined;
    }
    const vocab = tokenizer?.vocab;
    const info: ModelInfo = {
      architecture: arch,
      trainContextLength: getNumber(md, `${arch}.context_length`) ?? 2048,
      embeddingLength: getNumber(md, `${arch}.embedding_length`) ?? 0,
      vocabSize: tokenizer?.size ?? 0,
      chatTemplate: chatTemplateFromGgufMetadata(md)?.default,
      eogTokens: vocab ? [...vocab.eog].sort((a, b) => a - b) : [],
      bosToken: vocab?.bos,
      eosToken: vocab?.eos,
      addBos: vocab?.addBos ?? false,
      weightBytes: file.fileSize - file.dataOffset,
    };
    return { info, tokenizer, poolingType: getNumber(md, `${arch}.pooling_type`) };
  } finally {
    file.close();
  }
}

/** Check the numbers of LoadOptions (ERR_INVALID_ARGUMENT naming the field). */
export function checkLoadOptions(o: LoadOptions): void {
  const positive = (name: string, v: number | undefined, optional = false) => {
    if (optional && v === undefined) return;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `${name} must be an integer >= 1, found ${String(v)}`, {
        details: { parameter: name, found: v },
      });
    }
  };
  positive("numCtx", o.numCtx);
  positive("numParallel", o.numParallel);
  positive("threads", o.threads, true);
  for (const [i, a] of o.adapters.entries()) {
    if (typeof a.path !== "string" || a.path === "" || !Number.isFinite(a.scale)) {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `adapters[${i}] must have a path and a finite scale, found ${JSON.stringify(a)}`,
      );
    }
  }
}

/** ERR_CONTEXT_OVERFLOW for a prompt that leaves no room to generate in a context of numCtx. */
export function contextOverflow(promptLength: number, numCtx: number): OwlError {
  return new OwlError(
    "ERR_CONTEXT_OVERFLOW",
    `the prompt has ${promptLength} tokens and the context holds ${numCtx}: no room to generate`,
    {
      hint: "use a shorter prompt or a larger num_ctx (up to the model's context length)",
      details: { tokens: promptLength, nCtx: numCtx },
    },
  );
}

/** A model used after dispose(). */
export function disposedError(modelPath: string): OwlError {
  return new OwlError(
    "ERR_INVALID_ARGUMENT",
    `the model ${modelPath} was unloaded (disposed) and cannot run`,
  );
}

/** Length of the common prefix of two token sequences. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** A random uint32 seed (a request without a seed). */
export function randomSeed32(): number {
  return Math.floor(Math.random() * 0x1_0000_0000) >>> 0;
}

/** L2-normalize in place (a zero vector stays zero). */
export function normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] = v[i]! / n;
  return v;
}

/**
 * Special tokens whose text generated output keeps: the tool-call tags runtime/tool-calls.ts looks
 * for (Ollama asks llama-server to preserve its parsers' tokens the same way, llm/llama_server.go
 * llamaServerPreservedTokens).
 */
const PRESERVED_SPECIAL = new Set([
  "<tool_call>",
  "</tool_call>",
  "<|python_tag|>",
  "[TOOL_CALLS]",
  "[ARGS]",
  "[CALL_ID]",
]);
const utf8Text = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * A generated token's bytes as llama-server streams them (common_token_to_piece with special
 * false): control tokens such as BOS give nothing, except the preserved tool-call tags; user-defined
 * and normal tokens their text.
 */
export function outputPieceBytes(tokenizer: Tokenizer, token: number): Uint8Array {
  const plain = tokenizer.pieceBytes(token, false);
  if (plain.length > 0) return plain;
  const special = tokenizer.pieceBytes(token, true);
  return special.length > 0 && PRESERVED_SPECIAL.has(utf8Text.decode(special)) ? special : plain;
}
