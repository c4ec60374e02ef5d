/**
 * The CLI's small client of owl's own Ollama-compatible HTTP API (`owl ps`, `owl stop`, `owl run`
 * through a running server): JSON requests and NDJSON streams over fetch, the server address from
 * OWL_HOST (a wildcard bind address is reached through loopback), and errors as OwlErrors: no
 * server is ERR_SERVER_UNREACHABLE with a hint to start one, an error answer keeps the server's
 * message and gets the code of its HTTP status.
 * When OWL_API_KEYS is set, its first key is sent as `Authorization: Bearer <key>`, so the CLI on
 * the server's own machine works with the same environment.
 * Not here: the server (src/server), printing (commands/*.ts).
 */
import { serverSettings } from "../util/env.ts";
import { OwlError, type OwlErrorCode } from "../util/errors.ts";

/** Ollama's metrics of the final chunk of /api/generate and /api/chat (durations in ns). */
export interface OllamaMetrics {
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
}

/** One NDJSON chunk of /api/generate. */
export interface GenerateChunk extends OllamaMetrics {
  model: string;
  created_at?: string;
  response: string;
  /** A thinking model's thinking. */
  thinking?: string;
  done: boolean;
  done_reason?: string;
  context?: number[];
}

export interface ChatMessageWire {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** A thinking model's thinking (answers only). */
  thinking?: string;
}

/** One NDJSON chunk of /api/chat. */
export interface ChatChunk extends OllamaMetrics {
  model: string;
  created_at?: string;
  message?: ChatMessageWire;
  done: boolean;
  done_reason?: string;
}

/** One entry of GET /api/ps. */
export interface RunningModelWire {
  name: string;
  model?: string;
  size: number;
  digest: string;
  /** RFC 3339; far in the future (or absent) for a model kept forever. */
  expires_at?: string | null;
  size_vram?: number;
  context_length?: number;
}

export interface ClientOptions {
  /** "http://127.0.0.1:11434" (no trailing slash). */
  baseUrl: string;
  apiKey?: string;
}

/** The URL a client uses to reach a server bound to `host:port` (wildcards through loopback). */
export function clientBaseUrl(host: string, port: number): string {
  let h = host;
  if (h === "0.0.0.0" || h === "") h = "127.0.0.1";
  else if (h === "::" || h === "[::]") h = "::1";
  return `http://${h.includes(":") ? `[${h}]` : h}:${port}`;
}

/** An HTTP status as an owl error code, for answers that are errors. */
function codeForStatus(status: number): OwlErrorCode {
  switch (status) {
    case 400:
      return "ERR_BAD_REQUEST";
    case 401:
    case 403:
      return "ERR_UNAUTHORIZED";
    case 404:
      return "ERR_MODEL_NOT_FOUND";
    case 413:
      return "ERR_BODY_TOO_LARGE";
    case 503:
      return "ERR_QUEUE_FULL";
    default:
      return "ERR_IO";
  }
}

function isAbortError(e: unknown): boolean {
  return e instanceof Error && (e.name === "AbortError" || e.name === "TimeoutError");
}

export class OwlClient {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
  }

  /** The server named by OWL_HOST, with the first OWL_API_KEYS key. */
  static fromEnv(): OwlClient {
    const s = serverSettings();
    const apiKey = s.apiKeys[0];
    return new OwlClient({
      baseUrl: clientBaseUrl(s.host, s.port),
      ...(apiKey !== undefined ? { apiKey } : {}),
    });
  }

  private headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: "application/json" };
    if (json) h["content-type"] = "application/json";
    if (this.apiKey !== undefined) h.authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  /** fetch, with a refused connection turned into ERR_SERVER_UNREACHABLE and errors into OwlErrors. */
  private async request(
    method: "GET" | "POST" | "HEAD",
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    const url = `${this.baseUrl}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: this.headers(body !== undefined),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      if (isAbortError(e) && signal?.aborted && signal.reason?.name !== "TimeoutError") {
        throw new OwlError("ERR_ABORTED", `${method} ${url} was cancelled`, { cause: e });
      }
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = isAbortError(e) ? "no answer in time" : (cause?.code ?? cause?.message ?? String(e));
      throw new OwlError(
        "ERR_SERVER_UNREACHABLE",
        `could not reach the owl server at ${this.baseUrl} (${why})`,
        {
          hint: "start it with `owl serve` (or set OWL_HOST to the address it listens on)",
          details: { url },
          cause: e,
        },
      );
    }
    if (!res.ok) throw await errorFromResponse(res, method, path);
    return res;
  }

  async getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
    const res = await this.request("GET", path, undefined, signal);
    return (await res.json()) as T;
  }

  async postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.request("POST", path, body, signal);
    const text = await res.text();
    return (text.trim() === "" ? {} : JSON.parse(text)) as T;
  }

  /**
   * POST with `stream: true` and yield each NDJSON object as it arrives. A chunk carrying
   * `error` (an error after streaming began, as Ollama sends it) is thrown as an OwlError.
   * Aborting the signal cancels the request (the server sees the client go away).
   */
  async *stream<T>(path: string, body: Record<string, unknown>, signal?: AbortSignal): AsyncGenerator<T> {
    const res = await this.request("POST", path, { ...body, stream: true }, signal);
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    const parse = (line: string): T => {
      const obj = JSON.parse(line) as T & { error?: unknown };
      if (typeof obj.error === "string") {
        throw new OwlError("ERR_IO", `the server stopped the answer: ${obj.error}`, { details: { path } });
      }
      return obj;
    };
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let nl = buffer.indexOf("\n");
        while (nl >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line !== "") yield parse(line);
          nl = buffer.indexOf("\n");
        }
      }
    } catch (e) {
      if (isAbortError(e) || signal?.aborted) {
        throw new OwlError("ERR_ABORTED", `POST ${this.baseUrl}${path} was cancelled`, { cause: e });
      }
      throw e;
    }
    buffer += decoder.decode();
    if (buffer.trim() !== "") yield parse(buffer.trim());
  }

  /** GET /api/version within `timeoutMs`: the server's version, or undefined when none answers. */
  async probe(timeoutMs = 2000): Promise<string | undefined> {
    try {
      const v = await this.getJson<{ version?: string }>("/api/version", AbortSignal.timeout(timeoutMs));
      return typeof v.version === "string" ? v.version : "";
    } catch {
      return undefined;
    }
  }
}

async function errorFromResponse(res: Response, method: string, path: string): Promise<OwlError> {
  let message = "";
  const text = await res.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { error?: string | { message?: string } };
    if (typeof body.error === "string") message = body.error;
    else if (typeof body.error?.message === "string") message = body.error.message;
  } catch {
    message = text.trim().slice(0, 200);
  }
  if (message === "") message = res.statusText || `status ${res.status}`;
  const code = codeForStatus(res.status);
  return new OwlError(code, message, {
    ...(code === "ERR_UNAUTHORIZED"
      ? { hint: "set OWL_API_KEYS to a key the server accepts (its first key is sent)" }
      : {}),
    details: { status: res.status, method, path },
  });
}
