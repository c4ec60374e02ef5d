/**
 * `owl create <name> -f Modelfile` (Ollama's Modelfile syntax) or `owl create <name> --from
 * model.gguf` (the short form: FROM only). Statuses go to stderr as `ollama create` shows them
 * ("gathering model components", "copying file sha256:...", "using existing layer ...", "writing
 * manifest", "success"); byte progress is a bar on a terminal. Without -f or --from, ./Modelfile
 * is read, as Ollama does.
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { parseModelfile } from "../../store/modelfile.ts";
import type { CreateProgress, Modelfile } from "../../store/types.ts";
import { OwlError } from "../../util/errors.ts";
import type { CliIO } from "../io.ts";
import { byteProgress, type ProgressBar } from "../progress.ts";
import { openStore } from "../store.ts";

interface CreateOptions {
  file?: string;
  from?: string;
}

async function readModelfile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new OwlError(
      code === "ENOENT" ? "ERR_FILE_NOT_FOUND" : "ERR_IO",
      `cannot read the Modelfile ${path}: ${(e as Error).message}`,
      { hint: "pass -f <Modelfile>, or --from <model.gguf> to import a GGUF as it is", cause: e },
    );
  }
}

export function registerCreate(program: Command, io: CliIO): void {
  program
    .command("create")
    .description("create a model in the store from a Modelfile or a GGUF file")
    .argument("<name>", "the new model's name (name[:tag])")
    .option("-f, --file <Modelfile>", "the Modelfile to read (default ./Modelfile)")
    .option("--from <model>", "short form: a GGUF file or a stored model, with no other settings")
    .action(async (name: string, opts: CreateOptions) => {
      if (opts.file !== undefined && opts.from !== undefined) {
        throw new OwlError(
          "ERR_INVALID_ARGUMENT",
          "pass either -f <Modelfile> or --from <model.gguf>, not both",
        );
      }
      let modelfile: Modelfile;
      let baseDir: string;
      if (opts.from !== undefined) {
        modelfile = { from: opts.from, params: {}, adapters: [], license: [], messages: [] };
        baseDir = process.cwd();
      } else {
        const path = resolve(opts.file ?? "Modelfile");
        modelfile = parseModelfile(await readModelfile(path));
        baseDir = dirname(path);
      }
      let bar: ProgressBar | undefined;
      let last = "";
      const onProgress = (p: CreateProgress) => {
        if (p.completed !== undefined && p.total !== undefined) {
          if (p.status !== last) {
            bar?.stop();
            io.err(`${p.status}\n`);
            bar = byteProgress(p.status.startsWith("copying") ? "copying" : "hashing");
            last = p.status;
          }
          bar?.update(p.completed, p.total);
          return;
        }
        bar?.stop();
        bar = undefined;
        last = p.status;
        io.err(`${p.status}\n`);
      };
      try {
        await openStore(io).create(name, modelfile, { baseDir, onProgress });
      } finally {
        bar?.stop();
      }
    });
}
