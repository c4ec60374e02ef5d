/**
 * WasmBackend's memory and thread lifecycle: the bump allocator (alignment, growth, views that
 * survive growth, the memory limit), dispose(), and a process that forgets dispose() still exits
 * (the worker threads are unref'd).
 * Not here: kernel results (engine-wasm-matmul / -ops / -quantize tests).
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { createWasmBackend } from "../src/engine/kernels/wasm/backend.ts";
import { isOwlError } from "../src/util/errors.ts";

describe("WasmBackend memory", () => {
  it("allocates 64-byte aligned ranges, grows, and keeps earlier views valid", async () => {
    const b = await createWasmBackend({ threads: 1, maxMemoryBytes: 64 << 20 });
    try {
      const a = b.alloc(10);
      expect(a.offset % 64).toBe(0);
      const va = b.f32(b.upload(new Uint8Array(new Float32Array([1, 2, 3]).buffer)));
      const big = b.alloc(20 << 20); // past the initial memory: grows it
      expect(big.offset % 64).toBe(0);
      expect(b.usedBytes()).toBeGreaterThanOrEqual(big.offset + big.bytes);
      expect(Array.from(va)).toEqual([1, 2, 3]);
      b.f32(big).fill(7);
      expect(b.f32(big)[(5 << 20) - 1]).toBe(7);
      let err: unknown;
      try {
        b.alloc(64 << 20);
      } catch (e) {
        err = e;
      }
      expect(isOwlError(err, "ERR_UNSUPPORTED")).toBe(true);
    } finally {
      await b.dispose();
    }
  });

  it("rejects use after dispose and a bad thread count", async () => {
    const b = await createWasmBackend({ threads: 2 });
    await b.dispose();
    await b.dispose(); // idempotent
    expect(() => b.alloc(4)).toThrow(/after dispose/);
    await expect(createWasmBackend({ threads: 0 })).rejects.toThrow(/threads/);
  });

  it("a process runs on after awaiting dispose(), and exits when one backend is never disposed", () => {
    const code = [
      `const { createWasmBackend } = await import(${JSON.stringify(new URL("../src/engine/kernels/wasm/backend.ts", import.meta.url).href)});`,
      "const a = await createWasmBackend({ threads: 2 });",
      "await a.dispose();",
      "const b = await createWasmBackend({ threads: 2 });",
      "process.stdout.write(String(b.threads));",
    ].join("\n");
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      timeout: 30_000,
      encoding: "utf8",
    });
    expect(out).toBe("2");
  });
});
