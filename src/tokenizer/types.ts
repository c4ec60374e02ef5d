/**
 * The tokenizer data model: a vocabulary (loaded from GGUF metadata or a Hugging Face
 * tokenizer.json) and the per-model codecs that turn a fragment of plain text into ids and an id
 * back into bytes. This file is the contract between vocab.ts, the tokenizer facade
 * (tokenizer.ts: special-token splitting, BOS/EOS, decoding) and the model files (spm.ts, bpe.ts,
 * wpm.ts). Behaviour follows llama.cpp's src/llama-vocab.cpp.
 */

/** tokenizer.ggml.model values owl understands. */
export type TokenizerModelName = "llama" | "gpt2" | "bert" | "t5" | "none";

/** llama.cpp token attributes (enum llama_token_attr), derived from the GGUF token types. */
export const TokenAttr = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
  NORMALIZED: 1 << 6,
  LSTRIP: 1 << 7,
  RSTRIP: 1 << 8,
  SINGLE_WORD: 1 << 9,
} as const;

export interface Vocab {
  model: TokenizerModelName;
  /** tokenizer.ggml.pre (BPE pre-tokenizer name, e.g. "llama-bpe", "qwen2"), "default" when absent. */
  pre: string;
  /** Token text by id, exactly as stored (SPM uses "▁" for spaces; byte-level BPE its unicode map). */
  tokens: string[];
  /** SPM scores (merge priority); zeros when the vocabulary has none. */
  scores: Float32Array;
  /** TokenAttr bit set per id. */
  attrs: Uint32Array;
  /** Token text -> id (for duplicates, the last id, as llama.cpp). */
  tokenToId: Map<string, number>;
  /** BPE merges "a b" in rank order (index = rank); empty for other models. */
  merges: string[];
  /** Special token ids; undefined when the vocabulary has none. */
  bos: number | undefined;
  eos: number | undefined;
  eot: number | undefined;
  eom: number | undefined;
  unk: number | undefined;
  sep: number | undefined;
  pad: number | undefined;
  mask: number | undefined;
  /** End-of-generation ids (eos, eot, eom and the usual <|im_end|>-style tokens). */
  eog: Set<number>;
  addBos: boolean;
  addEos: boolean;
  addSep: boolean;
  addSpacePrefix: boolean;
  /** SPM: collapse runs of whitespace (tokenizer.ggml.remove_extra_whitespaces). */
  removeExtraWhitespaces: boolean;
  /** Detokenizer: clean_up_tokenization_spaces. */
  cleanSpaces: boolean;
  /** tokenizer.chat_template, when present. */
  chatTemplate: string | undefined;
  // Optional extras (absent means the llama.cpp default named in each comment).
  /** BPE: a pre-tokenized word that is itself a token is emitted whole (llama.cpp ignore_merges: llama3, tekken, ...). Default false. */
  ignoreMerges?: boolean;
  /** Tokens spell spaces as "▁" (llama.cpp escape_whitespaces). Default: true for SPM, false for BPE. */
  escapeWhitespaces?: boolean;
  /** WPM normalizer (tokenizer.ggml.normalizer.lowercase / strip_accents). Default true. */
  lowercase?: boolean;
  stripAccents?: boolean;
  /** Fill-in-the-middle token ids, when the vocabulary has them. */
  fimPre?: number;
  fimSuf?: number;
  fimMid?: number;
  fimPad?: number;
  fimRep?: number;
  fimSep?: number;
  /** What llama.cpp would log as a warning while loading (a bad special id it ignored, ...). */
  warnings?: string[];
}

/**
 * One tokenizer model's codec. `encodeFragment` sees plain text only: special tokens have been
 * split out before, and BOS/EOS are added by the facade.
 */
export interface ModelCodec {
  encodeFragment(text: string, out: number[]): void;
  /** The bytes a token stands for when decoding (UTF-8 of its text, or the raw byte of a byte token). */
  pieceBytes(id: number): Uint8Array;
}

export interface EncodeOptions {
  /** Add BOS/EOS (and SEP) as the vocabulary says (llama.cpp's add_special). Default true. */
  addSpecial?: boolean;
  /** Recognize control/user-defined token text in the input (llama.cpp's parse_special). Default false. */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /**
   * llama.cpp's remove_special: drop a leading BOS when the vocabulary adds BOS and a trailing EOS
   * when it adds EOS (what encode's addSpecial put there). Other control tokens stay; use
   * renderSpecial: false to hide them all. Default false.
   */
  removeSpecial?: boolean;
  /** llama.cpp's unparse_special: render control and unknown tokens as their text (e.g. "<s>"), else as nothing. Default true. */
  renderSpecial?: boolean;
}
