/**
 * The architectures the owl engine runs, by general.architecture name.
 */
import { llama } from "./llama.ts";
import { qwen2 } from "./qwen2.ts";
import { qwen3 } from "./qwen3.ts";
import type { Architecture } from "./types.ts";

export const ARCHITECTURES: ReadonlyMap<string, Architecture> = new Map(
  [llama, qwen2, qwen3].map((a) => [a.name, a]),
);

export type { Architecture, ForwardFn } from "./types.ts";
