/**
 * `owl list` (alias `ls`): the stored models, like `ollama list`: NAME ID SIZE MODIFIED, newest
 * first; ID is the first 12 hex digits of the manifest digest; SIZE in decimal units as Ollama's
 * format.HumanBytes (format.ts), the same as `owl ps`. An optional argument keeps the
 * names that start with it.
 */
import type { Command } from "commander";
import { humanBytes } from "../format.ts";
import type { CliIO } from "../io.ts";
import { openStore } from "../store.ts";

/** Ollama's format.HumanDuration, as `ollama list` prints MODIFIED ("2 days ago"). */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3_600_000);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

export function humanTime(t: Date, now = Date.now()): string {
  const d = now - t.getTime();
  return d < 0 ? `${humanDuration(-d)} from now` : `${humanDuration(d)} ago`;
}

/** Rows as columns padded to their widest cell plus 4 spaces (Ollama's table has no borders). */
export function formatTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 4))).join(""))
    .map((line) => `${line}\n`)
    .join("");
}

export function registerList(program: Command, io: CliIO): void {
  program
    .command("list")
    .alias("ls")
    .description("list the models in the store (the bundled stories260k is always there)")
    .argument("[prefix]", "only the names that start with this")
    .action(async (prefix: string | undefined) => {
      const models = await openStore(io).list();
      const rows = [["NAME", "ID", "SIZE", "MODIFIED"]];
      for (const m of models) {
        if (prefix !== undefined && !m.name.startsWith(prefix)) continue;
        rows.push([m.name, m.digest.slice(0, 12), humanBytes(m.size), humanTime(m.modifiedAt)]);
      }
      io.out(formatTable(rows));
    });
}
