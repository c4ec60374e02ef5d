/**
 * owl's command line: parses argv with commander, runs one command, and maps errors to exit codes.
 * This is the only place that turns an OwlError into `error: ...` text and an exit status.
 * Each verb lives in commands/<verb>.ts and registers itself through `register(program, io)`.
 */
import { Command, CommanderError } from "commander";
import { debugEnabled } from "../util/env.ts";
import { OwlError, type OwlErrorCode } from "../util/errors.ts";
import { registerCommands } from "./commands/index.ts";
import type { CliIO } from "./io.ts";

export const VERSION = "0.1.0";

/** Exit codes: 0 ok, 1 user error (bad input, not found), 2 usage error, 70 internal error. */
function exitCodeFor(code: OwlErrorCode): number {
  switch (code) {
    case "ERR_INVALID_ARGUMENT":
      return 2;
    default:
      return 1;
  }
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const program = new Command();
  program
    .name("owl")
    .description("open weights, local: get, run, serve, fine-tune, quantize and inspect open-weight models")
    .version(VERSION, "-v, --version")
    .option("--debug", "print stack traces with errors")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError(false);
  registerCommands(program, io);
  const debug = argv.includes("--debug") || debugEnabled();
  try {
    await program.parseAsync([...argv], { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version come through here with exit code 0.
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof OwlError) {
      io.err(`error: ${e.message}\n`);
      if (e.hint) io.err(`hint: ${e.hint}\n`);
      if (debug && e.stack) io.err(`${e.stack}\n`);
      return exitCodeFor(e.code);
    }
    const err = e as Error;
    io.err(`internal error: ${err?.message ?? String(e)}\n`);
    io.err(
      debug && err?.stack
        ? `${err.stack}\n`
        : "(run with --debug for the stack trace; this is a bug in owl)\n",
    );
    return 70;
  }
}
