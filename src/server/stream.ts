/**
 * Streaming responses and client-disconnect detection, shared by the Ollama and OpenAI routes.
 *
 * - requestAbort: one AbortSignal that fires when the client goes away (the request's signal,
 *   which @hono/node-server aborts when the connection closes early), when the server shuts down
 *   (ServerContext.shutdown), or when a stream's reader is cancelled. Pass it to the scheduler
 *   (ModelRequest.signal) and to complete() so a departed client frees its sequence at once.
 * - ndjsonResponse: Ollama's streaming (application/x-ndjson, one JSON object per line).
 * - sseResponse: OpenAI's streaming (text/event-stream, `data: <json>` events, `data: [DONE]`).
 *
 * Both await the first item before answering, as Ollama does: an error raised before anything is
 * sent (unknown model, prompt too long, queue full) becomes a normal error response with its own
 * status; an error after that is written as a last line/event in the API's error shape.
 * Not here: what the items are (the routes), non-streaming answers.
 */
import { ServerResponse } from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Context } from "hono";
import type { LoadedModel } from "../runtime/types.ts";
import { mapError } from "./error-map.ts";
import { apiFamily, errorBody } from "./http-error.ts";

export interface RequestAbort {
  /** Fires on client disconnect, server shutdown, or abort(). */
  signal: AbortSignal;
  abort(reason?: unknown): void;
}

/** The abort signal of one request (see the module comment). */
export function requestAbort(c: Context, shutdown: AbortSignal): RequestAbort {
  const local = new AbortController();
  const signal = AbortSignal.any([c.req.raw.signal, shutdown, local.signal]);
  return { signal, abort: (reason) => local.abort(reason) };
}

export interface StreamOptions {
  /** Called once when the client stops reading before the last item (disconnect). */
  onCancel?: () => void;
  /**
   * Write each item as soon as it comes, in the turn that produced it. Default: on the next
   * event-loop turn, after the decode its producer queued has started (llama.cpp's native decode
   * then runs during the write). For a producer whose next step runs on the event loop itself
   * (the owl engine), waiting only adds a turn to every token.
   */
  writeAtOnce?: boolean;
}

interface StreamFormat {
  contentType: string;
  item(value: unknown): string;
  error(e: unknown): string;
  /** Written after the last item (SSE's `data: [DONE]`). */
  trailer?: string;
  headers?: Record<string, string>;
}

/**
 * StreamOptions.writeAtOnce for a model's tokens: on when the model decodes on the event loop
 * (LoadedModel.decodesOnEventLoop: nothing of the next token happens during the write, as with the
 * owl engine), off when it decodes on a native thread (llama.cpp) that the deferred write overlaps.
 */
export function writeAtOnce(model: Pick<LoadedModel, "decodesOnEventLoop">): boolean {
  return model.decodesOnEventLoop;
}

/** @hono/node-server leaves a response carrying this header alone: the route wrote it itself. */
const ALREADY_SENT_HEADER = "x-hono-already-sent";
/** The platform's Response class (@hono/node-server swaps the global for a lighter one, which
 * it would answer on its own); its marker was made with the real one. */
const AlreadySent = RESPONSE_ALREADY_SENT.constructor as typeof Response;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function streamResponse(
  c: Context,
  items: AsyncIterable<unknown>,
  format: StreamFormat,
  options: StreamOptions,
): Promise<Response> {
  const it = items[Symbol.asyncIterator]();
  // An error here propagates to the caller: a plain error response with its status.
  const first = await it.next();
  const headers: Record<string, string> = {
    "Content-Type": format.contentType,
    "Cache-Control": "no-cache",
    ...format.headers,
  };
  const outgoing = nodeResponse(c);
  if (outgoing) return writeDirect(c, outgoing, it, first, format, options, headers);
  return webStream(c, it, first, format, options, headers);
}

/** The Node response under @hono/node-server (`c.env.outgoing`); undefined elsewhere (app.request). */
function nodeResponse(c: Context): ServerResponse | undefined {
  const env = c.env as { outgoing?: unknown } | undefined;
  const out = env?.outgoing;
  return out instanceof ServerResponse && !out.headersSent ? out : undefined;
}

/**
 * Writes the items straight to Node's response, one write per item: per token this costs a
 * fraction of what a web ReadableStream piped by @hono/node-server does (a promise chain per
 * chunk on both sides), which a streaming decode pays on the thread that also feeds llama.cpp.
 * The headers middleware set on c.res (CORS) are copied; the route answers with
 * @hono/node-server's "already sent" marker, a fresh one per request (middleware may add
 * headers to it after the handler returns).
 */
function writeDirect(
  c: Context,
  out: ServerResponse,
  it: AsyncIterator<unknown>,
  first: IteratorResult<unknown>,
  format: StreamFormat,
  options: StreamOptions,
  own: Record<string, string>,
): Response {
  const headers: Record<string, string> = {};
  // Only CORS sets headers ahead of a route, and only for a request with an Origin header
  // (app.ts). Reading c.res otherwise would make Hono create one, which it then merges with the
  // route's marker into a new response that the node adapter writes again (headers sent twice).
  if (c.req.header("origin") !== undefined) {
    c.res.headers.forEach((value, key) => {
      headers[key] = value;
    });
  }
  Object.assign(headers, own);
  const origin = headers["access-control-allow-origin"];
  if (origin !== undefined && origin !== "*") headers.Vary = "Origin";
  out.writeHead(200, headers);

  let finished = false;
  const onClose = () => {
    if (finished) return;
    finished = true;
    options.onCancel?.();
    // Lets the producer run its finally blocks (release leases) once its pending step ends.
    void it.return?.()?.catch(() => {});
  };
  out.on("close", onClose);
  // Waits for the socket to take more when the client reads slower than we write.
  const write = (text: string): Promise<void> | undefined => {
    if (out.write(text)) return undefined;
    return new Promise<void>((resolve) => {
      const done = () => {
        out.off("drain", done);
        out.off("close", done);
        resolve();
      };
      out.on("drain", done);
      out.on("close", done);
    });
  };
  void (async () => {
    try {
      if (!first.done) {
        await write(format.item(first.value));
        for (;;) {
          if (finished) return;
          const r = await it.next();
          if (finished) return;
          if (r.done) break;
          const text = format.item(r.value);
          if (!options.writeAtOnce) {
            // Written on the next event-loop turn: the work this item's producer started for the
            // next one (a decode step queued for the next cycle) gets going before the write.
            await nextTurn();
            if (finished) return;
          }
          const pending = write(text);
          if (pending) await pending;
        }
      }
      if (format.trailer !== undefined) out.write(format.trailer);
    } catch (e) {
      if (!finished) out.write(format.error(e));
    }
    finished = true;
    out.end();
  })();
  return new AlreadySent(null, { headers: { [ALREADY_SENT_HEADER]: "true" } });
}

/** The same stream as a web ReadableStream, where there is no Node response (app.request()). */
function webStream(
  c: Context,
  it: AsyncIterator<unknown>,
  first: IteratorResult<unknown>,
  format: StreamFormat,
  options: StreamOptions,
  headers: Record<string, string>,
): Response {
  const encoder = new TextEncoder();
  let finished = false;
  const finish = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    finished = true;
    if (format.trailer !== undefined) controller.enqueue(encoder.encode(format.trailer));
    controller.close();
  };
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      if (first.done) finish(controller);
      else controller.enqueue(encoder.encode(format.item(first.value)));
    },
    async pull(controller) {
      if (finished) return;
      try {
        const r = await it.next();
        if (r.done) return finish(controller);
        const bytes = encoder.encode(format.item(r.value));
        if (!options.writeAtOnce) {
          await nextTurn();
          if (finished) return; // cancelled meanwhile
        }
        controller.enqueue(bytes);
      } catch (e) {
        finished = true;
        controller.enqueue(encoder.encode(format.error(e)));
        controller.close();
      }
    },
    cancel() {
      if (!finished) {
        finished = true;
        options.onCancel?.();
      }
      void it.return?.()?.catch(() => {});
    },
  });
  return c.body(stream, 200, headers);
}

/** Ollama's NDJSON stream: each item as one line of JSON. */
export function ndjsonResponse(
  c: Context,
  items: AsyncIterable<unknown>,
  options: StreamOptions = {},
): Promise<Response> {
  const family = apiFamily(c.req.path);
  return streamResponse(
    c,
    items,
    {
      contentType: "application/x-ndjson",
      item: (v) => `${JSON.stringify(v)}\n`,
      error: (e) => `${JSON.stringify(errorBody(family, mapError(e)))}\n`,
    },
    options,
  );
}

export interface SseOptions extends StreamOptions {
  /**
   * Named events, as OpenAI's Responses API and Anthropic's Messages API stream them: each item's
   * `type` is its event name (an `event:` line before its data), errors are `event: error`, and no
   * `data: [DONE]` ends the stream. Default: chat completions' unnamed events and `data: [DONE]`.
   */
  typedEvents?: boolean;
}

/**
 * OpenAI's server-sent events: `data: <json>\n\n` per item, then `data: [DONE]\n\n`; with
 * typedEvents, `event: <type>\n` before each and no `[DONE]`.
 */
export function sseResponse(
  c: Context,
  items: AsyncIterable<unknown>,
  options: SseOptions = {},
): Promise<Response> {
  const family = apiFamily(c.req.path);
  const eventOf = options.typedEvents ? (v: unknown) => (v as { type: string }).type : undefined;
  return streamResponse(
    c,
    items,
    {
      contentType: "text/event-stream",
      item: (v) => `${eventOf ? `event: ${eventOf(v)}\n` : ""}data: ${JSON.stringify(v)}\n\n`,
      error: (e) =>
        `${eventOf ? "event: error\n" : ""}data: ${JSON.stringify(errorBody(family, mapError(e)))}\n\n`,
      ...(options.typedEvents ? {} : { trailer: "data: [DONE]\n\n" }),
      headers: { Connection: "keep-alive" },
    },
    options,
  );
}

/**
 * An async stream of the values a callback-style job emits (store progress, pull progress): the
 * job runs at once; values are yielded in order; the job's error is thrown after the values
 * emitted before it; the stream ends when the job resolves.
 */
export async function* channel<T>(job: (emit: (value: T) => void) => Promise<void>): AsyncGenerator<T> {
  const queue: T[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  let failure: { error: unknown } | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  job((v) => {
    queue.push(v);
    notify();
  }).then(
    () => {
      done = true;
      notify();
    },
    (error: unknown) => {
      failure = { error };
      done = true;
      notify();
    },
  );
  for (;;) {
    const next = queue.shift();
    if (next !== undefined) {
      yield next;
      continue;
    }
    if (done) break;
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  if (failure) throw failure.error;
}
