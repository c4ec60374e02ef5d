/**
 * How `owl run` shows a thinking model's answer through a server, as `ollama run` does
 * (cmd/cmd.go): "Thinking..." before the first thinking, the thinking as it comes, then
 * "...done thinking." and a blank line when the answer starts (or at the end), then the answer;
 * --hidethinking shows the answer only. The --think flag's values are Ollama's.
 * Not here: the split itself (the server's, runtime/thinking.ts).
 */
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
