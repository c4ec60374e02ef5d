/**
 * The scheduler with the real llama.cpp backend (node-llama-cpp 3.21.1) on the bundled
 * stories260K, resolved through the model store: with numParallel 4, four greedy completions
 * hold four sequences of one context and run at once (every stream yields text before the first
 * one ends), each equal to its own single-stream text (and the first to llama2.c run.c's
 * reference); a fifth request waits for a free sequence; with maxQueue 0 an extra request is
 * ERR_QUEUE_FULL; keep_alive 0 unloads when the request ends; unload() ends a running generation.
 * One thread (a busy 2-core machine); no timing assertions.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import { complete } from "../src/runtime/complete.ts";
import { Scheduler, type SchedulerOptions } from "../src/runtime/scheduler.ts";
import type { CompletionEvent, Lease, ModelRequest } from "../src/runtime/types.ts";
import { ModelStore } from "../src/store/store.ts";
import type { ResolvedModel } from "../src/store/types.ts";
import { OwlError } from "../src/util/errors.ts";
import { fixturePath } from "./helpers/fixtures.ts";
import { GREEDY, REF, referenceText } from "./helpers/runtime.ts";

const PROMPTS = ["Once upon a time", "Lily and Ben", "The little dog", "One day, a girl"];
const MAX_TOKENS = 24;

let home: string;
let resolved: ResolvedModel;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "owl-sched-"));
  resolved = await new ModelStore(join(home, "models")).resolve("stories260k");
});
afterAll(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

function scheduler(overrides: Partial<SchedulerOptions> = {}): Scheduler {
  return new Scheduler({
    createBackend: (name) => createBackend(name),
    maxLoadedModels: 1,
    numParallel: 4,
    maxQueue: 8,
    defaultKeepAliveMs: 5 * 60_000,
    defaultNumCtx: 128,
    defaultBackend: "llama.cpp",
    threads: 1,
    ...overrides,
  });
}

function request(extra: Partial<ModelRequest> = {}): ModelRequest {
  return { name: "stories260k", model: resolved, ...extra };
}

/** One greedy completion on a lease; `onEvent` sees each event as it comes. */
async function generate(
  lease: Lease,
  text: string,
  onEvent: (ev: CompletionEvent) => void = () => {},
  maxTokens = MAX_TOKENS,
): Promise<{ text: string; reason: string }> {
  const sequence = lease.sequence;
  if (sequence === undefined) throw new Error("lease without a sequence");
  const prompt = lease.model.tokenize(text, { addBos: true, parseSpecial: false });
  let out = "";
  let reason = "";
  for await (const ev of complete(lease.model, sequence, {
    prompt,
    sampling: GREEDY,
    maxTokens,
    stop: [],
    ...(lease.signal && { signal: lease.signal }),
  })) {
    onEvent(ev);
    if (ev.type === "text") out += ev.text;
    else reason = ev.reason;
  }
  return { text: out, reason };
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

describe("scheduler + llama.cpp", () => {
  it("runs 4 greedy completions at once on one context, each equal to its single-stream text; a 5th waits", async () => {
    const s = scheduler();
    try {
      // Single-stream texts, one request at a time.
      const single: string[] = [];
      for (const p of PROMPTS) {
        const lease = await s.acquire(request());
        single.push((await generate(lease, p)).text);
        lease.release();
      }
      if (fixturePath(REF)) expect(single[0]).toBe(referenceText(MAX_TOKENS));
      expect(new Set(single).size).toBe(PROMPTS.length);

      const leases = await Promise.all(PROMPTS.map(() => s.acquire(request())));
      expect(new Set(leases.map((l) => l.model)).size).toBe(1); // one loaded model, one context
      expect(new Set(leases.map((l) => l.sequence?.index))).toEqual(new Set([0, 1, 2, 3]));
      expect(s.running()).toMatchObject([
        { name: "stories260k", numCtx: 128, backend: "llama.cpp", active: 4 },
      ]);

      let fifthDone = false;
      const fifth = s.acquire(request()).then((l) => {
        fifthDone = true;
        return l;
      });
      await flush();
      expect(fifthDone).toBe(false);

      // Which stream had produced text when the first stream ended.
      const started = new Set<number>();
      let startedAtFirstEnd: number | undefined;
      const results = await Promise.all(
        leases.map((lease, i) =>
          generate(lease, PROMPTS[i] ?? "", (ev) => {
            if (ev.type === "text") started.add(i);
            else startedAtFirstEnd ??= started.size;
          }),
        ),
      );
      expect(results.map((r) => r.text)).toEqual(single);
      expect(startedAtFirstEnd).toBe(4);
      expect(fifthDone).toBe(false);

      leases[2]?.release();
      const l5 = await fifth;
      expect(l5.sequence?.index).toBe(leases[2]?.sequence?.index);
      expect(l5.model).toBe(leases[0]?.model);
      expect((await generate(l5, PROMPTS[0] ?? "")).text).toBe(single[0]);
      l5.release();
      for (const l of leases) l.release();
      expect(s.running()[0]?.active).toBe(0);
    } finally {
      await s.close();
    }
  }, 120_000);

  it("with maxQueue 0 an extra request is ERR_QUEUE_FULL while every sequence is busy", async () => {
    const s = scheduler({ numParallel: 2, maxQueue: 0 });
    try {
      const a = await s.acquire(request());
      const b = await s.acquire(request());
      const extra = s.acquire(request());
      await expect(extra).rejects.toBeInstanceOf(OwlError);
      await expect(extra).rejects.toMatchObject({ code: "ERR_QUEUE_FULL" });
      a.release();
      const c = await s.acquire(request());
      expect(c.sequence).toBeDefined();
      b.release();
      c.release();
    } finally {
      await s.close();
    }
  }, 120_000);

  it("keep_alive 0 unloads the model when the request ends; the next request loads it again", async () => {
    const s = scheduler();
    try {
      const a = await s.acquire(request({ keepAliveMs: 0 }));
      expect(a.loadNs).toBeGreaterThan(0);
      const first = (await generate(a, PROMPTS[1] ?? "")).text;
      expect(s.running()).toHaveLength(1);
      a.release();
      expect(s.running()).toEqual([]);
      const b = await s.acquire(request());
      expect(b.model).not.toBe(a.model);
      expect(b.loadNs).toBeGreaterThan(0);
      expect((await generate(b, PROMPTS[1] ?? "")).text).toBe(first);
      b.release();
      expect(s.running()).toHaveLength(1);
      expect(s.running()[0]?.expiresAt).toBeInstanceOf(Date);
    } finally {
      await s.close();
    }
    expect(s.running()).toEqual([]);
  }, 120_000);

  it("unload() ends a running generation (reason abort) and unloads once it is released", async () => {
    const s = scheduler();
    try {
      const lease = await s.acquire(request());
      let unloading: Promise<boolean> | undefined;
      let tokens = 0;
      const run = generate(
        lease,
        PROMPTS[0] ?? "",
        (ev) => {
          if (ev.type === "text" && ++tokens === 3) unloading = s.unload("stories260k");
        },
        -1,
      ).finally(() => lease.release());
      const { reason } = await run;
      expect(reason).toBe("abort");
      expect(await unloading).toBe(true);
      expect(s.running()).toEqual([]);
    } finally {
      await s.close();
    }
  }, 120_000);
});
