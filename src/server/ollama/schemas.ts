/**
 * Request validation of the Ollama routes (zod), as lenient as Ollama's Go decoder where it is
 * lenient (unknown fields ignored, null as absent) and strict on types: a string where a number
 * belongs is a 400 naming the field (validate.ts). Shapes follow api/types.go; the wire types
 * are in api/ollama.ts. Option values (temperature, num_ctx, ...) are checked by
 * runtime/options.ts, keep_alive by parseKeepAlive.
 */
import { z } from "zod";

const str = z.string().nullish();
const bool = z.boolean().nullish();

export const optionsSchema = z.record(z.string(), z.unknown()).nullish();

export const formatSchema = z
  .union([z.string(), z.record(z.string(), z.unknown())], {
    error: 'expected "json" or a JSON schema object',
  })
  .nullish();

export const keepAliveSchema = z
  .union([z.string(), z.number()], {
    error: 'expected a duration such as "5m" or a number of seconds',
  })
  .nullish();

const thinkSchema = z.union([z.boolean(), z.string()], { error: "expected a boolean or a string" }).nullish();

const modelSchema = z.string();

export const toolCallSchema = z.object({
  id: str,
  function: z.object({
    index: z.number().int().nullish(),
    name: z.string(),
    arguments: z.record(z.string(), z.unknown()).nullish(),
  }),
});

export const messageSchema = z.object({
  role: z.string(),
  content: z.string().nullish(),
  thinking: str,
  images: z.array(z.string()).nullish(),
  tool_calls: z.array(toolCallSchema).nullish(),
  tool_name: str,
  tool_call_id: str,
});

export const toolSchema = z.object({
  type: z.string().nullish(),
  function: z.object({
    name: z.string(),
    description: str,
    parameters: z.record(z.string(), z.unknown()).nullish(),
  }),
});

export const generateSchema = z.object({
  model: modelSchema,
  prompt: str,
  suffix: str,
  system: str,
  template: str,
  context: z.array(z.number().int().min(0)).nullish(),
  stream: bool,
  raw: bool,
  format: formatSchema,
  keep_alive: keepAliveSchema,
  images: z.array(z.string()).nullish(),
  options: optionsSchema,
  think: thinkSchema,
  truncate: bool,
  shift: bool,
  logprobs: bool,
  top_logprobs: z.number().int().min(0).max(20).nullish(),
});
export type GenerateBody = z.infer<typeof generateSchema>;

export const chatSchema = z.object({
  model: modelSchema,
  messages: z.array(messageSchema).nullish(),
  tools: z.array(toolSchema).nullish(),
  stream: bool,
  format: formatSchema,
  keep_alive: keepAliveSchema,
  options: optionsSchema,
  think: thinkSchema,
  truncate: bool,
  shift: bool,
  logprobs: bool,
  top_logprobs: z.number().int().min(0).max(20).nullish(),
});
export type ChatBody = z.infer<typeof chatSchema>;

export const embedSchema = z.object({
  model: modelSchema,
  input: z
    .union([z.string(), z.array(z.string())], { error: "expected a string or an array of strings" })
    .nullish(),
  truncate: bool,
  dimensions: z.number().int().min(0).nullish(),
  keep_alive: keepAliveSchema,
  options: optionsSchema,
});
export type EmbedBody = z.infer<typeof embedSchema>;

export const embeddingsSchema = z.object({
  model: modelSchema,
  prompt: str,
  keep_alive: keepAliveSchema,
  options: optionsSchema,
});

/** Requests naming one model by `model` or (older clients) `name`. */
const namedSchema = z.object({ model: str, name: str });

export const showSchema = namedSchema.extend({ verbose: bool, system: str });
export const deleteSchema = namedSchema;
export const pullSchema = namedSchema.extend({ insecure: bool, stream: bool });

export const copySchema = z.object({ source: z.string(), destination: z.string() });

export const createSchema = namedSchema.extend({
  stream: bool,
  from: str,
  files: z.record(z.string(), z.string()).nullish(),
  adapters: z.record(z.string(), z.string()).nullish(),
  template: str,
  license: z
    .union([z.string(), z.array(z.string())], { error: "expected a string or an array of strings" })
    .nullish(),
  system: str,
  parameters: z.record(z.string(), z.unknown()).nullish(),
  messages: z.array(messageSchema).nullish(),
  quantize: str,
  modelfile: str,
});
export type CreateBody = z.infer<typeof createSchema>;
