/**
 * The few WebAssembly JS API members the backend uses, typed here because the project's
 * TypeScript lib (ES2023 + @types/node, no DOM) does not declare the WebAssembly namespace.
 * `WA` is the runtime's own global WebAssembly object under these types.
 */

export interface WasmMemory {
  /** A SharedArrayBuffer for shared memory: never detached, but a new object after growth. */
  readonly buffer: ArrayBufferLike;
  grow(deltaPages: number): number;
}

/** An opaque compiled module (cloneable to worker threads). */
export interface WasmModule {
  readonly __wasmModule?: never;
}

export interface WasmGlobal {
  readonly value: unknown;
}

export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  instantiate(module: WasmModule, imports: Record<string, Record<string, unknown>>): Promise<WasmInstance>;
}

export const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
