/**
 * (placeholder, to be filled) Kernels of the float family.
 */
import type { KernelTable } from "./kernels.ts";

export const FLOAT_KERNELS: KernelTable = {};
