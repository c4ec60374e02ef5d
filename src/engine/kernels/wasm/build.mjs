#!/usr/bin/env node
// Builds dist/kernels.wasm from the AssemblyScript sources in ./assembly: run by `npm run
// build:wasm`, by npm's `prepare` (so `npm ci` builds it), and by the WebAssembly backend when
// the file is missing or older than its sources. Plain JavaScript so it needs no loader.
//
// Flags: SIMD and threads (atomics, shared memory) only, no relaxed SIMD (it needs a flag on
// Node 20); memory imported from JS as env.memory and shared, so every worker thread runs the
// same module over the same bytes; the stub runtime (the kernels never allocate); -O3, no asserts.
// NOTE: --maximumMemory 65536 pages (4 GiB, all of wasm32): the JS side creates the memory with
// a smaller maximum, which an import of this type accepts.
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "..", "..", "..", "..");
export const ASSEMBLY_DIR = join(here, "assembly");
export const WASM_PATH = join(ROOT, "dist", "kernels.wasm");

/** Newest modification time (ms) of the AssemblyScript sources; 0 when they are absent. */
export function sourcesMtime() {
  let newest = 0;
  let names;
  try {
    names = readdirSync(ASSEMBLY_DIR);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (name.endsWith(".ts")) newest = Math.max(newest, statSync(join(ASSEMBLY_DIR, name)).mtimeMs);
  }
  return newest;
}

/** Compiles the kernels to `out` (default dist/kernels.wasm); throws with asc's messages on failure. */
export async function buildKernels(out = WASM_PATH) {
  const { default: asc } = await import("assemblyscript/asc");
  mkdirSync(dirname(out), { recursive: true });
  // Written under a unique name and renamed: two processes building at once never see half a file.
  const tmp = `${out}.${process.pid}.${Date.now()}.tmp`;
  let errText = "";
  const { error } = await asc.main(
    [
      join(ASSEMBLY_DIR, "index.ts"),
      "--outFile",
      tmp,
      "--enable",
      "simd",
      "--enable",
      "threads",
      "--importMemory",
      "--sharedMemory",
      "--initialMemory",
      "1",
      "--maximumMemory",
      "65536",
      "--runtime",
      "stub",
      "--noAssert",
      "--use",
      "abort=",
      "-O3",
    ],
    {
      stdout: { write: () => true },
      stderr: {
        write: (s) => {
          errText += String(s);
          return true;
        },
      },
    },
  );
  if (error) {
    rmSync(tmp, { force: true });
    throw new Error(`building ${out} failed: ${error.message}\n${errText}`);
  }
  renameSync(tmp, out);
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const out = await buildKernels(process.argv[2] ? resolve(process.argv[2]) : WASM_PATH);
  process.stdout.write(`built ${out}\n`);
}
