/**
 * Seeded fuzzing of the GGUF reader: mutated copies of a small generated file with tensors (every
 * value type, nested arrays) and of a llama.cpp vocabulary fixture must either parse or throw an
 * OwlError: never another exception, never a hang, and never read or allocate more than a small
 * multiple of the file. Parsed results are also written back and re-read. A failure prints the
 * seed and case index; rerun one case with fuzzCase(seed, index).
 *
 * Mutations: bit flips, random byte runs, truncation, insertion and deletion of ranges, and
 * overwriting a u64 count, length, dimension or offset field (found by a walker written here,
 * independent of owl's reader) with a huge or off-by-a-little value.
 */
import { describe, expect, it } from "vitest";
import {
  garr,
  gbool,
  gf32,
  gf64,
  gi8,
  gi16,
  gi64,
  gstr,
  gu16,
  gu32,
  gu64,
  inner,
  readGguf,
  serializeGguf,
  toWriteInput,
} from "../src/formats/gguf/index.ts";
import type { GgufMetadata } from "../src/formats/gguf/types.ts";
import { type ByteSource, MemorySource } from "../src/util/bytes.ts";
import { isOwlError } from "../src/util/errors.ts";
import { ggmlTypeByName } from "../src/util/ggml-types.ts";
import { fixturePath } from "./helpers/fixtures.ts";

const SEED = 0x0ddba11;

/** splitmix32: tiny, seedable, good enough to pick mutations. */
function prng(seed: number): { int(n: number): number; pick<T>(a: readonly T[]): T } {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  return {
    int: (n) => (n <= 0 ? 0 : next() % n),
    pick: (a) => a[next() % a.length]!,
  };
}

/** Counts what the reader asks of the source: total bytes and the largest single read. */
class CountingSource implements ByteSource {
  readonly size: number;
  readonly name = "fuzz.gguf";
  bytesRead = 0;
  largestRead = 0;
  constructor(private readonly inner: MemorySource) {
    this.size = inner.size;
  }
  read(offset: number, length: number): Uint8Array {
    this.count(length);
    return this.inner.read(offset, length);
  }
  readInto(offset: number, target: Uint8Array): void {
    this.count(target.byteLength);
    this.inner.readInto(offset, target);
  }
  private count(n: number) {
    this.bytesRead += n;
    this.largestRead = Math.max(this.largestRead, n);
  }
  close(): void {}
}

/** Offsets of every u64 count/length/dim/offset field of a well-formed GGUF (spec walk). */
function u64Fields(b: Uint8Array): number[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
  const out = [8, 16];
  let p = 24;
  const u64 = () => {
    out.push(p);
    const n = Number(dv.getBigUint64(p, true));
    p += 8;
    return n;
  };
  const str = () => {
    const n = u64(); // NOTE: not `p += u64()`, which would add to p as it was before the call
    p += n;
  };
  const arr = () => {
    const t = dv.getUint32(p, true);
    p += 4;
    const n = u64();
    if (t === 8) for (let i = 0; i < n; i++) str();
    else if (t === 9) for (let i = 0; i < n; i++) arr();
    else p += n * SIZE[t]!;
  };
  const nT = Number(dv.getBigUint64(8, true));
  const nKv = Number(dv.getBigUint64(16, true));
  for (let i = 0; i < nKv; i++) {
    str();
    const t = dv.getUint32(p, true);
    p += 4;
    if (t === 8) str();
    else if (t === 9) arr();
    else p += SIZE[t]!;
  }
  for (let i = 0; i < nT; i++) {
    str();
    const nd = dv.getUint32(p, true);
    p += 4;
    for (let d = 0; d < nd; d++) u64();
    p += 4;
    u64();
  }
  return out;
}

async function smallFile(): Promise<Uint8Array> {
  const md: GgufMetadata = new Map([
    ["general.architecture", gstr("llama")],
    ["general.alignment", gu32(64)],
    ["a.i8", gi8(-3)],
    ["a.u16", gu16(7)],
    ["a.i16", gi16(-7)],
    ["a.f32", gf32(0.25)],
    ["a.f64", gf64(1e-300)],
    ["a.u64", gu64(123n)],
    ["a.i64", gi64(-123n)],
    ["a.bool", gbool(false)],
    ["a.bools", garr.bools([true, false, true])],
    [
      "a.nested",
      garr.arrays([inner(garr.u8([1, 2, 3])), inner(garr.strings(["x", "é"])), inner(garr.arrays([]))]),
    ],
    ["tokenizer.ggml.tokens", garr.strings(["<unk>", "▁the", "🦉", "", "é"])],
    ["tokenizer.ggml.scores", garr.f32([0, -1, -2, -3, -4])],
    ["tokenizer.ggml.token_type", garr.i32([2, 1, 1, 1, 1])],
  ]);
  const t = (name: string, type: string, dims: number[]) => {
    const info = ggmlTypeByName(type)!;
    const size = (dims.reduce((a, b) => a * b, 1) / info.blockSize) * info.bytesPerBlock;
    return { name, dims, type: info, data: () => new Uint8Array(size).fill(0x5a) };
  };
  return serializeGguf({
    metadata: md,
    tensors: [t("tok", "Q4_0", [32, 3]), t("norm", "F32", [5]), t("w", "F16", [3, 2, 2]), t("e", "F32", [0])],
  });
}

/** A vocabulary-like file of 3000 tokens: exercises the batched string-array decoding. */
async function vocabFile(): Promise<Uint8Array> {
  const tokens = Array.from({ length: 3000 }, (_, i) =>
    i % 3 === 0 ? `Ġ${i}` : i % 11 === 0 ? `🦉${i}` : `t${i}`,
  );
  return serializeGguf({
    metadata: new Map([
      ["tokenizer.ggml.model", gstr("gpt2")],
      ["tokenizer.ggml.tokens", garr.strings(tokens)],
      ["tokenizer.ggml.merges", garr.strings(tokens.slice(0, 1000).map((t) => `${t} ${t}`))],
    ]),
    tensors: [],
  });
}

const HUGE = [2n ** 64n - 1n, 2n ** 63n, 2n ** 60n, 2n ** 50n, 2n ** 32n, 2n ** 32n + 1n, 0xffffffffn];

function mutate(
  src: Uint8Array,
  fields: number[],
  r: ReturnType<typeof prng>,
): { bytes: Uint8Array; what: string } {
  let b = src.slice();
  const what: string[] = [];
  const rounds = 1 + r.int(3);
  for (let k = 0; k < rounds; k++) {
    const at = r.int(b.length);
    switch (r.int(7)) {
      case 0: {
        const n = 1 + r.int(8);
        for (let i = 0; i < n; i++) {
          const p = r.int(b.length);
          b[p]! ^= 1 << r.int(8);
        }
        what.push(`flip ${n} bits`);
        break;
      }
      case 1: {
        const n = 1 + r.int(16);
        for (let i = 0; i < n && at + i < b.length; i++) b[at + i] = r.int(256);
        what.push(`random ${n} bytes at ${at}`);
        break;
      }
      case 2:
        b = b.slice(0, at);
        what.push(`truncate to ${at}`);
        break;
      case 3: {
        const n = 1 + r.int(64);
        const ins = new Uint8Array(n).map(() => r.int(256));
        const grown = new Uint8Array(b.length + n);
        grown.set(b.subarray(0, at));
        grown.set(ins, at);
        grown.set(b.subarray(at), at + n);
        b = grown;
        what.push(`insert ${n} at ${at}`);
        break;
      }
      case 4: {
        const n = 1 + r.int(64);
        const shrunk = new Uint8Array(Math.max(at, b.length - n));
        shrunk.set(b.subarray(0, at));
        shrunk.set(b.subarray(at + n), at);
        b = shrunk;
        what.push(`delete ${n} at ${at}`);
        break;
      }
      default: {
        // a u64 field (count, length, dim, offset) set to something huge or off by a little
        const p = r.pick(fields);
        if (p + 8 > b.length) break;
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const old = dv.getBigUint64(p, true);
        const v = r.int(2) === 0 ? r.pick(HUGE) : BigInt.asUintN(64, old + BigInt(r.int(17) - 8));
        dv.setBigUint64(p, v, true);
        what.push(`u64 at ${p}: ${old} -> ${v}`);
      }
    }
  }
  return { bytes: b, what: what.join(", ") };
}

interface Stats {
  parsed: number;
  rejected: Map<string, number>;
  maxReadRatio: number;
}

/** One fuzz case; throws (with seed, index and mutation) on anything but success or OwlError. */
async function fuzzCase(
  base: Uint8Array,
  fields: number[],
  seed: number,
  index: number,
  stats: Stats,
  rewrite: boolean,
) {
  const r = prng(seed ^ Math.imul(index, 0x9e3779b1));
  const { bytes, what } = mutate(base, fields, r);
  const src = new CountingSource(new MemorySource(bytes));
  const t0 = performance.now();
  const where = `seed ${seed}, case ${index} (${what})`;
  try {
    const g = readGguf(src);
    for (const t of g.tensors) expect(g.readTensor(t).byteLength, where).toBe(t.byteSize);
    if (rewrite) {
      // what parses must write back (or be refused with an OwlError) and read again
      let out: Uint8Array | undefined;
      try {
        out = await serializeGguf(toWriteInput(g));
      } catch (e) {
        if (!isOwlError(e)) throw e;
      }
      if (out) {
        const again = readGguf(new MemorySource(out));
        expect([...again.metadata.keys()], where).toEqual([...g.metadata.keys()]);
        expect(
          again.tensors.map((t) => t.name),
          where,
        ).toEqual(g.tensors.map((t) => t.name));
      }
    }
    stats.parsed++;
  } catch (e) {
    if (!isOwlError(e)) {
      throw new Error(`fuzz: non-OwlError at ${where}: ${(e as Error)?.stack ?? e}`);
    }
    stats.rejected.set(e.code, (stats.rejected.get(e.code) ?? 0) + 1);
  }
  const ms = performance.now() - t0;
  if (ms > 2000) throw new Error(`fuzz: ${where} took ${ms.toFixed(0)} ms`);
  // Reads stay within a small multiple of the file (the header is read once, a string array at
  // most twice when it holds bad UTF-8, each tensor once), whatever the counts in the file claim.
  const ratio = src.bytesRead / Math.max(bytes.length, 1);
  stats.maxReadRatio = Math.max(stats.maxReadRatio, ratio);
  if (src.bytesRead > 3 * bytes.length + 64) {
    throw new Error(`fuzz: ${where} read ${src.bytesRead} bytes of a ${bytes.length}-byte file`);
  }
}

async function run(base: Uint8Array, cases: number, seed: number, rewrite: boolean) {
  const fields = u64Fields(base);
  const stats: Stats = { parsed: 0, rejected: new Map(), maxReadRatio: 0 };
  const ab0 = process.memoryUsage().arrayBuffers;
  let abMax = 0;
  for (let i = 0; i < cases; i++) {
    await fuzzCase(base, fields, seed, i, stats, rewrite);
    if (i % 50 === 0) abMax = Math.max(abMax, process.memoryUsage().arrayBuffers - ab0);
  }
  // Nothing the reader allocates outlives a case; garbage may linger until GC, so the bound is loose.
  expect(abMax).toBeLessThan(256 * 2 ** 20);
  return stats;
}

function summary(s: Stats) {
  return `${s.parsed} parsed, rejected ${[...s.rejected].map(([c, n]) => `${c} ${n}`).join(", ")}; max read ${s.maxReadRatio.toFixed(2)}x`;
}

describe("fuzz", () => {
  it("2000 mutations of a small file with tensors and every value type", async () => {
    const base = await smallFile();
    const s = await run(base, 2000, SEED, true);
    console.log(`small file (${base.length} bytes): ${summary(s)}`);
    expect(s.rejected.size).toBeGreaterThan(5); // the mutations reach many different checks
  }, 60_000);

  it("600 mutations of a 3000-token vocabulary", async () => {
    const base = await vocabFile();
    const s = await run(base, 600, SEED + 1, true);
    console.log(`vocab (${base.length} bytes): ${summary(s)}`);
    expect(s.rejected.get("ERR_INVALID_UTF8") ?? 0).toBeGreaterThan(0);
  }, 60_000);

  const spm = fixturePath("tokenizer/ggml-vocab-llama-spm.gguf");
  it.skipIf(!spm)(
    "200 mutations of the llama-spm fixture",
    async () => {
      const { readFileSync } = await import("node:fs");
      const base = new Uint8Array(readFileSync(spm!));
      const s = await run(base, 200, SEED + 2, false);
      console.log(`llama-spm (${base.length} bytes): ${summary(s)}`);
    },
    60_000,
  );
});
