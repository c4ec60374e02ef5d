/**
 * `owl show <file | name>`: what a GGUF or safetensors model holds, like `ollama show`; `--json`
 * for machines, `--tensors` for the full tensor list. A stored model name (`owl list`) prints
 * `ollama show`'s view (Model, Capabilities, Parameters, System, License) and takes its flags
 * --modelfile, --parameters, --template, --system, --license; --json / --tensors on a name report
 * its GGUF file. A name is tried in the store first; a path that is no stored name is a file.
 */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { getString, openGguf } from "../../formats/gguf/index.ts";
import { summarizeGguf } from "../../store/gguf-summary.ts";
import { isValidModelName } from "../../store/names.ts";
import type { ResolvedModel } from "../../store/types.ts";
import type { ModelInfo } from "../../tools/model-info.ts";
import { openModelInfo } from "../../tools/open-model.ts";
import { isOwlError } from "../../util/errors.ts";
import type { CliIO } from "../io.ts";
import { formatBytes } from "../progress.ts";
import { openStore } from "../store.ts";

interface ShowOptions {
  json?: boolean;
  tensors?: boolean;
  modelfile?: boolean;
  parameters?: boolean;
  template?: boolean;
  system?: boolean;
  license?: boolean;
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

/** A value as Go's %#v prints it in `ollama show --parameters`: strings quoted, numbers bare. */
function goValue(v: number | boolean | string): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/** `ollama show --parameters` lines: the name padded to 30, then the value; one line per stop. */
export function renderParameters(params: ResolvedModel["params"]): string {
  let out = "";
  for (const [k, v] of Object.entries(params)) {
    for (const x of Array.isArray(v) ? v : [v]) out += `${k.padEnd(30)} ${goValue(x)}\n`;
  }
  return out;
}

/** At most two lines of a long text, then "...", as `ollama show` abbreviates System and License. */
function firstLines(text: string): [string, string][] {
  const lines = text.trim().split("\n");
  const rows: [string, string][] = lines.slice(0, 2).map((l) => [l, ""]);
  if (lines.length > 2) rows.push(["...", ""]);
  return rows;
}

function textSection(title: string, text: string): string {
  return `  ${title}\n${firstLines(text)
    .map(([l]) => `    ${l}\n`)
    .join("")}\n`;
}

/** `ollama show <name>`'s report for a stored model. */
export async function renderStoredModel(m: ResolvedModel): Promise<string> {
  const g = await summarizeGguf(m.modelPath);
  let out = section("Model", [
    ["architecture", m.details.family || g.architecture],
    ["parameters", m.details.parameter_size || g.parameterSize],
    ["context length", g.contextLength],
    ["embedding length", g.embeddingLength],
    ["quantization", m.details.quantization_level || g.fileType],
  ]);
  out += `  Capabilities\n    completion\n\n`;
  const params = Object.entries(m.params).flatMap(([k, v]): [string, string][] =>
    (Array.isArray(v) ? v : [v]).map((x) => [k, goValue(x)]),
  );
  if (params.length > 0) {
    const w = Math.max(...params.map(([k]) => k.length)) + 4;
    out += `  Parameters\n${params.map(([k, v]) => `    ${k.padEnd(w)}${v}\n`).join("")}\n`;
  }
  if (m.system) out += textSection("System", m.system);
  if (m.license.length > 0) out += textSection("License", m.license.join("\n"));
  return out;
}

/** The model's TEMPLATE, or the chat template inside its GGUF when the Modelfile set none. */
function templateOf(m: ResolvedModel): string {
  if (m.template !== undefined) return m.template;
  const f = openGguf(m.modelPath);
  try {
    return getString(f.metadata, "tokenizer.chat_template") ?? "";
  } finally {
    f.close();
  }
}

function withNewline(s: string): string {
  return s === "" || s.endsWith("\n") ? s : `${s}\n`;
}

async function resolveStored(io: CliIO, arg: string): Promise<ResolvedModel | undefined> {
  if (!isValidModelName(arg)) return undefined;
  try {
    return await openStore(io).resolve(arg);
  } catch (e) {
    // Not a stored model: a file of that name is shown instead; otherwise the store's error stands.
    if (isOwlError(e, "ERR_MODEL_NOT_FOUND") && existsSync(arg)) return undefined;
    throw e;
  }
}

export function registerShow(program: Command, io: CliIO): void {
  program
    .command("show")
    .description(
      "show a stored model (like ollama show), or what a GGUF or safetensors file holds: architecture, parameters, tensor types, tokenizer, licence",
    )
    .argument(
      "<model>",
      "a stored model name (owl list), a .gguf file, a .safetensors file, or a directory of a safetensors model",
    )
    .option("--json", "print machine-readable JSON (of the model file)")
    .option("--tensors", "list every tensor with its type, shape, offset and size")
    .option("--modelfile", "a stored model's Modelfile")
    .option("--parameters", "a stored model's parameters")
    .option("--template", "a stored model's prompt template")
    .option("--system", "a stored model's system message")
    .option("--license", "a stored model's licence")
    .action(async (arg: string, opts: ShowOptions) => {
      const stored = await resolveStored(io, arg);
      if (stored) {
        if (opts.modelfile) return void io.out(openStore(io).modelfileText(stored));
        if (opts.parameters) return void io.out(renderParameters(stored.params));
        if (opts.template) return void io.out(withNewline(templateOf(stored)));
        if (opts.system) return void io.out(withNewline(stored.system ?? ""));
        if (opts.license) return void io.out(withNewline(stored.license.join("\n")));
        if (!opts.json && !opts.tensors) return void io.out(await renderStoredModel(stored));
      }
      const info = openModelInfo(stored ? stored.modelPath : arg);
      if (opts.json) {
        // Without --tensors the list is left out (JSON.stringify drops undefined fields).
        io.out(`${JSON.stringify(opts.tensors ? info : { ...info, tensors: undefined }, null, 2)}\n`);
        return;
      }
      io.out(renderModelInfo(info, opts.tensors ?? false));
    });
}
