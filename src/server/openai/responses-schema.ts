/**
 * Validation of POST /v1/responses bodies (zod), with OpenAI's documented ranges: a bad field is
 * a 400 whose `param` names it the OpenAI way ("input.[1].content.[0].type"). Input items are
 * messages (a `role` without `type` is one, as OpenAI and Ollama read it), function_call,
 * function_call_output and reasoning items; content parts are input_text and output_text.
 * Refused with a 400 naming the field, as things owl cannot do (never a silent change): image,
 * file and audio parts, built-in tools (web_search, file_search, computer use, ...) and their
 * items, item references, background mode, logprobs (top_logprobs, include
 * "message.output_text.logprobs"), and previous_response_id / conversation (owl stores no
 * responses; Ollama ignores both, answering without the earlier turns). Ignored, as Ollama's
 * compatibility layer does (openai/responses.go ResponsesRequest has no such fields or does not
 * read them): store, the other include values (reasoning items always
 * carry encrypted_content), user, prompt_cache_key, safety_identifier, service_tier.
 * Not here: the wire types (api/openai-responses.ts), the mapping onto chat (responses.ts).
 */
import { z } from "zod";
import type { ResponsesRequest } from "../../api/openai-responses.ts";
import { badRequest, parseBody } from "./schemas.ts";

const range = (lo: number, hi: number) =>
  z
    .number({ error: `expected a number in [${lo}, ${hi}]` })
    .check(z.refine((x: number) => x >= lo && x <= hi, { error: `expected a number in [${lo}, ${hi}]` }));

const textPart = z.object({ type: z.enum(["input_text", "output_text"]), text: z.string() });
const contentPart = z
  .object({ type: z.string() })
  .passthrough()
  .superRefine((p, ctx) => {
    if (p.type !== "input_text" && p.type !== "output_text") {
      ctx.addIssue({
        code: "custom",
        path: ["type"],
        message: `content parts of type "${p.type}" are not supported (owl's models read text only): expected "input_text" or "output_text"`,
      });
    }
  })
  .pipe(textPart);
const content = z.union([z.string(), z.array(contentPart)], {
  error: "expected a string or an array of input_text / output_text parts",
});

const message = z.object({
  type: z.literal("message"),
  role: z.enum(["system", "developer", "user", "assistant"], {
    error: 'expected one of "system", "developer", "user", "assistant"',
  }),
  content,
});

const functionCall = z.object({
  type: z.literal("function_call"),
  call_id: z.string({ error: "expected the call's id" }),
  name: z.string({ error: "expected the function's name" }),
  arguments: z.string({ error: "expected the arguments as JSON text" }),
  id: z.string().optional(),
});

const functionCallOutput = z.object({
  type: z.literal("function_call_output"),
  call_id: z.string({ error: "expected the id of the call this answers" }),
  output: content,
});

const reasoning = z.object({
  type: z.literal("reasoning"),
  id: z.string().optional(),
  summary: z.array(z.object({ type: z.literal("summary_text"), text: z.string() })).nullish(),
  content: z.array(z.object({ type: z.literal("reasoning_text"), text: z.string() })).nullish(),
  encrypted_content: z.string().nullish(),
});

const ITEM_TYPES = '"message", "function_call", "function_call_output" or "reasoning"';

/** A `role` without `type` is a message (OpenAI's EasyInputMessage, Ollama's shorthand). */
const inputItem = z.preprocess(
  (v) =>
    typeof v === "object" && v !== null && !Array.isArray(v) && !("type" in v) && "role" in v
      ? { ...v, type: "message" }
      : v,
  z.discriminatedUnion("type", [message, functionCall, functionCallOutput, reasoning], {
    error: `expected an input item of type ${ITEM_TYPES} (built-in tool items and item references are not supported)`,
  }),
);

const inputItems = z.array(inputItem).min(1, { error: "expected at least one input item" });

/**
 * A string or an array of items. NOTE: not a z.union, whose failure would name only `input`
 * when an item is wrong; this names the item's field.
 */
const inputSchema = z.unknown().transform((v, ctx) => {
  if (typeof v === "string") {
    if (v === "") ctx.addIssue({ code: "custom", message: "expected text, found an empty string" });
    return v;
  }
  if (!Array.isArray(v)) {
    ctx.addIssue({ code: "custom", message: "expected a string or an array of input items" });
    return z.NEVER;
  }
  const r = inputItems.safeParse(v);
  if (r.success) return r.data;
  for (const issue of r.error.issues)
    ctx.addIssue({ code: "custom", message: issue.message, path: issue.path });
  return z.NEVER;
});

const functionTool = z.object({
  type: z.literal("function", {
    error:
      'expected "function" (built-in tools such as web_search, file_search or computer use are not supported)',
  }),
  name: z
    .string()
    .regex(/^[a-zA-Z0-9_-]{1,64}$/, { error: "expected a name of 1-64 letters, digits, _ or -" }),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

const toolChoice = z.union(
  [z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), name: z.string() })],
  { error: 'expected "none", "auto", "required" or {"type": "function", "name": ...}' },
);

const textFormat = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("json_object") }),
    z.object({
      type: z.literal("json_schema"),
      name: z.string({ error: "expected the schema's name" }),
      schema: z.record(z.string(), z.unknown(), { error: "expected a JSON schema object" }),
      description: z.string().optional(),
      strict: z.boolean().nullish(),
    }),
  ],
  { error: 'expected type "text", "json_object" or "json_schema"' },
);

const responsesSchema = z.object({
  model: z.string({ error: "expected the model's name" }).min(1, { error: "expected the model's name" }),
  input: inputSchema,
  instructions: z.string().nullish(),
  max_output_tokens: z
    .number({ error: "expected an integer >= 1" })
    .check(z.refine((x: number) => Number.isInteger(x) && x >= 1, { error: "expected an integer >= 1" }))
    .nullish(),
  temperature: range(0, 2).nullish(),
  top_p: range(0, 1).nullish(),
  text: z.object({ format: textFormat.nullish(), verbosity: z.string().nullish() }).nullish(),
  reasoning: z
    .object({
      effort: z.string().nullish(),
      summary: z.string().nullish(),
      generate_summary: z.string().nullish(),
    })
    .nullish(),
  tools: z.array(functionTool, { error: "expected an array of function tools" }).optional(),
  tool_choice: toolChoice.optional(),
  parallel_tool_calls: z.boolean().nullish(),
  stream: z.boolean().nullish(),
  // Refused, not ignored (Ollama ignores them): the answer would silently lack the earlier turns.
  previous_response_id: z
    .string()
    .nullish()
    .refine((id) => id === undefined || id === null, {
      error:
        "previous_response_id is not supported: owl stores no responses; send the whole conversation in input",
    }),
  conversation: z
    .unknown()
    .optional()
    .refine((c) => c === undefined || c === null, {
      error:
        "conversation is not supported: owl stores no conversations; send the whole conversation in input",
    }),
  store: z.boolean().nullish(),
  metadata: z.record(z.string(), z.string(), { error: "expected an object of strings" }).nullish(),
  truncation: z.enum(["auto", "disabled"], { error: 'expected "auto" or "disabled"' }).nullish(),
  background: z
    .boolean()
    .nullish()
    .refine((b) => b !== true, {
      error: "background mode is not supported (owl answers every response in its request and stores none)",
    }),
  include: z
    .array(z.string(), { error: "expected an array of strings" })
    .nullish()
    .refine((list) => !list?.includes("message.output_text.logprobs"), {
      error:
        '"message.output_text.logprobs" is not supported on /v1/responses (use /v1/chat/completions for logprobs)',
    }),
  top_logprobs: z
    .number()
    .nullish()
    .refine((n) => n === undefined || n === null || n === 0, {
      error: "top_logprobs is not supported on /v1/responses (use /v1/chat/completions for logprobs)",
    }),
});

export function parseResponsesRequest(body: unknown): ResponsesRequest {
  const r = parseBody(responsesSchema, body) as ResponsesRequest;
  const choice = r.tool_choice;
  if (typeof choice === "object") {
    if (!r.tools?.some((t) => t.name === choice.name)) {
      throw badRequest(
        `tool_choice names function "${choice.name}" but tools has no function of that name`,
        "tool_choice",
      );
    }
  } else if (choice === "required" && !r.tools?.length) {
    throw badRequest('tool_choice "required" needs at least one tool in tools', "tool_choice");
  }
  return r;
}
