/**
 * Sharded safetensors: writing shards + index like transformers' save_pretrained (huggingface_hub's
 * split, file names, the index text of json.dumps(indent=2, sort_keys=True)), opening a model from
 * a directory, an index or a single file as one merged view, and every way an index can be wrong
 * (missing shard, paths leaving the directory, tensors missing from their shard or in two shards,
 * broken JSON) with its error code.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  openSafetensorsModel,
  type SafetensorsTensorInput,
  type SafetensorsWriteProgress,
  writeSafetensors,
  writeSafetensorsSharded,
} from "../src/formats/safetensors/index.ts";
import { isOwlError, type OwlErrorCode } from "../src/util/errors.ts";

const tmp = mkdtempSync(join(tmpdir(), "owl-st-shard-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const newDir = () => mkdtempSync(join(tmp, `d${dirCount++}-`));

/** A U8 tensor of `n` bytes whose values identify it. */
function u8(name: string, n: number, seed = name.length): SafetensorsTensorInput {
  return {
    name,
    dtype: "U8",
    shape: [n],
    data: () => Uint8Array.from({ length: n }, (_, i) => (seed * 31 + i) & 0xff),
  };
}

function expectOpenError(path: string, code: OwlErrorCode, message?: RegExp): void {
  try {
    openSafetensorsModel(path).close();
  } catch (e) {
    if (!isOwlError(e)) throw e;
    expect(e.code, e.message).toBe(code);
    if (message) expect(e.message).toMatch(message);
    return;
  }
  throw new Error("expected an error, but the model opened");
}

describe("writeSafetensorsSharded", () => {
  it("splits like huggingface_hub: [6,6,2,6,2,2] under 10 -> [6], [6+2], [6+2+2]", async () => {
    const dir = newDir();
    const tensors = [6, 6, 2, 6, 2, 2].map((n, i) => u8(`t${i}`, n, i));
    const progress: SafetensorsWriteProgress[] = [];
    const r = await writeSafetensorsSharded(
      dir,
      { metadata: { format: "pt" }, tensors },
      { maxShardBytes: 10, onProgress: (p) => progress.push(p) },
    );
    const names = [
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
    ];
    expect(r.files).toEqual(names);
    expect(r.totalSize).toBe(24);
    expect(r.indexPath).toBe(join(dir, "model.safetensors.index.json"));
    expect(readdirSync(dir).sort()).toEqual([...names, "model.safetensors.index.json"].sort());
    // What transformers writes: json.dumps(index, indent=2, sort_keys=True) + "\n".
    expect(readFileSync(r.indexPath!, "utf8")).toBe(
      `{
  "metadata": {
    "total_size": 24
  },
  "weight_map": {
    "t0": "model-00001-of-00003.safetensors",
    "t1": "model-00002-of-00003.safetensors",
    "t2": "model-00002-of-00003.safetensors",
    "t3": "model-00003-of-00003.safetensors",
    "t4": "model-00003-of-00003.safetensors",
    "t5": "model-00003-of-00003.safetensors"
  }
}
`,
    );
    expect(progress.length).toBe(6);
    expect(progress.at(-1)!.bytesWritten).toBe(progress.at(-1)!.totalBytes);

    const m = openSafetensorsModel(dir);
    try {
      expect(m.indexPath).toBe(r.indexPath);
      expect(m.indexMetadata).toEqual({ total_size: 24 });
      expect(m.metadata).toEqual({ format: "pt" });
      expect(m.files.map((f) => f.name)).toEqual(names.map((n) => join(dir, n)));
      expect(m.tensors.map((t) => t.name)).toEqual(["t0", "t1", "t2", "t3", "t4", "t5"]);
      expect(m.tensor("t4")!.file).toBe(join(dir, names[2]!));
      for (const t of tensors) {
        expect(Array.from(m.readTensor(t.name))).toEqual(Array.from(t.data() as Uint8Array));
        expect(Array.from(m.readTensorAsFloat32(t.name))).toEqual(Array.from(t.data() as Uint8Array));
      }
      expect(() => m.readTensor("nope")).toThrowError(
        expect.objectContaining({ code: "ERR_TENSOR_NOT_FOUND" }),
      );
    } finally {
      m.close();
    }
    // The same model opens from the index path too.
    const again = openSafetensorsModel(r.indexPath!);
    expect(again.tensors.length).toBe(6);
    again.close();
  });

  it("puts a tensor larger than the limit in its own shard, ahead of the open one; escapes like Python", async () => {
    const dir = newDir();
    const r = await writeSafetensorsSharded(
      dir,
      { tensors: [u8("é", 4), u8("big", 20), u8("😀", 4)] },
      { maxShardBytes: 10, prefix: "w" },
    );
    expect(r.files).toEqual(["w-00001-of-00002.safetensors", "w-00002-of-00002.safetensors"]);
    expect(readFileSync(r.indexPath!, "utf8")).toBe(
      `{
  "metadata": {
    "total_size": 28
  },
  "weight_map": {
    "big": "w-00001-of-00002.safetensors",
    "\\u00e9": "w-00002-of-00002.safetensors",
    "\\ud83d\\ude00": "w-00002-of-00002.safetensors"
  }
}
`,
    );
    const m = openSafetensorsModel(r.indexPath!);
    expect(m.tensors.map((t) => t.name).sort()).toEqual(["big", "é", "😀"]);
    expect(m.metadata).toEqual({});
    m.close();
  });

  it("writes one model.safetensors and no index when everything fits", async () => {
    const dir = newDir();
    const r = await writeSafetensorsSharded(dir, {
      metadata: { format: "pt" },
      tensors: [u8("a", 3), u8("b", 5)],
    });
    expect(r).toEqual({ files: ["model.safetensors"], indexPath: undefined, totalSize: 8 });
    expect(readdirSync(dir)).toEqual(["model.safetensors"]);
    const m = openSafetensorsModel(dir);
    expect(m.indexPath).toBeUndefined();
    expect(m.indexMetadata).toBeUndefined();
    expect(m.files.length).toBe(1);
    expect(m.tensors.map((t) => t.name)).toEqual(["a", "b"]);
    m.close();
  });

  it("validates all tensors before writing anything", async () => {
    const dir = newDir();
    await expect(
      writeSafetensorsSharded(dir, { tensors: [u8("a", 3), u8("a", 3)] }, { maxShardBytes: 3 }),
    ).rejects.toMatchObject({ code: "ERR_INVALID_ARGUMENT" });
    await expect(
      writeSafetensorsSharded(dir, { tensors: [u8("a", 3)] }, { maxShardBytes: 0 }),
    ).rejects.toMatchObject({
      code: "ERR_INVALID_ARGUMENT",
    });
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("openSafetensorsModel: finding files", () => {
  it("opens a single file, or the only *.safetensors in a directory", async () => {
    const dir = newDir();
    await writeSafetensors(join(dir, "consolidated.safetensors"), { tensors: [u8("x", 2)] });
    const m = openSafetensorsModel(dir);
    expect(m.files[0]!.name).toBe(join(dir, "consolidated.safetensors"));
    m.close();
    const f = openSafetensorsModel(join(dir, "consolidated.safetensors"));
    expect(f.tensors.map((t) => t.name)).toEqual(["x"]);
    f.close();
  });

  it("refuses to guess between several files, and reports empty or missing paths", async () => {
    const dir = newDir();
    expectOpenError(dir, "ERR_FILE_NOT_FOUND", /has no model\.safetensors\.index\.json/);
    await writeSafetensors(join(dir, "a.safetensors"), { tensors: [] });
    await writeSafetensors(join(dir, "b.safetensors"), { tensors: [] });
    expectOpenError(dir, "ERR_INVALID_ARGUMENT", /several \*\.safetensors files/);
    expectOpenError(join(dir, "missing.safetensors"), "ERR_FILE_NOT_FOUND");
  });

  it("follows symlinked shards (the Hugging Face cache layout)", async () => {
    const root = newDir();
    mkdirSync(join(root, "blobs"));
    mkdirSync(join(root, "snapshots", "rev"), { recursive: true });
    const r = await writeSafetensorsSharded(
      join(root, "blobs"),
      { tensors: [u8("a", 4), u8("b", 4)] },
      { maxShardBytes: 4 },
    );
    for (const [i, name] of [...r.files, "model.safetensors.index.json"].entries()) {
      const blob = join(root, "blobs", `blob${i}`);
      writeFileSync(blob, readFileSync(join(root, "blobs", name)));
      symlinkSync(join("..", "..", "blobs", `blob${i}`), join(root, "snapshots", "rev", name));
    }
    const m = openSafetensorsModel(join(root, "snapshots", "rev"));
    expect(Array.from(m.readTensor("b"))).toEqual(Array.from(u8("b", 4).data() as Uint8Array));
    m.close();
  });
});

describe("openSafetensorsModel: bad indexes", () => {
  /** A directory with a.safetensors (t1, t2) and b.safetensors (t3), and the given index. */
  async function setup(index: unknown): Promise<string> {
    const dir = newDir();
    await writeSafetensors(join(dir, "a.safetensors"), {
      metadata: { format: "pt" },
      tensors: [u8("t1", 2), u8("t2", 3)],
    });
    await writeSafetensors(join(dir, "b.safetensors"), {
      metadata: { format: "pt" },
      tensors: [u8("t3", 4)],
    });
    writeFileSync(
      join(dir, "model.safetensors.index.json"),
      typeof index === "string" ? index : JSON.stringify(index),
    );
    return dir;
  }
  const good = { t1: "a.safetensors", t2: "a.safetensors", t3: "b.safetensors" };

  it("a good index opens (and tensors missing from weight_map are still served)", async () => {
    const dir = await setup({
      metadata: { total_size: 9 },
      weight_map: { t1: "a.safetensors", t3: "b.safetensors" },
    });
    const m = openSafetensorsModel(dir);
    expect(m.tensors.map((t) => t.name)).toEqual(["t1", "t2", "t3"]);
    expect(m.files.length).toBe(2);
    m.close();
    expect(() => m.readTensor("t1")).toThrowError(expect.objectContaining({ code: "ERR_IO" }));
  });

  it("a missing shard", async () => {
    const dir = await setup({ weight_map: { ...good, t9: "c.safetensors" } });
    expectOpenError(
      dir,
      "ERR_FILE_NOT_FOUND",
      /shard "c\.safetensors" named in .*model\.safetensors\.index\.json is missing/,
    );
  });

  it("shard paths outside the directory, absolute, or odd", async () => {
    const cases = [
      "../a.safetensors",
      "sub/../../a.safetensors",
      "/etc/passwd",
      "C:\\a.safetensors",
      "sub\\a.safetensors",
      "./a.safetensors",
      "",
      "a\0.safetensors",
    ];
    for (const shard of cases) {
      const dir = await setup({ weight_map: { ...good, t1: shard } });
      expectOpenError(dir, "ERR_SAFETENSORS_BAD_INDEX", /weight_map\["t1"\]/);
    }
  });

  it("a shard path in a subdirectory is fine", async () => {
    const dir = await setup({
      weight_map: { t1: "sub/a.safetensors", t2: "sub/a.safetensors", t3: "b.safetensors" },
    });
    mkdirSync(join(dir, "sub"));
    writeFileSync(join(dir, "sub", "a.safetensors"), readFileSync(join(dir, "a.safetensors")));
    rmSync(join(dir, "a.safetensors"));
    const m = openSafetensorsModel(dir);
    expect(m.tensor("t1")!.file).toBe(join(dir, "sub", "a.safetensors"));
    m.close();
  });

  it("a tensor missing from the shard the index names", async () => {
    const wrong = await setup({ weight_map: { ...good, t1: "b.safetensors" } });
    expectOpenError(
      wrong,
      "ERR_SAFETENSORS_BAD_INDEX",
      /maps tensor "t1" to b\.safetensors, which has no such tensor; it is in a\.safetensors/,
    );
    const nowhere = await setup({ weight_map: { ...good, t7: "b.safetensors" } });
    expectOpenError(
      nowhere,
      "ERR_SAFETENSORS_BAD_INDEX",
      /maps tensor "t7" to b\.safetensors, which has no such tensor$/,
    );
  });

  it("a tensor in two shards", async () => {
    const dir = await setup({ weight_map: { ...good, t1b: "c.safetensors" } });
    await writeSafetensors(join(dir, "c.safetensors"), { tensors: [u8("t1", 2), u8("t1b", 1)] });
    expectOpenError(
      dir,
      "ERR_SAFETENSORS_BAD_INDEX",
      /tensor "t1" is in two shards: a\.safetensors and c\.safetensors/,
    );
  });

  it("malformed index JSON", async () => {
    const cases: [unknown, OwlErrorCode, RegExp][] = [
      ["{", "ERR_SAFETENSORS_BAD_INDEX", /is not valid JSON/],
      ["[]", "ERR_SAFETENSORS_BAD_INDEX", /expected a JSON object, found an array/],
      [{ metadata: {} }, "ERR_SAFETENSORS_BAD_INDEX", /"weight_map" must be an object, found nothing/],
      [{ weight_map: [] }, "ERR_SAFETENSORS_BAD_INDEX", /"weight_map" must be an object/],
      [{ metadata: 5, weight_map: good }, "ERR_SAFETENSORS_BAD_INDEX", /"metadata" must be an object/],
      [
        { weight_map: { t1: 1 } },
        "ERR_SAFETENSORS_BAD_INDEX",
        /weight_map\["t1"\] must be a file name, found a number/,
      ],
      [
        '{"weight_map":{"t1":"a.safetensors","t1":"b.safetensors"}}',
        "ERR_SAFETENSORS_BAD_INDEX",
        /duplicate key "t1" in "weight_map"/,
      ],
    ];
    for (const [index, code, message] of cases) expectOpenError(await setup(index), code, message);
    const dir = await setup("");
    writeFileSync(
      join(dir, "model.safetensors.index.json"),
      Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    );
    expectOpenError(dir, "ERR_INVALID_UTF8", /at byte 2/);
  });

  it("a corrupt shard reports its own error and closes the shards already open", async () => {
    const dir = await setup({ weight_map: good });
    const b = readFileSync(join(dir, "b.safetensors"));
    writeFileSync(join(dir, "b.safetensors"), b.subarray(0, b.length - 1));
    const fds = () => (existsSync("/proc/self/fd") ? readdirSync("/proc/self/fd").length : 0);
    const before = fds();
    expectOpenError(dir, "ERR_TENSOR_OUT_OF_BOUNDS", /b\.safetensors: tensor "t3" ends at byte/);
    expect(fds()).toBe(before);
  });
});
