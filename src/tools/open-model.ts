/**
 * Open a model file of any supported format by looking at its bytes (not its name) and
 * summarize it. GGUF starts with "GGUF"; safetensors with a u64 header length then "{"; a
 * directory is a safetensors model (model.safetensors or model.safetensors.index.json).
 */
import { statSync } from "node:fs";
import { dirname } from "node:path";
import { openGguf } from "../formats/gguf/index.ts";
import { readHfModelDir } from "../formats/hf/model-dir.ts";
import { openSafetensorsModel } from "../formats/safetensors/index.ts";
import { FileSource } from "../util/bytes.ts";
import { OwlError } from "../util/errors.ts";
import { ggufModelInfo, type ModelInfo, safetensorsModelInfo } from "./model-info.ts";

export type ModelFormat = "gguf" | "safetensors" | "llama2c";

/** Sniff the format of a file from its first bytes. */
export function detectFormat(path: string): ModelFormat | undefined {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new OwlError("ERR_FILE_NOT_FOUND", `no such file or directory: ${path}`, { cause: e });
  }
  if (st.isDirectory()) return "safetensors";
  const src = new FileSource(path);
  try {
    if (src.size < 9) return undefined;
    const head = src.read(0, 9);
    if (head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46) return "gguf";
    if (head[8] === 0x7b) return "safetensors";
    return undefined;
  } finally {
    src.close();
  }
}

export function openModelInfo(path: string): ModelInfo {
  const format = detectFormat(path);
  if (format === "gguf") {
    const f = openGguf(path);
    try {
      return ggufModelInfo(f);
    } finally {
      f.close();
    }
  }
  if (format === "safetensors") {
    const model = openSafetensorsModel(path);
    try {
      const isDir = statSync(path).isDirectory();
      const dir = isDir ? path : dirname(path);
      const size = model.files.reduce((a, f) => a + f.fileSize, 0);
      return safetensorsModelInfo(model, path, size, readHfModelDir(dir));
    } finally {
      model.close();
    }
  }
  throw new OwlError(
    "ERR_UNKNOWN_FORMAT",
    `${path} is not a GGUF or safetensors model (expected the bytes "GGUF", or a safetensors header, at the start)`,
    {
      hint: "llama2.c checkpoints can be converted first: owl convert <model.bin> --tokenizer <tok.bin> -o model.gguf",
    },
  );
}
