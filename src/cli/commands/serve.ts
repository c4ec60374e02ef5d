/**
 * `owl serve`: the HTTP server (Ollama's and OpenAI's APIs) on OWL_HOST, default 127.0.0.1:11434
 * so Ollama clients work unchanged. Builds the ServerContext from the environment (util/env.ts
 * serverSettings(): the store under OWL_HOME/models, a Scheduler with OWL_MAX_LOADED_MODELS,
 * OWL_NUM_PARALLEL, OWL_MAX_QUEUE, OWL_KEEP_ALIVE, OWL_CONTEXT_LENGTH, OWL_BACKEND, OWL_NUM_THREADS), prints
 * "owl is listening on <url>", logs one line per request and one per warning (an ignored option,
 * a prompt cut to fit) to stderr, and on SIGINT or SIGTERM
 * stops accepting, ends running generations, unloads every model and returns (exit 0).
 * A non-loopback OWL_HOST without OWL_API_KEYS is refused (ERR_UNSAFE_BIND, from startServer).
 * Not here: routes (src/server), loading and scheduling (src/runtime).
 */
import type { Command } from "commander";
import { createBackend } from "../../runtime/backends.ts";
import { parseKeepAlive } from "../../runtime/options.ts";
import { Scheduler } from "../../runtime/scheduler.ts";
import type { ServerContext, ServerWarning } from "../../server/context.ts";
import { checkBind, startServer } from "../../server/serve.ts";
import { defaultStoreRoot, ModelStore } from "../../store/store.ts";
import { serverSettings, serverThreads } from "../../util/env.ts";
import { OwlError } from "../../util/errors.ts";
import type { CliIO } from "../io.ts";
import { VERSION } from "../main.ts";

/** One request log line, like Ollama's: time | status | duration | method path. */
export function formatRequestLine(r: { method: string; path: string; status: number; ms: number }): string {
  const ms = r.ms >= 1000 ? `${(r.ms / 1000).toFixed(3)}s` : `${r.ms.toFixed(3)}ms`;
  return `${new Date().toISOString()} | ${r.status} | ${ms.padStart(10)} | ${r.method} ${r.path}\n`;
}

/** One warning log line (ServerContext.warn): time | WARN | method path: message, Ollama's
 * slog.Warn level name. */
export function formatWarningLine(w: ServerWarning): string {
  return `${new Date().toISOString()} | WARN | ${w.method} ${w.path}: ${w.message}\n`;
}

/**
 * Resolves on the first SIGINT or SIGTERM, with the signal's name; a second one while shutting
 * down exits at once. NOTE: the listeners stay installed: signal-exit (loaded by node-llama-cpp
 * through proper-lockfile) re-raises a signal when its own handlers are the only ones left, which
 * would kill the process in the middle of the clean shutdown.
 */
function untilSignal(io: CliIO): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (s: NodeJS.Signals) => {
      if (seen) {
        io.err(`owl: ${s} again: exiting without waiting\n`);
        process.exit(1);
      }
      seen = true;
      resolve(s);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

export function registerServe(program: Command, io: CliIO): void {
  program
    .command("serve")
    .description(
      "serve Ollama's and OpenAI's HTTP APIs on OWL_HOST (default 127.0.0.1:11434) until Ctrl-C or SIGTERM",
    )
    .action(async () => {
      const settings = serverSettings();
      checkBind(settings.host, settings.apiKeys);
      let keepAliveMs: number | undefined;
      try {
        keepAliveMs = parseKeepAlive(settings.keepAlive, "OWL_KEEP_ALIVE");
      } catch (e) {
        throw new OwlError(
          "ERR_INVALID_ARGUMENT",
          `OWL_KEEP_ALIVE must be a duration such as "5m", "1h" or "-1" (forever), found "${settings.keepAlive}"`,
          { cause: e },
        );
      }
      const threads = serverThreads();
      const store = new ModelStore(defaultStoreRoot());
      const scheduler = new Scheduler({
        createBackend: (name) => createBackend(name),
        maxLoadedModels: settings.maxLoadedModels,
        numParallel: settings.numParallel,
        maxQueue: settings.maxQueue,
        defaultKeepAliveMs: keepAliveMs ?? 5 * 60_000,
        defaultNumCtx: settings.contextLength,
        defaultBackend: settings.backend,
        ...(threads !== undefined ? { threads } : {}),
      });
      const shutdown = new AbortController();
      const ctx: ServerContext = {
        store,
        scheduler,
        settings,
        version: VERSION,
        shutdown: shutdown.signal,
        warn: (w) => io.err(formatWarningLine(w)),
      };
      // Listen for signals before the socket opens: a SIGTERM right after the listening line
      // must not kill the process without the clean shutdown.
      const signal = untilSignal(io);
      let server: Awaited<ReturnType<typeof startServer>>;
      try {
        server = await startServer(
          ctx,
          { host: settings.host, port: settings.port },
          {
            onRequest: (r) => io.err(formatRequestLine(r)),
            onInternalError: (e, req) => {
              const err = e as Error;
              io.err(
                `internal error on ${req.method} ${new URL(req.url).pathname}: ${err?.stack ?? String(e)}\n`,
              );
            },
          },
        );
      } catch (e) {
        await scheduler.close();
        throw e;
      }
      io.out(`owl is listening on ${server.url} (version ${VERSION})\n`);
      io.err(
        `owl: models in ${store.root}; backend ${settings.backend}, ${settings.numParallel} parallel, ` +
          `up to ${settings.maxLoadedModels} loaded, keep-alive ${settings.keepAlive}` +
          `${threads !== undefined ? `, ${threads} thread(s)` : ""}` +
          `${settings.apiKeys.length > 0 ? `, ${settings.apiKeys.length} API key(s)` : ""}\n`,
      );
      const got = await signal;
      io.err(`owl: ${got}: shutting down\n`);
      shutdown.abort();
      await server.close({ graceMs: 5000 });
      await scheduler.close();
      io.err("owl: stopped\n");
    });
}
