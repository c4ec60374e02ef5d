/**
 * `owl tokenize <model> <text>` and `owl detokenize <model> <ids...>`: a GGUF model's tokenizer
 * from the command line, like llama.cpp's llama-tokenize. tokenize prints the ids on one line
 * (space separated), or with --pieces one `id -> 'piece'` line per token; "-" reads the text from
 * stdin. detokenize takes ids as separate arguments or one comma/space separated list.
 * Not here: the tokenizer itself (src/tokenizer), model names (the store comes later).
 */
import type { Command } from "commander";
import { Tokenizer } from "../../tokenizer/tokenizer.ts";
import { TokenAttr } from "../../tokenizer/types.ts";
import { OwlError } from "../../util/errors.ts";
import type { CliIO } from "../io.ts";

/** A CliIO that can also supply stdin (tests pass one; the real CLI reads process.stdin). */
export interface StdinIO extends CliIO {
  readStdin?: () => Promise<string>;
}

async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // NOTE: invalid UTF-8 becomes U+FFFD (owl's tokenizer takes text, not bytes).
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(Buffer.concat(chunks));
}

interface TokenizeOptions {
  pieces?: boolean;
  special?: boolean;
  /** commander's --no-bos gives bos: false. */
  bos: boolean;
}

interface DetokenizeOptions {
  removeSpecial?: boolean;
  hideSpecial?: boolean;
}

/** A piece for display: control characters escaped; a lone byte token shown as its <0xXX> text. */
function displayPiece(tok: Tokenizer, id: number): string {
  const bytes = tok.pieceBytes(id);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return ((tok.vocab.attrs[id] ?? 0) & TokenAttr.BYTE) !== 0 ? tok.vocab.tokens[id]! : tok.tokenToPiece(id);
  }
  let out = "";
  for (const c of text) {
    const u = c.charCodeAt(0);
    if (c === "\n") out += "\\n";
    else if (c === "\r") out += "\\r";
    else if (c === "\t") out += "\\t";
    else if (c === "\\" || c === "'") out += `\\${c}`;
    else if (u < 0x20 || u === 0x7f) out += `\\x${u.toString(16).padStart(2, "0")}`;
    else out += c;
  }
  return out;
}

/** "1 2 3", "1,2,3", "[1, 2, 3]" or separate arguments -> ids. */
export function parseIds(args: readonly string[]): number[] {
  const ids: number[] = [];
  for (const arg of args) {
    for (const part of arg.replace(/^\s*\[|\]\s*$/g, "").split(/[\s,]+/)) {
      if (part === "") continue;
      if (!/^\d+$/.test(part)) {
        throw new OwlError(
          "ERR_INVALID_ARGUMENT",
          `"${part}" is not a token id (expected a non-negative integer)`,
          {
            hint: 'pass ids as separate arguments or one list: owl detokenize model.gguf "1 403 407"',
          },
        );
      }
      ids.push(Number(part));
    }
  }
  return ids;
}

export function registerTokenize(program: Command, io: StdinIO): void {
  program
    .command("tokenize")
    .description("print the token ids of a text, as the model's tokenizer (llama.cpp's) splits it")
    .argument("<model>", "a GGUF file")
    .argument("<text>", 'the text, or "-" to read it from stdin')
    .option("--pieces", "print one line per token: id and piece")
    .option("--special", "recognize special-token text such as <s> or <|im_start|> (parse_special)")
    .option("--no-bos", "do not add BOS/EOS (add_special = false)")
    .action(async (model: string, textArg: string, opts: TokenizeOptions) => {
      const tok = Tokenizer.fromGgufFile(model);
      const text = textArg === "-" ? await (io.readStdin ?? readProcessStdin)() : textArg;
      const ids = tok.encode(text, { addSpecial: opts.bos, parseSpecial: opts.special === true });
      if (opts.pieces) {
        io.out(ids.map((id) => `${String(id).padStart(6)} -> '${displayPiece(tok, id)}'\n`).join(""));
      } else io.out(`${ids.join(" ")}\n`);
    });
}

export function registerDetokenize(program: Command, io: CliIO): void {
  program
    .command("detokenize")
    .description("print the text of token ids (llama.cpp's detokenize)")
    .argument("<model>", "a GGUF file")
    .argument("<ids...>", 'token ids: separate arguments or one list ("1 2 3" or "1,2,3")')
    .option("--remove-special", "drop a leading BOS and a trailing EOS that the tokenizer adds")
    .option("--hide-special", "print control tokens (BOS, EOS, ...) as nothing instead of their text")
    .action((model: string, idArgs: string[], opts: DetokenizeOptions) => {
      const ids = parseIds(idArgs);
      const tok = Tokenizer.fromGgufFile(model);
      const text = tok.decode(ids, {
        removeSpecial: opts.removeSpecial === true,
        renderSpecial: opts.hideSpecial !== true,
      });
      io.out(`${text}\n`);
    });
}
