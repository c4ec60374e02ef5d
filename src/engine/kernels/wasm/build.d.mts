// Types of build.mjs (the kernels build script) for the TypeScript code that imports it.
export const ROOT: string;
export const ASSEMBLY_DIR: string;
export const WASM_PATH: string;
/** Newest modification time (ms) of the AssemblyScript sources; 0 when they are absent. */
export function sourcesMtime(): number;
/** Compiles the kernels to `out` (default dist/kernels.wasm). */
export function buildKernels(out?: string): Promise<string>;
