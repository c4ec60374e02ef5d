/**
 * Grammars for constrained output, shared by the backends that support them:
 * JSON_OBJECT_GBNF (Ollama's format "json", OpenAI's json_object: one JSON object and nothing
 * after it, so that the end-of-generation token is the only way on once the object closes; after
 * llama.cpp's grammars/json.gbnf, whose trailing whitespace lets a model emit newlines forever),
 * and checkJsonSchema(), which turns a client's JSON schema into the subset node-llama-cpp's
 * createGrammarForJsonSchema understands or throws ERR_GRAMMAR naming the place and the problem
 * (node-llama-cpp itself accepts unknown types silently and then generates unconstrained values).
 *
 * Accepted: type (string, number, integer, boolean, null, object, array, or a list of them),
 * properties, required, additionalProperties, min/maxProperties, items, prefixItems,
 * min/maxItems, enum, const, oneOf, anyOf (as oneOf), $ref to #/$defs or #/definitions, string
 * min/maxLength and format; annotations (title, description, default, examples, $schema, $id,
 * $comment) are dropped. NOTE: node-llama-cpp makes every listed property required.
 * Refused: pattern, patternProperties, allOf, not, if/then/else, and anything malformed.
 * Not here: building the grammar objects (llama-cpp-backend.ts).
 */
import { OwlError } from "../util/errors.ts";

export const JSON_OBJECT_GBNF = String.raw`root ::= "{" ws ( pair ( "," ws pair )* )? "}"
object ::= "{" ws ( pair ( "," ws pair )* )? "}" ws
pair ::= string ":" ws value
value ::= object | array | string | number | ( "true" | "false" | "null" ) ws
array ::= "[" ws ( value ( "," ws value )* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\"" ws
number ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]{1,3} )? ws
ws ::= | " " | "\n" [ \t]{0,20}
`;

const TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);
const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$schema",
  "$id",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
]);
const REFUSED = [
  "pattern",
  "patternProperties",
  "allOf",
  "not",
  "if",
  "then",
  "else",
  "dependentSchemas",
  "propertyNames",
];
const STRING_FORMATS = new Set(["date-time", "time", "date"]);

function bad(where: string, problem: string): OwlError {
  return new OwlError("ERR_GRAMMAR", `JSON schema at ${where}: ${problem}`, {
    hint: "owl's llama.cpp backend supports type, properties, required, items, enum, const, anyOf/oneOf and $defs",
    details: { at: where },
  });
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function nonNegativeInt(x: unknown): boolean {
  return typeof x === "number" && Number.isInteger(x) && x >= 0;
}

/** The schema in node-llama-cpp's subset (a new object), or ERR_GRAMMAR. */
export function checkJsonSchema(schema: unknown): unknown {
  if (!isObject(schema)) throw bad("#", `expected a JSON object, found ${JSON.stringify(schema)}`);
  const defs = {
    ...(isObject(schema["definitions"]) ? schema["definitions"] : {}),
    ...(isObject(schema["$defs"]) ? schema["$defs"] : {}),
  };
  const out = convert(schema, "#", defs, true);
  return out;
}

function convert(s: unknown, at: string, defs: Record<string, unknown>, root = false): unknown {
  if (s === true) return {};
  if (!isObject(s)) throw bad(at, `expected a schema object, found ${JSON.stringify(s)}`);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(s)) {
    const here = `${at}/${key}`;
    if (ANNOTATIONS.has(key)) {
      if (key === "description" && typeof v === "string") out[key] = v;
      continue;
    }
    if (REFUSED.includes(key)) throw bad(here, `"${key}" is not supported`);
    switch (key) {
      case "type": {
        const list = Array.isArray(v) ? v : [v];
        if (list.length === 0) throw bad(here, "expected a type name or a non-empty list of them");
        for (const t of list) {
          if (typeof t !== "string" || !TYPES.has(t)) {
            throw bad(here, `unknown type ${JSON.stringify(t)} (expected one of ${[...TYPES].join(", ")})`);
          }
        }
        if (Array.isArray(v) && v.some((t) => t === "object" || t === "array")) {
          // node-llama-cpp lists only scalar types in a type array: spell it as oneOf.
          out["oneOf"] = v.map((t) => convert({ ...s, type: t }, here, defs));
          return out;
        }
        out[key] = v;
        break;
      }
      case "properties": {
        if (!isObject(v)) throw bad(here, "expected an object of property schemas");
        const props: Record<string, unknown> = {};
        for (const [name, p] of Object.entries(v)) props[name] = convert(p, `${here}/${name}`, defs);
        out[key] = props;
        break;
      }
      case "required": {
        if (!Array.isArray(v) || v.some((r) => typeof r !== "string"))
          throw bad(here, "expected a list of property names");
        const props = isObject(s["properties"]) ? s["properties"] : {};
        for (const r of v as string[])
          if (!(r in props)) throw bad(here, `"${r}" is required but not among the properties`);
        out[key] = v;
        break;
      }
      case "additionalProperties":
        out[key] = typeof v === "boolean" ? v : convert(v, here, defs);
        break;
      case "items":
        out[key] = convert(v, here, defs);
        break;
      case "prefixItems":
        if (!Array.isArray(v)) throw bad(here, "expected a list of schemas");
        out[key] = v.map((p, i) => convert(p, `${here}/${i}`, defs));
        break;
      case "minProperties":
      case "maxProperties":
      case "minItems":
      case "maxItems":
      case "minLength":
      case "maxLength":
        if (!nonNegativeInt(v)) throw bad(here, `expected an integer >= 0, found ${JSON.stringify(v)}`);
        out[key] = v;
        break;
      case "enum":
        if (!Array.isArray(v) || v.length === 0) throw bad(here, "expected a non-empty list of values");
        for (const e of v) {
          if (e !== null && !["string", "number", "boolean"].includes(typeof e)) {
            throw bad(
              here,
              `only string, number, boolean and null values are supported, found ${JSON.stringify(e)}`,
            );
          }
        }
        out[key] = v;
        break;
      case "const":
        if (v !== null && !["string", "number", "boolean"].includes(typeof v)) {
          throw bad(here, `only a string, number, boolean or null is supported, found ${JSON.stringify(v)}`);
        }
        out[key] = v;
        break;
      case "oneOf":
      case "anyOf":
        if (!Array.isArray(v) || v.length === 0) throw bad(here, "expected a non-empty list of schemas");
        out["oneOf"] = v.map((p, i) => convert(p, `${here}/${i}`, defs));
        break;
      case "$ref": {
        const m = typeof v === "string" ? /^#\/(\$defs|definitions)\/(.+)$/.exec(v) : null;
        if (!m)
          throw bad(here, `only references to #/$defs/<name> are supported, found ${JSON.stringify(v)}`);
        if (!(m[2]! in defs)) throw bad(here, `${v} names no definition`);
        out[key] = `#/$defs/${m[2]}`;
        break;
      }
      case "$defs":
      case "definitions": {
        if (!root) throw bad(here, "definitions are supported at the top of the schema only");
        if (!isObject(v)) throw bad(here, "expected an object of schemas");
        const d = (out["$defs"] ?? {}) as Record<string, unknown>;
        for (const [name, p] of Object.entries(v)) d[name] = convert(p, `${here}/${name}`, defs);
        out["$defs"] = d;
        break;
      }
      case "format":
        if (typeof v !== "string") throw bad(here, "expected a string");
        if (STRING_FORMATS.has(v)) out[key] = v;
        break;
      default:
        // Other keywords (minimum, multipleOf, ...) do not shape the text; llama.cpp's converter
        // ignores what it does not know too.
        break;
    }
  }
  return out;
}
