/**
 * Seeded fuzz test of the safetensors reader (and the index parser): mutate small valid files
 * (generated ones with many dtypes and metadata, and a hand-laid one) with byte flips, random
 * header bytes, truncation, inserted and deleted ranges, absurd u64 header lengths, and JSON-aware
 * edits (offsets and dimensions made huge, negative or fractional, dtypes swapped, fields removed,
 * keys duplicated, metadata made non-string). Every case must either parse (and then read every
 * tensor) or throw an OwlError: any other exception fails with the seed and case number. A counting
 * ByteSource checks that no read asks for more than the file holds, and arrayBuffers memory must
 * not jump. Set OWL_FUZZ_SEED to replay another seed.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  dtypeInfo,
  readSafetensors,
  readSafetensorsIndex,
  SAFETENSORS_DTYPES,
  type SafetensorsTensorInput,
  serializeSafetensors,
} from "../src/formats/safetensors/index.ts";
import { type ByteSource, MemorySource } from "../src/util/bytes.ts";
import { isOwlError } from "../src/util/errors.ts";

const SEED = Number(process.env.OWL_FUZZ_SEED ?? 0x5afe7e45);
const CASES = 3000;

/** mulberry32: small, fast, good enough to drive mutations reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Wraps a source; fails the test on any read larger than the file, and counts bytes read. */
class CountingSource implements ByteSource {
  bytesRead = 0;
  maxRead = 0;
  constructor(private readonly inner: ByteSource) {}
  get size(): number {
    return this.inner.size;
  }
  get name(): string {
    return this.inner.name;
  }
  read(offset: number, length: number): Uint8Array {
    this.note(length);
    return this.inner.read(offset, length);
  }
  readInto(offset: number, target: Uint8Array): void {
    this.note(target.length);
    this.inner.readInto(offset, target);
  }
  close(): void {
    this.inner.close();
  }
  private note(length: number): void {
    if (length > this.inner.size)
      throw new Error(`read of ${length} bytes from a ${this.inner.size}-byte file`);
    this.bytesRead += length;
    this.maxRead = Math.max(this.maxRead, length);
  }
}

function layout(header: string, data: Uint8Array, n?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, n ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** The stored header length, clamped to what the (possibly mutated) file holds. */
function headerLength(file: Uint8Array): number {
  if (file.length < 8) return 0;
  const n = new DataView(file.buffer, file.byteOffset).getBigUint64(0, true);
  return Number(n < BigInt(file.length - 8) ? n : BigInt(file.length - 8));
}

function split(file: Uint8Array): { header: string; data: Uint8Array } {
  const n = headerLength(file);
  return { header: new TextDecoder().decode(file.subarray(8, 8 + n)), data: file.subarray(8 + n) };
}

let fixtures: Uint8Array[] = [];

beforeAll(async () => {
  const fill = (n: number, k: number) => () =>
    Uint8Array.from({ length: n }, (_, i) => (i * 29 + k * 7) & 0xff);
  const t = (
    name: string,
    dtype: SafetensorsTensorInput["dtype"],
    shape: number[],
    k: number,
  ): SafetensorsTensorInput => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { name, dtype, shape, data: fill((n * dtypeInfo(dtype).bits) / 8, k) };
  };
  const many = await serializeSafetensors({
    metadata: { format: "pt", note: "héllo" },
    tensors: [
      t("w", "F32", [2, 3], 1),
      t("h", "F16", [4], 2),
      t("b", "BF16", [2, 2], 3),
      t("pos", "I64", [3], 4),
      t("u", "U8", [5], 5),
      t("mask", "BOOL", [2], 6),
      t("e4", "F8_E4M3", [4], 7),
      t("e5", "F8_E5M2", [3], 8),
      t("s", "I32", [], 9),
      t("empty", "F64", [0, 2], 10),
      t("d", "F64", [1], 11),
      t("p", "F4", [2], 12),
    ],
  });
  const plain = await serializeSafetensors({
    tensors: [t("a", "F32", [4], 1), t("b", "I16", [3], 2), t("c", "U64", [1], 3)],
  });
  // Laid out by hand: pretty-printed, keys out of offset order, escapes, __metadata__ last.
  const hand = layout(
    `{\n  "z\\u00e9": {"dtype": "U8", "shape": [3], "data_offsets": [8, 11]},\n  "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},\n  "__metadata__": {"k": "v"}\n}   `,
    Uint8Array.from({ length: 11 }, (_, i) => i * 13),
  );
  fixtures = [many, plain, hand];
});

const HUGE = [2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, -1, -(2 ** 31), 0.5, 1e-300, 4294967296, 2147483648];
const junkValues: unknown[] = [null, true, "x", [], {}, [1, 2], "F32", -0, ...HUGE];

type Mutator = (rand: () => number, file: Uint8Array) => { bytes: Uint8Array; what: string };

const int = (rand: () => number, n: number) => Math.floor(rand() * n);
const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[int(rand, xs.length)]!;

/** A JSON-aware edit of a header that still parses. */
function mutateJson(rand: () => number, file: Uint8Array): { bytes: Uint8Array; what: string } {
  const { header, data } = split(file);
  const obj = JSON.parse(header) as Record<string, Record<string, unknown>>;
  const names = Object.keys(obj).filter((k) => k !== "__metadata__");
  const name = pick(rand, names);
  const entry = obj[name]!;
  const offsets = entry.data_offsets as unknown[];
  const shape = entry.shape as unknown[];
  let what: string;
  switch (int(rand, 10)) {
    case 0:
      offsets[int(rand, 2)] = pick(rand, [...HUGE, int(rand, data.length + 8)]);
      what = `data_offsets of ${name} -> ${JSON.stringify(offsets)}`;
      break;
    case 1:
      if (shape.length === 0) shape.push(pick(rand, HUGE));
      else shape[int(rand, shape.length)] = pick(rand, [...HUGE, 0, 1, 3, int(rand, 1 << 20)]);
      what = `shape of ${name} -> ${JSON.stringify(shape)}`;
      break;
    case 2:
      entry.dtype = pick(rand, [...SAFETENSORS_DTYPES, "F33", "", "f32", 7, null]);
      what = `dtype of ${name} -> ${JSON.stringify(entry.dtype)}`;
      break;
    case 3: {
      const field = pick(rand, ["dtype", "shape", "data_offsets"]);
      delete entry[field];
      what = `removed ${field} of ${name}`;
      break;
    }
    case 4: {
      const field = pick(rand, ["dtype", "shape", "data_offsets"]);
      entry[field] = pick(rand, junkValues);
      what = `${field} of ${name} -> ${JSON.stringify(entry[field])}`;
      break;
    }
    case 5:
      obj.__metadata__ = pick(rand, [
        { a: 1 },
        { a: null },
        { a: { b: "c" } },
        [],
        "pt",
        null,
        { ok: "yes" },
      ]) as never;
      what = `__metadata__ -> ${JSON.stringify(obj.__metadata__)}`;
      break;
    case 6: {
      const other = pick(rand, names);
      const tmp = entry.data_offsets;
      entry.data_offsets = obj[other]!.data_offsets;
      obj[other]!.data_offsets = tmp;
      what = `swapped offsets of ${name} and ${other}`;
      break;
    }
    case 7:
      shape.push(pick(rand, [1, 2, 0, 2 ** 26]));
      what = `extra dimension on ${name}`;
      break;
    case 8: {
      obj[`${name}_copy`] = { ...entry };
      what = `copied ${name}`;
      break;
    }
    default: {
      // Duplicate a key in the text (JSON.stringify cannot produce one).
      const text = JSON.stringify(obj);
      const dup = text.replace("{", `{${JSON.stringify(name)}:${JSON.stringify(entry)},`);
      return { bytes: layout(dup, data), what: `duplicated key ${name}` };
    }
  }
  return { bytes: layout(JSON.stringify(obj), data), what };
}

const mutators: Mutator[] = [
  (rand, f) => {
    const b = f.slice();
    const flips = 1 + int(rand, 4);
    for (let i = 0; i < flips; i++) b[int(rand, b.length)]! ^= 1 << int(rand, 8);
    return { bytes: b, what: `${flips} bit flips` };
  },
  (rand, f) => {
    const b = f.slice();
    const n = headerLength(b);
    const at = 8 + int(rand, Math.max(1, n));
    b[at] = int(rand, 256);
    return { bytes: b, what: `header byte ${at} = ${b[at]}` };
  },
  (rand, f) => {
    const cut = int(rand, f.length);
    return { bytes: f.slice(0, cut), what: `truncated to ${cut}` };
  },
  (rand, f) => {
    const at = int(rand, f.length + 1);
    const ins = Uint8Array.from({ length: 1 + int(rand, 16) }, () => int(rand, 256));
    const b = new Uint8Array(f.length + ins.length);
    b.set(f.subarray(0, at));
    b.set(ins, at);
    b.set(f.subarray(at), at + ins.length);
    return { bytes: b, what: `inserted ${ins.length} bytes at ${at}` };
  },
  (rand, f) => {
    const at = int(rand, f.length);
    const len = 1 + int(rand, 16);
    const b = new Uint8Array([...f.subarray(0, at), ...f.subarray(at + len)]);
    return { bytes: b, what: `deleted ${len} bytes at ${at}` };
  },
  (rand, f) => {
    const b = f.slice();
    const n = headerLength(b);
    const v = pick(rand, [
      2n ** BigInt(int(rand, 64)),
      2n ** 64n - 1n,
      0n,
      100_000_000n,
      100_000_001n,
      BigInt(b.length - 8),
      BigInt(Math.max(0, n - 1 - int(rand, 8))),
      BigInt(n + 1 + int(rand, 8)),
      BigInt(int(rand, 0x7fffffff)) << 32n,
    ]);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return { bytes: b, what: `header length = ${v}` };
  },
  mutateJson,
  (rand, f) => {
    // Replace a run of digits in the header with another number.
    const { header, data } = split(f);
    const runs = [...header.matchAll(/\d+/g)];
    if (runs.length === 0) return { bytes: f, what: "no digits" };
    const r = pick(rand, runs);
    const num = pick(rand, [
      "0",
      "9007199254740993",
      "18446744073709551616",
      "1e400",
      "-5",
      "3.5",
      String(int(rand, 100)),
    ]);
    const text = header.slice(0, r.index) + num + header.slice(r.index! + r[0].length);
    return { bytes: layout(text, data), what: `number at ${r.index} -> ${num}` };
  },
  (rand, f) => {
    // Invalid UTF-8 inside the header.
    const b = f.slice();
    const n = headerLength(b);
    const seq = pick(rand, [
      [0xff],
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xe2, 0x82],
      [0xf5, 0x80, 0x80, 0x80],
    ]);
    const at = 8 + int(rand, Math.max(1, n - seq.length));
    b.set(seq.slice(0, Math.max(0, Math.min(seq.length, b.length - at))), at);
    return { bytes: b, what: `invalid UTF-8 at ${at}` };
  },
];

/** Parse and read everything; the error code, or "ok". Throws on a non-OwlError or an oversized read. */
function runCase(bytes: Uint8Array, label: string): string {
  const src = new CountingSource(new MemorySource(bytes, "fuzz.safetensors"));
  const code = parseAndRead(src, label);
  if (src.bytesRead > 3 * bytes.length + 16)
    throw new Error(`${label}: read ${src.bytesRead} bytes of ${bytes.length}`);
  return code;
}

function parseAndRead(src: CountingSource, label: string): string {
  try {
    const f = readSafetensors(src);
    for (const t of f.tensors) {
      f.readTensor(t);
      if (dtypeInfo(t.dtype).toFloat32) f.readTensorAsFloat32(t);
    }
    return "ok";
  } catch (e) {
    if (isOwlError(e)) {
      if (!e.message || e.message.length > 2000)
        throw new Error(`${label}: bad message ${e.message?.length}`);
      return e.code;
    }
    throw new Error(`${label}: non-OwlError ${e instanceof Error ? e.stack : String(e)}`);
  }
}

describe("safetensors fuzz", () => {
  it(`${CASES} mutated files give only OwlErrors (seed ${SEED})`, () => {
    const rand = prng(SEED);
    const codes = new Map<string, number>();
    const baseline = process.memoryUsage().arrayBuffers;
    let maxGrowth = 0;
    let slowest = 0;
    for (let i = 0; i < CASES; i++) {
      let bytes = pick(rand, fixtures);
      const steps: string[] = [];
      const nMut = 1 + (rand() < 0.3 ? int(rand, 3) : 0);
      for (let k = 0; k < nMut && bytes.length > 0; k++) {
        // A mutation may not apply to what earlier ones left (a header that no longer parses, a
        // file shorter than 8 bytes): then it is skipped. Only the reader is under test.
        try {
          const m = pick(rand, mutators)(rand, bytes);
          bytes = m.bytes;
          steps.push(m.what);
        } catch {
          steps.push("skipped");
        }
      }
      const label = `seed ${SEED} case ${i} [${steps.join("; ")}]`;
      const t0 = performance.now();
      const code = runCase(bytes, label);
      slowest = Math.max(slowest, performance.now() - t0);
      codes.set(code, (codes.get(code) ?? 0) + 1);
      if (i % 250 === 0) maxGrowth = Math.max(maxGrowth, process.memoryUsage().arrayBuffers - baseline);
    }
    expect(slowest, "slowest case (ms)").toBeLessThan(1000);
    expect(maxGrowth, "arrayBuffers growth").toBeLessThan(64 * 1024 * 1024);
    // The mutations reach deep into validation, not just the first check.
    const seen = [...codes.keys()];
    for (const code of [
      "ok",
      "ERR_TRUNCATED",
      "ERR_SAFETENSORS_HEADER_TOO_LARGE",
      "ERR_SAFETENSORS_BAD_HEADER",
      "ERR_INVALID_UTF8",
      "ERR_UNKNOWN_DTYPE",
      "ERR_TENSOR_SHAPE",
      "ERR_TENSOR_OUT_OF_BOUNDS",
      "ERR_TENSOR_OVERLAP",
      "ERR_SAFETENSORS_INCOMPLETE_BUFFER",
      "ERR_SAFETENSORS_DUPLICATE_KEY",
      "ERR_SAFETENSORS_BAD_METADATA",
    ]) {
      expect(seen, `codes seen: ${JSON.stringify(Object.fromEntries(codes))}`).toContain(code);
    }
  });

  describe("index files", () => {
    let dir = "";
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "owl-st-fuzz-"));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("500 mutated indexes give only OwlErrors", () => {
      const rand = prng(SEED ^ 0x1dec);
      const good = new TextEncoder().encode(
        JSON.stringify({
          metadata: { total_size: 10 },
          weight_map: { a: "m-1.safetensors", "b.c": "sub/m-2.safetensors" },
        }),
      );
      const p = join(dir, "model.safetensors.index.json");
      for (let i = 0; i < 500; i++) {
        const b = good.slice();
        const steps = 1 + int(rand, 3);
        for (let k = 0; k < steps; k++)
          b[int(rand, b.length)] = pick(rand, [
            0x22,
            0x2e,
            0x2f,
            0x5c,
            0x7b,
            0x7d,
            0x3a,
            0xff,
            int(rand, 256),
          ]);
        writeFileSync(p, b);
        try {
          readSafetensorsIndex(p);
        } catch (e) {
          if (!isOwlError(e)) throw new Error(`seed ${SEED} index case ${i}: ${String(e)}`);
        }
      }
    });
  });
});
