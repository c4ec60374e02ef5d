/**
 * The list of CLI verbs. Each commands/<verb>.ts exports a register function.
 */
import type { Command } from "commander";
import type { CliIO } from "../io.ts";
import { registerConvert } from "./convert.ts";
import { registerCp } from "./cp.ts";
import { registerCreate } from "./create.ts";
import { registerList } from "./list.ts";
import { registerPs } from "./ps.ts";
import { registerRm } from "./rm.ts";
import { registerRun } from "./run.ts";
import { registerServe } from "./serve.ts";
import { registerShow } from "./show.ts";
import { registerStop } from "./stop.ts";
import { registerDetokenize, registerTokenize } from "./tokenize.ts";

export function registerCommands(program: Command, io: CliIO): void {
  registerConvert(program, io);
  registerRun(program, io);
  registerPs(program, io);
  registerStop(program, io);
  registerServe(program, io);
  registerShow(program, io);
  registerList(program, io);
  registerRm(program, io);
  registerCp(program, io);
  registerCreate(program, io);
  registerTokenize(program, io);
  registerDetokenize(program, io);
}
