/**
 * Validation of the OpenAI routes' request bodies (zod), with OpenAI's documented ranges: a bad
 * field becomes ERR_BAD_REQUEST whose details.param names it the way OpenAI does
 * ("messages.[0].content", "top_logprobs"), so the error body's `param` points at it.
 * Unknown fields are ignored (OpenAI accepts fields it does not use, e.g. `user`); fields owl
 * cannot honour (n > 1, suffix, image parts) are refused here with their name.
 * Not here: the wire types (api/openai.ts), the mapping onto the runtime (chat.ts, completions.ts).
 */
import { z } from "zod";
import type {
  OpenAiChatCompletionRequest,
  OpenAiCompletionRequest,
  OpenAiEmbeddingRequest,
} from "../../api/openai.ts";
import { OwlError } from "../../util/errors.ts";

/** OpenAI's param path: `messages.[0].content` (array indices bracketed, as api.openai.com answers). */
export function paramPath(path: readonly PropertyKey[]): string | null {
  if (path.length === 0) return null;
  return path.map((p) => (typeof p === "number" ? `[${p}]` : String(p))).join(".");
}

/** An ERR_BAD_REQUEST whose details.param names the field at fault. */
export function badRequest(message: string, param: string | null): OwlError {
  return new OwlError("ERR_BAD_REQUEST", message, { details: { param } });
}

// NOTE: JSON has no NaN or Infinity, so every number that arrives is finite.
const range = (lo: number, hi: number) =>
  z
    .number({ error: `expected a number in [${lo}, ${hi}]` })
    .check(z.refine((x: number) => x >= lo && x <= hi, { error: `expected a number in [${lo}, ${hi}]` }));
const int = (lo: number, hi: number, what: string) =>
  z
    .number({ error: `expected ${what}` })
    .check(z.refine((x: number) => Number.isInteger(x) && x >= lo && x <= hi, { error: `expected ${what}` }));

const stop = z.union([z.string(), z.array(z.string()).max(4, { error: "expected at most 4 stop strings" })], {
  error: "expected a string or an array of up to 4 strings",
});

/** Token id (decimal string) -> bias in [-100, 100] (OpenAI's range). */
const logitBias = z.record(
  z.string().regex(/^\d+$/, { error: "expected token ids as keys" }),
  range(-100, 100),
);

const streamOptions = z.object({ include_usage: z.boolean().nullish() });

/** Sampling fields shared by chat and legacy completions (OpenAI's ranges). */
const sampling = {
  temperature: range(0, 2).nullish(),
  top_p: range(0, 1).nullish(),
  frequency_penalty: range(-2, 2).nullish(),
  presence_penalty: range(-2, 2).nullish(),
  logit_bias: logitBias.nullish(),
  // OpenAI documents seed as an integer; llama.cpp takes 32 bits, larger seeds are folded.
  seed: int(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, "an integer").nullish(),
  stop: stop.nullish(),
  stream: z.boolean().nullish(),
  stream_options: streamOptions.nullish(),
  user: z.string().optional(),
};

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const contentPart = z
  .object({ type: z.string() })
  .passthrough()
  .superRefine((p, ctx) => {
    if (p.type !== "text") {
      ctx.addIssue({
        code: "custom",
        path: ["type"],
        message: `content parts of type "${p.type}" are not supported (owl's models read text only): expected "text"`,
      });
    }
  })
  .pipe(textPart);

const toolCall = z.object({
  id: z.string(),
  type: z.literal("function"),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

const message = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant", "tool"], {
      error: 'expected one of "system", "developer", "user", "assistant", "tool"',
    }),
    content: z
      .union([z.string(), z.array(contentPart)], {
        error: "expected a string or an array of text parts",
      })
      .nullish(),
    name: z.string().optional(),
    tool_calls: z.array(toolCall).optional(),
    tool_call_id: z.string().optional(),
    reasoning: z.string().nullish(),
  })
  .superRefine((m, ctx) => {
    if (
      (m.content === null || m.content === undefined) &&
      !(m.role === "assistant" && m.tool_calls?.length)
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["content"],
        message: `a ${m.role} message needs content (only an assistant message with tool_calls may omit it)`,
      });
    }
    if (m.role === "tool" && m.tool_call_id === undefined) {
      ctx.addIssue({ code: "custom", path: ["tool_call_id"], message: "a tool message needs tool_call_id" });
    }
  });

const functionTool = z.object({
  type: z.literal("function", { error: 'expected "function" (the only tool type owl runs)' }),
  function: z.object({
    name: z
      .string()
      .regex(/^[a-zA-Z0-9_-]{1,64}$/, { error: "expected a name of 1-64 letters, digits, _ or -" }),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

const toolChoice = z.union(
  [
    z.enum(["none", "auto", "required"]),
    z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) }),
  ],
  { error: 'expected "none", "auto", "required" or {"type": "function", "function": {"name": ...}}' },
);

const responseFormat = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("json_object") }),
    z.object({
      type: z.literal("json_schema"),
      json_schema: z.object({
        name: z.string(),
        description: z.string().optional(),
        schema: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullish(),
      }),
    }),
  ],
  { error: 'expected type "text", "json_object" or "json_schema"' },
);

const nOne = z
  .number()
  .nullish()
  .refine((n) => n === undefined || n === null || n === 1, {
    error: "owl generates one choice per request: n must be 1",
  });

const chatSchema = z
  .object({
    model: z.string({ error: "expected the model's name" }).min(1),
    messages: z.array(message, { error: "expected an array of messages" }).min(1, {
      error: "expected at least one message",
    }),
    max_tokens: int(1, Number.MAX_SAFE_INTEGER, "an integer >= 1").nullish(),
    max_completion_tokens: int(1, Number.MAX_SAFE_INTEGER, "an integer >= 1").nullish(),
    n: nOne,
    logprobs: z.boolean().nullish(),
    top_logprobs: int(0, 20, "an integer in [0, 20]").nullish(),
    tools: z.array(functionTool).optional(),
    tool_choice: toolChoice.optional(),
    parallel_tool_calls: z.boolean().optional(),
    response_format: responseFormat.optional(),
    reasoning_effort: z.string().nullish(),
    reasoning: z.object({ effort: z.string().nullish() }).nullish(),
    ...sampling,
  })
  .superRefine((r, ctx) => {
    if (r.top_logprobs !== undefined && r.top_logprobs !== null && r.top_logprobs > 0 && !r.logprobs) {
      ctx.addIssue({
        code: "custom",
        path: ["top_logprobs"],
        message: "top_logprobs needs logprobs: true",
      });
    }
  });

const completionSchema = z.object({
  model: z.string({ error: "expected the model's name" }).min(1),
  prompt: z.union(
    [z.string(), z.array(z.string()).length(1, { error: "owl generates one choice: give one prompt" })],
    { error: "expected a string or an array of one string" },
  ),
  suffix: z
    .string()
    .nullish()
    .refine((s) => s === undefined || s === null || s === "", {
      error: "suffix (fill in the middle) is not supported",
    }),
  max_tokens: int(0, Number.MAX_SAFE_INTEGER, "an integer >= 0").nullish(),
  n: nOne,
  best_of: nOne,
  echo: z.boolean().nullish(),
  logprobs: int(0, 5, "an integer in [0, 5]").nullish(),
  ...sampling,
});

const embeddingSchema = z.object({
  model: z.string({ error: "expected the model's name" }).min(1),
  input: z.union(
    [
      z.string(),
      z.array(z.string()).min(1, { error: "expected at least one input" }).max(2048, {
        error: "expected at most 2048 inputs",
      }),
    ],
    {
      error:
        "expected a string or an array of strings (token arrays are not supported: their ids belong to another tokenizer)",
    },
  ),
  encoding_format: z.enum(["float", "base64"], { error: 'expected "float" or "base64"' }).optional(),
  dimensions: int(1, Number.MAX_SAFE_INTEGER, "an integer >= 1").optional(),
  user: z.string().optional(),
});

/** A request body checked against `schema`: the first bad field as a 400 naming it (OpenAI's `param`). */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badRequest("expected a JSON object as the request body", null);
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue === undefined) throw badRequest("invalid request body", null);
  if (issue.code === "invalid_key") {
    throw badRequest(
      `Invalid value for '${paramPath(issue.path.slice(0, -1))}': expected token ids (decimal strings) as keys, found "${String(issue.path.at(-1))}"`,
      paramPath(issue.path.slice(0, -1)),
    );
  }
  const param = paramPath(issue.path);
  const where = param === null ? "the request body" : `'${param}'`;
  throw badRequest(`Invalid value for ${where}: ${issue.message}`, param);
}

export function parseChatRequest(body: unknown): OpenAiChatCompletionRequest {
  const r = parseBody(chatSchema, body) as OpenAiChatCompletionRequest;
  const choice = r.tool_choice;
  if (typeof choice === "object") {
    if (!r.tools?.some((t) => t.function.name === choice.function.name)) {
      throw badRequest(
        `tool_choice names function "${choice.function.name}" but tools has no function of that name`,
        "tool_choice",
      );
    }
  } else if (choice === "required" && !r.tools?.length) {
    throw badRequest('tool_choice "required" needs at least one tool in tools', "tool_choice");
  }
  return r;
}

export function parseCompletionRequest(body: unknown): OpenAiCompletionRequest {
  return parseBody(completionSchema, body) as OpenAiCompletionRequest;
}

export function parseEmbeddingRequest(body: unknown): OpenAiEmbeddingRequest {
  const r = parseBody(embeddingSchema, body) as OpenAiEmbeddingRequest;
  // OpenAI refuses empty inputs (an empty text has no meaning to embed).
  const inputs = typeof r.input === "string" ? [r.input] : (r.input as string[]);
  const empty = inputs.indexOf("");
  if (empty !== -1) {
    throw badRequest(
      typeof r.input === "string"
        ? "input is an empty string: expected text to embed"
        : `input[${empty}] is an empty string: expected text to embed`,
      "input",
    );
  }
  return r;
}
