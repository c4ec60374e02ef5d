/**
 * safetensors writer: byte-exact against the Rust crate's test vectors and hand-laid headers
 * (prepare's order: dtype rank descending, then name by UTF-8 bytes; serde_json compact; spaces to
 * a multiple of 8); round trip of every dtype; streaming (one data() call per tensor, in file order,
 * each written before the next is asked for); atomic replace, cleanup on failure and abort;
 * progress; input validation.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  dtypeInfo,
  openSafetensors,
  planSafetensors,
  SAFETENSORS_DTYPES,
  type SafetensorsTensorInput,
  type SafetensorsWriteProgress,
  serializeSafetensors,
  writeSafetensors,
} from "../src/formats/safetensors/index.ts";

const tmp = mkdtempSync(join(tmpdir(), "owl-st-write-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const f32 = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);

/** The padded header text of a serialized file. */
function headerText(bytes: Uint8Array): string {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return new TextDecoder().decode(bytes.subarray(8, 8 + n));
}

describe("safetensors writer: byte-exact output", () => {
  it("matches the crate's test_serialization bytes", async () => {
    const out = await serializeSafetensors({
      tensors: [{ name: "attn.0", dtype: "F32", shape: [1, 2, 3], data: () => f32([0, 1, 2, 3, 4, 5]) }],
    });
    expect(Array.from(out)).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101,
      34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34,
      100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0,
      0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
  });

  it("matches the crate's test_serialization_forced_alignement bytes (7 spaces of padding)", async () => {
    const out = await serializeSafetensors({
      tensors: [{ name: "attn0", dtype: "F32", shape: [1, 1, 2, 3], data: () => f32([0, 1, 2, 3, 4, 5]) }],
    });
    expect(Array.from(out)).toEqual([
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34,
      58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 49, 44, 50, 44, 51, 93, 44,
      34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125,
      32, 32, 32, 32, 32, 32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
      160, 64,
    ]);
  });

  it("matches the crate's test_empty bytes, without and with __metadata__", async () => {
    expect(Array.from(await serializeSafetensors({ tensors: [] }))).toEqual([
      8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32,
    ]);
    expect(Array.from(await serializeSafetensors({ metadata: { framework: "pt" }, tensors: [] }))).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34,
      102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
    // Empty metadata is still written (Some(empty) in the crate); undefined is not.
    expect(headerText(await serializeSafetensors({ metadata: {}, tensors: [] }))).toBe(
      '{"__metadata__":{}}     ',
    );
  });

  it("orders tensors like prepare(): dtype rank descending, then name; offsets packed", async () => {
    const t = (name: string, dtype: SafetensorsTensorInput["dtype"], shape: number[], fill: number) => ({
      name,
      dtype,
      shape,
      data: () =>
        new Uint8Array(
          planSafetensors({ tensors: [{ name, dtype, shape, data: () => new Uint8Array() }] }).dataSize,
        ).fill(fill),
    });
    const out = await serializeSafetensors({
      metadata: { format: "pt", a: "1" },
      tensors: [
        t("b", "F16", [2], 1),
        t("c", "U8", [3], 2),
        t("a", "F16", [1], 3),
        t("z", "F64", [1], 4),
        t("m", "I64", [1], 5),
        t("n", "U64", [1], 6),
        t("flag", "BOOL", [2], 7),
        t("bf", "BF16", [1], 8),
      ],
    });
    // Written by hand from the spec: ranks U64 > I64 > F64 > BF16 > F16 > U8 > BOOL.
    const expected =
      '{"__metadata__":{"a":"1","format":"pt"},' +
      '"n":{"dtype":"U64","shape":[1],"data_offsets":[0,8]},' +
      '"m":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},' +
      '"z":{"dtype":"F64","shape":[1],"data_offsets":[16,24]},' +
      '"bf":{"dtype":"BF16","shape":[1],"data_offsets":[24,26]},' +
      '"a":{"dtype":"F16","shape":[1],"data_offsets":[26,28]},' +
      '"b":{"dtype":"F16","shape":[2],"data_offsets":[28,32]},' +
      '"c":{"dtype":"U8","shape":[3],"data_offsets":[32,35]},' +
      '"flag":{"dtype":"BOOL","shape":[2],"data_offsets":[35,37]}}';
    const pad = (8 - (expected.length % 8)) % 8;
    expect(headerText(out)).toBe(expected + " ".repeat(pad));
    const data = out.subarray(out.length - 37);
    expect(Array.from(data)).toEqual([
      ...new Array(8).fill(6),
      ...new Array(8).fill(5),
      ...new Array(8).fill(4),
      8,
      8,
      3,
      3,
      1,
      1,
      1,
      1,
      2,
      2,
      2,
      7,
      7,
    ]);
  });

  it("sorts names by UTF-8 bytes (code points), not UTF-16 units, and escapes like serde_json", async () => {
    const names = ["😀", "Ａ", "é", "z", 'q"\\\n\u0001/'];
    const out = await serializeSafetensors({
      tensors: names.map((name) => ({
        name,
        dtype: "U8" as const,
        shape: [0],
        data: () => new Uint8Array(0),
      })),
    });
    const order = headerText(out).match(/"[^"]*(?:\\.[^"]*)*":\{"dtype/g);
    expect(order).toEqual([
      '"q\\"\\\\\\n\\u0001/":{"dtype',
      '"z":{"dtype',
      '"é":{"dtype',
      '"Ａ":{"dtype',
      '"😀":{"dtype',
    ]);
    // serde_json writes non-ASCII as raw UTF-8, control characters as \n or \u00XX (lowercase).
    expect(headerText(out)).toContain('"q\\"\\\\\\n\\u0001/":');
  });

  it("round-trips every dtype through a file", async () => {
    const tensors: SafetensorsTensorInput[] = [];
    const bytesOf = new Map<string, Uint8Array>();
    for (const [i, dtype] of SAFETENSORS_DTYPES.entries()) {
      const shape = [2, 4];
      const size = planSafetensors({
        tensors: [{ name: "x", dtype, shape, data: () => new Uint8Array() }],
      }).dataSize;
      const bytes = Uint8Array.from({ length: size }, (_, k) => (k * 37 + i) & 0xff);
      bytesOf.set(`t_${dtype}`, bytes);
      tensors.push({ name: `t_${dtype}`, dtype, shape, data: () => bytes });
    }
    const p = join(tmp, "all.safetensors");
    const result = await writeSafetensors(p, { metadata: { format: "pt" }, tensors });
    expect(result.fileSize).toBe(statSync(p).size);
    expect(result.headerSize % 8 === 0).toBe(true);
    const f = openSafetensors(p);
    try {
      expect(f.metadata).toEqual({ format: "pt" });
      expect(f.tensors.length).toBe(SAFETENSORS_DTYPES.length);
      for (const t of f.tensors) {
        expect(t.shape).toEqual([2, 4]);
        expect(Array.from(f.readTensor(t))).toEqual(Array.from(bytesOf.get(t.name)!));
      }
      // File order is by rank descending: U64 first, BOOL last.
      expect(f.tensors[0]!.dtype).toBe("U64");
      expect(f.tensors.at(-1)!.dtype).toBe("BOOL");
      // Every tensor is naturally aligned for its element size within the file.
      expect(f.dataOffset % 8).toBe(0);
      for (const t of f.tensors) expect(t.fileOffset % Math.max(1, dtypeInfo(t.dtype).bits / 8)).toBe(0);
    } finally {
      f.close();
    }
    // Same input, same bytes.
    expect(
      Buffer.compare(
        readFileSync(p),
        Buffer.from(await serializeSafetensors({ metadata: { format: "pt" }, tensors })),
      ),
    ).toBe(0);
  });
});

describe("safetensors writer: streaming and atomicity", () => {
  it("calls data() once per tensor, in file order, after the previous tensor is on disk", async () => {
    const dir = mkdtempSync(join(tmp, "stream-"));
    const p = join(dir, "s.safetensors");
    const calls: string[] = [];
    const sizesAtCall: number[] = [];
    const tempSize = () => {
      const temps = readdirSync(dir).filter((n) => n.endsWith(".tmp"));
      expect(temps.length).toBe(1);
      return statSync(join(dir, temps[0]!)).size;
    };
    const mk = (name: string, n: number): SafetensorsTensorInput => ({
      name,
      dtype: "F32",
      shape: [n],
      data: async () => {
        calls.push(name);
        sizesAtCall.push(tempSize());
        return f32(Array.from({ length: n }, (_, i) => i));
      },
    });
    const progress: SafetensorsWriteProgress[] = [];
    const input = { tensors: [mk("c", 3), mk("a", 1000), mk("b", 10)] };
    const plan = planSafetensors(input);
    await writeSafetensors(p, input, { onProgress: (e) => progress.push(e) });
    expect(calls).toEqual(["a", "b", "c"]);
    const h = plan.header.length;
    expect(sizesAtCall).toEqual([h, h + 4000, h + 4040]);
    expect(progress.map((e) => [e.tensor, e.bytesWritten, e.tensorsWritten])).toEqual([
      ["a", h + 4000, 1],
      ["b", h + 4040, 2],
      ["c", h + 4052, 3],
    ]);
    expect(progress.every((e) => e.totalBytes === h + 4052 && e.tensorCount === 3)).toBe(true);
    expect(readdirSync(dir)).toEqual(["s.safetensors"]);
  });

  it("leaves the old file and no temp file when data() fails or returns the wrong size", async () => {
    const dir = mkdtempSync(join(tmp, "fail-"));
    const p = join(dir, "m.safetensors");
    writeFileSync(p, "old contents");
    await expect(
      writeSafetensors(p, {
        tensors: [
          { name: "a", dtype: "F32", shape: [1], data: () => f32([1]) },
          {
            name: "b",
            dtype: "F32",
            shape: [1],
            data: () => {
              throw new Error("disk on fire");
            },
          },
        ],
      }),
    ).rejects.toMatchObject({
      code: "ERR_SAFETENSORS_WRITE",
      message: expect.stringMatching(/tensor "b": data\(\) failed: disk on fire/),
    });
    await expect(
      writeSafetensors(p, { tensors: [{ name: "a", dtype: "F32", shape: [2], data: () => f32([1]) }] }),
    ).rejects.toMatchObject({
      code: "ERR_SAFETENSORS_WRITE",
      message: expect.stringMatching(/must return 8 bytes .* got 4 bytes/),
    });
    expect(readFileSync(p, "utf8")).toBe("old contents");
    expect(readdirSync(dir)).toEqual(["m.safetensors"]);
  });

  it("stops on abort with ERR_ABORTED and cleans up", async () => {
    const dir = mkdtempSync(join(tmp, "abort-"));
    const p = join(dir, "m.safetensors");
    const ac = new AbortController();
    const tensors = ["a", "b", "c"].map((name) => ({
      name,
      dtype: "U8" as const,
      shape: [4],
      data: () => {
        if (name === "b") ac.abort();
        return new Uint8Array(4);
      },
    }));
    await expect(writeSafetensors(p, { tensors }, { signal: ac.signal })).rejects.toMatchObject({
      code: "ERR_ABORTED",
    });
    expect(readdirSync(dir)).toEqual([]);
    // Already aborted: nothing is created.
    await expect(writeSafetensors(p, { tensors }, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: "ERR_ABORTED",
    });
    expect(existsSync(p)).toBe(false);
  });

  it("replaces an existing file atomically", async () => {
    const p = join(tmp, "replace.safetensors");
    writeFileSync(p, "x");
    await writeSafetensors(p, {
      tensors: [{ name: "t", dtype: "U8", shape: [1], data: () => new Uint8Array([5]) }],
    });
    const f = openSafetensors(p);
    expect(Array.from(f.readTensor("t"))).toEqual([5]);
    f.close();
  });

  it("reports a missing directory as ERR_FILE_NOT_FOUND", async () => {
    await expect(
      writeSafetensors(join(tmp, "no", "such", "dir.safetensors"), { tensors: [] }),
    ).rejects.toMatchObject({
      code: "ERR_FILE_NOT_FOUND",
    });
  });
});

describe("safetensors writer: input validation before any byte is written", () => {
  const ok = { name: "t", dtype: "U8" as const, shape: [1], data: () => new Uint8Array(1) };
  const cases: [string, SafetensorsTensorInput[], Record<string, string> | undefined, string][] = [
    ["duplicate names", [ok, ok], undefined, "ERR_INVALID_ARGUMENT"],
    ["the reserved name", [{ ...ok, name: "__metadata__" }], undefined, "ERR_INVALID_ARGUMENT"],
    ["a lone surrogate in a name", [{ ...ok, name: "a\ud800" }], undefined, "ERR_INVALID_ARGUMENT"],
    ["a lone surrogate in metadata", [ok], { k: "\udfff" }, "ERR_INVALID_ARGUMENT"],
    ["an unknown dtype", [{ ...ok, dtype: "F33" as never }], undefined, "ERR_UNKNOWN_DTYPE"],
    ["a negative dimension", [{ ...ok, shape: [-1] }], undefined, "ERR_TENSOR_SHAPE"],
    ["a fractional dimension", [{ ...ok, shape: [1.5] }], undefined, "ERR_TENSOR_SHAPE"],
    ["an overflowing shape", [{ ...ok, shape: [2 ** 30, 2 ** 30, 2 ** 30] }], undefined, "ERR_TENSOR_SHAPE"],
    ["packed bits not filling a byte", [{ ...ok, dtype: "F4", shape: [3] }], undefined, "ERR_TENSOR_SHAPE"],
  ];
  for (const [what, tensors, metadata, code] of cases) {
    it(`rejects ${what} with ${code}`, async () => {
      const p = join(tmp, "invalid.safetensors");
      const input = metadata ? { metadata, tensors } : { tensors };
      await expect(writeSafetensors(p, input)).rejects.toMatchObject({ code });
      expect(existsSync(p)).toBe(false);
    });
  }
});
