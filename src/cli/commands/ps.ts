/**
 * `owl ps`: the models a running owl server has loaded (GET /api/ps), in `ollama ps`'s table:
 * NAME, ID (first 12 hex of the manifest digest), SIZE (decimal units, Ollama's HumanBytes),
 * PROCESSOR ("100% CPU": owl runs on the CPU), CONTEXT and UNTIL ("4 minutes from now",
 * "Forever" for a model kept loaded, "Stopping..." once the time has passed).
 * Not here: the HTTP client (client.ts), the scheduler that owns loaded models (runtime/).
 */
import type { Command } from "commander";
import { OwlClient, type RunningModelWire } from "../client.ts";
import { humanBytes } from "../format.ts";
import type { CliIO } from "../io.ts";

export { humanBytes };

/** Ollama's format.humanDuration. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3_600_000);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3_600_000 / 24 / 365)} years`;
}

/** The UNTIL column: `expires` relative to `now`, as `ollama ps` prints it. */
export function formatUntil(expires: string | null | undefined, now = Date.now()): string {
  if (expires === null || expires === undefined || expires === "") return "Forever";
  const t = Date.parse(expires);
  // Go's zero time (0001-01-01) and anything 20+ years ahead mean "kept forever".
  if (!Number.isFinite(t) || t <= Date.UTC(1, 0, 1) + 86_400_000) return "Forever";
  const delta = t - now;
  if (delta > 20 * 365 * 86_400_000) return "Forever";
  if (delta < 0) return "Stopping...";
  return `${humanDuration(delta)} from now`;
}

/** The PROCESSOR column (Ollama's rule; owl has no GPU offload, so it is "100% CPU"). */
function processor(m: RunningModelWire): string {
  const vram = m.size_vram ?? 0;
  if (vram === 0) return "100% CPU";
  if (vram === m.size) return "100% GPU";
  if (vram > m.size || m.size === 0) return "Unknown";
  const cpu = Math.round(((m.size - vram) / m.size) * 100);
  return `${cpu}%/${100 - cpu}% CPU/GPU`;
}

/** Left-aligned columns separated by four spaces (Ollama's tablewriter settings). */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    `${cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("    ")
      .trimEnd()}\n`;
  return line(header) + rows.map(line).join("");
}

export function renderRunning(models: RunningModelWire[], now = Date.now()): string {
  const rows = models.map((m) => [
    m.name,
    m.digest.replace(/^sha256:/, "").slice(0, 12),
    humanBytes(m.size),
    processor(m),
    m.context_length !== undefined ? String(m.context_length) : "",
    formatUntil(m.expires_at, now),
  ]);
  return formatTable(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows);
}

export function registerPs(program: Command, io: CliIO): void {
  program
    .command("ps")
    .description("list the models a running owl server has loaded (OWL_HOST)")
    .argument("[prefix]", "only models whose name starts with this")
    .option("--json", "print the server's answer as JSON")
    .action(async (prefix: string | undefined, flags: { json?: boolean }) => {
      const res = await OwlClient.fromEnv().getJson<{ models?: RunningModelWire[] }>("/api/ps");
      const models = (res.models ?? []).filter((m) => prefix === undefined || m.name.startsWith(prefix));
      if (flags.json) io.out(`${JSON.stringify({ models }, null, 2)}\n`);
      else io.out(renderRunning(models));
    });
}
