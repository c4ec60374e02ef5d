/**
 * The model store as the CLI opens it: OWL_HOME/models, where OWL_HOME is CliIO.owlHome when a
 * caller (a test) sets it, else util/env's owlHome() (the OWL_HOME variable, default ~/.owl).
 */
import { join } from "node:path";
import { ModelStore } from "../store/store.ts";
import { owlHome } from "../util/env.ts";
import type { CliIO } from "./io.ts";

export function openStore(io: CliIO): ModelStore {
  return new ModelStore(join(io.owlHome ?? owlHome(), "models"));
}
