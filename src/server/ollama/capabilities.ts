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
 * load. The header facts are cached per file (path, size, mtime): a store blob never changes;
 * what the templates give, per pair of template texts.
 * Not here: the routes (generate.ts, models.ts).
 */
import { statSync } from "node:fs";
import { getString, openGguf } from "../../formats/gguf/index.ts";
import { type ThinkValue, templateCapabilities } from "../../runtime/prompt.ts";
import { type Thinking, type ThinkingTags, thinkFor, thinkingTags } from "../../runtime/thinking.ts";
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

const templates = new Map<string, { caps: string[]; tags: ThinkingTags | undefined }>();

/**
 * What a model's templates give (templateCapabilities' list, the thinking tags), once per pair of
 * texts: each parses the Modelfile TEMPLATE, and a request asks for both.
 */
function templateFacts(model: ResolvedModel): { caps: string[]; tags: ThinkingTags | undefined } {
  const chat = headerFacts(model.modelPath).chatTemplate;
  const key = `${model.template ?? "\u0001"}\u0000${chat ?? "\u0001"}`;
  let hit = templates.get(key);
  if (hit === undefined) {
    hit = { caps: templateCapabilities(model.template, chat), tags: thinkingTags(model.template, chat) };
    if (templates.size >= CACHE_MAX) templates.delete(templates.keys().next().value!);
    templates.set(key, hit);
  }
  return hit;
}

/** Ollama's capability list of a stored model (/api/show "capabilities"), in Ollama's order. */
export function modelCapabilities(model: ResolvedModel): string[] {
  const facts = headerFacts(model.modelPath);
  const t = templateFacts(model);
  const caps = t.caps.filter((c) => c !== "completion");
  if (t.tags !== undefined) caps.push("thinking");
  return [facts.embedding ? "embedding" : "completion", ...caps];
}

/**
 * A request's thinking (runtime/thinking.ts thinkFor): a model that thinks does so unless the
 * request says false; asking one that does not is a 400, `"<name>" does not support thinking`.
 * Levels ("high", "medium", "low") count as true; another string is a 400.
 */
export function resolveThink(
  model: ResolvedModel,
  requested: string,
  think: boolean | string | null | undefined,
): Thinking {
  if (typeof think === "string" && think !== "" && !["high", "medium", "low"].includes(think)) {
    throw new OwlError(
      "ERR_BAD_REQUEST",
      `invalid think value: ${JSON.stringify(think)} (must be "high", "medium", "low", true, or false)`,
    );
  }
  const value = think === null || think === undefined || think === "" ? undefined : (think as ThinkValue);
  const { tags } = templateFacts(model);
  const refuse = () => new OwlError("ERR_BAD_REQUEST", `"${requested}" does not support thinking`);
  return { think: thinkFor(tags, value, refuse), tags };
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
