/**
 * Enforces the layer table of ../shared/DESIGN.md (copied below): every import inside src/ must
 * point to the same layer or one the table allows. Also enforces the house rules that only
 * util/env.ts reads process.env and that nothing below cli/ touches process.exit, process.argv
 * or process.stdout. Prints each violation with file and line; exits 1 if there is any.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const ALLOWED: Record<string, readonly string[]> = {
  util: [],
  api: [],
  formats: ["util"],
  quant: ["util"],
  tokenizer: ["util", "formats"],
  engine: ["util", "formats", "quant", "tokenizer"],
  train: ["engine", "util", "formats", "quant", "tokenizer"],
  tools: ["train", "engine", "util", "formats", "quant", "tokenizer"],
  store: ["util", "formats"],
  runtime: ["engine", "tokenizer", "formats", "quant", "store", "util"],
  server: ["runtime", "store", "tools", "api", "train", "engine", "tokenizer", "formats", "quant", "util"],
  hub: ["runtime", "store", "tools", "api", "train", "engine", "tokenizer", "formats", "quant", "util"],
  web: ["api"],
  cli: ["*"],
  index: ["*"],
};

const root = resolve(import.meta.dirname, "..", "src");

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|tsx|mts)$/.test(name)) out.push(p);
  }
  return out;
}

function layerOf(file: string): string {
  const rel = relative(root, file).split(sep);
  return rel.length === 1 ? "index" : rel[0]!;
}

const problems: string[] = [];
const importRe = /(?:^|\s)(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

for (const file of walk(root)) {
  const text = readFileSync(file, "utf8");
  const layer = layerOf(file);
  const allowed = ALLOWED[layer];
  const relFile = relative(resolve(root, ".."), file);
  if (!allowed) {
    problems.push(`${relFile}: folder src/${layer} is not in the layer table of DESIGN.md`);
    continue;
  }
  const lineOf = (index: number) => text.slice(0, index).split("\n").length;
  for (const m of text.matchAll(importRe)) {
    const spec = m[1] ?? m[2];
    if (!spec?.startsWith(".")) continue;
    const target = resolve(dirname(file), spec);
    if (!target.startsWith(root)) {
      problems.push(`${relFile}:${lineOf(m.index)}: imports ${spec}, outside src/`);
      continue;
    }
    const targetLayer = layerOf(target.endsWith(".ts") ? target : `${target}.ts`);
    if (targetLayer === layer || allowed.includes("*") || allowed.includes(targetLayer)) continue;
    problems.push(
      `${relFile}:${lineOf(m.index)}: layer "${layer}" may not import layer "${targetLayer}" (${spec}); allowed: ${allowed.join(", ") || "nothing internal"}`,
    );
  }
  if (layer !== "cli" && layer !== "index") {
    for (const [re, what] of [
      [/process\.exit\s*\(/g, "calls process.exit"],
      [/process\.argv/g, "reads process.argv"],
      [/process\.stdout|console\.log/g, "writes to stdout"],
    ] as const) {
      for (const m of text.matchAll(re))
        problems.push(`${relFile}:${lineOf(m.index)}: ${what}; only cli/ may`);
    }
  }
  if (!relFile.endsWith(join("util", "env.ts"))) {
    for (const m of text.matchAll(/process\.env/g)) {
      problems.push(`${relFile}:${lineOf(m.index)}: reads process.env; only src/util/env.ts may`);
    }
  }
}

if (problems.length > 0) {
  process.stderr.write(`layer check: ${problems.length} problem(s)\n${problems.join("\n")}\n`);
  process.exit(1);
}
process.stdout.write("layer check: ok\n");
