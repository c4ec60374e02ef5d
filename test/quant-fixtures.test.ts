import { describe, expect, it } from "vitest";
import { GGML_TYPES } from "../src/util/ggml-types.ts";
import { loadQuantVectors, quantFixturesAvailable } from "./helpers/quant-fixtures.ts";

describe.skipIf(!quantFixturesAvailable())("ggml type table against the reference vectors", () => {
  it("has the same id, block size and bytes per block as ggml for every reference type", () => {
    const vectors = loadQuantVectors();
    expect(vectors.size).toBe(16);
    for (const v of vectors.values()) {
      const t = GGML_TYPES.find((x) => x.name === v.name);
      expect(t, v.name).toBeDefined();
      expect([t!.id, t!.blockSize, t!.bytesPerBlock]).toEqual([v.ggmlType, v.blockSize, v.bytesPerBlock]);
      for (const r of v.rows) expect(r.quant.byteLength).toBe((256 / v.blockSize) * v.bytesPerBlock);
    }
  });
});
