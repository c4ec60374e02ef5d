/**
 * Prompt rendering for /api/chat, /api/generate and the OpenAI routes, Ollama's way: a Modelfile
 * TEMPLATE (Go text/template) when the model has one, else the GGUF's Jinja chat template, else
 * Ollama's DefaultTemplate "{{ .Prompt }}" (template/template.go; server/images.go GetModel gives
 * it to a model with no template), for chats too; the Modelfile SYSTEM unless the request starts with its own
 * system message; the Modelfile MESSAGEs before the request's; then tokens (BOS added unless the
 * text already starts with it, llama.cpp's rule) and the context check: with truncation (Ollama's
 * default) Ollama's chatPrompt rule (drop the oldest messages, keep every system message and at
 * least the last message) and then its runner's cut of the tokens (truncatePromptTokens: the
 * first num_keep and the last); with "truncate": false, ERR_CONTEXT_OVERFLOW naming both numbers.
 * Not here: the Go template language (tokenizer/go-template.ts), Jinja (tokenizer/chat-template.ts),
 * parsing tool calls out of the reply (tool-calls.ts), options (options.ts).
 *
 * The data a Go template sees is Ollama's template.Values as template/template.go builds it:
 * chat-style templates (mentioning .Messages) get System (every system message, joined by a
 * blank line), Messages (consecutive messages of one role merged with a blank line, tool results
 * kept apart), Tools, Response "" and Think/ThinkLevel/IsThinkSet; older templates (.System,
 * .Prompt, .Response only) run once per system/user/assistant turn and the last run is cut right
 * after {{ .Response }}, so a trailing assistant message is continued, not closed.
 */
import type { StoredMessage } from "../store/types.ts";
import {
  type ChatMessage,
  type CompiledChatTemplate,
  compileChatTemplate,
  type ToolDefinition,
} from "../tokenizer/chat-template.ts";
import {
  appendResponse,
  cutAfterField,
  executeGoTemplate,
  type GoTemplate,
  goJson,
  parseGoTemplate,
  templateVars,
  toGoMap,
  withGoJson,
  withGoString,
} from "../tokenizer/go-template.ts";
import { OwlError } from "../util/errors.ts";
import type { LoadedModel } from "./types.ts";

/** A request message: Ollama's shape (content string, images, tool_name) or OpenAI's
 * (content parts, tool_calls with JSON-string arguments, tool_call_id). */
export interface PromptMessage extends ChatMessage {
  /** Ollama: base64 images. Any image makes the request ERR_UNSUPPORTED (no vision projector). */
  images?: unknown[] | null;
  /** Ollama: the tool a tool result comes from. */
  tool_name?: string;
}

export type ThinkValue = boolean | "high" | "medium" | "low";

export interface ChatPromptInput {
  messages: readonly PromptMessage[];
  tools?: readonly ToolDefinition[];
  /** Modelfile SYSTEM. */
  system?: string;
  /** Modelfile MESSAGEs. */
  storedMessages?: readonly StoredMessage[];
  /** Modelfile TEMPLATE (Go). */
  template?: string;
  /** The GGUF's tokenizer.chat_template (Jinja). */
  chatTemplate?: string;
  bosToken?: string;
  eosToken?: string;
  /** Default: true unless the last message is the assistant's (a prefill to continue). */
  addGenerationPrompt?: boolean;
  think?: ThinkValue;
  /** Clock of currentDate / strftime_now. */
  now?: Date;
}

/** Which template made the prompt ("default": Ollama's "{{ .Prompt }}", the model has none). */
export type PromptSource = "modelfile" | "gguf" | "default";

/**
 * Ollama's DefaultTemplate (template/template.go), a model's template when it has none. As a
 * legacy template (no .Messages) it runs once per turn: a chat renders as its user and assistant
 * texts one after another, system messages left out. NOTE: llama-server would use ChatML here;
 * owl follows Ollama, whose API it serves (a base model such as stories260K never saw chat tokens).
 */
export const OLLAMA_DEFAULT_TEMPLATE = "{{ .Prompt }}";

export interface RenderedPrompt {
  prompt: string;
  source: PromptSource;
}

// ---------------------------------------------------------------------------------------------
// Messages

interface NormalMessage {
  role: string;
  content: string;
  thinking: string;
  toolCalls: { id: string; index: number; name: string; arguments: Record<string, unknown> }[];
  toolName: string;
  toolCallId: string;
}

function noVision(): OwlError {
  return new OwlError(
    "ERR_UNSUPPORTED",
    "this model has no vision projector: images in messages are not supported",
    {
      hint: "send text only",
    },
  );
}

function badMessage(i: number, what: string, found: unknown): OwlError {
  return new OwlError(
    "ERR_BAD_REQUEST",
    `messages[${i}].${what}, found ${JSON.stringify(found)?.slice(0, 80)}`,
    {
      details: { field: `messages[${i}]` },
    },
  );
}

function normalizeMessage(m: PromptMessage, i: number): NormalMessage {
  if (typeof m.role !== "string" || m.role === "")
    throw badMessage(i, "role must be a non-empty string", m.role);
  if (Array.isArray(m.images) && m.images.length > 0) throw noVision();
  let content = "";
  if (typeof m.content === "string") content = m.content;
  else if (Array.isArray(m.content)) {
    for (const part of m.content) {
      if (part.type === "text" && typeof part.text === "string") content += part.text;
      else if (part.type === "image_url" || part.type === "image" || part.type === "input_audio")
        throw noVision();
      else throw badMessage(i, 'content parts must be {type:"text", text}', part);
    }
  } else if (m.content !== undefined && m.content !== null) {
    throw badMessage(i, "content must be a string or an array of parts", m.content);
  }
  const toolCalls: NormalMessage["toolCalls"] = [];
  for (const [j, tc] of (m.tool_calls ?? []).entries()) {
    const f = tc?.function;
    if (f === undefined || typeof f.name !== "string")
      throw badMessage(i, `tool_calls[${j}].function.name must be a string`, f);
    let args: unknown = f.arguments ?? {};
    if (typeof args === "string") {
      try {
        args = args.trim() === "" ? {} : JSON.parse(args);
      } catch {
        throw badMessage(i, `tool_calls[${j}].function.arguments must be a JSON object`, f.arguments);
      }
    }
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      throw badMessage(i, `tool_calls[${j}].function.arguments must be a JSON object`, f.arguments);
    }
    toolCalls.push({
      id: typeof tc.id === "string" ? tc.id : "",
      index: typeof f["index"] === "number" ? (f["index"] as number) : j,
      name: f.name,
      arguments: args as Record<string, unknown>,
    });
  }
  const thinking =
    typeof m.thinking === "string"
      ? m.thinking
      : typeof m.reasoning_content === "string"
        ? m.reasoning_content
        : "";
  return {
    role: m.role,
    content,
    thinking,
    toolCalls,
    toolName:
      typeof m.tool_name === "string"
        ? m.tool_name
        : typeof m.name === "string" && m.role === "tool"
          ? m.name
          : "",
    toolCallId: typeof m.tool_call_id === "string" ? m.tool_call_id : "",
  };
}

/** Ollama's ChatHandler: Modelfile MESSAGEs, then the request's; the Modelfile SYSTEM first
 * unless the request's first message is a system message. */
function assembleMessages(input: {
  messages: readonly PromptMessage[];
  system?: string | undefined;
  storedMessages?: readonly StoredMessage[] | undefined;
}): NormalMessage[] {
  const req = input.messages.map(normalizeMessage);
  const stored = (input.storedMessages ?? []).map((m, i) =>
    normalizeMessage({ role: m.role, content: m.content }, i),
  );
  const msgs = [...stored, ...req];
  if (input.system !== undefined && input.system !== "" && req[0]?.role !== "system") {
    msgs.unshift(normalizeMessage({ role: "system", content: input.system }, 0));
  }
  // An OpenAI tool result names its call by id only: the tool's name comes from that call, as
  // Ollama's nameFromToolCallID does (the latest call with that id).
  const callNames = new Map<string, string>();
  for (const m of msgs) {
    for (const tc of m.toolCalls) if (tc.id !== "") callNames.set(tc.id, tc.name);
    if (m.role === "tool" && m.toolName === "" && m.toolCallId !== "")
      m.toolName = callNames.get(m.toolCallId) ?? "";
  }
  return msgs;
}

/** Parsed templates by source: a server renders the same few templates for every request. */
const CACHE_SIZE = 32;
const goCache = new Map<string, GoTemplate>();
const jinjaCache = new Map<string, CompiledChatTemplate>();

function cached<T>(cache: Map<string, T>, key: string, make: () => T): T {
  let v = cache.get(key);
  if (v === undefined) {
    v = make();
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
    cache.set(key, v);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Go templates (Ollama's template.Template.Execute)

/** Parse a Modelfile TEMPLATE the way Ollama's template.Parse does: {{ .Response }} is appended
 * when the template mentions neither .Messages nor .Response. */
export function parseOllamaTemplate(source: string): GoTemplate {
  const t = parseGoTemplate(source);
  const vars = templateVars(t);
  return vars.includes("messages") || vars.includes("response") ? t : appendResponse(t);
}

/**
 * Ollama's capabilities of a model's template (server/images.go Capabilities): "completion"
 * always; with a Modelfile TEMPLATE (Go), "tools" when it reads .Tools and "insert" when it reads
 * .Suffix (template.Vars; a template that does not parse has neither, as Ollama only logs it);
 * otherwise, from the GGUF's Jinja chat template, "tools" when its text mentions "tools" or
 * "tool_call" (chatTemplateHasToolSupport).
 */
export function templateCapabilities(
  goTemplate: string | undefined,
  chatTemplate: string | undefined,
): string[] {
  const caps = ["completion"];
  if (goTemplate !== undefined) {
    let vars: string[] = [];
    try {
      vars = templateVars(parseGoTemplate(goTemplate));
    } catch {
      // Ollama: "model template contains errors", no template capabilities.
    }
    if (vars.includes("tools")) caps.push("tools");
    if (vars.includes("suffix")) caps.push("insert");
  } else if (
    chatTemplate !== undefined &&
    (chatTemplate.includes("tools") || chatTemplate.includes("tool_call"))
  ) {
    caps.push("tools");
  }
  return caps;
}

const jsonString = <T extends object>(v: T): T => withGoString(v, goJson);

/** Ollama's PropertyType: a []string that prints and marshals as its only entry when it has one. */
function propertyType(types: string[]): string[] {
  withGoString(types, (t) => (t.length === 1 ? t[0]! : `[${t.join(" ")}]`));
  return withGoJson(types, (t) => (t.length === 1 ? goJson(t[0]) : `[${t.map((x) => goJson(x)).join(",")}]`));
}

/**
 * A Go struct for a template: fields under their Go names (what {{ .Name }} reads), JSON under
 * the json tags given as [goName, jsonName, omitempty] (what json and String print).
 */
function goStruct(
  fields: Record<string, unknown>,
  tags: readonly [string, string, boolean][],
): Record<string, unknown> {
  const marshal = (): string => {
    const parts: string[] = [];
    for (const [goName, jsonName, omitEmpty] of tags) {
      const v = fields[goName];
      if (omitEmpty && (v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0)))
        continue;
      parts.push(`${goJson(jsonName)}:${goJson(v)}`);
    }
    return `{${parts.join(",")}}`;
  };
  withGoJson(fields, marshal);
  return withGoString(fields, marshal);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Map);
}

/** A JSON schema property as Ollama's ToolProperty struct. */
function toolProperty(p: unknown): unknown {
  if (p === null || typeof p !== "object" || Array.isArray(p)) return toGoMap(p);
  const o = p as Record<string, unknown>;
  const type = o["type"];
  const types =
    typeof type === "string" && type !== "" ? [type] : Array.isArray(type) ? type.map(String) : [];
  return goStruct(
    {
      AnyOf: Array.isArray(o["anyOf"]) && o["anyOf"].length > 0 ? o["anyOf"].map(toolProperty) : null,
      Type: propertyType(types),
      Items: o["items"] === undefined ? null : toGoMap(o["items"]),
      Description: typeof o["description"] === "string" ? o["description"] : "",
      Enum: Array.isArray(o["enum"]) && o["enum"].length > 0 ? toGoMap(o["enum"]) : null,
      // Nested properties stay in the schema's order (Ollama's ToolPropertiesMap); only the top
      // level becomes a Go map (templateProperties, sorted).
      Properties: isPlainObject(o["properties"])
        ? Object.fromEntries(Object.entries(o["properties"]).map(([k, v]) => [k, toolProperty(v)]))
        : null,
      Required: Array.isArray(o["required"]) && o["required"].length > 0 ? o["required"] : null,
    },
    [
      ["AnyOf", "anyOf", true],
      ["Type", "type", true],
      ["Items", "items", true],
      ["Description", "description", true],
      ["Enum", "enum", true],
      ["Properties", "properties", true],
      ["Required", "required", true],
    ],
  );
}

/** Ollama's templateProperties: a map (sorted keys) that prints as JSON. */
function toolProperties(props: unknown): Map<string, unknown> {
  const m = new Map<string, unknown>();
  if (props !== null && typeof props === "object") {
    for (const [k, v] of Object.entries(props)) m.set(k, toolProperty(v));
  }
  return jsonString(m);
}

/** Ollama's templateTools: Go structs (Type, Function.Name, .Parameters.Properties, ...) that
 * print as their JSON. */
function templateTools(tools: readonly ToolDefinition[] | undefined): unknown {
  if (tools === undefined || tools.length === 0) return null;
  const list = tools.map((t) => {
    const f = t.function ?? { name: "" };
    const params = (f.parameters ?? {}) as Record<string, unknown>;
    const parameters = goStruct(
      {
        Type: typeof params["type"] === "string" ? params["type"] : "",
        Defs: params["$defs"] === undefined ? null : toGoMap(params["$defs"]),
        Items: params["items"] === undefined ? null : toGoMap(params["items"]),
        Required:
          Array.isArray(params["required"]) && params["required"].length > 0 ? params["required"] : null,
        Properties: toolProperties(params["properties"]),
      },
      [
        ["Type", "type", false],
        ["Defs", "$defs", true],
        ["Items", "items", true],
        ["Required", "required", true],
        ["Properties", "properties", false],
      ],
    );
    const fn = goStruct(
      {
        Name: f.name,
        Description: typeof f.description === "string" ? f.description : "",
        Parameters: parameters,
      },
      [
        ["Name", "name", false],
        ["Description", "description", false],
        ["Parameters", "parameters", false],
      ],
    );
    return goStruct(
      {
        Type: t.type ?? "function",
        Items: t["items"] === undefined ? null : toGoMap(t["items"]),
        Function: fn,
      },
      [
        ["Type", "type", false],
        ["Items", "items", true],
        ["Function", "function", false],
      ],
    );
  });
  return jsonString(list);
}

function templateMessage(m: NormalMessage): Record<string, unknown> {
  return {
    Role: m.role,
    Content: m.content,
    Thinking: m.thinking,
    Images: null,
    ToolCalls:
      m.toolCalls.length === 0
        ? null
        : m.toolCalls.map((tc) => ({
            ID: tc.id,
            Function: {
              Index: tc.index,
              Name: tc.name,
              Arguments: jsonString(toGoMap(tc.arguments) as Map<string, unknown>),
            },
          })),
    ToolName: m.toolName,
    ToolCallID: m.toolCallId,
  };
}

/** Ollama's collate: consecutive messages of one role (but tool) merged with "\n\n"; all system
 * messages joined as .System. */
function collate(msgs: readonly NormalMessage[]): { system: string; messages: NormalMessage[] } {
  const system: string[] = [];
  const out: NormalMessage[] = [];
  for (const m of msgs) {
    if (m.role === "system") system.push(m.content);
    const last = out[out.length - 1];
    if (last !== undefined && last.role === m.role && m.role !== "tool") {
      out[out.length - 1] = { ...last, content: `${last.content}\n\n${m.content}` };
    } else out.push({ ...m });
  }
  return { system: system.join("\n\n"), messages: out };
}

export interface OllamaTemplateValues {
  messages: readonly NormalMessageInput[];
  tools?: readonly ToolDefinition[];
  /** /api/generate fill-in-the-middle: Prompt and Suffix only. */
  prompt?: string;
  suffix?: string;
  think?: ThinkValue;
  now?: Date;
}

/** Messages given to executeOllamaTemplate (request shape). */
export type NormalMessageInput = PromptMessage;

/** Ollama's Template.Execute over already assembled messages. */
export function executeOllamaTemplate(tmpl: GoTemplate, values: OllamaTemplateValues): string {
  const think = values.think;
  const thinkVals = {
    Think: think === undefined ? false : think !== false,
    ThinkLevel: typeof think === "string" ? think : "",
    IsThinkSet: think !== undefined,
  };
  const opts = values.now === undefined ? {} : { now: values.now };
  if (
    values.prompt !== undefined &&
    values.prompt !== "" &&
    values.suffix !== undefined &&
    values.suffix !== ""
  ) {
    return executeGoTemplate(
      tmpl,
      { Prompt: values.prompt, Suffix: values.suffix, Response: "", ...thinkVals },
      opts,
    );
  }
  const { system, messages } = collate(values.messages.map(normalizeMessage));
  if (templateVars(tmpl).includes("messages")) {
    return executeGoTemplate(
      tmpl,
      {
        System: system,
        Messages: messages.map(templateMessage),
        Tools: templateTools(values.tools),
        Response: "",
        ...thinkVals,
      },
      opts,
    );
  }
  // Legacy templates: one run per (system, prompt, response) turn; the last run is cut after
  // {{ .Response }} so that a trailing assistant message is continued.
  let out = "";
  let sys = "";
  let prompt = "";
  let response = "";
  const run = (t: GoTemplate) => {
    out += executeGoTemplate(t, { System: sys, Prompt: prompt, Response: response, ...thinkVals }, opts);
    sys = "";
    prompt = "";
    response = "";
  };
  for (const m of messages) {
    if (m.role === "system") {
      if (prompt !== "" || response !== "") run(tmpl);
      sys = m.content;
    } else if (m.role === "user") {
      if (response !== "") run(tmpl);
      prompt = m.content;
    } else if (m.role === "assistant") response = m.content;
  }
  run(cutAfterField(tmpl, "Response"));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rendering

function jinjaMessage(m: NormalMessage): ChatMessage {
  const out: ChatMessage = { role: m.role, content: m.content };
  if (m.thinking !== "") {
    out.thinking = m.thinking;
    out.reasoning_content = m.thinking;
  }
  if (m.toolCalls.length > 0) {
    out.tool_calls = m.toolCalls.map((tc) => ({
      ...(tc.id === "" ? {} : { id: tc.id }),
      type: "function" as const,
      function: { name: tc.name, arguments: tc.arguments },
    }));
  }
  if (m.toolName !== "") out.name = m.toolName;
  if (m.toolCallId !== "") out.tool_call_id = m.toolCallId;
  return out;
}

function renderAssembled(msgs: readonly NormalMessage[], input: ChatPromptInput): RenderedPrompt {
  const hasGo = input.template !== undefined && input.template !== "";
  const hasJinja = input.chatTemplate !== undefined && input.chatTemplate !== "";
  if (hasGo || !hasJinja) {
    const source = hasGo ? input.template! : OLLAMA_DEFAULT_TEMPLATE;
    const t = cached(goCache, source, () => parseOllamaTemplate(source));
    const prompt = executeOllamaTemplate(t, {
      // OpenAI's "developer" role is its newer name for "system", which Go templates know.
      messages: msgs.map((m) => backToInput(m.role === "developer" ? { ...m, role: "system" } : m)),
      ...(input.tools === undefined ? {} : { tools: input.tools }),
      ...(input.think === undefined ? {} : { think: input.think }),
      ...(input.now === undefined ? {} : { now: input.now }),
    });
    return { prompt, source: hasGo ? "modelfile" : "default" };
  }
  const text = input.chatTemplate!;
  const compiled = cached(jinjaCache, text, () =>
    compileChatTemplate(text, { name: "tokenizer.chat_template" }),
  );
  const last = msgs[msgs.length - 1];
  const extra: Record<string, unknown> = {};
  if (input.think !== undefined) {
    extra["enable_thinking"] = input.think !== false;
    if (typeof input.think === "string") extra["reasoning_effort"] = input.think;
  }
  const prompt = compiled.render({
    messages: msgs.map(jinjaMessage),
    ...(input.tools === undefined || input.tools.length === 0 ? {} : { tools: input.tools }),
    addGenerationPrompt: input.addGenerationPrompt ?? last?.role !== "assistant",
    ...(input.bosToken === undefined ? {} : { bosToken: input.bosToken }),
    ...(input.eosToken === undefined ? {} : { eosToken: input.eosToken }),
    extra,
    ...(input.now === undefined ? {} : { now: input.now }),
  });
  return { prompt, source: "gguf" };
}

function backToInput(m: NormalMessage): PromptMessage {
  return {
    role: m.role,
    content: m.content,
    ...(m.thinking === "" ? {} : { thinking: m.thinking }),
    ...(m.toolCalls.length === 0
      ? {}
      : {
          tool_calls: m.toolCalls.map((tc) => ({
            id: tc.id,
            function: { name: tc.name, arguments: tc.arguments, index: tc.index },
          })),
        }),
    ...(m.toolName === "" ? {} : { tool_name: m.toolName }),
    ...(m.toolCallId === "" ? {} : { tool_call_id: m.toolCallId }),
  };
}

/**
 * The prompt of a chat request: Modelfile TEMPLATE (Go) > the GGUF's Jinja > Ollama's
 * "{{ .Prompt }}". ERR_BAD_REQUEST
 * for malformed messages, ERR_UNSUPPORTED for images, ERR_TEMPLATE_* from the template.
 */
export function renderChatPrompt(input: ChatPromptInput): RenderedPrompt {
  return renderAssembled(assembleMessages(input), input);
}

export interface GeneratePromptInput {
  prompt: string;
  /** The request's system (replaces the Modelfile's). */
  system?: string;
  /** Fill in the middle: the text after the gap. */
  suffix?: string;
  /** The prompt as is, no template. */
  raw?: boolean;
  /** The request's own template (Ollama's /api/generate "template"), over the Modelfile's. */
  requestTemplate?: string;
  /** Modelfile TEMPLATE, SYSTEM and MESSAGEs; the GGUF's Jinja template. */
  template?: string;
  modelSystem?: string;
  storedMessages?: readonly StoredMessage[];
  chatTemplate?: string;
  bosToken?: string;
  eosToken?: string;
  think?: ThinkValue;
  now?: Date;
  /** The model name, for messages. */
  modelName?: string;
  /** Ollama's /api/generate images: any image is ERR_UNSUPPORTED (no vision projector). */
  images?: readonly unknown[] | null;
}

/**
 * The prompt of /api/generate (and /v1/completions): raw: the prompt itself; with a suffix: the
 * template's {{ .Prompt }}/{{ .Suffix }} (ERR_UNSUPPORTED when the template has no .Suffix);
 * else the system, the Modelfile MESSAGEs and the prompt as a user message, through the same
 * templates as a chat (server/routes.go GenerateHandler); a model with no template at all gets
 * Ollama's DefaultTemplate "{{ .Prompt }}": the prompt as is after the text of any Modelfile
 * MESSAGEs, the system prompt left out.
 */
export function renderGeneratePrompt(input: GeneratePromptInput): RenderedPrompt {
  const plan = planGeneratePrompt(input);
  return "chat" in plan ? renderChatPrompt(plan.chat) : plan;
}

/**
 * /api/generate's prompt before it is rendered: a text (raw, a suffix, a request template), or
 * a chat of the system, the Modelfile MESSAGEs and the prompt, which truncation may shorten the
 * way it shortens a chat (Ollama's GenerateHandler sends that chat through chatPrompt).
 */
export function planGeneratePrompt(input: GeneratePromptInput): RenderedPrompt | { chat: ChatPromptInput } {
  const name = input.modelName ?? "this model";
  if (Array.isArray(input.images) && input.images.length > 0) throw noVision();
  if (input.raw === true) {
    if ((input.requestTemplate ?? "") !== "" || (input.system ?? "") !== "") {
      throw new OwlError("ERR_BAD_REQUEST", "raw mode does not support template, system, or context");
    }
    if ((input.suffix ?? "") !== "")
      throw new OwlError("ERR_BAD_REQUEST", "raw mode does not support suffix");
    return { prompt: input.prompt, source: "modelfile" };
  }
  const template =
    input.requestTemplate !== undefined && input.requestTemplate !== ""
      ? input.requestTemplate
      : input.template;
  if (input.suffix !== undefined && input.suffix !== "") {
    if (
      template === undefined ||
      template === "" ||
      !templateCapabilities(template, undefined).includes("insert")
    ) {
      throw new OwlError("ERR_UNSUPPORTED", `${name} does not support insert (its template has no .Suffix)`, {
        hint: "use a code model whose template fills in the middle, or leave out suffix",
      });
    }
    const prompt = executeOllamaTemplate(parseOllamaTemplate(template), {
      messages: [],
      prompt: input.prompt,
      suffix: input.suffix,
      ...(input.think === undefined ? {} : { think: input.think }),
      ...(input.now === undefined ? {} : { now: input.now }),
    });
    return { prompt, source: "modelfile" };
  }
  const system = input.system !== undefined && input.system !== "" ? input.system : input.modelSystem;
  const msgs: PromptMessage[] = [];
  if (system !== undefined && system !== "") msgs.push({ role: "system", content: system });
  for (const m of input.storedMessages ?? []) msgs.push({ role: m.role, content: m.content });
  msgs.push({ role: "user", content: input.prompt });
  const chat: ChatPromptInput = { messages: msgs };
  if (template !== undefined) chat.template = template;
  if (input.chatTemplate !== undefined) chat.chatTemplate = input.chatTemplate;
  if (input.bosToken !== undefined) chat.bosToken = input.bosToken;
  if (input.eosToken !== undefined) chat.eosToken = input.eosToken;
  if (input.think !== undefined) chat.think = input.think;
  if (input.now !== undefined) chat.now = input.now;
  // A request's own template is executed as is (Ollama: the direct template flow, no truncation).
  if (input.requestTemplate !== undefined && input.requestTemplate !== "") return renderChatPrompt(chat);
  return { chat };
}

// ---------------------------------------------------------------------------------------------
// Tokens and the context

type TokenizingModel = Pick<LoadedModel, "tokenize" | "detokenize" | "info">;

/** The text of the model's BOS token, or undefined. */
export function bosText(model: TokenizingModel): string | undefined {
  const bos = model.info.bosToken;
  return bos === undefined ? undefined : model.detokenize([bos]);
}

/**
 * Tokens of a rendered prompt: special tokens parsed; BOS added when the model adds one and the
 * text does not already start with the BOS text (llama.cpp's rule for templates that write it).
 */
export function promptTokens(model: TokenizingModel, text: string): number[] {
  const bos = bosText(model);
  const addBos = model.info.addBos && !(bos !== undefined && bos !== "" && text.startsWith(bos));
  return model.tokenize(text, { addBos, parseSpecial: true });
}

function overflow(tokens: number, numCtx: number, what: string): OwlError {
  return new OwlError(
    "ERR_CONTEXT_OVERFLOW",
    `${what} is ${tokens} tokens but the context holds ${numCtx} (num_ctx)`,
    {
      hint: 'shorten the input, raise num_ctx, or leave truncation on ("truncate": true, the default)',
      details: { promptTokens: tokens, numCtx },
    },
  );
}

export interface FittedPrompt extends RenderedPrompt {
  tokens: number[];
  /** Messages dropped from the front (truncation). */
  droppedMessages: number;
}

/**
 * Render and tokenize a chat prompt that fits numCtx. Without truncate, a longer prompt is
 * ERR_CONTEXT_OVERFLOW naming both numbers. With truncate, Ollama's chatPrompt (server/prompt.go):
 * drop messages from the front (every system message among them is kept) until the prompt fits,
 * always keeping the last message; if even that does not fit, the prompt of the system messages
 * and the last message, longer than numCtx: the caller cuts its tokens (truncatePromptTokens),
 * as Ollama's runner does.
 */
export function fitChatPrompt(
  model: TokenizingModel,
  input: ChatPromptInput,
  options: { numCtx: number; truncate: boolean },
): FittedPrompt {
  const msgs = assembleMessages(input);
  const { numCtx } = options;
  const full = renderAssembled(msgs, input);
  const fullTokens = promptTokens(model, full.prompt);
  if (fullTokens.length <= numCtx) return { ...full, tokens: fullTokens, droppedMessages: 0 };
  if (!options.truncate) throw overflow(fullTokens.length, numCtx, "the prompt");
  if (msgs.length <= 1) return { ...full, tokens: fullTokens, droppedMessages: 0 };
  // The prompt without the first i messages (the system messages among them kept).
  const attempt = (i: number) => {
    const kept = msgs.slice(0, i).filter((m) => m.role === "system");
    const r = renderAssembled([...kept, ...msgs.slice(i)], input);
    return { ...r, tokens: promptTokens(model, r.prompt), droppedMessages: i - kept.length };
  };
  // Ollama tries i = 1, 2, ... and takes the first that fits; the length only shrinks as i
  // grows, so a binary search finds the same i in log(n) renders instead of n.
  const tried = new Map<number, ReturnType<typeof attempt>>();
  const fits = (i: number): boolean => {
    const r = tried.get(i) ?? attempt(i);
    tried.set(i, r);
    return r.tokens.length <= numCtx;
  };
  const lastIndex = msgs.length - 1;
  if (!fits(lastIndex)) return tried.get(lastIndex)!;
  let lo = 1;
  let hi = lastIndex;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) hi = mid;
    else lo = mid + 1;
  }
  return tried.get(lo) ?? attempt(lo);
}

/**
 * Ollama's cut of a prompt longer than the context (llm/llama_server.go
 * completionPromptForRequest, when the request's truncate is on, Ollama's default): a prompt of
 * at most numCtx - 1 tokens (room for one answer token) is kept whole; a longer one keeps its
 * first `keep` tokens (num_keep, plus one for the BOS when the model adds one; -1: all; at most
 * numCtx - 1) and its last tokens, so that it has numCtx - max(floor((numCtx - keep) / 2), 1)
 * tokens in all: the old runners' first context shift, which leaves half of what is not kept
 * free for the answer. The middle goes. `discarded` is 0 when nothing was cut.
 */
export function truncatePromptTokens(
  tokens: readonly number[],
  options: { numCtx: number; numKeep: number; addsBos: boolean },
): { tokens: number[]; discarded: number; keep: number } {
  const { numCtx } = options;
  const limitWhole = numCtx - 1;
  if (numCtx <= 1 || tokens.length <= limitWhole) return { tokens: [...tokens], discarded: 0, keep: 0 };
  let keep = options.numKeep < 0 ? tokens.length : options.numKeep;
  if (options.addsBos) keep++;
  keep = Math.max(0, Math.min(keep, limitWhole));
  const limit = numCtx - Math.max(Math.floor((numCtx - keep) / 2), 1);
  const discarded = tokens.length - limit;
  return { tokens: [...tokens.slice(0, keep), ...tokens.slice(keep + discarded)], discarded, keep };
}

/** Tokenize a non-chat prompt and check it fits. */
export function fitPrompt(model: TokenizingModel, text: string, numCtx: number): number[] {
  const tokens = promptTokens(model, text);
  if (tokens.length > numCtx) throw overflow(tokens.length, numCtx, "the prompt");
  return tokens;
}
