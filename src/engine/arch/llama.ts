/**
 * llama: Llama 1/2/3 (with llama3's rope_freqs.weight), Mistral, SmolLM, TinyLlama and other
 * llama-architecture GGUFs: GQA, tied or separate output, normal (adjacent-pair) RoPE with linear
 * scaling, optional q/k/v biases, and Mixtral-style MoE when llama.expert_count > 0.
 * Follows llama.cpp src/models/llama.cpp (llama_model_llama::load_arch_tensors and its graph);
 * llama_model_rope_type gives LLAMA_ROPE_TYPE_NORM for this architecture.
 */
import { forwardDecoder } from "../forward.ts";
import { readHyperparams } from "../hyperparams.ts";
import { bindDecoderWeights, type DecoderFeatures, decoderTensorSpecs } from "../weights.ts";
import type { Architecture } from "./types.ts";

const FEATURES: DecoderFeatures = { qkvBias: true, qkNorm: false, ropeFreqs: true, moe: true };

export const llama: Architecture = {
  name: "llama",
  hyperparams: (md) => readHyperparams(md, "llama", { neox: false }),
  tensors: (hp, has) => decoderTensorSpecs(hp, FEATURES, has),
  build(weights, hp) {
    const w = bindDecoderWeights(weights, hp);
    return (step) => forwardDecoder(w, hp, step);
  },
};
