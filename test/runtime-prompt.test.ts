import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  executeOllamaTemplate,
  fitChatPrompt,
  fitPrompt,
  type PromptMessage,
  parseOllamaTemplate,
  promptTokens,
  renderChatPrompt,
  renderGeneratePrompt,
  templateCapabilities,
  truncatePromptTokens,
} from "../src/runtime/prompt.ts";
import type { ModelInfo } from "../src/runtime/types.ts";
import type { ToolDefinition } from "../src/tokenizer/chat-template.ts";
import { isOwlError, type OwlError } from "../src/util/errors.ts";

const FIXTURES = join(import.meta.dirname, "fixtures", "ollama-templates");
const library = JSON.parse(readFileSync(join(FIXTURES, "library.json"), "utf8")) as Record<
  string,
  { template: string }
>;
const lib = (name: string) => library[`library/${name}`]!.template;

function thrown(f: () => unknown): OwlError {
  try {
    f();
  } catch (e) {
    if (isOwlError(e)) return e;
    throw e;
  }
  throw new Error("expected an OwlError");
}

// The three conversations of Ollama's TestTemplate (template/template_test.go).
const CASES: Record<string, { role: string; content: string }[]> = {
  user: [{ role: "user", content: "Hello, how are you?" }],
  "user-assistant-user": [
    { role: "user", content: "Hello, how are you?" },
    { role: "assistant", content: "I'm doing great. How can I help you today?" },
    { role: "user", content: "I'd like to show off how chat templating works!" },
  ],
  "system-user-assistant-user": [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "Hello, how are you?" },
    { role: "assistant", content: "I'm doing great. How can I help you today?" },
    { role: "user", content: "I'd like to show off how chat templating works!" },
  ],
};

// Ollama's test strips one trailing space from these templates' output before comparing.
const TRAILING_SPACE = [
  "chatqa.gotmpl",
  "llama2-chat.gotmpl",
  "mistral-instruct.gotmpl",
  "openchat.gotmpl",
  "vicuna.gotmpl",
];

describe("Ollama's built-in templates render as Ollama's template.Execute (template/testdata)", () => {
  const templates = readdirSync(FIXTURES).filter((f) => f.endsWith(".gotmpl"));
  it("has the fixtures", () => expect(templates.length).toBeGreaterThanOrEqual(20));
  for (const file of templates) {
    for (const [name, messages] of Object.entries(CASES)) {
      it(`${file} ${name}`, () => {
        const t = parseOllamaTemplate(readFileSync(join(FIXTURES, file), "utf8").replaceAll("\r\n", "\n"));
        let out = executeOllamaTemplate(t, { messages });
        if (TRAILING_SPACE.includes(file) && out.endsWith(" ")) out = out.slice(0, -1);
        expect(out).toBe(readFileSync(join(FIXTURES, "expected", file, name), "utf8"));
      });
    }
  }
});

describe("Ollama's TestExecuteWithMessages: legacy and chat-style templates give the same prompt", () => {
  const mistralMsgs = [
    { role: "user", content: "Hello friend!" },
    { role: "assistant", content: "Hello human!" },
    { role: "user", content: "What is your name?" },
  ];
  it.each([
    ["[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] "],
    ["[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}"],
    [
      '[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n{{- if eq .Role "user" }}{{ .Content }}[/INST] {{ else if eq .Role "assistant" }}{{ .Content }}[INST] {{ end }}\n{{- end }}',
    ],
  ])("mistral %#", (src) => {
    expect(executeOllamaTemplate(parseOllamaTemplate(src), { messages: mistralMsgs })).toBe(
      "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] ",
    );
    expect(
      executeOllamaTemplate(parseOllamaTemplate(src), {
        messages: [{ role: "system", content: "You are a helpful assistant!" }, ...mistralMsgs],
      }),
    ).toBe(
      "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] ",
    );
  });

  it("continues a trailing assistant message (prefill) in both forms", () => {
    const msgs = [...mistralMsgs, { role: "assistant", content: "My name is Ollama and I" }];
    for (const src of [
      "[INST] {{ .Prompt }}[/INST] ",
      "[INST] {{ .Prompt }}[/INST] {{ .Response }}",
      '\n{{- range $i, $m := .Messages }}\n{{- if eq .Role "user" }}[INST] {{ .Content }}[/INST] {{ else if eq .Role "assistant" }}{{ .Content }}{{ end }}\n{{- end }}',
    ]) {
      expect(executeOllamaTemplate(parseOllamaTemplate(src), { messages: msgs })).toBe(
        "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] My name is Ollama and I",
      );
    }
  });

  it("fills in the middle with .Suffix (TestExecuteWithSuffix)", () => {
    const t = parseOllamaTemplate(
      "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n{{- end }}",
    );
    expect(executeOllamaTemplate(t, { messages: [{ role: "user", content: "hello" }] })).toBe("hello");
    expect(executeOllamaTemplate(t, { messages: [], prompt: "def add(", suffix: "return x" })).toBe(
      "<PRE> def add( <SUF>return x <MID>",
    );
  });
});

describe("every template of the Ollama library parses and renders", () => {
  const convo = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello" },
    { role: "user", content: "Weather?" },
  ];
  for (const [name, { template }] of Object.entries(library)) {
    it(name, () => {
      const out = renderChatPrompt({ messages: convo, template, now: new Date(2026, 0, 2) });
      expect(out.source).toBe("modelfile");
      expect(out.prompt).toContain("Weather?");
      const render = () =>
        renderChatPrompt({ messages: convo, template, tools: [WEATHER], now: new Date(2026, 0, 2) });
      if (name === "library/llama4:latest") {
        // {{ with .Tools }}{{ range .Tools }}: .Tools of a slice fails in Go's text/template too.
        expect(thrown(render).message).toContain("can't evaluate field Tools");
      } else expect(render().prompt).toContain("Weather?");
    });
  }
});

const WEATHER: ToolDefinition = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather",
    parameters: {
      type: "object",
      properties: { city: { type: "string", description: "City name" } },
      required: ["city"],
    },
  },
};

// Worked by hand from the template text and Go's text/template rules.
describe("tools in real library templates", () => {
  it("llama3.1: system tool preamble, tools as JSON lines in the last user turn", () => {
    const { prompt } = renderChatPrompt({
      template: lib("llama3.1:8b"),
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      tools: [WEATHER],
    });
    const toolJson =
      '{"type":"function","function":{"name":"get_weather","description":"Get the current weather","parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string","description":"City name"}}}}}';
    expect(prompt).toBe(
      "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n\n" +
        "When you receive a tool call response, use the output to format an answer to the orginal user question.\n\n" +
        "You are a helpful assistant with tool calling capabilities.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\n" +
        "Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n" +
        'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.\n\n' +
        `${toolJson}\n\nQuestion: What is the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`,
    );
  });

  it("qwen2.5: <tools>, an earlier <tool_call> with JSON arguments and a <tool_response>", () => {
    const { prompt } = renderChatPrompt({
      template: lib("qwen2.5:0.5b"),
      messages: [
        { role: "user", content: "Weather in Paris?" },
        {
          role: "assistant",
          content: "",
          tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris" } } }],
        },
        { role: "tool", content: '{"temp": 20}' },
      ],
      tools: [WEATHER],
    });
    const fn =
      '{"name":"get_weather","description":"Get the current weather","parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string","description":"City name"}}}}';
    expect(prompt).toBe(
      "<|im_start|>system\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
        `{"type": "function", "function": ${fn}}\n</tools>\n\n` +
        "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 20}\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it("OpenAI-shaped tool calls (JSON-string arguments) render the same as Ollama's", () => {
    const a = renderChatPrompt({
      template: lib("qwen2.5:0.5b"),
      messages: [
        { role: "user", content: "x" },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: '{"b":1,"a":2}' } }],
        },
        { role: "tool", content: "ok", tool_call_id: "c1" },
      ],
    });
    expect(a.prompt).toContain('{"name": "f", "arguments": {"a":2,"b":1}}'); // Go map: sorted keys
  });
});

describe("templateCapabilities: what Ollama's /api/show lists and /api/chat checks", () => {
  const jinja = (name: string) =>
    readFileSync(join(import.meta.dirname, "fixtures", "templates", `${name}.jinja`), "utf8");
  it("library templates: the capabilities ollama.com lists for those models", () => {
    // ollama.com tags llama3.1, llama3.2 and qwen2.5 "tools"; llama3 and gemma2 have no tools.
    expect(templateCapabilities(lib("llama3.1:8b"), undefined)).toEqual(["completion", "tools"]);
    expect(templateCapabilities(lib("llama3.2:3b"), undefined)).toEqual(["completion", "tools"]);
    expect(templateCapabilities(lib("qwen2.5:0.5b"), undefined)).toEqual(["completion", "tools"]);
    expect(templateCapabilities(lib("llama3:8b"), undefined)).toEqual(["completion"]);
    expect(templateCapabilities(lib("gemma2:2b"), undefined)).toEqual(["completion"]);
    // Fill-in-the-middle templates read .Suffix (server/images.go: "insert").
    expect(templateCapabilities(lib("qwen2.5-coder:1.5b"), undefined)).toContain("insert");
  });
  it("a Modelfile TEMPLATE decides over the GGUF's chat template; without one the Jinja text does", () => {
    const llama31 = jinja("meta-llama-Llama-3.1-8B-Instruct");
    expect(templateCapabilities(undefined, llama31)).toEqual(["completion", "tools"]);
    expect(templateCapabilities(undefined, jinja("google-gemma-2-2b-it"))).toEqual(["completion"]);
    expect(templateCapabilities("{{ .Prompt }}", llama31)).toEqual(["completion"]);
    expect(templateCapabilities(undefined, undefined)).toEqual(["completion"]);
    // A template that does not parse: Ollama logs it and lists no template capability.
    expect(templateCapabilities("{{ if .Tools }}", undefined)).toEqual(["completion"]);
  });
});

describe("renderChatPrompt: precedence and the Modelfile", () => {
  it("Modelfile SYSTEM unless the request starts with a system message; MESSAGEs first", () => {
    const template = "{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}";
    const stored = [
      { role: "user" as const, content: "u0" },
      { role: "assistant" as const, content: "a0" },
    ];
    expect(
      renderChatPrompt({
        template,
        system: "S",
        storedMessages: stored,
        messages: [{ role: "user", content: "u1" }],
      }).prompt,
    ).toBe("[system:S][user:u0][assistant:a0][user:u1]");
    expect(
      renderChatPrompt({
        template,
        system: "S",
        messages: [
          { role: "system", content: "mine" },
          { role: "user", content: "u1" },
        ],
      }).prompt,
    ).toBe("[system:mine][user:u1]");
  });

  it("Go template > GGUF Jinja > Ollama's DefaultTemplate", () => {
    const messages = [{ role: "user", content: "hi" }];
    expect(
      renderChatPrompt({
        messages,
        template: "{{ range .Messages }}{{ .Content }}{{ end }}!",
        chatTemplate: "x",
      }),
    ).toEqual({
      prompt: "hi!",
      source: "modelfile",
    });
    expect(
      renderChatPrompt({
        messages,
        chatTemplate:
          "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<bot>{% endif %}",
        bosToken: "<s>",
      }),
    ).toEqual({ prompt: "<s><user>hi<bot>", source: "gguf" });
    expect(renderChatPrompt({ messages })).toEqual({ prompt: "hi", source: "default" });
  });

  it('a model with no template: Ollama\'s "{{ .Prompt }}" run once per turn, system messages left out', () => {
    // template/template.go: DefaultTemplate = Parse("{{ .Prompt }}"); Parse appends
    // {{ .Response }} (the template names neither .Messages nor .Response); Execute runs a legacy
    // template once per user turn with that turn's answer, and the last run stops before
    // {{ .Response }}. So: "u1" + "a1", then "u2"; the system text is never printed.
    const messages = [
      { role: "system", content: "Be kind." },
      { role: "user", content: "Once upon a time" },
      { role: "assistant", content: " there was a cat." },
      { role: "user", content: " The cat" },
    ];
    expect(renderChatPrompt({ messages, system: "Modelfile system" })).toEqual({
      prompt: "Once upon a time there was a cat. The cat",
      source: "default",
    });
    // A trailing assistant message is continued, not closed.
    expect(renderChatPrompt({ messages: messages.slice(0, 3) }).prompt).toBe(
      "Once upon a time there was a cat.",
    );
  });

  it("merges consecutive messages of one role and joins every system message as .System (Ollama's collate)", () => {
    const out = renderChatPrompt({
      template: "<{{ .System }}>{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}",
      messages: [
        { role: "system", content: "a" },
        { role: "system", content: "b" },
        { role: "user", content: "1" },
        { role: "user", content: "2" },
        { role: "tool", content: "t1" },
        { role: "tool", content: "t2" },
      ],
    });
    expect(out.prompt).toBe("<a\n\nb>[system:a\n\nb][user:1\n\n2][tool:t1][tool:t2]");
  });

  it("names an OpenAI tool result from its call id, and reads the developer role as system", () => {
    const out = renderChatPrompt({
      template:
        '{{ .System }}|{{ range .Messages }}{{ if eq .Role "tool" }}[{{ .ToolName }}={{ .Content }}]{{ end }}{{ end }}',
      messages: [
        { role: "developer", content: "dev" },
        { role: "user", content: "q" },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "c9", type: "function", function: { name: "get_time", arguments: "{}" } }],
        },
        { role: "tool", content: "12:00", tool_call_id: "c9" },
      ],
    });
    expect(out.prompt).toBe("dev|[get_time=12:00]");
  });

  it("passes think to Go templates (.Think, .ThinkLevel, .IsThinkSet) and to Jinja (enable_thinking)", () => {
    const template =
      "{{ if .Think }}T{{ .ThinkLevel }}{{ end }}|{{ .IsThinkSet }}|{{ range .Messages }}{{ .Content }}{{ end }}";
    const messages = [{ role: "user", content: "q" }];
    expect(renderChatPrompt({ template, messages }).prompt).toBe("|false|q");
    expect(renderChatPrompt({ template, messages, think: true }).prompt).toBe("T|true|q");
    expect(renderChatPrompt({ template, messages, think: "high" }).prompt).toBe("Thigh|true|q");
    expect(renderChatPrompt({ template, messages, think: false }).prompt).toBe("|true|q");
    const chatTemplate =
      "{% for m in messages %}{{ m.content }}{% endfor %}{% if enable_thinking is defined %}:{{ enable_thinking }}{% endif %}";
    expect(renderChatPrompt({ chatTemplate, messages, addGenerationPrompt: false }).prompt).toBe("q");
    expect(renderChatPrompt({ chatTemplate, messages, think: false }).prompt).toBe("q:False");
  });

  it("refuses images and malformed messages", () => {
    expect(
      thrown(() => renderChatPrompt({ messages: [{ role: "user", content: "x", images: ["aGk="] }] })).code,
    ).toBe("ERR_UNSUPPORTED");
    expect(
      thrown(() =>
        renderChatPrompt({
          messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:" } }] }],
        }),
      ).message,
    ).toContain("vision projector");
    expect(
      thrown(() => renderChatPrompt({ messages: [{ role: "user", content: 5 as unknown as string }] })).code,
    ).toBe("ERR_BAD_REQUEST");
    const badArgs = { role: "assistant", tool_calls: [{ function: { name: "f", arguments: "{oops" } }] };
    expect(thrown(() => renderChatPrompt({ messages: [badArgs] })).message).toContain(
      "arguments must be a JSON object",
    );
  });
});

describe("renderGeneratePrompt", () => {
  const template = lib("mistral:7b-instruct-fp16"); // "[INST] {{ .System }} {{ .Prompt }} [/INST]\n"
  it("raw passes the prompt through; raw with system is refused as Ollama does", () => {
    expect(renderGeneratePrompt({ prompt: "as is", raw: true, template }).prompt).toBe("as is");
    expect(thrown(() => renderGeneratePrompt({ prompt: "x", raw: true, system: "s" })).code).toBe(
      "ERR_BAD_REQUEST",
    );
  });

  it("wraps system and prompt in a legacy template, request system over Modelfile SYSTEM", () => {
    expect(renderGeneratePrompt({ prompt: "Hi", template, modelSystem: "S" }).prompt).toBe(
      "[INST] S Hi [/INST]\n",
    );
    expect(renderGeneratePrompt({ prompt: "Hi", template, modelSystem: "S", system: "R" }).prompt).toBe(
      "[INST] R Hi [/INST]\n",
    );
    expect(
      renderGeneratePrompt({ prompt: "Hi", template: "{{ .Prompt }}", requestTemplate: "<{{ .Prompt }}>" })
        .prompt,
    ).toBe("<Hi>");
  });

  it("a model with no template at all: the prompt as is (Ollama's DefaultTemplate); a GGUF template is used", () => {
    expect(renderGeneratePrompt({ prompt: "Once upon", modelSystem: "S" })).toEqual({
      prompt: "Once upon",
      source: "default",
    });
    // Ollama's GenerateHandler puts the Modelfile MESSAGEs before the prompt: each turn's text.
    const storedMessages = [
      { role: "user" as const, content: "u0" },
      { role: "assistant" as const, content: "a0" },
    ];
    expect(renderGeneratePrompt({ prompt: "p", modelSystem: "S", storedMessages }).prompt).toBe("u0a0p");
    expect(
      renderGeneratePrompt({
        prompt: "hi",
        chatTemplate:
          "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<bot>{% endif %}",
      }),
    ).toEqual({ prompt: "<user>hi<bot>", source: "gguf" });
  });

  it("legacy templates over several turns (Ollama's per-turn runs)", () => {
    const t = parseOllamaTemplate(template);
    const msgs = [
      { role: "user", content: "A" },
      { role: "assistant", content: "B" },
      { role: "user", content: "C" },
    ];
    expect(executeOllamaTemplate(t, { messages: msgs })).toBe("[INST]  A [/INST]\nB[INST]  C [/INST]\n");
  });

  it("suffix needs a template with .Suffix", () => {
    expect(
      renderGeneratePrompt({
        prompt: "def f(",
        suffix: "return 1",
        template: "{{ if .Suffix }}<PRE>{{ .Prompt }}<SUF>{{ .Suffix }}<MID>{{ else }}{{ .Prompt }}{{ end }}",
      }).prompt,
    ).toBe("<PRE>def f(<SUF>return 1<MID>");
    const e = thrown(() =>
      renderGeneratePrompt({ prompt: "x", suffix: "y", template, modelName: "mistral" }),
    );
    expect(e.code).toBe("ERR_UNSUPPORTED");
    expect(e.message).toContain("mistral does not support insert");
  });
});

// A model whose tokenizer makes one token per character; BOS is "<s>" (id 1), EOS "</s>".
function charModel(addBos: boolean) {
  const info: ModelInfo = {
    architecture: "test",
    trainContextLength: 1024,
    embeddingLength: 8,
    vocabSize: 300,
    chatTemplate: undefined,
    eogTokens: [2],
    bosToken: 1,
    eosToken: 2,
    addBos,
    weightBytes: 0,
  };
  return {
    info,
    tokenize(text: string, o: { addBos: boolean; parseSpecial: boolean }): number[] {
      const ids: number[] = o.addBos ? [1] : [];
      let rest = text;
      while (rest.length > 0) {
        if (o.parseSpecial && rest.startsWith("<s>")) {
          ids.push(1);
          rest = rest.slice(3);
        } else {
          ids.push(rest.codePointAt(0)! + 3);
          rest = rest.slice(1);
        }
      }
      return ids;
    },
    detokenize(tokens: readonly number[]): string {
      return tokens.map((t) => (t === 1 ? "<s>" : t === 2 ? "</s>" : String.fromCodePoint(t - 3))).join("");
    },
  };
}

describe("tokens and the context", () => {
  it("adds BOS only when the model adds one and the text does not start with it", () => {
    expect(promptTokens(charModel(true), "ab")).toEqual([1, 100, 101]);
    expect(promptTokens(charModel(true), "<s>ab")).toEqual([1, 100, 101]);
    expect(promptTokens(charModel(false), "ab")).toEqual([100, 101]);
  });

  const template = "{{ range .Messages }}{{ .Content }}|{{ end }}";
  const messages = [
    { role: "system", content: "sys" },
    { role: "user", content: "aaaa" },
    { role: "assistant", content: "bbbb" },
    { role: "user", content: "cc" },
  ];
  // Full prompt "sys|aaaa|bbbb|cc|" = 17 characters + BOS = 18 tokens.
  it("fits, or names both numbers", () => {
    const m = charModel(true);
    expect(fitChatPrompt(m, { template, messages }, { numCtx: 18, truncate: false }).tokens).toHaveLength(18);
    const e = thrown(() => fitChatPrompt(m, { template, messages }, { numCtx: 17, truncate: false }));
    expect(e.code).toBe("ERR_CONTEXT_OVERFLOW");
    expect(e.message).toContain("18 tokens");
    expect(e.message).toContain("17");
  });

  it("truncates like Ollama's chatPrompt: keeps system messages and the newest that fit", () => {
    const m = charModel(true);
    // Without "aaaa|": "sys|bbbb|cc|" = 12 + 1 = 13 tokens.
    const r = fitChatPrompt(m, { template, messages }, { numCtx: 13, truncate: true });
    expect(r.prompt).toBe("sys|bbbb|cc|");
    expect(r.droppedMessages).toBe(1);
    // Then "sys|cc|" = 8 tokens.
    expect(fitChatPrompt(m, { template, messages }, { numCtx: 9, truncate: true }).prompt).toBe("sys|cc|");
    // Even the system message and the last message do not fit: that prompt, longer than numCtx
    // (Ollama's chatPrompt "must always include at least the last message"); its runner then
    // cuts the tokens (truncatePromptTokens).
    const last = fitChatPrompt(m, { template, messages }, { numCtx: 5, truncate: true });
    expect(last.prompt).toBe("sys|cc|");
    expect(last.tokens).toHaveLength(8);
    expect(last.droppedMessages).toBe(2);
    // One message too long: kept as it is.
    const one = fitChatPrompt(
      m,
      { template, messages: [{ role: "user", content: "aaaaaaaa" }] },
      {
        numCtx: 5,
        truncate: true,
      },
    );
    expect(one.prompt).toBe("aaaaaaaa|");
    expect(one.droppedMessages).toBe(0);
  });

  it("cuts tokens as Ollama's runner: the first num_keep (+ BOS) and the last, leaving half the rest free", () => {
    const t = Array.from({ length: 300 }, (_, i) => i);
    // llm/llama_server.go completionPromptForRequest, by hand for numCtx 256, num_keep 4, a model
    // that adds BOS: keep = 4 + 1 = 5; limit = 256 - max(floor((256 - 5) / 2), 1) = 256 - 125 =
    // 131; discard = 300 - 131 = 169: tokens 0..4, then 174..299.
    const cut = truncatePromptTokens(t, { numCtx: 256, numKeep: 4, addsBos: true });
    expect(cut.discarded).toBe(169);
    expect(cut.keep).toBe(5);
    expect(cut.tokens).toEqual([0, 1, 2, 3, 4, ...Array.from({ length: 126 }, (_, i) => 174 + i)]);
    // No BOS, num_keep 0: keep 0; limit = 256 - 128 = 128: the last 128 tokens.
    expect(truncatePromptTokens(t, { numCtx: 256, numKeep: 0, addsBos: false }).tokens).toEqual(t.slice(172));
    // num_keep -1 (the whole prompt): keep = min(300 + 1, 255) = 255; limit = 256 - max(0, 1) =
    // 255: the first 255 tokens.
    expect(truncatePromptTokens(t, { numCtx: 256, numKeep: -1, addsBos: true }).tokens).toEqual(
      t.slice(0, 255),
    );
    // A prompt of numCtx - 1 tokens leaves room for one answer token: not cut; numCtx tokens are.
    expect(truncatePromptTokens(t.slice(0, 255), { numCtx: 256, numKeep: 4, addsBos: true }).discarded).toBe(
      0,
    );
    const full = truncatePromptTokens(t.slice(0, 256), { numCtx: 256, numKeep: 4, addsBos: true });
    expect(full.tokens).toHaveLength(131);
    // Odd sizes: numCtx 7, keep 2 + 1 = 3: limit = 7 - floor(4 / 2) = 5: 0 1 2 then the last 2.
    expect(truncatePromptTokens(t.slice(0, 10), { numCtx: 7, numKeep: 2, addsBos: true }).tokens).toEqual([
      0, 1, 2, 8, 9,
    ]);
  });

  it("truncation finds the same cut as Ollama's one-by-one search on a long history", () => {
    const m = charModel(false);
    const long = [{ role: "system", content: "S" }];
    for (let i = 0; i < 40; i++)
      long.push({ role: i % 2 === 0 ? "user" : "assistant", content: "x".repeat(1 + (i % 7)) });
    for (const numCtx of [5, 12, 30, 77, 150]) {
      // Linear search as Ollama's chatPrompt does it.
      let expected: string | undefined;
      for (let i = 1; i < long.length; i++) {
        const kept = long.slice(0, i).filter((x) => x.role === "system");
        const p = [...kept, ...long.slice(i)].map((x) => `${x.content}|`).join("");
        // Ollama keeps the last message even when it does not fit.
        if (p.length <= numCtx || i === long.length - 1) {
          expected = p;
          break;
        }
      }
      expect(fitChatPrompt(m, { template, messages: long }, { numCtx, truncate: true }).prompt).toBe(
        expected,
      );
    }
  });

  it("fitPrompt checks a plain prompt", () => {
    expect(fitPrompt(charModel(false), "abc", 3)).toHaveLength(3);
    expect(thrown(() => fitPrompt(charModel(false), "abcd", 3)).message).toContain("4 tokens");
  });
});

interface LibraryRender {
  model: string;
  conversation: number;
  messages: PromptMessage[];
  tools?: ToolDefinition[];
  out: string;
  error: string;
}

describe("library templates with tools agree with Go's text/template over Ollama's data (test/fixtures/go-template)", () => {
  const renders = JSON.parse(
    readFileSync(join(import.meta.dirname, "fixtures", "go-template", "ollama-library-renders.json"), "utf8"),
  ) as LibraryRender[];
  it("has the fixtures", () => expect(renders.length).toBe(72));
  for (const r of renders) {
    it(`${r.model} conversation ${r.conversation}`, () => {
      const render = () =>
        executeOllamaTemplate(parseOllamaTemplate(lib(r.model.replace("library/", ""))), {
          messages: r.messages,
          ...(r.tools === undefined ? {} : { tools: r.tools }),
          now: new Date(2026, 0, 2, 12),
        });
      if (r.error === "") expect(render()).toBe(r.out);
      else expect(thrown(render).code).toBe("ERR_TEMPLATE_RENDER");
    });
  }
});
