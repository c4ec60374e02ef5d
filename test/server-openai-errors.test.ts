/**
 * Errors of the OpenAI-compatible API over a real socket, as clients see them: the `openai` npm
 * package's typed errors (AuthenticationError, NotFoundError, BadRequestError with .param and
 * .code) and raw fetch for what a client library never sends (malformed JSON, an oversize body,
 * a client that disconnects mid-stream). One server for the file, with an API key configured
 * (as OWL_API_KEYS would) and a 512-token context. Expected shapes: OpenAI's documented error body
 * `{"error": {"message", "type", "param", "code"}}`.
 * Not here: successful requests (server-openai.test.ts).
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer } from "./helpers/server-openai.ts";

const KEY = "sk-owl-test";
const MODEL = "stories260k";

let srv: Awaited<ReturnType<typeof startTestServer>>;
let client: OpenAI;

beforeAll(async () => {
  srv = await startTestServer({ apiKeys: [KEY], contextLength: 512, maxBodyBytes: 16 * 1024 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

afterAll(async () => {
  await srv?.close();
});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected the request to fail");
}

function post(path: string, body: string, headers: Record<string, string> = {}) {
  return fetch(`${srv.url}${path}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json", ...headers },
    body,
  });
}

interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

describe("authentication", () => {
  it("a wrong key is an AuthenticationError (401) in OpenAI's shape", async () => {
    const bad = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
    const e = await rejection(bad.models.list());
    expect(e).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((e as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);
    expect((e as InstanceType<typeof OpenAI.AuthenticationError>).type).toBe("authentication_error");
  });

  it("no Authorization header at all: 401 with a JSON error body", async () => {
    const r = await fetch(`${srv.url}/v1/models`);
    expect(r.status).toBe(401);
    const body = (await r.json()) as ErrorBody;
    expect(body.error.type).toBe("authentication_error");
  });
});

describe("unknown model", () => {
  it("chat, completions, embeddings and retrieve: NotFoundError, code model_not_found, param model", async () => {
    const calls = [
      () => client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "hi" }] }),
      () => client.completions.create({ model: "nope", prompt: "hi" }),
      () => client.embeddings.create({ model: "nope", input: "hi" }),
      () => client.models.retrieve("nope"),
    ];
    for (const call of calls) {
      const e = (await rejection(call())) as InstanceType<typeof OpenAI.NotFoundError>;
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect(e.code).toBe("model_not_found");
      expect(e.param).toBe("model");
      expect(e.message).toContain("nope");
    }
  });
});

describe("invalid parameters: BadRequestError naming the field", () => {
  const base = { model: MODEL, messages: [{ role: "user" as const, content: "hi" }] };
  const cases: [string, Record<string, unknown>, string][] = [
    ["n > 1", { n: 2 }, "n"],
    ["top_logprobs beyond 20", { logprobs: true, top_logprobs: 21 }, "top_logprobs"],
    ["five stop strings", { stop: ["a", "b", "c", "d", "e"] }, "stop"],
    ["temperature 3", { temperature: 3 }, "temperature"],
    ["negative max_tokens", { max_tokens: -5 }, "max_tokens"],
    ["presence_penalty -3", { presence_penalty: -3 }, "presence_penalty"],
    ["logit_bias beyond 100", { logit_bias: { "5": 101 } }, "logit_bias.5"],
    ["an unknown response_format type", { response_format: { type: "xml" } }, "response_format.type"],
    [
      "tool_choice naming a missing tool",
      { tool_choice: { type: "function", function: { name: "f" } } },
      "tool_choice",
    ],
  ];
  for (const [what, extra, param] of cases) {
    it(what, async () => {
      const e = (await rejection(
        client.chat.completions.create({
          ...base,
          ...extra,
        } as OpenAI.ChatCompletionCreateParamsNonStreaming),
      )) as InstanceType<typeof OpenAI.BadRequestError>;
      expect(e).toBeInstanceOf(OpenAI.BadRequestError);
      expect(e.type).toBe("invalid_request_error");
      expect(e.param).toBe(param);
    });
  }

  it("a JSON schema the grammar cannot enforce names response_format.json_schema.schema", async () => {
    const e = (await rejection(
      client.chat.completions.create({
        ...base,
        response_format: {
          type: "json_schema",
          json_schema: {
            name: "x",
            schema: { type: "object", properties: { a: { type: "string", pattern: "^a+$" } } },
          },
        },
      }),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe("response_format.json_schema.schema");
    expect(e.message).toContain("pattern");
  });

  it("a message with an unknown role names messages.[1].role", async () => {
    const e = (await rejection(
      client.chat.completions.create({
        model: MODEL,
        messages: [
          { role: "user", content: "hi" },
          { role: "robot", content: "x" },
        ],
      } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.param).toBe("messages.[1].role");
  });

  it("completions: suffix is refused, logprobs beyond 5 too", async () => {
    let e = (await rejection(
      client.completions.create({ model: MODEL, prompt: "a", suffix: "b" }),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.param).toBe("suffix");
    e = (await rejection(
      client.completions.create({ model: MODEL, prompt: "a", logprobs: 6 }),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.param).toBe("logprobs");
  });

  it("embeddings: dimensions beyond the model's size, token arrays", async () => {
    let e = (await rejection(
      client.embeddings.create({ model: MODEL, input: "a", dimensions: 65, encoding_format: "float" }),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.param).toBe("dimensions");
    expect(e.message).toContain("64");
    e = (await rejection(
      client.embeddings.create({ model: MODEL, input: [[1, 2, 3]], encoding_format: "float" }),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.param).toBe("input");
    e = (await rejection(
      client.embeddings.create({ model: MODEL, input: ["ok", ""], encoding_format: "float" }),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe("input");
    const long = "Once upon a time there was a little girl. ".repeat(60);
    e = (await rejection(
      client.embeddings.create({ model: MODEL, input: long, encoding_format: "float" }),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.code).toBe("context_length_exceeded");
    expect(e.param).toBe("input");
  });

  it("a prompt longer than the context: 400 naming both numbers", async () => {
    const prompt = "Once upon a time there was a little girl. ".repeat(60);
    const e = (await rejection(
      client.completions.create({ model: MODEL, prompt, max_tokens: 4 }),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.param).toBe("prompt");
    expect(e.code).toBe("context_length_exceeded");
    expect(e.message).toMatch(/\d+ tokens/);
    expect(e.message).toContain("512");
  });

  it("a chat longer than the context: 400 context_length_exceeded naming messages", async () => {
    const content = "Once upon a time there was a little girl. ".repeat(60);
    const e = (await rejection(
      client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content }], stream: true }),
    )) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect(e.code).toBe("context_length_exceeded");
    expect(e.param).toBe("messages");
    expect(e.message).toContain("512");
  });
});

describe("raw requests", () => {
  it("malformed JSON: 400 invalid_request_error", async () => {
    const r = await post("/v1/chat/completions", '{"model": "stories260k", "messages": [');
    expect(r.status).toBe(400);
    const body = (await r.json()) as ErrorBody;
    expect(body.error.type).toBe("invalid_request_error");
    expect(body.error.message).toMatch(/JSON/);
  });

  it("a body that is not an object: 400", async () => {
    const r = await post("/v1/completions", "[1, 2]");
    expect(r.status).toBe(400);
    expect(((await r.json()) as ErrorBody).error.type).toBe("invalid_request_error");
  });

  it("an oversize body: 413 in OpenAI's shape", async () => {
    const big = JSON.stringify({ model: MODEL, prompt: "x".repeat(32 * 1024) });
    const r = await post("/v1/completions", big);
    expect(r.status).toBe(413);
    const body = (await r.json()) as ErrorBody;
    expect(body.error.message).toMatch(/limit/);
  });

  const streams: [string, Record<string, unknown>][] = [
    ["/v1/completions", { prompt: "Once upon a time" }],
    ["/v1/chat/completions", { messages: [{ role: "user", content: "Once upon a time" }] }],
  ];
  for (const [path, body] of streams)
    it(`${path}: a client that disconnects mid-stream frees its sequence; the server keeps serving`, async () => {
      const r = await post(
        path,
        JSON.stringify({ model: MODEL, max_tokens: 10_000, stream: true, temperature: 0, ...body }),
      );
      const reader = r.body!.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toMatch(/^data: /);
      await reader.cancel();
      // The generation ends and its sequence goes back: nothing stays active.
      for (let i = 0; i < 200 && srv.ctx.scheduler.running().some((m) => m.active > 0); i++) {
        await new Promise((res) => setTimeout(res, 10));
      }
      expect(srv.ctx.scheduler.running().every((m) => m.active === 0)).toBe(true);
      const ok = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 3 });
      expect(ok.choices[0]!.finish_reason).toBe("length");
    });
});
