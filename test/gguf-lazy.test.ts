/**
 * Lazy opening: a ~20 GB GGUF made sparse (a real header describing huge tensors, then
 * ftruncate; sparse files cost no disk) opens in milliseconds with memory that does not grow
 * with the file, and the small tensor at its far end reads back correctly. Not here: parsing
 * details (gguf-read) and bad input (gguf-bad).
 */
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { garr, gstr, openGguf, planGguf } from "../src/formats/gguf/index.ts";
import type { GgufTensorInput } from "../src/formats/gguf/types.ts";
import { isOwlError } from "../src/util/errors.ts";
import { ggmlTypeByName } from "../src/util/ggml-types.ts";

const dir = mkdtempSync(join(tmpdir(), "owl-gguf-lazy-"));
const path = join(dir, "sparse-20g.gguf");
const M = 1 << 20;
const FAR = new Float32Array(Array.from({ length: 16 }, (_, i) => i * 0.5 - 3));

function tensor(name: string, type: string, dims: number[]): GgufTensorInput {
  return {
    name,
    dims,
    type: ggmlTypeByName(type)!,
    data: () => {
      throw new Error("never produced: the file is made sparse");
    },
  };
}

let expectedSize = 0;

beforeAll(() => {
  const layout = planGguf({
    metadata: new Map([
      ["general.architecture", gstr("llama")],
      ["tokenizer.ggml.tokens", garr.strings(Array.from({ length: 1000 }, (_, i) => `tok${i}`))],
    ]),
    tensors: [
      tensor("blk.0.big", "F32", [M, 1280]), // 5 GiB
      tensor("blk.1.big", "Q8_0", [M, 4096]), // 4.25 GiB
      tensor("blk.2.big", "F16", [M, 2560]), // 5 GiB
      tensor("blk.3.big", "Q4_K", [M, 4096]), // 2.25 GiB
      tensor("blk.4.big", "F32", [M, 768]), // 3 GiB
      tensor("far.end", "F32", [4, 4]),
    ],
  });
  const far = layout.tensors.at(-1)!;
  const fd = openSync(path, "w");
  try {
    writeSync(fd, layout.header, 0, layout.header.length, 0);
    ftruncateSync(fd, layout.totalSize);
    writeSync(fd, new Uint8Array(FAR.buffer), 0, FAR.byteLength, layout.dataOffset + far.offset);
  } finally {
    closeSync(fd);
  }
  expectedSize = layout.totalSize;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a sparse 20 GB GGUF", () => {
  it("is really about 20 GB", () => {
    expect(statSync(path).size).toBe(expectedSize);
    expect(expectedSize).toBeGreaterThan(20e9);
  });

  it("opens in well under a second, without memory growing with the file", () => {
    const before = process.memoryUsage();
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const g = openGguf(path);
      times.push(performance.now() - t0);
      expect(g.fileSize).toBe(expectedSize);
      expect(g.tensors).toHaveLength(6);
      g.close();
    }
    const after = process.memoryUsage();
    // typically ~1 ms; the bound leaves room for a slow shared machine
    expect(Math.min(...times)).toBeLessThan(200);
    expect(Math.max(...times)).toBeLessThan(1000);
    // Ten opens of a 20 GB file: the header (about 20 KB) and a 64 KB read chunk each, not gigabytes.
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(32 * M);
    expect(after.rss - before.rss).toBeLessThan(128 * M);
  });

  it("reads the tensor at the far end", () => {
    const g = openGguf(path);
    try {
      const t = g.tensor("far.end")!;
      expect(t.fileOffset).toBeGreaterThan(20e9);
      expect(t.fileOffset + t.byteSize).toBeLessThanOrEqual(g.fileSize);
      const bytes = g.readTensor(t);
      expect([...new Float32Array(bytes.slice().buffer)]).toEqual([...FAR]);
    } finally {
      g.close();
    }
  });

  it("counts that a 20 GB file could hold but no real file has are refused before allocating", () => {
    // magic, version 3, n_tensors, n_kv; then an optional array entry "k"
    const head = (nTensors: bigint, nKv: bigint, arr?: [number, bigint]) => {
      const b = Buffer.alloc(24 + (arr ? 8 + 1 + 4 + 4 + 8 : 0));
      b.write("GGUF", 0, "latin1");
      b.writeUInt32LE(3, 4);
      b.writeBigUInt64LE(nTensors, 8);
      b.writeBigUInt64LE(nKv, 16);
      if (arr) {
        b.writeBigUInt64LE(1n, 24);
        b.write("k", 32, "latin1");
        b.writeUInt32LE(9, 33);
        b.writeUInt32LE(arr[0], 37);
        b.writeBigUInt64LE(arr[1], 41);
      }
      return b;
    };
    const cases: Array<[Buffer, RegExp]> = [
      [
        head(2n ** 23n, 0n),
        /tensor count \(n_tensors\): count at byte 8 is 8388608, more than the 4194304 owl reads/,
      ],
      [head(0n, 2n ** 23n), /n_kv\) at byte 16 is 8388608, more than the 4194304 owl reads/],
      [
        head(0n, 1n, [8, 2n ** 27n]),
        /metadata "k": count at byte 41 is 134217728, more than the 67108864 owl reads/,
      ],
      [head(0n, 1n, [6, 2n ** 27n]), /is 134217728, more than the 67108864 owl reads/], // FLOAT32: 2^28 bytes
    ];
    const sparse = join(dir, "counts.gguf");
    for (const [bytes, re] of cases) {
      const fd = openSync(sparse, "w");
      writeSync(fd, bytes, 0, bytes.length, 0);
      ftruncateSync(fd, 20e9);
      closeSync(fd);
      const before = process.memoryUsage().arrayBuffers;
      let err: unknown;
      try {
        openGguf(sparse).close();
      } catch (e) {
        err = e;
      }
      expect(isOwlError(err, "ERR_GGUF_BAD_COUNT"), String(err)).toBe(true);
      expect((err as Error).message).toMatch(re);
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * M);
    }
    rmSync(sparse);
  });

  it("refuses to read a single tensor larger than one JavaScript buffer, without allocating", () => {
    const g = openGguf(path);
    try {
      let err: unknown;
      try {
        g.readTensor("blk.0.big");
      } catch (e) {
        err = e;
      }
      expect(isOwlError(err, "ERR_UNSUPPORTED"), String(err)).toBe(true);
      expect((err as Error).message).toMatch(/blk\.0\.big" has 5368709120 bytes/);
    } finally {
      g.close();
    }
  });
});
