/**
 * The owl engine on its own thread (runtime/owl-engine.ts EngineThread, owl-engine-host.ts):
 * logits that come back across the thread boundary are the ones the engine gives in this thread
 * (the same Model code, a second copy loaded here), batched steps included; errors of the load
 * and of a request come back as the OwlErrors they are (code, details), with what each session
 * then holds; an aborted load and a thread that is gone end in typed errors, never a hang.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type Model } from "../src/engine/model.ts";
import { type EngineReply, EngineThread } from "../src/runtime/owl-engine.ts";
import { BUNDLED } from "./helpers/runtime.ts";

function logits(reply: EngineReply): Float32Array[] {
  if (reply.type !== "logits") throw new Error(`expected logits, got ${JSON.stringify(reply)}`);
  return reply.logits;
}

describe("the owl engine's thread", () => {
  let engine: EngineThread;
  let local: Model;

  beforeAll(async () => {
    engine = await EngineThread.start({ modelPath: BUNDLED, numCtx: 64, numParallel: 3, threads: 1 });
    local = await loadModel(BUNDLED);
  }, 60_000);
  afterAll(async () => {
    await engine?.dispose();
    await local?.dispose();
  });

  it("reports the model's facts", () => {
    expect(engine.facts.V).toBe(local.hparams.V);
    expect(engine.facts.C).toBe(local.hparams.C);
    expect(engine.facts.memoryBytes).toBeGreaterThan(0);
  });

  it("answers evaluations and batched steps with the engine's logits", async () => {
    const a = [1, 403, 407, 261, 477];
    const b = [1, 320, 110];
    const sa = local.createSession({ nCtx: 64 });
    const sb = local.createSession({ nCtx: 64 });
    const r1 = await engine.request({ type: "evaluate", seq: 0, tokens: Int32Array.from(a) });
    expect(r1).toMatchObject({ type: "logits", lengths: [a.length] });
    expect(logits(r1)[0]).toEqual(sa.evaluate(a).logits);
    await engine.request({ type: "evaluate", seq: 1, tokens: Int32Array.from(b) });
    sb.evaluate(b);
    // One step of both, a token each.
    const a2 = [...a, 300];
    const b2 = [...b, 301];
    const r2 = await engine.request({
      type: "step",
      seqs: [0, 1],
      tokens: [Int32Array.from(a2), Int32Array.from(b2)],
    });
    expect(r2).toMatchObject({ type: "logits", lengths: [a2.length, b2.length] });
    const want = local.evaluateBatch([
      { session: sa, tokens: a2 },
      { session: sb, tokens: b2 },
    ]);
    expect(logits(r2)).toEqual(want.map((w) => w.logits));
  });

  it("sends a request's error back typed, with what the session holds", async () => {
    const V = engine.facts.V;
    await engine.request({ type: "evaluate", seq: 2, tokens: Int32Array.of(1, 403) });
    const r = await engine.request({ type: "evaluate", seq: 2, tokens: Int32Array.of(1, 403, V + 5) });
    expect(r).toMatchObject({
      type: "error",
      error: { code: "ERR_TOKEN_OUT_OF_RANGE", details: { token: V + 5, index: 2, V } },
      // Checked before anything is evaluated: the session still holds its two tokens.
      lengths: [2],
    });
    const over = await engine.request({ type: "evaluate", seq: 2, tokens: new Int32Array(65).fill(1) });
    expect(over).toMatchObject({ type: "error", error: { code: "ERR_CONTEXT_OVERFLOW" } });
  });
});

describe("starting and stopping the owl engine's thread", () => {
  it("a file that is not a GGUF fails the load with the format's own error", async () => {
    const path = join(tmpdir(), `owl-not-gguf-${process.pid}.bin`);
    writeFileSync(path, "this is not a model file at all, just some text");
    await expect(EngineThread.start({ modelPath: path, numCtx: 64, numParallel: 1 })).rejects.toMatchObject({
      name: "OwlError",
      code: "ERR_GGUF_BAD_MAGIC",
    });
  }, 30_000);

  it("an aborted load ends the thread with ERR_ABORTED", async () => {
    const abort = new AbortController();
    const started = EngineThread.start({ modelPath: BUNDLED, numCtx: 64, numParallel: 1 }, abort.signal);
    abort.abort();
    await expect(started).rejects.toMatchObject({ code: "ERR_ABORTED" });
  });

  it("after dispose, requests fail at once with a typed error", async () => {
    const engine = await EngineThread.start({ modelPath: BUNDLED, numCtx: 64, numParallel: 1, threads: 1 });
    const inFlight = engine.request({ type: "evaluate", seq: 0, tokens: Int32Array.of(1, 403) });
    await engine.dispose();
    // A request sent before dispose is answered first.
    expect((await inFlight).type).toBe("logits");
    await expect(
      engine.request({ type: "evaluate", seq: 0, tokens: Int32Array.of(1) }),
    ).rejects.toMatchObject({
      code: "ERR_DECODE",
    });
  }, 30_000);
});
