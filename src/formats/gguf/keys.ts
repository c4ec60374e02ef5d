/**
 * Every GGUF metadata key and tensor-name string owl uses lives here, so a typo is a compile
 * error and a grep finds every user. Names follow llama.cpp (gguf-py/gguf/constants.py and
 * src/llama-arch.cpp). Architecture-scoped keys are functions of the architecture name.
 */

export const GENERAL = {
  architecture: "general.architecture",
  quantizationVersion: "general.quantization_version",
  alignment: "general.alignment",
  fileType: "general.file_type",
  name: "general.name",
  author: "general.author",
  version: "general.version",
  organization: "general.organization",
  basename: "general.basename",
  finetune: "general.finetune",
  description: "general.description",
  quantizedBy: "general.quantized_by",
  sizeLabel: "general.size_label",
  license: "general.license",
  licenseName: "general.license.name",
  licenseLink: "general.license.link",
  url: "general.url",
  doi: "general.doi",
  uuid: "general.uuid",
  repoUrl: "general.repo_url",
  sourceUrl: "general.source.url",
  sourceRepoUrl: "general.source.repo_url",
  tags: "general.tags",
  languages: "general.languages",
  datasets: "general.datasets",
  type: "general.type",
} as const;

/** Architecture-scoped hyperparameter keys, e.g. arch("llama").contextLength = "llama.context_length". */
export function archKeys(arch: string) {
  return {
    vocabSize: `${arch}.vocab_size`,
    contextLength: `${arch}.context_length`,
    embeddingLength: `${arch}.embedding_length`,
    blockCount: `${arch}.block_count`,
    feedForwardLength: `${arch}.feed_forward_length`,
    headCount: `${arch}.attention.head_count`,
    headCountKv: `${arch}.attention.head_count_kv`,
    keyLength: `${arch}.attention.key_length`,
    valueLength: `${arch}.attention.value_length`,
    layerNormRmsEps: `${arch}.attention.layer_norm_rms_epsilon`,
    layerNormEps: `${arch}.attention.layer_norm_epsilon`,
    ropeDimensionCount: `${arch}.rope.dimension_count`,
    ropeFreqBase: `${arch}.rope.freq_base`,
    ropeScalingType: `${arch}.rope.scaling.type`,
    ropeScalingFactor: `${arch}.rope.scaling.factor`,
    ropeScalingOrigCtx: `${arch}.rope.scaling.original_context_length`,
    expertCount: `${arch}.expert_count`,
    expertUsedCount: `${arch}.expert_used_count`,
  } as const;
}

export const TOKENIZER = {
  model: "tokenizer.ggml.model",
  pre: "tokenizer.ggml.pre",
  tokens: "tokenizer.ggml.tokens",
  scores: "tokenizer.ggml.scores",
  tokenType: "tokenizer.ggml.token_type",
  merges: "tokenizer.ggml.merges",
  bosId: "tokenizer.ggml.bos_token_id",
  eosId: "tokenizer.ggml.eos_token_id",
  eotId: "tokenizer.ggml.eot_token_id",
  eomId: "tokenizer.ggml.eom_token_id",
  unkId: "tokenizer.ggml.unknown_token_id",
  sepId: "tokenizer.ggml.seperator_token_id", // NOTE: misspelled in llama.cpp itself; keep it
  padId: "tokenizer.ggml.padding_token_id",
  maskId: "tokenizer.ggml.mask_token_id",
  addBos: "tokenizer.ggml.add_bos_token",
  addEos: "tokenizer.ggml.add_eos_token",
  addSpacePrefix: "tokenizer.ggml.add_space_prefix",
  chatTemplate: "tokenizer.chat_template",
} as const;

/** llama.cpp token types (tokenizer.ggml.token_type values, enum llama_token_type). */
export const TokenType = {
  UNDEFINED: 0,
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** Tensor names of the llama family (llama.cpp LLM_TENSOR_NAMES). `blk(i)` names per-layer tensors. */
export const TENSOR = {
  tokenEmbd: "token_embd.weight",
  outputNorm: "output_norm.weight",
  output: "output.weight",
  ropeFreqs: "rope_freqs.weight",
  blk: (i: number) => ({
    attnNorm: `blk.${i}.attn_norm.weight`,
    attnQ: `blk.${i}.attn_q.weight`,
    attnK: `blk.${i}.attn_k.weight`,
    attnV: `blk.${i}.attn_v.weight`,
    attnOutput: `blk.${i}.attn_output.weight`,
    attnQBias: `blk.${i}.attn_q.bias`,
    attnKBias: `blk.${i}.attn_k.bias`,
    attnVBias: `blk.${i}.attn_v.bias`,
    attnQNorm: `blk.${i}.attn_q_norm.weight`,
    attnKNorm: `blk.${i}.attn_k_norm.weight`,
    ffnNorm: `blk.${i}.ffn_norm.weight`,
    ffnGate: `blk.${i}.ffn_gate.weight`,
    ffnDown: `blk.${i}.ffn_down.weight`,
    ffnUp: `blk.${i}.ffn_up.weight`,
    ffnGateInp: `blk.${i}.ffn_gate_inp.weight`,
    ffnGateExps: `blk.${i}.ffn_gate_exps.weight`,
    ffnDownExps: `blk.${i}.ffn_down_exps.weight`,
    ffnUpExps: `blk.${i}.ffn_up_exps.weight`,
  }),
} as const;

/** llama.cpp's enum llama_ftype (general.file_type), for display. */
export const FILE_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  19: "IQ2_XXS",
  20: "IQ2_XS",
  21: "Q2_K_S",
  22: "IQ3_XS",
  23: "IQ3_XXS",
  24: "IQ1_S",
  25: "IQ4_NL",
  26: "IQ3_S",
  27: "IQ3_M",
  28: "IQ2_S",
  29: "IQ2_M",
  30: "IQ4_XS",
  31: "IQ1_M",
  32: "BF16",
  36: "TQ1_0",
  37: "TQ2_0",
  38: "MXFP4_MOE",
  39: "NVFP4",
  40: "Q1_0",
  41: "Q2_0",
};
