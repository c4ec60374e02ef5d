/**
 * Cross-check against the reference implementation: when python3 has the `safetensors` package
 * (with numpy), files it writes must be byte-identical to ours for the same tensors, and it must
 * load what we write. Skipped when the package is absent (it is not installable offline here);
 * the byte-exact tests against the crate's own vectors in safetensors-write.test.ts always run.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  dtypeInfo,
  type SafetensorsTensorInput,
  writeSafetensors,
} from "../src/formats/safetensors/index.ts";

const hasPython =
  spawnSync("python3", ["-c", "import safetensors.numpy, numpy"], { stdio: "ignore" }).status === 0;

const SCRIPT = `
import json, sys
import numpy as np
from safetensors.numpy import save_file, load_file
if sys.argv[1] == "write":
    spec = json.load(open(sys.argv[2]))
    tensors = {t["name"]: np.frombuffer(bytes.fromhex(t["hex"]), dtype=t["np"]).reshape(t["shape"]) for t in spec["tensors"]}
    save_file(tensors, sys.argv[3], metadata=spec.get("metadata"))
else:
    d = load_file(sys.argv[2])
    print(json.dumps({k: {"dtype": str(v.dtype), "shape": list(v.shape), "hex": v.tobytes().hex()} for k, v in d.items()}))
`;

const NP: Partial<Record<SafetensorsTensorInput["dtype"], string>> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

describe.skipIf(!hasPython)("safetensors vs the Python package", () => {
  const dir = hasPython ? mkdtempSync(join(tmpdir(), "owl-st-py-")) : "";
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const specs = [
    { name: "w", dtype: "F32", shape: [2, 3] },
    { name: "h", dtype: "F16", shape: [4] },
    { name: "pos", dtype: "I64", shape: [3] },
    { name: "mask", dtype: "BOOL", shape: [2] },
    { name: "b", dtype: "U8", shape: [5] },
    { name: "a", dtype: "F64", shape: [0, 2] },
    { name: "s", dtype: "I32", shape: [] },
    { name: "z", dtype: "I8", shape: [3] },
    { name: "é", dtype: "I16", shape: [1] },
  ] as const;
  const tensors = specs.map((s, k) => {
    const shape: number[] = [...s.shape];
    const size = (shape.reduce((a, b) => a * b, 1) * dtypeInfo(s.dtype).bits) / 8;
    const bytes = Uint8Array.from({ length: size }, (_, i) =>
      s.dtype === "BOOL" ? (i + k) & 1 : (i * 31 + k) & 0x7f,
    );
    return { name: s.name, dtype: s.dtype, shape, bytes };
  });

  it("writes the same bytes as safetensors.numpy.save_file", async () => {
    const spec = {
      metadata: { format: "np" },
      tensors: tensors.map((t) => ({
        name: t.name,
        np: NP[t.dtype],
        shape: t.shape,
        hex: Buffer.from(t.bytes).toString("hex"),
      })),
    };
    writeFileSync(join(dir, "spec.json"), JSON.stringify(spec));
    const py = spawnSync(
      "python3",
      ["-c", SCRIPT, "write", join(dir, "spec.json"), join(dir, "py.safetensors")],
      { encoding: "utf8" },
    );
    expect(py.status, py.stderr).toBe(0);
    await writeSafetensors(join(dir, "owl.safetensors"), {
      metadata: { format: "np" },
      tensors: tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: () => t.bytes })),
    });
    expect(readFileSync(join(dir, "owl.safetensors")).equals(readFileSync(join(dir, "py.safetensors")))).toBe(
      true,
    );
  });

  it("loads what we write", async () => {
    const p = join(dir, "owl2.safetensors");
    await writeSafetensors(p, {
      tensors: tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: () => t.bytes })),
    });
    const py = spawnSync("python3", ["-c", SCRIPT, "read", p], { encoding: "utf8" });
    expect(py.status, py.stderr).toBe(0);
    const loaded = JSON.parse(py.stdout) as Record<string, { dtype: string; shape: number[]; hex: string }>;
    for (const t of tensors) {
      expect(loaded[t.name]).toEqual({
        dtype: NP[t.dtype],
        shape: t.shape,
        hex: Buffer.from(t.bytes).toString("hex"),
      });
    }
  });
});
