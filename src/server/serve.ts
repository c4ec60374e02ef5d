/**
 * The server's socket: createApp on @hono/node-server, listening on a host and port (port 0 picks
 * a free one), refusing to listen beyond loopback without API keys (ERR_UNSAFE_BIND), and a
 * graceful close: stop accepting, let running requests finish (generations end early when the
 * owner aborts ServerContext.shutdown), then drop what is left after a grace period.
 * Not here: routes and middleware (app.ts), the scheduler's and store's lifetimes (their owner,
 * `owl serve` or a test, closes them after the server).
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer } from "@hono/node-server";
import { OwlError } from "../util/errors.ts";
import { type AppOptions, createApp } from "./app.ts";
import { isLoopbackHost } from "./auth.ts";
import type { ServerContext } from "./context.ts";

export interface ListenOptions {
  host: string;
  /** 0: any free port. */
  port: number;
}

export interface RunningServer {
  /** "http://127.0.0.1:11434" (IPv6 hosts in brackets). */
  url: string;
  host: string;
  port: number;
  /**
   * Stop accepting connections, wait for running requests up to `graceMs` (default 10 s), then
   * close every connection left. Abort ServerContext.shutdown first to end generations at once.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

/** ERR_UNSAFE_BIND unless `host` is loopback or API keys are configured. */
export function checkBind(host: string, apiKeys: readonly string[]): void {
  if (isLoopbackHost(host) || apiKeys.length > 0) return;
  throw new OwlError(
    "ERR_UNSAFE_BIND",
    `refusing to listen on ${host}: it is reachable from other machines and no API key is configured, so anyone on the network could use the server`,
    {
      hint: `set OWL_API_KEYS to one or more comma-separated secret keys (clients then send "Authorization: Bearer <key>"), or listen on loopback with OWL_HOST=127.0.0.1:${11434}`,
      details: { host },
    },
  );
}

export async function startServer(
  ctx: ServerContext,
  listen: ListenOptions,
  appOptions: AppOptions = {},
): Promise<RunningServer> {
  checkBind(listen.host, ctx.settings.apiKeys);
  const app = createApp(ctx, appOptions);
  const server = createAdaptorServer({ fetch: app.fetch, hostname: listen.host }) as Server;
  // Generations can stream for longer than Node's default request timeout (300 s) allows.
  server.requestTimeout = 0;
  // Node closes a keep-alive connection after 5 s idle, racing a client that reuses it from its
  // pool at that moment (ECONNRESET, "socket hang up"); Ollama's Go server keeps idle
  // connections open. A minute, as common HTTP proxies do.
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      const busy = e.code === "EADDRINUSE";
      reject(
        new OwlError(
          "ERR_IO",
          busy
            ? `cannot listen on ${listen.host}:${listen.port}: the port is in use (another owl or Ollama server?)`
            : `cannot listen on ${listen.host}:${listen.port}: ${e.message}`,
          {
            hint: busy
              ? "stop the other server, or pick another port with OWL_HOST=127.0.0.1:<port>"
              : undefined,
            cause: e,
          },
        ),
      );
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen(listen.port, listen.host);
  });

  const address = server.address() as AddressInfo;
  const port = address.port;
  const hostForUrl = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  let closing: Promise<void> | undefined;

  return {
    url: `http://${hostForUrl}:${port}`,
    host: listen.host,
    port,
    close(options = {}) {
      closing ??= new Promise<void>((resolve) => {
        const graceMs = options.graceMs ?? 10_000;
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
