/**
 * Reader for llama2.c tokenizer files (tokenizer.bin, tok512.bin; written by llama2.c's
 * tokenizer.py). Layout, little-endian:
 *   i32 max_token_length | n x { f32 score | i32 len | len bytes of UTF-8 (no NUL) }
 * n is not stored: it is the model's vocab_size. The SentencePiece "▁" (U+2581) has been
 * replaced by a plain space, BOS is "\n<s>\n" and EOS "\n</s>\n"; byte tokens keep "<0xAB>".
 * Not here: encoding text (src/tokenizer), GGUF metadata (tools/convert.ts).
 */
import type { ByteSource } from "../../util/bytes.ts";
import { OwlError } from "../../util/errors.ts";

export interface Llama2cVocab {
  maxTokenLength: number;
  /** Pieces exactly as stored (spaces, not "▁"). */
  pieces: string[];
  scores: Float32Array;
}

const MAX_PIECE = 1 << 16;

/**
 * Read `nVocab` entries (the file must hold exactly that many), or, with no count, every entry
 * up to the end of the file.
 */
export function readLlama2cTokenizer(src: ByteSource, nVocab?: number): Llama2cVocab {
  const bad = (message: string, details?: Record<string, unknown>): never => {
    throw new OwlError("ERR_LLAMA2C_BAD_TOKENIZER", `${src.name}: ${message}`, {
      ...(details ? { details } : {}),
      hint: "expected a llama2.c tokenizer (.bin from tokenizer.py) matching the model's vocab_size",
    });
  };
  if (src.size < 4) bad(`file has ${src.size} bytes, fewer than the 4-byte header`);
  // Each entry takes at least 8 bytes, so a vocabulary larger than the file allows is impossible.
  const capacity = Math.floor((src.size - 4) / 8);
  if (nVocab !== undefined && nVocab > capacity) {
    bad(`the model has ${nVocab} tokens but the file (${src.size} bytes) can hold at most ${capacity}`);
  }
  const bytes = src.read(0, src.size);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const maxTokenLength = dv.getInt32(0, true);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const pieces: string[] = [];
  const scoreList: number[] = [];
  let p = 4;
  for (let i = 0; nVocab === undefined ? p < bytes.byteLength : i < nVocab; i++) {
    if (p + 8 > bytes.byteLength) bad(`file ends at byte ${bytes.byteLength} in the header of token ${i}`);
    scoreList.push(dv.getFloat32(p, true));
    const len = dv.getInt32(p + 4, true);
    p += 8;
    if (len < 0 || len > MAX_PIECE || p + len > bytes.byteLength) {
      bad(`token ${i} claims ${len} bytes at offset ${p - 4}, but only ${bytes.byteLength - p} remain`, {
        token: i,
        len,
      });
    }
    try {
      pieces.push(decoder.decode(bytes.subarray(p, p + len)));
    } catch (e) {
      throw new OwlError("ERR_INVALID_UTF8", `${src.name}: token ${i} at byte ${p} is not valid UTF-8`, {
        cause: e,
      });
    }
    p += len;
  }
  if (p !== bytes.byteLength) {
    bad(
      `${bytes.byteLength - p} bytes remain after ${nVocab} tokens (the tokenizer does not match this model's vocab_size?)`,
    );
  }
  return { maxTokenLength, pieces, scores: Float32Array.from(scoreList) };
}
