/**
 * The model store on a temp root: Ollama's on-disk layout (manifest paths, media types, config
 * blob), content addressing (a GGUF imported or tagged twice is one blob: counted on disk),
 * create from a GGUF / a stored model / a digest with Ollama's inheritance rules, copy, remove
 * with blob collection, the bundled stories260k with no set-up, and bad input of every kind.
 * Expected digests are computed here with node:crypto from the bytes on disk, independently of
 * the store. Crash safety: store-crash.test.ts.
 */
import { createHash } from "node:crypto";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gstr, gu32, writeGguf } from "../src/formats/gguf/index.ts";
import { parseModelfile } from "../src/store/modelfile.ts";
import { ModelStore } from "../src/store/store.ts";
import type { CreateProgress, Modelfile } from "../src/store/types.ts";
import { isOwlError, type OwlError } from "../src/util/errors.ts";
import { ggmlTypeByName } from "../src/util/ggml-types.ts";
import { REPO_ROOT } from "./helpers/fixtures.ts";

const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");
const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const BUNDLED_HEX = sha256(readFileSync(BUNDLED));

let dir: string;
let root: string;
let store: ModelStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "owl-store-test-"));
  root = join(dir, "models");
  store = new ModelStore(root);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mf = (from: string, extra: Partial<Modelfile> = {}): Modelfile => ({
  from,
  params: {},
  adapters: [],
  license: [],
  messages: [],
  ...extra,
});

function blobs(): string[] {
  try {
    return readdirSync(join(root, "blobs")).sort();
  } catch {
    return [];
  }
}

async function rejects(p: Promise<unknown>): Promise<OwlError> {
  try {
    await p;
  } catch (e) {
    if (isOwlError(e)) return e;
    throw e;
  }
  throw new Error("expected an OwlError");
}

/** A GGUF LoRA adapter (general.type = "adapter") made with owl's writer. */
async function writeAdapter(path: string, type = "adapter"): Promise<void> {
  const f32 = ggmlTypeByName("F32")!;
  await writeGguf(path, {
    metadata: new Map([
      ["general.architecture", gstr("llama")],
      ["general.type", gstr(type)],
      ["adapter.type", gstr("lora")],
      ["general.alignment", gu32(32)],
    ]),
    tensors: [
      {
        name: "blk.0.attn_q.weight.lora_a",
        dims: [64, 4],
        type: f32,
        data: () => new Uint8Array(64 * 4 * 4),
      },
      {
        name: "blk.0.attn_q.weight.lora_b",
        dims: [4, 64],
        type: f32,
        data: () => new Uint8Array(64 * 4 * 4),
      },
    ],
  });
}

describe("the bundled model, with no set-up", () => {
  it("an empty (even absent) store lists and resolves stories260k:latest", async () => {
    const list = await store.list();
    expect(list).toHaveLength(1);
    const m = list[0]!;
    expect(m.name).toBe("stories260k:latest");
    expect(m.builtin).toBe(true);
    expect(m.size).toBe(statSync(BUNDLED).size);
    // Karpathy's stories260K: llama architecture, 260K parameters, F32 weights (models/README.md).
    expect(m.details).toEqual({
      parent_model: "",
      format: "gguf",
      family: "llama",
      families: ["llama"],
      parameter_size: "260K",
      quantization_level: "F32",
    });
    expect(m.digest).toMatch(/^[0-9a-f]{64}$/);
    for (const name of ["stories260k", "stories260k:latest", "STORIES260K", "library/stories260k"]) {
      const r = await store.resolve(name);
      expect(r.modelPath).toBe(BUNDLED);
      expect(r.name).toBe("stories260k:latest");
    }
    const r = await store.resolve("stories260k");
    expect(r.license).toEqual(["mit"]);
    expect(r.manifest.layers).toEqual([
      { mediaType: "application/vnd.ollama.image.model", digest: `sha256:${BUNDLED_HEX}`, size: m.size },
    ]);
    expect(store.blobPath(`sha256:${BUNDLED_HEX}`)).toBe(BUNDLED);
    // Reading wrote nothing.
    expect(() => statSync(root)).toThrow();
  });

  it("rm of the bundled model is refused; a stored copy can be removed", async () => {
    const e = await rejects(store.remove("stories260k"));
    expect(e.code).toBe("ERR_UNSUPPORTED");
    expect(e.message).toContain("bundled");
    await store.copy("stories260k", "mine");
    expect(blobs()).toContain(`sha256-${BUNDLED_HEX}`);
    const mine = await store.resolve("mine");
    expect(mine.modelPath).toBe(join(root, "blobs", `sha256-${BUNDLED_HEX}`));
    expect(mine.digest).toBe((await store.resolve("stories260k")).digest);
    await store.remove("mine");
    expect(blobs()).toEqual([]);
    expect((await store.list()).map((m) => m.name)).toEqual(["stories260k:latest"]);
  });

  it("a stored stories260k:latest takes the bundled one's place", async () => {
    await store.create("stories260k", mf(BUNDLED, { system: "tell a story" }));
    const list = await store.list();
    expect(list.map((m) => [m.name, m.builtin])).toEqual([["stories260k:latest", undefined]]);
    expect((await store.resolve("stories260k")).system).toBe("tell a story");
    await store.remove("stories260k");
    expect((await store.resolve("stories260k")).modelPath).toBe(BUNDLED);
  });
});

describe("create from a GGUF file", () => {
  it("writes Ollama's layout: blob, config, manifest; streams progress with Ollama's statuses", async () => {
    const src = join(dir, "src");
    mkdirSync(src);
    copyFileSync(BUNDLED, join(src, "tiny.gguf"));
    const events: CreateProgress[] = [];
    const created = await store.create("tiny", mf("./tiny.gguf"), {
      baseDir: src,
      onProgress: (p) => events.push(p),
    });
    const statuses = events.filter((e) => e.completed === undefined).map((e) => e.status);
    expect(statuses).toEqual([
      "parsing modelfile",
      `creating new layer sha256:${BUNDLED_HEX}`,
      "writing manifest",
      "success",
    ]);
    const copying = events.filter((e) => e.status === `copying file sha256:${BUNDLED_HEX}`);
    expect(copying.at(-1)).toMatchObject({
      completed: statSync(BUNDLED).size,
      total: statSync(BUNDLED).size,
    });

    const manifestFile = join(root, "manifests", "registry.ollama.ai", "library", "tiny", "latest");
    const bytes = readFileSync(manifestFile);
    const manifest = JSON.parse(bytes.toString());
    expect(manifest.schemaVersion).toBe(2);
    expect(manifest.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(manifest.config.mediaType).toBe("application/vnd.docker.container.image.v1+json");
    expect(manifest.layers).toEqual([
      {
        mediaType: "application/vnd.ollama.image.model",
        digest: `sha256:${BUNDLED_HEX}`,
        size: statSync(BUNDLED).size,
      },
    ]);
    // Every blob is named by the sha256 of its own bytes.
    for (const b of blobs()) expect(b).toBe(`sha256-${sha256(readFileSync(join(root, "blobs", b)))}`);
    const config = JSON.parse(
      readFileSync(join(root, "blobs", manifest.config.digest.replace(":", "-")), "utf8"),
    );
    expect(config).toMatchObject({
      model_format: "gguf",
      model_family: "llama",
      model_families: ["llama"],
      model_type: "260K",
      file_type: "F32",
      rootfs: { type: "layers", diff_ids: [`sha256:${BUNDLED_HEX}`] },
    });
    expect(created.name).toBe("tiny:latest");
    expect(created.digest).toBe(sha256(bytes));
    expect(created.modifiedAt.getTime()).toBe(statSync(manifestFile).mtime.getTime());
  });

  it("a GGUF imported twice, or tagged twice, is stored once", async () => {
    const a = join(dir, "a.gguf");
    const b = join(dir, "b.gguf");
    copyFileSync(BUNDLED, a);
    copyFileSync(BUNDLED, b);
    await store.create("one", mf(a));
    const after1 = blobs();
    expect(after1).toHaveLength(2); // the model and the config
    const events: string[] = [];
    await store.create("two:v1", mf(b), { onProgress: (p) => events.push(p.status) });
    expect(events).toContain(`using existing layer sha256:${BUNDLED_HEX}`);
    expect(events.some((s) => s.startsWith("copying file"))).toBe(false);
    await store.copy("one", "three:x");
    await store.copy("two:v1", "ns/four");
    expect(blobs()).toEqual(after1);
    expect((await store.list()).map((m) => m.name).sort()).toEqual([
      "ns/four:latest",
      "one:latest",
      "stories260k:latest",
      "three:x",
      "two:v1",
    ]);
  });

  it("TEMPLATE, SYSTEM, PARAMETER, LICENSE, MESSAGE become their layers; resolve reads them back", async () => {
    const text = `FROM ${BUNDLED}
TEMPLATE """{{ .System }} {{ .Prompt }}"""
SYSTEM You are a storyteller.
PARAMETER temperature 0.2
PARAMETER stop "<end>"
PARAMETER stop "###"
PARAMETER num_ctx 256
LICENSE MIT License
MESSAGE user Tell me a story
MESSAGE assistant Once upon a time
`;
    await store.create("teller", parseModelfile(text));
    const r = await store.resolve("teller");
    expect(r.template).toBe("{{ .System }} {{ .Prompt }}");
    expect(r.system).toBe("You are a storyteller.");
    expect(r.params).toEqual({ temperature: 0.2, stop: ["<end>", "###"], num_ctx: 256 });
    expect(r.license).toEqual(["MIT License"]);
    expect(r.messages).toEqual([
      { role: "user", content: "Tell me a story" },
      { role: "assistant", content: "Once upon a time" },
    ]);
    expect(r.manifest.layers.map((l) => l.mediaType).sort()).toEqual([
      "application/vnd.ollama.image.license",
      "application/vnd.ollama.image.messages",
      "application/vnd.ollama.image.model",
      "application/vnd.ollama.image.params",
      "application/vnd.ollama.image.system",
      "application/vnd.ollama.image.template",
    ]);
    // The params layer is JSON, as Ollama writes it.
    const params = r.manifest.layers.find((l) => l.mediaType === "application/vnd.ollama.image.params")!;
    expect(JSON.parse(readFileSync(join(root, "blobs", params.digest.replace(":", "-")), "utf8"))).toEqual(
      r.params,
    );
    expect(r.size).toBe(r.manifest.layers.reduce((a, l) => a + l.size, 0));

    // The Modelfile text: Ollama's header, FROM the blob, and the same settings when parsed back.
    const textOut = store.modelfileText(r);
    expect(textOut.startsWith('# Modelfile generated by "owl show"\n')).toBe(true);
    expect(textOut).toContain("# FROM teller:latest\n");
    const back = parseModelfile(textOut);
    expect(back.from).toBe(join(root, "blobs", `sha256-${BUNDLED_HEX}`));
    expect(back.params).toEqual(r.params);
    expect(back.template).toBe(r.template);
    expect(back.system).toBe(r.system);
    expect(back.license).toEqual(r.license);
    expect(back.messages).toEqual(r.messages);
  });

  it("FROM a stored model inherits its layers; the Modelfile overrides as Ollama does", async () => {
    await store.create(
      "base",
      parseModelfile(
        `FROM ${BUNDLED}\nTEMPLATE t1\nSYSTEM s1\nPARAMETER temperature 0.5\nPARAMETER stop a\nLICENSE L1\nMESSAGE user u1\n`,
      ),
    );
    const events: string[] = [];
    await store.create(
      "derived",
      parseModelfile("FROM base\nSYSTEM s2\nPARAMETER top_k 7\nPARAMETER stop b\nLICENSE L2\n"),
      { onProgress: (p) => events.push(p.status) },
    );
    const d = await store.resolve("derived");
    expect(d.template).toBe("t1"); // inherited
    expect(d.system).toBe("s2"); // replaced
    // Merged key by key; the new stop list replaces the old one (Ollama's setParameters).
    expect(d.params).toEqual({ temperature: 0.5, top_k: 7, stop: ["b"] });
    expect(d.license).toEqual(["L1", "L2"]); // added
    expect(d.messages).toEqual([{ role: "user", content: "u1" }]); // inherited (none given)
    expect(d.details.parent_model).toBe("base:latest");
    expect(events).toContain(`using existing layer sha256:${BUNDLED_HEX}`);
    // Removing the base keeps every blob the derived model still uses.
    await store.remove("base");
    const again = await store.resolve("derived");
    expect(again.template).toBe("t1");
    expect(statSync(again.modelPath).size).toBe(statSync(BUNDLED).size);
    // FROM the bundled model by name imports its blob.
    await store.create("kid", mf("stories260k", { system: "kid" }));
    expect((await store.resolve("kid")).modelPath).toBe(join(root, "blobs", `sha256-${BUNDLED_HEX}`));
  });

  it("FROM ~/path expands to the home directory (Ollama's expandPath)", async () => {
    const home = join(dir, "home");
    mkdirSync(home);
    copyFileSync(BUNDLED, join(home, "m.gguf"));
    const saved = process.env["HOME"];
    process.env["HOME"] = home; // os.homedir() follows HOME on POSIX
    try {
      await store.create("fromhome", mf("~/m.gguf"), { baseDir: "/nonexistent" });
    } finally {
      if (saved === undefined) delete process.env["HOME"];
      else process.env["HOME"] = saved;
    }
    expect((await store.resolve("fromhome")).manifest.layers[0]!.digest).toBe(`sha256:${BUNDLED_HEX}`);
  });

  it("FROM sha256:<digest> of a blob stored with putBlob", async () => {
    const bytes = readFileSync(BUNDLED);
    async function* chunks() {
      for (let i = 0; i < bytes.length; i += 100_000) yield bytes.subarray(i, i + 100_000);
    }
    expect(await store.hasBlob(`sha256:${BUNDLED_HEX}`)).toBe(false);
    await store.putBlob(`sha256:${BUNDLED_HEX}`, chunks());
    expect(await store.hasBlob(`sha256:${BUNDLED_HEX}`)).toBe(true);
    await store.create("viadigest", mf(`sha256:${BUNDLED_HEX}`));
    expect((await store.resolve("viadigest")).modelPath).toBe(store.blobPath(`sha256:${BUNDLED_HEX}`));
    expect(blobs()).toHaveLength(2);
  });

  it("ADAPTER: a GGUF LoRA adapter becomes an adapter layer; a model given as ADAPTER is refused", async () => {
    const lora = join(dir, "lora.gguf");
    await writeAdapter(lora);
    await store.create("tuned", mf(BUNDLED, { adapters: [lora] }));
    const r = await store.resolve("tuned");
    expect(r.adapters).toEqual([join(root, "blobs", `sha256-${sha256(readFileSync(lora))}`)]);
    expect(r.manifest.layers.map((l) => l.mediaType)).toContain("application/vnd.ollama.image.adapter");

    const e = await rejects(store.create("bad", mf(BUNDLED, { adapters: [BUNDLED] })));
    expect(e.code).toBe("ERR_INVALID_ARGUMENT");
    expect(e.message).toContain("is not a LoRA adapter");
    // An adapter given as FROM is refused too.
    const e2 = await rejects(store.create("bad2", mf(lora)));
    expect(e2.message).toMatch(/general.type is "adapter"/);
  });

  it("case-insensitive names: one manifest per name whatever its casing", async () => {
    await store.create("MyModel:Tag1", mf(BUNDLED));
    expect((await store.resolve("mymodel:tag1")).name).toBe("MyModel:Tag1");
    await store.create("MYMODEL:TAG1", mf(BUNDLED, { system: "x" }));
    const names = (await store.list()).map((m) => m.name);
    expect(names.filter((n) => n.toLowerCase() === "mymodel:tag1")).toEqual(["MyModel:Tag1"]);
    expect((await store.resolve("MyModel:tag1")).system).toBe("x");
    await store.remove("mymodel:TAG1");
    expect(readdirSync(join(root, "manifests"))).toEqual([]);
  });
});

describe("llama.cpp loads what the store holds", () => {
  it("node-llama-cpp opens the model blob of a created model (its own GGUF reader agrees)", async () => {
    await store.create("cpp", mf(BUNDLED));
    const r = await store.resolve("cpp");
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    try {
      const model = await llama.loadModel({ modelPath: r.modelPath });
      try {
        expect(model.trainContextSize).toBe(512);
        expect(model.fileInfo.metadata.general.architecture).toBe(r.details.family);
      } finally {
        await model.dispose();
      }
    } finally {
      await llama.dispose();
    }
  }, 60_000);
});

describe("a store Ollama wrote", () => {
  it("resolves a model laid out byte for byte as Ollama writes it (Go's JSON escapes, trailing newlines)", async () => {
    // Ollama's create: json.NewEncoder(...).Encode(...) for params and config (HTML characters
    // escaped as \u003c / \u003e, a trailing newline), raw text for template, system and license.
    const put = (text: string) => {
      const hex = sha256(text);
      mkdirSync(join(root, "blobs"), { recursive: true });
      writeFileSync(join(root, "blobs", `sha256-${hex}`), text);
      return { digest: `sha256:${hex}`, size: Buffer.byteLength(text) };
    };
    copyFileSync(BUNDLED, join(dir, "m.gguf"));
    mkdirSync(join(root, "blobs"), { recursive: true });
    copyFileSync(BUNDLED, join(root, "blobs", `sha256-${BUNDLED_HEX}`));
    const template = put(
      "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}",
    );
    const params = put(
      '{"stop":["\\u003c|start_header_id|\\u003e","\\u003c|eot_id|\\u003e"],"temperature":0.6}\n',
    );
    const license = put(
      "LLAMA 3 COMMUNITY LICENSE AGREEMENT\nMeta Llama 3 Version Release Date: April 18, 2024",
    );
    const config = put(
      `{"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"260K","file_type":"F32","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:${BUNDLED_HEX}"]}}\n`,
    );
    const manifest = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"${config.digest}","size":${config.size}},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:${BUNDLED_HEX}","size":${statSync(BUNDLED).size}},{"mediaType":"application/vnd.ollama.image.template","digest":"${template.digest}","size":${template.size}},{"mediaType":"application/vnd.ollama.image.license","digest":"${license.digest}","size":${license.size}},{"mediaType":"application/vnd.ollama.image.params","digest":"${params.digest}","size":${params.size}}]}`;
    const mdir = join(root, "manifests", "registry.ollama.ai", "library", "llama3");
    mkdirSync(mdir, { recursive: true });
    writeFileSync(join(mdir, "8b"), manifest);

    const r = await store.resolve("llama3:8b");
    expect(r.name).toBe("llama3:8b");
    expect(r.digest).toBe(sha256(manifest));
    expect(r.params).toEqual({ stop: ["<|start_header_id|>", "<|eot_id|>"], temperature: 0.6 });
    expect(r.template).toContain("<|start_header_id|>system");
    expect(r.license).toEqual([
      "LLAMA 3 COMMUNITY LICENSE AGREEMENT\nMeta Llama 3 Version Release Date: April 18, 2024",
    ]);
    expect(r.details.quantization_level).toBe("F32");
    expect(r.size).toBe(statSync(BUNDLED).size + template.size + license.size + params.size);
    expect((await store.list()).map((m) => m.name)).toContain("llama3:8b");
  });
});

describe("remove", () => {
  it("deletes the manifest and only the blobs no other manifest references", async () => {
    await store.create("a", mf(BUNDLED, { system: "only a" }));
    await store.create("b", mf(BUNDLED, { system: "only b" }));
    const before = blobs();
    await store.remove("a");
    const after = blobs();
    // Gone: a's system layer and a's config; kept: the shared model blob and everything of b.
    expect(before.length - after.length).toBe(2);
    expect(after).toContain(`sha256-${BUNDLED_HEX}`);
    expect(after).toContain(`sha256-${sha256("only b")}`);
    expect(after).not.toContain(`sha256-${sha256("only a")}`);
    await store.remove("b");
    expect(blobs()).toEqual([]);
    expect(readdirSync(join(root, "manifests"))).toEqual([]);
  });

  it("an unknown model: ERR_MODEL_NOT_FOUND naming it, with the hint to run owl list", async () => {
    const e = await rejects(store.remove("ghost:v2"));
    expect(e.code).toBe("ERR_MODEL_NOT_FOUND");
    expect(e.message).toContain('"ghost:v2"');
    expect(e.hint).toContain("owl list");
  });
});

describe("bad input", () => {
  it("bad names are refused before anything is written", async () => {
    for (const name of ["../evil", "/abs/path", "a/b/c/d", "x\\y", "a:b:c/d", ""]) {
      expect((await rejects(store.create(name, mf(BUNDLED)))).code, name).toBe("ERR_INVALID_NAME");
      expect((await rejects(store.resolve(name))).code).toBe("ERR_INVALID_NAME");
      expect((await rejects(store.remove(name))).code).toBe("ERR_INVALID_NAME");
      expect((await rejects(store.copy("stories260k", name))).code).toBe("ERR_INVALID_NAME");
    }
    expect(blobs()).toEqual([]);
    expect(readdirSync(dir)).toEqual([]); // not even the store root was created
  });

  it("unknown model, missing file, non-GGUF file, a directory of safetensors, an unknown digest", async () => {
    const nf = await rejects(store.resolve("nope"));
    expect(nf.code).toBe("ERR_MODEL_NOT_FOUND");
    expect(nf.message).toContain('"nope"');
    const fromName = await rejects(store.create("x", mf("nope"), { baseDir: dir }));
    expect(fromName.code).toBe("ERR_MODEL_NOT_FOUND");
    expect(fromName.message).toBe(
      `FROM nope: no model "nope" in the store, and no file ${join(dir, "nope")}`,
    );
    const fromBad = await rejects(store.create("x", mf("two words"), { baseDir: dir }));
    expect(fromBad.code).toBe("ERR_INVALID_NAME");
    expect(fromBad.message).toContain("not a valid model name, and no file");
    expect((await rejects(store.copy("nope", "x"))).code).toBe("ERR_MODEL_NOT_FOUND");

    const missing = await rejects(store.create("x", mf("./missing.gguf"), { baseDir: dir }));
    expect(missing.code).toBe("ERR_FILE_NOT_FOUND");
    expect(missing.message).toContain(join(dir, "missing.gguf"));

    const txt = join(dir, "notes.gguf");
    writeFileSync(txt, "this is not a model\n");
    const notGguf = await rejects(store.create("x", mf(txt)));
    expect(notGguf.code).toBe("ERR_UNKNOWN_FORMAT");
    expect(notGguf.message).toContain(txt);
    expect(isOwlError(notGguf.cause, "ERR_GGUF_BAD_MAGIC")).toBe(true);

    const st = join(dir, "hf-model");
    mkdirSync(st);
    writeFileSync(join(st, "model.safetensors"), "");
    const unsupported = await rejects(store.create("x", mf(st)));
    expect(unsupported.code).toBe("ERR_UNSUPPORTED");
    expect(unsupported.message).toContain("safetensors");
    expect(unsupported.hint).toContain("GGUF");

    expect((await rejects(store.create("x", mf(`sha256:${"0".repeat(64)}`)))).code).toBe(
      "ERR_BLOB_NOT_FOUND",
    );
    expect(() => store.blobPath(`sha256:${"1".repeat(64)}`)).toThrow(/not in the store/);
    expect((await store.list()).map((m) => m.name)).toEqual(["stories260k:latest"]);
  });

  it("putBlob checks the digest and stores nothing on a mismatch", async () => {
    async function* one(b: Uint8Array) {
      yield b;
    }
    const data = new TextEncoder().encode("hello");
    const e = await rejects(store.putBlob(`sha256:${sha256("other")}`, one(data)));
    expect(e.code).toBe("ERR_DIGEST_MISMATCH");
    expect(e.message).toContain(sha256("hello"));
    expect(blobs()).toEqual([]); // not even a temp file
    await store.putBlob(`sha256:${sha256("hello")}`, one(data));
    expect(readFileSync(store.blobPath(`sha256:${sha256("hello")}`), "utf8")).toBe("hello");
    expect((await rejects(store.putBlob("md5:abc", one(data)))).code).toBe("ERR_INVALID_ARGUMENT");
  });

  it("a corrupt manifest: ERR_STORE_CORRUPT naming the file; list leaves it out; rm still works", async () => {
    await store.create("good", mf(BUNDLED));
    await store.create("bad", mf(BUNDLED, { system: "s" }));
    const file = join(root, "manifests", "registry.ollama.ai", "library", "bad", "latest");
    writeFileSync(file, "{ not json");
    const e = await rejects(store.resolve("bad"));
    expect(e.code).toBe("ERR_STORE_CORRUPT");
    expect(e.message).toContain(file);
    writeFileSync(file, JSON.stringify({ schemaVersion: 2, config: {}, layers: [] }));
    expect((await rejects(store.resolve("bad"))).message).toMatch(/config.mediaType/);
    expect((await store.list()).map((m) => m.name).sort()).toEqual(["good:latest", "stories260k:latest"]);
    await store.remove("bad");
    expect((await store.list()).map((m) => m.name).sort()).toEqual(["good:latest", "stories260k:latest"]);
  });

  it("a missing or truncated model blob: ERR_STORE_CORRUPT on resolve", async () => {
    await store.create("m", mf(BUNDLED));
    const blob = join(root, "blobs", `sha256-${BUNDLED_HEX}`);
    writeFileSync(blob, readFileSync(BUNDLED).subarray(0, 1000));
    const e = await rejects(store.resolve("m"));
    expect(e.code).toBe("ERR_STORE_CORRUPT");
    expect(e.message).toMatch(/has 1000 bytes, the manifest says 1054432/);
    rmSync(blob);
    expect((await rejects(store.resolve("m"))).message).toMatch(/is missing/);
  });
});
