/**
 * (placeholder, to be filled) Kernels of the k-quants family.
 */
import type { KernelTable } from "./kernels.ts";

export const K_QUANTS_KERNELS: KernelTable = {};
