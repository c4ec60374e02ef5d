/**
 * qwen3: Qwen3 dense models. The llama graph with per-head RMS norms of q and k
 * (attn_q_norm / attn_k_norm, (headDim), applied before RoPE), no biases, NEOX RoPE, and a head
 * width that need not be C / nHead (attention.key_length). Follows llama.cpp src/models/qwen3.cpp.
 */
import { forwardDecoder } from "../forward.ts";
import { readHyperparams } from "../hyperparams.ts";
import { bindDecoderWeights, type DecoderFeatures, decoderTensorSpecs } from "../weights.ts";
import type { Architecture } from "./types.ts";

const FEATURES: DecoderFeatures = { qkvBias: false, qkNorm: true, ropeFreqs: false, moe: false };

export const qwen3: Architecture = {
  name: "qwen3",
  hyperparams: (md) => readHyperparams(md, "qwen3", { neox: true }),
  tensors: (hp, has) => decoderTensorSpecs(hp, FEATURES, has),
  build(weights, hp) {
    const w = bindDecoderWeights(weights, hp);
    return (step) => forwardDecoder(w, hp, step);
  },
};
