/**
 * Validation of POST /v1/messages bodies (zod), with the checks of Ollama's
 * AnthropicMessagesMiddleware (middleware/anthropic.go: "model is required", "max_tokens is
 * required and must be positive", "messages is required") and Anthropic's documented ranges
 * (temperature and top_p in [0, 1], top_k >= 0). A bad field is a 400 whose message names it
 * ("messages.[0].content.[1].type").
 * Refused with a 400 naming the field (never a silent change): image and document blocks (owl's
 * models read text), server tools (web_search and the other typed tools: Ollama runs web search
 * in its cloud, owl has none), redacted_thinking and server tool blocks, images in tool results.
 * Ignored, as Ollama ignores them (its MessagesRequest has no such fields or does not read them):
 * cache_control on blocks and tools (prompt caching), thinking.budget_tokens, output_config's
 * other fields,
 * tool_choice.disable_parallel_tool_use, metadata, service_tier, a thinking block's signature,
 * a tool_result's is_error.
 * Not here: the wire types (api/anthropic.ts), the mapping onto chat (messages.ts).
 */
import { z } from "zod";
import type { AnthropicMessagesRequest } from "../../api/anthropic.ts";
import { badRequest, parseBody } from "../openai/schemas.ts";

const range = (lo: number, hi: number) =>
  z
    .number({ error: `expected a number in [${lo}, ${hi}]` })
    .check(z.refine((x: number) => x >= lo && x <= hi, { error: `expected a number in [${lo}, ${hi}]` }));
const int = (lo: number, what: string) =>
  z
    .number({ error: `expected ${what}` })
    .check(z.refine((x: number) => Number.isInteger(x) && x >= lo, { error: `expected ${what}` }));

const object = z.record(z.string(), z.unknown(), { error: "expected a JSON object" });

const textBlock = z.object({ type: z.literal("text"), text: z.string({ error: "expected a string" }) });

const refusedBlock = (what: string) =>
  `${what} blocks are not supported (owl's models read text only): expected "text", "tool_use", "tool_result" or "thinking"`;

/** A message's block: the type first, so that an unsupported one is named as such. */
const block = z
  .object({ type: z.string({ error: "expected the block's type" }) })
  .passthrough()
  .superRefine((b, ctx) => {
    if (!["text", "tool_use", "tool_result", "thinking"].includes(b.type)) {
      ctx.addIssue({
        code: "custom",
        path: ["type"],
        message:
          b.type === "image" || b.type === "document"
            ? refusedBlock(`"${b.type}"`)
            : `content blocks of type "${b.type}" are not supported: expected "text", "tool_use", "tool_result" or "thinking"`,
      });
    }
  })
  .pipe(
    z.discriminatedUnion("type", [
      textBlock,
      z.object({
        type: z.literal("tool_use"),
        id: z
          .string({ error: "expected the call's id" })
          .min(1, { error: "tool_use block missing required 'id' field" }),
        name: z
          .string({ error: "expected the tool's name" })
          .min(1, { error: "tool_use block missing required 'name' field" }),
        input: object,
      }),
      z.object({
        type: z.literal("tool_result"),
        tool_use_id: z.string({ error: "expected the id of the tool_use it answers" }),
        content: z
          .union([z.string(), z.array(textBlock)], {
            error: "expected a string or an array of text blocks (owl's models read text only)",
          })
          .optional(),
        is_error: z.boolean().optional(),
      }),
      z.object({
        type: z.literal("thinking"),
        thinking: z.string({ error: "expected a string" }),
        signature: z.string().optional(),
      }),
    ]),
  );

const message = z.object({
  role: z.enum(["user", "assistant"], { error: 'expected "user" or "assistant"' }),
  content: z.union([z.string(), z.array(block)], {
    error: "expected a string or an array of content blocks",
  }),
});

/** A tool: its type first, so that a server tool is named as such. */
const tool = z
  .object({ type: z.string({ error: "expected a string" }).optional() })
  .passthrough()
  .superRefine((t, ctx) => {
    if (t.type !== undefined && t.type !== "custom") {
      ctx.addIssue({
        code: "custom",
        path: ["type"],
        message: `server tools (${JSON.stringify(t.type)}) are not supported: owl runs client tools only (type "custom" or none)`,
      });
    }
  })
  .pipe(
    z.object({
      type: z.literal("custom").optional(),
      name: z.string({ error: "expected the tool's name" }).min(1, { error: "expected the tool's name" }),
      description: z.string({ error: "expected a string" }).optional(),
      input_schema: object,
    }),
  );

const toolChoice = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.enum(["auto", "any", "none"]), disable_parallel_tool_use: z.boolean().optional() }),
    z.object({
      type: z.literal("tool"),
      name: z.string({ error: "expected the tool's name" }),
      disable_parallel_tool_use: z.boolean().optional(),
    }),
  ],
  { error: 'expected {"type": "auto" | "any" | "tool" | "none"}' },
);

const messagesSchema = z.object({
  model: z.string({ error: "model is required" }).min(1, { error: "model is required" }),
  max_tokens: z.number({ error: "max_tokens is required and must be positive" }).check(
    z.refine((x: number) => Number.isInteger(x) && x >= 1, {
      error: "max_tokens is required and must be positive",
    }),
  ),
  messages: z.array(message, { error: "messages is required" }).min(1, { error: "messages is required" }),
  system: z
    .union([z.string(), z.array(textBlock)], { error: "expected a string or an array of text blocks" })
    .optional(),
  stream: z.boolean({ error: "expected a boolean" }).optional(),
  temperature: range(0, 1).optional(),
  top_p: range(0, 1).optional(),
  top_k: int(0, "an integer >= 0").optional(),
  stop_sequences: z.array(z.string(), { error: "expected an array of strings" }).optional(),
  tools: z.array(tool, { error: "expected an array of tools" }).optional(),
  tool_choice: toolChoice.optional(),
  thinking: z
    .discriminatedUnion(
      "type",
      [
        z.object({ type: z.literal("enabled"), budget_tokens: int(0, "an integer").optional() }),
        z.object({ type: z.literal("disabled") }),
        z.object({ type: z.literal("adaptive") }),
      ],
      {
        error:
          'expected {"type": "enabled", "budget_tokens": n}, {"type": "disabled"} or {"type": "adaptive"}',
      },
    )
    .optional(),
  output_config: z
    .object({
      effort: z
        .enum(["low", "medium", "high", "xhigh", "max"], {
          error: 'expected "low", "medium", "high", "xhigh" or "max"',
        })
        .optional(),
    })
    .passthrough()
    .optional(),
  metadata: z.object({ user_id: z.string().nullish() }).passthrough().optional(),
});

export function parseMessagesRequest(body: unknown): AnthropicMessagesRequest {
  const r = parseBody(messagesSchema, body) as AnthropicMessagesRequest;
  const choice = r.tool_choice;
  if (choice?.type === "tool" && !r.tools?.some((t) => t.name === choice.name)) {
    throw badRequest(
      `tool_choice names tool "${choice.name}" but tools has no tool of that name`,
      "tool_choice",
    );
  }
  if (choice?.type === "any" && !r.tools?.length) {
    throw badRequest('tool_choice "any" needs at least one tool in tools', "tool_choice");
  }
  return r;
}
