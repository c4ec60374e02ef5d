/**
 * Crash safety of the model store: an import aborted through its AbortSignal (while hashing and
 * while copying) and a child process killed with SIGKILL in the middle of copying a large sparse
 * GGUF leave no model visible and no half blob under a real name; the temp files a dead process
 * left are removed when a store is next used, and a live process's temp files are kept.
 */
import { spawn } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ModelStore } from "../src/store/store.ts";
import type { Modelfile } from "../src/store/types.ts";
import { isOwlError } from "../src/util/errors.ts";
import { REPO_ROOT } from "./helpers/fixtures.ts";

const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");

let dir: string;
let root: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "owl-store-crash-"));
  root = join(dir, "models");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mf = (from: string): Modelfile => ({ from, params: {}, adapters: [], license: [], messages: [] });

/** The bundled GGUF followed by zeros up to `bytes` (a sparse file: no disk used for the zeros). */
function bigGguf(bytes: number): string {
  const p = join(dir, "big.gguf");
  copyFileSync(BUNDLED, p);
  truncateSync(p, bytes);
  return p;
}

function ls(sub: string): string[] {
  try {
    return readdirSync(join(root, sub), { recursive: true }).map(String).sort();
  } catch {
    return [];
  }
}

describe("an interrupted import leaves no half model", () => {
  for (const phase of ["gathering model components", "copying file"]) {
    it(`AbortSignal while ${phase.startsWith("copying") ? "copying" : "hashing"}`, async () => {
      const big = bigGguf(64 << 20);
      const store = new ModelStore(root);
      const ac = new AbortController();
      let err: unknown;
      try {
        await store.create("big", mf(big), {
          signal: ac.signal,
          onProgress: (p) => {
            if (p.status.startsWith(phase) && (p.completed ?? 0) > 0) ac.abort();
          },
        });
      } catch (e) {
        err = e;
      }
      expect(isOwlError(err, "ERR_ABORTED")).toBe(true);
      expect(ls("blobs")).toEqual([]); // no blob, no temp file
      expect(ls("manifests")).toEqual([]);
      expect((await store.list()).map((m) => m.name)).toEqual(["stories260k:latest"]);
      // The same store then imports the file fine.
      await store.create("big", mf(big));
      expect((await store.list()).map((m) => m.name).sort()).toEqual(["big:latest", "stories260k:latest"]);
    });
  }

  it("SIGKILL of a process in the middle of copying a 256 MiB GGUF", async () => {
    const big = bigGguf(256 << 20);
    const storeTs = join(REPO_ROOT, "src", "store", "store.ts");
    const code = `
      import { ModelStore } from ${JSON.stringify(storeTs)};
      const store = new ModelStore(${JSON.stringify(root)});
      let told = false;
      await store.create("big", { from: ${JSON.stringify(big)}, params: {}, adapters: [], license: [], messages: [] }, {
        onProgress: (p) => {
          if (!told && p.status.startsWith("copying file") && p.completed > 0) {
            told = true;
            process.stdout.write("COPYING\\n");
          }
        },
      });
      process.stdout.write("DONE\\n");
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let errText = "";
    child.stderr.on("data", (d) => {
      errText += d;
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on("exit", (_c, sig) => resolve(sig)),
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d) => {
        out += d;
        if (out.includes("COPYING")) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.on("exit", () => reject(new Error(`child exited before copying: ${out} ${errText}`)));
    });
    expect(await exited).toBe("SIGKILL");
    expect(out).not.toContain("DONE");

    // What the killed process left: a temp file in blobs/, no blob under a real name, no manifest.
    const left = ls("blobs");
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(new RegExp(`^\\.owl-tmp-${child.pid}-`));
    expect(ls("manifests")).toEqual([]);

    // A store opened afterwards shows nothing new and removes the dead process's temp file.
    const store = new ModelStore(root);
    expect((await store.list()).map((m) => m.name)).toEqual(["stories260k:latest"]);
    expect(ls("blobs")).toEqual([]);
  }, 60_000);

  it("stale temp files of dead processes are cleaned on open; a live process's are kept; none shows as a model", async () => {
    const deadPid = 2 ** 22 + 12345; // above Linux's pid_max default: no such process
    const modelDir = join(root, "manifests", "registry.ollama.ai", "library", "half");
    mkdirSync(join(root, "blobs"), { recursive: true });
    mkdirSync(modelDir, { recursive: true });
    writeFileSync(join(root, "blobs", `.owl-tmp-${deadPid}-aaaa`), "partial blob");
    writeFileSync(join(modelDir, `.owl-tmp-${deadPid}-bbbb`), '{"schemaVersion":2');
    writeFileSync(join(root, "blobs", `.owl-tmp-${process.pid}-cccc`), "a write in progress");
    const store = new ModelStore(root);
    expect((await store.list()).map((m) => m.name)).toEqual(["stories260k:latest"]);
    expect(ls("blobs")).toEqual([`.owl-tmp-${process.pid}-cccc`]);
    expect(readdirSync(modelDir)).toEqual([]);
  });
});
