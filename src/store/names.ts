/**
 * Model names, Ollama's way: [host/][namespace/]model[:tag], defaults registry.ollama.ai,
 * library and latest; parts validated with Ollama's character and length rules
 * (ollama/types/model/name.go) and compared case-insensitively. A valid name maps to exactly four
 * path components under manifests/, so a name can never reach outside the store.
 * Not here: reading manifests (manifests.ts).
 */
import { OwlError } from "../util/errors.ts";
import type { ModelName } from "./types.ts";

export const DEFAULT_HOST = "registry.ollama.ai";
export const DEFAULT_NAMESPACE = "library";
export const DEFAULT_TAG = "latest";

type PartKind = "host" | "namespace" | "model" | "tag";

/** Ollama's limits: host 1..350 characters, every other part 1..80. */
const MAX_LEN: Record<PartKind, number> = { host: 350, namespace: 80, model: 80, tag: 80 };

export const NAME_RULES =
  'a name is [host/][namespace/]model[:tag]; each part starts with a letter, digit or "_" and continues with letters, digits, "_", "-" or "." (a namespace has no ".", a host may also hold ":port"); at most 80 characters a part (host 350)';

function isAlnumUnderscore(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f // _
  );
}

/** Why `s` is not a valid part of this kind, or undefined when it is. */
function partProblem(kind: PartKind, s: string): string | undefined {
  if (s.length === 0) return `the ${kind} is empty`;
  if (s.length > MAX_LEN[kind])
    return `the ${kind} has ${s.length} characters, at most ${MAX_LEN[kind]} allowed`;
  // NOTE: Ollama accepts ".." inside a part ("a..b"); it is harmless as one path component, but
  // we refuse it anyway so that no name ever looks like a traversal.
  if (s.includes("..")) return `the ${kind} "${s}" contains ".."`;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (i === 0) {
      if (!isAlnumUnderscore(c)) return `the ${kind} "${s}" starts with ${JSON.stringify(s[0])}`;
      continue;
    }
    if (isAlnumUnderscore(c) || c === 0x2d /* - */) continue;
    if (c === 0x2e /* . */ && kind !== "namespace") continue;
    if (c === 0x3a /* : */ && kind === "host") continue;
    return `the ${kind} "${s}" contains ${JSON.stringify(s[i])} at position ${i + 1}`;
  }
  return undefined;
}

function invalid(raw: string, why: string): OwlError {
  return new OwlError("ERR_INVALID_NAME", `invalid model name ${JSON.stringify(raw)}: ${why}`, {
    hint: NAME_RULES,
    details: { name: raw },
  });
}

/**
 * Parse and validate a model name, filling in Ollama's defaults. ERR_INVALID_NAME says which
 * part is wrong and what is allowed. A "scheme://" prefix (https://host/ns/model) is accepted and
 * dropped, as Ollama does.
 */
export function parseModelName(raw: string): ModelName {
  if (typeof raw !== "string" || raw.length === 0) throw invalid(String(raw ?? ""), "the name is empty");
  if (raw.includes("\0")) throw invalid(raw, "it contains a NUL character");
  if (raw.includes("\\")) throw invalid(raw, 'it contains a backslash ("\\")');
  let s = raw;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(s);
  if (scheme) s = s.slice(scheme[0].length);
  if (s.startsWith("/")) throw invalid(raw, "it is an absolute path, not a name");
  let tag: string | undefined;
  // "/" cannot occur in a tag, so a ":" after the last "/" starts the tag (a ":" before it is a port).
  const colon = s.lastIndexOf(":");
  if (colon > s.lastIndexOf("/")) {
    tag = s.slice(colon + 1);
    s = s.slice(0, colon);
  }
  const parts = s.split("/");
  if (parts.length > 3) {
    throw invalid(
      raw,
      `it has ${parts.length} "/"-separated parts, at most 3 (host/namespace/model) allowed`,
    );
  }
  const model = parts[parts.length - 1] ?? "";
  const namespace = parts.length >= 2 ? (parts[parts.length - 2] ?? "") : DEFAULT_NAMESPACE;
  const host = parts.length === 3 ? (parts[0] ?? "") : DEFAULT_HOST;
  const name: ModelName = { host, namespace, model, tag: tag ?? DEFAULT_TAG };
  const kinds: [PartKind, string][] = [
    ["host", name.host],
    ["namespace", name.namespace],
    ["model", name.model],
    ["tag", name.tag],
  ];
  for (const [kind, value] of kinds) {
    const problem = partProblem(kind, value);
    if (problem) throw invalid(raw, problem);
  }
  return name;
}

/** Whether `raw` is a valid model name. */
export function isValidModelName(raw: string): boolean {
  try {
    parseModelName(raw);
    return true;
  } catch {
    return false;
  }
}

/**
 * The name as Ollama displays it (DisplayShortest): "stories260k:latest", "ns/model:tag",
 * "host/ns/model:tag" (the namespace is kept whenever the host is not the default).
 */
export function displayName(n: ModelName): string {
  let prefix = "";
  if (n.host.toLowerCase() !== DEFAULT_HOST) prefix = `${n.host}/${n.namespace}/`;
  else if (n.namespace.toLowerCase() !== DEFAULT_NAMESPACE) prefix = `${n.namespace}/`;
  return `${prefix}${n.model}:${n.tag}`;
}

/** The fully qualified name: "registry.ollama.ai/library/model:tag". */
export function fullName(n: ModelName): string {
  return `${n.host}/${n.namespace}/${n.model}:${n.tag}`;
}

/** Case-insensitive equality, as Ollama compares names (EqualFold). */
export function sameModelName(a: ModelName, b: ModelName): boolean {
  return nameKey(a) === nameKey(b);
}

/** A key for maps of names: equal for names Ollama considers equal. */
export function nameKey(n: ModelName): string {
  return fullName(n).toLowerCase();
}

/** The four path components of the manifest: host, namespace, model, tag. */
export function manifestParts(n: ModelName): [string, string, string, string] {
  return [n.host, n.namespace, n.model, n.tag];
}
