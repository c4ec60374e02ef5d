import { defineConfig } from "vitest/config";

// NOTE: node-llama-cpp decodes several times slower unless libuv has one pool thread; forked test
// workers inherit this environment.
process.env.UV_THREADPOOL_SIZE ??= "1";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "src/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
