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
