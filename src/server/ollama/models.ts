/**
 * Ollama's model-store routes against owl's store: GET /api/tags, POST /api/show, POST
 * /api/create (the JSON form: from, files, adapters, template, system, parameters, license,
 * messages; and the older `modelfile` text), HEAD|POST /api/blobs/:digest, POST /api/copy,
 * DELETE /api/delete, POST /api/pull and /api/push (local only: a model already stored "pulls" as
 * Ollama's progress lines; reaching a registry is the hub issue). Fields, statuses and progress
 * lines follow ollama/ollama server/routes.go.
 * Not here: inference (generate.ts, embed.ts), running models (ps.ts).
 */
import type { Context, Hono } from "hono";
import type {
  OllamaListResponse,
  OllamaProgressResponse,
  OllamaShowResponse,
  OllamaTensor,
} from "../../api/ollama.ts";
import { type GgufValue, openGguf } from "../../formats/gguf/index.ts";
import { normalizeParameters, parseModelfile } from "../../store/modelfile.ts";
import type { Modelfile, ResolvedModel, StoredMessage } from "../../store/types.ts";
import { OwlError } from "../../util/errors.ts";
import type { ServerContext } from "../context.ts";
import { channel } from "../stream.ts";
import { readJson } from "../validate.ts";
import { modelCapabilities } from "./capabilities.ts";
import { ollamaDetails, requireModelName, streamOrLast, timestamp } from "./common.ts";
import {
  type CreateBody,
  copySchema,
  createSchema,
  deleteSchema,
  pullSchema,
  showSchema,
} from "./schemas.ts";

/** Ollama's text for a model missing from the store in the management routes. */
function notFoundHere(name: string, cause?: unknown): OwlError {
  return new OwlError("ERR_MODEL_NOT_FOUND", `model '${name}' not found`, {
    details: { model: name },
    cause,
  });
}

async function withNotFound<T>(name: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof OwlError && e.code === "ERR_MODEL_NOT_FOUND") throw notFoundHere(name, e);
    throw e;
  }
}

export function registerModelRoutes(app: Hono, ctx: ServerContext): void {
  const list = async (c: Context) => {
    // Newest first, as Ollama lists them (seconds compared, a stable sort).
    const models = [...(await ctx.store.list())].sort(
      (a, b) => Math.floor(b.modifiedAt.getTime() / 1000) - Math.floor(a.modifiedAt.getTime() / 1000),
    );
    const body: OllamaListResponse = {
      models: models.map((m) => ({
        name: m.name,
        model: m.name,
        modified_at: timestamp(m.modifiedAt),
        size: m.size,
        digest: m.digest,
        details: ollamaDetails(m.details),
      })),
    };
    return c.json(body);
  };
  app.get("/api/tags", list);

  app.post("/api/show", async (c) => {
    const body = await readJson(c, showSchema);
    const name = requireModelName(body);
    const model = await withNotFound(name, () => ctx.store.resolve(name));
    return c.json(showModel(ctx, model, { verbose: body.verbose === true, system: body.system ?? "" }));
  });

  app.post("/api/copy", async (c) => {
    const body = await readJson(c, copySchema);
    if (body.source.trim() === "")
      throw new OwlError("ERR_BAD_REQUEST", `source "${body.source}" is invalid`);
    if (body.destination.trim() === "") {
      throw new OwlError("ERR_BAD_REQUEST", `destination "${body.destination}" is invalid`);
    }
    try {
      await ctx.store.copy(body.source, body.destination);
    } catch (e) {
      if (e instanceof OwlError && e.code === "ERR_MODEL_NOT_FOUND") {
        throw new OwlError("ERR_MODEL_NOT_FOUND", `model "${body.source}" not found`, { cause: e });
      }
      throw e;
    }
    return c.body(null, 200);
  });

  app.delete("/api/delete", async (c) => {
    const body = await readJson(c, deleteSchema);
    const name = requireModelName(body);
    await withNotFound(name, () => ctx.store.remove(name));
    return c.body(null, 200);
  });

  // Blobs: digests as Ollama writes them in URLs, "sha256:<64 hex>" (or "sha256-<hex>").
  const digestParam = (c: Context): string => {
    const raw = c.req.param("digest") ?? "";
    const m = /^sha256[:-]([0-9a-f]{64})$/.exec(raw);
    if (!m) {
      throw new OwlError(
        "ERR_BAD_REQUEST",
        `invalid digest format: expected "sha256:<64 hex digits>", found "${raw}"`,
      );
    }
    return `sha256:${m[1]}`;
  };
  // NOTE: Hono answers HEAD through the GET route (without the body); Ollama has no GET here.
  app.get("/api/blobs/:digest", async (c) => {
    if (c.req.method !== "HEAD") {
      throw new OwlError("ERR_NOT_FOUND_ROUTE", `no route for ${c.req.method} ${c.req.path} on this server`);
    }
    const digest = digestParam(c);
    return c.body(null, (await ctx.store.hasBlob(digest)) ? 200 : 404);
  });
  app.post("/api/blobs/:digest", async (c) => {
    const digest = digestParam(c);
    if (await ctx.store.hasBlob(digest)) return c.body(null, 200);
    const stream = c.req.raw.body;
    if (stream === null) throw new OwlError("ERR_BAD_REQUEST", "missing request body (the blob's bytes)");
    await ctx.store.putBlob(digest, stream as unknown as AsyncIterable<Uint8Array>);
    return c.body(null, 201);
  });

  app.post("/api/create", async (c) => {
    const body = await readJson(c, createSchema);
    const name = requireModelName(body);
    const modelfile = createModelfile(ctx, body);
    const signal = c.req.raw.signal;
    const progress = channel<OllamaProgressResponse>(async (emit) => {
      await ctx.store.create(name, modelfile, {
        signal,
        onProgress: (p) => emit(dropUndefined({ ...p })),
      });
      emit({ status: "success" });
    });
    return streamOrLast(c, body.stream !== false, progress);
  });

  app.post("/api/pull", async (c) => {
    const body = await readJson(c, pullSchema);
    const name = requireModelName(body);
    const progress = channel<OllamaProgressResponse>(async (emit) => {
      emit({ status: "pulling manifest" });
      let model: ResolvedModel;
      try {
        model = await ctx.store.resolve(name);
      } catch (e) {
        if (!(e instanceof OwlError && e.code === "ERR_MODEL_NOT_FOUND")) throw e;
        throw new OwlError(
          "ERR_MODEL_NOT_FOUND",
          `pull model manifest: file does not exist: "${name}" is not in the local store, and owl does not download from registries yet`,
          { cause: e },
        );
      }
      for (const layer of [...model.manifest.layers, model.manifest.config]) {
        emit({
          status: `pulling ${layer.digest.replace(/^sha256:/, "").slice(0, 12)}`,
          digest: layer.digest,
          total: layer.size,
          completed: layer.size,
        });
      }
      emit({ status: "verifying sha256 digest" });
      emit({ status: "writing manifest" });
      emit({ status: "success" });
    });
    return streamOrLast(c, body.stream !== false, progress);
  });

  app.post("/api/push", async (c) => {
    const body = await readJson(c, pullSchema);
    const name = requireModelName(body);
    await withNotFound(name, () => ctx.store.resolve(name));
    const progress = channel<OllamaProgressResponse>(async (emit) => {
      emit({ status: "retrieving manifest" });
      throw new OwlError(
        "ERR_UNSUPPORTED",
        `cannot push "${name}": owl does not upload to registries yet (the model stays in the local store)`,
      );
    });
    return streamOrLast(c, body.stream !== false, progress);
  });
}

function dropUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/** A digest in /api/create's files or adapters: "sha256:<hex>" (Ollama also accepts "sha256-"). */
function createDigest(field: string, value: string): string {
  const m = /^sha256[:-]([0-9a-f]{64})$/.exec(value);
  if (!m)
    throw new OwlError(
      "ERR_BAD_REQUEST",
      `${field}: expected a digest "sha256:<64 hex digits>", found "${value}"`,
    );
  return `sha256:${m[1]}`;
}

/** The store's Modelfile for an /api/create request (the `modelfile` text first, JSON fields over it). */
export function createModelfile(ctx: ServerContext, body: CreateBody): Modelfile {
  const mf: Modelfile = body.modelfile
    ? parseModelfile(body.modelfile)
    : { from: "", params: {}, adapters: [], license: [], messages: [] };
  if (body.quantize) {
    throw new OwlError(
      "ERR_UNSUPPORTED",
      `quantize "${body.quantize}": owl's server does not quantize while creating yet`,
      {
        hint: "create the model from an already quantized GGUF",
      },
    );
  }
  const files = Object.entries(body.files ?? {});
  if (files.length > 1) {
    throw new OwlError(
      "ERR_UNSUPPORTED",
      `files: ${files.length} files given (${files.map(([n]) => n).join(", ")}); owl creates models from one GGUF file`,
    );
  }
  if (files.length === 1) {
    const [fileName, digest] = files[0]!;
    if (!fileName.toLowerCase().endsWith(".gguf")) {
      throw new OwlError(
        "ERR_UNSUPPORTED",
        `files: "${fileName}" is not a .gguf file; owl creates models from GGUF files`,
      );
    }
    mf.from = createDigest(`files["${fileName}"]`, digest);
  }
  if (body.from) {
    if (files.length > 0) throw new OwlError("ERR_BAD_REQUEST", "give either from or files, not both");
    mf.from = body.from;
  }
  if (mf.from === "") {
    throw new OwlError("ERR_BAD_REQUEST", "neither 'from' or 'files' was specified");
  }
  for (const [fileName, digest] of Object.entries(body.adapters ?? {})) {
    mf.adapters.push(ctx.store.blobPath(createDigest(`adapters["${fileName}"]`, digest)));
  }
  if (body.template != null) mf.template = body.template;
  if (body.system != null) mf.system = body.system;
  if (body.parameters) {
    try {
      mf.params = { ...mf.params, ...normalizeParameters(body.parameters) };
    } catch (e) {
      if (e instanceof OwlError)
        throw new OwlError("ERR_BAD_REQUEST", `parameters: ${e.message}`, { cause: e });
      throw e;
    }
  }
  if (body.license != null)
    mf.license.push(...(typeof body.license === "string" ? [body.license] : body.license));
  for (const [i, m] of (body.messages ?? []).entries()) {
    if (m.role !== "system" && m.role !== "user" && m.role !== "assistant") {
      throw new OwlError(
        "ERR_BAD_REQUEST",
        `field "messages[${i}].role": expected "system", "user" or "assistant", found "${m.role}"`,
      );
    }
    mf.messages.push({ role: m.role, content: m.content ?? "" } satisfies StoredMessage);
  }
  return mf;
}

/** A GGUF metadata value as /api/show's model_info writes it; long arrays as null unless verbose. */
function jsonValue(v: GgufValue, verbose: boolean): unknown {
  switch (v.type) {
    case "UINT64":
    case "INT64":
      return Number(v.value);
    case "ARRAY": {
      const items = v.value.items;
      if (!verbose && items.length > 5) return null;
      return Array.from(items as ArrayLike<unknown>, (x) => (typeof x === "bigint" ? Number(x) : x));
    }
    default:
      return v.value;
  }
}

/** Ollama's parameters text: `%-30s %#v` per value, one line per stop string. */
function parametersText(params: ResolvedModel["params"]): string {
  const lines: string[] = [];
  const fmt = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(v));
  for (const [k, v] of Object.entries(params)) {
    for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k.padEnd(30)} ${fmt(x)}`);
  }
  return lines.join("\n");
}

/** The /api/show answer for a stored model. */
export function showModel(
  ctx: ServerContext,
  model: ResolvedModel,
  options: { verbose: boolean; system: string },
): OllamaShowResponse {
  const modelInfo: Record<string, unknown> = {};
  let chatTemplate: string | undefined;
  let tensors: OllamaTensor[] | undefined;
  const file = openGguf(model.modelPath);
  try {
    if (options.verbose)
      tensors = file.tensors.map((t) => ({ name: t.name, type: t.type.name, shape: [...t.dims] }));
    for (const [k, v] of file.metadata) {
      if (k === "tokenizer.chat_template") {
        if (v.type === "STRING") chatTemplate = v.value;
        continue;
      }
      if (k === "general.name") continue;
      modelInfo[k] = jsonValue(v, options.verbose);
    }
  } finally {
    file.close();
  }
  const template = model.template ?? chatTemplate ?? "";
  const capabilities = modelCapabilities(model);
  const resp: OllamaShowResponse = {
    license: model.license.join("\n"),
    modelfile: ctx.store.modelfileText(model),
    parameters: parametersText(model.params),
    template,
    system: options.system || model.system || "",
    details: ollamaDetails(model.details),
    messages: model.messages.map((m) => ({ role: m.role, content: m.content })),
    model_info: modelInfo,
    capabilities,
    modified_at: timestamp(model.modifiedAt),
    ...(tensors !== undefined && { tensors }),
  };
  for (const k of ["license", "parameters", "template", "system"] as const)
    if (resp[k] === "") delete resp[k];
  if (resp.messages?.length === 0) delete resp.messages;
  return resp;
}
