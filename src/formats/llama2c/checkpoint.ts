/**
 * Reader for llama2.c model checkpoints (github.com/karpathy/llama2.c, export.py and run.c).
 *
 * Three layouts, all little-endian float32 unless noted:
 *   v0 (legacy, run.c's format): 7 x i32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *      vocab_size, seq_len}; vocab_size < 0 means the classifier is NOT shared. Then
 *      token_embedding (V,C), rms_att (L,C), wq (L,C,C), wk (L,KV,C), wv (L,KV,C), wo (L,C,C),
 *      rms_ffn (L,C), w1 (L,F,C), w2 (L,C,F), w3 (L,F,C), rms_final (C),
 *      freq_cis_real (seq_len, head_size/2), freq_cis_imag (same), [wcls (V,C) if not shared].
 *   v1: u32 magic 0x616b3432 ("ak42") | i32 version=1 | 7 x i32 params | u8 shared_classifier |
 *      zero padding to 256 bytes; then rms_att (L,C), rms_ffn (L,C), rms_final (C),
 *      token_embedding, wq, wk, wv, wo, w1, w2, w3, [wcls].
 *   v2: like v1 with version=2 and i32 group_size after the flag; then float32 norms
 *      (rms_att, rms_ffn, rms_final), then int8 weights of token_embedding, wq..w3, [wcls], then
 *      float32 scales (one per group of group_size values) for the same weights in the same order.
 * Weights are row-major (out, in) like PyTorch; KV = n_kv_heads * head_size, F = hidden_dim.
 * Here: header parsing with size checks and lazy per-tensor float32 reads. Not here: GGUF
 * conversion (tools/convert.ts) and the tokenizer (tokenizer.ts).
 */
import type { ByteSource } from "../../util/bytes.ts";
import { OwlError } from "../../util/errors.ts";

export const LLAMA2C_MAGIC = 0x616b3432;

export interface Llama2cConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
}

/** The tensors of a llama2.c model, by their llama2.c names; per-layer ones as arrays. */
export type Llama2cTensorName =
  | "token_embedding"
  | "rms_att"
  | "wq"
  | "wk"
  | "wv"
  | "wo"
  | "rms_ffn"
  | "w1"
  | "w2"
  | "w3"
  | "rms_final"
  | "wcls";

export interface Llama2cTensor {
  name: Llama2cTensorName;
  /** Layer index for per-layer tensors, undefined for global ones. */
  layer: number | undefined;
  /** Row-major shape, PyTorch order: [out, in] for matrices, [n] for norms. */
  shape: number[];
  /** Read the values as float32 (dequantized for v2). */
  read(): Float32Array;
}

export interface Llama2cModel {
  version: 0 | 1 | 2;
  config: Llama2cConfig;
  /** Q8 group size of a v2 file. */
  groupSize: number | undefined;
  tensors: Llama2cTensor[];
}

const PER_LAYER: readonly Llama2cTensorName[] = [
  "rms_att",
  "wq",
  "wk",
  "wv",
  "wo",
  "rms_ffn",
  "w1",
  "w2",
  "w3",
];

function fail(src: ByteSource, message: string, details?: Record<string, unknown>): never {
  throw new OwlError("ERR_LLAMA2C_BAD_HEADER", `${src.name}: ${message}`, {
    ...(details ? { details } : {}),
    hint: "expected a llama2.c checkpoint written by llama2.c's export.py (versions 0, 1 or 2)",
  });
}

function shapeOf(c: Llama2cConfig, name: Llama2cTensorName): number[] {
  const headSize = c.dim / c.nHeads;
  const kvDim = c.nKvHeads * headSize;
  switch (name) {
    case "token_embedding":
    case "wcls":
      return [c.vocabSize, c.dim];
    case "rms_att":
    case "rms_ffn":
    case "rms_final":
      return [c.dim];
    case "wq":
    case "wo":
      return [c.dim, c.dim];
    case "wk":
    case "wv":
      return [kvDim, c.dim];
    case "w1":
    case "w3":
      return [c.hiddenDim, c.dim];
    case "w2":
      return [c.dim, c.hiddenDim];
  }
}

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkConfig(src: ByteSource, raw: number[]): Omit<Llama2cConfig, "sharedClassifier"> {
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen] = raw as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const LIMIT = 1 << 20;
  const named: [string, number][] = [
    ["dim", dim],
    ["hidden_dim", hiddenDim],
    ["n_layers", nLayers],
    ["n_heads", nHeads],
    ["n_kv_heads", nKvHeads],
    ["vocab_size", Math.abs(vocabSize)],
    ["seq_len", seqLen],
  ];
  for (const [k, v] of named) {
    if (!(v > 0 && v <= LIMIT))
      fail(src, `header field ${k} = ${v} is out of range (expected 1..${LIMIT})`, { [k]: v });
  }
  if (dim % nHeads !== 0) fail(src, `dim ${dim} is not a multiple of n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) fail(src, `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) fail(src, `head size ${dim / nHeads} must be even for RoPE`);
  return { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocabSize), seqLen };
}

function sizeMismatch(src: ByteSource, version: number, expected: number): never {
  throw new OwlError(
    "ERR_LLAMA2C_SIZE_MISMATCH",
    `${src.name}: a version ${version} llama2.c checkpoint with this header must have ${expected} bytes, but the file has ${src.size} (truncated, or not a llama2.c checkpoint?)`,
    { details: { expected, found: src.size, version } },
  );
}

/** Parse a llama2.c checkpoint header and lay out its tensors (weights are read lazily). */
export function readLlama2c(src: ByteSource): Llama2cModel {
  if (src.size < 28) fail(src, `file has ${src.size} bytes, fewer than the 28-byte header`);
  const head = src.read(0, Math.min(src.size, 256));
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const magic = dv.getUint32(0, true);

  if (magic !== LLAMA2C_MAGIC) {
    const raw = Array.from({ length: 7 }, (_, i) => dv.getInt32(i * 4, true));
    const base = checkConfig(src, raw);
    const config: Llama2cConfig = { ...base, sharedClassifier: raw[5]! > 0 };
    const headSize = config.dim / config.nHeads;
    const order: Llama2cTensorName[] = ["token_embedding", ...PER_LAYER, "rms_final"];
    let offset = 28;
    const tensors: Llama2cTensor[] = [];
    const add = (name: Llama2cTensorName, layer: number | undefined, at: number) => {
      const shape = shapeOf(config, name);
      const n = count(shape);
      tensors.push({ name, layer, shape, read: () => readF32(src, at, n) });
    };
    for (const name of order) {
      const n = count(shapeOf(config, name));
      if (PER_LAYER.includes(name)) {
        for (let l = 0; l < config.nLayers; l++) add(name, l, offset + l * n * 4);
        offset += config.nLayers * n * 4;
      } else {
        add(name, undefined, offset);
        offset += n * 4;
      }
    }
    offset += 2 * config.seqLen * (headSize / 2) * 4; // freq_cis_real, freq_cis_imag: unused (RoPE is recomputed)
    if (!config.sharedClassifier) {
      add("wcls", undefined, offset);
      offset += count(shapeOf(config, "wcls")) * 4;
    }
    if (offset !== src.size) sizeMismatch(src, 0, offset);
    return { version: 0, config, groupSize: undefined, tensors: sortTensors(tensors) };
  }

  if (src.size < 256) fail(src, `file has ${src.size} bytes, fewer than the 256-byte v1/v2 header`);
  const version = dv.getInt32(4, true);
  if (version !== 1 && version !== 2) {
    throw new OwlError(
      "ERR_UNSUPPORTED",
      `${src.name}: llama2.c checkpoint version ${version} is not supported (expected 1 or 2)`,
      {
        details: { version },
      },
    );
  }
  const raw = Array.from({ length: 7 }, (_, i) => dv.getInt32(8 + i * 4, true));
  const base = checkConfig(src, raw);
  const config: Llama2cConfig = { ...base, sharedClassifier: head[36] !== 0 };
  const weights: Llama2cTensorName[] = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"];
  const tensors: Llama2cTensor[] = [];
  let offset = 256;

  // Norms first, float32 in both versions.
  for (const name of ["rms_att", "rms_ffn"] as const) {
    for (let l = 0; l < config.nLayers; l++) {
      const at = offset;
      tensors.push({ name, layer: l, shape: [config.dim], read: () => readF32(src, at, config.dim) });
      offset += config.dim * 4;
    }
  }
  {
    const at = offset;
    tensors.push({
      name: "rms_final",
      layer: undefined,
      shape: [config.dim],
      read: () => readF32(src, at, config.dim),
    });
    offset += config.dim * 4;
  }
  const big: [Llama2cTensorName, number | undefined][] = [["token_embedding", undefined]];
  for (const name of weights) for (let l = 0; l < config.nLayers; l++) big.push([name, l]);
  if (!config.sharedClassifier) big.push(["wcls", undefined]);

  if (version === 1) {
    for (const [name, layer] of big) {
      const shape = shapeOf(config, name);
      const n = count(shape);
      const at = offset;
      tensors.push({ name, layer, shape, read: () => readF32(src, at, n) });
      offset += n * 4;
    }
    if (offset !== src.size) sizeMismatch(src, 1, offset);
    return { version: 1, config, groupSize: undefined, tensors: sortTensors(tensors) };
  }

  const groupSize = dv.getInt32(37, true);
  if (!(groupSize > 0 && groupSize <= 1 << 16))
    fail(src, `group_size ${groupSize} is out of range (expected 1..65536)`);
  const qOffsets: number[] = [];
  for (const [name] of big) {
    const n = count(shapeOf(config, name));
    if (n % groupSize !== 0)
      fail(src, `tensor ${name} has ${n} values, not a multiple of group_size ${groupSize}`);
    qOffsets.push(offset);
    offset += n;
  }
  for (let i = 0; i < big.length; i++) {
    const [name, layer] = big[i]!;
    const shape = shapeOf(config, name);
    const n = count(shape);
    const qAt = qOffsets[i]!;
    const sAt = offset;
    tensors.push({ name, layer, shape, read: () => readQ8(src, qAt, sAt, n, groupSize) });
    offset += (n / groupSize) * 4;
  }
  if (offset !== src.size) sizeMismatch(src, 2, offset);
  return { version: 2, config, groupSize, tensors: sortTensors(tensors) };
}

/** Tensors in a stable order: globals first, then layer by layer. */
function sortTensors(tensors: Llama2cTensor[]): Llama2cTensor[] {
  const rank = (t: Llama2cTensor) => (t.layer === undefined ? -1 : t.layer);
  return tensors.sort((a, b) => rank(a) - rank(b));
}

function readF32(src: ByteSource, offset: number, n: number): Float32Array {
  const out = new Float32Array(n);
  src.readInto(offset, new Uint8Array(out.buffer));
  return out;
}

function readQ8(src: ByteSource, qAt: number, sAt: number, n: number, groupSize: number): Float32Array {
  const q = new Int8Array(n);
  src.readInto(qAt, new Uint8Array(q.buffer));
  const scales = readF32(src, sAt, n / groupSize);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = q[i]! * scales[Math.floor(i / groupSize)]!;
  return out;
}
