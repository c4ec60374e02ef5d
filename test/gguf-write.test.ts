/**
 * GGUF writer: byte-identical read-then-write of every llama.cpp vocabulary fixture, round trips
 * of generated files with tensors (several ggml types, odd sizes, custom alignment, versions 2
 * and 3), the streaming contract (data() once, in order, after the previous tensor is written),
 * atomic replacement (abort and failure leave no temp file and the old file intact), and input
 * validation. Layout facts are checked against the spec's rules, not against the writer's code.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  garr,
  gstr,
  gu16,
  gu32,
  openGguf,
  planGguf,
  readGguf,
  serializeGguf,
  toWriteInput,
  writeGguf,
} from "../src/formats/gguf/index.ts";
import type { GgufMetadata, GgufTensorInput, GgufWriteInput } from "../src/formats/gguf/types.ts";
import { MemorySource } from "../src/util/bytes.ts";
import { isOwlError, type OwlErrorCode } from "../src/util/errors.ts";
import { type GgmlTypeName, ggmlTypeByName } from "../src/util/ggml-types.ts";
import { listFixtures } from "./helpers/fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "owl-gguf-write-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** mulberry32: a small seeded PRNG so generated data is the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * 256);
  return out;
}

async function expectOwlError(p: Promise<unknown> | (() => unknown), code: OwlErrorCode, re?: RegExp) {
  let err: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(isOwlError(err), `expected an OwlError ${code}, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code, String(err)).toBe(code);
  if (re) expect((err as Error).message).toMatch(re);
}

describe("read-then-write of the fixtures is byte-identical", () => {
  const files = listFixtures("tokenizer", /\.gguf$/);
  it("finds fixtures", () => expect(files.length).toBeGreaterThanOrEqual(2));
  for (const f of files) {
    const name = f.split("/").pop()!;
    it(name, async () => {
      const g = openGguf(f);
      const out = join(dir, name);
      try {
        await writeGguf(out, toWriteInput(g));
      } finally {
        g.close();
      }
      const a = readFileSync(f);
      const b = readFileSync(out);
      expect(b.length).toBe(a.length);
      expect(b.equals(a)).toBe(true);
      rmSync(out);
    });
  }
});

// Tensors of several block types and sizes (ggml order: dims[0] is the row length).
const SPECS: Array<[string, GgmlTypeName, number[]]> = [
  ["token_embd.weight", "Q4_K", [256, 3]],
  ["odd.f32", "F32", [3, 5, 7]],
  ["odd.f16", "F16", [7]],
  ["q4_0", "Q4_0", [64, 3]],
  ["q8_0.one_block", "Q8_0", [32]],
  ["bf16", "BF16", [5, 1, 3, 2]],
  ["scalar.f64", "F64", []],
  ["empty", "F32", [0, 4]],
  ["i8.one", "I8", [1]],
  ["q6_k", "Q6_K", [512, 1]],
  ["iq4_nl", "IQ4_NL", [32, 2]],
];

function tensorsOf(seed: number, log?: string[]): GgufTensorInput[] {
  return SPECS.map(([name, typeName, dims], i) => {
    const type = ggmlTypeByName(typeName)!;
    const n = dims.reduce((a, b) => a * b, 1);
    const size = (n / type.blockSize) * type.bytesPerBlock;
    return {
      name,
      dims,
      type,
      data: () => {
        log?.push(`data ${name}`);
        return randomBytes(size, seed + i);
      },
    };
  });
}

function metadataWith(alignment?: number): GgufMetadata {
  const md: GgufMetadata = new Map([
    ["general.architecture", gstr("llama")],
    ["general.name", gstr("tiny ✓")],
    ["tokenizer.ggml.tokens", garr.strings(["<unk>", "▁a", "🦉"])],
    ["tokenizer.ggml.scores", garr.f32([0, -1.5, 3.25])],
  ]);
  if (alignment !== undefined) md.set("general.alignment", gu32(alignment));
  return md;
}

describe("generated files with tensors", () => {
  for (const [version, alignment] of [
    [3, undefined],
    [2, undefined],
    [3, 64],
    [2, 256],
    [3, 1],
  ] as const) {
    it(`version ${version}, alignment ${alignment ?? "default (32)"}`, async () => {
      const input: GgufWriteInput = { version, metadata: metadataWith(alignment), tensors: tensorsOf(7) };
      const path = join(dir, `gen-v${version}-a${alignment}.gguf`);
      await writeGguf(path, input);
      const bytes = readFileSync(path);
      const align = alignment ?? 32;

      // Facts from the spec, checked on the raw bytes.
      expect(bytes.subarray(0, 4).toString("latin1")).toBe("GGUF");
      expect(bytes.readUInt32LE(4)).toBe(version);
      expect(bytes.readBigUInt64LE(8)).toBe(BigInt(SPECS.length));

      const g = openGguf(path);
      try {
        expect(g.version).toBe(version);
        expect(g.alignment).toBe(align);
        expect(g.dataOffset % align).toBe(0);
        expect(g.tensors.map((t) => t.name)).toEqual(SPECS.map((s) => s[0]));
        let expectedOffset = 0;
        for (const [i, t] of g.tensors.entries()) {
          const [, typeName, dims] = SPECS[i]!;
          expect(t.type.name).toBe(typeName);
          expect(t.dims).toEqual(dims);
          // Packed in order, each starting at the previous end rounded up to the alignment.
          expect(t.offset).toBe(expectedOffset);
          expect(t.offset % align).toBe(0);
          expectedOffset += Math.ceil(t.byteSize / align) * align;
          const want = randomBytes(t.byteSize, 7 + i);
          expect(Buffer.from(g.readTensor(t)).equals(Buffer.from(want))).toBe(true);
          // Padding bytes are zero.
          const padEnd = g.dataOffset + expectedOffset;
          expect(bytes.subarray(t.fileOffset + t.byteSize, padEnd).every((b) => b === 0)).toBe(true);
        }
        // The file ends after the last tensor's padding, as ggml and gguf-py write it.
        expect(bytes.length).toBe(g.dataOffset + expectedOffset);
        expect(bytes.subarray(0, g.dataOffset).length).toBe(planGguf(input).header.length);

        // And a second write of what was read gives the same bytes again.
        const again = await serializeGguf(toWriteInput(g));
        expect(Buffer.from(again).equals(bytes)).toBe(true);
      } finally {
        g.close();
      }
    });
  }

  it("writes 0-tensor files without padding and tensor files with it", async () => {
    const none = await serializeGguf({ metadata: new Map([["k", gstr("v")]]), tensors: [] });
    // 24 header + (8 + 1 + 4 + 8 + 1) entry = 46, no padding
    expect(none.length).toBe(46);
    const g = readGguf(new MemorySource(none));
    expect(g.dataOffset).toBe(46);
  });
});

describe("streaming", () => {
  it("calls each data() once, in order, only after the previous tensor is written", async () => {
    const log: string[] = [];
    const input: GgufWriteInput = { metadata: metadataWith(), tensors: tensorsOf(1, log) };
    const total = planGguf(input).totalSize;
    const progress: number[] = [];
    await writeGguf(join(dir, "stream.gguf"), input, {
      onProgress: (done, t) => {
        expect(t).toBe(total);
        progress.push(done);
        log.push(`progress ${done}`);
      },
    });
    const dataCalls = log.filter((l) => l.startsWith("data"));
    expect(dataCalls).toEqual(SPECS.map(([n]) => `data ${n}`));
    // header progress, then data/progress alternating: tensor k+1 is produced after k is written
    expect(log[0]!.startsWith("progress")).toBe(true);
    for (let i = 1; i < log.length; i += 2) {
      expect(log[i]!.startsWith("data")).toBe(true);
      expect(log[i + 1]!.startsWith("progress")).toBe(true);
    }
    expect(progress.at(-1)).toBe(total);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
  });

  it("accepts async data()", async () => {
    const t = tensorsOf(3).map((x) => ({ ...x, data: async () => x.data() }));
    const a = await serializeGguf({ metadata: metadataWith(), tensors: t });
    const b = await serializeGguf({ metadata: metadataWith(), tensors: tensorsOf(3) });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });
});

describe("atomic writes", () => {
  const tmpLeft = (d: string) => readdirSync(d).filter((f) => f.endsWith(".tmp"));

  it("abort: ERR_ABORTED, no temp file, the old file untouched", async () => {
    const d = mkdtempSync(join(dir, "abort-"));
    const path = join(d, "m.gguf");
    writeFileSync(path, "old");
    const ac = new AbortController();
    const tensors = tensorsOf(2).map((t, i) => ({
      ...t,
      data: () => {
        if (i === 3) ac.abort();
        return t.data();
      },
    }));
    await expectOwlError(
      writeGguf(path, { metadata: metadataWith(), tensors }, { signal: ac.signal }),
      "ERR_ABORTED",
    );
    expect(readFileSync(path, "utf8")).toBe("old");
    expect(tmpLeft(d)).toEqual([]);
    // aborted before it starts: nothing is created
    await expectOwlError(
      writeGguf(
        join(d, "n.gguf"),
        { metadata: metadataWith(), tensors: [] },
        { signal: AbortSignal.abort() },
      ),
      "ERR_ABORTED",
    );
    expect(readdirSync(d)).toEqual(["m.gguf"]);
  });

  it("a failing data() leaves the old file and no temp file", async () => {
    const d = mkdtempSync(join(dir, "fail-"));
    const path = join(d, "m.gguf");
    writeFileSync(path, "old");
    const tensors = tensorsOf(2).map((t, i) => ({
      ...t,
      data: () => {
        if (i === 2) throw new Error("disk on fire");
        return t.data();
      },
    }));
    await expectOwlError(
      writeGguf(path, { metadata: metadataWith(), tensors }),
      "ERR_GGUF_WRITE",
      /disk on fire/,
    );
    expect(readFileSync(path, "utf8")).toBe("old");
    expect(tmpLeft(d)).toEqual([]);
  });

  it("data() of the wrong length is ERR_GGUF_WRITE naming the tensor and both sizes", async () => {
    const d = mkdtempSync(join(dir, "len-"));
    const [t] = tensorsOf(2);
    const bad = { ...t!, data: () => new Uint8Array(5) };
    await expectOwlError(
      writeGguf(join(d, "x.gguf"), { metadata: metadataWith(), tensors: [bad] }),
      "ERR_GGUF_WRITE",
      /tensor "token_embd.weight": data\(\) must return 432 bytes .*found 5 bytes/,
    );
    expect(readdirSync(d)).toEqual([]);
  });

  it("a missing directory is ERR_IO", async () => {
    await expectOwlError(
      writeGguf(join(dir, "no", "such", "dir.gguf"), { metadata: new Map(), tensors: [] }),
      "ERR_IO",
    );
  });

  it("can rewrite the file it is reading from (edit metadata in place)", async () => {
    const path = join(dir, "inplace.gguf");
    await writeGguf(path, { metadata: metadataWith(64), tensors: tensorsOf(5) });
    const g = openGguf(path);
    try {
      const input = toWriteInput(g);
      input.metadata.set("general.name", gstr("edited"));
      await writeGguf(path, input); // the open handle keeps reading the old file's inode
    } finally {
      g.close();
    }
    const h = openGguf(path);
    try {
      expect(h.metadata.get("general.name")).toEqual({ type: "STRING", value: "edited" });
      for (const [i, t] of h.tensors.entries()) {
        expect(Buffer.from(h.readTensor(t)).equals(Buffer.from(randomBytes(t.byteSize, 5 + i)))).toBe(true);
      }
    } finally {
      h.close();
    }
  });

  it("replaces an existing file", async () => {
    const path = join(dir, "replace.gguf");
    writeFileSync(path, "old contents");
    await writeGguf(path, { metadata: metadataWith(), tensors: [] });
    expect(readFileSync(path).subarray(0, 4).toString("latin1")).toBe("GGUF");
  });
});

describe("writer input validation", () => {
  const t = (over: Partial<GgufTensorInput>): GgufTensorInput => ({
    name: "w",
    dims: [32],
    type: ggmlTypeByName("F32")!,
    data: () => new Uint8Array(128),
    ...over,
  });
  const cases: Array<[string, GgufWriteInput, OwlErrorCode, RegExp]> = [
    [
      "alignment not a power of two",
      { metadata: new Map([["general.alignment", gu32(48)]]), tensors: [] },
      "ERR_GGUF_BAD_ALIGNMENT",
      /power of two, found 48/,
    ],
    [
      "alignment of the wrong type",
      { metadata: new Map([["general.alignment", gu16(64)]]), tensors: [] },
      "ERR_GGUF_BAD_ALIGNMENT",
      /found a UINT16/,
    ],
    [
      "duplicate tensor",
      { metadata: new Map(), tensors: [t({}), t({})] },
      "ERR_GGUF_DUPLICATE_TENSOR",
      /"w"/,
    ],
    [
      "name of 64 bytes",
      { metadata: new Map(), tensors: [t({ name: "x".repeat(64) })] },
      "ERR_GGUF_BAD_TENSOR_INFO",
      /at most 63 bytes/,
    ],
    [
      "five dims",
      { metadata: new Map(), tensors: [t({ dims: [1, 1, 1, 1, 1] })] },
      "ERR_GGUF_BAD_TENSOR_INFO",
      /dims/,
    ],
    [
      "negative dim",
      { metadata: new Map(), tensors: [t({ dims: [-1] })] },
      "ERR_GGUF_BAD_TENSOR_INFO",
      /dims/,
    ],
    [
      "row not a whole number of blocks",
      { metadata: new Map(), tensors: [t({ dims: [33], type: ggmlTypeByName("Q4_0")! })] },
      "ERR_TENSOR_SHAPE",
      /rows of 33 values, expected a multiple of the block size 32/,
    ],
    [
      "lone surrogate",
      { metadata: new Map([["k", gstr("a\ud800b")]]), tensors: [] },
      "ERR_INVALID_ARGUMENT",
      /lone UTF-16 surrogate/,
    ],
    [
      "typed array of the wrong kind",
      {
        metadata: new Map([
          ["k", { type: "ARRAY", value: { itemType: "FLOAT32", items: new Float64Array(2) } }],
        ]),
        tensors: [],
      } as unknown as GgufWriteInput,
      "ERR_INVALID_ARGUMENT",
      /Float32Array/,
    ],
    [
      "integer out of range in a hand-built value",
      { metadata: new Map([["k", { type: "UINT8", value: 256 }]]), tensors: [] },
      "ERR_INVALID_ARGUMENT",
      /metadata "k": expected an integer in 0..255/,
    ],
    [
      "version 4",
      { version: 4, metadata: new Map(), tensors: [] } as unknown as GgufWriteInput,
      "ERR_GGUF_UNSUPPORTED_VERSION",
      /4/,
    ],
  ];
  for (const [name, input, code, re] of cases) {
    it(`${name} -> ${code}`, () => expectOwlError(() => planGguf(input), code, re));
  }
});
