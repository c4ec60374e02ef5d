/**
 * GGUF reader against references not derived from owl's code: a tiny file laid out by hand in
 * this test (byte by byte, from the spec), and the llama.cpp vocabulary fixtures with facts known
 * about them. Also the typed metadata getters and constructors. Not here: bad input (gguf-bad),
 * the writer's round trips (gguf-write), node-llama-cpp as a second parser (gguf-llamacpp).
 */
import { describe, expect, it } from "vitest";
import {
  garr,
  gbool,
  getArray,
  getBigInt,
  getBool,
  getNumber,
  getNumberArray,
  getString,
  getStringArray,
  gf32,
  gf64,
  gi8,
  gi16,
  gi32,
  gi64,
  gstr,
  gu8,
  gu16,
  gu32,
  gu64,
  inner,
  openGguf,
  readGguf,
  serializeGguf,
} from "../src/formats/gguf/index.ts";
import type { GgufMetadata } from "../src/formats/gguf/types.ts";
import { MemorySource } from "../src/util/bytes.ts";
import { isOwlError } from "../src/util/errors.ts";
import { GgmlType, ggmlTypeInfo } from "../src/util/ggml-types.ts";
import { fixturePath, listFixtures } from "./helpers/fixtures.ts";

const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const u64 = (v: number) => [...u32(v), 0, 0, 0, 0];
const str = (s: string) => {
  const b = [...new TextEncoder().encode(s)];
  return [...u64(b.length), ...b];
};

/**
 * A GGUF v3 file written out by hand from the spec: two metadata entries and one 2x3 F32 tensor.
 *   0   "GGUF" | version 3 | n_tensors 1 | n_kv 2                          24 bytes
 *   24  "a" UINT32(4) 7                                                     17 bytes
 *   41  "bc" ARRAY(9) of STRING(8), 2 items: "x", "yz"                      45 bytes
 *   86  tensor "t": n_dims 2, ne 2 3, type F32 (0), offset 0               41 bytes
 *   127 one zero byte of padding to 128 (alignment 32)
 *   128 six f32 values 1..6 (24 bytes), then 8 zero bytes to 160
 */
function handMadeGguf(): Uint8Array {
  const data = new Float32Array([1, 2, 3, 4, 5, 6]);
  const bytes = [
    ...[0x47, 0x47, 0x55, 0x46],
    ...u32(3),
    ...u64(1),
    ...u64(2),
    ...str("a"),
    ...u32(4),
    ...u32(7),
    ...str("bc"),
    ...u32(9),
    ...u32(8),
    ...u64(2),
    ...str("x"),
    ...str("yz"),
    ...str("t"),
    ...u32(2),
    ...u64(2),
    ...u64(3),
    ...u32(0),
    ...u64(0),
    0,
    ...new Uint8Array(data.buffer),
    ...new Array(8).fill(0),
  ];
  return new Uint8Array(bytes);
}

describe("hand-made GGUF", () => {
  const bytes = handMadeGguf();

  it("has the size worked out by hand", () => {
    expect(bytes.length).toBe(160);
  });

  it("parses to the values written by hand", () => {
    const g = readGguf(new MemorySource(bytes));
    expect(g.version).toBe(3);
    expect(g.alignment).toBe(32);
    expect(g.dataOffset).toBe(128);
    expect(g.fileSize).toBe(160);
    expect([...g.metadata.keys()]).toEqual(["a", "bc"]);
    expect(g.metadata.get("a")).toEqual({ type: "UINT32", value: 7 });
    expect(getStringArray(g.metadata, "bc")).toEqual(["x", "yz"]);
    expect(g.tensors).toHaveLength(1);
    const t = g.tensors[0]!;
    expect(t.name).toBe("t");
    expect(t.dims).toEqual([2, 3]);
    expect(t.type.name).toBe("F32");
    expect(t.offset).toBe(0);
    expect(t.fileOffset).toBe(128);
    expect(t.byteSize).toBe(24);
    expect(t.nElements).toBe(6);
    expect(g.tensor("t")).toBe(t);
    const data = g.readTensor("t");
    expect([...new Float32Array(data.slice().buffer)]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("is what the writer produces for the same content", async () => {
    const metadata: GgufMetadata = new Map([
      ["a", gu32(7)],
      ["bc", garr.strings(["x", "yz"])],
    ]);
    const out = await serializeGguf({
      metadata,
      tensors: [
        {
          name: "t",
          dims: [2, 3],
          type: ggmlTypeInfo(GgmlType.F32)!,
          data: () => new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer),
        },
      ],
    });
    expect(Buffer.from(out).toString("hex")).toBe(Buffer.from(bytes).toString("hex"));
  });

  it("reads version 2 the same way", () => {
    const v2 = bytes.slice();
    v2[4] = 2;
    const g = readGguf(new MemorySource(v2));
    expect(g.version).toBe(2);
    expect(g.metadata.get("a")).toEqual({ type: "UINT32", value: 7 });
  });

  it("gives ERR_TENSOR_NOT_FOUND for an unknown tensor name", () => {
    const g = readGguf(new MemorySource(bytes));
    expect(() => g.readTensor("nope")).toThrowError(/tensor "nope" not found/);
    try {
      g.readTensor("nope");
    } catch (e) {
      expect(isOwlError(e, "ERR_TENSOR_NOT_FOUND")).toBe(true);
    }
  });
});

describe("every value type, by hand", () => {
  // One entry of each type, laid out by hand, little-endian.
  const entries: Array<[string, number[]]> = [
    ["u8", [0, 200]],
    ["i8", [1, 0xfe]], // -2
    ["u16", [2, 0x34, 0x12]],
    ["i16", [3, 0xff, 0xff]], // -1
    ["u32", [4, ...u32(0xdeadbeef)]],
    ["i32", [5, ...u32(0xfffffff6)]], // -10
    ["f32", [6, 0x00, 0x00, 0xc0, 0x3f]], // 1.5
    ["bool", [7, 1]],
    ["s", [8, ...str("héllo ▁ 🦉")]],
    ["u64", [10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ["i64", [11, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]], // -2
    ["f64", [12, 0, 0, 0, 0, 0, 0, 0xf0, 0xbf]], // -1
    ["arr_f32", [9, ...u32(6), ...u64(2), 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]], // [1, -2]
    ["arr_bool", [9, ...u32(7), ...u64(3), 1, 0, 1]],
    ["arr_i64", [9, ...u32(11), ...u64(1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ["arr_empty", [9, ...u32(4), ...u64(0)]],
    // ARRAY of ARRAY: [[1, 2] as u8, ["z"] as strings]
    ["nested", [9, ...u32(9), ...u64(2), ...u32(0), ...u64(2), 1, 2, ...u32(8), ...u64(1), ...str("z")]],
  ];
  const body = entries.flatMap(([k, v]) => [...str(k), ...u32(v[0]!), ...v.slice(1)]);
  const file = new Uint8Array([
    0x47,
    0x47,
    0x55,
    0x46,
    ...u32(3),
    ...u64(0),
    ...u64(entries.length),
    ...body,
  ]);

  it("parses each to its exact type and value", () => {
    const md = readGguf(new MemorySource(file)).metadata;
    expect(md.get("u8")).toEqual({ type: "UINT8", value: 200 });
    expect(md.get("i8")).toEqual({ type: "INT8", value: -2 });
    expect(md.get("u16")).toEqual({ type: "UINT16", value: 0x1234 });
    expect(md.get("i16")).toEqual({ type: "INT16", value: -1 });
    expect(md.get("u32")).toEqual({ type: "UINT32", value: 0xdeadbeef });
    expect(md.get("i32")).toEqual({ type: "INT32", value: -10 });
    expect(md.get("f32")).toEqual({ type: "FLOAT32", value: 1.5 });
    expect(md.get("bool")).toEqual({ type: "BOOL", value: true });
    expect(md.get("s")).toEqual({ type: "STRING", value: "héllo ▁ 🦉" });
    expect(md.get("u64")).toEqual({ type: "UINT64", value: 2n ** 64n - 1n });
    expect(md.get("i64")).toEqual({ type: "INT64", value: -2n });
    expect(md.get("f64")).toEqual({ type: "FLOAT64", value: -1 });
    const f = getArray(md, "arr_f32")!;
    expect(f.itemType).toBe("FLOAT32");
    expect(f.items).toBeInstanceOf(Float32Array);
    expect([...(f.items as Float32Array)]).toEqual([1, -2]);
    expect(getArray(md, "arr_bool")).toEqual({ itemType: "BOOL", items: [true, false, true] });
    expect([...(getArray(md, "arr_i64")!.items as BigInt64Array)]).toEqual([-1n]);
    expect(getArray(md, "arr_empty")!.items).toHaveLength(0);
    const nested = getArray(md, "nested")!;
    expect(nested.itemType).toBe("ARRAY");
    const [a, b] = nested.items as ReturnType<typeof inner>[];
    expect(a!.itemType).toBe("UINT8");
    expect([...(a!.items as Uint8Array)]).toEqual([1, 2]);
    expect(b).toEqual({ itemType: "STRING", items: ["z"] });
  });

  it("writes back to the same bytes", async () => {
    const g = readGguf(new MemorySource(file));
    const out = await serializeGguf({ metadata: g.metadata, tensors: [] });
    expect(Buffer.from(out).equals(Buffer.from(file))).toBe(true);
  });

  it("the constructors build the same file", async () => {
    const md: GgufMetadata = new Map([
      ["u8", gu8(200)],
      ["i8", gi8(-2)],
      ["u16", gu16(0x1234)],
      ["i16", gi16(-1)],
      ["u32", gu32(0xdeadbeef)],
      ["i32", gi32(-10)],
      ["f32", gf32(1.5)],
      ["bool", gbool(true)],
      ["s", gstr("héllo ▁ 🦉")],
      ["u64", gu64(2n ** 64n - 1n)],
      ["i64", gi64(-2)],
      ["f64", gf64(-1)],
      ["arr_f32", garr.f32([1, -2])],
      ["arr_bool", garr.bools([true, false, true])],
      ["arr_i64", garr.i64([-1n])],
      ["arr_empty", garr.u32([])],
      ["nested", garr.arrays([inner(garr.u8([1, 2])), inner(garr.strings(["z"]))])],
    ]);
    const out = await serializeGguf({ metadata: md, tensors: [] });
    expect(Buffer.from(out).toString("hex")).toBe(Buffer.from(file).toString("hex"));
  });

  it("typed getters accept the right types and name key, expected and found otherwise", () => {
    const md = readGguf(new MemorySource(file)).metadata;
    expect(getNumber(md, "u8")).toBe(200);
    expect(getNumber(md, "i64")).toBe(-2);
    expect(getNumber(md, "f32")).toBe(1.5);
    expect(getNumber(md, "missing")).toBeUndefined();
    expect(getBigInt(md, "u32")).toBe(0xdeadbeefn);
    expect(getBool(md, "bool")).toBe(true);
    expect(getString(md, "s")).toBe("héllo ▁ 🦉");
    expect([...(getNumberArray(md, "arr_f32") ?? [])]).toEqual([1, -2]);
    expect([...(getNumberArray(md, "arr_i64") ?? [])]).toEqual([-1]);
    const cases: Array<[() => unknown, RegExp]> = [
      [() => getString(md, "u32"), /metadata "u32": expected STRING, found UINT32/],
      [() => getNumber(md, "s"), /metadata "s": expected a number .*found STRING/],
      [() => getNumber(md, "u64"), /fits in 53 bits, found UINT64 18446744073709551615/],
      [() => getBool(md, "u8"), /expected BOOL, found UINT8/],
      [() => getStringArray(md, "arr_f32"), /expected ARRAY of STRING, found ARRAY of FLOAT32/],
      [() => getNumberArray(md, "arr_bool"), /found ARRAY of BOOL/],
      [() => getBigInt(md, "f64"), /expected an integer, found FLOAT64/],
    ];
    for (const [f, re] of cases) {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(isOwlError(err, "ERR_GGUF_METADATA_TYPE"), String(err)).toBe(true);
      expect((err as Error).message).toMatch(re);
    }
  });

  it("constructors reject out-of-range values", () => {
    for (const f of [
      () => gu8(256),
      () => gi8(-129),
      () => gu32(-1),
      () => gi32(2 ** 31),
      () => gu64(-1),
      () => gu16(1.5),
    ]) {
      expect(f).toThrowError(/out of range|integer in/);
    }
  });
});

describe("fixtures", () => {
  // Facts about llama.cpp's vocabulary files known independently of owl (llama.cpp's tests and the
  // models' tokenizer configs): tensor-free, version 3, a known tokenizer model and vocab size.
  const known: Record<string, { model: string; tokens: number; arch: string }> = {
    "ggml-vocab-llama-spm.gguf": { model: "llama", tokens: 32000, arch: "llama" },
    "ggml-vocab-bert-bge.gguf": { model: "bert", tokens: 30522, arch: "bert" },
    "ggml-vocab-gpt-2.gguf": { model: "gpt2", tokens: 50257, arch: "gpt2" },
    "ggml-vocab-phi-3.gguf": { model: "llama", tokens: 32064, arch: "phi3" },
  };

  for (const [name, facts] of Object.entries(known)) {
    const path = fixturePath(`tokenizer/${name}`);
    it.skipIf(!path)(`${name}: ${facts.model} tokenizer, ${facts.tokens} tokens`, () => {
      const g = openGguf(path!);
      try {
        expect(g.version).toBe(3);
        expect(g.tensors).toHaveLength(0);
        expect(getString(g.metadata, "general.architecture")).toBe(facts.arch);
        expect(getString(g.metadata, "tokenizer.ggml.model")).toBe(facts.model);
        const tokens = getStringArray(g.metadata, "tokenizer.ggml.tokens")!;
        expect(tokens).toHaveLength(facts.tokens);
        const types = getNumberArray(g.metadata, "tokenizer.ggml.token_type")!;
        expect(types).toBeInstanceOf(Int32Array);
        expect(types.length).toBe(facts.tokens);
        // A vocabulary-only file ends right after its header: no padding, no data.
        expect(g.dataOffset).toBe(g.fileSize);
      } finally {
        g.close();
      }
    });
  }

  it("llama-spm: the SentencePiece specials and byte tokens sit where SentencePiece puts them", () => {
    const g = openGguf(fixturePath("tokenizer/ggml-vocab-llama-spm.gguf")!);
    const tokens = getStringArray(g.metadata, "tokenizer.ggml.tokens")!;
    expect(tokens.slice(0, 4)).toEqual(["<unk>", "<s>", "</s>", "<0x00>"]);
    expect(tokens[3 + 255]).toBe("<0xFF>");
    expect(tokens[29871]).toBe("▁"); // the lone SentencePiece space of the llama vocabulary
    const scores = getNumberArray(g.metadata, "tokenizer.ggml.scores")!;
    expect(scores).toBeInstanceOf(Float32Array);
    expect(scores.length).toBe(32000);
    expect(getNumber(g.metadata, "tokenizer.ggml.bos_token_id")).toBe(1);
    expect(getNumber(g.metadata, "tokenizer.ggml.eos_token_id")).toBe(2);
    g.close();
  });

  it("every fixture parses, and 150k-string arrays parse in tens of milliseconds", () => {
    const files = listFixtures("tokenizer", /\.gguf$/);
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const f of files) {
      const g = openGguf(f);
      expect(getStringArray(g.metadata, "tokenizer.ggml.tokens")!.length).toBeGreaterThan(1000);
      g.close();
    }
    // A synthetic 150k-token vocabulary (with multi-byte tokens), read from memory.
    const tokens = Array.from({ length: 150_000 }, (_, i) => (i % 5 === 0 ? `Ġtök${i}` : `tok${i}`));
    return serializeGguf({ metadata: new Map([["t", garr.strings(tokens)]]), tensors: [] }).then((bytes) => {
      let best = Number.POSITIVE_INFINITY;
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        const md = readGguf(new MemorySource(bytes)).metadata;
        best = Math.min(best, performance.now() - t0);
        expect(getStringArray(md, "t")![149_999]).toBe("tok149999");
      }
      // Typically ~15 ms; the bound is loose for slow, shared CI machines.
      expect(best).toBeLessThan(250);
    });
  });
});
