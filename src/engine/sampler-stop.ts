/**
 * Stop strings over streamed text. StopMatcher takes the text of each generated token as it
 * comes and returns what may be shown: it holds back any tail that could be the start of a stop
 * string, and when a stop string appears (possibly spread over several tokens) it returns the
 * text before it and reports the stop. The stop string itself is never returned, as llama.cpp's
 * server and Ollama do (llama-server's find_stopping_strings with partial matches).
 * Not here: stop tokens and token limits (generate.ts).
 */

export interface StopPush {
  /** Text that is now safe to emit (possibly ""). */
  text: string;
  /** A stop string was found: `text` ends just before it; emit nothing more. */
  stopped: boolean;
  /** The stop string found. */
  stop?: string;
}

export class StopMatcher {
  readonly stops: readonly string[];
  private held = "";
  private done = false;
  private readonly maxLen: number;

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
    this.maxLen = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Whether a stop string was found. */
  get stopped(): boolean {
    return this.done;
  }

  /** Text held back because it may begin a stop string. */
  get pending(): string {
    return this.held;
  }

  /** Feed the next piece of text. */
  push(piece: string): StopPush {
    if (this.done) return { text: "", stopped: true };
    if (this.stops.length === 0) return { text: piece, stopped: false };
    const buf = this.held + piece;
    // The earliest stop string wins; among those starting at the same place, the longest.
    // Only matches that end in the new piece are new, but a search from the start of the held
    // text is cheap (it is shorter than the longest stop string).
    let at = -1;
    let which = "";
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at || (i === at && s.length > which.length))) {
        at = i;
        which = s;
      }
    }
    if (at >= 0) {
      this.done = true;
      this.held = "";
      return { text: buf.slice(0, at), stopped: true, stop: which };
    }
    const keep = this.partialTail(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** End of generation for another reason: the held-back text is not a stop after all. */
  flush(): string {
    const rest = this.done ? "" : this.held;
    this.held = "";
    return rest;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  private partialTail(buf: string): number {
    const limit = Math.min(buf.length, this.maxLen - 1);
    for (let n = limit; n > 0; n--) {
      const tail = buf.slice(buf.length - n);
      for (const s of this.stops) if (s.length > n && s.startsWith(tail)) return n;
    }
    return 0;
  }
}
