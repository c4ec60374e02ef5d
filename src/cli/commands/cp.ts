/**
 * `owl cp <source> <destination>`: a second name for a stored model (the manifest is copied, the
 * blobs are shared), like `ollama cp`: "copied 'a' to 'b'".
 */
import type { Command } from "commander";
import type { CliIO } from "../io.ts";
import { openStore } from "../store.ts";

export function registerCp(program: Command, io: CliIO): void {
  program
    .command("cp")
    .description("copy a model to a new name (no data is duplicated)")
    .argument("<source>", "an existing model name")
    .argument("<destination>", "the new name")
    .action(async (source: string, destination: string) => {
      await openStore(io).copy(source, destination);
      io.out(`copied '${source}' to '${destination}'\n`);
    });
}
