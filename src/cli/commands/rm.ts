/**
 * `owl rm <name...>`: delete models from the store (their blobs too, unless another name uses
 * them), like `ollama rm`: "deleted 'name'" per model; the first failure stops with its error.
 */
import type { Command } from "commander";
import type { CliIO } from "../io.ts";
import { openStore } from "../store.ts";

export function registerRm(program: Command, io: CliIO): void {
  program
    .command("rm")
    .description("remove models from the store")
    .argument("<names...>", "model names (name[:tag]; the tag defaults to latest)")
    .action(async (names: string[]) => {
      const store = openStore(io);
      for (const name of names) {
        await store.remove(name);
        io.out(`deleted '${name}'\n`);
      }
    });
}
