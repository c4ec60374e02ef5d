/**
 * The GGUF writer streams: its peak memory is bounded by the largest tensor, not the model.
 * Measured in a child process with a forced GC before each tensor is requested.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { REPO_ROOT } from "./helpers/fixtures.ts";

it("writes 160 MiB of tensors holding at most a few tensors' worth of buffers", () => {
  const dir = mkdtempSync(join(tmpdir(), "owl-gguf-mem-"));
  try {
    const out = execFileSync(
      process.execPath,
      ["--expose-gc", "--import", "tsx", join(REPO_ROOT, "test", "helpers", "gguf-write-memory.ts"), dir],
      { cwd: REPO_ROOT, encoding: "utf8" },
    );
    const { peak, total, tensor } = JSON.parse(out) as { peak: number; total: number; tensor: number };
    expect(statSync(join(dir, "big.gguf")).size).toBeGreaterThan(total);
    // At most the tensor being written plus the one just produced, and some slack for I/O buffers.
    expect(peak).toBeLessThan(2 * tensor + (4 << 20));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
