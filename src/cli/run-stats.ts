/**
 * The timing lines `owl run --verbose` prints after an answer, in `ollama run --verbose`'s
 * layout (total/load duration, prompt eval and eval count, duration and rate), plus the owl
 * engine's resident memory: weights + KV cache + scratch from its memory report.
 * Through a server, the same lines come from the final chunk's metrics (formatServerStats).
 * Not here: measuring (run-backend.ts).
 */
import type { OllamaMetrics } from "./client.ts";
import type { GenerationResult, ModelRunner } from "./run-backend.ts";

/** Go-style durations as Ollama prints them: 1.234567s, 12.345ms, 56.7µs. */
export function formatDuration(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(6).replace(/\.?0+$/, "")}s`;
  if (ms >= 1) return `${ms.toFixed(3).replace(/\.?0+$/, "")}ms`;
  return `${(ms * 1000).toFixed(1).replace(/\.?0+$/, "")}µs`;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(2)} MiB`;
}

function rate(tokens: number, ms: number): string {
  return ms > 0 ? `${((tokens * 1000) / ms).toFixed(2)} tokens/s` : "n/a";
}

/** The stats block; `withLoad` adds the model's load time to the total (the first answer). */
export function formatStats(runner: ModelRunner, result: GenerationResult, withLoad = true): string {
  const s = result.stats;
  const load = withLoad ? runner.loadMs : 0;
  const row = (name: string, value: string) => `${`${name}:`.padEnd(22)}${value}\n`;
  let out =
    row("total duration", formatDuration(load + s.totalMs)) +
    row("load duration", formatDuration(load)) +
    row("prompt eval count", `${s.promptTokens} token(s)`) +
    row("prompt eval duration", formatDuration(s.promptMs)) +
    row("prompt eval rate", rate(s.promptTokens, s.promptMs)) +
    row("eval count", `${s.evalTokens} token(s)`) +
    row("eval duration", formatDuration(s.evalMs)) +
    row("eval rate", rate(s.evalTokens, s.evalMs));
  const m = runner.memory();
  if (m) {
    const resident = m.weightsBytes + m.kvBytes + m.scratchBytes;
    out += row(
      "resident memory",
      `${mib(resident)} (weights ${mib(m.weightsBytes)}, KV cache ${mib(m.kvBytes)}, scratch ${mib(m.scratchBytes)})`,
    );
  }
  out += row("backend", runner.backend === "owl" ? "owl (WebAssembly)" : "llama.cpp (node-llama-cpp, CPU)");
  return out;
}

/** The same block from the final chunk of a server's answer (Ollama's metrics, nanoseconds). */
export function formatServerStats(m: OllamaMetrics, server: string, withLoad = true): string {
  const ms = (ns: number | undefined) => (ns ?? 0) / 1e6;
  const row = (name: string, value: string) => `${`${name}:`.padEnd(22)}${value}\n`;
  const load = withLoad ? ms(m.load_duration) : 0;
  const promptCount = m.prompt_eval_count ?? 0;
  const evalCount = m.eval_count ?? 0;
  return (
    row("total duration", formatDuration(ms(m.total_duration))) +
    row("load duration", formatDuration(load)) +
    row("prompt eval count", `${promptCount} token(s)`) +
    row("prompt eval duration", formatDuration(ms(m.prompt_eval_duration))) +
    row("prompt eval rate", rate(promptCount, ms(m.prompt_eval_duration))) +
    row("eval count", `${evalCount} token(s)`) +
    row("eval duration", formatDuration(ms(m.eval_duration))) +
    row("eval rate", rate(evalCount, ms(m.eval_duration))) +
    row("server", server)
  );
}
