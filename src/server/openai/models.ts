/**
 * GET /v1/models and GET /v1/models/{model}: the store's models in OpenAI's shape (Ollama's
 * mapping: id = the name as listed, created = when it was stored, owned_by = its namespace;
 * the bundled stories260k included). Not here: /api/tags (the Ollama routes).
 */
import type { OpenAiModel, OpenAiModelList } from "../../api/openai.ts";
import { parseModelName } from "../../store/names.ts";
import type { StoredModel } from "../../store/types.ts";
import type { ServerContext } from "../context.ts";
import { resolveModel } from "./generate.ts";

function ownedBy(name: string): string {
  try {
    return parseModelName(name).namespace;
  } catch {
    return "library";
  }
}

export function toOpenAiModel(m: StoredModel): OpenAiModel {
  return {
    id: m.name,
    object: "model",
    created: Math.floor(m.modifiedAt.getTime() / 1000),
    owned_by: ownedBy(m.name),
  };
}

export async function listModels(ctx: ServerContext): Promise<OpenAiModelList> {
  const models = await ctx.store.list();
  return { object: "list", data: models.map(toOpenAiModel) };
}

/** One model by any name the store resolves ("stories260k" or "stories260k:latest"); the id is
 * the name as asked for, as OpenAI and Ollama answer. ERR_MODEL_NOT_FOUND when absent. */
export async function retrieveModel(ctx: ServerContext, name: string): Promise<OpenAiModel> {
  const m = await resolveModel(ctx, name);
  return { ...toOpenAiModel(m), id: name };
}
