/**
 * llama2.c checkpoint and tokenizer readers, against the stories260K fixture (header values from
 * the fixture README and run.c's reference outputs) and synthetic v1/v2 files built by hand.
 */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { readLlama2c } from "../src/formats/llama2c/checkpoint.ts";
import { readLlama2cTokenizer } from "../src/formats/llama2c/tokenizer.ts";
import { MemorySource } from "../src/util/bytes.ts";
import { isOwlError } from "../src/util/errors.ts";
import { fixturePath, missing } from "./helpers/fixtures.ts";

const MODEL = "llama2c/stories260K.bin";
const TOK = "llama2c/tok512.bin";
const have = fixturePath(MODEL) !== undefined && fixturePath(TOK) !== undefined;

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isOwlError(e)) return e.code;
    throw e;
  }
  return "no error";
}

describe.skipIf(!have)(`llama2.c readers on stories260K ${have ? "" : missing(MODEL)}`, () => {
  const bytes = have ? new Uint8Array(readFileSync(fixturePath(MODEL)!)) : new Uint8Array();
  const tokBytes = have ? new Uint8Array(readFileSync(fixturePath(TOK)!)) : new Uint8Array();

  it("reads the v0 header of stories260K (values from the fixture README)", () => {
    const m = readLlama2c(new MemorySource(bytes, "stories260K.bin"));
    expect(m.version).toBe(0);
    expect(m.config).toEqual({
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      vocabSize: 512,
      seqLen: 512,
      sharedClassifier: true,
    });
    // 1 embedding + 9 tensors x 5 layers + final norm; no wcls (shared classifier).
    expect(m.tensors.length).toBe(1 + 9 * 5 + 1);
    // Sum of parameters: 260,032 trained parameters (README), freq_cis excluded.
    const params = m.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    expect(params).toBe(260032);
    // The first embedding values are the first floats after the 28-byte header.
    const emb = m.tensors.find((t) => t.name === "token_embedding")!.read();
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    expect(emb[0]).toBe(dv.getFloat32(28, true));
    expect(emb[64 * 512 - 1]).toBe(dv.getFloat32(28 + 4 * (64 * 512 - 1), true));
  });

  it("reads tok512.bin: 512 tokens, max length 7, BOS/EOS pieces, byte tokens, merge scores", () => {
    const v = readLlama2cTokenizer(new MemorySource(tokBytes, "tok512.bin"), 512);
    expect(v.maxTokenLength).toBe(7);
    expect(v.pieces.length).toBe(512);
    expect(v.pieces[0]).toBe("<unk>");
    expect(v.pieces[1]).toBe("\n<s>\n");
    expect(v.pieces[2]).toBe("\n</s>\n");
    expect(v.pieces[3]).toBe("<0x00>");
    expect(v.pieces[258]).toBe("<0xFF>");
    // README: ids 259..511 are merges with score = -rank.
    expect(v.scores[259]).toBe(-0);
    expect(v.scores[511]).toBe(-252);
    // run.c reference: token 403 is " Once".
    expect(v.pieces[403]).toBe(" Once");
    // With no count, reading to the end of the file gives the same 512 entries.
    expect(readLlama2cTokenizer(new MemorySource(tokBytes)).pieces).toEqual(v.pieces);
  });

  it("rejects truncated, padded or foreign files with specific codes", () => {
    expect(codeOf(() => readLlama2c(new MemorySource(bytes.subarray(0, bytes.length - 4))))).toBe(
      "ERR_LLAMA2C_SIZE_MISMATCH",
    );
    const padded = new Uint8Array(bytes.length + 1);
    padded.set(bytes);
    expect(codeOf(() => readLlama2c(new MemorySource(padded)))).toBe("ERR_LLAMA2C_SIZE_MISMATCH");
    expect(codeOf(() => readLlama2c(new MemorySource(new Uint8Array(10))))).toBe("ERR_LLAMA2C_BAD_HEADER");
    expect(codeOf(() => readLlama2c(new MemorySource(new TextEncoder().encode("GGUF".repeat(20)))))).toBe(
      "ERR_LLAMA2C_BAD_HEADER",
    );
    const badHeads = bytes.slice();
    new DataView(badHeads.buffer).setInt32(12, 7, true); // n_heads = 7 does not divide dim 64
    expect(codeOf(() => readLlama2c(new MemorySource(badHeads)))).toBe("ERR_LLAMA2C_BAD_HEADER");
    expect(codeOf(() => readLlama2cTokenizer(new MemorySource(tokBytes), 513))).toBe(
      "ERR_LLAMA2C_BAD_TOKENIZER",
    );
    expect(codeOf(() => readLlama2cTokenizer(new MemorySource(tokBytes), 500))).toBe(
      "ERR_LLAMA2C_BAD_TOKENIZER",
    );
    expect(codeOf(() => readLlama2cTokenizer(new MemorySource(tokBytes.subarray(0, 100)), 512))).toBe(
      "ERR_LLAMA2C_BAD_TOKENIZER",
    );
    const huge = tokBytes.slice();
    new DataView(huge.buffer).setInt32(8, 0x7fffffff, true); // first token claims 2 GB
    expect(codeOf(() => readLlama2cTokenizer(new MemorySource(huge), 512))).toBe("ERR_LLAMA2C_BAD_TOKENIZER");
    const badUtf8 = tokBytes.slice();
    badUtf8[12] = 0xff; // inside the "<unk>" piece
    expect(codeOf(() => readLlama2cTokenizer(new MemorySource(badUtf8), 512))).toBe("ERR_INVALID_UTF8");
  });

  // Build v1 and v2 files from the v0 weights following llama2.c export.py's layouts, and check
  // every tensor reads back the same (exactly for v1; within the Q8 group error for v2).
  it("reads the same weights from v1 and v2 layouts written per export.py", () => {
    const v0 = readLlama2c(new MemorySource(bytes));
    const c = v0.config;
    const get = (name: string, layer?: number) =>
      v0.tensors.find((t) => t.name === name && t.layer === layer)!.read();
    const layers = (name: string) => Array.from({ length: c.nLayers }, (_, l) => get(name, l));
    const header = (version: number, groupSize?: number) => {
      const h = new Uint8Array(256);
      const dv = new DataView(h.buffer);
      dv.setUint32(0, 0x616b3432, true);
      dv.setInt32(4, version, true);
      const params = [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen];
      for (let i = 0; i < 7; i++) dv.setInt32(8 + 4 * i, params[i]!, true);
      h[36] = 1; // shared classifier
      if (groupSize !== undefined) dv.setInt32(37, groupSize, true);
      return h;
    };
    const cat = (parts: Uint8Array[]) => {
      const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.length;
      }
      return out;
    };
    const f32b = (a: Float32Array) =>
      new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
    const norms = [...layers("rms_att"), ...layers("rms_ffn"), get("rms_final")];
    const big = [
      get("token_embedding"),
      ...["wq", "wk", "wv", "wo", "w1", "w2", "w3"].flatMap((n) => layers(n)),
    ];
    const v1 = readLlama2c(new MemorySource(cat([header(1), ...norms.map(f32b), ...big.map(f32b)])));
    expect(v1.version).toBe(1);
    expect(v1.config).toEqual(c);
    for (const t of v0.tensors) {
      const u = v1.tensors.find((x) => x.name === t.name && x.layer === t.layer)!;
      expect(u.shape).toEqual(t.shape);
      expect(u.read()).toEqual(t.read());
    }
    // v2: symmetric int8 per group of 4 (64 % 4 == 0, 172 % 4 == 0), scales after all the ints.
    const gs = 4;
    const qs: Uint8Array[] = [];
    const ss: Uint8Array[] = [];
    for (const w of big) {
      const q = new Int8Array(w.length);
      const s = new Float32Array(w.length / gs);
      for (let g = 0; g < s.length; g++) {
        let max = 0;
        for (let j = 0; j < gs; j++) max = Math.max(max, Math.abs(w[g * gs + j]!));
        s[g] = max / 127;
        for (let j = 0; j < gs; j++) q[g * gs + j] = s[g] ? Math.round(w[g * gs + j]! / s[g]!) : 0;
      }
      qs.push(new Uint8Array(q.buffer));
      ss.push(f32b(s));
    }
    const v2 = readLlama2c(new MemorySource(cat([header(2, gs), ...norms.map(f32b), ...qs, ...ss])));
    expect(v2.version).toBe(2);
    expect(v2.groupSize).toBe(gs);
    for (const t of v0.tensors) {
      const a = t.read();
      const b = v2.tensors.find((x) => x.name === t.name && x.layer === t.layer)!.read();
      let maxErr = 0;
      let maxAbs = 0;
      for (let i = 0; i < a.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(a[i]! - b[i]!));
        maxAbs = Math.max(maxAbs, Math.abs(a[i]!));
      }
      expect(maxErr).toBeLessThanOrEqual((maxAbs / 127) * 0.5 + 1e-7);
    }
  });
});
