/**
 * The OpenAI routes when the scheduler's queue is full: one sequence, no queue (OWL_NUM_PARALLEL=1,
 * OWL_MAX_QUEUE=0 as settings), so a request that arrives while another generates is answered
 * 503 in OpenAI's error shape at once (the openai client's InternalServerError family, status
 * 503), and the server serves again once the first is done.
 * Not here: the scheduler's own queueing rules (runtime-scheduler.test.ts).
 */
import OpenAI from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestServer } from "./helpers/server-openai.ts";

let srv: Awaited<ReturnType<typeof startTestServer>>;
let client: OpenAI;

beforeAll(async () => {
  srv = await startTestServer({ numParallel: 1, maxQueue: 0, contextLength: 512 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "x", maxRetries: 0 });
});

afterAll(async () => {
  await srv?.close();
});

it("a request beyond the queue gets 503 while the only sequence streams; then the server serves again", async () => {
  const stream = await client.chat.completions.create({
    model: "stories260k",
    messages: [{ role: "user", content: "Once upon a time" }],
    temperature: 0,
    max_tokens: 400,
    stream: true,
  });
  const it = stream[Symbol.asyncIterator]();
  await it.next(); // the role chunk: the sequence is taken
  let error: unknown;
  try {
    await client.chat.completions.create({
      model: "stories260k",
      messages: [{ role: "user", content: "hi" }],
    });
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(OpenAI.APIError);
  const e = error as InstanceType<typeof OpenAI.APIError>;
  expect(e.status).toBe(503);
  expect(typeof (e.error as { message?: unknown }).message).toBe("string");
  stream.controller.abort();
  for (let i = 0; i < 200 && srv.ctx.scheduler.running().some((m) => m.active > 0); i++) {
    await new Promise((res) => setTimeout(res, 10));
  }
  const ok = await client.completions.create({ model: "stories260k", prompt: "Once", max_tokens: 2 });
  expect(ok.choices[0]!.finish_reason).toBe("length");
});
