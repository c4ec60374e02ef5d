/**
 * The server's warnings for one request: input that was ignored (an option Ollama does not know,
 * one owl does not support) or changed (a prompt cut to fit the context). Ollama logs these with
 * slog.Warn and still answers (api/types.go FromMap: "invalid option provided"; llm/llama_server.go:
 * "truncating input prompt"); owl sends them to ServerContext.warn, which `owl serve` writes to
 * its log. Not here: the log's format (cli/commands/serve.ts).
 */
import type { Context } from "hono";
import type { ServerContext } from "./context.ts";

export type Warn = (message: string) => void;

/** A warn function for the request `c` (a no-op when the server has no log). */
export function requestWarn(ctx: ServerContext, c: Context): Warn {
  const log = ctx.warn;
  if (log === undefined) return () => {};
  return (message) => log({ method: c.req.method, path: c.req.path, message });
}

/** Log each of `warnings` (ResolvedOptions.warnings). */
export function logWarnings(warn: Warn, warnings: readonly string[]): void {
  for (const w of warnings) warn(w);
}
