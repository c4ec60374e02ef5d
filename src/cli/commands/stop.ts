/**
 * `owl stop <model>`: unload a model from the running owl server now, as `ollama stop` does:
 * POST /api/generate {model, keep_alive: 0} (a load-only request that expires at once).
 * Not here: the HTTP client (client.ts).
 */
import type { Command } from "commander";
import { OwlError } from "../../util/errors.ts";
import { OwlClient } from "../client.ts";
import type { CliIO } from "../io.ts";

export function registerStop(program: Command, _io: CliIO): void {
  program
    .command("stop")
    .description("unload a model from the running owl server (OWL_HOST)")
    .argument("<model>", "the model's name, as `owl ps` shows it")
    .action(async (model: string) => {
      try {
        await OwlClient.fromEnv().postJson("/api/generate", { model, keep_alive: 0, stream: false });
      } catch (e) {
        if (e instanceof OwlError && e.code === "ERR_MODEL_NOT_FOUND") {
          throw new OwlError("ERR_MODEL_NOT_FOUND", `couldn't find model "${model}" to stop`, {
            hint: "`owl ps` lists the loaded models",
            details: { model },
            cause: e,
          });
        }
        throw e;
      }
    });
}
