/**
 * (placeholder, to be filled) Kernels of the iq family.
 */
import type { KernelTable } from "./kernels.ts";

export const IQ_KERNELS: KernelTable = {};
