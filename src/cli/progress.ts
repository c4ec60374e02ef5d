/**
 * Progress bars for long CLI work (convert, quantize, pull), on stderr and only when stderr is a
 * terminal; otherwise silent, so piped output and tests stay clean.
 */
import cliProgress from "cli-progress";

export interface ProgressBar {
  update(done: number, total: number): void;
  stop(): void;
}

/** 1536 -> "1.5 KiB": sizes for people. */
export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** A byte-progress bar labelled `label`, or a no-op when stderr is not a TTY. */
export function byteProgress(label: string): ProgressBar {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {doneH} / {totalH} | {duration_formatted}`,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        bar.start(total, 0, { doneH: formatBytes(0), totalH: formatBytes(total) });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { doneH: formatBytes(done), totalH: formatBytes(total) });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
