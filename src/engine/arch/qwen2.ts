/**
 * qwen2: Qwen2 / Qwen2.5 dense models. The llama graph with q/k/v biases (optional in llama.cpp's
 * create_tensor_qkv, present in every released Qwen2) and NEOX RoPE (llama_model_rope_type:
 * LLAMA_ROPE_TYPE_NEOX). Follows llama.cpp src/models/qwen2.cpp. Not supported: output.bias.
 */
import { forwardDecoder } from "../forward.ts";
import { readHyperparams } from "../hyperparams.ts";
import { bindDecoderWeights, type DecoderFeatures, decoderTensorSpecs } from "../weights.ts";
import type { Architecture } from "./types.ts";

const FEATURES: DecoderFeatures = { qkvBias: true, qkNorm: false, ropeFreqs: false, moe: false };

export const qwen2: Architecture = {
  name: "qwen2",
  hyperparams: (md) => readHyperparams(md, "qwen2", { neox: true }),
  tensors: (hp, has) => decoderTensorSpecs(hp, FEATURES, has),
  build(weights, hp) {
    const w = bindDecoderWeights(weights, hp);
    return (step) => forwardDecoder(w, hp, step);
  },
};
