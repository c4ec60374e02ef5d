#!/usr/bin/env node
// owl's entry point. It runs the TypeScript sources through tsx's loader, so `npx owl ...` works
// right after `npm ci` with no build step to remember.
// NOTE: node-llama-cpp decodes 1.3-5.7x slower on 2 threads unless libuv's thread pool has one
// thread; libuv reads UV_THREADPOOL_SIZE when the pool first starts, so set it before any I/O.
if (process.env.UV_THREADPOOL_SIZE === undefined) process.env.UV_THREADPOOL_SIZE = "1";
const { register } = await import("tsx/esm/api");
register();
const { runCli } = await import("../src/cli/main.ts");
const code = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
});
process.exitCode = code;
