/**
 * Conversion of llama2.c checkpoints (+ their tokenizer) into llama-architecture GGUF files that
 * llama.cpp loads and generates from.
 *
 * Mapping (llama2.c name -> GGUF tensor; ggml dims are the PyTorch shape reversed):
 *   token_embedding -> token_embd.weight, rms_final -> output_norm.weight, wcls -> output.weight
 *   (omitted when the classifier is shared: llama.cpp then ties output to token_embd),
 *   per layer: rms_att -> attn_norm, wq/wk/wv/wo -> attn_q/attn_k/attn_v/attn_output,
 *   rms_ffn -> ffn_norm, w1 -> ffn_gate, w2 -> ffn_down, w3 -> ffn_up.
 * NOTE: no q/k permutation: llama2.c and ggml's normal RoPE both rotate adjacent pairs.
 * Vocabulary: SentencePiece-style ("llama") with scores; the pieces get "▁" back for spaces,
 * ids 0/1/2 become <unk>/<s>/</s> as llama.cpp's own convert-llama2c-to-ggml does.
 * Not here: reading the llama2.c files (formats/llama2c), writing GGUF (formats/gguf).
 */
import { archKeys, GENERAL, TENSOR, TOKENIZER, TokenType } from "../formats/gguf/keys.ts";
import type { GgufMetadata, GgufTensorInput, GgufValue, GgufWriteInput } from "../formats/gguf/types.ts";
import type { Llama2cModel, Llama2cTensor } from "../formats/llama2c/checkpoint.ts";
import type { Llama2cVocab } from "../formats/llama2c/tokenizer.ts";
import { kernelsFor, quantize } from "../quant/index.ts";
import { bytesOf } from "../util/bytes.ts";
import { OwlError } from "../util/errors.ts";
import { GgmlType, type GgmlTypeInfo, requireGgmlType } from "../util/ggml-types.ts";

export interface Llama2cConvertOptions {
  /** general.name (default "llama2c"). */
  name?: string;
  /** general.license, e.g. "mit". */
  license?: string;
  /** Storage type of the 2-D weight matrices (norms stay F32). Default F32. */
  type?: GgmlTypeInfo;
}

/** llama.cpp's llama_ftype for a whole-model type, for general.file_type. */
const FILE_TYPE: Partial<Record<string, number>> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 7,
  Q5_0: 8,
  Q5_1: 9,
  Q2_K: 10,
  Q3_K: 12,
  Q4_K: 15,
  Q5_K: 17,
  Q6_K: 18,
  BF16: 32,
};

const u32 = (value: number): GgufValue => ({ type: "UINT32", value });
const f32 = (value: number): GgufValue => ({ type: "FLOAT32", value });
const str = (value: string): GgufValue => ({ type: "STRING", value });

function ggufTensorName(t: Llama2cTensor): string {
  if (t.layer === undefined) {
    switch (t.name) {
      case "token_embedding":
        return TENSOR.tokenEmbd;
      case "rms_final":
        return TENSOR.outputNorm;
      case "wcls":
        return TENSOR.output;
      default:
        throw new Error(`internal error: ${t.name} has no layer`);
    }
  }
  const b = TENSOR.blk(t.layer);
  const map = {
    rms_att: b.attnNorm,
    wq: b.attnQ,
    wk: b.attnK,
    wv: b.attnV,
    wo: b.attnOutput,
    rms_ffn: b.ffnNorm,
    w1: b.ffnGate,
    w2: b.ffnDown,
    w3: b.ffnUp,
  } as const;
  const name = map[t.name as keyof typeof map];
  if (!name) throw new Error(`internal error: ${t.name} is not a per-layer tensor`);
  return name;
}

/** GGUF token type of a llama2.c piece. */
function tokenType(id: number, piece: string): number {
  if (id === 0) return TokenType.UNKNOWN;
  if (id === 1 || id === 2) return TokenType.CONTROL;
  if (piece.length === 0) return TokenType.CONTROL;
  if (/^<0x[0-9A-Fa-f]{2}>$/.test(piece)) return TokenType.BYTE;
  return TokenType.NORMAL;
}

/** The vocabulary metadata of a llama2.c tokenizer, as a SentencePiece ("llama") GGUF vocabulary. */
export function llama2cVocabMetadata(vocab: Llama2cVocab): [string, GgufValue][] {
  const n = vocab.pieces.length;
  const tokens = vocab.pieces.map((p, id) => {
    if (id === 0) return "<unk>";
    if (id === 1) return "<s>";
    if (id === 2) return "</s>";
    return p.replaceAll(" ", "\u2581");
  });
  const types = new Int32Array(n);
  for (let i = 0; i < n; i++) types[i] = tokenType(i, vocab.pieces[i]!);
  return [
    [TOKENIZER.model, str("llama")],
    [TOKENIZER.pre, str("default")],
    [TOKENIZER.tokens, { type: "ARRAY", value: { itemType: "STRING", items: tokens } }],
    [
      TOKENIZER.scores,
      { type: "ARRAY", value: { itemType: "FLOAT32", items: Float32Array.from(vocab.scores) } },
    ],
    [TOKENIZER.tokenType, { type: "ARRAY", value: { itemType: "INT32", items: types } }],
    [TOKENIZER.bosId, u32(1)],
    [TOKENIZER.eosId, u32(2)],
    [TOKENIZER.unkId, u32(0)],
    [TOKENIZER.addBos, { type: "BOOL", value: true }],
    [TOKENIZER.addEos, { type: "BOOL", value: false }],
  ];
}

/** Build the GGUF (metadata + lazily produced tensors) of a llama2.c model and tokenizer. */
export function llama2cToGguf(
  model: Llama2cModel,
  vocab: Llama2cVocab,
  options: Llama2cConvertOptions = {},
): GgufWriteInput {
  const c = model.config;
  if (vocab.pieces.length !== c.vocabSize) {
    throw new OwlError(
      "ERR_LLAMA2C_BAD_TOKENIZER",
      `the tokenizer has ${vocab.pieces.length} tokens but the model's vocab_size is ${c.vocabSize}`,
    );
  }
  const type = options.type ?? requireGgmlType(GgmlType.F32);
  if (type.name !== "F32" && !kernelsFor(type).quantize) {
    throw new OwlError(
      "ERR_QUANT_UNSUPPORTED_TYPE",
      `cannot store weights as ${type.name}: no quantizer for it`,
    );
  }
  const fileType = FILE_TYPE[type.name];
  const arch = archKeys("llama");
  const md: GgufMetadata = new Map<string, GgufValue>([
    [GENERAL.architecture, str("llama")],
    [GENERAL.name, str(options.name ?? "llama2c")],
    ...(options.license ? ([[GENERAL.license, str(options.license)]] as [string, GgufValue][]) : []),
    ...(fileType !== undefined ? ([[GENERAL.fileType, u32(fileType)]] as [string, GgufValue][]) : []),
    ...(type.quantized ? ([[GENERAL.quantizationVersion, u32(2)]] as [string, GgufValue][]) : []),
    [arch.vocabSize, u32(c.vocabSize)],
    [arch.contextLength, u32(c.seqLen)],
    [arch.embeddingLength, u32(c.dim)],
    [arch.feedForwardLength, u32(c.hiddenDim)],
    [arch.blockCount, u32(c.nLayers)],
    [arch.headCount, u32(c.nHeads)],
    [arch.headCountKv, u32(c.nKvHeads)],
    [arch.ropeDimensionCount, u32(c.dim / c.nHeads)],
    [arch.ropeFreqBase, f32(10000)],
    [arch.layerNormRmsEps, f32(1e-5)],
    ...llama2cVocabMetadata(vocab),
  ]);
  const f32Type = requireGgmlType(GgmlType.F32);
  const tensors: GgufTensorInput[] = model.tensors.map((t) => {
    const dims = [...t.shape].reverse();
    // Norms (1-D) stay F32, as llama.cpp's converters and quantizer keep them; a matrix whose
    // row length is not a whole number of blocks also stays F32.
    const target = dims.length >= 2 && dims[0]! % type.blockSize === 0 ? type : f32Type;
    return {
      name: ggufTensorName(t),
      dims,
      type: target,
      data: () => {
        const values = t.read();
        return target.name === "F32" ? bytesOf(values) : quantize(target, values);
      },
    };
  });
  return { version: 3, metadata: md, tensors };
}
