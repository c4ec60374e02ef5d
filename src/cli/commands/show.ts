/**
 * `owl show <file>`: what a GGUF or safetensors model holds, like `ollama show`; `--json` for
 * machines, `--tensors` for the full tensor list.
 */
import type { Command } from "commander";
import type { ModelInfo } from "../../tools/model-info.ts";
import { openModelInfo } from "../../tools/open-model.ts";
import type { CliIO } from "../io.ts";
import { formatBytes } from "../progress.ts";

interface ShowOptions {
  json?: boolean;
  tensors?: boolean;
}

function section(title: string, rows: [string, string | number | undefined][]): string {
  const present = rows.filter((r): r is [string, string | number] => r[1] !== undefined);
  if (present.length === 0) return "";
  const width = Math.max(...present.map(([k]) => k.length)) + 4;
  return `  ${title}\n${present.map(([k, v]) => `    ${k.padEnd(width)}${v}\n`).join("")}\n`;
}

export function renderModelInfo(info: ModelInfo, withTensors: boolean): string {
  let out = "";
  out += section("Model", [
    ["architecture", info.architecture ?? "(not recorded)"],
    ["name", info.name],
    ["parameters", `${info.parameterLabel} (${info.parameters.toLocaleString("en-US")})`],
    ["context length", info.contextLength],
    ["embedding length", info.embeddingLength],
    ["layers", info.blockCount],
    ["feed-forward length", info.feedForwardLength],
    [
      "attention heads",
      info.headCount === undefined
        ? undefined
        : `${info.headCount}${info.headCountKv !== undefined && info.headCountKv !== info.headCount ? ` (${info.headCountKv} kv)` : ""}`,
    ],
    [
      "experts",
      info.expertCount === undefined
        ? undefined
        : `${info.expertCount} (${info.expertUsedCount ?? "?"} used)`,
    ],
    ["rope freq base", info.ropeFreqBase],
    ["quantization", info.quantization],
    [
      "format",
      `${info.format}${info.version !== undefined ? ` v${info.version}` : ""}, ${formatBytes(info.fileSize)}`,
    ],
  ]);
  out += section(
    "Tensors",
    info.tensorTypes.map((s) => [
      s.type,
      `${s.tensors} tensors, ${parameterShare(s.parameters, info.parameters)} of parameters, ${formatBytes(s.bytes)}`,
    ]),
  );
  if (info.tokenizer) {
    out += section("Tokenizer", [
      ["model", info.tokenizer.model],
      ["pre-tokenizer", info.tokenizer.pre],
      ["tokens", info.tokenizer.tokens],
      [
        "bos / eos",
        info.tokenizer.bos === undefined ? undefined : `${info.tokenizer.bos} / ${info.tokenizer.eos ?? "-"}`,
      ],
      ["adds bos", info.tokenizer.addBos === undefined ? undefined : String(info.tokenizer.addBos)],
      ["chat template", info.chatTemplate ? "yes" : "no"],
    ]);
  } else {
    out += section("Tokenizer", [["chat template", info.chatTemplate ? "yes" : "no"]]);
  }
  out += section(
    "Metadata",
    Object.entries(info.general).map(([k, v]) => [k, v.length > 200 ? `${v.slice(0, 200)}…` : v]),
  );
  out += section("License", [["license", info.license ?? "(not recorded)"]]);
  if (info.warnings?.length)
    out += section(
      "Warnings",
      info.warnings.map((w, i) => [String(i + 1), w]),
    );
  if (withTensors) {
    const nameWidth = Math.max(4, ...info.tensors.map((t) => t.name.length)) + 2;
    out += `  Tensor list (${info.tensorCount})\n`;
    out += `    ${"name".padEnd(nameWidth)}${"type".padEnd(8)}${"shape".padEnd(24)}${"offset".padStart(14)}${"bytes".padStart(14)}\n`;
    for (const t of info.tensors) {
      out += `    ${t.name.padEnd(nameWidth)}${t.type.padEnd(8)}${`[${t.shape.join(", ")}]`.padEnd(24)}${String(t.offset).padStart(14)}${String(t.bytes).padStart(14)}\n`;
    }
    out += "\n";
  }
  return out;
}

function parameterShare(part: number, total: number): string {
  if (total === 0) return "0%";
  return `${((100 * part) / total).toFixed(part === total ? 0 : 1)}%`;
}

export function registerShow(program: Command, io: CliIO): void {
  program
    .command("show")
    .description(
      "show what a GGUF or safetensors model holds: architecture, parameters, tensor types, tokenizer, licence",
    )
    .argument("<file>", "a .gguf file, a .safetensors file, or a directory of a safetensors model")
    .option("--json", "print machine-readable JSON")
    .option("--tensors", "list every tensor with its type, shape, offset and size")
    .action((file: string, opts: ShowOptions) => {
      const info = openModelInfo(file);
      if (opts.json) {
        // Without --tensors the list is left out (JSON.stringify drops undefined fields).
        io.out(`${JSON.stringify(opts.tensors ? info : { ...info, tensors: undefined }, null, 2)}\n`);
        return;
      }
      io.out(renderModelInfo(info, opts.tensors ?? false));
    });
}
