/**
 * Shared pieces of the runtime tests: the bundled stories260K, greedy sampling options, llama2.c
 * run.c's reference continuation of "Once upon a time", and run(): one complete() collected into
 * its text, events and final "done" event.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gf32, gstr, gu32, writeGguf } from "../../src/formats/gguf/index.ts";
import { complete } from "../../src/runtime/complete.ts";
import type {
  CompletionEvent,
  CompletionRequest,
  LoadedModel,
  SamplingOptions,
  Sequence,
  TokenPiece,
} from "../../src/runtime/types.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { ggmlTypeByName } from "../../src/util/ggml-types.ts";
import { fixturePath, REPO_ROOT } from "./fixtures.ts";

export const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");
export const REF = "llama2c/reference/greedy_once_upon_a_time_n200.json";
export const PROMPT = "Once upon a time";

export const GREEDY: SamplingOptions = {
  temperature: 0,
  topK: 40,
  topP: 0.9,
  minP: 0,
  typicalP: 1,
  repeatPenalty: 1,
  repeatLastN: 64,
  presencePenalty: 0,
  frequencyPenalty: 0,
  seed: 1,
  logitBias: new Map(),
};

export interface Reference {
  prompt_tokens: number[];
  generated_tokens: number[];
}

export function reference(): Reference {
  return JSON.parse(readFileSync(fixturePath(REF)!, "utf8")) as Reference;
}

/** run.c's first n generated tokens as text, decoded by owl's tokenizer. */
export function referenceText(n: number): string {
  const tok = Tokenizer.fromGgufFile(BUNDLED);
  const dec = tok.streamingDecoder();
  let text = "";
  for (const id of reference().generated_tokens.slice(0, n)) text += dec.push(id);
  return text + dec.flush();
}

export async function run(
  model: LoadedModel,
  seq: Sequence,
  req: Partial<CompletionRequest> & { prompt: readonly number[] },
): Promise<{ text: string; done: Extract<CompletionEvent, { type: "done" }>; events: CompletionEvent[] }> {
  const events: CompletionEvent[] = [];
  let text = "";
  for await (const ev of complete(model, seq, { sampling: GREEDY, maxTokens: 40, stop: [], ...req })) {
    events.push(ev);
    if (ev.type === "text") text += ev.text;
  }
  const done = events.at(-1);
  if (done?.type !== "done") throw new Error("no done event");
  return { text, done, events };
}

/** The pieces of all text events. */
export function pieces(events: readonly CompletionEvent[]): TokenPiece[] {
  return events.flatMap((e) => (e.type === "text" ? e.pieces : []));
}

/** The token of one character. */
export function piece(model: LoadedModel, c: string): number {
  return model.tokenize(c, { addBos: false, parseSpecial: false }).at(-1)!;
}

/**
 * A rank-1 LoRA adapter for the bundled stories260K (llama.cpp's GGUF adapter format: general.type
 * "adapter", lora_a (in, r) and lora_b (r, out) in ggml order) on the last layer's ffn_down,
 * written with owl's writer; seeded, so every call writes the same bytes.
 */
export async function writeTinyLora(path: string): Promise<void> {
  const f32 = ggmlTypeByName("F32")!;
  let x = 12345;
  const rand = (n: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      a[i] = (x / 2 ** 32 - 0.5) * 4;
    }
    return new Uint8Array(a.buffer);
  };
  await writeGguf(path, {
    metadata: new Map([
      ["general.architecture", gstr("llama")],
      ["general.type", gstr("adapter")],
      ["adapter.type", gstr("lora")],
      ["adapter.lora.alpha", gf32(1)],
      ["general.alignment", gu32(32)],
    ]),
    tensors: [
      { name: "blk.4.ffn_down.weight.lora_a", dims: [172, 1], type: f32, data: () => rand(172) },
      { name: "blk.4.ffn_down.weight.lora_b", dims: [1, 64], type: f32, data: () => rand(64) },
    ],
  });
}
