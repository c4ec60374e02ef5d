/**
 * safetensors bad input: every malformed file gets an OwlError with a specific code and a message
 * that says what was expected, what was found and where. Truncation at every cut point, lying
 * header lengths, broken JSON, bad dtypes, shapes and offsets, invalid UTF-8, bad metadata and
 * duplicate keys. Sharded-index errors are in safetensors-sharded.test.ts; random mutations in
 * safetensors-fuzz.test.ts.
 */
import { describe, expect, it } from "vitest";
import { readSafetensors, serializeSafetensors } from "../src/formats/safetensors/index.ts";
import { MemorySource } from "../src/util/bytes.ts";
import { isOwlError, type OwlErrorCode } from "../src/util/errors.ts";

function layout(header: string | Uint8Array, data: ArrayLike<number> = [], n?: number | bigint): Uint8Array {
  const json = typeof header === "string" ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(n ?? json.length), true);
  out.set(json, 8);
  out.set(Array.from(data), 8 + json.length);
  return out;
}

/** A header with one tensor entry per argument, as JSON text. */
function tensors(entries: Record<string, unknown>): string {
  return JSON.stringify(entries);
}

function parseError(bytes: Uint8Array): {
  code: OwlErrorCode;
  message: string;
  details: Record<string, unknown>;
} {
  try {
    readSafetensors(new MemorySource(bytes, "bad.safetensors"));
  } catch (e) {
    if (!isOwlError(e)) throw new Error(`expected an OwlError, got ${String(e)}`, { cause: e });
    return { code: e.code, message: e.message, details: e.details ?? {} };
  }
  throw new Error("expected an error, but the file parsed");
}

function expectCode(bytes: Uint8Array, code: OwlErrorCode, message?: RegExp): void {
  const e = parseError(bytes);
  expect(e.code, e.message).toBe(code);
  expect(e.message).toContain("bad.safetensors");
  if (message) expect(e.message).toMatch(message);
}

const F32x2 = { dtype: "F32", shape: [2], data_offsets: [0, 8] };

describe("safetensors bad input: sizes and truncation", () => {
  it("fails at every cut point of a valid file with the right code", async () => {
    const good = await serializeSafetensors({
      metadata: { format: "pt" },
      tensors: [
        { name: "a", dtype: "F32", shape: [2, 2], data: () => new Uint8Array(16).fill(1) },
        { name: "b", dtype: "U8", shape: [3], data: () => new Uint8Array([1, 2, 3]) },
      ],
    });
    const n = Number(new DataView(good.buffer).getBigUint64(0, true));
    for (let cut = 0; cut < good.length; cut++) {
      const e = parseError(good.subarray(0, cut));
      const expected = cut < 8 + n ? "ERR_TRUNCATED" : "ERR_TENSOR_OUT_OF_BOUNDS";
      expect(e.code, `cut at ${cut}: ${e.message}`).toBe(expected);
    }
    // One byte too many is a hole at the end of the buffer.
    const longer = new Uint8Array(good.length + 1);
    longer.set(good);
    expectCode(
      longer,
      "ERR_SAFETENSORS_INCOMPLETE_BUFFER",
      /cover 19 bytes of the data buffer but it has 20/,
    );
  });

  it("header length larger than the file", () => {
    expectCode(
      layout("{}", [], 1000),
      "ERR_TRUNCATED",
      /header of 1000 bytes ends at byte 1008 but the file has 10 bytes/,
    );
  });

  it("absurd header lengths: 2^60, 2^64-1, just over 100 MB", () => {
    expectCode(
      layout("{}", [], 2n ** 60n),
      "ERR_SAFETENSORS_HEADER_TOO_LARGE",
      /1152921504606846976 but at most 100000000/,
    );
    expectCode(layout("{}", [], 2n ** 64n - 1n), "ERR_SAFETENSORS_HEADER_TOO_LARGE", /18446744073709551615/);
    expectCode(layout("{}", [], 100_000_001), "ERR_SAFETENSORS_HEADER_TOO_LARGE");
  });

  it("a file shorter than the 8-byte length", () => {
    expectCode(new Uint8Array([2, 0, 0]), "ERR_TRUNCATED", /8-byte header length but the file has 3 bytes/);
  });

  it("a header that lies about its size", () => {
    const h = tensors({ t: F32x2 });
    // Too short: the JSON is cut.
    expectCode(layout(h, new Array(8).fill(0), h.length - 3), "ERR_SAFETENSORS_BAD_HEADER", /not valid JSON/);
    // Too long: the data bytes become part of the header.
    expectCode(layout(h, new Array(8).fill(0), h.length + 4), "ERR_SAFETENSORS_BAD_HEADER", /not valid JSON/);
    // Offsets that claim more data than the file has.
    const claims = tensors({ t: { dtype: "F32", shape: [1000], data_offsets: [0, 4000] } });
    expectCode(
      layout(claims, new Array(8).fill(0)),
      "ERR_TENSOR_OUT_OF_BOUNDS",
      /ends at byte \d+ .* but the file has \d+ bytes/,
    );
  });
});

describe("safetensors bad input: the JSON header", () => {
  it("must start with '{'", () => {
    expectCode(
      layout("[1]"),
      "ERR_SAFETENSORS_BAD_HEADER",
      /must start with '\{' \(0x7b\) at byte 8, found byte 0x5b/,
    );
    expectCode(layout(" {}"), "ERR_SAFETENSORS_BAD_HEADER", /found byte 0x20/);
    expectCode(layout(""), "ERR_SAFETENSORS_BAD_HEADER", /found an empty header/);
  });

  it("must be JSON, with only whitespace after it", () => {
    expectCode(layout('{"a":'), "ERR_SAFETENSORS_BAD_HEADER", /not valid JSON/);
    expectCode(layout("{}x"), "ERR_SAFETENSORS_BAD_HEADER", /not valid JSON/);
    expectCode(layout("{}\0\0\0\0\0\0"), "ERR_SAFETENSORS_BAD_HEADER", /not valid JSON/);
    expectCode(layout("{'a':1}"), "ERR_SAFETENSORS_BAD_HEADER", /not valid JSON/);
  });

  it("must be valid UTF-8 (error names the byte offset)", () => {
    const enc = (s: string) => Array.from(new TextEncoder().encode(s));
    const cases: [number[], string][] = [
      [[0xff], "ff"],
      [[0xc0, 0x80], "c0 80"], // overlong NUL
      [[0xed, 0xa0, 0x80], "ed a0 80"], // UTF-16 surrogate
      [[0xe2, 0x82], "e2 82"], // truncated sequence
    ];
    for (const [bad, hex] of cases) {
      const before = enc('{"__metadata__":{"k":"é');
      const header = new Uint8Array([...before, ...bad, ...enc('"}}')]);
      const e = parseError(layout(header));
      expect(e.code).toBe("ERR_INVALID_UTF8");
      expect(e.details.offset).toBe(8 + before.length);
      expect(e.message).toContain(`bytes ${hex}`);
      expect(e.message).toContain(`at byte ${8 + before.length}`);
    }
  });

  it("rejects \\u escapes of unpaired surrogates (serde_json does), accepts escaped pairs", () => {
    const t = JSON.stringify(F32x2);
    const data = new Array(8).fill(0);
    expectCode(
      layout(`{"\\ud800x":${t}}`, data),
      "ERR_INVALID_UTF8",
      /string at byte 9 has a \\u escape of an unpaired UTF-16 surrogate/,
    );
    expectCode(layout(`{"__metadata__":{"k":"\\udc00"},"t":${t}}`, data), "ERR_INVALID_UTF8");
    const f = readSafetensors(new MemorySource(layout(`{"\\ud83d\\ude00":${t}}`, data)));
    expect(f.tensors[0]!.name).toBe("😀");
  });

  it("rejects duplicate keys at any level, also when spelled with escapes", () => {
    const t = JSON.stringify(F32x2);
    const data = new Array(8).fill(0);
    expectCode(
      layout(`{"t":${t},"t":${t}}`, data),
      "ERR_SAFETENSORS_DUPLICATE_KEY",
      /duplicate key "t" at byte \d+/,
    );
    expectCode(
      layout(`{"t":${t},"\\u0074":${t}}`, data),
      "ERR_SAFETENSORS_DUPLICATE_KEY",
      /duplicate key "t"/,
    );
    expectCode(
      layout(`{"__metadata__":{},"t":${t},"__metadata__":{}}`, data),
      "ERR_SAFETENSORS_DUPLICATE_KEY",
      /"__metadata__"/,
    );
    expectCode(
      layout(`{"__metadata__":{"a":"1","a":"2"},"t":${t}}`, data),
      "ERR_SAFETENSORS_DUPLICATE_KEY",
      /duplicate key "a" in "__metadata__"/,
    );
    expectCode(
      layout(`{"t":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}`, data),
      "ERR_SAFETENSORS_DUPLICATE_KEY",
      /duplicate key "dtype" in "t"/,
    );
    // The same key in different objects is fine.
    expect(() =>
      readSafetensors(new MemorySource(layout(`{"__metadata__":{"t":"x"},"t":${t}}`, data))),
    ).not.toThrow();
  });

  it("__metadata__ must map strings to strings", () => {
    const data = new Array(8).fill(0);
    for (const [meta, what] of [
      ['{"a":1}', /"a" is a number 1/],
      ['{"a":null}', /"a" is null/],
      ['{"a":{"b":"c"}}', /"a" is an object/],
      ['{"a":["x"]}', /"a" is an array/],
      ['["x"]', /must be an object of strings, found an array/],
      ['"pt"', /found a string/],
    ] as const) {
      expectCode(
        layout(`{"__metadata__":${meta},"t":${JSON.stringify(F32x2)}}`, data),
        "ERR_SAFETENSORS_BAD_METADATA",
        what,
      );
    }
  });

  it("each tensor entry must be an object with dtype, shape and data_offsets", () => {
    const data = new Array(8).fill(0);
    expectCode(
      layout('{"t":5}', data),
      "ERR_SAFETENSORS_BAD_HEADER",
      /tensor "t" must map to .*found a number 5/,
    );
    expectCode(layout('{"t":[1]}', data), "ERR_SAFETENSORS_BAD_HEADER", /found an array/);
    expectCode(
      layout(tensors({ t: { shape: [2], data_offsets: [0, 8] } }), data),
      "ERR_SAFETENSORS_BAD_HEADER",
      /"dtype" must be a string, found nothing/,
    );
    expectCode(
      layout(tensors({ t: { ...F32x2, dtype: 32 } }), data),
      "ERR_SAFETENSORS_BAD_HEADER",
      /"dtype" must be a string/,
    );
    expectCode(
      layout(tensors({ t: { dtype: "F32", shape: [2] } }), data),
      "ERR_SAFETENSORS_BAD_HEADER",
      /"data_offsets" must be \[begin, end\], found nothing/,
    );
  });
});

describe("safetensors bad input: dtypes, shapes and offsets", () => {
  const data = new Array(8).fill(0);

  it("unknown dtype", () => {
    expectCode(
      layout(tensors({ t: { ...F32x2, dtype: "F33" } }), data),
      "ERR_UNKNOWN_DTYPE",
      /unknown dtype "F33" \(expected one of .*F32/,
    );
    expectCode(layout(tensors({ t: { ...F32x2, dtype: "f32" } }), data), "ERR_UNKNOWN_DTYPE");
  });

  it("shape: negative, fractional, non-numeric, not an array, overflowing", () => {
    for (const shape of [[-2], [2.5], ["2"], [null], [1e20]]) {
      expectCode(
        layout(tensors({ t: { ...F32x2, shape } }), data),
        "ERR_TENSOR_SHAPE",
        /dimensions must be integers from 0 to 2\^53/,
      );
    }
    expectCode(
      layout(tensors({ t: { ...F32x2, shape: 2 } }), data),
      "ERR_TENSOR_SHAPE",
      /"shape" must be an array/,
    );
    // Each dimension fits but the product overflows (the crate's ValidationOverflow).
    expectCode(
      layout(tensors({ t: { ...F32x2, shape: [2 ** 32, 2 ** 32] } }), data),
      "ERR_TENSOR_SHAPE",
      /more than 2\^53 elements \(overflow\)/,
    );
    // The product fits but product * 8 bytes does not.
    expectCode(
      layout(tensors({ t: { ...F32x2, dtype: "F64", shape: [2 ** 51] } }), data),
      "ERR_TENSOR_SHAPE",
      /not a whole number of bytes below 2\^53/,
    );
  });

  it("byte size must equal nElements * dtype size (TensorInvalidInfo)", () => {
    expectCode(
      layout(tensors({ t: { ...F32x2, shape: [3] } }), data),
      "ERR_TENSOR_SHAPE",
      /shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] span 8/,
    );
    expectCode(layout(tensors({ t: { ...F32x2, dtype: "F16" } }), data), "ERR_TENSOR_SHAPE", /needs 4 bytes/);
  });

  it("data_offsets: malformed, reversed, beyond the file", () => {
    for (const off of [[0], [0, 8, 9], "0,8", [-1, 8], [0.5, 8], [0, "8"]]) {
      expectCode(layout(tensors({ t: { ...F32x2, data_offsets: off } }), data), "ERR_SAFETENSORS_BAD_HEADER");
    }
    expectCode(
      layout(tensors({ t: { ...F32x2, data_offsets: [8, 0] } }), data),
      "ERR_SAFETENSORS_BAD_HEADER",
      /data_offsets \[8, 0\]: the end must not be before the begin/,
    );
    expectCode(
      layout(tensors({ t: { ...F32x2, data_offsets: [0, 1e30] } }), data),
      "ERR_TENSOR_OUT_OF_BOUNDS",
      /beyond any file/,
    );
    expectCode(layout(tensors({ t: { ...F32x2, data_offsets: [8, 16] } }), data), "ERR_TENSOR_OUT_OF_BOUNDS");
  });

  it("overlapping tensors", () => {
    const h = tensors({ a: F32x2, b: { dtype: "F32", shape: [1], data_offsets: [4, 8] } });
    expectCode(
      layout(h, data),
      "ERR_TENSOR_OVERLAP",
      /tensor "b" has data_offsets \[4, 8\] but tensor "a" already covers the buffer up to 8/,
    );
    // An empty tensor inside another one also overlaps, as in the crate.
    const e = tensors({ a: F32x2, z: { dtype: "F32", shape: [0], data_offsets: [4, 4] } });
    expectCode(layout(e, data), "ERR_TENSOR_OVERLAP");
    // Two tensors with the same range.
    expectCode(layout(tensors({ a: F32x2, b: F32x2 }), data), "ERR_TENSOR_OVERLAP");
  });

  it("holes: before the first tensor, between tensors, after the last", () => {
    const one = { dtype: "U8", shape: [4], data_offsets: [4, 8] };
    expectCode(
      layout(tensors({ t: one }), data),
      "ERR_SAFETENSORS_INCOMPLETE_BUFFER",
      /begins at buffer offset 4 but the tensors before it end at 0/,
    );
    const gap = tensors({
      a: { dtype: "U8", shape: [2], data_offsets: [0, 2] },
      b: { dtype: "U8", shape: [2], data_offsets: [4, 6] },
    });
    expectCode(
      layout(gap, new Array(6).fill(0)),
      "ERR_SAFETENSORS_INCOMPLETE_BUFFER",
      /buffer bytes 2 to 4 belong to no tensor/,
    );
    const tail = tensors({ a: { dtype: "U8", shape: [2], data_offsets: [0, 2] } });
    expectCode(
      layout(tail, new Array(6).fill(0)),
      "ERR_SAFETENSORS_INCOMPLETE_BUFFER",
      /cover 2 bytes of the data buffer but it has 6/,
    );
    // No tensors at all but data after the header.
    expectCode(layout("{}", [1]), "ERR_SAFETENSORS_INCOMPLETE_BUFFER");
  });
});
