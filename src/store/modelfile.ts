/**
 * Ollama's Modelfile: parser and printer (ollama parser/parser.go and docs/modelfile.md).
 *
 *   # comment                          (only where an instruction may start)
 *   FROM <gguf path | model name | sha256:digest>
 *   PARAMETER <name> <value>           typed by Ollama's option table; "stop" repeats and accumulates
 *   TEMPLATE <value>   SYSTEM <value>  the last one wins
 *   ADAPTER <gguf lora path>           repeatable
 *   LICENSE <value>                    repeatable
 *   MESSAGE <system|user|assistant> <value>
 *
 * Instructions are case-insensitive. A value runs to the end of its line and is trimmed, or is
 * quoted: "..." or """...""", which may span lines; as in Ollama, a quoted value ends at the first
 * line end where the text so far ends with its closing quotes, so inner quotes need no escaping.
 * REQUIRES, RENDERER and PARSER (Ollama-specific) are accepted and ignored; DRAFT is refused.
 * Errors are ERR_MODELFILE_PARSE naming line and column.
 * Not here: acting on a Modelfile (store.ts create).
 */
import { OwlError } from "../util/errors.ts";
import type { Modelfile, StoredMessage } from "./types.ts";

export type ParamValue = number | boolean | string | string[];
type ParamType = "int" | "float" | "bool" | "string[]";

/**
 * Ollama's options (api/types.go Options + Runner) with their types, plus the mirostat family that
 * docs/modelfile.md still lists.
 */
export const PARAMETER_TYPES: Readonly<Record<string, ParamType>> = {
  num_ctx: "int",
  num_batch: "int",
  num_gpu: "int",
  main_gpu: "int",
  num_thread: "int",
  num_keep: "int",
  seed: "int",
  num_predict: "int",
  top_k: "int",
  repeat_last_n: "int",
  draft_num_predict: "int",
  mirostat: "int",
  temperature: "float",
  top_p: "float",
  min_p: "float",
  typical_p: "float",
  repeat_penalty: "float",
  presence_penalty: "float",
  frequency_penalty: "float",
  mirostat_tau: "float",
  mirostat_eta: "float",
  use_mmap: "bool",
  numa: "bool",
  stop: "string[]",
  // Deprecated in Ollama (a warning, then dropped): validated, then dropped here too.
  penalize_newline: "bool",
  low_vram: "bool",
  f16_kv: "bool",
  logits_all: "bool",
  vocab_only: "bool",
  use_mlock: "bool",
};

const DROPPED_PARAMETERS = new Set([
  "penalize_newline",
  "low_vram",
  "f16_kv",
  "logits_all",
  "vocab_only",
  "use_mlock",
]);

const INT_RE = /^[+-]?\d+$/;
const FLOAT_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/**
 * The typed value of PARAMETER `name` `raw` (Go's strconv rules: ParseInt, ParseFloat, ParseBool),
 * or an error message. "stop" gives a one-element array (callers accumulate).
 */
export function parseParameterValue(name: string, raw: string): { value: ParamValue } | { error: string } {
  const type = PARAMETER_TYPES[name];
  if (type === undefined) {
    return {
      error: `unknown parameter "${name}"; known: ${Object.keys(PARAMETER_TYPES)
        .filter((k) => !DROPPED_PARAMETERS.has(k))
        .join(", ")}`,
    };
  }
  switch (type) {
    case "int": {
      const v = Number(raw);
      if (!INT_RE.test(raw) || !Number.isSafeInteger(v))
        return { error: `parameter ${name} must be an integer, found ${JSON.stringify(raw)}` };
      return { value: v };
    }
    case "float": {
      const v = Number(raw);
      if (!FLOAT_RE.test(raw) || !Number.isFinite(v))
        return { error: `parameter ${name} must be a number, found ${JSON.stringify(raw)}` };
      return { value: v };
    }
    case "bool":
      if (TRUE.has(raw)) return { value: true };
      if (FALSE.has(raw)) return { value: false };
      return { error: `parameter ${name} must be true or false, found ${JSON.stringify(raw)}` };
    case "string[]":
      return { value: [raw] };
  }
}

/** Whether a parameter is accepted but dropped (Ollama's deprecated options). */
export function isDroppedParameter(name: string): boolean {
  return DROPPED_PARAMETERS.has(name);
}

/**
 * Check already-typed parameters (JSON from /api/create or a params layer): names known, types
 * right; "stop" may be a string or string[] and comes back as string[]. Numbers given as strings
 * are parsed as a Modelfile would. ERR_INVALID_ARGUMENT names the offending key.
 */
export function normalizeParameters(input: Record<string, unknown>): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const [k, v] of Object.entries(input)) {
    const type = PARAMETER_TYPES[k];
    const fail = (msg: string) => new OwlError("ERR_INVALID_ARGUMENT", msg, { details: { parameter: k } });
    if (type === undefined) {
      const r = parseParameterValue(k, "");
      throw fail("error" in r ? r.error : `unknown parameter "${k}"`);
    }
    let value: ParamValue;
    if (type === "string[]") {
      const list = typeof v === "string" ? [v] : v;
      if (!Array.isArray(list) || !list.every((s) => typeof s === "string"))
        throw fail(`parameter ${k} must be a string or a list of strings`);
      value = [...list];
    } else if (typeof v === "string") {
      const r = parseParameterValue(k, v);
      if ("error" in r) throw fail(r.error);
      value = r.value;
    } else if (type === "bool") {
      if (typeof v !== "boolean")
        throw fail(`parameter ${k} must be true or false, found ${JSON.stringify(v)}`);
      value = v;
    } else {
      if (typeof v !== "number" || !Number.isFinite(v) || (type === "int" && !Number.isSafeInteger(v)))
        throw fail(
          `parameter ${k} must be ${type === "int" ? "an integer" : "a number"}, found ${JSON.stringify(v)}`,
        );
      value = v;
    }
    if (!DROPPED_PARAMETERS.has(k)) out[k] = value;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parser

const COMMANDS = [
  "from",
  "parameter",
  "template",
  "system",
  "adapter",
  "license",
  "message",
  "requires",
  "renderer",
  "parser",
  "draft",
] as const;
const ROLES = ["system", "user", "assistant"] as const;

function parseError(line: number, col: number, msg: string): OwlError {
  return new OwlError("ERR_MODELFILE_PARSE", `Modelfile line ${line}, column ${col}: ${msg}`, {
    details: { line, column: col },
  });
}

class Cursor {
  pos = 0;
  line = 1;
  col = 1;
  constructor(readonly s: string) {}
  peek(): string | undefined {
    return this.s[this.pos];
  }
  next(): string {
    const c = this.s[this.pos++]!;
    if (c === "\n") {
      this.line++;
      this.col = 1;
    } else {
      this.col++;
    }
    return c;
  }
  eof(): boolean {
    return this.pos >= this.s.length;
  }
  skipSpaces(): void {
    while (this.peek() === " " || this.peek() === "\t") this.next();
  }
  /** The characters up to (not including) the next newline or the end. */
  restOfLine(): string {
    let out = "";
    while (!this.eof() && this.peek() !== "\n") out += this.next();
    return out;
  }
  word(re: RegExp): string {
    let out = "";
    while (!this.eof() && re.test(this.peek()!)) out += this.next();
    return out;
  }
}

/**
 * A value after an instruction: the rest of the line trimmed, or a quoted value that ends at the
 * first line end where the text so far (trimmed) ends with its closing quotes.
 */
function readValue(c: Cursor, what: string): string {
  c.skipSpaces();
  const line = c.line;
  const col = c.col;
  const first = c.restOfLine();
  const quote = first.startsWith('"""') ? '"""' : first.startsWith('"') ? '"' : "";
  if (quote === "") return first.trim();
  let text = first;
  for (;;) {
    const t = text.trimEnd();
    if (t.length >= quote.length * 2 && t.endsWith(quote))
      return t.slice(quote.length, t.length - quote.length);
    if (c.eof()) {
      throw parseError(
        line,
        col,
        `${what}: the ${quote} opened here is never closed (a value ends with ${quote} at the end of a line)`,
      );
    }
    text += c.next(); // the newline
    text += c.restOfLine();
  }
}

/** Parse Modelfile text. ERR_MODELFILE_PARSE names the line and column of the first problem. */
export function parseModelfile(text: string): Modelfile {
  // NOTE: Ollama strips a UTF-8 BOM and treats "\r" as a line end; CRLF files are common.
  const src = text.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
  const c = new Cursor(src);
  let from: string | undefined;
  let fromLine = 0;
  const mf: Modelfile = { from: "", params: {}, adapters: [], license: [], messages: [] };
  for (;;) {
    // Between instructions: blank space, newlines and comments.
    while (!c.eof()) {
      const ch = c.peek();
      if (ch === " " || ch === "\t" || ch === "\n") c.next();
      else if (ch === "#") c.restOfLine();
      else break;
    }
    if (c.eof()) break;
    const line = c.line;
    const col = c.col;
    const word = c.word(/[A-Za-z]/);
    const cmd = word.toLowerCase();
    if (word === "" || !(COMMANDS as readonly string[]).includes(cmd)) {
      const found =
        word === "" ? JSON.stringify(c.peek()) : JSON.stringify(word + (c.peek() ?? "").replace(/[\s]/, ""));
      throw parseError(
        line,
        col,
        `expected an instruction (FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE) or a # comment, found ${found}`,
      );
    }
    const after = c.peek();
    if (after !== " " && after !== "\t") {
      throw parseError(c.line, c.col, `${word.toUpperCase()} must be followed by a space and a value`);
    }
    switch (cmd) {
      case "from": {
        const v = readValue(c, "FROM");
        if (v === "") throw parseError(line, col, "FROM needs a GGUF file, a model name or a sha256 digest");
        if (from !== undefined) {
          throw parseError(
            line,
            col,
            `a second FROM (the first is on line ${fromLine}); owl takes one model per Modelfile`,
          );
        }
        from = v;
        fromLine = line;
        break;
      }
      case "parameter": {
        c.skipSpaces();
        const nameCol = c.col;
        const name = c.word(/[A-Za-z0-9_]/);
        if (name === "" || (c.peek() !== " " && c.peek() !== "\t")) {
          throw parseError(
            c.line,
            c.col,
            "PARAMETER must be followed by a name (letters, digits, _), a space and a value",
          );
        }
        c.skipSpaces();
        const valueCol = c.col;
        const raw = readValue(c, `PARAMETER ${name}`);
        const key = name.toLowerCase();
        const r = parseParameterValue(key, raw);
        if ("error" in r)
          throw parseError(line, PARAMETER_TYPES[key] === undefined ? nameCol : valueCol, r.error);
        if (isDroppedParameter(key)) break;
        const prev = mf.params[key];
        mf.params[key] = Array.isArray(r.value) && Array.isArray(prev) ? [...prev, ...r.value] : r.value;
        break;
      }
      case "template":
        mf.template = readValue(c, "TEMPLATE");
        break;
      case "system":
        mf.system = readValue(c, "SYSTEM");
        break;
      case "adapter": {
        const v = readValue(c, "ADAPTER");
        if (v === "") throw parseError(line, col, "ADAPTER needs the path of a GGUF LoRA adapter");
        mf.adapters.push(v);
        break;
      }
      case "license":
        mf.license.push(readValue(c, "LICENSE"));
        break;
      case "message": {
        c.skipSpaces();
        const roleCol = c.col;
        const role = c.word(/[A-Za-z]/);
        if (!(ROLES as readonly string[]).includes(role) || (c.peek() !== " " && c.peek() !== "\t")) {
          throw parseError(
            c.line,
            roleCol,
            `MESSAGE role must be one of "system", "user" or "assistant" followed by a space and the content, found ${JSON.stringify(role + (c.peek() ?? ""))}`,
          );
        }
        const content = readValue(c, `MESSAGE ${role}`);
        mf.messages.push({ role: role as StoredMessage["role"], content });
        break;
      }
      case "draft":
        throw parseError(line, col, "DRAFT (a speculative-decoding draft model) is not supported by owl");
      default:
        // requires / renderer / parser: Ollama-specific hints with no meaning for owl.
        readValue(c, word.toUpperCase());
    }
  }
  if (from === undefined) {
    throw new OwlError(
      "ERR_MODELFILE_PARSE",
      "the Modelfile has no FROM line (FROM <model.gguf | model name>)",
      {
        hint: 'start the Modelfile with "FROM ./model.gguf" or "FROM <stored model name>"',
      },
    );
  }
  mf.from = from;
  return mf;
}

// ---------------------------------------------------------------------------------------------
// Printer

/**
 * A value as the parser reads it back: bare when that is unambiguous, else "..." or """..."""
 * (""" preferred for multi-line text, as Ollama prints templates).
 * NOTE: a quoted value ends at the first line end where the text so far ends with its quotes, so a
 * value with an inner line ending in both " and """ cannot be written in Modelfile syntax at all
 * (Ollama has no escapes); it is printed with """ and reads back shortened. Real templates and
 * prompts practically never contain one.
 */
export function quoteValue(v: string): string {
  if (v !== "" && !v.includes("\n") && v.trim() === v && !v.startsWith('"')) return v;
  const earlierLines = v.split("\n").slice(0, -1);
  const fits = (q: string) =>
    !earlierLines.some((l) => l.trimEnd().endsWith(q)) && (q === '"""' || !`"${v}"`.startsWith('"""'));
  const order = v.includes("\n") ? ['"""', '"'] : ['"', '"""'];
  const q = order.find(fits) ?? '"""';
  return `${q}${v}${q}`;
}

function formatParam(v: number | boolean | string): string {
  return typeof v === "string" ? quoteValue(v) : String(v);
}

/**
 * Modelfile text for `mf`, in Ollama's order: FROM, ADAPTER, TEMPLATE, SYSTEM, PARAMETER,
 * LICENSE, MESSAGE. parseModelfile(printModelfile(x)) equals x.
 */
export function printModelfile(mf: Modelfile): string {
  const lines: string[] = [`FROM ${quoteValue(mf.from)}`];
  for (const a of mf.adapters) lines.push(`ADAPTER ${quoteValue(a)}`);
  if (mf.template !== undefined) lines.push(`TEMPLATE ${quoteValue(mf.template)}`);
  if (mf.system !== undefined) lines.push(`SYSTEM ${quoteValue(mf.system)}`);
  for (const [k, v] of Object.entries(mf.params)) {
    if (Array.isArray(v)) for (const s of v) lines.push(`PARAMETER ${k} ${formatParam(s)}`);
    else lines.push(`PARAMETER ${k} ${formatParam(v)}`);
  }
  for (const l of mf.license) lines.push(`LICENSE ${quoteValue(l)}`);
  for (const m of mf.messages) lines.push(`MESSAGE ${m.role} ${quoteValue(m.content)}`);
  return `${lines.join("\n")}\n`;
}
