/**
 * The interface every architecture implements (arch/<name>.ts): hyperparameters from GGUF
 * metadata, the tensors it reads (names and shapes), and a forward pass over the loaded weights
 * written against KernelBackend. Adding an architecture is one file plus an entry in
 * arch/index.ts. Not here: loading (weights.ts), sessions and the KV cache (model.ts).
 */
import type { GgufMetadata } from "../../formats/gguf/index.ts";
import type { ForwardStep } from "../forward.ts";
import type { Hyperparams } from "../hyperparams.ts";
import type { TensorSpec, Weight } from "../weights.ts";

/** One forward step over loaded weights. */
export type ForwardFn = (step: ForwardStep) => void;

export interface Architecture {
  /** general.architecture value. */
  readonly name: string;
  /** Read and validate the hyperparameters (ERR_MODEL_METADATA names a missing key). */
  hyperparams(md: GgufMetadata): Hyperparams;
  /** Every tensor the forward may read, with its ggml dims; `has` tells what the file holds. */
  tensors(hp: Hyperparams, has: (name: string) => boolean): TensorSpec[];
  /** Bind the uploaded weights and return the forward pass over them. */
  build(weights: ReadonlyMap<string, Weight>, hp: Hyperparams): ForwardFn;
}
