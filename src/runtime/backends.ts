/**
 * createBackend(name): the Backend for "llama.cpp" or "owl". Every llama.cpp backend of the process
 * shares one node-llama-cpp `Llama` instance (its native bindings and thread pool), created on the
 * first load and kept for the life of the process.
 * NOTE: node-llama-cpp decodes 1.3-5.7x slower unless UV_THREADPOOL_SIZE=1 is set before Node
 * starts; bin/owl.js arranges that.
 * Not here: the backends themselves (llama-cpp-backend.ts, owl-backend.ts), which model is loaded
 * when (scheduler.ts).
 */
import type { Llama } from "node-llama-cpp";
import { LlamaCppBackend, type LlamaCppBackendOptions } from "./llama-cpp-backend.ts";
import { OwlBackend } from "./owl-backend.ts";
import type { Backend, BackendName } from "./types.ts";

export interface CreateBackendOptions extends LlamaCppBackendOptions {
  /**
   * llama.cpp: the GPU backend node-llama-cpp may use ("auto": whatever prebuilt binary works);
   * default false (CPU), the fixed choice of the first load in the process.
   */
  gpu?: false | "auto" | "cuda" | "vulkan" | "metal";
}

let shared: Promise<Llama> | undefined;

/** The process's Llama instance, created on first use (prebuilt binaries only, errors logged only). */
export function sharedLlama(options: CreateBackendOptions = {}): Promise<Llama> {
  shared ??= (async () => {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    return getLlama({ gpu: options.gpu ?? false, build: "never", logLevel: LlamaLogLevel.error });
  })();
  shared.catch(() => {
    shared = undefined;
  });
  return shared;
}

export function createBackend(name: BackendName, options: CreateBackendOptions = {}): Backend {
  switch (name) {
    case "llama.cpp":
      return new LlamaCppBackend(
        () => sharedLlama(options),
        options.kvCacheType !== undefined ? { kvCacheType: options.kvCacheType } : {},
      );
    case "owl":
      return new OwlBackend();
  }
}
