/**
 * `owl show` on GGUF and safetensors: the facts it reports are checked against values known from
 * elsewhere (the stories260K fixture README: 260,032 parameters, dims 64/172, 5 layers, 8/4 heads,
 * context 512; llama.cpp's vocab files: tokenizer models and vocabulary sizes, phi-3's chat
 * template) and against hand-built safetensors directories.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { captureIO } from "../src/cli/io.ts";
import { runCli } from "../src/cli/main.ts";
import { writeSafetensors } from "../src/formats/safetensors/index.ts";
import { fixturePath, REPO_ROOT } from "./helpers/fixtures.ts";

const BUNDLED = join(REPO_ROOT, "models", "stories260k.gguf");

async function owl(...args: string[]) {
  const io = captureIO();
  const code = await runCli(args, io);
  return { code, out: io.stdout(), err: io.stderr() };
}

const tmp = mkdtempSync(join(tmpdir(), "owl-show-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("owl show on GGUF", () => {
  it("reports the bundled stories260K model", async () => {
    const r = await owl("show", BUNDLED);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/architecture\s+llama/);
    expect(r.out).toMatch(/parameters\s+260K \(260,032\)/);
    expect(r.out).toMatch(/context length\s+512/);
    expect(r.out).toMatch(/embedding length\s+64/);
    expect(r.out).toMatch(/feed-forward length\s+172/);
    expect(r.out).toMatch(/layers\s+5/);
    expect(r.out).toMatch(/attention heads\s+8 \(4 kv\)/);
    expect(r.out).toMatch(/F32\s+47 tensors, 100% of parameters/);
    expect(r.out).toMatch(/model\s+llama/);
    expect(r.out).toMatch(/tokens\s+512/);
    expect(r.out).toMatch(/chat template\s+no/);
    expect(r.out).toMatch(/license\s+mit/);
  });

  it("--json gives the same facts to machines, --tensors the full list", async () => {
    const r = await owl("show", BUNDLED, "--json");
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({
      format: "gguf",
      version: 3,
      architecture: "llama",
      parameters: 260032,
      contextLength: 512,
      blockCount: 5,
      headCount: 8,
      headCountKv: 4,
      vocabSize: 512,
      chatTemplate: false,
      license: "mit",
      tokenizer: { model: "llama", tokens: 512, bos: 1, eos: 2, addBos: true },
      tensorCount: 47,
    });
    expect(j.tensors).toBeUndefined();
    expect(j.metadata["tokenizer.ggml.tokens"]).toMatchObject({ type: "STRING", length: 512 });
    const t = JSON.parse((await owl("show", BUNDLED, "--json", "--tensors")).out);
    expect(t.tensors).toHaveLength(47);
    // w2 of llama2.c is (dim=64, hidden=172) row-major, so ggml dims are [172, 64].
    expect(t.tensors.find((x: { name: string }) => x.name === "blk.4.ffn_down.weight")).toMatchObject({
      type: "F32",
      shape: [172, 64],
      bytes: 172 * 64 * 4,
    });
    const text = (await owl("show", BUNDLED, "--tensors")).out;
    expect(text).toMatch(/Tensor list \(47\)/);
    expect(text).toMatch(/token_embd\.weight\s+F32\s+\[64, 512\]/);
  });

  it.each([
    ["tokenizer/ggml-vocab-llama-spm.gguf", "llama", 32000, false],
    ["tokenizer/ggml-vocab-bert-bge.gguf", "bert", 30522, false],
    ["tokenizer/ggml-vocab-phi-3.gguf", "llama", 32064, true],
    ["tokenizer/ggml-vocab-gpt-2.gguf", "gpt2", 50257, false],
  ] as const)("reads llama.cpp's vocab file %s", async (rel, model, tokens, template) => {
    const p = fixturePath(rel);
    if (!p) return; // fixture not in this checkout (only the shared set has it)
    const j = JSON.parse((await owl("show", p, "--json")).out);
    expect(j.tokenizer.model).toBe(model);
    expect(j.tokenizer.tokens).toBe(tokens);
    expect(j.chatTemplate).toBe(template);
    expect(j.parameters).toBe(0);
  });

  it("gives clear errors for a missing file, a non-model file and a truncated GGUF", async () => {
    const missing = await owl("show", join(tmp, "nope.gguf"));
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^error: no such file or directory: .*nope\.gguf/);
    const junk = join(tmp, "junk.bin");
    writeFileSync(junk, "hello, this is not a model at all");
    const j = await owl("show", junk);
    expect(j.code).toBe(1);
    expect(j.err).toMatch(/is not a GGUF or safetensors model/);
    const cut = join(tmp, "cut.gguf");
    writeFileSync(cut, readFileSync(BUNDLED).subarray(0, 5000));
    const c = await owl("show", cut);
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/^error: /);
    expect(c.err).not.toMatch(/internal error/);
  });
});

describe("owl show on safetensors", () => {
  it("reads a model directory: tensors from the file, the rest from config.json and friends", async () => {
    const dir = join(tmp, "hf-model");
    mkdirSync(dir);
    const zeros = (n: number) => () => new Uint8Array(n);
    await writeSafetensors(join(dir, "model.safetensors"), {
      metadata: { format: "pt" },
      tensors: [
        { name: "model.embed_tokens.weight", dtype: "BF16", shape: [100, 16], data: zeros(3200) },
        { name: "model.layers.0.self_attn.q_proj.weight", dtype: "BF16", shape: [16, 16], data: zeros(512) },
        { name: "model.norm.weight", dtype: "F32", shape: [16], data: zeros(64) },
      ],
    });
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({
        architectures: ["LlamaForCausalLM"],
        model_type: "llama",
        max_position_embeddings: 4096,
        hidden_size: 16,
        num_hidden_layers: 1,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        vocab_size: 100,
        torch_dtype: "bfloat16",
      }),
    );
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ chat_template: "{{ messages }}" }));
    writeFileSync(join(dir, "README.md"), "---\nlicense: apache-2.0\ntags: [x]\n---\n# model\n");
    const j = JSON.parse((await owl("show", dir, "--json")).out);
    expect(j).toMatchObject({
      format: "safetensors",
      architecture: "llama",
      parameters: 1600 + 256 + 16,
      contextLength: 4096,
      headCount: 4,
      headCountKv: 2,
      chatTemplate: true,
      license: "apache-2.0",
      tensorCount: 3,
    });
    expect(j.tensorTypes[0]).toMatchObject({ type: "BF16", tensors: 2, parameters: 1856, bytes: 3712 });
    const text = (await owl("show", join(dir, "model.safetensors"))).out;
    expect(text).toMatch(/format\s+safetensors/);
    expect(text).toMatch(/__metadata__\.format\s+pt/);
    writeFileSync(join(dir, "config.json"), "{ not json");
    const warned = await owl("show", dir);
    expect(warned.code).toBe(0);
    expect(warned.out).toMatch(/Warnings[\s\S]*config\.json: not valid JSON/);
  });
});
