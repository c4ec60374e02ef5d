/**
 * Chat templates: turn a conversation (messages, tools) into the prompt text a model was trained
 * on, by rendering the model's Jinja template with @huggingface/jinja, set up the way Hugging Face
 * transformers' apply_chat_template sets up Python Jinja2. Not here: finding a model's template
 * (chat-template-source.ts), tokenizing the prompt, parsing the model's reply.
 *
 * The environment, as transformers builds it (ImmutableSandboxedEnvironment):
 * - trim_blocks and lstrip_blocks: the library's Template applies both always; compile passes
 *   them explicitly to tokenize(). It also drops one trailing newline (keep_trailing_newline off)
 *   and strips `{% generation %}` / `{% endgeneration %}` (transformers' passthrough tag).
 *   Newlines are normalized to "\n" first, as Jinja2's lexer does.
 * - loopcontrols (`break`, `continue`): built into the library.
 * - `tojson`: the library's, which is Python's json.dumps(ensure_ascii=False) with the default
 *   separators ", " / ": " (with `indent`, "," / ": "), as transformers' tojson.
 * - globals: `raise_exception(msg)` throws OwlError ERR_TEMPLATE_RAISED whose message is the
 *   template's own; `strftime_now(fmt)` formats `input.now` (default: the time of the call) like
 *   Python's datetime.now().strftime (chat-template-strftime.ts); `range` with the sandbox's
 *   limit of 100000 items; `namespace`, `true`/`false`/`none` (and `True`/`False`/`None`).
 * - variables: `messages`, `add_generation_prompt` (always), `tools` (only when given; absent is
 *   Jinja's undefined, as in the reference renders and llama.cpp), `bos_token` / `eos_token` when
 *   given, then `input.extra` (enable_thinking, reasoning_effort, custom kwargs).
 *
 * Where the library differs from Jinja2, this file bridges it without touching template text
 * (ChatTemplateInterpreter re-routes those AST nodes; the library does the rest):
 * - `{% for x in undefined %}` iterates nothing instead of throwing; a string iterates its
 *   characters. (NousResearch Hermes 3's tool_use template loops over `tools` unconditionally.)
 * - Python's str() where Jinja2 calls it: printed values, `~`, and the filters string, trim,
 *   upper, lower, capitalize, title: `{{ true }}` is "True", `{{ none }}` "None", a list
 *   "[1, 'a']", a dict "{'k': 'v'}", `none|trim` "None" (chat-template-python.ts).
 * - `+` joins a string only to a string ("a" + [1] fails as in Python, instead of "a1").
 * - `d[key]` with a key that is not a string or integer (undefined, none) is undefined; an
 *   undefined value and a dict pass the `iterable` test (Hermes 3's json_to_python_type).
 * test/chat-template-jinja2.test.ts checks these on 168 more conversations against Jinja2.
 * Known differences that remain (none affects the 12 reference templates; each was checked
 * against Jinja2 3.1.6): numbers come from JavaScript, so 2.0 in the input is the integer 2
 * (Python prints "2.0"); strings are indexed and measured in UTF-16 units (`"🦙"|length` is 2);
 * `join` on non-strings and `dict.items()` print JavaScript-style ("true", lists, not tuples);
 * an attribute of an undefined value is undefined where Jinja2 raises; the library has no
 * `format` filter, `dict()`, `{% raw %}`, `{% include %}`, one-element tuples or `1e16`
 * literals; `tojson(sort_keys=true)` sorts with localeCompare, not by code point.
 *
 * Limits: a render counts evaluation steps (one per expression or statement evaluated, five per
 * loop item) and stops with ERR_TEMPLATE_RENDER past `maxSteps`: Jinja has no while-loops, but
 * nested loops over big ranges could run for hours. The default, one million, stops a runaway
 * render within about a second; the 12 reference templates take under 300 steps for their
 * conversations. Evaluation nesting is capped at MAX_DEPTH (runaway macro recursion), input
 * data at MAX_INPUT_DEPTH levels, `range()` at Jinja2's sandbox limit; a string past V8's limit
 * ends in ERR_TEMPLATE_RENDER too. Rendering is synchronous: a server that renders untrusted
 * templates should still run them off its event loop.
 *
 * Fallback: a model with no template gets `defaultChatTemplate`, ChatML, because llama.cpp's
 * server does the same (common_chat_templates_init falls back to ChatML), so that owl's engine
 * and its llama.cpp backend build the same prompt from the same GGUF. transformers refuses
 * instead, and Ollama's default is the bare prompt. `plainChatTemplate` ("User: ... /
 * Assistant:") is offered for base models (stories260K) that never saw chat tokens; the caller
 * picks it explicitly.
 */
import { OwlError } from "../util/errors.ts";
import {
  Environment,
  Interpreter,
  type JinjaEnvironment,
  type JinjaNode,
  type JinjaProgram,
  type JinjaValue,
  parse,
  tokenize,
} from "./chat-template-jinja.ts";
import { pyStr, pyStrOrUndefined } from "./chat-template-python.ts";
import { strftime } from "./chat-template-strftime.ts";
import { locateTemplateError } from "./chat-template-syntax.ts";

// ---------------------------------------------------------------------------------------------
// Public types

/** Message roles; templates decide which they accept ("ipython" is Llama 3.1's tool role). */
export type ChatRole = "system" | "developer" | "user" | "assistant" | "tool" | "ipython" | (string & {});

/** One part of a multi-part content: {type:"text", text} or an image/audio part the template knows. */
export interface ChatContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/**
 * A tool call of an assistant message. Most templates (transformers' convention) expect
 * `arguments` as an object; the OpenAI wire format sends a JSON string. The template sees what is
 * given: converting is the caller's choice.
 */
export interface ChatToolCall {
  id?: string;
  type?: "function";
  function: { name: string; arguments: Record<string, unknown> | string; [key: string]: unknown };
  [key: string]: unknown;
}

/**
 * A message as chat templates read it: transformers' field names (snake_case), passed through as
 * given, so template-specific fields work too.
 */
export interface ChatMessage {
  role: ChatRole;
  content?: string | ChatContentPart[] | null;
  /** Tool name on a tool result (some templates), or a participant name. */
  name?: string;
  tool_calls?: ChatToolCall[];
  /** On a tool result: the id of the call it answers. */
  tool_call_id?: string;
  /** An earlier assistant turn's chain of thought (Qwen3, DeepSeek R1 and V3.1 templates). */
  reasoning_content?: string;
  /** The same for gpt-oss's template. */
  thinking?: string;
  [key: string]: unknown;
}

/** An OpenAI-style tool: {type:"function", function:{name, description, parameters (JSON Schema)}}. */
export interface ToolDefinition {
  type: "function";
  function: {
    name: string;
    description?: string;
    parameters?: Record<string, unknown>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface ChatTemplateInput {
  messages: readonly ChatMessage[];
  tools?: readonly ToolDefinition[];
  /** End with the header of an assistant turn so that the model writes the reply. Default false. */
  addGenerationPrompt?: boolean;
  /** The vocabulary's BOS/EOS text ("<s>", "<|im_end|>"): chatTemplateTokens(vocab) gives them. */
  bosToken?: string;
  eosToken?: string;
  /** More template variables: enable_thinking, thinking, reasoning_effort, custom kwargs. */
  extra?: Record<string, unknown>;
  /** The time strftime_now formats (local time, as Python's datetime.now()). Default: now. */
  now?: Date;
}

export interface ChatTemplateOptions {
  /** A name for messages and error details ("tokenizer.chat_template", a file path). */
  name?: string;
  /** Evaluation steps a render may take before ERR_TEMPLATE_RENDER. Default one million. */
  maxSteps?: number;
}

/** A parsed template: parse once, render per request. */
export interface CompiledChatTemplate {
  readonly name: string;
  readonly source: string;
  render(input: ChatTemplateInput): string;
}

export const DEFAULT_MAX_STEPS = 1_000_000;

/**
 * Nesting of evaluations (expressions in expressions, macro calls in macro calls) a render may
 * reach. V8's stack runs out near 1200 inside the library; Jinja2 stops macro recursion at a
 * similar depth (Python's recursion limit). The 12 reference templates stay under 40.
 */
export const MAX_DEPTH = 400;

/** Nesting of the input data (messages, tools, extra) accepted; Python's json stops near 1000. */
export const MAX_INPUT_DEPTH = 512;

/** Jinja2's sandbox refuses ranges longer than this (jinja2.sandbox.MAX_RANGE). */
export const MAX_RANGE = 100_000;

// ---------------------------------------------------------------------------------------------
// Fallback templates

/**
 * ChatML, as llama.cpp uses it for a model without a template: `<|im_start|>{role}\n{content}
 * <|im_end|>\n` per message, `<|im_start|>assistant\n` as the generation prompt. Multi-part
 * content contributes its text parts, concatenated.
 */
export const defaultChatTemplate = `{%- for message in messages -%}
{{- '<|im_start|>' + message.role + '\\n' -}}
{%- if message.content is string -%}
{{- message.content -}}
{%- elif message.content is iterable -%}
{%- for part in message.content if part.type == 'text' -%}{{- part.text -}}{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\\n' -}}
{%- endif -%}
`;

/**
 * A plain transcript for base models that know no chat tokens: the system text, then
 * "User: ...", "Assistant: ..." lines, and "Assistant:" as the generation prompt.
 */
export const plainChatTemplate = `{%- for message in messages -%}
{%- if message.content is string -%}{%- set text = message.content -%}
{%- elif message.content is iterable -%}{%- set text = message.content | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') -%}
{%- else -%}{%- set text = '' -%}
{%- endif -%}
{%- if message.role == 'system' or message.role == 'developer' -%}{{- text + '\\n\\n' -}}
{%- else -%}{{- message.role | capitalize + ': ' + text + '\\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}
`;

// ---------------------------------------------------------------------------------------------
// AST shapes read here (field names as in the library's ast.ts)

interface ForNode extends JinjaNode {
  type: "For";
  iterable: JinjaNode & { lhs?: JinjaNode };
}
interface BinaryNode extends JinjaNode {
  type: "BinaryExpression";
  operator: { value: string };
  left: JinjaNode;
  right: JinjaNode;
}
interface MemberNode extends JinjaNode {
  type: "MemberExpression";
  object: JinjaNode;
  property: JinjaNode;
  computed: boolean;
}
interface TestNode extends JinjaNode {
  type: "TestExpression";
  operand: JinjaNode;
  negate: boolean;
  test: JinjaNode & { value?: unknown };
}
interface FilterNode extends JinjaNode {
  type: "FilterExpression";
  operand: JinjaNode;
  filter: JinjaNode & { value?: unknown };
}

/** A literal node built here; the interpreter dispatches on `type` and reads the fields. */
function literal(type: "StringLiteral" | "ArrayLiteral" | "Identifier", value: unknown): JinjaNode {
  return { type, value } as JinjaNode;
}

// Statement kinds whose children are blocks of statements; an expression directly in a block is
// printed (the library prints it with toString, Jinja2 with str()).
const BLOCK_FIELDS: Readonly<Record<string, readonly string[]>> = {
  Program: ["body"],
  If: ["body", "alternate"],
  For: ["body", "defaultBlock"],
  Macro: ["body"],
  CallStatement: ["body"],
  FilterStatement: ["body"],
  Set: ["body"],
};
const NOT_PRINTED = new Set([
  "Set",
  "If",
  "For",
  "Macro",
  "CallStatement",
  "FilterStatement",
  "Break",
  "Continue",
  "Comment",
  "StringLiteral", // template text: already a string
]);

function collectPrintedNodes(program: JinjaProgram): WeakSet<object> {
  const printed = new WeakSet<object>();
  const visitBlock = (block: unknown) => {
    if (!Array.isArray(block)) return;
    for (const child of block as unknown[]) {
      if (typeof child !== "object" || child === null) continue;
      const type = (child as JinjaNode).type;
      if (!NOT_PRINTED.has(type)) printed.add(child);
      visitNode(child);
    }
  };
  const visitNode = (n: object) => {
    const fields = BLOCK_FIELDS[(n as JinjaNode).type];
    if (fields) for (const f of fields) visitBlock((n as Record<string, unknown>)[f]);
  };
  visitNode(program);
  return printed;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** raise_exception() inside a template: carried out of the interpreter, then made an OwlError. */
class TemplateRaised extends Error {}
class StepLimitExceeded extends Error {}
class DepthLimitExceeded extends Error {}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function parseError(name: string, source: string, text: string, e: unknown): OwlError {
  const where = locateTemplateError(text);
  const at = where ? ` at line ${where.line}, column ${where.column} (${where.problem})` : "";
  return new OwlError("ERR_TEMPLATE_PARSE", `${name} does not parse${at}: ${describe(e)}`, {
    hint: where
      ? undefined
      : "the template may use a Jinja feature that @huggingface/jinja does not support; pass a fixed template",
    details: { name, ...(where ?? {}), reason: describe(e), source },
    cause: e,
  });
}

function renderError(name: string, source: string, e: unknown, maxSteps: number): OwlError {
  if (e instanceof OwlError) return e;
  if (e instanceof TemplateRaised) {
    // The template's own words, unchanged: it is the message for the user (e.g. Gemma's
    // "System role not supported").
    return new OwlError("ERR_TEMPLATE_RAISED", e.message, { details: { name }, cause: e });
  }
  let reason = describe(e);
  let hint: string | undefined;
  if (e instanceof StepLimitExceeded) {
    reason = `it took more than ${maxSteps} evaluation steps`;
    hint = "the template loops too much for this input; raise maxSteps if that is expected";
  } else if (e instanceof DepthLimitExceeded) {
    reason = `it nests deeper than ${MAX_DEPTH} levels (runaway macro recursion?)`;
  } else if (e instanceof RangeError) {
    reason = `${reason} (recursion too deep, or a string too long)`;
  }
  return new OwlError("ERR_TEMPLATE_RENDER", `${name} failed to render: ${reason}`, {
    hint,
    details: { name, reason, source },
    cause: e,
  });
}

function invalid(message: string): OwlError {
  return new OwlError("ERR_INVALID_ARGUMENT", message);
}

// ---------------------------------------------------------------------------------------------
// Input conversion

/**
 * A deep copy of plain JSON-like data for the template: properties whose value is undefined are
 * left out (Python's dicts have no such thing; the template sees them as undefined anyway, and
 * tojson would print null), holes in arrays become null. Anything else (functions, bigints,
 * class instances, cycles) is a caller error.
 */
function toTemplateValue(v: unknown, path: string, stack: Set<object>): unknown {
  if (stack.size >= MAX_INPUT_DEPTH)
    throw invalid(`chat template input ${path} nests deeper than ${MAX_INPUT_DEPTH} levels`);
  switch (typeof v) {
    case "string":
    case "boolean":
    case "number":
    case "undefined":
      return v;
    case "object": {
      if (v === null) return null;
      if (stack.has(v)) throw invalid(`chat template input ${path} contains itself`);
      stack.add(v);
      try {
        if (Array.isArray(v)) {
          return (v as unknown[]).map((x, i) => toTemplateValue(x ?? null, `${path}[${i}]`, stack));
        }
        const proto: unknown = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          const kind = (v as { constructor?: { name?: string } }).constructor?.name ?? "object";
          throw invalid(`chat template input ${path} is a ${kind}; expected plain JSON-like data`);
        }
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) {
          if (x !== undefined) out[k] = toTemplateValue(x, `${path}.${k}`, stack);
        }
        return out;
      } finally {
        stack.delete(v);
      }
    }
    default:
      throw invalid(`chat template input ${path} is a ${typeof v}; expected plain JSON-like data`);
  }
}

const RESERVED = ["messages", "tools", "add_generation_prompt", "bos_token", "eos_token"] as const;
const RESERVED_FIELD: Record<(typeof RESERVED)[number], string> = {
  messages: "messages",
  tools: "tools",
  add_generation_prompt: "addGenerationPrompt",
  bos_token: "bosToken",
  eos_token: "eosToken",
};

/** The template variables for an input, transformers' names. */
function templateVariables(input: ChatTemplateInput): Record<string, unknown> {
  if (typeof input !== "object" || input === null) throw invalid("chat template input must be an object");
  if (!Array.isArray(input.messages)) {
    throw invalid(`chat template input.messages must be an array, found ${typeof input.messages}`);
  }
  const stack = new Set<object>();
  const vars: Record<string, unknown> = {
    messages: toTemplateValue(input.messages, "messages", stack),
    add_generation_prompt: input.addGenerationPrompt ?? false,
  };
  if (input.tools !== undefined) {
    if (!Array.isArray(input.tools)) throw invalid("chat template input.tools must be an array");
    vars["tools"] = toTemplateValue(input.tools, "tools", stack);
  }
  if (input.bosToken !== undefined) vars["bos_token"] = input.bosToken;
  if (input.eosToken !== undefined) vars["eos_token"] = input.eosToken;
  for (const [k, v] of Object.entries(input.extra ?? {})) {
    if (v === undefined) continue;
    if ((RESERVED as readonly string[]).includes(k)) {
      const field = RESERVED_FIELD[k as (typeof RESERVED)[number]];
      throw invalid(`chat template input.extra.${k}: pass it as input.${field}`);
    }
    vars[k] = toTemplateValue(v, `extra.${k}`, stack);
  }
  return vars;
}

// ---------------------------------------------------------------------------------------------
// Globals

function toInt(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new Error(`range() ${what} must be an integer, found ${v === undefined ? "nothing" : typeof v}`);
  }
  return v;
}

/** Python's range() under Jinja2's sandbox limit (jinja2.sandbox.safe_range). */
function safeRange(...args: unknown[]): number[] {
  if (args.length < 1 || args.length > 3)
    throw new Error(`range expected 1 to 3 arguments, got ${args.length}`);
  let start = 0;
  let stop: number;
  let step = 1;
  if (args.length === 1) stop = toInt(args[0], "stop");
  else {
    start = toInt(args[0], "start");
    stop = toInt(args[1], "stop");
    if (args.length === 3) step = toInt(args[2], "step");
  }
  if (step === 0) throw new Error("range() arg 3 must not be zero");
  const length = Math.max(0, Math.ceil((stop - start) / step));
  if (length > MAX_RANGE) {
    throw new Error(`Range too big. The sandbox blocks ranges larger than MAX_RANGE (${MAX_RANGE}).`);
  }
  const out: number[] = new Array(length);
  for (let i = 0; i < length; i++) out[i] = start + i * step;
  return out;
}

function globalEnvironment(now: Date): JinjaEnvironment {
  const env = new Environment(); // brings `namespace`
  env.set("true", true);
  env.set("false", false);
  env.set("none", null);
  env.set("True", true);
  env.set("False", false);
  env.set("None", null);
  env.set(TRUE_VAR, true);
  env.set(FALSE_VAR, false);
  env.set("range", safeRange);
  env.set("raise_exception", (message: unknown) => {
    throw new TemplateRaised(typeof message === "string" ? message : String(message));
  });
  env.set("strftime_now", (format: unknown) => strftime(now, String(format)));
  return env;
}

// ---------------------------------------------------------------------------------------------
// The interpreter, with the Jinja2 bridges of the module comment

const ITERABLE_VAR = "__owl_for_iterable";
/** Booleans for the bridges, declared with the globals (`true` could be shadowed by a template). */
const TRUE_VAR = "__owl_true";
const FALSE_VAR = "__owl_false";
/** What Jinja2's `iterable` test accepts. */
const ITERABLE_TYPES = new Set([
  "ArrayValue",
  "TupleValue",
  "StringValue",
  "ObjectValue",
  "KeywordArgumentsValue",
  "UndefinedValue",
]);
/** Never declared: looking it up gives the library's undefined value. */
const UNDEFINED_VAR = "__owl_undefined";
/** Filters that Jinja2 applies to str() of their operand. */
const STRING_FILTERS = new Set(["string", "trim", "upper", "lower", "capitalize", "title"]);
/** Subscripts the library handles like Jinja2 already. */
const LITERAL_KEYS = new Set(["StringLiteral", "IntegerLiteral", "SliceExpression"]);

/** Python's name for the type of a runtime value, for TypeError messages. */
function pyTypeName(v: JinjaValue): string {
  const names: Record<string, string> = {
    IntegerValue: "int",
    FloatValue: "float",
    BooleanValue: "bool",
    NullValue: "NoneType",
    UndefinedValue: "Undefined",
    ArrayValue: "list",
    TupleValue: "tuple",
    ObjectValue: "dict",
    NamespaceValue: "Namespace",
    FunctionValue: "function",
  };
  return names[v.type] ?? v.type;
}

class ChatTemplateInterpreter extends Interpreter {
  private steps = 0;
  private depth = 0;

  constructor(
    env: JinjaEnvironment,
    private readonly printed: WeakSet<object>,
    private readonly maxSteps: number,
  ) {
    super(env);
  }

  override evaluate(statement: JinjaNode | undefined, environment: JinjaEnvironment): JinjaValue {
    if (++this.steps > this.maxSteps) throw new StepLimitExceeded();
    // NOTE: the library swallows a stack overflow inside variable lookup (it reads as undefined),
    // so deep recursion must be stopped here, before the stack runs out.
    if (++this.depth > MAX_DEPTH) throw new DepthLimitExceeded();
    try {
      return this.bridge(statement, environment);
    } finally {
      this.depth--;
    }
  }

  private bridge(statement: JinjaNode | undefined, environment: JinjaEnvironment): JinjaValue {
    if (statement === undefined) return super.evaluate(statement, environment);
    const value = this.bridgeValue(statement, environment);
    if (value.type !== "StringValue" && this.printed.has(statement)) {
      const s = pyStrOrUndefined(value);
      if (s !== undefined) return this.bridgeStr(s, environment);
    }
    return value;
  }

  private bridgeValue(statement: JinjaNode, environment: JinjaEnvironment): JinjaValue {
    switch (statement.type) {
      case "For":
        return this.bridgeFor(statement as ForNode, environment);
      case "BinaryExpression": {
        const b = statement as BinaryNode;
        const op = b.operator.value;
        if (op !== "~" && op !== "+") break;
        const left = this.evaluate(b.left, environment);
        const right = this.evaluate(b.right, environment);
        if (op === "~") return this.bridgeStr(pyStr(left) + pyStr(right), environment);
        // Python's + joins two strings, and refuses a string with anything else (the library
        // would concatenate JavaScript's text: "a" + [1] as "a1", a dict as "[object Map]").
        const ls = left.type === "StringValue";
        const rs = right.type === "StringValue";
        if (ls && rs) return this.bridgeStr(String(left.value) + String(right.value), environment);
        if (ls) throw new TypeError(`can only concatenate str (not "${pyTypeName(right)}") to str`);
        if (rs) {
          const l = pyTypeName(left);
          throw new TypeError(
            l === "list" || l === "tuple"
              ? `can only concatenate ${l} (not "str") to ${l}`
              : `unsupported operand type(s) for +: '${l}' and 'str'`,
          );
        }
        return this.evaluateWith(b, { left, right }, environment);
      }
      case "FilterExpression": {
        // Jinja2's string filters take str() of anything (`none|trim` is "None", an undefined
        // description|trim is ""); the library accepts only strings. Hand it str() of the operand.
        const f = statement as FilterNode;
        if (f.filter.type !== "Identifier" || !STRING_FILTERS.has(String(f.filter.value))) break;
        const operand = this.evaluate(f.operand, environment);
        const s = operand.type === "StringValue" ? undefined : pyStrOrUndefined(operand);
        if (s === undefined) return this.evaluateWith(f, { operand }, environment);
        const str = this.bridgeStr(s, environment);
        return f.filter.value === "string" ? str : this.evaluateWith(f, { operand: str }, environment);
      }
      case "TestExpression": {
        // Jinja2: a dict and an undefined value are iterable (the library says no; Hermes 3
        // tests `spec.type is iterable` on an undefined type).
        const t = statement as TestNode;
        if (t.test.value !== "iterable") break;
        const operand = this.evaluate(t.operand, environment);
        return this.bridgeBool(ITERABLE_TYPES.has(operand.type) !== t.negate, environment);
      }
      case "MemberExpression": {
        // Jinja2 gives undefined for a missing key, whatever the key; the library throws for a
        // key that is not a string or an integer (Hermes 3 looks up `map[spec.type]` with an
        // undefined type). Literal keys and slices go straight to the library.
        const m = statement as MemberNode;
        if (!m.computed || LITERAL_KEYS.has(m.property.type)) break;
        const object = this.evaluate(m.object, environment);
        const property = this.evaluate(m.property, environment);
        if (property.type !== "StringValue" && property.type !== "IntegerValue") {
          return super.evaluate(literal("Identifier", UNDEFINED_VAR), environment);
        }
        return this.evaluateWith(m, { object, property }, environment);
      }
    }
    return super.evaluate(statement, environment);
  }

  /**
   * Let the library evaluate `n` with some of its operand fields already evaluated: the values
   * are bound to hidden names in a scope of their own and the fields point to those names, so no
   * operand is evaluated twice.
   */
  private evaluateWith(
    n: JinjaNode,
    operands: Record<string, JinjaValue>,
    environment: JinjaEnvironment,
  ): JinjaValue {
    const scope = new Environment(environment);
    const clone: Record<string, unknown> = { ...n };
    for (const [field, value] of Object.entries(operands)) {
      const name = `__owl_operand_${field}`;
      scope.setVariable(name, value);
      clone[field] = literal("Identifier", name);
    }
    return super.evaluate(clone as unknown as JinjaNode, scope);
  }

  private bridgeBool(b: boolean, environment: JinjaEnvironment): JinjaValue {
    return super.evaluate(literal("Identifier", b ? TRUE_VAR : FALSE_VAR), environment);
  }

  /** A string value, made by the library from a literal (its value classes are not exported). */
  private bridgeStr(s: string, environment: JinjaEnvironment): JinjaValue {
    return super.evaluate(literal("StringLiteral", s), environment);
  }

  /**
   * Jinja2 iterates an undefined value as empty and a string by characters; the library throws
   * for both. Evaluate the iterable once, then let the library loop over the (possibly replaced)
   * value bound to a hidden name in a scope between the loop and its surroundings.
   */
  private bridgeFor(n: ForNode, environment: JinjaEnvironment): JinjaValue {
    const select = n.iterable.type === "SelectExpression" ? n.iterable : undefined;
    let iterable = this.evaluate(select?.lhs ?? n.iterable, environment);
    if (iterable.type === "UndefinedValue") {
      iterable = super.evaluate(literal("ArrayLiteral", []), environment);
    } else if (iterable.type === "StringValue") {
      const chars = Array.from(String(iterable.value), (c) => literal("StringLiteral", c));
      iterable = super.evaluate(literal("ArrayLiteral", chars), environment);
    }
    // The library builds a scope and loop variables per item (about 10 us) before and while
    // running the body: charge each item like 5 steps, or an empty loop over range(100000)
    // would cost nothing.
    const items = iterable.value;
    this.steps += 5 * (Array.isArray(items) ? items.length : items instanceof Map ? items.size : 0);
    if (this.steps > this.maxSteps) throw new StepLimitExceeded();
    const scope = new Environment(environment);
    scope.setVariable(ITERABLE_VAR, iterable);
    const ref = literal("Identifier", ITERABLE_VAR);
    const loop: ForNode = { ...n, iterable: select ? { ...select, lhs: ref } : ref };
    return super.evaluate(loop, scope);
  }
}

// ---------------------------------------------------------------------------------------------
// Compile and render

/** Parse a template once; ERR_TEMPLATE_PARSE (with line and column where found) if it does not parse. */
export function compileChatTemplate(source: string, options: ChatTemplateOptions = {}): CompiledChatTemplate {
  const name = options.name ?? "chat template";
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  if (typeof source !== "string")
    throw invalid(`${name}: expected the template text, found ${typeof source}`);
  if (!(maxSteps > 0)) throw invalid(`maxSteps must be positive, found ${maxSteps}`);
  // Jinja2's lexer turns every \r\n and \r into \n (its newline_sequence), in text and in
  // string literals alike; the library keeps them, and its trim_blocks looks for "%}\n" only.
  const text = source.replace(/\r\n?/g, "\n");
  let program: JinjaProgram;
  try {
    program = parse(tokenize(text, { lstrip_blocks: true, trim_blocks: true }));
  } catch (e) {
    throw parseError(name, source, text, e);
  }
  const printed = collectPrintedNodes(program);
  return {
    name,
    source,
    render(input: ChatTemplateInput): string {
      const vars = templateVariables(input);
      const env = new Environment(globalEnvironment(input.now ?? new Date()));
      for (const [k, v] of Object.entries(vars)) env.set(k, v);
      try {
        const out = new ChatTemplateInterpreter(env, printed, maxSteps).run(program);
        return String(out.value);
      } catch (e) {
        throw renderError(name, source, e, maxSteps);
      }
    },
  };
}

/** Parse and render in one call (a server should compile once and keep the result). */
export function renderChatTemplate(
  template: string,
  input: ChatTemplateInput,
  options: ChatTemplateOptions = {},
): string {
  return compileChatTemplate(template, options).render(input);
}
