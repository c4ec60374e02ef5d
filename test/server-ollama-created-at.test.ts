/**
 * createdAt (src/server/ollama/generate.ts), the created_at of streamed chunks: the same text as
 * timestamp() (Date's toISOString) for every instant, across minute, hour, day and year ends,
 * before 1970 and past 9999 (where it defers to Date).
 */
import { describe, expect, it } from "vitest";
import { timestamp } from "../src/server/ollama/common.ts";
import { createdAt } from "../src/server/ollama/generate.ts";

const iso = (t: number) => timestamp(new Date(t));

describe("createdAt", () => {
  it("is timestamp() of the same instant, in order and at random", () => {
    let t = Date.UTC(2026, 10, 27, 23, 58, 59, 990);
    for (let i = 0; i < 200_000; i++) {
      expect(createdAt(t)).toBe(iso(t));
      t += 1 + (i % 997);
    }
    let s = 12345;
    for (let i = 0; i < 20_000; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const r = s * 1000 + (i % 1000);
      expect(createdAt(r)).toBe(iso(r));
    }
  });

  it("handles the edges: the epoch, year ends, before 1970, past 9999, fractions, now", () => {
    for (const t of [
      0,
      59_999,
      60_000,
      Date.UTC(1999, 11, 31, 23, 59, 59, 999),
      Date.UTC(2000, 0, 1),
      Date.UTC(2024, 1, 29, 12, 0, 0, 5),
      -1,
      -60_001,
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      253402300800000,
      1_764_000_000_000.5,
    ]) {
      expect(createdAt(t), String(t)).toBe(iso(t));
    }
    const before = Date.now();
    const now = Date.parse(createdAt());
    expect(now).toBeGreaterThanOrEqual(before);
  });
});
