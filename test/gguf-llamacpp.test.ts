/**
 * Differential test: node-llama-cpp's own GGUF parser (readGgufFileInfo, an independent
 * implementation) and owl's reader must agree on every metadata entry and tensor info, for every
 * llama.cpp vocabulary fixture and for a file with tensors that owl's writer generated.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { afterAll, describe, expect, it } from "vitest";
import { garr, gbool, gf32, gi64, gstr, gu32, gu64, openGguf, writeGguf } from "../src/formats/gguf/index.ts";
import type { GgufArray, GgufFile, GgufMetadata, GgufValue } from "../src/formats/gguf/types.ts";
import { ggmlTypeByName } from "../src/util/ggml-types.ts";
import { listFixtures } from "./helpers/fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "owl-gguf-nlc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Plain = string | number | bigint | boolean | Plain[];

/** owl's value as plain JS, the way node-llama-cpp reports values (u64/i64 stay bigint). */
function plainArray(a: GgufArray): Plain[] {
  if (a.itemType === "ARRAY") return a.items.map(plainArray);
  return Array.from(a.items as ArrayLike<Plain>);
}
function plain(v: GgufValue): Plain {
  return v.type === "ARRAY" ? plainArray(v.value) : v.value;
}

/** node-llama-cpp nests metadata by dotted key; flatten it back to "a.b.c" keys. */
function flatten(obj: Record<string, unknown>, prefix = "", out = new Map<string, unknown>()) {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix + k;
    if (v !== null && typeof v === "object" && !Array.isArray(v))
      flatten(v as Record<string, unknown>, `${key}.`, out);
    else out.set(key, v);
  }
  return out;
}

async function compare(path: string): Promise<GgufFile> {
  const theirs = await readGgufFileInfo(path, { logWarnings: false, sourceType: "filesystem" });
  const ours = openGguf(path);
  try {
    expect(theirs.version).toBe(ours.version);
    const flat = flatten(theirs.metadata as unknown as Record<string, unknown>);
    expect([...flat.keys()].sort()).toEqual([...ours.metadata.keys()].sort());
    for (const [k, v] of ours.metadata) expect(flat.get(k), k).toEqual(plain(v));
    const tinfo = theirs.tensorInfo ?? [];
    expect(tinfo.length).toBe(ours.tensors.length);
    for (const [i, t] of ours.tensors.entries()) {
      const o = tinfo[i]!;
      expect(o.name).toBe(t.name);
      expect(o.dimensions.map(Number)).toEqual(t.dims);
      expect(o.ggmlType).toBe(t.type.id);
      expect(Number(o.offset)).toBe(t.offset);
      expect(Number(o.fileOffset)).toBe(t.fileOffset);
    }
    if (ours.tensors.length > 0) expect(theirs.infoEndOffset).toBe(ours.dataOffset);
    return ours;
  } finally {
    ours.close();
  }
}

describe("owl and node-llama-cpp read the same GGUF", () => {
  for (const f of listFixtures("tokenizer", /\.gguf$/)) {
    it(f.split("/").pop()!, () => compare(f), 20_000);
  }

  it("a generated file with tensors and every value type", async () => {
    const md: GgufMetadata = new Map<string, GgufValue>([
      ["general.architecture", gstr("llama")],
      ["general.alignment", gu32(64)],
      ["llama.block_count", gu32(2)],
      ["llama.attention.layer_norm_rms_epsilon", gf32(1e-5)],
      ["owl.test.u64", gu64(2n ** 60n)],
      ["owl.test.i64", gi64(-5)],
      ["owl.test.flag", gbool(true)],
      ["owl.test.i8s", garr.i8([-1, 2, -3])],
      ["owl.test.u16s", garr.u16([1, 65535])],
      ["owl.test.f64s", garr.f64([0.5, -1e300])],
      ["owl.test.bools", garr.bools([true, false])],
      ["tokenizer.ggml.tokens", garr.strings(["<s>", "▁héllo", "🦉"])],
      ["tokenizer.ggml.scores", garr.f32([0, -1.25, 2])],
      ["tokenizer.ggml.token_type", garr.i32([3, 1, 1])],
    ]);
    const tensor = (name: string, type: string, dims: number[]) => {
      const t = ggmlTypeByName(type)!;
      const size = (dims.reduce((a, b) => a * b, 1) / t.blockSize) * t.bytesPerBlock;
      return { name, dims, type: t, data: () => new Uint8Array(size).fill(7) };
    };
    const path = join(dir, "gen.gguf");
    await writeGguf(path, {
      metadata: md,
      tensors: [
        tensor("token_embd.weight", "Q8_0", [64, 3]),
        tensor("blk.0.attn_norm.weight", "F32", [5]),
        tensor("blk.0.ffn_up.weight", "Q4_K", [256, 2]),
        tensor("output.weight", "F16", [3, 3, 2]),
      ],
    });
    const g = await compare(path);
    expect(g.tensors.map((t) => t.offset)).toEqual([0, 256, 320, 640]);
  });
});
