/**
 * (placeholder, to be filled) Kernels of the legacy family.
 */
import type { KernelTable } from "./kernels.ts";

export const LEGACY_KERNELS: KernelTable = {};
