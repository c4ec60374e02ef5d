/**
 * Thinking models (Qwen3, DeepSeek-R1, ...): which templates let a model think, the tags around
 * its thinking, and the parser that splits a streamed answer into thinking and content, as
 * Ollama does (server/images.go capabilities, thinking/template.go InferTags, thinking/parser.go).
 *
 * - A Modelfile TEMPLATE (Go) thinks when a {{ .Thinking }} inside a {{ range .Messages }} sits in
 *   a list that starts and ends with text: those texts, trimmed, are the tags (Ollama's heuristic:
 *   for each such field the nearest enclosing list's first and last nodes, the last found wins,
 *   each tag only where that node is text).
 * - A GGUF's Jinja chat template thinks when it mentions both "<think>" and "</think>", or splits
 *   earlier answers at "</think>" (and has no reasoning_content); its tags are <think>, </think>.
 * - ThinkingParser: leading whitespace, then the opening tag (else there is no thinking: all is
 *   content, untouched); the whitespace after the opening tag is dropped; thinking runs to the
 *   closing tag, held back while the end of the text could still begin it; the whitespace after
 *   the closing tag is dropped; the rest is content.
 * A request's thinking (Thinking): its model's tags and the think value it renders with; thinkFor
 * is Ollama's rule for that value, thinkingParser the parser an answer goes through.
 * Not here: rendering with think on or off (prompt.ts), the routes (server/), the CLI's display.
 */
import {
  type Arg,
  type GoTemplate,
  type Node,
  type Pipe,
  parseGoTemplate,
} from "../tokenizer/go-template.ts";
import type { OwlError } from "../util/errors.ts";
import type { ThinkValue } from "./prompt.ts";

export interface ThinkingTags {
  open: string;
  close: string;
}

/** The tags of a Go template's thinking (Ollama's InferTags); undefined when it has none. */
export function goThinkingTags(tmpl: GoTemplate): ThinkingTags | undefined {
  let open = "";
  let close = "";
  const argHasField = (a: Arg, name: string): boolean =>
    (a.kind === "field" && a.ident[0] === name) ||
    (a.kind === "pipe" && pipeHasField(a.pipe, name)) ||
    (a.kind === "chain" && argHasField(a.node, name));
  const pipeHasField = (p: Pipe, name: string): boolean =>
    p.cmds.some((c) => c.args.some((x) => argHasField(x, name)));
  /** A "Thinking" field in `pipe`, under the range `range`, in the list `list`. */
  const visitPipe = (p: Pipe, range: Node | undefined, list: readonly Node[]): void => {
    if (!pipeHasField(p, "Thinking")) return;
    if (range === undefined || range.kind !== "range" || !pipeHasField(range.pipe, "Messages")) return;
    const first = list[0];
    const last = list[list.length - 1];
    if (first?.kind === "text") open = first.text.trim();
    if (last?.kind === "text") close = last.text.trim();
  };
  const walk = (list: readonly Node[], range: Node | undefined): void => {
    for (const n of list) {
      if (n.kind === "action") visitPipe(n.pipe, range, list);
      else if (n.kind === "template" && n.pipe !== undefined) visitPipe(n.pipe, range, list);
      else if (n.kind === "if" || n.kind === "with" || n.kind === "range") {
        const inner = n.kind === "range" ? n : range;
        // The condition's fields: their nearest list is the one holding this node.
        visitPipe(n.pipe, inner, list);
        walk(n.list, inner);
        if (n.elseList !== undefined) walk(n.elseList, inner);
      }
    }
  };
  walk(tmpl.root, undefined);
  for (const body of tmpl.defines.values()) walk(body, undefined);
  return open !== "" && close !== "" ? { open, close } : undefined;
}

/** Whether a Jinja chat template lets the model think (Ollama's chatTemplateHasThinkingSupport). */
export function jinjaThinks(chatTemplate: string): boolean {
  if (chatTemplate.includes("<think>") && chatTemplate.includes("</think>")) return true;
  return (
    (chatTemplate.includes("content.split('</think>')") ||
      chatTemplate.includes('content.split("</think>")')) &&
    !chatTemplate.includes("reasoning_content") &&
    !chatTemplate.includes("<SPECIAL_12>")
  );
}

/**
 * The thinking tags of a model: from its Modelfile TEMPLATE when it has one (a template that does
 * not parse has none), else from the GGUF's Jinja chat template.
 */
export function thinkingTags(
  goTemplate: string | undefined,
  chatTemplate: string | undefined,
): ThinkingTags | undefined {
  if (goTemplate !== undefined) {
    try {
      return goThinkingTags(parseGoTemplate(goTemplate));
    } catch {
      return undefined;
    }
  }
  return chatTemplate !== undefined && jinjaThinks(chatTemplate)
    ? { open: "<think>", close: "</think>" }
    : undefined;
}

type State = "looking" | "startSpace" | "thinking" | "endSpace" | "done";

const trimStart = (s: string) => s.replace(/^\s+/u, "");

/** Splits streamed text into thinking and content (module comment). */
export class ThinkingParser {
  private state: State = "looking";
  private acc = "";
  private sawOpen = false;

  constructor(readonly tags: ThinkingTags) {}

  /** Whether the opening tag was found: the answer thinks (its thinking may be empty). */
  get opened(): boolean {
    return this.sawOpen;
  }

  /** Feeds `text`; returns the thinking and the content that can be shown now. */
  add(text: string): { thinking: string; content: string } {
    this.acc += text;
    let thinking = "";
    let content = "";
    for (;;) {
      const { open, close } = this.tags;
      if (this.state === "looking") {
        const t = trimStart(this.acc);
        if (t.startsWith(open)) {
          this.sawOpen = true;
          this.acc = trimStart(t.slice(open.length));
          this.state = this.acc === "" ? "startSpace" : "thinking";
          continue;
        }
        if (open.startsWith(t)) break; // a part of the tag, or only whitespace: wait
        this.state = "done";
        content += this.acc;
        this.acc = "";
        break;
      }
      if (this.state === "startSpace") {
        this.acc = trimStart(this.acc);
        if (this.acc === "") break;
        this.state = "thinking";
        continue;
      }
      if (this.state === "thinking") {
        const i = this.acc.indexOf(close);
        if (i >= 0) {
          thinking += this.acc.slice(0, i);
          const rest = trimStart(this.acc.slice(i + close.length));
          this.acc = "";
          this.state = rest === "" ? "endSpace" : "done";
          content += rest;
          break;
        }
        const keep = overlap(this.acc, close);
        thinking += this.acc.slice(0, this.acc.length - keep);
        this.acc = this.acc.slice(this.acc.length - keep);
        break;
      }
      if (this.state === "endSpace") {
        const rest = trimStart(this.acc);
        this.acc = "";
        if (rest !== "") this.state = "done";
        content += rest;
        break;
      }
      content += this.acc;
      this.acc = "";
      break;
    }
    return { thinking, content };
  }
}

/** The longest suffix of s that is a prefix of tag. */
function overlap(s: string, tag: string): number {
  for (let n = Math.min(tag.length, s.length); n > 0; n--) if (s.endsWith(tag.slice(0, n))) return n;
  return 0;
}

/** A request's thinking: its model's tags (undefined: the model does not think), its think value. */
export interface Thinking {
  think: ThinkValue | undefined;
  tags: ThinkingTags | undefined;
}

/**
 * The think value a request renders with, as Ollama's handlers: a model that thinks does so unless
 * told false (unset means true); asking one that does not think to (true or a level) throws
 * refuse()'s error (the routes' 400, the CLI's usage error).
 */
export function thinkFor(
  tags: ThinkingTags | undefined,
  think: ThinkValue | undefined,
  refuse: () => OwlError,
): ThinkValue | undefined {
  if (tags !== undefined) return think ?? true;
  if (think !== undefined && think !== false) throw refuse();
  return think;
}

/**
 * The parser an answer goes through when the request thinks (else undefined); a rendered prompt
 * that ends with the opening tag (a template that opens the thinking itself) starts it inside the
 * thinking, as Ollama's handlers do.
 */
export function thinkingParser(t: Thinking, renderedPrompt: string): ThinkingParser | undefined {
  const start = thinkingStart(t, renderedPrompt);
  if (start === undefined) return undefined;
  const parser = new ThinkingParser(start.tags);
  if (start.inside) parser.add(start.tags.open);
  return parser;
}

/** Where a thinking answer starts: its tags, and whether the prompt opened the thinking. */
export interface ThinkingStart {
  tags: ThinkingTags;
  /** The rendered prompt ends with the opening tag: the answer starts inside the thinking. */
  inside: boolean;
}

/** The start of the answer's thinking when the request thinks (else undefined), as thinkingParser. */
export function thinkingStart(t: Thinking, renderedPrompt: string): ThinkingStart | undefined {
  if (t.tags === undefined || t.think === undefined || t.think === false) return undefined;
  return { tags: t.tags, inside: renderedPrompt.trim().endsWith(t.tags.open) };
}
