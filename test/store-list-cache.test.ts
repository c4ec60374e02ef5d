/**
 * ModelStore.list()'s cache: answers stay right when the store changes through the same object,
 * through another store object on the same root (as another owl process would), and when a
 * manifest is removed by hand (seen within the cache's second); resolve()'s cache the same way.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { ModelStore } from "../src/store/store.ts";
import type { Modelfile } from "../src/store/types.ts";
import { REPO_ROOT } from "./helpers/fixtures.ts";

const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");
const mf = (from: string, system?: string): Modelfile => ({
  from,
  params: {},
  adapters: [],
  license: [],
  messages: [],
  ...(system !== undefined && { system }),
});

let dir: string;
let root: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "owl-store-list-"));
  root = join(dir, "models");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const names = async (s: ModelStore) => (await s.list()).map((m) => m.name).sort();

it("sees its own writes and another store's at once", async () => {
  const a = new ModelStore(root, { builtin: false });
  const b = new ModelStore(root, { builtin: false });
  expect(await names(a)).toEqual([]);
  await a.create("one", mf(BUNDLED));
  expect(await names(a)).toEqual(["one:latest"]);
  expect(await names(b)).toEqual(["one:latest"]);
  await b.create("two", mf(BUNDLED, "hi"));
  expect(await names(a)).toEqual(["one:latest", "two:latest"]);
  await b.copy("two", "three");
  expect(await names(a)).toEqual(["one:latest", "three:latest", "two:latest"]);
  await b.remove("one");
  expect(await names(a)).toEqual(["three:latest", "two:latest"]);
  // Overwriting a tag changes its digest: the cached entry is not reused.
  const before = (await a.list()).find((m) => m.name === "two:latest")!.digest;
  await b.create("two", mf(BUNDLED, "changed"));
  const after = (await a.list()).find((m) => m.name === "two:latest")!.digest;
  expect(after).not.toBe(before);
});

it("a manifest removed by hand leaves the list within the cache's lifetime", async () => {
  const a = new ModelStore(root, { builtin: false });
  await a.create("gone", mf(BUNDLED));
  expect(await names(a)).toEqual(["gone:latest"]);
  rmSync(join(root, "manifests", "registry.ollama.ai", "library", "gone", "latest"));
  await new Promise((r) => setTimeout(r, 1100));
  expect(await names(a)).toEqual([]);
});

it("resolve()'s cache: another store's overwrite, copy and removal are seen at once; answers are copies", async () => {
  const a = new ModelStore(root, { builtin: false });
  const b = new ModelStore(root, { builtin: false });
  await a.create("m", mf(BUNDLED, "first"));
  expect((await a.resolve("m")).system).toBe("first");
  expect((await a.resolve("m")).system).toBe("first");
  // Overwritten through another store object (another process): the next resolve sees it.
  await b.create("m", mf(BUNDLED, "second"));
  expect((await a.resolve("m")).system).toBe("second");
  // A caller changing its answer does not change the next one.
  const r = await a.resolve("m");
  r.params.temperature = 2;
  r.messages.push({ role: "user", content: "x" });
  const again = await a.resolve("m");
  expect(again.params).toEqual({});
  expect(again.messages).toEqual([]);
  // Removed by hand: not found, as before the cache.
  rmSync(join(root, "manifests", "registry.ollama.ai", "library", "m", "latest"));
  await expect(a.resolve("m")).rejects.toMatchObject({ code: "ERR_MODEL_NOT_FOUND" });
  // A missing model blob is still the corrupt-store error on a cached name.
  await a.create("n", mf(BUNDLED));
  const blob = (await a.resolve("n")).modelPath;
  rmSync(blob);
  await expect(a.resolve("n")).rejects.toMatchObject({ code: "ERR_STORE_CORRUPT" });
});
