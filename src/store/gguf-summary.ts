/**
 * What the store records about a GGUF it imports (Ollama's config blob fields): architecture
 * (family), parameter count printed as Ollama does ("260K", "7.2B"), file type ("F32", "Q4_K_M"),
 * general.type (model or adapter) and general.license. Reads only the header (tensor data stays
 * on disk). Not here: the full `owl show` report (tools/model-info.ts, a higher layer).
 */
import { stat } from "node:fs/promises";
import { getNumber, getString, openGguf } from "../formats/gguf/index.ts";
import { archKeys, FILE_TYPE_NAMES, GENERAL } from "../formats/gguf/keys.ts";
import { isOwlError, OwlError } from "../util/errors.ts";

export interface GgufSummary {
  /** general.architecture ("llama"), or "unknown". */
  architecture: string;
  /** general.type: "model", "adapter", ... (undefined when absent: a model). */
  type?: string;
  parameterCount: number;
  /** Ollama's model_type / parameter_size: format.HumanNumber of the parameter count. */
  parameterSize: string;
  /** Ollama's file_type / quantization_level. */
  fileType: string;
  license?: string;
  contextLength?: number;
  embeddingLength?: number;
}

/** Ollama's format.HumanNumber: 260032 -> "260K", 7241732096 -> "7.2B", 1e9 -> "1B", 1.5e6 -> "1.50M". */
export function humanNumber(n: number): string {
  if (n >= 1e9) {
    const v = n / 1e9;
    return Number.isInteger(v) ? `${v}B` : `${v.toFixed(1)}B`;
  }
  if (n >= 1e6) {
    const v = n / 1e6;
    return Number.isInteger(v) ? `${v}M` : `${v.toFixed(2)}M`;
  }
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)}K`;
  return String(n);
}

/**
 * Open `path` as GGUF and summarize it. A file that is not GGUF gets ERR_UNKNOWN_FORMAT; other
 * reader errors keep their code; both name the file and keep the reader's error as the cause.
 */
export async function summarizeGguf(path: string, what = "model"): Promise<GgufSummary> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new OwlError("ERR_INVALID_ARGUMENT", `${path} is not a file`);
  } catch (e) {
    if (isOwlError(e)) throw e;
    throw new OwlError("ERR_FILE_NOT_FOUND", `${what} file ${path} does not exist`, { cause: e });
  }
  let file: ReturnType<typeof openGguf>;
  try {
    file = openGguf(path);
  } catch (e) {
    if (isOwlError(e)) {
      const code = e.code === "ERR_GGUF_BAD_MAGIC" ? "ERR_UNKNOWN_FORMAT" : e.code;
      throw new OwlError(code, `${path} is not a readable GGUF ${what}: ${e.message}`, {
        cause: e,
        hint: "owl imports GGUF files; convert other formats first",
        details: { path },
      });
    }
    throw e;
  }
  try {
    const md = file.metadata;
    const architecture = getString(md, GENERAL.architecture) ?? "unknown";
    let parameterCount = 0;
    const bytesByType = new Map<string, number>();
    for (const t of file.tensors) {
      parameterCount += t.nElements;
      bytesByType.set(t.type.name, (bytesByType.get(t.type.name) ?? 0) + t.byteSize);
    }
    const ft = getNumber(md, GENERAL.fileType);
    let fileType = ft !== undefined ? FILE_TYPE_NAMES[ft] : undefined;
    if (fileType === undefined) {
      // No (or an unknown) general.file_type: the type holding most bytes, as llama.cpp guesses it.
      const top = [...bytesByType].sort((a, b) => b[1] - a[1])[0];
      fileType = top ? top[0].toUpperCase() : "unknown";
    }
    const keys = archKeys(architecture);
    const summary: GgufSummary = {
      architecture,
      parameterCount,
      parameterSize: humanNumber(parameterCount),
      fileType,
    };
    const type = getString(md, GENERAL.type);
    if (type !== undefined) summary.type = type;
    const license = getString(md, GENERAL.license);
    if (license !== undefined) summary.license = license;
    const ctx = getNumber(md, keys.contextLength);
    if (ctx !== undefined) summary.contextLength = ctx;
    const emb = getNumber(md, keys.embeddingLength);
    if (emb !== undefined) summary.embeddingLength = emb;
    return summary;
  } finally {
    file.close();
  }
}
