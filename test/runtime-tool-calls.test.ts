import { readFileSync } from "node:fs";
import { join } from "node:path";
import { getLlama, LlamaCompletion, LlamaLogLevel } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { checkJsonSchema } from "../src/runtime/grammar.ts";
import { renderChatPrompt } from "../src/runtime/prompt.ts";
import {
  type ParsedToolCalls,
  parseToolCalls,
  resolveToolChoice,
  ToolCallStream,
  toolCallGrammar,
  toolCallTag,
} from "../src/runtime/tool-calls.ts";
import type { ToolDefinition } from "../src/tokenizer/chat-template.ts";
import { isOwlError } from "../src/util/errors.ts";

const library = JSON.parse(
  readFileSync(join(import.meta.dirname, "fixtures", "ollama-templates", "library.json"), "utf8"),
) as Record<string, { template: string }>;
const lib = (name: string) => library[`library/${name}`]!.template;

const tool = (
  name: string,
  properties: Record<string, unknown> = {},
  required: string[] = [],
): ToolDefinition => ({
  type: "function",
  function: { name, description: `${name} tool`, parameters: { type: "object", properties, required } },
});
const WEATHER = tool("get_weather", { city: { type: "string" } }, ["city"]);
const TIME = tool("get_time", { tz: { type: "string" } });
const TOOLS = [WEATHER, TIME];

function ids() {
  let n = 0;
  return () => `call_${++n}`;
}

const parse = (text: string, tools = TOOLS, tag?: string) =>
  parseToolCalls(text, tools, { makeId: ids(), ...(tag === undefined ? {} : { tag }) });

describe("parseToolCalls", () => {
  it("Hermes / Qwen <tool_call> blocks, several, with text around", () => {
    expect(
      parse(
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_call>',
      ),
    ).toEqual({
      content: "Let me check.",
      calls: [
        { id: "call_1", name: "get_weather", arguments: { city: "Paris" } },
        { id: "call_2", name: "get_time", arguments: { tz: "CET" } },
      ],
    });
    // The end of generation may come before the close tag.
    expect(parse('<tool_call>\n{"name": "get_time", "arguments": {}}').calls).toEqual([
      { id: "call_1", name: "get_time", arguments: {} },
    ]);
  });

  it("Llama 3.x: bare JSON with parameters, and <|python_tag|>", () => {
    expect(parse('{"name": "get_weather", "parameters": {"city": "Oslo"}}')).toEqual({
      content: "",
      calls: [{ id: "call_1", name: "get_weather", arguments: { city: "Oslo" } }],
    });
    expect(
      parse(
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}; {"name": "get_time", "parameters": {}}<|eom_id|>',
      ).calls,
    ).toHaveLength(2);
  });

  it("Mistral: [TOOL_CALLS] [...] and [TOOL_CALLS]name[ARGS]{...}", () => {
    expect(
      parse(
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Rome"}}, {"name": "get_time", "arguments": {}}]',
      ),
    ).toEqual({
      content: "",
      calls: [
        { id: "call_1", name: "get_weather", arguments: { city: "Rome" } },
        { id: "call_2", name: "get_time", arguments: {} },
      ],
    });
    expect(parse('[TOOL_CALLS]get_weather[ARGS]{"city": "Rome"}').calls).toEqual([
      { id: "call_1", name: "get_weather", arguments: { city: "Rome" } },
    ]);
  });

  it("bare arrays, fenced JSON, string-encoded arguments, function wrappers", () => {
    expect(parse('[{"name": "get_time", "arguments": "{\\"tz\\": \\"UTC\\"}"}]').calls[0]!.arguments).toEqual(
      { tz: "UTC" },
    );
    expect(parse('```json\n{"name": "get_time", "arguments": {}}\n```').calls).toHaveLength(1);
    expect(
      parse('{"type": "function", "function": {"name": "get_time", "arguments": {"tz": "X"}}}').calls[0],
    ).toEqual({
      id: "call_1",
      name: "get_time",
      arguments: { tz: "X" },
    });
  });

  it("leaves everything else as content, untouched", () => {
    for (const text of [
      "The weather is fine.",
      '{"name": "unknown_tool", "arguments": {}}', // not one of the tools
      '{"city": "Paris"}', // JSON, but not a call
      'Sure: {"name": "get_time", "arguments": {}}', // bare JSON only at the start
      '<tool_call>{"name": "get_time", "arguments": [1]}</tool_call>', // arguments not an object
      '<tool_call>{"name": "get_time", "arguments": {}', // never closes
    ]) {
      expect(parse(text)).toEqual({ content: text, calls: [] });
    }
    expect(parseToolCalls('{"name": "get_time", "arguments": {}}', [])).toEqual({
      content: '{"name": "get_time", "arguments": {}}',
      calls: [],
    });
  });

  it("gives OpenAI-style random ids by default", () => {
    const { calls } = parseToolCalls('{"name": "get_time", "arguments": {}}', TOOLS);
    expect(calls[0]!.id).toMatch(/^call_[A-Za-z0-9]{24}$/);
  });

  it("mistral-small's own tag ([TOOL_CALLS][) parses as Mistral's format, whole and streamed", () => {
    const text = '[TOOL_CALLS][{"name": "get_time", "arguments": {"tz": "UTC"}}]';
    expect(parse(text, TOOLS, "[TOOL_CALLS][").calls).toEqual([
      { id: "call_1", name: "get_time", arguments: { tz: "UTC" } },
    ]);
    const s = new ToolCallStream(TOOLS, { tag: "[TOOL_CALLS][", makeId: ids() });
    const a = s.push("[TOOL_CALLS][{");
    const b = s.push('"name": "get_time", "arguments": {"tz": "UTC"}}]');
    expect([a, b]).toEqual([
      { content: "", calls: [] },
      { content: "", calls: [{ id: "call_1", name: "get_time", arguments: { tz: "UTC" } }] },
    ]);
    expect(s.finish()).toEqual({ content: "", calls: [] });
  });

  it("a template's own tag", () => {
    const text = 'ok <function_call>{"name": "get_time", "arguments": {}}</function_call>';
    expect(parse(text).calls).toEqual([]);
    expect(parse(text, TOOLS, "<function_call>")).toEqual({
      content: "ok",
      calls: [{ id: "call_1", name: "get_time", arguments: {} }],
    });
  });
});

describe("toolCallTag: the tag a Go template writes before calls (Ollama's parseTag)", () => {
  it.each([
    ["qwen2.5:0.5b", "<tool_call>"],
    // Ollama cuts the text before "{": "[TOOL_CALLS][" is its tag for this template.
    ["mistral-small:24b", "[TOOL_CALLS]["],
    ["llama3.1:8b", "{"],
    ["gemma3:1b", undefined],
  ])("%s -> %s", (name, tag) => {
    expect(toolCallTag(lib(name))).toBe(tag);
  });
});

/** Push text in the given pieces; collect what comes out. */
function stream(
  pieces: string[],
  tools = TOOLS,
): { out: ParsedToolCalls[]; content: string; calls: ParsedToolCalls["calls"] } {
  const s = new ToolCallStream(tools, { makeId: ids() });
  const out = pieces.map((p) => s.push(p));
  out.push(s.finish());
  return { out, content: out.map((o) => o.content).join(""), calls: out.flatMap((o) => o.calls) };
}

describe("ToolCallStream", () => {
  it("streams plain text at once, holding back only what could start a marker", () => {
    const r = stream(["Hello", " world", " <tool", "ing> done"]);
    expect(r.out.map((o) => o.content)).toEqual(["Hello", " world", " ", "<tooling> done", ""]);
    expect(r.calls).toEqual([]);
  });

  it("emits a Hermes call whole when its close tag arrives, then goes on with text", () => {
    const r = stream([
      "Checking.\n<tool",
      '_call>\n{"name": "get_weather", ',
      '"arguments": {"city": "Paris"}}\n</tool_',
      "call>",
      " Done.",
    ]);
    expect(r.out.map((o) => o.content)).toEqual(["Checking.\n", "", "", "", " Done.", ""]);
    expect(r.out[3]!.calls).toEqual([{ id: "call_1", name: "get_weather", arguments: { city: "Paris" } }]);
    expect(r.out.filter((o) => o.calls.length > 0)).toHaveLength(1);
  });

  it("holds a leading JSON answer until it closes; a call comes out as a call", () => {
    const r = stream(["  ", '{"name": "get_t', 'ime", "parameters": {"tz"', ': "UTC"}}']);
    expect(r.out[3]!.calls).toEqual([{ id: "call_1", name: "get_time", arguments: { tz: "UTC" } }]);
    expect(r.content.trim()).toBe("");
  });

  it("releases JSON that is not a call as content, and text after a leading word is never held", () => {
    const r = stream(['{"answer"', ": 42}", " and more"]);
    expect(r.out.map((o) => o.content)).toEqual(["", '{"answer": 42}', " and more", ""]);
    const t = stream(["The answer: ", '{"name": "get_time"', ', "arguments": {}}']);
    expect(t.out.map((o) => o.content)).toEqual([
      "The answer: ",
      '{"name": "get_time"',
      ', "arguments": {}}',
      "",
    ]);
    expect(t.calls).toEqual([]);
  });

  it("holds a leading ```json fence, but streams other code blocks", () => {
    const j = stream(["``", '`json\n{"name": "get_time", "arguments": {}}', "\n```"]);
    expect(j.out.map((o) => o.calls.length)).toEqual([0, 0, 1, 0]);
    expect(j.content.trim()).toBe("");
    const py = stream(["```py", "thon\nprint(1)\n", "```"]);
    expect(py.out.map((o) => o.content)).toEqual(["```py", "thon\nprint(1)\n", "```", ""]);
  });

  it("releases an unfinished call as content at the end (never drops text)", () => {
    const text = '<tool_call>{"name": "get_time", "argu';
    const r = stream([text]);
    expect(r.content).toBe(text);
    expect(r.calls).toEqual([]);
  });

  it("Mistral arrays stream as soon as the array closes; python tag at the end", () => {
    const m = stream(["[TOOL_CALLS] [", '{"name": "get_time", "arguments": {}}', "]"]);
    expect(m.out[2]!.calls).toHaveLength(1);
    const p = stream(["<|python_", 'tag|>{"name": "get_time", ', '"parameters": {}}']);
    expect(p.out.slice(0, 3).every((o) => o.calls.length === 0 && o.content === "")).toBe(true);
    expect(p.out[3]!.calls).toHaveLength(1);
  });

  it("gives the same result as parseToolCalls however the text is split", () => {
    const text =
      'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>';
    const whole = parse(text);
    for (const size of [1, 2, 3, 7, 13]) {
      const pieces: string[] = [];
      for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
      const r = stream(pieces);
      expect(r.calls).toEqual(whole.calls);
      expect(r.content.trim()).toBe(whole.content);
    }
  });
});

describe("toolCallGrammar and tool_choice", () => {
  it("builds one schema per tool (oneOf) or for the named one", () => {
    const g = toolCallGrammar(TOOLS);
    expect(g.type).toBe("json_schema");
    const schema = (g as { schema: { oneOf: unknown[] } }).schema;
    expect(schema.oneOf).toHaveLength(2);
    expect(toolCallGrammar(TOOLS, "get_time")).toEqual({
      type: "json_schema",
      schema: {
        type: "object",
        properties: { name: { const: "get_time" }, arguments: TIME.function.parameters },
        required: ["name", "arguments"],
      },
    });
    // grammar.ts accepts what toolCallGrammar builds.
    expect(() => checkJsonSchema(schema)).not.toThrow();
  });

  it("resolves tool_choice as OpenAI does", () => {
    expect(resolveToolChoice(undefined, TOOLS)).toEqual({ mode: "auto" });
    expect(resolveToolChoice(undefined, [])).toEqual({ mode: "none" });
    expect(resolveToolChoice("none", TOOLS)).toEqual({ mode: "none" });
    expect(resolveToolChoice("required", TOOLS)).toEqual({ mode: "required" });
    expect(resolveToolChoice({ type: "function", function: { name: "get_time" } }, TOOLS)).toEqual({
      mode: "required",
      name: "get_time",
    });
    for (const bad of ["always", { type: "function", function: { name: "nope" } }, 3]) {
      let err: unknown;
      try {
        resolveToolChoice(bad, TOOLS);
      } catch (e) {
        err = e;
      }
      expect(isOwlError(err, "ERR_BAD_REQUEST")).toBe(true);
    }
    expect(() => resolveToolChoice("required", [])).toThrow(/no tools/);
  });

  it("end to end: llama.cpp constrained by the grammar writes a call that parseToolCalls reads", async () => {
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({
      modelPath: join(import.meta.dirname, "..", "models", "stories260k.gguf"),
    });
    const context = await model.createContext({ contextSize: 256, threads: 1 });
    try {
      const tools = [
        tool("get_weather", { city: { enum: ["Paris", "Rome"] }, days: { type: "integer" } }, [
          "city",
          "days",
        ]),
        tool("get_time", { tz: { enum: ["UTC", "CET"] } }, ["tz"]),
      ];
      const spec = toolCallGrammar(tools);
      if (spec.type !== "json_schema") throw new Error("expected a JSON schema grammar");
      const grammar = await llama.createGrammarForJsonSchema(checkJsonSchema(spec.schema) as never);
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      const text = await completion.generateCompletion("Once upon a time", {
        grammar,
        maxTokens: 120,
        temperature: 0,
      });
      const parsed = parseToolCalls(text, tools);
      expect(parsed.content).toBe("");
      expect(parsed.calls).toHaveLength(1);
      const call = parsed.calls[0]!;
      if (call.name === "get_weather") {
        expect(["Paris", "Rome"]).toContain(call.arguments["city"]);
        expect(Number.isInteger(call.arguments["days"])).toBe(true);
      } else {
        expect(call.name).toBe("get_time");
        expect(["UTC", "CET"]).toContain(call.arguments["tz"]);
      }
    } finally {
      await context.dispose();
      await model.dispose();
    }
  }, 60_000);

  it("a call parsed from a reply renders back through the model's template (qwen2.5)", () => {
    const { calls } = parse(
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    );
    const { prompt } = renderChatPrompt({
      template: lib("qwen2.5:0.5b"),
      messages: [
        { role: "user", content: "Weather?" },
        {
          role: "assistant",
          content: "",
          tool_calls: calls.map((c) => ({ id: c.id, function: { name: c.name, arguments: c.arguments } })),
        },
      ],
    });
    expect(prompt).toContain(
      '<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call>',
    );
  });
});
