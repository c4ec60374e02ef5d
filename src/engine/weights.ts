/**
 * Weights: checking a GGUF file's tensors against what an architecture needs, and uploading them
 * into backend memory in their stored type (a Q4_K matrix stays Q4_K; only 1-D norm and bias
 * vectors are converted to F32). Errors name the tensor: ERR_TENSOR_NOT_FOUND for a missing one,
 * ERR_TENSOR_SHAPE with the expected and found ggml dims, ERR_QUANT_UNSUPPORTED_TYPE when no
 * kernel handles its type, ERR_UNSUPPORTED for tensors the architecture does not know (llama.cpp
 * refuses those too: "wrong number of tensors").
 *
 * Also here: the weights of the llama-family decoder (llama, qwen2, qwen3) and their tensor list,
 * as llama.cpp's load_arch_tensors creates them (src/models/llama.cpp, qwen2.cpp, qwen3.cpp).
 * Not here: reading metadata (hyperparams.ts), the forward pass (forward.ts).
 */

import type { GgufFile } from "../formats/gguf/index.ts";
import { TENSOR } from "../formats/gguf/keys.ts";
import { dequantize, KERNELS } from "../quant/index.ts";
import { bytesOf } from "../util/bytes.ts";
import { OwlError } from "../util/errors.ts";
import type { GgmlTypeName } from "../util/ggml-types.ts";
import type { Buf, KernelBackend } from "./backend.ts";
import type { Hyperparams } from "./hyperparams.ts";

/** A tensor in backend memory. dims are ggml order (dims[0] is the row length). */
export interface Weight {
  readonly name: string;
  readonly type: GgmlTypeName;
  readonly dims: readonly number[];
  readonly buf: Buf;
}

/** How the forward pass uses a tensor, which decides the kernels its type needs. */
export type TensorUse = "matmul" | "rows" | "rows+matmul" | "vector";

export interface TensorSpec {
  name: string;
  /** Expected ggml dims. */
  dims: readonly number[];
  use: TensorUse;
  optional?: boolean;
}

function shapeString(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

function checkKernels(name: string, type: GgmlTypeName, use: TensorUse): void {
  const k = KERNELS[type];
  const needRows = use === "rows" || use === "rows+matmul" || use === "vector";
  const needDot = use === "matmul" || use === "rows+matmul";
  const actQuantize = k?.dotActivation ? KERNELS[k.dotActivation]?.quantize : undefined;
  if ((needRows && !k?.dequantize) || (needDot && (!k?.dot || !actQuantize))) {
    const ok = Object.entries(KERNELS)
      .filter(([, v]) => v?.dot && v.dequantize)
      .map(([n]) => n);
    throw new OwlError(
      "ERR_QUANT_UNSUPPORTED_TYPE",
      `tensor "${name}" is stored as ${type}, which the owl engine cannot ${needDot ? "multiply" : "read"}; supported: ${ok.join(", ")}`,
      { details: { tensor: name, type } },
    );
  }
}

/**
 * Check every spec against `file` and upload the tensors present. Returns the weights by name
 * and the bytes they take in backend memory.
 */
export function loadWeights(
  file: GgufFile,
  specs: readonly TensorSpec[],
  backend: KernelBackend,
  onProgress?: (done: number, total: number) => void,
): { weights: Map<string, Weight>; bytes: number } {
  // Check everything first, so that a bad file fails before anything is uploaded.
  const present: { spec: TensorSpec; info: NonNullable<ReturnType<GgufFile["tensor"]>> }[] = [];
  for (const spec of specs) {
    const info = file.tensor(spec.name);
    if (!info) {
      if (spec.optional) continue;
      throw new OwlError("ERR_TENSOR_NOT_FOUND", `tensor "${spec.name}" is missing from ${file.name}`, {
        details: { tensor: spec.name, expected: spec.dims },
      });
    }
    const same = info.dims.length === spec.dims.length && info.dims.every((d, i) => d === spec.dims[i]);
    if (!same) {
      throw new OwlError(
        "ERR_TENSOR_SHAPE",
        `tensor "${spec.name}" has ggml dims ${shapeString(info.dims)} but the hyperparameters need ${shapeString(spec.dims)}`,
        { details: { tensor: spec.name, expected: spec.dims, found: info.dims } },
      );
    }
    checkKernels(spec.name, info.type.name, spec.use);
    present.push({ spec, info });
  }
  const known = new Set(specs.map((s) => s.name));
  const unknown = file.tensors.filter((t) => !known.has(t.name)).map((t) => t.name);
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 8).map((n) => `"${n}"`);
    throw new OwlError(
      "ERR_UNSUPPORTED",
      `${file.name} has ${unknown.length} tensor(s) the owl engine does not use for this architecture: ${shown.join(", ")}${unknown.length > 8 ? ", ..." : ""}`,
      { hint: "the model needs a feature the owl engine does not implement", details: { tensors: unknown } },
    );
  }

  const weights = new Map<string, Weight>();
  let bytes = 0;
  let done = 0;
  for (const { spec, info } of present) {
    let data = file.readTensor(info);
    let type = info.type.name;
    if (spec.use === "vector" && type !== "F32") {
      // Small 1-D tensors (norm weights, biases, rope factors) are kept as F32.
      data = bytesOf(dequantize(info.type, data, info.nElements));
      type = "F32";
    }
    const buf = backend.upload(data);
    bytes += buf.bytes;
    weights.set(spec.name, { name: spec.name, type, dims: info.dims, buf });
    onProgress?.(++done, present.length);
  }
  return { weights, bytes };
}

// ------------------------------------------------------------------ llama-family decoders

/** The weights of one decoder layer; optional members are absent from the file. */
export interface LayerWeights {
  attnNorm: Weight;
  /** wq (nHead*headDim, C), wk and wv (nHeadKv*headDim, C), wo (C, nHead*headDim). */
  wq: Weight;
  wk: Weight;
  wv: Weight;
  wo: Weight;
  bq?: Weight;
  bk?: Weight;
  bv?: Weight;
  /** qwen3: per-head RMS norms of q and k (headDim). */
  qNorm?: Weight;
  kNorm?: Weight;
  ffnNorm: Weight;
  /** Dense FFN: gate and up (nFf, C), down (C, nFf). */
  ffn?: { gate: Weight; up: Weight; down: Weight };
  /** Mixture of experts: router (nExpert, C); per expert gate/up (nFf, C), down (C, nFf). */
  moe?: { router: Weight; gate: Weight; up: Weight; down: Weight };
}

export interface DecoderWeights {
  tokEmbd: Weight;
  outputNorm: Weight;
  /** The output projection (V, C); token_embd itself when the model ties them. */
  output: Weight;
  tied: boolean;
  /** llama3 rope frequency factors (nRot/2). */
  ropeFreqs?: Weight;
  layers: LayerWeights[];
}

export interface DecoderFeatures {
  /** q/k/v biases may be present (llama.cpp create_tensor_qkv makes them optional everywhere). */
  qkvBias: boolean;
  /** qwen3's attn_q_norm / attn_k_norm (required when true). */
  qkNorm: boolean;
  /** llama's optional rope_freqs.weight. */
  ropeFreqs: boolean;
  /** Experts allowed (llama: Mixtral-style MoE when expert_count > 0). */
  moe: boolean;
}

/**
 * The tensors of a llama-family decoder with hyperparameters `hp`. `has` says whether the file
 * holds a tensor: without output.weight the token embedding doubles as the output projection
 * (llama.cpp TENSOR_DUPLICATED), so its type then needs a dot kernel too.
 */
export function decoderTensorSpecs(
  hp: Hyperparams,
  f: DecoderFeatures,
  has: (name: string) => boolean,
): TensorSpec[] {
  const { C, V, nHead, nHeadKv, headDim, nFf, nExpert } = hp;
  const qDim = nHead * headDim;
  const kvDim = nHeadKv * headDim;
  if (nExpert > 0 && !f.moe) {
    throw new OwlError("ERR_UNSUPPORTED", `the ${hp.arch} architecture has no mixture-of-experts variant`, {
      details: { arch: hp.arch, nExpert },
    });
  }
  const specs: TensorSpec[] = [
    { name: TENSOR.tokenEmbd, dims: [C, V], use: has(TENSOR.output) ? "rows" : "rows+matmul" },
    { name: TENSOR.outputNorm, dims: [C], use: "vector" },
    { name: TENSOR.output, dims: [C, V], use: "matmul", optional: true },
  ];
  if (f.ropeFreqs)
    specs.push({ name: TENSOR.ropeFreqs, dims: [hp.rope.nRot / 2], use: "vector", optional: true });
  for (let i = 0; i < hp.L; i++) {
    const b = TENSOR.blk(i);
    specs.push(
      { name: b.attnNorm, dims: [C], use: "vector" },
      { name: b.attnQ, dims: [C, qDim], use: "matmul" },
      { name: b.attnK, dims: [C, kvDim], use: "matmul" },
      { name: b.attnV, dims: [C, kvDim], use: "matmul" },
      { name: b.attnOutput, dims: [qDim, C], use: "matmul" },
      { name: b.ffnNorm, dims: [C], use: "vector" },
    );
    if (f.qkvBias) {
      specs.push(
        { name: b.attnQBias, dims: [qDim], use: "vector", optional: true },
        { name: b.attnKBias, dims: [kvDim], use: "vector", optional: true },
        { name: b.attnVBias, dims: [kvDim], use: "vector", optional: true },
      );
    }
    if (f.qkNorm) {
      specs.push(
        { name: b.attnQNorm, dims: [headDim], use: "vector" },
        { name: b.attnKNorm, dims: [headDim], use: "vector" },
      );
    }
    if (nExpert > 0) {
      specs.push(
        { name: b.ffnGateInp, dims: [C, nExpert], use: "matmul" },
        { name: b.ffnGateExps, dims: [C, nFf, nExpert], use: "matmul" },
        { name: b.ffnUpExps, dims: [C, nFf, nExpert], use: "matmul" },
        { name: b.ffnDownExps, dims: [nFf, C, nExpert], use: "matmul" },
      );
    } else {
      specs.push(
        { name: b.ffnGate, dims: [C, nFf], use: "matmul" },
        { name: b.ffnUp, dims: [C, nFf], use: "matmul" },
        { name: b.ffnDown, dims: [nFf, C], use: "matmul" },
      );
    }
  }
  return specs;
}

/** Gather the uploaded tensors into the decoder's structure (after loadWeights checked them). */
export function bindDecoderWeights(w: ReadonlyMap<string, Weight>, hp: Hyperparams): DecoderWeights {
  const need = (name: string): Weight => {
    const t = w.get(name);
    if (!t) throw new Error(`internal error: tensor ${name} was not loaded`);
    return t;
  };
  const tokEmbd = need(TENSOR.tokenEmbd);
  const output = w.get(TENSOR.output);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < hp.L; i++) {
    const b = TENSOR.blk(i);
    const layer: LayerWeights = {
      attnNorm: need(b.attnNorm),
      wq: need(b.attnQ),
      wk: need(b.attnK),
      wv: need(b.attnV),
      wo: need(b.attnOutput),
      ffnNorm: need(b.ffnNorm),
    };
    const opt = (name: string) => w.get(name);
    const bq = opt(b.attnQBias);
    const bk = opt(b.attnKBias);
    const bv = opt(b.attnVBias);
    const qNorm = opt(b.attnQNorm);
    const kNorm = opt(b.attnKNorm);
    if (bq) layer.bq = bq;
    if (bk) layer.bk = bk;
    if (bv) layer.bv = bv;
    if (qNorm) layer.qNorm = qNorm;
    if (kNorm) layer.kNorm = kNorm;
    if (hp.nExpert > 0) {
      layer.moe = {
        router: need(b.ffnGateInp),
        gate: need(b.ffnGateExps),
        up: need(b.ffnUpExps),
        down: need(b.ffnDownExps),
      };
    } else {
      layer.ffn = { gate: need(b.ffnGate), up: need(b.ffnUp), down: need(b.ffnDown) };
    }
    layers.push(layer);
  }
  const ropeFreqs = w.get(TENSOR.ropeFreqs);
  return {
    tokEmbd,
    outputNorm: need(TENSOR.outputNorm),
    output: output ?? tokEmbd,
    tied: output === undefined,
    ...(ropeFreqs ? { ropeFreqs } : {}),
    layers,
  };
}
