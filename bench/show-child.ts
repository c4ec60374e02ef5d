/**
 * Child process of bench/show.ts: runs `owl show` in process on one file and prints the time it
 * took and the process's peak resident memory as JSON.
 */
import { runCli } from "../src/cli/main.ts";

const file = process.argv[2]!;
const t0 = performance.now();
let printed = 0;
const code = await runCli(["show", file], {
  out: (s) => {
    printed += s.length;
  },
  err: (s) => void process.stderr.write(s),
});
const ms = performance.now() - t0;
if (code !== 0 || printed === 0) process.exit(1);
process.stdout.write(`${JSON.stringify({ ms, rssMiB: process.resourceUsage().maxRSS / 1024 })}\n`);
