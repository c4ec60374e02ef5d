/**
 * The only reader of environment variables in owl. Every setting owl takes from the environment
 * is named here, with its default.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { OwlError } from "./errors.ts";

/** OWL_HOME: where models and settings live (default ~/.owl). */
export function owlHome(): string {
  return process.env["OWL_HOME"] ?? join(homedir(), ".owl");
}

/** OWL_DEBUG=1: print stacks with errors. */
export function debugEnabled(): boolean {
  const v = process.env["OWL_DEBUG"];
  return v !== undefined && v !== "" && v !== "0";
}

/** The server's settings, each from its environment variable (Ollama's names with OWL_). */
export interface ServerSettings {
  /** OWL_HOST: "host:port", "host", ":port" or a URL (default 127.0.0.1:11434, Ollama's port). */
  host: string;
  port: number;
  /** OWL_MAX_LOADED_MODELS: models kept loaded at once (default 3, like Ollama on CPU). */
  maxLoadedModels: number;
  /** OWL_NUM_PARALLEL: sequences of one model generated at once in one context (default 4). */
  numParallel: number;
  /** OWL_MAX_QUEUE: requests waiting for a sequence before 503 (default 512, Ollama's). */
  maxQueue: number;
  /** OWL_KEEP_ALIVE: how long an idle model stays loaded, Ollama's duration syntax (default 5m). */
  keepAlive: string;
  /** OWL_API_KEYS: comma-separated bearer keys; empty: no authentication. */
  apiKeys: string[];
  /** OWL_MAX_BODY: the largest request body in bytes (default 32 MiB). */
  maxBodyBytes: number;
  /** OWL_CONTEXT_LENGTH: the default num_ctx (default 4096, capped by the model's own). */
  contextLength: number;
  /** OWL_BACKEND: "llama.cpp" (default) or "owl". */
  backend: "llama.cpp" | "owl";
  /** OWL_ORIGINS: extra allowed CORS origins, comma-separated (loopback origins always allowed). */
  origins: string[];
}

function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) {
    throw new OwlError("ERR_INVALID_ARGUMENT", `${name} must be an integer >= ${min}, found "${raw}"`);
  }
  return v;
}

function envList(name: string): string[] {
  return (process.env[name] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** Splits OWL_HOST into host and port, Ollama's way: scheme and path ignored, port default 11434. */
export function parseHost(raw: string | undefined): { host: string; port: number } {
  let s = (raw ?? "").trim();
  if (s === "") return { host: "127.0.0.1", port: 11434 };
  s = s.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
  let host = s;
  let port = 11434;
  const m = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(s);
  if (!m) throw new OwlError("ERR_INVALID_ARGUMENT", `OWL_HOST must look like host:port, found "${raw}"`);
  host = (m[1] ?? "").replace(/^\[|\]$/g, "");
  if (m[2] !== undefined) port = Number(m[2]);
  if (host === "") host = "127.0.0.1";
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new OwlError("ERR_INVALID_ARGUMENT", `OWL_HOST port must be 0..65535, found "${raw}"`);
  }
  return { host, port };
}

/** OWL_CONTEXT_LENGTH: the default num_ctx of the server and of `owl run` in process (default
 * 4096, Ollama's default on a CPU; capped by the model's own). */
export function defaultContextLength(): number {
  return envInt("OWL_CONTEXT_LENGTH", 4096, 16);
}

export function serverSettings(): ServerSettings {
  const { host, port } = parseHost(process.env["OWL_HOST"]);
  const backend = process.env["OWL_BACKEND"] ?? "llama.cpp";
  if (backend !== "llama.cpp" && backend !== "owl") {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `OWL_BACKEND must be "llama.cpp" or "owl", found "${backend}"`,
    );
  }
  return {
    host,
    port,
    maxLoadedModels: envInt("OWL_MAX_LOADED_MODELS", 3, 1),
    numParallel: envInt("OWL_NUM_PARALLEL", 4, 1),
    maxQueue: envInt("OWL_MAX_QUEUE", 512, 0),
    keepAlive: process.env["OWL_KEEP_ALIVE"] ?? "5m",
    apiKeys: envList("OWL_API_KEYS"),
    maxBodyBytes: envInt("OWL_MAX_BODY", 32 * 1024 * 1024, 1024),
    contextLength: defaultContextLength(),
    backend,
    origins: envList("OWL_ORIGINS"),
  };
}

/**
 * OWL_NUM_THREADS: CPU threads of each model `owl serve` loads; undefined (unset): the backend's
 * default (all cores). Ollama sets this per request (num_thread); one setting for the server suits
 * a machine shared with other work, and tests (one thread).
 */
export function serverThreads(): number | undefined {
  const raw = process.env["OWL_NUM_THREADS"];
  return raw === undefined || raw.trim() === "" ? undefined : envInt("OWL_NUM_THREADS", 1, 1);
}
