/**
 * Python's str() and repr() of @huggingface/jinja runtime values, so that what a chat template
 * prints matches Jinja2 (which prints Python objects): `{{ true }}` is "True", `{{ none }}` is
 * "None", `{{ [1, "a"] }}` is "[1, 'a']", `{{ {"k": 1.5} }}` is "{'k': 1.5}", floats as Python's
 * repr ("1e+16", "1.0"). chat-template.ts applies it where Jinja2 calls str(): printed
 * expressions, `~` and the `string` filter. Not here: the JSON form (`tojson`, the library's own).
 *
 * The runtime values are the library's classes, which it does not export; they are read here
 * through their `type` and `value` fields only (a structural view, see RuntimeLike).
 */

/** The fields of an @huggingface/jinja runtime value that this file reads. */
export interface RuntimeLike {
  type: string;
  value: unknown;
}

function isRuntimeLike(v: unknown): v is RuntimeLike {
  return typeof v === "object" && v !== null && typeof (v as { type?: unknown }).type === "string";
}

/** Python's repr() of a float (shortest round-trip digits, exponent outside [1e-4, 1e16)). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant = "", expText = "0"] = x.toExponential().split("e");
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) return `${mant}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  const s = x.toString(); // fixed notation for these exponents
  return s.includes(".") ? s : `${s}.0`;
}

// Python's str.isprintable() is false for these categories (space excepted).
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python's repr() of a str. */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch !== " " && NON_PRINTABLE.test(ch)) {
      if (cp < 0x100) out += `\\x${cp.toString(16).padStart(2, "0")}`;
      else if (cp < 0x10000) out += `\\u${cp.toString(16).padStart(4, "0")}`;
      else out += `\\U${cp.toString(16).padStart(8, "0")}`;
    } else out += ch;
  }
  return out + quote;
}

/** Python's repr() of a runtime value (used inside containers). */
export function pyRepr(v: RuntimeLike): string {
  if (v.type === "StringValue") return pyStrRepr(String(v.value));
  return pyStr(v);
}

function items(v: RuntimeLike): RuntimeLike[] {
  return Array.isArray(v.value) ? v.value.filter(isRuntimeLike) : [];
}

function entries(v: RuntimeLike): [string, RuntimeLike][] {
  if (!(v.value instanceof Map)) return [];
  const out: [string, RuntimeLike][] = [];
  for (const [k, x] of v.value) if (isRuntimeLike(x)) out.push([String(k), x]);
  return out;
}

/**
 * Python's str() of a runtime value, or undefined for kinds this file leaves to the library
 * (functions and macros).
 */
export function pyStrOrUndefined(v: RuntimeLike): string | undefined {
  switch (v.type) {
    case "StringValue":
      return String(v.value);
    case "UndefinedValue":
      return "";
    case "NullValue":
      return "None";
    case "BooleanValue":
      return v.value ? "True" : "False";
    case "IntegerValue":
      return String(v.value);
    case "FloatValue":
      return pyFloatRepr(Number(v.value));
    case "ArrayValue":
      return `[${items(v).map(pyRepr).join(", ")}]`;
    case "TupleValue": {
      const xs = items(v).map(pyRepr);
      return xs.length === 1 ? `(${xs[0]},)` : `(${xs.join(", ")})`;
    }
    case "ObjectValue":
    case "KeywordArgumentsValue":
      return `{${entries(v)
        .map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`)
        .join(", ")}}`;
    case "NamespaceValue":
      return `<Namespace {${entries(v)
        .map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`)
        .join(", ")}}>`;
    default:
      return undefined;
  }
}

/** Python's str() of a runtime value; the library's own text for kinds Python would not print sensibly. */
export function pyStr(v: RuntimeLike): string {
  return pyStrOrUndefined(v) ?? String(v);
}
