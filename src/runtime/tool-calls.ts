/**
 * Tool calls in generated text, for /api/chat and /v1/chat/completions: the formats models are
 * trained to write, parsed into {name, arguments}; a streaming parser that holds text back once
 * it could be the start of a call (clients get a call whole, never half of it as content, as
 * Ollama streams them); and the grammar that forces a call (OpenAI tool_choice "required" or a
 * named function).
 * Not here: putting the tools into the prompt (prompt.ts: Jinja `tools`, Go `.Tools`).
 *
 * Formats recognized (only names among the request's tools count; anything else stays content):
 * - Hermes / Qwen 2.5-3: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, several;
 * - Llama 3.x: `<|python_tag|>{"name": ..., "parameters": {...}}` (calls split by ";"), or the
 *   bare JSON object its JSON tool-calling prompt asks for;
 * - Mistral: `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]`, and the newer
 *   `[TOOL_CALLS]name[ARGS]{...}` (Mistral Small 3.2, Devstral);
 * - a bare JSON object or array of {name, arguments|parameters} at the start of the answer (what
 *   Ollama's parser accepts when a template shows tool calls as plain JSON; also the shape
 *   toolCallGrammar forces), optionally inside a ```json fence;
 * - a custom tag taken from a Modelfile TEMPLATE (toolCallTag: the first text after
 *   `{{ if .ToolCalls }}`, Ollama's parseTag), followed by JSON calls.
 * `arguments` may also be a JSON string holding the object (some models double-encode it);
 * `{"type": "function", "function": {...}}` wrappers are unwrapped.
 */
import { randomBytes } from "node:crypto";
import type { ToolDefinition } from "../tokenizer/chat-template.ts";
import { type Node as GoNode, parseGoTemplate } from "../tokenizer/go-template.ts";
import { OwlError } from "../util/errors.ts";
import type { GrammarSpec } from "./types.ts";

export interface ToolCall {
  /** "call_" + 24 random characters (OpenAI's shape; Ollama's tool_calls carry one too). */
  id: string;
  name: string;
  arguments: Record<string, unknown>;
}

export interface ParsedToolCalls {
  /** The text outside the calls (trimmed when there are calls). */
  content: string;
  calls: ToolCall[];
}

export interface ToolCallOptions {
  /** A tag from the model's template (toolCallTag) that opens calls, besides the known ones. */
  tag?: string;
  /** Call ids (default: random "call_..."). */
  makeId?: () => string;
}

const ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** A random OpenAI-style call id. */
export function newToolCallId(): string {
  const bytes = randomBytes(24);
  let s = "call_";
  for (const b of bytes) s += ID_CHARS[b % ID_CHARS.length];
  return s;
}

// ---------------------------------------------------------------------------------------------
// JSON scanning

/**
 * The end (exclusive) of the JSON value that starts at `start` ({ or [), by bracket counting
 * outside strings; undefined when it does not close within the text.
 */
function jsonEnd(text: string, start: number): number | undefined {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return i + 1;
      if (depth < 0) return undefined;
    }
  }
  return undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** One call object -> {name, arguments}, if it names one of the tools. */
function callFrom(
  v: unknown,
  names: ReadonlySet<string>,
): { name: string; arguments: Record<string, unknown> } | undefined {
  if (!isObject(v)) return undefined;
  let o = v;
  if (isObject(o["function"]) && (o["type"] === "function" || o["type"] === undefined) && !("name" in o)) {
    o = o["function"];
  }
  const name = o["name"];
  if (typeof name !== "string" || !names.has(name)) return undefined;
  let args: unknown = "arguments" in o ? o["arguments"] : "parameters" in o ? o["parameters"] : {};
  if (typeof args === "string") args = args.trim() === "" ? {} : parseJson(args);
  if (args === null || args === undefined) args = {};
  if (!isObject(args)) return undefined;
  return { name, arguments: args };
}

/** A JSON value that is a call or a non-empty list of calls -> the calls; else undefined. */
function callsFrom(
  v: unknown,
  names: ReadonlySet<string>,
): { name: string; arguments: Record<string, unknown> }[] | undefined {
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) return undefined;
  const out = [];
  for (const item of items) {
    const c = callFrom(item, names);
    if (c === undefined) return undefined;
    out.push(c);
  }
  return out;
}

/**
 * JSON calls in `body` (objects or arrays one after another, separated by whitespace, commas or
 * semicolons). undefined when anything else is there.
 */
function jsonCallsIn(
  body: string,
  names: ReadonlySet<string>,
): { name: string; arguments: Record<string, unknown> }[] | undefined {
  const out = [];
  let i = 0;
  for (;;) {
    while (i < body.length && /[\s,;]/.test(body[i]!)) i++;
    if (i >= body.length) break;
    if (body[i] !== "{" && body[i] !== "[") return undefined;
    const end = jsonEnd(body, i);
    if (end === undefined) return undefined;
    const calls = callsFrom(parseJson(body.slice(i, end)), names);
    if (calls === undefined) return undefined;
    out.push(...calls);
    i = end;
  }
  return out.length === 0 ? undefined : out;
}

// ---------------------------------------------------------------------------------------------
// Whole answers

const HERMES_OPEN = "<tool_call>";
const HERMES_CLOSE = "</tool_call>";
const PYTHON_TAG = "<|python_tag|>";
const MISTRAL_TAG = "[TOOL_CALLS]";
const MISTRAL_ARGS = "[ARGS]";

/** Markers that open tool calls in some format. */
function markers(tag: string | undefined): string[] {
  const m = [HERMES_OPEN, PYTHON_TAG, MISTRAL_TAG];
  if (tag !== undefined && tag !== "" && tag !== "{" && tag !== "[" && !m.includes(tag)) m.push(tag);
  return m;
}

interface Found {
  calls: { name: string; arguments: Record<string, unknown> }[];
  content: string;
}

function joinContent(parts: string[]): string {
  return parts.join("").trim();
}

/** Hermes/Qwen: every <tool_call> block (the last may lack its close tag at the very end). */
function parseHermes(
  text: string,
  names: ReadonlySet<string>,
  open = HERMES_OPEN,
  close = HERMES_CLOSE,
): Found | undefined {
  const calls: Found["calls"] = [];
  const content: string[] = [];
  let pos = 0;
  for (;;) {
    const i = text.indexOf(open, pos);
    if (i === -1) {
      content.push(text.slice(pos));
      break;
    }
    const j = text.indexOf(close, i + open.length);
    const body = text.slice(i + open.length, j === -1 ? text.length : j);
    const found = jsonCallsIn(body, names);
    if (found === undefined) return undefined;
    content.push(text.slice(pos, i));
    calls.push(...found);
    if (j === -1) break;
    pos = j + close.length;
  }
  return calls.length === 0 ? undefined : { calls, content: joinContent(content) };
}

/** Llama 3.x: <|python_tag|> then JSON calls to the end (separated by ";"). */
function parsePythonTag(text: string, names: ReadonlySet<string>): Found | undefined {
  const i = text.indexOf(PYTHON_TAG);
  if (i === -1) return undefined;
  const body = text.slice(i + PYTHON_TAG.length).replace(/<\|eom_id\|>\s*$/, "");
  const calls = jsonCallsIn(body, names);
  return calls === undefined ? undefined : { calls, content: text.slice(0, i).trim() };
}

/** Mistral: [TOOL_CALLS] [{...}] or [TOOL_CALLS]name[ARGS]{...} (repeated). */
function parseMistral(text: string, names: ReadonlySet<string>): Found | undefined {
  const i = text.indexOf(MISTRAL_TAG);
  if (i === -1) return undefined;
  const rest = text.slice(i + MISTRAL_TAG.length);
  if (rest.includes(MISTRAL_ARGS)) {
    const calls: Found["calls"] = [];
    for (const seg of rest.split(MISTRAL_TAG)) {
      const k = seg.indexOf(MISTRAL_ARGS);
      if (k === -1) return undefined;
      const name = seg.slice(0, k).trim();
      const argText = seg.slice(k + MISTRAL_ARGS.length).trim();
      const end = argText.startsWith("{") ? jsonEnd(argText, 0) : undefined;
      if (end === undefined || argText.slice(end).trim() !== "") return undefined;
      const c = callFrom({ name, arguments: parseJson(argText.slice(0, end)) }, names);
      if (c === undefined) return undefined;
      calls.push(c);
    }
    return { calls, content: text.slice(0, i).trim() };
  }
  const calls = jsonCallsIn(rest, names);
  return calls === undefined ? undefined : { calls, content: text.slice(0, i).trim() };
}

/** Bare JSON at the start of the answer, optionally fenced as ```json. */
function parseBareJson(text: string, names: ReadonlySet<string>): Found | undefined {
  let body = text.trim();
  const fence = /^```(?:json)?\s*\n([\s\S]*?)\n?```$/.exec(body);
  if (fence !== null) body = fence[1]!.trim();
  if (!body.startsWith("{") && !body.startsWith("[")) return undefined;
  const calls = jsonCallsIn(body, names);
  return calls === undefined ? undefined : { calls, content: "" };
}

/**
 * The tool calls in a whole answer. Text that is not a well-formed call naming one of `tools`
 * is left as content, untouched.
 */
export function parseToolCalls(
  text: string,
  tools: readonly ToolDefinition[],
  options: ToolCallOptions = {},
): ParsedToolCalls {
  const names = new Set(tools.map((t) => t.function?.name).filter((n): n is string => typeof n === "string"));
  if (names.size === 0) return { content: text, calls: [] };
  const tag = options.tag;
  const found =
    parseHermes(text, names) ??
    parsePythonTag(text, names) ??
    parseMistral(text, names) ??
    (tag !== undefined && tag !== "" && tag !== "{" && tag !== "["
      ? parseCustomTag(text, tag, names)
      : undefined) ??
    parseBareJson(text, names);
  if (found === undefined) return { content: text, calls: [] };
  const makeId = options.makeId ?? newToolCallId;
  return { content: found.content, calls: found.calls.map((c) => ({ id: makeId(), ...c })) };
}

/** A template's own tag: the tag, then JSON calls; a matching close tag (</x> for <x>) ends them. */
function parseCustomTag(text: string, tag: string, names: ReadonlySet<string>): Found | undefined {
  const m = /^<([\w|:-]+)>$/.exec(tag);
  const close = m === null ? "\u0000never\u0000" : `</${m[1]}>`;
  return parseHermes(text, names, tag, close);
}

// ---------------------------------------------------------------------------------------------
// Streaming

/**
 * Incremental tool-call parsing for streamed answers. push() returns the content that is safe to
 * show now and the calls completed so far; text that could be the start of a call is held back
 * until it is one (then it comes out whole, as a call) or is not (then it comes out as content).
 * finish() flushes what is left at the end of the generation.
 */
export class ToolCallStream {
  private readonly names: ReadonlySet<string>;
  private readonly markers: string[];
  private readonly makeId: () => string;
  /** Text not yet released. */
  private buf = "";
  /** Whether anything but whitespace was released (bare JSON counts only at the start). */
  private started = false;
  /** Inside a call block (after a marker, or a leading { / [). */
  private inCall = false;

  constructor(
    private readonly tools: readonly ToolDefinition[],
    private readonly options: ToolCallOptions = {},
  ) {
    this.names = new Set(
      tools.map((t) => t.function?.name).filter((n): n is string => typeof n === "string"),
    );
    this.markers = markers(options.tag);
    this.makeId = options.makeId ?? newToolCallId;
  }

  push(text: string): ParsedToolCalls {
    if (this.names.size === 0) return { content: text, calls: [] };
    this.buf += text;
    return this.drain(false);
  }

  finish(): ParsedToolCalls {
    if (this.names.size === 0) return { content: "", calls: [] };
    return this.drain(true);
  }

  private drain(final: boolean): ParsedToolCalls {
    let content = "";
    const calls: ToolCall[] = [];
    for (;;) {
      if (!this.inCall) {
        // Bare JSON may open the answer: hold leading whitespace and a leading { or [.
        if (!this.started) {
          const lead = this.buf.trimStart();
          // Only a ```json fence may hold a call: other code blocks stream as they come.
          if (!final && (lead === "" || (lead.length < 7 && "```json".startsWith(lead))))
            return { content, calls };
          if (lead.startsWith("{") || lead.startsWith("[") || lead.startsWith("```json")) {
            this.inCall = true;
            continue;
          }
        }
        const { index, marker } = this.firstMarker();
        if (marker !== undefined) {
          content += this.release(this.buf.slice(0, index));
          this.buf = this.buf.slice(index);
          this.inCall = true;
          continue;
        }
        // Hold a tail that could be the start of a marker.
        const keep = final ? 0 : this.partialMarkerTail();
        content += this.release(this.buf.slice(0, this.buf.length - keep));
        this.buf = this.buf.slice(this.buf.length - keep);
        return { content, calls };
      }
      // In a call block: emit calls as soon as a block is complete.
      const block = this.completeBlock(final);
      if (block === undefined) {
        if (!final) return { content, calls };
        // The generation ended inside something that never became a call: it was content.
        content += this.release(this.buf);
        this.buf = "";
        this.inCall = false;
        return { content, calls };
      }
      const parsed = parseToolCalls(block, this.tools, { ...this.options, makeId: this.makeId });
      if (parsed.calls.length === 0) {
        // Not a call after all: release the block as content and stop looking for bare JSON.
        content += this.release(block);
      } else {
        calls.push(...parsed.calls);
        this.started = true;
        if (parsed.content !== "") content += this.release(parsed.content);
      }
      this.buf = this.buf.slice(block.length);
      this.inCall = false;
      if (this.buf === "") return { content, calls };
    }
  }

  private release(s: string): string {
    if (s.trim() !== "") this.started = true;
    return s;
  }

  private firstMarker(): { index: number; marker: string | undefined } {
    let best = -1;
    let which: string | undefined;
    for (const m of this.markers) {
      const i = this.buf.indexOf(m);
      if (i !== -1 && (best === -1 || i < best)) {
        best = i;
        which = m;
      }
    }
    return { index: best, marker: which };
  }

  /** Length of the longest tail of buf that is a proper prefix of a marker. */
  private partialMarkerTail(): number {
    let keep = 0;
    for (const m of this.markers) {
      for (let n = Math.min(m.length - 1, this.buf.length); n > keep; n--) {
        if (this.buf.endsWith(m.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    return keep;
  }

  /**
   * The text of the call block at the start of buf once it is complete: a <tool_call> block up
   * to its close tag; a bare JSON value once it closes; Mistral's array once it closes; the
   * python tag, Mistral's [ARGS] form and custom tags only at the end of the generation.
   */
  private completeBlock(final: boolean): string | undefined {
    const b = this.buf;
    if (b.startsWith(HERMES_OPEN)) {
      const j = b.indexOf(HERMES_CLOSE);
      if (j !== -1) return b.slice(0, j + HERMES_CLOSE.length);
      return final ? b : undefined;
    }
    if (b.startsWith(MISTRAL_TAG)) {
      const rest = b.slice(MISTRAL_TAG.length);
      const k = rest.length - rest.trimStart().length;
      if (rest.trimStart().startsWith("[")) {
        const end = jsonEnd(rest, k);
        if (end !== undefined) return b.slice(0, MISTRAL_TAG.length + end);
      }
      return final ? b : undefined;
    }
    if (b.startsWith(PYTHON_TAG) || !/^\s*([[{]|```json)/.test(b)) return final ? b : undefined;
    // Bare JSON (or a ```json fence) at the start of the answer.
    const lead = b.length - b.trimStart().length;
    if (b.startsWith("```", lead)) {
      const close = b.indexOf("```", lead + 3);
      if (close !== -1) return b.slice(0, close + 3);
      return final ? b : undefined;
    }
    const end = jsonEnd(b, lead);
    if (end !== undefined) return b.slice(0, end);
    return final ? b : undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// The template's own tag (Ollama's tools/template.go parseTag)

function mentionsToolCalls(n: GoNode): boolean {
  if (n.kind !== "if") return false;
  return n.pipe.cmds.some((c) => c.args.some((a) => a.kind === "field" && a.ident.includes("ToolCalls")));
}

function findToolCallsIf(nodes: readonly GoNode[]): GoNode | undefined {
  for (const n of nodes) {
    if (n.kind === "if" && mentionsToolCalls(n)) return n;
    if (n.kind === "if" || n.kind === "with" || n.kind === "range") {
      const r =
        findToolCallsIf(n.list) ?? (n.elseList === undefined ? undefined : findToolCallsIf(n.elseList));
      if (r !== undefined) return r;
    }
  }
  return undefined;
}

function firstText(nodes: readonly GoNode[]): string | undefined {
  for (const n of nodes) {
    if (n.kind === "text") {
      if (n.text.trim() === "") continue;
      return n.text;
    }
    if (n.kind === "action") return undefined;
    if (n.kind === "if" || n.kind === "with" || n.kind === "range") {
      return firstText(n.list) ?? (n.elseList === undefined ? undefined : firstText(n.elseList));
    }
  }
  return undefined;
}

/**
 * The tag a Go template writes before tool calls (the first text inside `{{ if .ToolCalls }}`,
 * cut before any "{"), as Ollama's parser finds it: "<tool_call>" for Qwen, "[TOOL_CALLS]" for
 * Mistral, "{" for templates that write bare JSON; undefined when the template shows no calls.
 */
export function toolCallTag(template: string): string | undefined {
  let nodes: GoNode[];
  try {
    nodes = parseGoTemplate(template).root;
  } catch {
    return undefined;
  }
  const node = findToolCallsIf(nodes);
  if (node === undefined || node.kind !== "if") return undefined;
  const text = firstText(node.list);
  if (text === undefined) return "{";
  const tag = text.replaceAll("\r\n", "\n").split("{")[0]!.trim();
  return tag === "" ? "{" : tag;
}

// ---------------------------------------------------------------------------------------------
// Forcing a call

/**
 * A JSON schema grammar that admits exactly one call {"name": <tool>, "arguments": <its
 * parameters>} to one of `tools` (OpenAI tool_choice "required"), or to the tool named `name`
 * (tool_choice {type:"function", function:{name}}). Its output is a bare JSON call, which
 * parseToolCalls reads. ERR_BAD_REQUEST for an unknown name or no tools.
 */
export function toolCallGrammar(tools: readonly ToolDefinition[], name?: string): GrammarSpec {
  const chosen = name === undefined ? tools : tools.filter((t) => t.function?.name === name);
  if (chosen.length === 0) {
    throw new OwlError(
      "ERR_BAD_REQUEST",
      name === undefined
        ? "tool_choice requires a call but the request has no tools"
        : `tool_choice names the function "${name}" but tools has no function of that name`,
      { details: { field: "tool_choice" } },
    );
  }
  const variants = chosen.map((t) => {
    const params = t.function.parameters;
    const args =
      params !== undefined && isObject(params) && Object.keys(params).length > 0
        ? { type: "object", ...params }
        : { type: "object", properties: {} };
    return {
      type: "object",
      properties: { name: { const: t.function.name }, arguments: args },
      required: ["name", "arguments"],
    };
  });
  return { type: "json_schema", schema: variants.length === 1 ? variants[0] : { oneOf: variants } };
}

/** OpenAI's tool_choice: "none" | "auto" | "required" | {type:"function", function:{name}}. */
export type ToolChoice = { mode: "none" } | { mode: "auto" } | { mode: "required"; name?: string };

/** Check and resolve tool_choice (default "auto" with tools, "none" without, as OpenAI). */
export function resolveToolChoice(value: unknown, tools: readonly ToolDefinition[]): ToolChoice {
  if (value === undefined || value === null) return tools.length > 0 ? { mode: "auto" } : { mode: "none" };
  if (value === "none") return { mode: "none" };
  if (value === "auto") return { mode: "auto" };
  if (value === "required") {
    toolCallGrammar(tools);
    return { mode: "required" };
  }
  if (isObject(value) && value["type"] === "function" && isObject(value["function"])) {
    const name = value["function"]["name"];
    if (typeof name === "string") {
      toolCallGrammar(tools, name);
      return { mode: "required", name };
    }
  }
  throw new OwlError(
    "ERR_BAD_REQUEST",
    `tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}, found ${JSON.stringify(value)?.slice(0, 80)}`,
    { details: { field: "tool_choice" } },
  );
}
