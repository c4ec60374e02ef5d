/**
 * The output channels a CLI command writes to. cli/ is the only layer that prints; commands take
 * a CliIO so tests can run them in process and read what they printed.
 */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** OWL_HOME for this run (tests point it at a temp dir); undefined: util/env's owlHome(). */
  owlHome?: string;
}

/** A CliIO that keeps everything written, for tests. */
export function captureIO(): CliIO & { stdout: () => string; stderr: () => string } {
  let o = "";
  let e = "";
  return {
    out: (s) => {
      o += s;
    },
    err: (s) => {
      e += s;
    },
    stdout: () => o,
    stderr: () => e,
  };
}
