import { describe, expect, it } from "vitest";
import {
  checkLogitBias,
  formatToGrammar,
  KEEP_ALIVE_FOREVER,
  parseGoDuration,
  parseKeepAlive,
  resolveOllamaOptions,
  resolveOpenAIOptions,
  responseFormatToGrammar,
} from "../src/runtime/options.ts";
import { isOwlError, type OwlError } from "../src/util/errors.ts";

function thrown(f: () => unknown): OwlError {
  try {
    f();
  } catch (e) {
    if (isOwlError(e)) return e;
    throw e;
  }
  throw new Error("expected an OwlError");
}

describe("resolveOllamaOptions", () => {
  it("gives Ollama's DefaultOptions when nothing is set (api/types.go)", () => {
    const r = resolveOllamaOptions({});
    expect(r.sampling).toEqual({
      temperature: 0.8,
      topK: 40,
      topP: 0.9,
      minP: 0,
      typicalP: 1,
      repeatPenalty: 1,
      repeatLastN: 64,
      presencePenalty: 0,
      frequencyPenalty: 0,
      seed: undefined,
      logitBias: new Map(),
    });
    expect(r.maxTokens).toBe(-1);
    expect(r.numCtx).toBeUndefined();
    expect(r.stop).toEqual([]);
    expect(r.numKeep).toBe(4);
    expect(r.grammar).toBeUndefined();
    expect(r.warnings).toEqual([]);
  });

  it("request options > Modelfile PARAMETERs > defaults; a request stop replaces the Modelfile's", () => {
    const r = resolveOllamaOptions({
      params: { temperature: 0.2, top_k: 10, stop: ["<|eot_id|>", "<|end|>"], num_ctx: 8192 },
      options: { temperature: 0, stop: ["END"], seed: 42, num_predict: 12 },
    });
    expect(r.sampling.temperature).toBe(0);
    expect(r.sampling.topK).toBe(10);
    expect(r.sampling.seed).toBe(42);
    expect(r.stop).toEqual(["END"]);
    expect(r.numCtx).toBe(8192);
    expect(r.runner.numCtx).toBe(8192);
    expect(r.maxTokens).toBe(12);
    const p = resolveOllamaOptions({ params: { stop: ["<|eot_id|>"] }, options: { top_p: 0.5 } });
    expect(p.stop).toEqual(["<|eot_id|>"]);
    expect(p.sampling.topP).toBe(0.5);
  });

  it("warns about unknown and no-op options instead of failing, like Ollama; skips null", () => {
    const r = resolveOllamaOptions({
      options: { foo: 1, mirostat: 2, penalize_newline: true, num_thread: 2, top_k: null },
    });
    expect(r.warnings).toHaveLength(3);
    expect(r.warnings[0]).toMatch(/options\.foo/);
    expect(r.warnings[1]).toMatch(/mirostat/);
    expect(r.warnings[2]).toMatch(/penalize_newline/);
    expect(r.runner.numThread).toBe(2);
    expect(r.sampling.topK).toBe(40);
  });

  it("maps negative seeds to random and num_predict -2 to 'until the context is full'", () => {
    expect(resolveOllamaOptions({ options: { seed: -1 } }).sampling.seed).toBeUndefined();
    expect(resolveOllamaOptions({ options: { seed: 0 } }).sampling.seed).toBe(0);
    // Go's uint32(int): 2^32 + 5 wraps to 5.
    expect(resolveOllamaOptions({ options: { seed: 2 ** 32 + 5 } }).sampling.seed).toBe(5);
    expect(resolveOllamaOptions({ options: { num_predict: -2 } }).maxTokens).toBe(-1);
  });

  it.each([
    [{ num_ctx: -1 }, "options.num_ctx", "-1"],
    [{ num_ctx: 2 ** 24 + 1 }, "options.num_ctx", "16777217"],
    [{ temperature: -0.1 }, "options.temperature", "-0.1"],
    [{ temperature: 1e300 }, "options.temperature", "1e+300"],
    [{ top_p: 1.5 }, "options.top_p", "1.5"],
    [{ min_p: -0.5 }, "options.min_p", "-0.5"],
    [{ num_predict: -3 }, "options.num_predict", "-3"],
    [{ top_k: 2.5 }, "options.top_k", "2.5"],
    [{ temperature: "0.5" }, "options.temperature", '"0.5"'],
    [{ stop: "x" }, "options.stop", '"x"'],
    [{ stop: ["a", 1] }, "options.stop", "an array"],
    [{ repeat_penalty: 0 }, "options.repeat_penalty", "0"],
    [{ use_mmap: 1 }, "options.use_mmap", "1"],
  ])("rejects %j naming the field, expected and found", (options, field, found) => {
    const e = thrown(() => resolveOllamaOptions({ options }));
    expect(e.code).toBe("ERR_BAD_REQUEST");
    expect(e.message).toContain(`${field} must be`);
    expect(e.message).toContain(`found ${found}`);
    expect(e.details?.["field"]).toBe(field);
  });

  it("rejects options that are not an object, and bad Modelfile values with ERR_MODELFILE_PARSE", () => {
    expect(thrown(() => resolveOllamaOptions({ options: [1] })).code).toBe("ERR_BAD_REQUEST");
    const e = thrown(() => resolveOllamaOptions({ params: { top_p: 7 } }));
    expect(e.code).toBe("ERR_MODELFILE_PARSE");
    expect(e.message).toContain("PARAMETER top_p");
  });

  it("drops empty stop strings with a warning", () => {
    const r = resolveOllamaOptions({ options: { stop: ["", "###"] } });
    expect(r.stop).toEqual(["###"]);
    expect(r.warnings).toHaveLength(1);
  });
});

describe("format and response_format", () => {
  it("maps Ollama's format", () => {
    expect(formatToGrammar(undefined)).toBeUndefined();
    expect(formatToGrammar("")).toBeUndefined();
    expect(formatToGrammar("json")).toEqual({ type: "json" });
    const schema = { type: "object", properties: { a: { type: "integer" } }, required: ["a"] };
    expect(formatToGrammar(schema)).toEqual({ type: "json_schema", schema });
    expect(resolveOllamaOptions({ format: schema }).grammar).toEqual({ type: "json_schema", schema });
    expect(thrown(() => formatToGrammar("yaml")).code).toBe("ERR_BAD_REQUEST");
    expect(thrown(() => formatToGrammar(["json"])).code).toBe("ERR_BAD_REQUEST");
  });

  it("maps OpenAI's response_format", () => {
    expect(responseFormatToGrammar({ type: "text" })).toBeUndefined();
    expect(responseFormatToGrammar({ type: "json_object" })).toEqual({ type: "json" });
    const schema = { type: "object", properties: { n: { type: "number" } } };
    expect(
      responseFormatToGrammar({ type: "json_schema", json_schema: { name: "x", schema, strict: true } }),
    ).toEqual({
      type: "json_schema",
      schema,
    });
    expect(
      thrown(() => responseFormatToGrammar({ type: "json_schema", json_schema: { name: "x" } })).message,
    ).toContain("response_format.json_schema.schema");
    expect(thrown(() => responseFormatToGrammar({ type: "xml" })).code).toBe("ERR_BAD_REQUEST");
  });
});

describe("resolveOpenAIOptions", () => {
  it("uses OpenAI's temperature 1 and top_p 1 over the Modelfile's, as Ollama's openai.go does", () => {
    const r = resolveOpenAIOptions({}, { temperature: 0.1, top_p: 0.2, top_k: 7 }, "chat");
    expect(r.sampling.temperature).toBe(1);
    expect(r.sampling.topP).toBe(1);
    expect(r.sampling.topK).toBe(7);
    expect(r.maxTokens).toBe(-1);
    expect(r.logprobs).toBeUndefined();
  });

  it("maps the chat parameters", () => {
    const r = resolveOpenAIOptions(
      {
        temperature: 0,
        top_p: 0.5,
        max_tokens: 10,
        max_completion_tokens: 20,
        stop: "\n\n",
        seed: 7,
        frequency_penalty: 0.5,
        presence_penalty: -1,
        logit_bias: { "15": 2.5, "0": -100 },
        n: 1,
        response_format: { type: "json_object" },
        logprobs: true,
        top_logprobs: 3,
      },
      undefined,
      "chat",
    );
    expect(r.sampling.temperature).toBe(0);
    expect(r.sampling.topP).toBe(0.5);
    expect(r.maxTokens).toBe(20);
    expect(r.stop).toEqual(["\n\n"]);
    expect(r.sampling.seed).toBe(7);
    expect(r.sampling.frequencyPenalty).toBe(0.5);
    expect(r.sampling.presencePenalty).toBe(-1);
    expect(r.sampling.logitBias.get(15)).toBe(2.5);
    expect(r.sampling.logitBias.get(0)).toBe(Number.NEGATIVE_INFINITY);
    expect(r.sampling.logitBias.size).toBe(2);
    expect(r.grammar).toEqual({ type: "json" });
    expect(r.logprobs).toBe(3);
    expect(resolveOpenAIOptions({ max_tokens: 5, stop: ["a", "b"] }, undefined, "chat").maxTokens).toBe(5);
    expect(resolveOpenAIOptions({ logprobs: 2 }, undefined, "completions").logprobs).toBe(2);
  });

  it.each([
    [{ n: 2 }, "n"],
    [{ temperature: 2.5 }, "temperature"],
    [{ top_p: -1 }, "top_p"],
    [{ max_tokens: 0 }, "max_tokens"],
    [{ max_completion_tokens: 1.5 }, "max_completion_tokens"],
    [{ frequency_penalty: 3 }, "frequency_penalty"],
    [{ stop: 5 }, "stop"],
    [{ logit_bias: { abc: 1 } }, "logit_bias key"],
    [{ logit_bias: { "12": 101 } }, 'logit_bias["12"]'],
    [{ top_logprobs: 2 }, "logprobs"],
    [{ logprobs: true, top_logprobs: 21 }, "top_logprobs"],
  ])("rejects %j naming %s", (body, field) => {
    const e = thrown(() => resolveOpenAIOptions(body, undefined, "chat"));
    expect(e.code).toBe("ERR_BAD_REQUEST");
    expect(e.message.startsWith(`${field} must be`)).toBe(true);
  });

  it("checks logit_bias ids against the vocabulary", () => {
    const r = resolveOpenAIOptions({ logit_bias: { "300": 1 } }, undefined, "chat");
    expect(() => checkLogitBias(r.sampling.logitBias, 512)).not.toThrow();
    expect(thrown(() => checkLogitBias(r.sampling.logitBias, 300)).message).toContain("300");
  });
});

describe("keep_alive", () => {
  it("parses Go durations (time.ParseDuration) into milliseconds", () => {
    expect(parseGoDuration("5m")).toBe(300_000);
    expect(parseGoDuration("1h30m")).toBe(5_400_000);
    expect(parseGoDuration("10s")).toBe(10_000);
    expect(parseGoDuration("1.5h")).toBe(5_400_000);
    expect(parseGoDuration("300ms")).toBe(300);
    expect(parseGoDuration("-1m")).toBe(-60_000);
    expect(parseGoDuration("0")).toBe(0);
    expect(parseGoDuration("2h45m10.5s")).toBe(9_910_500);
    expect(parseGoDuration("")).toBeUndefined();
    expect(parseGoDuration("5")).toBeUndefined();
    expect(parseGoDuration("5 m")).toBeUndefined();
    expect(parseGoDuration("5d")).toBeUndefined();
  });

  it("follows Ollama's semantics: number = seconds, negative = forever, 0 = unload now", () => {
    expect(parseKeepAlive(undefined)).toBeUndefined();
    expect(parseKeepAlive(null)).toBeUndefined();
    expect(parseKeepAlive("5m")).toBe(300_000);
    expect(parseKeepAlive(30)).toBe(30_000);
    expect(parseKeepAlive(0)).toBe(0);
    expect(parseKeepAlive("0")).toBe(0);
    expect(parseKeepAlive("0s")).toBe(0);
    expect(parseKeepAlive(-1)).toBe(KEEP_ALIVE_FOREVER);
    expect(parseKeepAlive("-1m")).toBe(KEEP_ALIVE_FOREVER);
    expect(parseKeepAlive("600")).toBe(600_000);
    expect(parseKeepAlive(1e300)).toBe(KEEP_ALIVE_FOREVER);
    for (const bad of ["soon", "5 minutes", true, {}, ""]) {
      const e = thrown(() => parseKeepAlive(bad));
      expect(e.code).toBe("ERR_BAD_REQUEST");
      expect(e.message).toContain("keep_alive must be");
    }
  });
});
