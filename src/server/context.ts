/**
 * What every route handler of the HTTP server gets: the store, the scheduler, the settings and the
 * version. Built once by `owl serve` (cli/commands/serve.ts) or by a test, and passed to createApp
 * (app.ts). Not here: routes, the error map.
 */
import type { SchedulerApi } from "../runtime/types.ts";
import type { ModelStoreApi } from "../store/types.ts";
import type { ServerSettings } from "../util/env.ts";

export interface ServerContext {
  store: ModelStoreApi;
  scheduler: SchedulerApi;
  settings: ServerSettings;
  /** owl's version, answered by /api/version. */
  version: string;
  /** Aborted when the server shuts down: running generations end. */
  shutdown: AbortSignal;
  /**
   * The server's log of things a request asked for that were ignored or changed (an unknown
   * option, a prompt cut to fit the context), as Ollama's slog.Warn lines; `owl serve` writes
   * each to stderr. Optional: without it nothing is logged.
   */
  warn?: (warning: ServerWarning) => void;
}

export interface ServerWarning {
  method: string;
  path: string;
  /** "invalid option provided: options.foo is not an Ollama option; ignored". */
  message: string;
}
