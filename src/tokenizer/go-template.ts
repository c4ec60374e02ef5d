/**
 * Go text/template, the language of Ollama's Modelfile TEMPLATE: a parser to a small syntax tree
 * and an interpreter over plain JS data. Covers what Ollama's library templates use and the rest
 * of the language that is cheap: text and {{ actions }} with {{- -}} trimming and {{/* comments
 * *\/}}; pipelines with | and parenthesized sub-pipelines; fields (.A.B), variables ($, $x, $x.A,
 * := and =); if / else if / else, with / else with, range (slices, maps in sorted key order,
 * integers) with break and continue, define / template / block; the builtin functions (and, or,
 * not, eq, ne, lt, le, gt, ge, len, index, slice, print, printf, println, html, js, urlquery,
 * call) plus Ollama's (json, currentDate, yesterdayDate, toTypeScriptType).
 * Not here: what data Ollama passes to a template (runtime/prompt.ts).
 *
 * Data model, mirroring Go values: string, number, boolean; null/undefined = nil (a missing key
 * too: Ollama parses with missingkey=zero, and a missing map[string]any entry prints
 * "<no value>"; a field of nil is an error, as in Go); arrays = slices; Map = a Go map (ranged
 * and printed in sorted key order, json with sorted keys); a plain object = a struct (fields in
 * insertion order, always true) whose missing fields read as nil; a function-valued field = a
 * method, called with the command's arguments. An object with a [GO_STRING] method prints
 * through it, as a Go value with a String() method does, and one with [GO_JSON] marshals
 * through it (Ollama's tools and tool-call arguments print as JSON that way).
 *
 * Truthiness is Go's: false, 0, "", nil and empty slices/maps are false, structs are true.
 * Checked against Go 1.19's text/template (test/fixtures/go-template: 50 language cases, and
 * Ollama library templates over Ollama's data). The differences found:
 * NOTE: JS has one number type: integers print as integers, others as Go's %v of a float64, so a
 * float64 like 1e6 that Go would print "1e+06" prints "1000000" here, and comparing an int with a
 * float (lt 1 2.5), an error in Go, works; printf's verbs do not reach into maps and slices (%s of
 * map[a:1] is "map[a:1]", Go's "map[a:%!s(float64=1)]").
 * Execution is bounded: nested template calls and total steps are capped (ERR_TEMPLATE_RENDER).
 */
import { OwlError } from "../util/errors.ts";

/** A value with this method prints through it (Go's fmt.Stringer). */
export const GO_STRING: unique symbol = Symbol("go.String");

/** A value with this method marshals to JSON through it (Go's json.Marshaler). */
export const GO_JSON: unique symbol = Symbol("go.MarshalJSON");

/** Attach a MarshalJSON() method (non-enumerable) to a value: `format` returns its JSON text. */
export function withGoJson<T extends object>(value: T, format: (v: T) => string): T {
  Object.defineProperty(value, GO_JSON, { value: () => format(value), enumerable: false });
  return value;
}

/** Attach a String() method (non-enumerable, invisible to json and range) to a value. */
export function withGoString<T extends object>(value: T, format: (v: T) => string): T {
  Object.defineProperty(value, GO_STRING, { value: () => format(value), enumerable: false });
  return value;
}

// ---------------------------------------------------------------------------------------------
// Syntax tree

export interface Pos {
  line: number;
  col: number;
}

export type Arg =
  | { kind: "field"; ident: string[] }
  | { kind: "variable"; ident: string[] }
  | { kind: "dot" }
  | { kind: "nil" }
  | { kind: "bool"; value: boolean }
  | { kind: "number"; value: number }
  | { kind: "string"; value: string }
  | { kind: "identifier"; name: string }
  | { kind: "pipe"; pipe: Pipe }
  | { kind: "chain"; node: Arg; ident: string[] };

export interface Command {
  args: Arg[];
  pos: Pos;
}

export interface Pipe {
  /** Declared or assigned variables ($x := / $i, $e := / $x =). */
  decl: string[];
  isAssign: boolean;
  cmds: Command[];
  pos: Pos;
}

export interface ControlNode {
  kind: "if" | "with" | "range";
  pipe: Pipe;
  list: Node[];
  elseList: Node[] | undefined;
  pos: Pos;
}

export type Node =
  | { kind: "text"; text: string }
  | { kind: "action"; pipe: Pipe; pos: Pos }
  | ControlNode
  | { kind: "break" | "continue"; pos: Pos }
  | { kind: "template"; name: string; pipe: Pipe | undefined; pos: Pos };

export interface GoTemplate {
  /** The template source. */
  source: string;
  root: Node[];
  /** {{define}} and {{block}} templates by name. */
  defines: Map<string, Node[]>;
}

// ---------------------------------------------------------------------------------------------
// Lexer

type TokKind =
  | "text"
  | "left"
  | "right"
  | "field"
  | "variable"
  | "dot"
  | "identifier"
  | "string"
  | "number"
  | "char"
  | "lparen"
  | "rparen"
  | "pipe"
  | "declare"
  | "assign"
  | "comma"
  | "space";

interface Tok {
  kind: TokKind;
  text: string;
  /** Decoded value of string/char/number tokens. */
  value?: string | number;
  offset: number;
}

const SPACE = new Set([" ", "\t", "\r", "\n"]);

function positionOf(src: string, offset: number): Pos {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset && i < src.length; i++) {
    if (src[i] === "\n") {
      line++;
      col = 1;
    } else col++;
  }
  return { line, col };
}

function parseError(src: string, offset: number, message: string): OwlError {
  const p = positionOf(src, offset);
  return new OwlError("ERR_TEMPLATE_PARSE", `template: ${p.line}:${p.col}: ${message}`, {
    details: { line: p.line, col: p.col, offset },
  });
}

function trimRightSpace(s: string): string {
  let e = s.length;
  while (e > 0 && SPACE.has(s[e - 1]!)) e--;
  return s.slice(0, e);
}

function trimLeftSpace(s: string): string {
  let b = 0;
  while (b < s.length && SPACE.has(s[b]!)) b++;
  return s.slice(b);
}

function decodeGoString(src: string, start: number, raw: string): string {
  // raw includes the quotes
  const body = raw.slice(1, -1);
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const n = body[++i];
    switch (n) {
      case "n":
        out += "\n";
        break;
      case "t":
        out += "\t";
        break;
      case "r":
        out += "\r";
        break;
      case "a":
        out += "\x07";
        break;
      case "b":
        out += "\b";
        break;
      case "f":
        out += "\f";
        break;
      case "v":
        out += "\v";
        break;
      case "\\":
        out += "\\";
        break;
      case '"':
        out += '"';
        break;
      case "'":
        out += "'";
        break;
      case "x": {
        const h = body.slice(i + 1, i + 3);
        if (!/^[0-9a-fA-F]{2}$/.test(h)) throw parseError(src, start, `invalid escape \\x${h} in ${raw}`);
        out += String.fromCharCode(Number.parseInt(h, 16));
        i += 2;
        break;
      }
      case "u":
      case "U": {
        const len = n === "u" ? 4 : 8;
        const h = body.slice(i + 1, i + 1 + len);
        if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(h)) {
          throw parseError(src, start, `invalid escape \\${n}${h} in ${raw}`);
        }
        const cp = Number.parseInt(h, 16);
        if (cp > 0x10ffff) throw parseError(src, start, `invalid escape \\${n}${h} in ${raw}`);
        out += String.fromCodePoint(cp);
        i += len;
        break;
      }
      default:
        if (n !== undefined && n >= "0" && n <= "7") {
          const o = body.slice(i, i + 3);
          if (!/^[0-7]{3}$/.test(o)) throw parseError(src, start, `invalid escape \\${o} in ${raw}`);
          out += String.fromCharCode(Number.parseInt(o, 8));
          i += 2;
          break;
        }
        throw parseError(src, start, `invalid escape \\${n ?? ""} in ${raw}`);
    }
  }
  return out;
}

function parseGoNumber(text: string): number | undefined {
  const t = text.replaceAll("_", "");
  if (/^[+-]?0[xX][0-9a-fA-F]+$/.test(t)) return Number.parseInt(t, 16);
  if (/^[+-]?0[oO]?[0-7]+$/.test(t) && /^[+-]?0/.test(t) && t.replace(/^[+-]/, "").length > 1) {
    return Number.parseInt(t.replace(/0[oO]?/, ""), 8);
  }
  if (/^[+-]?0[bB][01]+$/.test(t)) {
    const neg = t.startsWith("-");
    const v = Number.parseInt(t.replace(/^[+-]?0[bB]/, ""), 2);
    return neg ? -v : v;
  }
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return Number(t);
  return undefined;
}

/** Split a template into text and action tokens, applying {{- -}} trimming and dropping comments. */
function lex(src: string): Tok[] {
  const toks: Tok[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos < src.length) {
    const open = src.indexOf("{{", pos);
    let text = open === -1 ? src.slice(pos) : src.slice(pos, open);
    if (trimNext) text = trimLeftSpace(text);
    trimNext = false;
    if (open === -1) {
      if (text !== "") toks.push({ kind: "text", text, offset: pos });
      break;
    }
    let p = open + 2;
    // "{{- " trims the text before: the dash must be followed by a space.
    if (src[p] === "-" && SPACE.has(src[p + 1] ?? "")) {
      text = trimRightSpace(text);
      p += 2;
    }
    if (text !== "") toks.push({ kind: "text", text, offset: pos });
    // A comment: {{/* ... */}} (with optional trim markers).
    let q = p;
    while (SPACE.has(src[q] ?? "") && q > open + 2) q++;
    if (src.startsWith("/*", q) && (q === open + 2 || src[open + 2] === "-")) {
      const end = src.indexOf("*/", q + 2);
      if (end === -1) throw parseError(src, open, "unclosed comment");
      let r = end + 2;
      if (src.startsWith(" -}}", r) || src.startsWith("\t-}}", r) || src.startsWith("\n-}}", r)) {
        trimNext = true;
        r += 4;
      } else if (src.startsWith("}}", r)) r += 2;
      else throw parseError(src, end, "comment ends before closing delimiter");
      pos = r;
      continue;
    }
    toks.push({ kind: "left", text: "{{", offset: open });
    p = lexAction(src, p, toks);
    // lexAction returns the offset after "}}"; a trim marker was recorded on the right token.
    const right = toks[toks.length - 1]!;
    if (right.text === "-}}") trimNext = true;
    pos = p;
  }
  return toks;
}

function lexAction(src: string, start: number, toks: Tok[]): number {
  let p = start;
  let parens = 0;
  for (;;) {
    if (p >= src.length) throw parseError(src, start - 2, "unclosed action");
    const c = src[p]!;
    if (SPACE.has(c)) {
      let q = p;
      while (q < src.length && SPACE.has(src[q]!)) q++;
      // " -}}": a trim marker.
      if (src.startsWith("-}}", q)) {
        toks.push({ kind: "right", text: "-}}", offset: q });
        return q + 3;
      }
      toks.push({ kind: "space", text: src.slice(p, q), offset: p });
      p = q;
      continue;
    }
    if (src.startsWith("}}", p)) {
      if (parens > 0) throw parseError(src, p, "unclosed left paren");
      toks.push({ kind: "right", text: "}}", offset: p });
      return p + 2;
    }
    if (c === "(") {
      parens++;
      toks.push({ kind: "lparen", text: c, offset: p++ });
      continue;
    }
    if (c === ")") {
      parens--;
      if (parens < 0) throw parseError(src, p, "unexpected right paren");
      toks.push({ kind: "rparen", text: c, offset: p++ });
      continue;
    }
    if (c === "|") {
      toks.push({ kind: "pipe", text: c, offset: p++ });
      continue;
    }
    if (c === ",") {
      toks.push({ kind: "comma", text: c, offset: p++ });
      continue;
    }
    if (src.startsWith(":=", p)) {
      toks.push({ kind: "declare", text: ":=", offset: p });
      p += 2;
      continue;
    }
    if (c === "=") {
      toks.push({ kind: "assign", text: "=", offset: p++ });
      continue;
    }
    if (c === '"') {
      let q = p + 1;
      while (q < src.length && src[q] !== '"') {
        if (src[q] === "\\") q++;
        if (src[q] === "\n") throw parseError(src, p, "unterminated quoted string");
        q++;
      }
      if (q >= src.length) throw parseError(src, p, "unterminated quoted string");
      const raw = src.slice(p, q + 1);
      toks.push({ kind: "string", text: raw, value: decodeGoString(src, p, raw), offset: p });
      p = q + 1;
      continue;
    }
    if (c === "`") {
      const q = src.indexOf("`", p + 1);
      if (q === -1) throw parseError(src, p, "unterminated raw quoted string");
      toks.push({ kind: "string", text: src.slice(p, q + 1), value: src.slice(p + 1, q), offset: p });
      p = q + 1;
      continue;
    }
    if (c === "'") {
      const m = /^'(\\.[^']*|[^'\\])'/su.exec(src.slice(p));
      if (m === null) throw parseError(src, p, "unterminated character constant");
      const s = m[1]!.startsWith("\\") ? decodeGoString(src, p, `"${m[1]!}"`) : m[1]!;
      toks.push({ kind: "char", text: m[0], value: s.codePointAt(0) ?? 0, offset: p });
      p += m[0].length;
      continue;
    }
    if (c === "$") {
      const m = /^\$[\p{L}_0-9]*/u.exec(src.slice(p))!;
      toks.push({ kind: "variable", text: m[0], offset: p });
      p += m[0].length;
      continue;
    }
    if (c === ".") {
      const m = /^\.[\p{L}_][\p{L}_0-9]*/u.exec(src.slice(p));
      if (m !== null) {
        toks.push({ kind: "field", text: m[0].slice(1), offset: p });
        p += m[0].length;
        continue;
      }
      if (!/[0-9]/.test(src[p + 1] ?? "")) {
        toks.push({ kind: "dot", text: ".", offset: p++ });
        continue;
      }
    }
    if (/[0-9+\-.]/.test(c)) {
      const m =
        /^[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?)/.exec(
          src.slice(p),
        );
      const value = m === null ? undefined : parseGoNumber(m[0]);
      if (m === null || value === undefined)
        throw parseError(src, p, `bad number syntax: ${src.slice(p, p + 10)}`);
      toks.push({ kind: "number", text: m[0], value, offset: p });
      p += m[0].length;
      continue;
    }
    const id = /^[\p{L}_][\p{L}_0-9]*/u.exec(src.slice(p));
    if (id !== null) {
      toks.push({ kind: "identifier", text: id[0], offset: p });
      p += id[0].length;
      continue;
    }
    throw parseError(src, p, `unrecognized character in action: ${JSON.stringify(c)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Parser

/** Functions a template may call; parse fails on any other name, as Go's does. */
export const GO_TEMPLATE_FUNCTIONS: ReadonlySet<string> = new Set([
  "and",
  "or",
  "not",
  "eq",
  "ne",
  "lt",
  "le",
  "gt",
  "ge",
  "len",
  "index",
  "slice",
  "print",
  "printf",
  "println",
  "html",
  "js",
  "urlquery",
  "call",
  "json",
  "currentDate",
  "yesterdayDate",
  "toTypeScriptType",
]);

type EndKind = "end" | "else" | "eof";

class Parser {
  private i = 0;
  private readonly vars: string[][] = [["$"]];
  readonly defines = new Map<string, Node[]>();
  private rangeDepth = 0;

  constructor(
    private readonly src: string,
    private readonly toks: Tok[],
  ) {}

  private err(offset: number, message: string): OwlError {
    return parseError(this.src, offset, message);
  }

  private peek(): Tok | undefined {
    return this.toks[this.i];
  }

  /** The next non-space token of an action. */
  private peekNonSpace(): Tok | undefined {
    let j = this.i;
    while (this.toks[j]?.kind === "space") j++;
    return this.toks[j];
  }

  private next(): Tok {
    const t = this.toks[this.i++];
    if (t === undefined) throw this.err(this.src.length, "unexpected EOF");
    return t;
  }

  private nextNonSpace(): Tok {
    let t = this.next();
    while (t.kind === "space") t = this.next();
    return t;
  }

  private lineStarts: number[] | undefined;

  private pos(offset: number): Pos {
    if (this.lineStarts === undefined) {
      this.lineStarts = [0];
      for (let i = 0; i < this.src.length; i++) if (this.src[i] === "\n") this.lineStarts.push(i + 1);
    }
    const ls = this.lineStarts;
    let lo = 0;
    let hi = ls.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (ls[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - ls[lo]! + 1 };
  }

  parseTemplate(): Node[] {
    const { nodes, end } = this.parseList();
    if (end.kind !== "eof") throw this.err(end.offset, `unexpected {{${end.kind}}}`);
    return nodes;
  }

  /** Nodes up to {{end}}, {{else ...}} or the end of input. */
  private parseList(): { nodes: Node[]; end: { kind: EndKind; offset: number } } {
    const nodes: Node[] = [];
    for (;;) {
      const t = this.peek();
      if (t === undefined) return { nodes, end: { kind: "eof", offset: this.src.length } };
      if (t.kind === "text") {
        this.i++;
        nodes.push({ kind: "text", text: t.text });
        continue;
      }
      if (t.kind !== "left") throw this.err(t.offset, `unexpected ${t.text}`);
      this.i++;
      const first = this.peekNonSpace();
      if (first === undefined) throw this.err(t.offset, "unclosed action");
      if (first.kind === "identifier") {
        switch (first.text) {
          case "end":
            this.nextNonSpace();
            this.expectRight("end");
            return { nodes, end: { kind: "end", offset: first.offset } };
          case "else":
            this.nextNonSpace();
            return { nodes, end: { kind: "else", offset: first.offset } };
          case "if":
          case "with":
          case "range":
            this.nextNonSpace();
            nodes.push(this.parseControl(first.text, first.offset));
            continue;
          case "break":
          case "continue":
            this.nextNonSpace();
            if (this.rangeDepth === 0) throw this.err(first.offset, `{{${first.text}}} outside {{range}}`);
            this.expectRight(first.text);
            nodes.push({ kind: first.text, pos: this.pos(first.offset) });
            continue;
          case "define":
            this.nextNonSpace();
            this.parseDefine(first.offset);
            continue;
          case "template":
          case "block":
            this.nextNonSpace();
            nodes.push(this.parseTemplateCall(first.text, first.offset));
            continue;
        }
      }
      const pipe = this.parsePipeline("command", true);
      nodes.push({ kind: "action", pipe, pos: pipe.pos });
    }
  }

  private expectRight(context: string): void {
    const t = this.nextNonSpace();
    if (t.kind !== "right") throw this.err(t.offset, `unexpected ${JSON.stringify(t.text)} in ${context}`);
  }

  private parseControl(kind: "if" | "with" | "range", offset: number): Node {
    // One scope for the whole control: the pipeline's variables are seen by both branches.
    this.vars.push([]);
    try {
      const pipe = this.parsePipeline(kind, true);
      if (kind === "range") this.rangeDepth++;
      const body = this.parseList();
      if (kind === "range") this.rangeDepth--;
      if (body.end.kind === "eof")
        throw this.err(this.src.length, `unexpected EOF: {{${kind}}} has no {{end}}`);
      let elseList: Node[] | undefined;
      if (body.end.kind === "else") {
        const after = this.peekNonSpace();
        // {{else if ...}} in an if, {{else with ...}} in a with: an else branch holding one nested
        // control that shares the {{end}}.
        if (after?.kind === "identifier" && after.text === kind && kind !== "range") {
          this.nextNonSpace();
          elseList = [this.parseControl(kind, after.offset)];
        } else {
          this.expectRight("else");
          const e = this.parseList();
          if (e.end.kind !== "end")
            throw this.err(e.end.offset, `expected {{end}} after {{else}} of {{${kind}}}`);
          elseList = e.nodes;
        }
      }
      return { kind, pipe, list: body.nodes, elseList, pos: this.pos(offset) };
    } finally {
      this.vars.pop();
    }
  }

  private parseDefine(offset: number): void {
    const name = this.nextNonSpace();
    if (name.kind !== "string") throw this.err(name.offset, "define needs a quoted template name");
    this.expectRight("define");
    const saved = this.vars.splice(0);
    this.vars.push(["$"]);
    const body = this.parseList();
    this.vars.splice(0, this.vars.length, ...saved);
    if (body.end.kind !== "end") throw this.err(offset, "{{define}} has no {{end}}");
    this.defines.set(String(name.value), body.nodes);
  }

  private parseTemplateCall(kind: "template" | "block", offset: number): Node {
    const name = this.nextNonSpace();
    if (name.kind !== "string") throw this.err(name.offset, `${kind} needs a quoted template name`);
    let pipe: Pipe | undefined;
    if (this.peekNonSpace()?.kind !== "right") pipe = this.parsePipeline(kind, false);
    else this.expectRight(kind);
    if (kind === "block") {
      const saved = this.vars.splice(0);
      this.vars.push(["$"]);
      const body = this.parseList();
      this.vars.splice(0, this.vars.length, ...saved);
      if (body.end.kind !== "end") throw this.err(offset, "{{block}} has no {{end}}");
      this.defines.set(String(name.value), body.nodes);
    }
    return { kind: "template", name: String(name.value), pipe, pos: this.pos(offset) };
  }

  private hasVar(name: string): boolean {
    return this.vars.some((scope) => scope.includes(name));
  }

  /** A pipeline up to the closing "}}" (or ")" when inside parentheses). */
  private parsePipeline(context: string, allowDecl: boolean, inParens = false): Pipe {
    const startTok = this.peekNonSpace();
    const start = startTok?.offset ?? this.src.length;
    const pipe: Pipe = { decl: [], isAssign: false, cmds: [], pos: this.pos(start) };
    // Declarations: $x := / $x = / $i, $e := (range only).
    if (allowDecl && startTok?.kind === "variable") {
      const save = this.i;
      const v1 = this.nextNonSpace();
      const op = this.nextNonSpace();
      if (op.kind === "declare" || op.kind === "assign") {
        pipe.decl.push(v1.text);
        pipe.isAssign = op.kind === "assign";
      } else if (op.kind === "comma" && context === "range") {
        const v2 = this.nextNonSpace();
        const op2 = this.nextNonSpace();
        if (v2.kind !== "variable" || (op2.kind !== "declare" && op2.kind !== "assign")) {
          throw this.err(v2.offset, "range can only initialize variables: expected $i, $e :=");
        }
        pipe.decl.push(v1.text, v2.text);
        pipe.isAssign = op2.kind === "assign";
      } else this.i = save;
      if (pipe.decl.length > 0) {
        if (pipe.isAssign) {
          for (const v of pipe.decl)
            if (!this.hasVar(v)) throw this.err(v1.offset, `undefined variable "${v}"`);
        }
      }
    }
    for (;;) {
      const t = this.peekNonSpace();
      if (t === undefined) throw this.err(start, "unclosed action");
      if (t.kind === "right") {
        if (inParens) throw this.err(t.offset, "unclosed left paren");
        this.nextNonSpace();
        break;
      }
      if (t.kind === "rparen") {
        if (!inParens) throw this.err(t.offset, "unexpected right paren");
        this.nextNonSpace();
        break;
      }
      const cmd = this.parseCommand();
      pipe.cmds.push(cmd);
      const after = this.peekNonSpace();
      if (after?.kind === "pipe") {
        this.nextNonSpace();
        const n = this.peekNonSpace();
        if (n?.kind === "right" || n?.kind === "rparen") throw this.err(n.offset, "missing command after |");
      }
    }
    if (pipe.cmds.length === 0) throw this.err(start, `missing value for ${context}`);
    // Declared variables come into scope after the pipeline.
    if (!pipe.isAssign) for (const v of pipe.decl) this.vars[this.vars.length - 1]!.push(v);
    for (let c = 1; c < pipe.cmds.length; c++) {
      const a0 = pipe.cmds[c]!.args[0]!;
      if (a0.kind !== "identifier" && a0.kind !== "field" && a0.kind !== "chain" && a0.kind !== "variable") {
        throw this.err(start, `non executable command in pipeline stage ${c + 1}`);
      }
    }
    return pipe;
  }

  private parseCommand(): Command {
    const first = this.peekNonSpace()!;
    const cmd: Command = { args: [], pos: this.pos(first.offset) };
    for (;;) {
      const t = this.peekNonSpace();
      if (t === undefined || t.kind === "right" || t.kind === "rparen" || t.kind === "pipe") break;
      if (cmd.args.length > 0 && this.peek()?.kind !== "space") {
        throw this.err(t.offset, `missing space before ${JSON.stringify(t.text)}`);
      }
      cmd.args.push(this.parseOperand());
    }
    if (cmd.args.length === 0) throw this.err(first.offset, "empty command");
    return cmd;
  }

  private parseOperand(): Arg {
    const t = this.nextNonSpace();
    let arg: Arg;
    switch (t.kind) {
      case "field": {
        const ident = [t.text];
        while (this.peek()?.kind === "field") ident.push(this.next().text);
        return { kind: "field", ident };
      }
      case "variable": {
        if (!this.hasVar(t.text)) throw this.err(t.offset, `undefined variable "${t.text}"`);
        const ident = [t.text];
        while (this.peek()?.kind === "field") ident.push(this.next().text);
        return { kind: "variable", ident };
      }
      case "dot":
        arg = { kind: "dot" };
        break;
      case "string":
        arg = { kind: "string", value: String(t.value) };
        break;
      case "number":
      case "char":
        arg = { kind: "number", value: Number(t.value) };
        break;
      case "identifier":
        if (t.text === "true" || t.text === "false") arg = { kind: "bool", value: t.text === "true" };
        else if (t.text === "nil") arg = { kind: "nil" };
        else if (GO_TEMPLATE_FUNCTIONS.has(t.text)) arg = { kind: "identifier", name: t.text };
        else throw this.err(t.offset, `function "${t.text}" not defined`);
        break;
      case "lparen":
        arg = { kind: "pipe", pipe: this.parsePipeline("parenthesized pipeline", false, true) };
        break;
      default:
        throw this.err(t.offset, `unexpected ${JSON.stringify(t.text)} in command`);
    }
    if (this.peek()?.kind === "field") {
      if (arg.kind !== "pipe" && arg.kind !== "dot") {
        throw this.err(this.peek()!.offset, `unexpected . after term ${JSON.stringify(t.text)}`);
      }
      const ident: string[] = [];
      while (this.peek()?.kind === "field") ident.push(this.next().text);
      return { kind: "chain", node: arg, ident };
    }
    return arg;
  }
}

/** Parse a Go text/template. ERR_TEMPLATE_PARSE with the line and column of the problem. */
export function parseGoTemplate(source: string): GoTemplate {
  const parser = new Parser(source, lex(source));
  const root = parser.parseTemplate();
  return { source, root, defines: parser.defines };
}

// ---------------------------------------------------------------------------------------------
// Values

/** Go's truth: false, 0, "", nil and empty slices/maps are false; structs are true. */
export function goTruth(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  if (typeof v === "number") return v !== 0;
  if (typeof v === "string") return v !== "";
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  return true;
}

/** Go's %v of a float64 (strconv 'g', shortest; exponent form below 1e-4 and from 1e21). */
function goFloat(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "+Inf" : "-Inf";
  if (Number.isInteger(x) && Math.abs(x) < 1e21) return String(x);
  const exp = x === 0 ? 0 : Math.floor(Math.log10(Math.abs(x)));
  if (exp < -4 || exp >= 21) {
    const [m, e] = x.toExponential().split("e") as [string, string];
    const n = Number(e);
    return `${m}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
  }
  return String(x);
}

function sortedKeys(v: Map<unknown, unknown> | Record<string, unknown>): unknown[] {
  const keys = v instanceof Map ? [...v.keys()] : Object.keys(v);
  return keys.sort((a, b) => {
    if (typeof a === "number" && typeof b === "number") return a - b;
    const x = String(a);
    const y = String(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

function stringer(v: unknown): (() => string) | undefined {
  if (v !== null && typeof v === "object") {
    const f = (v as { [GO_STRING]?: unknown })[GO_STRING];
    if (typeof f === "function") return f as () => string;
  }
  return undefined;
}

/** fmt.Sprint of one value, as Go prints it. */
export function goSprint(v: unknown): string {
  if (v === undefined || v === null) return "<nil>";
  const s = stringer(v);
  if (s !== undefined) return s();
  switch (typeof v) {
    case "string":
      return v;
    case "number":
      return goFloat(v);
    case "boolean":
      return v ? "true" : "false";
    case "bigint":
      return v.toString();
    case "function":
      return "<func>";
  }
  if (Array.isArray(v)) return `[${v.map((x) => goSprint(x)).join(" ")}]`;
  if (v instanceof Map) {
    return `map[${sortedKeys(v)
      .map((k) => `${goSprint(k)}:${goSprint(v.get(k))}`)
      .join(" ")}]`;
  }
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .map((k) => goSprint(o[k] ?? null))
    .join(" ")}}`;
}

/** Go's encoding/json string escaping: JSON's, plus <, >, & and U+2028/9 as \u escapes. */
function goJsonString(s: string): string {
  return JSON.stringify(s).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Go's json.Marshal: Maps with sorted keys, plain objects (structs) in insertion order with
 * undefined fields left out, nil as null, HTML characters escaped.
 */
export function goJson(v: unknown): string {
  if (v === undefined || v === null) return "null";
  if (typeof v === "object") {
    const m = (v as { [GO_JSON]?: unknown })[GO_JSON];
    if (typeof m === "function") return (m as () => string)();
  }
  switch (typeof v) {
    case "string":
      return goJsonString(v);
    case "number":
      return Number.isFinite(v) ? JSON.stringify(v) : "null";
    case "boolean":
      return v ? "true" : "false";
    case "function":
      return "null";
  }
  if (Array.isArray(v)) return `[${v.map((x) => goJson(x)).join(",")}]`;
  if (v instanceof Map) {
    return `{${sortedKeys(v)
      .map((k) => `${goJsonString(String(k))}:${goJson(v.get(k))}`)
      .join(",")}}`;
  }
  const o = v as Record<string, unknown>;
  const parts: string[] = [];
  for (const k of Object.keys(o)) {
    if (o[k] === undefined) continue;
    parts.push(`${goJsonString(k)}:${goJson(o[k])}`);
  }
  return `{${parts.join(",")}}`;
}

/** Deep-convert parsed JSON objects to Maps: Go's map[string]any (sorted range, sorted json). */
export function toGoMap(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toGoMap);
  if (v !== null && typeof v === "object" && !(v instanceof Map)) {
    const m = new Map<string, unknown>();
    for (const [k, x] of Object.entries(v)) m.set(k, toGoMap(x));
    return m;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Execution

export interface GoTemplateOptions {
  /** The clock for currentDate / yesterdayDate (default: now). */
  now?: Date;
  /** Most nodes and range iterations executed (default 10 million). */
  maxSteps?: number;
  /** Most bytes of output (default 64 MiB). */
  maxOutput?: number;
}

class BreakSignal {}
class ContinueSignal {}

interface Variable {
  name: string;
  value: unknown;
}

const MAX_TEMPLATE_DEPTH = 1000;

class Exec {
  private out = "";
  private steps = 0;
  private readonly vars: Variable[] = [];
  private depth = 0;
  private readonly maxSteps: number;
  private readonly maxOutput: number;
  private readonly now: Date;

  constructor(
    private readonly tmpl: GoTemplate,
    options: GoTemplateOptions,
  ) {
    this.maxSteps = options.maxSteps ?? 10_000_000;
    this.maxOutput = options.maxOutput ?? 64 * 1024 * 1024;
    this.now = options.now ?? new Date();
  }

  private fail(pos: Pos | undefined, message: string): OwlError {
    const where = pos === undefined ? "" : `${pos.line}:${pos.col}: `;
    return new OwlError("ERR_TEMPLATE_RENDER", `template: ${where}${message}`, {
      details: pos === undefined ? {} : { line: pos.line, col: pos.col },
    });
  }

  private step(pos: Pos | undefined): void {
    if (++this.steps > this.maxSteps) {
      throw this.fail(pos, `execution stopped after ${this.maxSteps} steps (a runaway template?)`);
    }
  }

  private write(s: string, pos: Pos | undefined): void {
    this.out += s;
    if (this.out.length > this.maxOutput) {
      throw this.fail(pos, `output exceeds ${this.maxOutput} characters (a runaway template?)`);
    }
  }

  run(data: unknown): string {
    this.vars.push({ name: "$", value: data });
    this.walkList(data, this.tmpl.root);
    return this.out;
  }

  private walkList(dot: unknown, nodes: readonly Node[]): void {
    for (const n of nodes) this.walk(dot, n);
  }

  private walk(dot: unknown, node: Node): void {
    this.step(node.kind === "text" ? undefined : node.pos);
    switch (node.kind) {
      case "text":
        this.write(node.text, undefined);
        return;
      case "action": {
        const v = this.evalPipeline(dot, node.pipe);
        // A nil result of a pipeline prints "<no value>" (Go unwraps the empty interface); nil
        // inside a slice prints "<nil>".
        if (node.pipe.decl.length === 0) this.write(v == null ? "<no value>" : goSprint(v), node.pos);
        return;
      }
      case "if":
      case "with": {
        const mark = this.vars.length;
        const v = this.evalPipeline(dot, node.pipe);
        if (goTruth(v)) this.walkList(node.kind === "with" ? v : dot, node.list);
        else if (node.elseList !== undefined) this.walkList(dot, node.elseList);
        this.vars.length = mark;
        return;
      }
      case "range":
        this.walkRange(dot, node);
        return;
      case "break":
        throw new BreakSignal();
      case "continue":
        throw new ContinueSignal();
      case "template": {
        const body = this.tmpl.defines.get(node.name);
        if (body === undefined) throw this.fail(node.pos, `no such template "${node.name}"`);
        if (++this.depth > MAX_TEMPLATE_DEPTH) {
          throw this.fail(node.pos, `exceeded maximum template depth (${MAX_TEMPLATE_DEPTH})`);
        }
        const newDot = node.pipe === undefined ? undefined : this.evalPipeline(dot, node.pipe);
        const saved = this.vars.splice(0);
        this.vars.push({ name: "$", value: newDot });
        try {
          this.walkList(newDot, body);
        } finally {
          this.vars.splice(0, this.vars.length, ...saved);
          this.depth--;
        }
        return;
      }
    }
  }

  private walkRange(dot: unknown, node: ControlNode): void {
    const mark = this.vars.length;
    // The pipeline's own declarations are the range variables: evaluate without declaring.
    const value = this.evalPipeline(dot, { ...node.pipe, decl: [] });
    const items: [unknown, unknown][] = [];
    if (value === undefined || value === null) {
      // nothing
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) items.push([i, value[i]]);
    } else if (value instanceof Map) for (const k of sortedKeys(value)) items.push([k, value.get(k)]);
    else if (typeof value === "number") {
      if (!Number.isInteger(value)) throw this.fail(node.pos, `range can't iterate over ${goSprint(value)}`);
      if (value > this.maxSteps) throw this.fail(node.pos, `range over ${value} exceeds the step limit`);
      for (let i = 0; i < value; i++) items.push([i, i]);
    } else if (typeof value === "object" && stringer(value) === undefined) {
      const o = value as Record<string, unknown>;
      for (const k of sortedKeys(o)) items.push([k, o[k as string]]);
    } else throw this.fail(node.pos, `range can't iterate over ${goSprint(value)}`);
    if (items.length === 0) {
      if (node.elseList !== undefined) this.walkList(dot, node.elseList);
      this.vars.length = mark;
      return;
    }
    const decl = node.pipe.decl;
    for (const [k, x] of items) {
      this.step(node.pos);
      const inner = this.vars.length;
      if (decl.length === 1) this.setVar(decl[0]!, x, node.pipe.isAssign);
      else if (decl.length === 2) {
        this.setVar(decl[0]!, k, node.pipe.isAssign);
        this.setVar(decl[1]!, x, node.pipe.isAssign);
      }
      try {
        this.walkList(x, node.list);
      } catch (e) {
        if (e instanceof BreakSignal) {
          this.vars.length = inner;
          break;
        }
        if (!(e instanceof ContinueSignal)) throw e;
      }
      // Variables declared in the body go out of scope each iteration.
      this.vars.length = inner;
    }
    this.vars.length = mark;
  }

  private setVar(name: string, value: unknown, assign: boolean): void {
    if (assign) {
      for (let i = this.vars.length - 1; i >= 0; i--) {
        if (this.vars[i]!.name === name) {
          this.vars[i]!.value = value;
          return;
        }
      }
      throw this.fail(undefined, `undefined variable: ${name}`);
    }
    this.vars.push({ name, value });
  }

  private getVar(name: string, pos: Pos): unknown {
    for (let i = this.vars.length - 1; i >= 0; i--)
      if (this.vars[i]!.name === name) return this.vars[i]!.value;
    throw this.fail(pos, `undefined variable: ${name}`);
  }

  private evalPipeline(dot: unknown, pipe: Pipe): unknown {
    let value: unknown;
    let has = false;
    for (const cmd of pipe.cmds) {
      value = this.evalCommand(dot, cmd, has ? { value } : undefined);
      has = true;
    }
    for (const v of pipe.decl) this.setVar(v, value, pipe.isAssign);
    return value;
  }

  private evalCommand(dot: unknown, cmd: Command, final: { value: unknown } | undefined): unknown {
    const [first, ...rest] = cmd.args;
    switch (first!.kind) {
      case "field":
        return this.evalFields(dot, dot, first!.ident, rest, final, cmd.pos);
      case "variable": {
        const ident = first!.ident;
        const v = this.getVar(ident[0]!, cmd.pos);
        if (ident.length === 1) {
          this.noArgs(rest, final, cmd.pos, ident[0]!);
          return v;
        }
        return this.evalFields(dot, v, ident.slice(1), rest, final, cmd.pos);
      }
      case "chain": {
        const base = this.evalArg(dot, first!.node, cmd.pos);
        return this.evalFields(dot, base, first!.ident, rest, final, cmd.pos);
      }
      case "identifier":
        return this.callFunction(dot, first!.name, rest, final, cmd.pos);
      default: {
        this.noArgs(rest, final, cmd.pos, describeArg(first!));
        return this.evalArg(dot, first!, cmd.pos);
      }
    }
  }

  private noArgs(rest: Arg[], final: { value: unknown } | undefined, pos: Pos, what: string): void {
    if (rest.length > 0 || final !== undefined)
      throw this.fail(pos, `can't give argument to non-function ${what}`);
  }

  private evalFields(
    dot: unknown,
    receiver: unknown,
    ident: string[],
    args: Arg[],
    final: { value: unknown } | undefined,
    pos: Pos,
  ): unknown {
    let v = receiver;
    for (let i = 0; i < ident.length; i++) {
      const last = i === ident.length - 1;
      v = this.field(dot, v, ident[i]!, last ? args : [], last ? final : undefined, pos);
    }
    return v;
  }

  private field(
    dot: unknown,
    receiver: unknown,
    name: string,
    args: Arg[],
    final: { value: unknown } | undefined,
    pos: Pos,
  ): unknown {
    if (receiver === undefined || receiver === null) {
      // A missing key reads as a nil interface (missingkey=zero); a field of nil is Go's error.
      throw this.fail(pos, `nil pointer evaluating interface {}.${name}`);
    }
    let value: unknown;
    if (receiver instanceof Map) value = receiver.get(name);
    else if (typeof receiver === "object" && !Array.isArray(receiver)) {
      value = (receiver as Record<string, unknown>)[name];
      if (typeof value === "function") {
        const argv = args.map((a) => this.evalArg(dot, a, pos));
        if (final !== undefined) argv.push(final.value);
        return (value as (...a: unknown[]) => unknown).apply(receiver, argv);
      }
    } else {
      throw this.fail(pos, `can't evaluate field ${name} in type ${goTypeName(receiver)}`);
    }
    this.noArgs(args, final, pos, `.${name}`);
    return value;
  }

  private evalArg(dot: unknown, arg: Arg, pos: Pos): unknown {
    switch (arg.kind) {
      case "dot":
        return dot;
      case "nil":
        return null;
      case "bool":
      case "number":
      case "string":
        return arg.value;
      case "field":
        return this.evalFields(dot, dot, arg.ident, [], undefined, pos);
      case "variable": {
        const v = this.getVar(arg.ident[0]!, pos);
        return arg.ident.length === 1 ? v : this.evalFields(dot, v, arg.ident.slice(1), [], undefined, pos);
      }
      case "chain":
        return this.evalFields(dot, this.evalArg(dot, arg.node, pos), arg.ident, [], undefined, pos);
      case "pipe": {
        const mark = this.vars.length;
        const v = this.evalPipeline(dot, arg.pipe);
        this.vars.length = mark;
        return v;
      }
      case "identifier":
        return this.callFunction(dot, arg.name, [], undefined, pos);
    }
  }

  private callFunction(
    dot: unknown,
    name: string,
    args: Arg[],
    final: { value: unknown } | undefined,
    pos: Pos,
  ): unknown {
    // and/or evaluate lazily and return an operand, not a boolean (Go 1.18+).
    if (name === "and" || name === "or") {
      const thunks: (() => unknown)[] = args.map((a) => () => this.evalArg(dot, a, pos));
      if (final !== undefined) thunks.push(() => final.value);
      if (thunks.length === 0)
        throw this.fail(pos, `wrong number of args for ${name}: want at least 1 got 0`);
      let v: unknown;
      for (const t of thunks) {
        v = t();
        if (goTruth(v) !== (name === "and")) return v;
      }
      return v;
    }
    const argv = args.map((a) => this.evalArg(dot, a, pos));
    if (final !== undefined) argv.push(final.value);
    return this.builtin(name, argv, pos);
  }

  private want(name: string, argv: unknown[], n: number, pos: Pos): void {
    if (argv.length !== n)
      throw this.fail(pos, `wrong number of args for ${name}: want ${n} got ${argv.length}`);
  }

  private builtin(name: string, argv: unknown[], pos: Pos): unknown {
    switch (name) {
      case "not":
        this.want(name, argv, 1, pos);
        return !goTruth(argv[0]);
      case "eq": {
        if (argv.length < 2) throw this.fail(pos, "missing argument for comparison");
        const [a, ...bs] = argv;
        return bs.some((b) => this.equal(a, b, pos));
      }
      case "ne":
        this.want(name, argv, 2, pos);
        return !this.equal(argv[0], argv[1], pos);
      case "lt":
      case "le":
      case "gt":
      case "ge": {
        this.want(name, argv, 2, pos);
        const c = this.compare(argv[0], argv[1], pos);
        return name === "lt" ? c < 0 : name === "le" ? c <= 0 : name === "gt" ? c > 0 : c >= 0;
      }
      case "len": {
        this.want(name, argv, 1, pos);
        const v = argv[0];
        if (typeof v === "string") return Buffer.byteLength(v, "utf8");
        if (Array.isArray(v)) return v.length;
        if (v instanceof Map) return v.size;
        if (v !== null && typeof v === "object") return Object.keys(v).length;
        throw this.fail(pos, `error calling len: len of type ${goTypeName(v)}`);
      }
      case "index": {
        if (argv.length < 1) throw this.fail(pos, "wrong number of args for index: want at least 1 got 0");
        let v = argv[0];
        for (const k of argv.slice(1)) v = this.index(v, k, pos);
        return v;
      }
      case "slice":
        return this.slice(argv, pos);
      case "print":
        return goPrint(argv);
      case "println":
        return `${argv.map((a) => goSprint(a)).join(" ")}\n`;
      case "printf": {
        if (typeof argv[0] !== "string") throw this.fail(pos, "printf needs a format string");
        return goPrintf(argv[0], argv.slice(1));
      }
      case "html":
        return goPrint(argv).replace(/[&'<>"\0]/g, (c) => HTML_ESCAPES[c]!);
      case "js":
        return jsEscape(goPrint(argv));
      case "urlquery":
        return encodeURIComponent(goPrint(argv))
          .replace(/%20/g, "+")
          .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
      case "call": {
        const [f, ...rest] = argv;
        if (typeof f !== "function")
          throw this.fail(pos, `error calling call: non-function of type ${goTypeName(f)}`);
        return (f as (...a: unknown[]) => unknown)(...rest);
      }
      case "json":
        this.want(name, argv, 1, pos);
        return goJson(argv[0]);
      case "currentDate":
        return isoDate(this.now);
      case "yesterdayDate":
        return isoDate(new Date(this.now.getTime() - 86_400_000));
      case "toTypeScriptType":
        this.want(name, argv, 1, pos);
        return toTypeScriptType(argv[0]);
    }
    throw this.fail(pos, `function "${name}" not defined`);
  }

  private equal(a: unknown, b: unknown, pos: Pos): boolean {
    const nilA = a === undefined || a === null;
    const nilB = b === undefined || b === null;
    if (nilA || nilB) return nilA && nilB;
    if (typeof a === "object" || typeof b === "object") {
      if (Array.isArray(a) || Array.isArray(b) || a instanceof Map || b instanceof Map) {
        throw this.fail(pos, "error calling eq: non-comparable type");
      }
      return a === b;
    }
    if (typeof a !== typeof b) throw this.fail(pos, "error calling eq: incompatible types for comparison");
    return a === b;
  }

  private compare(a: unknown, b: unknown, pos: Pos): number {
    if (typeof a === "number" && typeof b === "number") return a < b ? -1 : a > b ? 1 : 0;
    if (typeof a === "string" && typeof b === "string") {
      const x = Buffer.from(a, "utf8");
      const y = Buffer.from(b, "utf8");
      return Buffer.compare(x, y);
    }
    throw this.fail(pos, "error calling comparison: incompatible types for comparison");
  }

  private index(v: unknown, k: unknown, pos: Pos): unknown {
    if (Array.isArray(v) || typeof v === "string") {
      if (typeof k !== "number" || !Number.isInteger(k))
        throw this.fail(pos, "error calling index: cannot index slice/array with a non-integer");
      const len = typeof v === "string" ? Buffer.byteLength(v, "utf8") : v.length;
      if (k < 0 || k >= len) throw this.fail(pos, `error calling index: index out of range: ${k}`);
      return typeof v === "string" ? Buffer.from(v, "utf8")[k] : v[k];
    }
    if (v instanceof Map) return v.get(k);
    if (v !== null && typeof v === "object") return (v as Record<string, unknown>)[String(k)];
    if (v === undefined || v === null) throw this.fail(pos, "error calling index: index of untyped nil");
    throw this.fail(pos, `error calling index: can't index item of type ${goTypeName(v)}`);
  }

  private slice(argv: unknown[], pos: Pos): unknown {
    if (argv.length < 1 || argv.length > 4) throw this.fail(pos, "wrong number of args for slice");
    const [v, ...idx] = argv;
    if (!Array.isArray(v) && typeof v !== "string") {
      throw this.fail(pos, `error calling slice: can't slice item of type ${goTypeName(v)}`);
    }
    const bytes = typeof v === "string" ? Buffer.from(v, "utf8") : undefined;
    const len = bytes?.length ?? (v as unknown[]).length;
    const nums = idx.map((x) => {
      if (typeof x !== "number" || !Number.isInteger(x))
        throw this.fail(pos, "error calling slice: non-integer index");
      return x;
    });
    const i = nums[0] ?? 0;
    const j = nums[1] ?? len;
    if (i < 0 || j < i || j > len) throw this.fail(pos, `error calling slice: index out of range: ${i}:${j}`);
    return bytes !== undefined ? bytes.subarray(i, j).toString("utf8") : (v as unknown[]).slice(i, j);
  }
}

function describeArg(a: Arg): string {
  switch (a.kind) {
    case "number":
    case "bool":
      return String(a.value);
    case "string":
      return JSON.stringify(a.value);
    case "dot":
      return "dot";
    case "nil":
      return "nil";
    default:
      return a.kind;
  }
}

function goTypeName(v: unknown): string {
  if (v === undefined || v === null) return "nil";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float64";
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "bool";
  if (Array.isArray(v)) return "[]interface {}";
  if (v instanceof Map) return "map[string]interface {}";
  return "struct";
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "'": "&#39;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&#34;",
  "\0": "\uFFFD",
};

/** Go's JSEscapeString. */
function jsEscape(s: string): string {
  let out = "";
  for (const c of s) {
    const code = c.codePointAt(0)!;
    if (c === "\\") out += "\\\\";
    else if (c === "'") out += "\\'";
    else if (c === '"') out += '\\"';
    else if (c === "\n") out += "\\n";
    else if (c === "\r") out += "\\r";
    else if (c === "\t") out += "\\t";
    else if (code < 0x20 || c === "<" || c === ">" || c === "&" || c === "=") {
      out += `\\u${code.toString(16).toUpperCase().padStart(4, "0")}`;
    } else out += c;
  }
  return out;
}

function isoDate(d: Date): string {
  const y = d.getFullYear();
  const m = String(d.getMonth() + 1).padStart(2, "0");
  const day = String(d.getDate()).padStart(2, "0");
  return `${y}-${m}-${day}`;
}

/** fmt.Sprint: a space between operands when neither is a string. */
function goPrint(argv: unknown[]): string {
  let out = "";
  for (let i = 0; i < argv.length; i++) {
    if (i > 0 && typeof argv[i] !== "string" && typeof argv[i - 1] !== "string") out += " ";
    out += goSprint(argv[i]);
  }
  return out;
}

/** fmt.Sprintf for the verbs templates use: %v %s %d %q %t %f %e %g %x %X %c %%, flags, width, precision. */
export function goPrintf(format: string, args: unknown[]): string {
  let out = "";
  let ai = 0;
  const re = /%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])/g;
  let last = 0;
  for (let m = re.exec(format); m !== null; m = re.exec(format)) {
    out += format.slice(last, m.index);
    last = re.lastIndex;
    const [, flags = "", widthRaw, precRaw, verb] = m;
    if (verb === "%") {
      out += "%";
      continue;
    }
    const width =
      widthRaw === "*" ? Number(args[ai++]) : widthRaw === undefined ? undefined : Number(widthRaw);
    const prec =
      precRaw === "*"
        ? Number(args[ai++])
        : precRaw === undefined
          ? m[0].includes(".")
            ? 0
            : undefined
          : Number(precRaw);
    if (ai >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const a = args[ai++];
    let s: string;
    switch (verb) {
      case "v":
        s = goSprint(a);
        break;
      case "s":
        s = goSprint(a);
        if (prec !== undefined) s = [...s].slice(0, prec).join("");
        break;
      case "q":
        s = typeof a === "string" ? JSON.stringify(a) : goSprint(a);
        break;
      case "t":
        s = typeof a === "boolean" ? String(a) : `%!t(${goTypeName(a)}=${goSprint(a)})`;
        break;
      case "d":
        s =
          typeof a === "number" && Number.isInteger(a)
            ? (flags.includes("+") && a >= 0 ? "+" : "") + String(a)
            : `%!d(${goTypeName(a)}=${goSprint(a)})`;
        break;
      case "f":
      case "F":
        s = typeof a === "number" ? a.toFixed(prec ?? 6) : `%!f(${goTypeName(a)}=${goSprint(a)})`;
        if (typeof a === "number" && flags.includes("+") && a >= 0) s = `+${s}`;
        break;
      case "e":
        s = typeof a === "number" ? goExp(a, prec ?? 6) : `%!e(${goTypeName(a)}=${goSprint(a)})`;
        break;
      case "g":
        s =
          typeof a === "number"
            ? prec === undefined
              ? goFloat(a)
              : String(Number(a.toPrecision(prec || 1)))
            : goSprint(a);
        break;
      case "x":
      case "X": {
        if (typeof a === "number" && Number.isInteger(a)) s = a.toString(16);
        else if (typeof a === "string") s = Buffer.from(a, "utf8").toString("hex");
        else s = `%!${verb}(${goTypeName(a)}=${goSprint(a)})`;
        if (verb === "X") s = s.toUpperCase();
        break;
      }
      case "c":
        s = typeof a === "number" ? String.fromCodePoint(a) : `%!c(${goTypeName(a)}=${goSprint(a)})`;
        break;
      default:
        s = `%!${verb}(${goTypeName(a)}=${goSprint(a)})`;
    }
    if (width !== undefined && s.length < width) {
      if (flags.includes("-")) s = s.padEnd(width);
      else if (flags.includes("0") && /[dfeFgxX]/.test(verb!)) {
        const sign = /^[+-]/.test(s) ? s[0]! : "";
        s = sign + s.slice(sign.length).padStart(width - sign.length, "0");
      } else s = s.padStart(width);
    }
    out += s;
  }
  out += format.slice(last);
  if (ai < args.length) {
    out += `%!(EXTRA ${args
      .slice(ai)
      .map((a) => `${goTypeName(a)}=${goSprint(a)}`)
      .join(", ")})`;
  }
  return out;
}

function goExp(x: number, prec: number): string {
  const [m, e] = x.toExponential(prec).split("e") as [string, string];
  const n = Number(e);
  return `${m}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
}

const TS_TYPES: Readonly<Record<string, string>> = {
  string: "string",
  number: "number",
  integer: "number",
  boolean: "boolean",
  array: "any[]",
  object: "Record<string, any>",
  null: "null",
};

/** Ollama's ToolProperty.ToTypeScriptType: a JSON schema property as a TypeScript type. */
export function toTypeScriptType(v: unknown): string {
  const get = (o: unknown, k: string): unknown =>
    o instanceof Map
      ? o.get(k)
      : o !== null && typeof o === "object"
        ? (o as Record<string, unknown>)[k]
        : undefined;
  if (v === null || typeof v !== "object") return "any";
  const anyOf = get(v, "anyOf");
  if (Array.isArray(anyOf) && anyOf.length > 0) return anyOf.map(toTypeScriptType).join(" | ");
  const type = get(v, "type");
  const types = typeof type === "string" ? [type] : Array.isArray(type) ? type : [];
  if (types.length === 0) return "any";
  return types.map((t) => TS_TYPES[String(t)] ?? "any").join(" | ");
}

/** Run a parsed template over `data`. ERR_TEMPLATE_RENDER for an execution error. */
export function executeGoTemplate(tmpl: GoTemplate, data: unknown, options: GoTemplateOptions = {}): string {
  try {
    return new Exec(tmpl, options).run(data);
  } catch (e) {
    if (e instanceof BreakSignal || e instanceof ContinueSignal) {
      throw new OwlError("ERR_TEMPLATE_RENDER", "template: break or continue outside range");
    }
    throw e;
  }
}

/** Parse and run in one step. */
export function renderGoTemplate(source: string, data: unknown, options: GoTemplateOptions = {}): string {
  return executeGoTemplate(parseGoTemplate(source), data, options);
}

// ---------------------------------------------------------------------------------------------
// Tree queries Ollama's template package makes (template/template.go)

function pipeIdents(pipe: Pipe): string[] {
  const names: string[] = [];
  const visit = (a: Arg): void => {
    if (a.kind === "field") names.push(...a.ident);
    else if (a.kind === "variable") names.push(...a.ident);
    else if (a.kind === "pipe") for (const c of a.pipe.cmds) for (const x of c.args) visit(x);
  };
  for (const c of pipe.cmds) for (const a of c.args) visit(a);
  return names;
}

/**
 * The identifiers a template mentions (fields and variables, lower-cased, sorted, unique), as
 * Ollama's Template.Vars: "messages" in them selects the chat-style rendering.
 */
export function templateVars(tmpl: GoTemplate): string[] {
  const names: string[] = [];
  const walk = (nodes: readonly Node[]): void => {
    for (const n of nodes) {
      if (n.kind === "action") names.push(...pipeIdents(n.pipe));
      else if (n.kind === "if" || n.kind === "with" || n.kind === "range") {
        names.push(...pipeIdents(n.pipe));
        walk(n.list);
        if (n.elseList !== undefined) walk(n.elseList);
      } else if (n.kind === "template" && n.pipe !== undefined) names.push(...pipeIdents(n.pipe));
    }
  };
  walk(tmpl.root);
  for (const body of tmpl.defines.values()) walk(body);
  return [...new Set(names.map((n) => n.toLowerCase()))].sort();
}

/** A copy of the template with {{ .Response }} appended (Ollama does this when neither
 * .Messages nor .Response appears). */
export function appendResponse(tmpl: GoTemplate): GoTemplate {
  const action: Node = {
    kind: "action",
    pipe: {
      decl: [],
      isAssign: false,
      cmds: [{ args: [{ kind: "field", ident: ["Response"] }], pos: { line: 0, col: 0 } }],
      pos: { line: 0, col: 0 },
    },
    pos: { line: 0, col: 0 },
  };
  return { ...tmpl, root: [...tmpl.root, action] };
}

/**
 * A copy of the template cut right after the first field naming `field` (Ollama's deleteNode
 * with the ".Response" predicate): that field stays, and every node after it, at every level,
 * goes. Conditions of if/with/range are not searched, as in Ollama.
 */
export function cutAfterField(tmpl: GoTemplate, field: string): GoTemplate {
  let cut = false;
  const argHas = (a: Arg): boolean => a.kind === "field" && a.ident.includes(field);
  const walkPipe = (pipe: Pipe): Pipe | undefined => {
    const cmds: Command[] = [];
    for (const c of pipe.cmds) {
      const args: Arg[] = [];
      for (const a of c.args) {
        if (cut) continue;
        if (argHas(a)) cut = true;
        args.push(a);
      }
      if (args.length === 0) return undefined;
      cmds.push({ ...c, args });
    }
    return cmds.length === 0 ? undefined : { ...pipe, cmds };
  };
  const walkList = (nodes: readonly Node[]): Node[] => {
    const out: Node[] = [];
    for (const n of nodes) {
      if (cut) continue;
      if (n.kind === "action") {
        const pipe = walkPipe(n.pipe);
        if (pipe !== undefined) out.push({ ...n, pipe });
      } else if (n.kind === "if" || n.kind === "with" || n.kind === "range") {
        const list = walkList(n.list);
        const elseList = n.elseList === undefined ? undefined : walkList(n.elseList);
        out.push({ ...n, list, elseList });
      } else out.push(n);
    }
    return out;
  };
  return { ...tmpl, root: walkList(tmpl.root) };
}
