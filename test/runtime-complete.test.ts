/**
 * complete(): the text-level loop over a sequence. A scripted sequence (tokens with hand-chosen
 * bytes) pins the rules: stop strings spread over tokens end the text before them and drop their
 * pieces, a UTF-8 character split over byte tokens is never shown in halves, an end-of-generation
 * token ends with reason stop and stays out of the context, maxTokens and a sequence that runs out
 * of context end with reason length, an abort ends with reason abort and what was produced; a
 * grammar on a thinking answer is checked first, left off while the model thinks and put on, on
 * the same sequence, from where the thinking ends (re-tokenized inside a token). Then
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

/**
 * A model and a sequence whose generate() answers each call by its grammar: `free` without one,
 * `constrained` with one; every call is recorded (prompt, grammar, whether already aborted).
 */
function twoPhase(bytes: Record<number, string>, free: number[], constrained: number[]) {
  const enc = new TextEncoder();
  const calls: { prompt: number[]; grammar: boolean; aborted: boolean }[] = [];
  const sequence: Sequence = {
    index: 0,
    tokens: [],
    async *generate(prompt: readonly number[], options: SequenceGenerateOptions) {
      calls.push({
        prompt: [...prompt],
        grammar: options.grammar !== undefined,
        aborted: !!options.signal?.aborted,
      });
      if (options.signal?.aborted) return;
      for (const token of options.grammar ? constrained : free) yield { token };
    },
    lastPrompt: () => ({ reused: 0, evaluated: prompt.length }),
    release() {},
  };
  const prompt = [1, 5];
  // A tokenizer for the text kept before the answer: the longest token first, after a space
  // prefix (token 90, as SentencePiece's); a character no token spells is token 0 (no bytes).
  const tokenize = (text: string): number[] => {
    const out = [90];
    for (let i = 0; i < text.length; ) {
      let id = 0;
      let length = 1;
      for (const [k, t] of Object.entries(bytes)) {
        if (t !== "" && text.startsWith(t, i) && (id === 0 || t.length > length)) {
          id = Number(k);
          length = t.length;
        }
      }
      out.push(id);
      i += length;
    }
    return out;
  };
  const model = {
    info: { eogTokens: [EOS] },
    numCtx: 100,
    tokenBytes: (t: number) => enc.encode(bytes[t] ?? ""),
    tokenize,
  } as unknown as LoadedModel;
  return { model, sequence, calls, prompt };
}

describe("complete(): a grammar after the thinking (scripted sequence)", () => {
  const BYTES = {
    90: " ",
    20: "<think>",
    21: "hmm",
    22: "</th",
    23: "ink>",
    24: "\n",
    25: "Yes",
    26: "{",
    27: "}",
    28: "Sure",
    29: "ink>Yes",
    33: "ink>\tYes",
  };
  const TAGS = { open: "<think>", close: "</think>" };
  const JSON_GRAMMAR = { type: "json" } as const;

  it("thinks without the grammar; from the token after the closing tag's whitespace, the grammar on the same sequence", async () => {
    const { model, sequence, calls, prompt } = twoPhase(BYTES, [21, 22, 23, 24, 25, 25], [26, 27, 25]);
    const r = await collect(model, sequence, {
      prompt,
      grammar: JSON_GRAMMAR,
      thinking: { tags: TAGS, inside: true },
    });
    // The grammar checked first (an aborted call), then the thinking, then the grammar from the
    // prompt plus the thinking up to the newline: "Yes" was written without it and goes.
    expect(calls).toEqual([
      { prompt, grammar: true, aborted: true },
      { prompt, grammar: false, aborted: false },
      { prompt: [...prompt, 21, 22, 23, 24], grammar: true, aborted: false },
    ]);
    expect(r.text).toBe("hmm</think>\n{}");
    expect(r.done).toMatchObject({
      reason: "stop",
      context: [...prompt, 21, 22, 23, 24, 26, 27],
      evalTokens: 7,
    });
  });

  it("the answer starting inside a token: the text before it is re-tokenized, the rest goes", async () => {
    const a = twoPhase(BYTES, [21, 22, 29], [26, 27]);
    const r = await collect(a.model, a.sequence, {
      prompt: a.prompt,
      grammar: JSON_GRAMMAR,
      thinking: { tags: TAGS, inside: true },
    });
    // "ink>Yes": "ink>" is the token 23 (the tokenizer's space prefix dropped); "Yes" goes.
    expect(a.calls[2]!.prompt).toEqual([...a.prompt, 21, 22, 23]);
    expect(r.text).toBe("hmm</think>{}");
    // "ink>\tYes": no token spells the tab, so the token stays in the sequence, shown up to "Yes".
    const b = twoPhase(BYTES, [21, 22, 33], [26, 27]);
    const t = await collect(b.model, b.sequence, {
      prompt: b.prompt,
      grammar: JSON_GRAMMAR,
      thinking: { tags: TAGS, inside: true },
    });
    expect(b.calls[2]!.prompt).toEqual([...b.prompt, 21, 22, 33]);
    expect(t.text).toBe("hmm</think>\t{}");
  });

  it("an answer that does not open the thinking: dropped unshown, the grammar from the prompt", async () => {
    const { model, sequence, calls, prompt } = twoPhase(BYTES, [28, 25], [26, 27]);
    const r = await collect(model, sequence, {
      prompt,
      grammar: JSON_GRAMMAR,
      thinking: { tags: TAGS, inside: false },
    });
    expect(calls.map((c) => [c.prompt, c.grammar])).toEqual([
      [prompt, true],
      [prompt, false],
      [prompt, true],
    ]);
    expect(r.text).toBe("{}");
    expect(r.done.type === "done" && r.done.context).toEqual([...prompt, 26, 27]);
  });

  it("the model opening the thinking itself: held until the tag is whole, then shown", async () => {
    const { model, sequence, calls, prompt } = twoPhase(BYTES, [24, 20, 21, 22, 23, 25], [26, 27]);
    const r = await collect(model, sequence, {
      prompt,
      grammar: JSON_GRAMMAR,
      thinking: { tags: TAGS, inside: false },
    });
    expect(calls[2]!.prompt).toEqual([...prompt, 24, 20, 21, 22, 23]);
    expect(r.text).toBe("\n<think>hmm</think>{}");
  });

  it("maxTokens counts the whole answer; a stop string in the thinking ends it; no grammar: one call", async () => {
    const a = twoPhase(BYTES, [21, 22, 23, 25], [26, 27]);
    const r = await collect(a.model, a.sequence, {
      prompt: a.prompt,
      maxTokens: 4,
      grammar: JSON_GRAMMAR,
      thinking: { tags: TAGS, inside: true },
    });
    expect(r.text).toBe("hmm</think>{");
    expect(r.done).toMatchObject({ reason: "length" });
    const b = twoPhase(BYTES, [21, 22, 23, 25], [26, 27]);
    const s = await collect(b.model, b.sequence, {
      prompt: b.prompt,
      stop: ["mm"],
      grammar: JSON_GRAMMAR,
      thinking: { tags: TAGS, inside: true },
    });
    expect(s.text).toBe("h");
    expect(b.calls).toHaveLength(2);
    const c = twoPhase(BYTES, [21, 22, 23, 25], [26, 27]);
    const t = await collect(c.model, c.sequence, {
      prompt: c.prompt,
      thinking: { tags: TAGS, inside: true },
    });
    expect(t.text).toBe("hmm</think>Yes");
    expect(c.calls).toHaveLength(1);
  });
});

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
