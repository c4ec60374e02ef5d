/**
 * The tokenizer facade: text -> token ids and back, for any vocabulary, with llama.cpp's semantics
 * (src/llama-vocab.cpp): encode is llama_vocab::impl::tokenize (special-token split, the SPM space
 * prefix, BOS/EOS/SEP), decode is llama_vocab::impl::detokenize (token_to_piece with lstrip and
 * unparse_special, BPE/WPM clean_spaces), and StreamingDecoder turns ids into text one at a time
 * without ever emitting half a UTF-8 character.
 *
 * The model-specific work is a ModelCodec per tokenizer.ggml.model: "llama" -> spm.ts; other
 * models come from the codec registry (registerCodec).
 * Not here: reading vocabularies (vocab.ts), chat templates.
 */

import type { GgufMetadata } from "../formats/gguf/index.ts";
import { OwlError } from "../util/errors.ts";
import { createBpeCodec } from "./bpe.ts";
import { type Fragment, SpecialSplitter } from "./special-split.ts";
import { createSpmCodec } from "./spm.ts";
import {
  type DecodeOptions,
  type EncodeOptions,
  type ModelCodec,
  TokenAttr,
  type TokenizerModelName,
  type Vocab,
} from "./types.ts";
import { vocabFromGguf, vocabFromGgufFile } from "./vocab.ts";
import { createWpmCodec } from "./wpm.ts";

export type CodecFactory = (vocab: Vocab) => ModelCodec;

const codecFactories = new Map<TokenizerModelName, CodecFactory>([
  ["llama", createSpmCodec],
  ["gpt2", (v) => createBpeCodec(v)],
  ["bert", (v) => createWpmCodec(v)],
]);

/** Make `factory` the codec of every vocabulary whose tokenizer.ggml.model is `model`. */
export function registerCodec(model: TokenizerModelName, factory: CodecFactory): void {
  codecFactories.set(model, factory);
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();
/** Invalid bytes become U+FFFD; a leading U+FEFF is text like any other (TextDecoder drops it by default). */
const utf8Decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const ESCAPED_SPACE = "\u2581";
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const ATTR_SPECIAL = TokenAttr.UNKNOWN | TokenAttr.CONTROL;

/**
 * A JS string can hold unpaired surrogates, which have no UTF-8 form; llama.cpp never sees them
 * (its input is bytes). They become U+FFFD, as TextEncoder would encode them.
 */
function wellFormed(text: string): string {
  // A plain loop: a regex with lookbehind over 10 MB of two-byte text costs ten times more.
  for (let i = 0, n = text.length; i < n; i++) {
    const c = text.charCodeAt(i);
    if ((c & 0xf800) !== 0xd800) continue;
    if (c <= 0xdbff && i + 1 < n && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++;
    else return text.replace(LONE_SURROGATE, "\uFFFD");
  }
  return text;
}

export interface PieceOptions {
  /** Render control and unknown tokens as their text (llama.cpp's `special`). Default true. */
  renderSpecial?: boolean;
  /** Drop up to this many leading spaces of the piece (llama.cpp's `lstrip`). Default 0. */
  lstrip?: number;
}

export class Tokenizer {
  readonly vocab: Vocab;
  private codecInstance: ModelCodec | undefined;
  private readonly splitters: [SpecialSplitter | undefined, SpecialSplitter | undefined] = [
    undefined,
    undefined,
  ];
  /** token_to_piece(special = true) bytes, filled on first use (llama.cpp's cache_token_to_piece). */
  private readonly pieces: (Uint8Array | undefined)[];

  constructor(vocab: Vocab) {
    this.vocab = vocab;
    this.pieces = new Array(vocab.tokens.length);
  }

  static fromGguf(md: GgufMetadata, where?: string): Tokenizer {
    return new Tokenizer(vocabFromGguf(md, where));
  }

  static fromGgufFile(path: string): Tokenizer {
    return new Tokenizer(vocabFromGgufFile(path));
  }

  /** Number of tokens (n_vocab). */
  get size(): number {
    return this.vocab.tokens.length;
  }

  private get codec(): ModelCodec {
    if (this.codecInstance) return this.codecInstance;
    const factory = codecFactories.get(this.vocab.model);
    if (!factory) {
      throw new OwlError(
        "ERR_UNSUPPORTED_TOKENIZER",
        `owl cannot encode or decode with a "${this.vocab.model}" vocabulary yet`,
        { details: { model: this.vocab.model } },
      );
    }
    this.codecInstance = factory(this.vocab);
    return this.codecInstance;
  }

  private splitter(parseSpecial: boolean): SpecialSplitter {
    const k = parseSpecial ? 1 : 0;
    let s = this.splitters[k];
    if (!s) {
      s = new SpecialSplitter(this.vocab, parseSpecial);
      this.splitters[k] = s;
    }
    return s;
  }

  private required(id: number | undefined, what: string, flag: string): number {
    if (id === undefined) {
      throw new OwlError(
        "ERR_TOKENIZER_BAD_METADATA",
        `the vocabulary asks for ${what} (${flag}) but has no ${what} token`,
        { hint: "pass addSpecial: false (--no-bos), or fix the GGUF's tokenizer metadata" },
      );
    }
    return id;
  }

  /** Split text at special tokens (llama.cpp's tokenizer_st_partition), for inspection and tests. */
  partition(text: string, parseSpecial = false): Fragment[] {
    return this.splitter(parseSpecial).split(wellFormed(text));
  }

  /** Text -> token ids, as llama_vocab::impl::tokenize(text, add_special, parse_special). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const addSpecial = options.addSpecial ?? true;
    const parseSpecial = options.parseSpecial ?? false;
    const v = this.vocab;
    if (v.model === "none") {
      throw new OwlError(
        "ERR_UNSUPPORTED_TOKENIZER",
        "this model has no vocabulary (tokenizer.ggml.model = none)",
      );
    }
    const codec = this.codec;
    const fragments = text.length === 0 ? [] : this.splitter(parseSpecial).split(wellFormed(text));
    const out: number[] = [];
    switch (v.model) {
      case "llama": {
        // An empty text gives [] (or [BOS]), like SentencePiece: encode('') == [].
        if (addSpecial && v.addBos) out.push(this.required(v.bos, "BOS", "add_bos_token"));
        // The space prefix goes before the first text and after every special token.
        let prevSpecial = true;
        for (const f of fragments) {
          if (typeof f === "number") {
            out.push(f);
            prevSpecial = true;
          } else {
            codec.encodeFragment(v.addSpacePrefix && prevSpecial ? ` ${f}` : f, out);
            prevSpecial = false;
          }
        }
        if (addSpecial && v.addEos) out.push(this.required(v.eos, "EOS", "add_eos_token"));
        break;
      }
      case "bert": {
        // NOTE: llama.cpp's WPM path adds [CLS] (bos) and [SEP] whenever add_special is set,
        // whatever add_bos_token / add_sep_token say.
        if (addSpecial) out.push(this.required(v.bos, "BOS ([CLS])", "add_special"));
        for (const f of fragments) {
          if (typeof f === "number") out.push(f);
          else codec.encodeFragment(f, out);
        }
        if (addSpecial) out.push(this.required(v.sep, "SEP", "add_special"));
        break;
      }
      default: {
        // BPE (and anything registered later): BOS/EOS per the vocabulary's flags.
        if (addSpecial && v.addBos) out.push(this.required(v.bos, "BOS", "add_bos_token"));
        const escapeSpaces = v.escapeWhitespaces === true;
        for (const f of fragments) {
          if (typeof f === "number") out.push(f);
          else codec.encodeFragment(escapeSpaces ? f.replaceAll(" ", ESCAPED_SPACE) : f, out);
        }
        if (addSpecial && v.addEos) out.push(this.required(v.eos, "EOS", "add_eos_token"));
        break;
      }
    }
    return out;
  }

  private checkId(id: number): void {
    if (!(Number.isInteger(id) && id >= 0 && id < this.vocab.tokens.length)) {
      throw new OwlError(
        "ERR_TOKEN_OUT_OF_RANGE",
        `token id ${id} is out of range: the vocabulary has ${this.vocab.tokens.length} tokens (0..${this.vocab.tokens.length - 1})`,
        { details: { id, nVocab: this.vocab.tokens.length } },
      );
    }
  }

  /**
   * The bytes of one token, as llama_vocab::impl::token_to_piece: control and unknown tokens give
   * their text when renderSpecial (else nothing), user-defined tokens their text, normal and byte
   * tokens what the model codec says, other types nothing.
   */
  pieceBytes(id: number, renderSpecial = true): Uint8Array {
    this.checkId(id);
    const attr = this.vocab.attrs[id]!;
    if (!renderSpecial && (attr & ATTR_SPECIAL) !== 0) return EMPTY;
    const cached = this.pieces[id];
    if (cached) return cached;
    let bytes: Uint8Array = EMPTY;
    if (this.vocab.model !== "none") {
      if ((attr & (ATTR_SPECIAL | TokenAttr.USER_DEFINED)) !== 0) bytes = utf8.encode(this.vocab.tokens[id]!);
      else if ((attr & (TokenAttr.NORMAL | TokenAttr.BYTE)) !== 0) bytes = this.codec.pieceBytes(id);
    }
    this.pieces[id] = bytes;
    return bytes;
  }

  /** One token as text (a lone byte of a multi-byte character shows as U+FFFD). */
  tokenToPiece(id: number, options: PieceOptions = {}): string {
    let b = this.pieceBytes(id, options.renderSpecial ?? true);
    for (let i = 0, n = options.lstrip ?? 0; i < n && b.length > 0 && b[0] === 0x20; i++) b = b.subarray(1);
    return utf8Decoder.decode(b);
  }

  /** Token ids -> text, as llama_vocab::impl::detokenize(tokens, remove_special, unparse_special). */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const v = this.vocab;
    if (v.model === "none") return "";
    const removeSpecial = options.removeSpecial ?? false;
    const renderSpecial = options.renderSpecial ?? true;
    let start = 0;
    let end = ids.length;
    // llama.cpp removes one leading space of the first piece (the SPM space prefix) ...
    let removeSpace = v.addSpacePrefix;
    // ... except when it drops a leading BOS: then the text after it keeps its space.
    if (removeSpecial && v.addBos && end > 0 && ids[0] === v.bos) {
      removeSpace = false;
      start = 1;
    }
    if (removeSpecial && v.addEos && end > start && ids[end - 1] === v.eos) end--;

    // Two passes over the (cached) pieces: sizes, then bytes; no per-token allocation.
    let total = 0;
    for (let i = start; i < end; i++) total += this.pieceBytes(ids[i]!, renderSpecial).length;
    let text: Uint8Array = new Uint8Array(total);
    let o = 0;
    for (let i = start; i < end; i++) {
      const b = this.pieceBytes(ids[i]!, renderSpecial);
      let k = 0;
      if (removeSpace && b.length > 0 && b[0] === 0x20) k = 1;
      removeSpace = false;
      if (b.length - k > 16) {
        text.set(k === 0 ? b : b.subarray(k), o);
        o += b.length - k;
      } else for (; k < b.length; k++) text[o++] = b[k]!;
    }
    text = text.subarray(0, o);
    if (v.cleanSpaces) text = cleanSpaces(text);
    return utf8Decoder.decode(text);
  }

  /** Whether the id ends generation (EOS, EOT, EOM and the <|im_end|>-like tokens). */
  isEog(id: number): boolean {
    return this.vocab.eog.has(id);
  }

  /** Whether the id is a control token (BOS, EOS, <|im_start|>, ...). */
  isControl(id: number): boolean {
    return ((this.vocab.attrs[id] ?? 0) & TokenAttr.CONTROL) !== 0;
  }

  /** A decoder for ids that arrive one at a time (generation). */
  streamingDecoder(options: { renderSpecial?: boolean } = {}): StreamingDecoder {
    return new StreamingDecoder(this, options);
  }
}

/** Build a Tokenizer for a vocabulary. */
export function createTokenizer(vocab: Vocab): Tokenizer {
  return new Tokenizer(vocab);
}

/**
 * llama.cpp's clean_up_tokenization_spaces passes (the end of detokenize), byte for byte: drop the
 * space before ? ! . , ; turn " ' " into "'"; drop the space before 's 'm 're 've. In place.
 */
function cleanSpaces(text: Uint8Array): Uint8Array {
  const SP = 0x20;
  const AP = 0x27;
  let total = text.length;
  // first pass: " ?", " !", " .", " ,"
  const total1 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total1; i++) {
    const x = text[i]!;
    if (text[i - 1] === SP && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c)) total--;
    text[total++] = x;
  }
  // second pass: strip a single apostrophe between spaces
  const total2 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total2; i++) {
    const x = text[i]!;
    if (x === AP && i + 1 < total2 && text[i - 1] === SP && text[i + 1] === SP) {
      total--;
      // NOTE: llama.cpp overwrites the next space with NUL and skips it; the NUL stays visible to
      // the next iteration's text[i - 1] test, so it is kept here too.
      text[++i] = 0;
    }
    text[total++] = x;
  }
  // third pass: apostrophe contractions " 's", " 'm", " 're", " 've" lose their space
  const total3 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total3; i++) {
    const x = text[i]!;
    if (text[i - 1] === SP && x === AP && i + 1 < total3) {
      const x1 = text[i + 1]!;
      if (x1 === 0x73 || x1 === 0x6d) total--;
      else if (x1 !== 0x74 && x1 !== 0x64 && i + 2 < total3) {
        const x2 = text[i + 2]!;
        if ((x1 === 0x72 && x2 === 0x65) || (x1 === 0x76 && x2 === 0x65)) total--;
      }
    }
    text[total++] = x;
  }
  return text.subarray(0, total);
}

/**
 * Incremental detokenizer: push(id) returns the text that is complete so far, holding back the
 * bytes of a UTF-8 character split over byte tokens until it is whole; flush() ends the stream
 * (left-over incomplete bytes become U+FFFD). Pieces are llama.cpp's token_to_piece (no leading-
 * space removal, no clean_spaces), as llama.cpp's server and CLI stream them.
 */
export class StreamingDecoder {
  private readonly tokenizer: Tokenizer;
  private readonly renderSpecial: boolean;
  private decoder = new TextDecoder("utf-8", { ignoreBOM: true });

  constructor(tokenizer: Tokenizer, options: { renderSpecial?: boolean } = {}) {
    this.tokenizer = tokenizer;
    this.renderSpecial = options.renderSpecial ?? true;
  }

  push(id: number): string {
    return this.decoder.decode(this.tokenizer.pieceBytes(id, this.renderSpecial), { stream: true });
  }

  flush(): string {
    const rest = this.decoder.decode();
    this.decoder = new TextDecoder("utf-8", { ignoreBOM: true });
    return rest;
  }
}
