/**
 * Chat template rendering: the transformers-like environment (whitespace control, loop controls,
 * generation tag, tojson, raise_exception, strftime_now, range), the Jinja2 bridges (undefined
 * and string loops, Python's str() for printed values), the variables a render gets, errors with
 * their codes and positions, the limits, and the fallback templates. Every expected string marked
 * "Jinja2" is what Python jinja2 3.1.6 rendered for the same template in the HF set-up (checked
 * in this workplace); the others are hand-written.
 */
import { describe, expect, it } from "vitest";
import {
  type ChatMessage,
  compileChatTemplate,
  defaultChatTemplate,
  MAX_RANGE,
  plainChatTemplate,
  renderChatTemplate,
  type ToolDefinition,
} from "../src/tokenizer/chat-template.ts";
import { strftime } from "../src/tokenizer/chat-template-strftime.ts";
import { OwlError, type OwlErrorCode } from "../src/util/errors.ts";

const NOW = new Date(2024, 6, 26, 12, 0, 0);

function render(template: string, extra: Record<string, unknown> = {}, messages: ChatMessage[] = []): string {
  return renderChatTemplate(template, { messages, extra, now: NOW });
}

function thrown(f: () => unknown): OwlError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(OwlError);
    return e as OwlError;
  }
  throw new Error("expected an OwlError, nothing was thrown");
}

function expectCode(f: () => unknown, code: OwlErrorCode): OwlError {
  const e = thrown(f);
  expect(e.code, e.message).toBe(code);
  return e;
}

const WEATHER: ToolDefinition = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Météo «now»",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

describe("environment as in transformers' apply_chat_template", () => {
  it("trims blocks, lstrips blocks and drops one trailing newline (Jinja2)", () => {
    const t = "{% if true %}\n  yes\n{% endif %}\n  {% for i in [1,2] %}\n    {{ i }}\n  {% endfor %}\nend\n";
    expect(render(t)).toBe("  yes\n    1\n    2\nend");
    expect(render("a{# c #}\n  {%- if true -%}  b  {%- endif %}\n\n")).toBe("ab");
  });

  it("reads \\r\\n and \\r as newlines, as Jinja2's lexer does (Jinja2)", () => {
    expect(render('a\r\n{% if true %}\r\n  b\r\n  {% endif %}\r\n{{ "x\r\ny" }}\r\n')).toBe("a\n  b\nx\ny");
    expect(render("a\r{% if true %}\rb{% endif %}\r")).toBe("a\nb");
  });

  it("has break and continue (Jinja2)", () => {
    const t =
      "{% for i in [1,2,3,4,5] %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}";
    expect(render(t)).toBe("13");
  });

  it("passes {% generation %} blocks through (Jinja2)", () => {
    expect(render("<{% generation %}gen{% endgeneration %}>")).toBe("<gen>");
  });

  it("tojson is json.dumps(ensure_ascii=False) with Python's separators and indent (Jinja2)", () => {
    const t =
      "{{ tools|tojson }}\n{{ tools[0].function.parameters|tojson(indent=2) }}\n{{ {}|tojson(indent=2) }}{{ []|tojson }}";
    expect(renderChatTemplate(t, { messages: [], tools: [WEATHER] })).toBe(
      '[{"type": "function", "function": {"name": "get_weather", "description": "Météo «now»", "parameters": ' +
        '{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]\n' +
        '{\n  "type": "object",\n  "properties": {\n    "city": {\n      "type": "string"\n    }\n  },\n' +
        '  "required": [\n    "city"\n  ]\n}\n{}[]',
    );
    expect(render("{{ 'x \"q\" \\\\ \\n é 🦙'|tojson }}")).toBe('"x \\"q\\" \\\\ \\n é 🦙"');
  });

  it("raise_exception throws ERR_TEMPLATE_RAISED with the template's own message", () => {
    const e = expectCode(
      () =>
        renderChatTemplate(
          "{{ raise_exception('Only ' ~ 2 ~ ' roles') }}",
          { messages: [] },
          { name: "my.jinja" },
        ),
      "ERR_TEMPLATE_RAISED",
    );
    expect(e.message).toBe("Only 2 roles");
    expect(e.details?.["name"]).toBe("my.jinja");
  });

  it("strftime_now formats the given time like Python's strftime (Jinja2)", () => {
    const t =
      "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%A, %B %-d, %Y %I:%M %p') }}" +
      "|{{ strftime_now('%c') }}|{{ strftime_now('%j %U %W %V %G %z%Z') }}";
    expect(render(t)).toBe(
      "26 Jul 2024|2024-07-26|Friday, July 26, 2024 12:00 PM|Fri Jul 26 12:00:00 2024|208 29 30 30 2024 ",
    );
  });

  it("strftime_now defaults to the time of the call", () => {
    const before = new Date();
    const out = renderChatTemplate("{{ strftime_now('%Y-%m-%d %H:%M') }}", { messages: [] });
    const after = new Date();
    expect([strftime(before, "%Y-%m-%d %H:%M"), strftime(after, "%Y-%m-%d %H:%M")]).toContain(out);
  });

  it("strftime handles ISO weeks and padding flags at year boundaries (Python)", () => {
    expect(strftime(new Date(2021, 0, 3), "%G-W%V-%u %U %W %j")).toBe("2020-W53-7 01 00 003");
    expect(strftime(new Date(2024, 11, 30, 0, 5), "%G-W%V-%u %e|%-H|%_m|%k|%l %P")).toBe(
      "2025-W01-1 30|0|12| 0|12 am",
    );
  });

  it("range works like Python's, under the sandbox's MAX_RANGE (Jinja2)", () => {
    expect(render("{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }}")).toBe(
      "[0, 1, 2] [1, 4, 7] [5, 3, 1]",
    );
    expect(render(`{{ range(${MAX_RANGE})|length }}`)).toBe(String(MAX_RANGE));
    const e = expectCode(() => render(`{{ range(${MAX_RANGE + 1})|length }}`), "ERR_TEMPLATE_RENDER");
    expect(e.message).toContain("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  });

  it("macros may recurse (Jinja2)", () => {
    expect(render("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}.{% endmacro %}{{ f(3) }}")).toBe(
      "....",
    );
  });
});

describe("Jinja2 behaviours bridged over @huggingface/jinja", () => {
  it("prints values with Python's str() (Jinja2)", () => {
    expect(
      render(
        "{{ true }} {{ false }} {{ none }} [{{ missing }}] {{ 1.0 }} {{ 2.5 }} {{ 0.00001 }} {{ 10000000000000000.0 }}",
      ),
    ).toBe("True False None [] 1.0 2.5 1e-05 1e+16");
    expect(
      render("{{ [1, 'a', none, true, 1.5] }} {{ {'k': 'v', 'n': none} }} {{ (1, 'b') }} {{ [\"it's\"] }}"),
    ).toBe("[1, 'a', None, True, 1.5] {'k': 'v', 'n': None} (1, 'b') [\"it's\"]");
    expect(render("{% set ns = namespace(a=1) %}{{ ns }}")).toBe("<Namespace {'a': 1}>");
  });

  it("uses str() for ~ and the string filter (Jinja2)", () => {
    expect(
      render(
        "{{ 'a' ~ true ~ none ~ 1 ~ missing ~ [1] }} {{ true|string }} {{ none|string }} {{ [1, 'b']|string }}",
      ),
    ).toBe("aTrueNone1[1] True None [1, 'b']");
  });

  it("applies string filters to str() of any value (Jinja2)", () => {
    expect(
      render("[{{ none|trim }}][{{ missing|trim }}][{{ [' a ']|trim }}][{{ true|upper }}][{{ 3|lower }}]"),
    ).toBe("[None][][[' a ']][TRUE][3]");
  });

  it("gives undefined for a subscript that is not a key, and calls undefined and dicts iterable (Jinja2)", () => {
    expect(
      render("{% set m = {'a': 1} %}[{{ m[missing] }}][{{ m[none] }}][{{ m['a'] }}][{{ [1,2][missing] }}]"),
    ).toBe("[][][1][]");
    expect(
      render("{{ missing is iterable }} {{ {} is iterable }} {{ 3 is iterable }} {{ 'x' is not iterable }}"),
    ).toBe("True True False False");
  });

  it("adds like Python: a string only to a string (Jinja2)", () => {
    expect(render("{{ 1 + 2 }} {{ [1] + [2] }} {{ 'a' + 'b' }} {{ 1.5 + 1 }}")).toBe("3 [1, 2] ab 2.5");
    const e = expectCode(() => render("{{ 'a' + [1] }}"), "ERR_TEMPLATE_RENDER");
    expect(e.message).toContain('can only concatenate str (not "list") to str');
    expect(expectCode(() => render("{{ [1] + 'a' }}"), "ERR_TEMPLATE_RENDER").message).toContain(
      'can only concatenate list (not "str") to list',
    );
  });

  it("loops over undefined as empty and over a string by characters (Jinja2)", () => {
    expect(
      render(
        "{% for t in tools %}{{ t }}{% else %}no tools{% endfor %}|{% for c in 'héllo' %}[{{ c }}]{% endfor %}|{% for c in missing if c %}x{% endfor %}",
      ),
    ).toBe("no tools|[h][é][l][l][o]|");
  });

  it("prints a message field that is None as None, as transformers would", () => {
    const messages: ChatMessage[] = [{ role: "assistant", content: null }];
    expect(renderChatTemplate("{{ messages[0].content }}", { messages })).toBe("None");
  });
});

describe("template variables", () => {
  const show =
    "{{ messages|length }}|{{ add_generation_prompt }}|{{ tools is defined }}|{{ bos_token is defined }}|" +
    "{{ eos_token is defined }}|{{ enable_thinking is defined }}";

  it("passes messages and add_generation_prompt always, the rest only when given", () => {
    expect(renderChatTemplate(show, { messages: [{ role: "user", content: "hi" }] })).toBe(
      "1|False|False|False|False|False",
    );
    expect(
      renderChatTemplate(show, {
        messages: [],
        tools: [WEATHER],
        addGenerationPrompt: true,
        bosToken: "<s>",
        eosToken: "</s>",
        extra: { enable_thinking: false },
      }),
    ).toBe("0|True|True|True|True|True");
  });

  it("leaves out properties whose value is undefined, as a Python dict would not have them", () => {
    const messages: ChatMessage[] = [{ role: "user", content: "hi", name: undefined }];
    expect(renderChatTemplate("{{ messages[0]|tojson }}", { messages })).toBe(
      '{"role": "user", "content": "hi"}',
    );
  });

  it("keeps template-specific message fields", () => {
    const messages: ChatMessage[] = [
      { role: "assistant", content: "4", reasoning_content: "2+2", custom: [1] },
    ];
    expect(
      renderChatTemplate("{{ messages[0].reasoning_content }}/{{ messages[0].custom[0] }}", { messages }),
    ).toBe("2+2/1");
  });

  it("refuses data a template cannot take, naming where it is", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    expect(expectCode(() => render("x", { cyclic }), "ERR_INVALID_ARGUMENT").message).toContain(
      "extra.cyclic.self",
    );
    expect(expectCode(() => render("x", { when: new Date() }), "ERR_INVALID_ARGUMENT").message).toContain(
      "Date",
    );
    expect(expectCode(() => render("x", { n: 1n }), "ERR_INVALID_ARGUMENT").message).toContain("bigint");
    let deep: unknown = "leaf";
    for (let i = 0; i < 1000; i++) deep = [deep];
    expectCode(() => render("x", { deep }), "ERR_INVALID_ARGUMENT");
    expect(expectCode(() => render("x", { bos_token: "<s>" }), "ERR_INVALID_ARGUMENT").message).toContain(
      "input.bosToken",
    );
    expectCode(
      () => renderChatTemplate("x", { messages: "hi" } as unknown as { messages: ChatMessage[] }),
      "ERR_INVALID_ARGUMENT",
    );
  });

  it("a compiled template renders many inputs without state leaking between renders", () => {
    const t = compileChatTemplate(
      "{% if seen is defined %}leak{% endif %}{% set seen = 1 %}{% for m in messages %}{{ m.content }};{% endfor %}",
      { name: "t" },
    );
    expect(t.name).toBe("t");
    expect(t.render({ messages: [{ role: "user", content: "a" }] })).toBe("a;");
    expect(
      t.render({
        messages: [
          { role: "user", content: "b" },
          { role: "user", content: "c" },
        ],
      }),
    ).toBe("b;c;");
  });
});

describe("errors", () => {
  it("a template that does not parse: ERR_TEMPLATE_PARSE with line and column where they can be found", () => {
    const cases: [string, number, number, string][] = [
      ["line one\n{% if x %}\nno end", 2, 1, "{% if %} is never closed"],
      [
        "{% for m in messages %}\n  {% if m %}x{% endfor %}",
        2,
        14,
        "{% endfor %} closes {% if %} of line 2, column 3",
      ],
      ["ok\n  {{ messages[0] \n", 2, 3, "{{ is never closed"],
      ["{% include 'other.jinja' %}", 1, 1, "{% include %} is not a tag @huggingface/jinja implements"],
      ["{% endif %}", 1, 1, "{% endif %} has no open {% if %}"],
      ["a\n\n {% else %}", 3, 2, "{% else %} outside of an if block"],
    ];
    for (const [source, line, column, problem] of cases) {
      const e = expectCode(() => compileChatTemplate(source, { name: "bad.jinja" }), "ERR_TEMPLATE_PARSE");
      expect(e.message).toContain(`bad.jinja does not parse at line ${line}, column ${column} (${problem})`);
      expect(e.details).toMatchObject({ name: "bad.jinja", line, column, source });
    }
  });

  it("an expression error inside a tag is reported with the library's reason and a hint", () => {
    const e = expectCode(() => compileChatTemplate("{{ 1 + }}"), "ERR_TEMPLATE_PARSE");
    expect(e.message).toMatch(/^chat template does not parse: /);
    expect(e.hint).toBeDefined();
    expect(e.details?.["source"]).toBe("{{ 1 + }}");
  });

  it("a failure while rendering: ERR_TEMPLATE_RENDER naming the template", () => {
    const e = expectCode(
      () => renderChatTemplate("{% for x in none %}{% endfor %}", { messages: [] }, { name: "t.jinja" }),
      "ERR_TEMPLATE_RENDER",
    );
    expect(e.message).toMatch(/^t\.jinja failed to render: .*NullValue/);
    expect(e.details).toMatchObject({ name: "t.jinja", source: "{% for x in none %}{% endfor %}" });
  });

  it("a runaway loop stops at maxSteps, quickly", () => {
    const t0 = Date.now();
    const loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    const e = expectCode(() => render(loops), "ERR_TEMPLATE_RENDER");
    expect(e.message).toContain("more than 1000000 evaluation steps");
    expect(Date.now() - t0).toBeLessThan(10_000);
    expectCode(
      () =>
        renderChatTemplate("{% for i in range(10) %}{{ i }}{% endfor %}", { messages: [] }, { maxSteps: 20 }),
      "ERR_TEMPLATE_RENDER",
    );
  });

  it("runaway macro recursion stops with ERR_TEMPLATE_RENDER, not a stack overflow", () => {
    const e = expectCode(
      () => render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
      "ERR_TEMPLATE_RENDER",
    );
    expect(e.message).toContain("nests deeper than");
  });

  it("a string that outgrows V8 ends in ERR_TEMPLATE_RENDER", () => {
    const t =
      "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}";
    expectCode(() => render(t), "ERR_TEMPLATE_RENDER");
  });
});

describe("fallback templates", () => {
  const chat: ChatMessage[] = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    {
      role: "assistant",
      content: [{ type: "text", text: "Hello" }, { type: "image" }, { type: "text", text: "!" }],
    },
    { role: "user", content: "Bye" },
  ];

  it("defaultChatTemplate is ChatML, as llama.cpp uses for a model without a template", () => {
    expect(renderChatTemplate(defaultChatTemplate, { messages: chat, addGenerationPrompt: true })).toBe(
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" +
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(renderChatTemplate(defaultChatTemplate, { messages: chat.slice(1, 2) })).toBe(
      "<|im_start|>user\nHi<|im_end|>\n",
    );
  });

  it("plainChatTemplate is a User:/Assistant: transcript for base models", () => {
    expect(renderChatTemplate(plainChatTemplate, { messages: chat, addGenerationPrompt: true })).toBe(
      "Be brief.\n\nUser: Hi\nAssistant: Hello!\nUser: Bye\nAssistant:",
    );
  });
});
