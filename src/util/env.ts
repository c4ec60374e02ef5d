/**
 * The only reader of environment variables in owl. Every setting owl takes from the environment
 * is named here, with its default.
 */
import { homedir } from "node:os";
import { join } from "node:path";

/** OWL_HOME: where models and settings live (default ~/.owl). */
export function owlHome(): string {
  return process.env["OWL_HOME"] ?? join(homedir(), ".owl");
}

/** OWL_DEBUG=1: print stacks with errors. */
export function debugEnabled(): boolean {
  const v = process.env["OWL_DEBUG"];
  return v !== undefined && v !== "" && v !== "0";
}
