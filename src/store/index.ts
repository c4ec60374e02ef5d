/**
 * The model store's public API: ModelStore (Ollama-layout store under OWL_HOME/models), names,
 * the Modelfile parser and printer, and the bundled default model.
 */
export { BUILTIN_MODEL_NAME, builtinModelPath } from "./builtin.ts";
export { type GgufSummary, humanNumber, summarizeGguf } from "./gguf-summary.ts";
export {
  normalizeParameters,
  PARAMETER_TYPES,
  type ParamValue,
  parseModelfile,
  parseParameterValue,
  printModelfile,
  quoteValue,
} from "./modelfile.ts";
export {
  DEFAULT_HOST,
  DEFAULT_NAMESPACE,
  DEFAULT_TAG,
  displayName,
  fullName,
  isValidModelName,
  NAME_RULES,
  parseModelName,
  sameModelName,
} from "./names.ts";
export { defaultStoreRoot, ModelStore, type ModelStoreOptions } from "./store.ts";
export type * from "./types.ts";
