/**
 * Reading a JSON request body and checking it against a zod schema, with errors a client can act
 * on: a missing body, malformed JSON (with the parser's position) and each invalid field named with
 * the type expected and the value found (`field "options.temperature": expected number, found
 * string "hot"`). Every failure is ERR_BAD_REQUEST (400), shaped by the API's error handler.
 * Not here: the schemas themselves (ollama/schemas.ts, openai/*), the body size limit (app.ts).
 */
import type { Context } from "hono";
import type { z } from "zod";
import { OwlError } from "../util/errors.ts";

/** The parsed JSON body, validated; ERR_BAD_REQUEST naming the problem otherwise. */
export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const raw = await readJsonValue(c);
  return validate(schema, raw);
}

/** The request body parsed as JSON (no schema). "missing request body" when empty, as Ollama. */
export async function readJsonValue(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") throw new OwlError("ERR_BAD_REQUEST", "missing request body");
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new OwlError("ERR_BAD_REQUEST", `invalid JSON in request body: ${why}`, {
      details: { body: text.length > 200 ? `${text.slice(0, 200)}...` : text },
    });
  }
}

/** Validate a parsed value; ERR_BAD_REQUEST naming the first invalid field. */
export function validate<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (!issue) throw new OwlError("ERR_BAD_REQUEST", "invalid request body");
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  const field = formatPath(path);
  const found = describeValue(valueAt(value, path));
  let message: string;
  if (path.length === 0) {
    message = `request body: expected a JSON object, found ${found}`;
  } else if (issue.code === "invalid_type") {
    const expected = issue.expected === "int" ? "integer" : issue.expected;
    message =
      found === "nothing"
        ? `field "${field}" is required (expected ${expected})`
        : `field "${field}": expected ${expected}, found ${found}`;
  } else {
    // Custom messages of the schemas read "expected ..."; zod's own ("Too small: expected number
    // to be >=0") are kept as they are.
    message = `field "${field}": ${issue.message.replace(/^Invalid input: /, "")}, found ${found}`;
  }
  throw new OwlError("ERR_BAD_REQUEST", message, { details: { field, param: field } });
}

function formatPath(path: readonly (string | number)[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s === "" ? p : `.${p}`;
  return s;
}

function valueAt(value: unknown, path: readonly (string | number)[]): unknown {
  let v = value;
  for (const p of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

/** A short description of a JSON value for error messages: `string "abc"`, `number 3`, `array`. */
export function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return `array (${v.length} items)`;
  if (typeof v === "string") {
    const s = v.length > 40 ? `${v.slice(0, 40)}...` : v;
    return `string ${JSON.stringify(s)}`;
  }
  if (typeof v === "number" || typeof v === "boolean") return `${typeof v} ${String(v)}`;
  if (typeof v === "object") return "object";
  return typeof v;
}
