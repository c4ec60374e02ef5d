/**
 * A stored model's capabilities as Ollama reports and checks them (server/images.go
 * Capabilities, CheckCapabilities), read from the model file's header and the Modelfile, before
 * anything is loaded:
 * - "embedding" when the GGUF has `<arch>.pooling_type` (an embedding model), else "completion";
 * - "tools" / "insert" from the template (runtime/prompt.ts templateCapabilities: a Modelfile
 *   TEMPLATE's .Tools / .Suffix, else the GGUF's Jinja chat template mentioning tools);
 * - "thinking" when the template shows a model's thinking between tags (runtime/thinking.ts).
 * checkCapabilities is what /api/generate and /api/chat run before the scheduler loads the model,
 * as Ollama's scheduleRunner does: a request the model cannot serve is a 400 at once, not after a
 * load. The header facts are cached per file (path, size, mtime): a store blob never changes.
 * Not here: the routes (generate.ts, models.ts).
 */
import { statSync } from "node:fs";
import { getString, openGguf } from "../../formats/gguf/index.ts";
import { type ThinkValue, templateCapabilities } from "../../runtime/prompt.ts";
import { type ThinkingTags, thinkingTags } from "../../runtime/thinking.ts";
import type { ResolvedModel } from "../../store/types.ts";
import { OwlError } from "../../util/errors.ts";

/** What capabilities need from a GGUF's header. */
interface HeaderFacts {
  key: string;
  chatTemplate: string | undefined;
  embedding: boolean;
}

const CACHE_MAX = 64;
const cache = new Map<string, HeaderFacts>();

function headerFacts(path: string): HeaderFacts {
  const st = statSync(path);
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = cache.get(path);
  if (hit?.key === key) return hit;
  const file = openGguf(path);
  let facts: HeaderFacts;
  try {
    const arch = getString(file.metadata, "general.architecture");
    facts = {
      key,
      chatTemplate: getString(file.metadata, "tokenizer.chat_template"),
      embedding: arch !== undefined && file.metadata.has(`${arch}.pooling_type`),
    };
  } finally {
    file.close();
  }
  cache.delete(path);
  cache.set(path, facts);
  if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
  return facts;
}

/** The GGUF's Jinja chat template (tokenizer.chat_template), from the cached header facts. */
export function ggufChatTemplate(model: ResolvedModel): string | undefined {
  return headerFacts(model.modelPath).chatTemplate;
}

/** Ollama's capability list of a stored model (/api/show "capabilities"), in Ollama's order. */
export function modelCapabilities(model: ResolvedModel): string[] {
  const facts = headerFacts(model.modelPath);
  const caps = templateCapabilities(model.template, facts.chatTemplate).filter((c) => c !== "completion");
  if (modelThinkingTags(model) !== undefined) caps.push("thinking");
  return [facts.embedding ? "embedding" : "completion", ...caps];
}

/** The tags around a model's thinking (runtime/thinking.ts), or undefined when it does not think. */
export function modelThinkingTags(model: ResolvedModel): ThinkingTags | undefined {
  return thinkingTags(model.template, headerFacts(model.modelPath).chatTemplate);
}

/**
 * The think value a request renders with, as Ollama's handlers: a model that thinks does so
 * unless the request says false (think unset means true); asking a model that does not think to
 * is a 400, `"<name>" does not support thinking`. Levels ("high", "medium", "low") count as true.
 */
export function resolveThink(
  model: ResolvedModel,
  requested: string,
  think: boolean | string | null | undefined,
): { think: ThinkValue | undefined; tags: ThinkingTags | undefined } {
  if (typeof think === "string" && think !== "" && !["high", "medium", "low"].includes(think)) {
    throw new OwlError(
      "ERR_BAD_REQUEST",
      `invalid think value: ${JSON.stringify(think)} (must be "high", "medium", "low", true, or false)`,
    );
  }
  const value: ThinkValue | undefined =
    think === null || think === undefined || think === "" ? undefined : (think as ThinkValue);
  const tags = modelThinkingTags(model);
  if (tags === undefined) {
    if (value !== undefined && value !== false) {
      throw new OwlError("ERR_BAD_REQUEST", `"${requested}" does not support thinking`);
    }
    return { think: value, tags: undefined };
  }
  return { think: value ?? true, tags };
}

/**
 * Throws Ollama's 400 when the model lacks one of `want`: "<name> does not support tools" (the
 * missing ones joined by newlines, as Go's errors.Join), or, for "completion", the route's own
 * text: `"<requested name>" does not support generate` / `chat` (GenerateHandler, ChatHandler).
 */
export function checkCapabilities(
  model: ResolvedModel,
  requested: string,
  route: "generate" | "chat",
  want: readonly string[],
): void {
  const have = modelCapabilities(model);
  const missing = want.filter((c) => !have.includes(c));
  if (missing.length === 0) return;
  if (missing.includes("completion")) {
    throw new OwlError("ERR_BAD_REQUEST", `"${requested}" does not support ${route}`, {
      details: { capabilities: have },
    });
  }
  // Ollama's exact text (no hint appended): clients match on it.
  throw new OwlError("ERR_BAD_REQUEST", `${model.name} does not support ${missing.join("\n")}`, {
    details: { capabilities: have },
  });
}
