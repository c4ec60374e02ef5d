/**
 * How `owl run` shows a thinking model's answer through a server, as `ollama run` does
 * (cmd/cmd.go): "Thinking..." before the first thinking, the thinking as it comes, then
 * "...done thinking." and a blank line when the answer starts (or at the end), then the answer;
 * --hidethinking shows the answer only. The --think flag's values are Ollama's. In this process
 * (a stored model whose template thinks) the same split is made here (localThinking,
 * thinkingOutput), so both ways show the same.
 * Not here: the split itself (runtime/thinking.ts).
 */
import type { ThinkValue } from "../runtime/prompt.ts";
import { type ThinkingTags, thinkFor, thinkingParser, thinkingTags } from "../runtime/thinking.ts";
import { OwlError } from "../util/errors.ts";

/** --think and --hidethinking. */
export interface ThinkingOptions {
  think: boolean | string | undefined;
  hide: boolean;
}

export class ThinkingDisplay {
  private open = false;
  private thought = "";

  constructor(
    private readonly out: (text: string) => void,
    private readonly hide: boolean,
  ) {}

  /** Shows a chunk's thinking. */
  thinking(text: string | undefined): void {
    if (!text || this.hide) return;
    if (!this.open && this.thought === "") this.out("Thinking...\n");
    this.open = true;
    this.thought += text;
    this.out(text);
  }

  /** Shows a chunk's answer text (closing the thinking first). */
  content(text: string): void {
    if (text === "") return;
    this.close();
    this.out(text);
  }

  /** Ends the thinking block if it is still open (an answer that was all thinking). */
  close(): void {
    if (!this.open) return;
    this.open = false;
    if (!this.thought.endsWith("\n")) this.out("\n");
    this.out("...done thinking.\n\n");
  }
}

/** --think's value for the server: true (no value), false, or a level; else a usage error. */
export function parseThinkFlag(raw: string | boolean | undefined): boolean | string | undefined {
  if (raw === undefined) return undefined;
  if (raw === true || raw === "" || raw === "true") return true;
  if (raw === false || raw === "false") return false;
  if (raw === "high" || raw === "medium" || raw === "low") return raw;
  throw new OwlError(
    "ERR_INVALID_ARGUMENT",
    `invalid value for --think: ${JSON.stringify(raw)} (must be true, false, high, medium, or low)`,
  );
}

/** A stored model's thinking in this process: the tags, the think value its template gets. */
export interface LocalThinking {
  think: ThinkValue;
  tags: ThinkingTags;
  hide: boolean;
}

/**
 * Whether a stored model thinks here (its Modelfile TEMPLATE, else the GGUF's chat template, as
 * the server decides): undefined when it does not; --think for such a model is an error, as the
 * server's 400.
 */
export function localThinking(
  runner: { chatTemplate: string | undefined },
  model: { template?: string; name: string },
  opts: ThinkingOptions,
): LocalThinking | undefined {
  const tags = thinkingTags(model.template, runner.chatTemplate);
  const refuse = () =>
    new OwlError("ERR_INVALID_ARGUMENT", `"${model.name}" does not support thinking (--think)`);
  const think = thinkFor(tags, opts.think as ThinkValue | undefined, refuse);
  return tags === undefined || think === undefined ? undefined : { think, tags, hide: opts.hide };
}

/**
 * The text callback of an answer: with a thinking model, its text split (ThinkingParser) and
 * shown as through a server (ThinkingDisplay); `promptEnd` (the prompt's last characters) tells
 * whether the template opened the thinking itself. `content()`: the answer without the thinking.
 */
export function thinkingOutput(
  local: LocalThinking | undefined,
  out: (text: string) => void,
  promptEnd = "",
): { text: (t: string) => void; end: () => void; content: () => string | undefined } {
  const parser = local && thinkingParser(local, promptEnd);
  if (parser === undefined) return { text: out, end: () => {}, content: () => undefined };
  const display = new ThinkingDisplay(out, local!.hide);
  let content = "";
  return {
    text: (t) => {
      const s = parser.add(t);
      display.thinking(s.thinking);
      display.content(s.content);
      content += s.content;
    },
    end: () => display.close(),
    content: () => content,
  };
}
