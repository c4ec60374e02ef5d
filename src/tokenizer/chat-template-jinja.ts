/**
 * The typed part of @huggingface/jinja (0.5.11) that chat-template.ts uses. The package's .d.ts
 * files import each other without file extensions, which TypeScript's NodeNext resolution does
 * not follow, so its Environment, Interpreter, parse and tokenize type as `any` in this project.
 * This file declares the members we rely on, checks at load that the exports are what we expect,
 * and re-exports them under these types. Nothing else imports the package directly.
 *
 * Runtime values and AST nodes are the library's classes; code here reads them through their
 * `type` discriminator and fields, and makes new ones only through the interpreter (by
 * evaluating literal nodes), never by naming the classes, which the package does not export.
 */
import {
  Environment as EnvironmentImpl,
  Interpreter as InterpreterImpl,
  parse as parseImpl,
  tokenize as tokenizeImpl,
} from "@huggingface/jinja";
import { assert } from "../util/errors.ts";

/** An AST node: Program, If, For, Identifier, StringLiteral, ... (field names as in the library's ast.ts). */
export interface JinjaNode {
  type: string;
}

export interface JinjaProgram extends JinjaNode {
  body: JinjaNode[];
}

/** A runtime value: StringValue, IntegerValue, ArrayValue (value: JinjaValue[]), ObjectValue (value: Map), ... */
export interface JinjaValue {
  type: string;
  value: unknown;
  toString(): string;
}

export interface JinjaToken {
  value: string;
  type: string;
}

export interface JinjaEnvironment {
  /** Declare a variable from a JavaScript value (functions become callables); throws if already declared. */
  set(name: string, value: unknown): JinjaValue;
  /** Set a variable in this scope to a runtime value. */
  setVariable(name: string, value: JinjaValue): JinjaValue;
  lookupVariable(name: string): JinjaValue;
}

export interface JinjaInterpreter {
  global: JinjaEnvironment;
  run(program: JinjaProgram): JinjaValue;
  evaluate(statement: JinjaNode | undefined, environment: JinjaEnvironment): JinjaValue;
}

export const Environment: new (parent?: JinjaEnvironment) => JinjaEnvironment = EnvironmentImpl;
export const Interpreter: new (env?: JinjaEnvironment) => JinjaInterpreter = InterpreterImpl;
export const tokenize: (
  source: string,
  options?: { lstrip_blocks?: boolean; trim_blocks?: boolean },
) => JinjaToken[] = tokenizeImpl;
export const parse: (tokens: JinjaToken[]) => JinjaProgram = parseImpl;

assert(
  typeof Environment === "function" &&
    typeof Interpreter === "function" &&
    typeof Interpreter.prototype.evaluate === "function" &&
    typeof tokenize === "function" &&
    typeof parse === "function",
  "@huggingface/jinja does not export Environment, Interpreter, tokenize and parse as expected",
);
