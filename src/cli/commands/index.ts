/**
 * The list of CLI verbs. Each commands/<verb>.ts exports register(program, io).
 */
import type { Command } from "commander";
import type { CliIO } from "../io.ts";

export function registerCommands(_program: Command, _io: CliIO): void {}
