/**
 * Hyperparameters of a decoder-only transformer, read from GGUF metadata with llama.cpp's
 * defaults (llama_model::load_hparams in src/llama-model.cpp): required keys throw
 * ERR_MODEL_METADATA naming the key; optional ones fall back as llama.cpp does (head_count_kv to
 * head_count, key_length to C/nHead, rope.dimension_count to headDim, rope.freq_base to 10000,
 * rope.scaling.factor to none). Not here: tensor shapes (arch/*.ts), tokenizer metadata.
 */

import { type GgufMetadata, getArray, getNumber, getString } from "../formats/gguf/index.ts";
import { archKeys, TOKENIZER } from "../formats/gguf/keys.ts";
import { OwlError } from "../util/errors.ts";

export interface Hyperparams {
  /** general.architecture. */
  arch: string;
  /** Vocabulary size (`<arch>.vocab_size`, else the length of tokenizer.ggml.tokens). */
  V: number;
  /** Model width (embedding_length). */
  C: number;
  /** Layers (block_count). */
  L: number;
  nHead: number;
  nHeadKv: number;
  /** Per-head width of queries, keys and values (attention.key_length == value_length). */
  headDim: number;
  /** Feed-forward width (per expert for MoE). */
  nFf: number;
  /** context_length: the context the model was trained with. */
  nCtxTrain: number;
  /** attention.layer_norm_rms_epsilon. */
  rmsEps: number;
  /** RoPE: rotated dimensions per head, base, 1/linear scaling factor, NEOX pairing. */
  rope: { nRot: number; freqBase: number; freqScale: number; neox: boolean };
  /** Mixture of experts: experts per layer (0 = dense) and experts used per token. */
  nExpert: number;
  nExpertUsed: number;
}

function metadataError(message: string, key: string): OwlError {
  return new OwlError("ERR_MODEL_METADATA", message, { details: { key } });
}

function positiveInt(md: GgufMetadata, key: string, fallback?: number): number {
  const v = getNumber(md, key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw metadataError(`metadata key "${key}" is missing; the model cannot be loaded without it`, key);
  }
  if (!Number.isInteger(v) || v <= 0) {
    throw metadataError(`metadata "${key}" must be a positive integer, found ${v}`, key);
  }
  return v;
}

function check(ok: boolean, key: string, message: string): void {
  if (!ok) throw metadataError(message, key);
}

export interface ReadHyperparamsOptions {
  /** llama.cpp's llama_model_rope_type for the architecture: NEOX (true) or NORM (false). */
  neox: boolean;
}

/** Read and validate the hyperparameters of architecture `arch` from `md`. */
export function readHyperparams(
  md: GgufMetadata,
  arch: string,
  options: ReadHyperparamsOptions,
): Hyperparams {
  const k = archKeys(arch);
  const C = positiveInt(md, k.embeddingLength);
  const L = positiveInt(md, k.blockCount);
  const nHead = positiveInt(md, k.headCount);
  const nHeadKv = positiveInt(md, k.headCountKv, nHead);
  check(
    nHead % nHeadKv === 0,
    k.headCountKv,
    `metadata "${k.headCountKv}" (${nHeadKv}) must divide "${k.headCount}" (${nHead})`,
  );
  const headDim = positiveInt(md, k.keyLength, Math.floor(C / nHead));
  const valueDim = positiveInt(md, k.valueLength, headDim);
  check(
    valueDim === headDim,
    k.valueLength,
    `metadata "${k.valueLength}" (${valueDim}) must equal "${k.keyLength}" (${headDim})`,
  );
  const nFf = positiveInt(md, k.feedForwardLength);
  const nCtxTrain = positiveInt(md, k.contextLength);

  const eps = getNumber(md, k.layerNormRmsEps);
  if (eps === undefined) {
    throw metadataError(
      `metadata key "${k.layerNormRmsEps}" is missing; the model cannot be loaded without it`,
      k.layerNormRmsEps,
    );
  }
  check(
    eps >= 0 && Number.isFinite(eps),
    k.layerNormRmsEps,
    `metadata "${k.layerNormRmsEps}" must be >= 0, found ${eps}`,
  );

  let V = getNumber(md, k.vocabSize);
  if (V === undefined) {
    const tokens = getArray(md, TOKENIZER.tokens);
    if (!tokens) {
      throw metadataError(
        `neither "${k.vocabSize}" nor "${TOKENIZER.tokens}" is present: the vocabulary size is unknown`,
        k.vocabSize,
      );
    }
    V = tokens.items.length;
  }
  check(
    Number.isInteger(V) && V > 0,
    k.vocabSize,
    `the vocabulary size must be a positive integer, found ${V}`,
  );

  const nRot = positiveInt(md, k.ropeDimensionCount, headDim);
  check(
    nRot % 2 === 0 && nRot <= headDim,
    k.ropeDimensionCount,
    `metadata "${k.ropeDimensionCount}" (${nRot}) must be even and at most the head width ${headDim}`,
  );
  const freqBase = getNumber(md, k.ropeFreqBase) ?? 10000;
  check(freqBase > 0, k.ropeFreqBase, `metadata "${k.ropeFreqBase}" must be positive, found ${freqBase}`);
  const scalingType = getString(md, k.ropeScalingType) ?? "linear";
  const factor = getNumber(md, k.ropeScalingFactor) ?? 0;
  let freqScale: number;
  switch (scalingType) {
    case "none":
      freqScale = 1; // llama_context: "never scale if scaling type is none"
      break;
    case "linear":
      check(
        factor >= 0,
        k.ropeScalingFactor,
        `metadata "${k.ropeScalingFactor}" must be >= 0, found ${factor}`,
      );
      freqScale = factor === 0 ? 1 : Math.fround(1 / factor);
      break;
    default:
      throw new OwlError(
        "ERR_UNSUPPORTED",
        `RoPE scaling "${scalingType}" (metadata "${k.ropeScalingType}") is not supported by the owl engine; supported: none, linear`,
        { details: { key: k.ropeScalingType, value: scalingType } },
      );
  }

  const nExpert = getNumber(md, k.expertCount) ?? 0;
  const nExpertUsed = getNumber(md, k.expertUsedCount) ?? 0;
  check(Number.isInteger(nExpert) && nExpert >= 0, k.expertCount, `metadata "${k.expertCount}" must be >= 0`);
  if (nExpert > 0) {
    check(
      Number.isInteger(nExpertUsed) && nExpertUsed > 0 && nExpertUsed <= nExpert,
      k.expertUsedCount,
      `metadata "${k.expertUsedCount}" (${nExpertUsed}) must be between 1 and "${k.expertCount}" (${nExpert})`,
    );
  }

  return {
    arch,
    V,
    C,
    L,
    nHead,
    nHeadKv,
    headDim,
    nFf,
    nCtxTrain,
    rmsEps: eps,
    rope: { nRot, freqBase, freqScale, neox: options.neox },
    nExpert,
    nExpertUsed: nExpert > 0 ? nExpertUsed : 0,
  };
}
