/**
 * The HTTP app: middleware (CORS, Host check, API keys, body size limit), the probe routes
 * (`GET|HEAD /` answers "Ollama is running", the text Ollama clients look for; /api/version), the
 * Ollama routes (ollama/routes.ts), the OpenAI routes (openai/routes.ts) and Anthropic's
 * /v1/messages (anthropic/routes.ts) on one Hono app, and
 * the error handling that answers every failure in the shape of the request's API: unknown
 * routes 404, oversize bodies 413, OwlErrors by error-map.ts, anything else 500.
 * Not here: the socket and its lifetime (serve.ts), the routes themselves.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { OwlError } from "../util/errors.ts";
import { registerAnthropicRoutes } from "./anthropic/routes.ts";
import { authMiddleware, hostCheckMiddleware, isLoopbackHost, originMatcher } from "./auth.ts";
import type { ServerContext } from "./context.ts";
import { errorResponse } from "./http-error.ts";
import { registerOllamaRoutes } from "./ollama/routes.ts";
import { registerOpenAiRoutes } from "./openai/routes.ts";

export interface AppOptions {
  /** Told about errors that are owl's bugs (not OwlErrors); the client only sees a 500. */
  onInternalError?: (e: unknown, request: Request) => void;
  /** Told about every request once its response starts (`owl serve` logs one line each);
   * `ms` runs to the response's headers, not to the end of a stream. */
  onRequest?: (r: { method: string; path: string; status: number; ms: number }) => void;
}

/** Request headers a browser client may send (Ollama's list: OpenAI's SDK adds x-stainless-*;
 * Anthropic's SDK sends x-api-key and anthropic-*). */
const ALLOW_HEADERS = [
  "Authorization",
  "Content-Type",
  "User-Agent",
  "Accept",
  "X-Requested-With",
  "OpenAI-Beta",
  "x-api-key",
  "anthropic-version",
  "anthropic-beta",
  "anthropic-dangerous-direct-browser-access",
  "x-stainless-arch",
  "x-stainless-async",
  "x-stainless-custom-poll-interval",
  "x-stainless-helper-method",
  "x-stainless-lang",
  "x-stainless-os",
  "x-stainless-package-version",
  "x-stainless-poll-helper",
  "x-stainless-retry-count",
  "x-stainless-runtime",
  "x-stainless-runtime-version",
  "x-stainless-timeout",
];

/** Methods whose requests owl never reads a body of. */
const BODILESS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/** Routes whose bodies are model files, exempt from OWL_MAX_BODY (Ollama has no limit there). */
function isBlobUpload(path: string): boolean {
  return path.startsWith("/api/blobs/");
}

export function createApp(ctx: ServerContext, options: AppOptions = {}): Hono {
  const app = new Hono();
  const settings = ctx.settings;

  const onRequest = options.onRequest;
  if (onRequest) {
    app.use("*", async (c, next) => {
      const t0 = performance.now();
      await next();
      onRequest({ method: c.req.method, path: c.req.path, status: c.res.status, ms: performance.now() - t0 });
    });
  }

  const allowOrigin = originMatcher(settings.origins);
  const corsHeaders = cors({
    origin: (origin) => (allowOrigin(origin) ? origin : null),
    allowMethods: ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"],
    allowHeaders: ALLOW_HEADERS,
  });
  // A request without an Origin header is no CORS request: it gets no CORS headers, as Ollama's
  // (gin-contrib/cors returns at once without one). Hono's cors would still add "Vary: Origin"
  // after the route, which makes the node adapter build the whole web Response it had kept lazy.
  // (stream.ts's writeDirect relies on this: without an Origin, no middleware set headers.)
  app.use("*", async (c, next) => (c.req.header("origin") === undefined ? next() : corsHeaders(c, next)));
  if (isLoopbackHost(settings.host)) app.use("*", hostCheckMiddleware());
  app.use("*", authMiddleware(settings.apiKeys));

  const limit = bodyLimit({
    maxSize: settings.maxBodyBytes,
    onError: (c) =>
      errorResponse(
        c,
        new OwlError(
          "ERR_BODY_TOO_LARGE",
          `request body is larger than the server's limit of ${settings.maxBodyBytes} bytes`,
          { hint: "send a smaller body, or raise OWL_MAX_BODY on the server" },
        ),
      ),
  });
  // Requests without a body skip the limit: looking for a body makes the node adapter build the
  // whole web Request (a stream, an AbortSignal), about a quarter of a GET /api/tags.
  app.use("*", async (c, next) =>
    BODILESS.has(c.req.method) || isBlobUpload(c.req.path) ? next() : limit(c, next),
  );

  // Hono answers HEAD with the GET route's headers and no body.
  app.get("/", (c) => c.text("Ollama is running"));
  app.get("/api/version", (c) => c.json({ version: ctx.version }));

  registerOllamaRoutes(app, ctx);
  registerOpenAiRoutes(app, ctx);
  registerAnthropicRoutes(app, ctx);

  app.notFound((c) =>
    errorResponse(
      c,
      new OwlError("ERR_NOT_FOUND_ROUTE", `no route for ${c.req.method} ${c.req.path} on this server`),
    ),
  );
  app.onError((e, c) => {
    if (!(e instanceof OwlError)) options.onInternalError?.(e, c.req.raw);
    return errorResponse(c, e);
  });
  return app;
}
