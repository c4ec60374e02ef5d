/**
 * The bundled default model: models/stories260k.gguf (Karpathy's stories260K, MIT), available as
 * "stories260k" (":latest") in every store with no set-up. The store serves it from the package
 * directly (a virtual manifest) until a command needs real blobs (cp, create FROM it), which
 * import the file. Not here: the store's policy for it (store.ts).
 */
import { fileURLToPath } from "node:url";

/** The name it is listed under. */
export const BUILTIN_MODEL_NAME = "stories260k:latest";

/** Absolute path of the bundled GGUF, found relative to this module (src/store -> models/). */
export function builtinModelPath(): string {
  return fileURLToPath(new URL("../../models/stories260k.gguf", import.meta.url));
}
