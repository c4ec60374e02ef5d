/**
 * complete(): the text-level loop over a sequence. A scripted sequence (tokens with hand-chosen
 * bytes) pins the rules: stop strings spread over tokens end the text before them and drop their
 * pieces, a UTF-8 character split over byte tokens is never shown in halves, an end-of-generation
 * token ends with reason stop and stays out of the context, maxTokens and a sequence that runs out
 * of context end with reason length, an abort ends with reason abort and what was produced. Then
 * the same on the real backends: a stop string across token boundaries and an abort mid-generation
 * on llama.cpp and the owl engine, after which the sequence still serves.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "../src/runtime/backends.ts";
import { complete } from "../src/runtime/complete.ts";
import type {
  BackendName,
  CompletionEvent,
  LoadedModel,
  SampledToken,
  Sequence,
  SequenceGenerateOptions,
} from "../src/runtime/types.ts";
import { BUNDLED, GREEDY, PROMPT, pieces, run } from "./helpers/runtime.ts";

const EOS = 2;

/** A model whose token i has the bytes BYTES[i], and a sequence that yields a fixed script. */
function scripted(bytes: Record<number, number[] | string>, script: number[], logprobs = false) {
  const enc = new TextEncoder();
  const tokenBytes = (t: number): Uint8Array => {
    const b = bytes[t];
    if (b === undefined) return new Uint8Array();
    return typeof b === "string" ? enc.encode(b) : Uint8Array.from(b);
  };
  const state = { returned: false, yielded: 0, generateCalls: 0 };
  const sequence: Sequence = {
    index: 0,
    tokens: [],
    async *generate(_prompt: readonly number[], options: SequenceGenerateOptions) {
      state.generateCalls++;
      try {
        for (const token of script) {
          if (options.signal?.aborted) return;
          state.yielded++;
          const step: SampledToken = { token };
          if (logprobs && options.logprobs !== undefined) {
            step.logprob = -0.5;
            step.top = [
              { token, logprob: -0.5 },
              { token: 99, logprob: -1.5 },
            ];
          }
          yield step;
          await new Promise((r) => setImmediate(r));
        }
      } finally {
        state.returned = true;
      }
    },
    lastPrompt: () => ({ reused: 1, evaluated: 2 }),
    release() {},
  };
  const model = {
    info: { eogTokens: [EOS] },
    tokenBytes,
  } as unknown as LoadedModel;
  return { model, sequence, state };
}

async function collect(
  model: LoadedModel,
  sequence: Sequence,
  extra: Partial<Parameters<typeof complete>[2]> = {},
) {
  const events: CompletionEvent[] = [];
  for await (const ev of complete(model, sequence, {
    prompt: [1, 5, 6],
    sampling: GREEDY,
    maxTokens: -1,
    stop: [],
    ...extra,
  })) {
    events.push(ev);
  }
  const done = events.at(-1)!;
  if (done.type !== "done") throw new Error("no done event");
  const texts = events.flatMap((e) => (e.type === "text" ? [e.text] : []));
  return { events, done, texts, text: texts.join("") };
}

describe("complete() rules (scripted sequence)", () => {
  const BYTES = {
    10: "Hel",
    11: "lo wo",
    12: "rld",
    13: "!",
    14: [0xc3],
    15: [0xa9],
    16: " x",
    [EOS]: "</s>",
  };

  it("a stop string over three tokens ends the text before it; the pieces wholly inside it are dropped", async () => {
    const { model, sequence, state } = scripted(BYTES, [10, 11, 12, 13, 13]);
    const r = await collect(model, sequence, { stop: ["o world"] });
    expect(r.text).toBe("Hell");
    expect(r.done.reason).toBe("stop");
    expect(pieces(r.events).map((p) => p.token)).toEqual([10, 11]);
    // Generated tokens stay in the context, the stop string's included; nothing after it.
    expect(r.done.context).toEqual([1, 5, 6, 10, 11, 12]);
    expect(state.yielded).toBe(3);
    expect(state.returned).toBe(true);
    expect(r.done).toMatchObject({ promptTokens: 3, promptEvaluated: 2, evalTokens: 3 });
    // Never a partial stop string on the way.
    for (const t of r.texts) expect(t).not.toMatch(/o( w?o?r?l?)?$/);
  });

  it("text that only looked like a stop string is shown once it is not", async () => {
    const { model, sequence } = scripted(BYTES, [10, 11, 13, 16]);
    const r = await collect(model, sequence, { stop: ["o world", "!!"] });
    expect(r.text).toBe("Hello wo! x");
    expect(r.done.reason).toBe("length");
    expect(pieces(r.events).map((p) => p.token)).toEqual([10, 11, 13, 16]);
    expect(r.texts).toContain("Hel");
  });

  it("a character split over two byte tokens is never shown in halves", async () => {
    const { model, sequence } = scripted(BYTES, [14, 15, 16, EOS, 16], true);
    const r = await collect(model, sequence, { logprobs: 1 });
    expect(r.texts).toEqual(["é", " x"]);
    expect(r.text).not.toContain("\uFFFD");
    // An end-of-generation token: reason stop, not shown, not in the context, but evaluated.
    expect(r.done.reason).toBe("stop");
    expect(r.done.context).toEqual([1, 5, 6, 14, 15, 16]);
    expect(r.done.evalTokens).toBe(4);
    const ps = pieces(r.events);
    expect(ps.map((p) => p.token)).toEqual([14, 15, 16]);
    expect(ps[2]).toEqual({
      token: 16,
      text: " x",
      logprob: -0.5,
      top: [
        { token: 16, text: " x", logprob: -0.5 },
        { token: 99, text: "", logprob: -1.5 },
      ],
    });
  });

  it("an incomplete character at the end becomes U+FFFD", async () => {
    const { model, sequence } = scripted(BYTES, [16, 14]);
    const r = await collect(model, sequence);
    expect(r.text).toBe(" x\uFFFD");
    expect(r.done.reason).toBe("length");
  });

  it("maxTokens ends with reason length; 0 generates nothing", async () => {
    const { model, sequence, state } = scripted(BYTES, [10, 11, 12, 13]);
    const r = await collect(model, sequence, { maxTokens: 2 });
    expect(r.text).toBe("Hello wo");
    expect(r.done).toMatchObject({ reason: "length", evalTokens: 2, context: [1, 5, 6, 10, 11] });
    expect(state.returned).toBe(true);
    const z = scripted(BYTES, [10]);
    const r0 = await collect(z.model, z.sequence, { maxTokens: 0 });
    expect(r0.events).toHaveLength(1);
    expect(r0.done).toMatchObject({ reason: "length", evalTokens: 0, context: [1, 5, 6], evalNs: 0 });
    expect(z.state.generateCalls).toBe(0);
  });

  it("an abort ends with reason abort and what was produced so far", async () => {
    const { model, sequence, state } = scripted(BYTES, [10, 11, 12, 13, 13, 13]);
    const ac = new AbortController();
    const events: CompletionEvent[] = [];
    for await (const ev of complete(model, sequence, {
      prompt: [1],
      sampling: GREEDY,
      maxTokens: -1,
      stop: ["rld!!"],
      signal: ac.signal,
    })) {
      events.push(ev);
      if (events.length === 2) ac.abort();
    }
    const done = events.at(-1)!;
    expect(done).toMatchObject({ type: "done", reason: "abort", context: [1, 10, 11] });
    expect(events.flatMap((e) => (e.type === "text" ? [e.text] : [])).join("")).toBe("Hello wo");
    expect(state.returned).toBe(true);
  });

  it("bad requests are ERR_INVALID_ARGUMENT", async () => {
    const { model, sequence } = scripted(BYTES, [10]);
    await expect(collect(model, sequence, { maxTokens: -2 })).rejects.toMatchObject({
      code: "ERR_INVALID_ARGUMENT",
    });
    await expect(collect(model, sequence, { stop: [""] })).rejects.toMatchObject({
      code: "ERR_INVALID_ARGUMENT",
    });
    await expect(collect(model, sequence, { prompt: [] })).rejects.toMatchObject({
      code: "ERR_INVALID_ARGUMENT",
    });
  });
});

describe.each(["llama.cpp", "owl"] as BackendName[])("complete() on the %s backend", (name) => {
  let model: LoadedModel;
  beforeAll(async () => {
    model = await createBackend(name).load({
      modelPath: BUNDLED,
      adapters: [],
      numCtx: 128,
      numParallel: 1,
      threads: 1,
    });
  }, 60_000);
  afterAll(async () => {
    await model?.dispose();
  });

  it("a stop string spanning tokens ends the text right before it", async () => {
    const seq = model.tryAcquireSequence()!;
    try {
      const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
      const full = await run(model, seq, { prompt, maxTokens: 30 });
      // The end of one token's text and the start of the next: a stop string that spans them.
      const ps = pieces(full.events);
      const k = ps.findIndex((p, i) => i > 3 && p.text.length >= 2 && (ps[i + 1]?.text.length ?? 0) >= 2);
      const stop = ps[k]!.text.slice(-2) + ps[k + 1]!.text.slice(0, 2);
      const r = await run(model, seq, { prompt, maxTokens: 30, stop: [stop] });
      expect(r.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
      expect(r.done.reason).toBe("stop");
      // The pieces cover the text: the token that reaches into the stop string is among them.
      const covered = pieces(r.events)
        .map((p) => p.text)
        .join("");
      expect(covered.startsWith(r.text)).toBe(true);
      expect(covered.length).toBeGreaterThan(r.text.length);
    } finally {
      seq.release();
    }
  });

  it("an abort mid-generation returns reason abort; the sequence then serves again", async () => {
    const seq = model.tryAcquireSequence()!;
    try {
      const prompt = model.tokenize(PROMPT, { addBos: true, parseSpecial: false });
      const ac = new AbortController();
      const events: CompletionEvent[] = [];
      for await (const ev of complete(model, seq, {
        prompt,
        sampling: GREEDY,
        maxTokens: 100,
        stop: [],
        signal: ac.signal,
      })) {
        events.push(ev);
        if (events.length === 5) ac.abort();
      }
      const done = events.at(-1)!;
      expect(done.type === "done" && done.reason).toBe("abort");
      expect(done.type === "done" && done.evalTokens).toBeLessThanOrEqual(6);
      const again = await run(model, seq, { prompt, maxTokens: 10 });
      expect(again.done.reason).toBe("length");
      expect(again.done.promptEvaluated).toBe(1);
      const whole = events.flatMap((e) => (e.type === "text" ? [e.text] : [])).join("");
      expect(again.text.startsWith(whole)).toBe(true);
    } finally {
      seq.release();
    }
  });
});
