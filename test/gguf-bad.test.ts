/**
 * Malformed GGUF input: each defect gets an OwlError with a specific code and a message that
 * says what was expected, what was found and where. The files are laid out byte by byte here
 * (a tiny builder, no owl code), plus truncation of a generated file and of a fixture at many
 * cut points. Not here: random mutations (gguf-fuzz).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { garr, gstr, readGguf, serializeGguf } from "../src/formats/gguf/index.ts";
import { MemorySource } from "../src/util/bytes.ts";
import { isOwlError, type OwlErrorCode } from "../src/util/errors.ts";
import { ggmlTypeByName } from "../src/util/ggml-types.ts";
import { fixturePath } from "./helpers/fixtures.ts";

/** A little-endian byte builder. */
class B {
  private a: number[] = [];
  get length() {
    return this.a.length;
  }
  u8(...v: number[]) {
    this.a.push(...v);
    return this;
  }
  u32(v: number) {
    for (let i = 0; i < 4; i++) this.a.push((v >>> (8 * i)) & 0xff);
    return this;
  }
  u64(v: number | bigint) {
    const b = BigInt.asUintN(64, BigInt(v));
    for (let i = 0n; i < 8n; i++) this.a.push(Number((b >> (8n * i)) & 0xffn));
    return this;
  }
  str(s: string | number[]) {
    const bytes = typeof s === "string" ? [...new TextEncoder().encode(s)] : s;
    this.u64(bytes.length);
    this.a.push(...bytes);
    return this;
  }
  /** header: magic, version, n_tensors, n_kv */
  head(nTensors: number | bigint, nKv: number | bigint, version = 3) {
    return this.u8(0x47, 0x47, 0x55, 0x46).u32(version).u64(nTensors).u64(nKv);
  }
  /** tensor info */
  tensor(name: string | number[], dims: Array<number | bigint>, type: number, offset: number | bigint) {
    this.str(name).u32(dims.length);
    for (const d of dims) this.u64(d);
    return this.u32(type).u64(offset);
  }
  pad(to: number) {
    while (this.a.length % to !== 0) this.a.push(0);
    return this;
  }
  zeros(n: number) {
    for (let i = 0; i < n; i++) this.a.push(0);
    return this;
  }
  bytes() {
    return new Uint8Array(this.a);
  }
}

const F32 = 0;
const Q4_0 = 2;

function errorOf(bytes: Uint8Array): unknown {
  try {
    readGguf(new MemorySource(bytes, "bad.gguf"));
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectError(bytes: Uint8Array, code: OwlErrorCode, ...res: RegExp[]) {
  const e = errorOf(bytes);
  expect(isOwlError(e), `expected OwlError ${code}, got ${String(e)}`).toBe(true);
  expect((e as { code: string }).code, (e as Error).message).toBe(code);
  for (const re of res) expect((e as Error).message).toMatch(re);
  return e as Error & { details?: Record<string, unknown> };
}

describe("header", () => {
  it("wrong magic", () => {
    expectError(
      new TextEncoder().encode("GGML\x03\0\0\0"),
      "ERR_GGUF_BAD_MAGIC",
      /expected magic "GGUF"/,
      /found "GGML"/,
    );
    expectError(
      new TextEncoder().encode('{"__metadata__":{}}'),
      "ERR_GGUF_BAD_MAGIC",
      /found "\{"__" \(7b 22 5f 5f\)/,
    );
  });
  it("too short for the header", () => {
    expectError(new Uint8Array(), "ERR_TRUNCATED", /ends at byte 0/);
    expectError(new Uint8Array([0x47, 0x47]), "ERR_TRUNCATED");
    expectError(new B().head(0, 0).bytes().subarray(0, 20), "ERR_TRUNCATED", /at byte 16/, /truncated/);
  });
  it("unsupported versions", () => {
    expectError(new B().head(0, 0, 1).bytes(), "ERR_GGUF_UNSUPPORTED_VERSION", /version 1 is not supported/);
    expectError(
      new B().head(0, 0, 4).bytes(),
      "ERR_GGUF_UNSUPPORTED_VERSION",
      /version 4 at byte 4, expected 2 or 3/,
    );
    expectError(new B().head(0, 0, 0).bytes(), "ERR_GGUF_UNSUPPORTED_VERSION", /version 0/);
  });
  it("big-endian file (version bytes swapped)", () => {
    const e = expectError(
      new B().head(0, 0, 0x03000000).bytes(),
      "ERR_GGUF_UNSUPPORTED_VERSION",
      /big-endian/,
      /version 3 byte-swapped/,
    );
    expect(e.details?.bigEndian).toBe(true);
  });
  it("absurd tensor and key-value counts", () => {
    expectError(new B().head(2n ** 60n, 0).bytes(), "ERR_GGUF_BAD_COUNT", /1152921504606846976/, /at byte 8/);
    expectError(
      new B().head(0, 2n ** 60n).bytes(),
      "ERR_GGUF_BAD_COUNT",
      /1152921504606846976/,
      /at byte 16/,
    );
    expectError(new B().head(2n ** 64n - 1n, 0).bytes(), "ERR_GGUF_BAD_COUNT", /18446744073709551615/);
    // plausible-looking but more than the file can hold: 3 tensors need at least 72 bytes
    expectError(new B().head(3, 0).zeros(60).bytes(), "ERR_GGUF_BAD_COUNT", /at most 2/);
  });
});

describe("metadata", () => {
  it("absurd string lengths (key and value)", () => {
    expectError(
      new B()
        .head(0, 1)
        .u64(2n ** 60n)
        .zeros(20)
        .bytes(),
      "ERR_GGUF_BAD_STRING",
      /at byte 24 is 1152921504606846976/,
    );
    expectError(
      new B()
        .head(0, 1)
        .str("k")
        .u32(8)
        .u64(2n ** 50n)
        .zeros(20)
        .bytes(),
      "ERR_GGUF_BAD_STRING",
      /metadata "k": string length at byte 37 is 1125899906842624/,
    );
  });
  it("absurd array counts", () => {
    const arr = (itemType: number, count: number | bigint) =>
      new B().head(0, 1).str("k").u32(9).u32(itemType).u64(count).zeros(20).bytes();
    expectError(
      arr(0, 2n ** 60n),
      "ERR_GGUF_BAD_COUNT",
      /metadata "k": count at byte 41 is 1152921504606846976/,
    );
    expectError(
      arr(8, 2n ** 60n),
      "ERR_GGUF_BAD_COUNT",
      /is 1152921504606846976, more than the 67108864 owl reads/,
    );
    expectError(arr(9, 2n ** 64n - 1n), "ERR_GGUF_BAD_COUNT", /18446744073709551615/);
    // counts below owl's limits but more than the bytes left can hold
    expectError(
      arr(8, 100),
      "ERR_GGUF_BAD_COUNT",
      /is 100, but the 20 bytes left .* at most 2 \(each needs at least 8 bytes/,
    );
    expectError(arr(9, 100), "ERR_GGUF_BAD_COUNT", /at most 1 \(each needs at least 12 bytes/);
    expectError(arr(12, 100), "ERR_GGUF_BAD_COUNT", /at most 2 \(each needs at least 8 bytes/);
  });
  it("unknown value types", () => {
    const e = expectError(
      new B().head(0, 1).str("k").u32(13).zeros(8).bytes(),
      "ERR_GGUF_BAD_VALUE_TYPE",
      /metadata "k": value type 13 at byte 33 is not a GGUF type/,
    );
    expect(e.details?.offset).toBe(33);
    expectError(
      new B().head(0, 1).str("k").u32(9).u32(99).u64(0).bytes(),
      "ERR_GGUF_BAD_VALUE_TYPE",
      /value type 99 at byte 37/,
    );
  });
  it("bool other than 0 or 1", () => {
    expectError(
      new B().head(0, 1).str("k").u32(7).u8(2).bytes(),
      "ERR_GGUF_BAD_VALUE_TYPE",
      /BOOL at byte 37 is 2/,
    );
  });
  it("duplicate key", () => {
    expectError(
      new B().head(0, 2).str("k").u32(0).u8(1).str("k").u32(0).u8(2).bytes(),
      "ERR_GGUF_DUPLICATE_KEY",
      /"k" appears twice: at byte 24 and again at byte 38/,
    );
  });
  it("empty key", () => {
    expectError(
      new B().head(0, 1).str("").u32(0).u8(1).zeros(8).bytes(),
      "ERR_GGUF_BAD_STRING",
      /key 0 at byte 24 is empty/,
    );
  });
  it("invalid UTF-8 names the byte", () => {
    // key bytes start at 32; the bad byte (a lone continuation byte) is the third
    const e = expectError(
      new B().head(0, 1).str([0x61, 0x62, 0x80]).u32(0).u8(1).bytes(),
      "ERR_INVALID_UTF8",
      /metadata key 0: invalid UTF-8 at byte 34/,
    );
    expect(e.details?.offset).toBe(34);
    // overlong encoding of "/" in a value
    expectError(
      new B().head(0, 1).str("k").u32(8).str([0x41, 0xc0, 0xaf]).bytes(),
      "ERR_INVALID_UTF8",
      /at byte 46/,
    );
    // a UTF-16 surrogate encoded in UTF-8 (CESU), inside a string array, item 1
    expectError(
      new B().head(0, 1).str("k").u32(9).u32(8).u64(2).str("ok").str([0xed, 0xa0, 0x80]).bytes(),
      "ERR_INVALID_UTF8",
      /metadata "k"\[1\]: invalid UTF-8 at byte 67/,
    );
    // a string array item that starts with a continuation byte is caught too (not masked by batching)
    expectError(
      new B().head(0, 1).str("k").u32(9).u32(8).u64(2).str([0xc3]).str([0xa9]).bytes(),
      "ERR_INVALID_UTF8",
      /metadata "k"\[0\]/,
    );
  });
  it("arrays nested too deep", () => {
    const b = new B().head(0, 1).str("k").u32(9);
    for (let i = 0; i < 40; i++) b.u32(9).u64(1);
    b.u32(0).u64(0);
    expectError(b.bytes(), "ERR_GGUF_BAD_VALUE_TYPE", /nested more than 16 deep/);
  });
  it("bad general.alignment", () => {
    const al = (type: number, write: (b: B) => B) =>
      write(new B().head(0, 1).str("general.alignment").u32(type)).bytes();
    expectError(
      al(4, (b) => b.u32(48)),
      "ERR_GGUF_BAD_ALIGNMENT",
      /UINT32 power of two, found 48/,
    );
    expectError(
      al(4, (b) => b.u32(0)),
      "ERR_GGUF_BAD_ALIGNMENT",
      /found 0/,
    );
    expectError(
      al(10, (b) => b.u64(32)),
      "ERR_GGUF_BAD_ALIGNMENT",
      /found a UINT64/,
    );
  });
});

describe("tensor infos", () => {
  /** One tensor info then data; `dataBytes` of zeros after the aligned header. */
  const one = (
    name: string,
    dims: Array<number | bigint>,
    type: number,
    offset: number | bigint,
    dataBytes = 0,
  ) => new B().head(1, 0).tensor(name, dims, type, offset).pad(32).zeros(dataBytes).bytes();

  it("too many dimensions", () => {
    expectError(
      one("w", [1, 1, 1, 1, 1], F32, 0, 4),
      "ERR_GGUF_BAD_TENSOR_INFO",
      /tensor "w": n_dims at byte 33 is 5, expected 0..4/,
    );
  });
  it("a dimension beyond 2^53", () => {
    expectError(
      one("w", [2n ** 63n], F32, 0),
      "ERR_GGUF_BAD_TENSOR_INFO",
      /tensor "w": dimension 0 at byte 37 is 9223372036854775808/,
    );
  });
  it("a shape too big for any file", () => {
    expectError(one("w", [2 ** 40, 2 ** 40], F32, 0), "ERR_TENSOR_OUT_OF_BOUNDS", /more than 2\^53 bytes/);
  });
  it("unknown ggml type ids name the tensor", () => {
    expectError(
      one("blk.0.w", [32], 99, 0),
      "ERR_UNKNOWN_TENSOR_TYPE",
      /tensor "blk.0.w": unknown ggml type id 99 at byte/,
    );
    expectError(one("w", [32], 4, 0), "ERR_UNKNOWN_TENSOR_TYPE", /id 4/); // Q4_2, removed from ggml
  });
  it("row not a whole number of blocks", () => {
    expectError(
      one("w", [33, 2], Q4_0, 0),
      "ERR_TENSOR_SHAPE",
      /tensor "w" of type Q4_0 has rows of 33 values, expected a multiple of the block size 32/,
    );
  });
  it("misaligned offset", () => {
    expectError(
      one("w", [4], F32, 16, 64),
      "ERR_GGUF_MISALIGNED_TENSOR",
      /tensor "w": data offset 16 .* not a multiple of the alignment 32/,
    );
  });
  it("data past the end of the file", () => {
    // header 24 + info (8 + 19 + 4 + 8 + 4 + 8 = 51) = 75 -> data at 96; 100 f32 = 400 bytes end
    // at 496, but the file has 96 + 300 bytes
    const e = expectError(
      one("blk.3.attn_q.weight", [100], F32, 0, 300),
      "ERR_TENSOR_OUT_OF_BOUNDS",
      /tensor "blk.3.attn_q.weight" ends at byte 496 but bad.gguf has 396 bytes \(truncated download\?\)/,
    );
    expect(e.details).toMatchObject({ end: 496, size: 396 });
    expectError(
      one("w", [4], F32, 2n ** 62n),
      "ERR_TENSOR_OUT_OF_BOUNDS",
      /data offset at byte .* is 4611686018427387904/,
    );
  });
  it("overlapping tensors name both", () => {
    const b = new B()
      .head(2, 0)
      .tensor("a", [16], F32, 0)
      .tensor("b", [8], F32, 32)
      .pad(32)
      .zeros(128)
      .bytes();
    expectError(b, "ERR_TENSOR_OVERLAP", /tensor "a" \(bytes \d+\.\.\d+\) overlaps tensor "b"/);
  });
  it("duplicate tensor names", () => {
    const b = new B().head(2, 0).tensor("a", [8], F32, 0).tensor("a", [8], F32, 32).pad(32).zeros(64).bytes();
    expectError(b, "ERR_GGUF_DUPLICATE_TENSOR", /"a" appears twice/);
  });
  it("invalid UTF-8 in a tensor name", () => {
    expectError(
      one("\u00e9", [4], F32, 0, 16).map((x, i) => (i === 33 ? 0xff : x)),
      "ERR_INVALID_UTF8",
      /name of tensor 0: invalid UTF-8 at byte 32/,
    );
  });
  it("accepts what ggml accepts: zero-sized and 0-d tensors, any order, gaps", () => {
    const b = new B()
      .head(3, 0)
      .tensor("late", [8], F32, 64)
      .tensor("empty", [0, 5], F32, 0)
      .tensor("scalar", [], F32, 0)
      .pad(32)
      .zeros(96)
      .bytes();
    const g = readGguf(new MemorySource(b));
    expect(g.tensors.map((t) => [t.name, t.byteSize, t.nElements])).toEqual([
      ["late", 32, 8],
      ["empty", 0, 0],
      ["scalar", 4, 1],
    ]);
  });
});

describe("truncation", () => {
  const HEADER_CODES = ["ERR_TRUNCATED", "ERR_GGUF_BAD_COUNT", "ERR_GGUF_BAD_STRING"];

  it("a generated file cut at every byte", async () => {
    const f32 = ggmlTypeByName("F32")!;
    const bytes = await serializeGguf({
      metadata: new Map([
        ["general.architecture", gstr("llama")],
        ["tokenizer.ggml.tokens", garr.strings(["a", "bb", "ccc"])],
        ["tokenizer.ggml.scores", garr.f32([1, 2, 3])],
      ]),
      tensors: [
        { name: "a", dims: [3], type: f32, data: () => new Uint8Array(12) },
        { name: "b", dims: [5, 2], type: f32, data: () => new Uint8Array(40) },
      ],
    });
    // By hand: header 24, "general.architecture" 8+20+4+8+5 = 45, tokens 8+21+4+4+8+(9+10+11) = 75,
    // scores 8+21+4+4+8+12 = 57, infos a 8+1+4+8+4+8 = 33 and b 8+1+4+16+4+8 = 41: 275 bytes,
    // padded to 288 where the data starts.
    const headerEnd = 275;
    const g = readGguf(new MemorySource(bytes));
    expect(g.dataOffset).toBe(288);
    const last = g.tensors.at(-1)!;
    const dataEnd = last.fileOffset + last.byteSize;
    for (let cut = 0; cut < bytes.length; cut++) {
      const e = errorOf(bytes.subarray(0, cut));
      if (cut >= dataEnd) {
        expect(e, `cut at ${cut} is only padding`).toBeUndefined();
        continue;
      }
      expect(isOwlError(e), `cut at ${cut}: ${String(e)}`).toBe(true);
      const code = (e as { code: string }).code;
      if (cut >= headerEnd) expect(code, `cut at ${cut}`).toBe("ERR_TENSOR_OUT_OF_BOUNDS");
      else expect(HEADER_CODES, `cut at ${cut}: ${code}`).toContain(code);
      expect((e as Error).message, `cut at ${cut}`).toMatch(/byte/);
    }
  });

  const spm = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
  it.skipIf(!spm)("the llama-spm fixture cut at 150 points", () => {
    const bytes = new Uint8Array(readFileSync(spm!));
    for (let k = 0; k < 150; k++) {
      const cut = Math.floor((k * bytes.length) / 150) + (k % 7);
      const e = errorOf(bytes.subarray(0, cut));
      expect(isOwlError(e), `cut at ${cut}: ${String(e)}`).toBe(true);
      expect(HEADER_CODES).toContain((e as { code: string }).code);
    }
  });
});
