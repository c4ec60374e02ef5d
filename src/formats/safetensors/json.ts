/**
 * Strict JSON for safetensors headers and index files: fatal UTF-8 decoding, JSON.parse, and one
 * scan for what JSON.parse lets through but the spec and serde_json do not: duplicate keys (the
 * spec: "Duplicate keys are disallowed"; JSON.parse silently keeps the last one) and \uXXXX escapes
 * of unpaired UTF-16 surrogates (serde_json rejects them; they cannot be written back as UTF-8).
 * Positions come back as byte offsets so callers can say where in the file it failed.
 * Not here: what the JSON must contain (read.ts, sharded.ts).
 */

export type StrictJsonResult =
  | { ok: true; value: unknown }
  | { ok: false; kind: "utf8"; byteOffset: number; message: string }
  | { ok: false; kind: "surrogate"; byteOffset: number; message: string }
  | { ok: false; kind: "syntax"; message: string }
  | { ok: false; kind: "duplicate"; byteOffset: number; key: string; path: string[]; message: string };

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decode and parse `bytes`; byte offsets in the result are relative to `bytes`. */
export function parseStrictJson(bytes: Uint8Array): StrictJsonResult {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    const byteOffset = firstInvalidUtf8(bytes);
    const b = bytes.subarray(byteOffset, byteOffset + 4);
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
    return { ok: false, kind: "utf8", byteOffset, message: `invalid UTF-8 sequence (bytes ${hex})` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, kind: "syntax", message: e instanceof Error ? e.message : String(e) };
  }
  const problem = scanJson(text);
  if (problem?.kind === "surrogate") {
    const byteOffset = Buffer.byteLength(text.slice(0, problem.index), "utf8");
    return {
      ok: false,
      kind: "surrogate",
      byteOffset,
      message: "a \\u escape of an unpaired UTF-16 surrogate",
    };
  }
  if (problem) {
    const dup = problem;
    const byteOffset = Buffer.byteLength(text.slice(0, dup.index), "utf8");
    const where = dup.path.length ? ` in ${dup.path.map((p) => JSON.stringify(p)).join(" > ")}` : "";
    return {
      ok: false,
      kind: "duplicate",
      byteOffset,
      key: dup.key,
      path: dup.path,
      message: `duplicate key ${JSON.stringify(dup.key)}${where}`,
    };
  }
  return { ok: true, value };
}

type ScanProblem =
  | { kind: "duplicate"; key: string; index: number; path: string[] }
  | { kind: "surrogate"; index: number };

// In a string decoded from UTF-8, a surrogate can only have come from a \u escape.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * The first repeated key of any object in `text` (which must already be valid JSON), or the first
 * string whose escapes decode to an unpaired surrogate. Iterative, so deep nesting cannot overflow
 * the stack. Keys are compared after unescaping ("a" == "\u0061").
 */
export function scanJson(text: string): ScanProblem | undefined {
  // One entry per open container: the keys seen so far for an object, null for an array.
  const stack: (Set<string> | null)[] = [];
  const path: string[] = []; // the key of each open object entry, for messages
  let expectKey = false;
  let pendingKey: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      if (pendingKey !== undefined) path.push(pendingKey);
      else if (stack.length > 0) path.push("[]");
      pendingKey = undefined;
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      if (pendingKey !== undefined) path.push(pendingKey);
      else if (stack.length > 0) path.push("[]");
      pendingKey = undefined;
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      path.pop();
      pendingKey = undefined;
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      pendingKey = undefined;
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    } else if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      const unescaped = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : undefined;
      if (unescaped !== undefined && LONE_SURROGATE.test(unescaped))
        return { kind: "surrogate", index: start };
      if (expectKey) {
        const key = unescaped ?? text.slice(start + 1, i);
        const keys = stack[stack.length - 1];
        if (keys) {
          if (keys.has(key)) return { kind: "duplicate", key, index: start, path: path.slice(0) };
          keys.add(key);
        }
        pendingKey = key;
        expectKey = false;
      }
    } else if (c === 0x3a /* : */) {
      expectKey = false;
    } else {
      // A literal or number inside a value: nothing to track.
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) pendingKey = undefined;
    }
  }
  return undefined;
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let min: number;
    let cp: number;
    if (b >= 0xc2 && b <= 0xdf) [n, min, cp] = [1, 0x80, b & 0x1f];
    else if (b >= 0xe0 && b <= 0xef) [n, min, cp] = [2, 0x800, b & 0x0f];
    else if (b >= 0xf0 && b <= 0xf4) [n, min, cp] = [3, 0x10000, b & 0x07];
    else return i;
    for (let k = 1; k <= n; k++) {
      const d = bytes[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return bytes.length;
}
