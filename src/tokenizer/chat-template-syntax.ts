/**
 * Where a chat template's syntax goes wrong, for error messages: @huggingface/jinja's lexer and
 * parser throw without a position, so this scans the template's tags itself and reports the
 * first structural problem with its line and column: an unterminated tag, a block closed by the
 * wrong end tag, an end tag or elif/else with no open block, a block never closed, or a tag the
 * library does not implement. It only locates; whether a template parses is the library's call.
 * Not here: expression syntax inside a tag (the library's message names the token).
 */

export interface TemplateErrorLocation {
  /** 1-based line and column of the tag in the original source. */
  line: number;
  column: number;
  problem: string;
}

const BLOCKS = new Set(["if", "for", "macro", "call", "filter", "set", "generation"]);
const INLINE = new Set(["break", "continue"]);
const MIDDLE: Readonly<Record<string, readonly string[]>> = { elif: ["if"], else: ["if", "for"] };

interface Open {
  tag: string;
  at: number;
}

function lineCol(source: string, at: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = source.indexOf("\n"); i !== -1 && i < at; i = source.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: at - lineStart + 1 };
}

/**
 * The end of the tag opened at `start` (index just past its closing delimiter), or -1 when it is
 * never closed. Skips string literals and balanced brackets, as Jinja2's lexer does.
 */
function tagEnd(source: string, start: number, close: string): number {
  let depth = 0;
  let i = start + 2;
  while (i < source.length) {
    const c = source[i]!;
    if (c === "'" || c === '"') {
      i++;
      while (i < source.length && source[i] !== c) i += source[i] === "\\" ? 2 : 1;
      i++;
      continue;
    }
    if (depth === 0 && source.startsWith(close, i)) return i + 2;
    if (depth === 0 && source.startsWith(`-${close}`, i)) return i + 3;
    if (c === "{" || c === "[" || c === "(") depth++;
    else if ((c === "}" || c === "]" || c === ")") && depth > 0) depth--;
    i++;
  }
  return -1;
}

/** The first structural problem in a template's tags, or undefined when its tags look well formed. */
export function locateTemplateError(source: string): TemplateErrorLocation | undefined {
  const stack: Open[] = [];
  const at = (pos: number, problem: string): TemplateErrorLocation => ({ ...lineCol(source, pos), problem });
  let i = 0;
  for (;;) {
    const start = source.indexOf("{", i);
    if (start === -1 || start + 1 >= source.length) break;
    const kind = source[start + 1];
    if (kind === "#") {
      const end = source.indexOf("#}", start + 2);
      if (end === -1) return at(start, "comment {# is never closed");
      i = end + 2;
      continue;
    }
    if (kind !== "{" && kind !== "%") {
      i = start + 1;
      continue;
    }
    const end = tagEnd(source, start, kind === "{" ? "}}" : "%}");
    if (end === -1) return at(start, `${kind === "{" ? "{{" : "{%"} is never closed`);
    i = end;
    if (kind === "{") continue;
    const body = source
      .slice(start + 2, end - 2)
      .replace(/^[-+]/, "")
      .replace(/-$/, "")
      .trim();
    const word = /^\w+/.exec(body)?.[0] ?? "";
    if (word.startsWith("end")) {
      const tag = word.slice(3);
      const open = stack.pop();
      if (!open) return at(start, `{% ${word} %} has no open {% ${tag} %}`);
      if (open.tag !== tag) {
        const o = lineCol(source, open.at);
        return at(start, `{% ${word} %} closes {% ${open.tag} %} of line ${o.line}, column ${o.column}`);
      }
    } else if (MIDDLE[word]) {
      const top = stack.at(-1);
      if (!top || !MIDDLE[word].includes(top.tag)) return at(start, `{% ${word} %} outside of an if block`);
    } else if (word === "set") {
      // `{% set x = ... %}` is one tag; `{% set x %}...{% endset %}` is a block.
      if (!/=/.test(body.replace(/(['"])(?:\\.|(?!\1).)*\1/g, ""))) stack.push({ tag: "set", at: start });
    } else if (BLOCKS.has(word)) {
      stack.push({ tag: word, at: start });
    } else if (!INLINE.has(word)) {
      return at(start, word ? `{% ${word} %} is not a tag @huggingface/jinja implements` : "empty {% %} tag");
    }
  }
  const open = stack.pop();
  if (open) return at(open.at, `{% ${open.tag} %} is never closed`);
  return undefined;
}
