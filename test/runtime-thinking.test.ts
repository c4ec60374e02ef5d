/**
 * Thinking models (runtime/thinking.ts): the tags of Ollama library templates (ollama.com tags
 * deepseek-r1, deepseek-v3.1 and qwen3-next "thinking"; llama3.1, qwen2.5 and gemma2 do not
 * think), the Jinja rule on Hugging Face chat templates (Qwen3 and DeepSeek-R1 think, Llama 3.1
 * does not), and the streaming parser on hand-worked cases, including every way of cutting the
 * text into chunks.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { jinjaThinks, ThinkingParser, thinkingTags } from "../src/runtime/thinking.ts";

const LIBRARY = JSON.parse(
  readFileSync(join(import.meta.dirname, "fixtures", "ollama-templates", "library.json"), "utf8"),
) as Record<string, { template: string }>;
const lib = (name: string) => LIBRARY[`library/${name}`]!.template;
const jinja = (name: string) =>
  readFileSync(join(import.meta.dirname, "fixtures", "templates", `${name}.jinja`), "utf8");
const THINK = { open: "<think>", close: "</think>" };

describe("thinkingTags", () => {
  it("Ollama library templates: <think> and </think> for the thinking models, none for the others", () => {
    for (const m of ["deepseek-r1:latest", "deepseek-v3.1:latest", "qwen3-next:80b"])
      expect(thinkingTags(lib(m), undefined), m).toEqual(THINK);
    for (const m of ["llama3.1:8b", "qwen2.5:0.5b", "gemma2:2b", "llama3:8b"])
      expect(thinkingTags(lib(m), undefined), m).toBeUndefined();
  });

  it("the Go heuristic: a .Thinking inside range .Messages, the texts around it in its list", () => {
    const t = (body: string) => `{{ range .Messages }}${body}{{ end }}`;
    expect(
      thinkingTags(t("{{ if .Thinking }}[T]{{ .Thinking }}[/T]{{ end }}{{ .Content }}"), undefined),
    ).toEqual({
      open: "[T]",
      close: "[/T]",
    });
    // Outside a range over .Messages: not a thinking template.
    expect(
      thinkingTags("{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}", undefined),
    ).toBeUndefined();
    expect(
      thinkingTags("{{ range .Tools }}<think>{{ .Thinking }}</think>{{ end }}", undefined),
    ).toBeUndefined();
    // The list must start and end with text.
    expect(thinkingTags(t("{{ .Thinking }}</think>"), undefined)).toBeUndefined();
    // A template that does not parse has no capabilities (Ollama only logs it).
    expect(thinkingTags("{{ range .Messages }}", undefined)).toBeUndefined();
    // A Modelfile TEMPLATE decides over the GGUF's Jinja template.
    expect(thinkingTags("{{ .Prompt }}", jinja("Qwen-Qwen3-0.6B"))).toBeUndefined();
  });

  it("Jinja chat templates: Qwen3 and DeepSeek-R1 think, Llama 3.1 and Gemma 2 do not", () => {
    expect(thinkingTags(undefined, jinja("Qwen-Qwen3-0.6B"))).toEqual(THINK);
    expect(thinkingTags(undefined, jinja("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"))).toEqual(THINK);
    expect(thinkingTags(undefined, jinja("meta-llama-Llama-3.1-8B-Instruct"))).toBeUndefined();
    expect(thinkingTags(undefined, jinja("google-gemma-2-2b-it"))).toBeUndefined();
    // Ollama's second rule: earlier answers split at </think>, no reasoning_content.
    expect(jinjaThinks("{{ m.content.split('</think>')[-1] }}")).toBe(true);
    expect(jinjaThinks("{{ m.content.split('</think>')[-1] }}{{ m.reasoning_content }}")).toBe(false);
  });
});

/** Every split of `text` into chunks at the given cut points. */
function feed(text: string, cuts: number[]) {
  const p = new ThinkingParser(THINK);
  let thinking = "";
  let content = "";
  let at = 0;
  for (const c of [...cuts, text.length]) {
    const r = p.add(text.slice(at, c));
    thinking += r.thinking;
    content += r.content;
    at = c;
  }
  return { thinking, content };
}

describe("ThinkingParser", () => {
  // [model output, its thinking, its content], worked by hand from the rules in thinking.ts.
  const cases: [string, string, string][] = [
    ["<think>I should greet.</think>Hello!", "I should greet.", "Hello!"],
    ["\n <think>\nplan\n</think>\n\nAnswer", "plan\n", "Answer"],
    ["No thinking here.", "", "No thinking here."],
    ["  spaced answer", "", "  spaced answer"],
    ["<this is not a tag", "", "<this is not a tag"],
    ["<think>a < b, and </thin is not the end</think> done", "a < b, and </thin is not the end", "done"],
    ["<think></think>Only content", "", "Only content"],
    ["<think>unfinished thought", "unfinished thought", ""],
    ["<think>x</think>y</think>z", "x", "y</think>z"],
  ];
  it("whole texts", () => {
    for (const [text, thinking, content] of cases)
      expect(feed(text, []), text).toEqual({ thinking, content });
  });
  it("the same result however the text is cut into chunks (every single cut, and character by character)", () => {
    for (const [text, thinking, content] of cases) {
      for (let i = 1; i < text.length; i++)
        expect(feed(text, [i]), `${text} @${i}`).toEqual({ thinking, content });
      const chars = Array.from({ length: text.length - 1 }, (_, i) => i + 1);
      expect(feed(text, chars), `${text} by char`).toEqual({ thinking, content });
    }
  });
  it("streams thinking as it comes, holding back only what could still begin the closing tag", () => {
    const p = new ThinkingParser(THINK);
    expect(p.add("<think>Let me")).toEqual({ thinking: "Let me", content: "" });
    expect(p.add(" see</th")).toEqual({ thinking: " see", content: "" });
    expect(p.add("ink>\n")).toEqual({ thinking: "", content: "" });
    expect(p.add("\nIt is 4.")).toEqual({ thinking: "", content: "It is 4." });
  });
  it("a prompt that opened the thinking: the parser is fed the opening tag first", () => {
    const p = new ThinkingParser(THINK);
    expect(p.add("<think>")).toEqual({ thinking: "", content: "" });
    expect(p.add("\nhmm</think>ok")).toEqual({ thinking: "hmm", content: "ok" });
  });
  it("opened: whether the answer thinks, an empty thinking included; not before the tag is whole", () => {
    const p = new ThinkingParser(THINK);
    expect(p.add(" <thi").content).toBe("");
    expect(p.opened).toBe(false);
    expect(p.add("nk></think>ok")).toEqual({ thinking: "", content: "ok" });
    expect(p.opened).toBe(true);
    const q = new ThinkingParser(THINK);
    expect(q.add("<b>ok")).toEqual({ thinking: "", content: "<b>ok" });
    expect(q.opened).toBe(false);
  });
});
