/**
 * Who may talk to the server: bearer API keys (OWL_API_KEYS; every route but `/` and
 * `/api/version` needs `Authorization: Bearer <key>`, or `x-api-key: <key>` as Anthropic's
 * clients send it, when any key is set, compared in constant time), which addresses are loopback
 * (binding elsewhere needs a key, see serve.ts), the Host header check that keeps a loopback
 * server out of DNS-rebinding attacks (as Ollama's allowedHostsMiddleware), and the CORS origins
 * allowed (loopback, as Ollama's defaults, plus OWL_ORIGINS).
 * Not here: the error shapes (http-error.ts).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import type { MiddlewareHandler } from "hono";
import { OwlError } from "../util/errors.ts";
import { errorResponse } from "./http-error.ts";

/** Routes open without a key: what clients probe to find a running server (as Ollama). */
const OPEN_PATHS = new Set(["/", "/api/version"]);

/** Whether an Authorization header carries one of `keys` (constant time in the key's bytes). */
export function bearerMatches(header: string | undefined, keys: readonly string[]): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header?.trim() ?? "");
  if (!m?.[1]) return false;
  return keyMatches(m[1], keys);
}

/** Whether a key is one of `keys` (constant time in the key's bytes). */
export function keyMatches(key: string, keys: readonly string[]): boolean {
  if (key.trim() === "") return false;
  // Hashing first gives equal-length buffers, so timingSafeEqual never leaks a key's length.
  const given = createHash("sha256").update(key.trim()).digest();
  let ok = false;
  for (const key of keys) {
    const want = createHash("sha256").update(key).digest();
    ok = timingSafeEqual(given, want) || ok;
  }
  return ok;
}

/** 401 in the API's shape unless the request carries a key (no keys: everything is open). */
export function authMiddleware(keys: readonly string[]): MiddlewareHandler {
  return async (c, next) => {
    if (keys.length === 0 || OPEN_PATHS.has(c.req.path) || c.req.method === "OPTIONS") return next();
    if (bearerMatches(c.req.header("authorization"), keys)) return next();
    // Anthropic's clients (Claude Code with ANTHROPIC_API_KEY) send the key in x-api-key.
    const apiKey = c.req.header("x-api-key");
    if (apiKey !== undefined && keyMatches(apiKey, keys)) return next();
    const given =
      c.req.header("authorization") === undefined && apiKey === undefined
        ? "no Authorization header"
        : "a key that is not one of them";
    return errorResponse(
      c,
      new OwlError(
        "ERR_UNAUTHORIZED",
        `unauthorized: this server requires "Authorization: Bearer <key>" (or "x-api-key: <key>") with one of its API keys (OWL_API_KEYS), found ${given}`,
      ),
    );
  };
}

/** Whether a host name or address is the loopback interface (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const v4 = h.startsWith("::ffff:") ? h.slice(7) : h;
  if (isIP(v4) === 4) return v4.startsWith("127.");
  // The URL parser writes an IPv6 address in its shortest form: 0:0:0:0:0:0:0:1 -> [::1].
  if (isIP(h) === 6) return new URL(`http://[${h}]/`).hostname === "[::1]";
  return false;
}

/** Host header names a loopback server answers to; others get 403 (DNS rebinding). */
function allowedHostHeader(hostHeader: string): boolean {
  let host = hostHeader.trim().toLowerCase();
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracket?.[1]) host = bracket[1];
  else if (host.split(":").length === 2) host = host.split(":")[0] ?? "";
  if (host === "" || isLoopbackHost(host)) return true;
  if (isIP(host) !== 0) return true; // an address: not a rebinding name
  return /\.(localhost|local|internal)$/.test(host);
}

/**
 * For a server bound to loopback: refuse requests whose Host header is a public name, so a web
 * page on such a name cannot reach the server through DNS rebinding (as Ollama).
 */
export function hostCheckMiddleware(): MiddlewareHandler {
  return async (c, next) => {
    const host = c.req.header("host");
    if (host === undefined || allowedHostHeader(host)) return next();
    return c.json(
      { error: `host "${host}" is not allowed: a loopback server answers to local names only` },
      403,
    );
  };
}

/** Ollama's default allowed origins (envconfig.AllowedOrigins): loopback on any port, apps. */
const DEFAULT_ORIGIN_PATTERNS = [
  "http://localhost",
  "https://localhost",
  "http://localhost:*",
  "https://localhost:*",
  "http://127.0.0.1",
  "https://127.0.0.1",
  "http://127.0.0.1:*",
  "https://127.0.0.1:*",
  "http://0.0.0.0",
  "https://0.0.0.0",
  "http://0.0.0.0:*",
  "https://0.0.0.0:*",
  "http://[::1]",
  "https://[::1]",
  "http://[::1]:*",
  "https://[::1]:*",
  "app://*",
  "file://*",
  "tauri://*",
  "vscode-webview://*",
  "vscode-file://*",
];

function originPattern(p: string): RegExp {
  const re = p
    .split("*")
    .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${re}$`, "i");
}

/** A CORS origin matcher: the defaults plus `extra` (OWL_ORIGINS, `*` wildcards allowed). */
export function originMatcher(extra: readonly string[]): (origin: string) => boolean {
  const patterns = [...DEFAULT_ORIGIN_PATTERNS, ...extra].map(originPattern);
  return (origin) => origin !== "" && patterns.some((re) => re.test(origin));
}
