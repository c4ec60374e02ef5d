/**
 * `owl convert <model> --tokenizer <tok> -o <out.gguf>`: import a llama2.c checkpoint as GGUF.
 */
import type { Command } from "commander";
import { writeGguf } from "../../formats/gguf/index.ts";
import { readLlama2c } from "../../formats/llama2c/checkpoint.ts";
import { readLlama2cTokenizer } from "../../formats/llama2c/tokenizer.ts";
import { llama2cToGguf } from "../../tools/convert.ts";
import { FileSource } from "../../util/bytes.ts";
import { OwlError } from "../../util/errors.ts";
import { ggmlTypeByName } from "../../util/ggml-types.ts";
import type { CliIO } from "../io.ts";
import { byteProgress } from "../progress.ts";

interface ConvertOptions {
  tokenizer?: string;
  output?: string;
  type: string;
  name?: string;
  license?: string;
}

export function registerConvert(program: Command, io: CliIO): void {
  program
    .command("convert")
    .description("convert a llama2.c checkpoint (+ its tokenizer) into a llama-architecture GGUF")
    .argument("<model>", "llama2.c checkpoint (.bin, versions 0, 1 or 2)")
    .option("-t, --tokenizer <file>", "llama2.c tokenizer (.bin) matching the model's vocabulary")
    .option("-o, --output <file>", "GGUF file to write")
    .option(
      "--type <type>",
      "storage type of the weight matrices: f32, f16, bf16, q8_0, q4_0, q4_k, ...",
      "f32",
    )
    .option("--name <name>", "general.name to record (default: the model file's base name)")
    .option("--license <id>", "general.license to record, e.g. mit")
    .action(async (modelPath: string, opts: ConvertOptions) => {
      if (!opts.tokenizer) {
        throw new OwlError(
          "ERR_INVALID_ARGUMENT",
          "convert needs the model's tokenizer: pass --tokenizer <tok.bin>",
          {
            hint: "llama2.c models come with a tokenizer.bin (or tok512.bin for stories260K)",
          },
        );
      }
      if (!opts.output)
        throw new OwlError("ERR_INVALID_ARGUMENT", "convert needs an output path: pass -o <out.gguf>");
      const type = ggmlTypeByName(opts.type);
      if (!type) throw new OwlError("ERR_INVALID_ARGUMENT", `unknown --type ${opts.type}`);
      const src = new FileSource(modelPath);
      const tokSrc = new FileSource(opts.tokenizer);
      try {
        const model = readLlama2c(src);
        const vocab = readLlama2cTokenizer(tokSrc, model.config.vocabSize);
        const base = modelPath.replace(/^.*[\\/]/, "").replace(/\.bin$/, "");
        const input = llama2cToGguf(model, vocab, {
          name: opts.name ?? base,
          ...(opts.license ? { license: opts.license } : {}),
          type,
        });
        const bar = byteProgress("convert");
        try {
          await writeGguf(opts.output, input, { onProgress: (d, t) => bar.update(d, t) });
        } finally {
          bar.stop();
        }
        const c = model.config;
        io.out(
          `wrote ${opts.output}: llama, ${c.nLayers} layers, dim ${c.dim}, ${c.nHeads} heads (${c.nKvHeads} kv), vocab ${c.vocabSize}, context ${c.seqLen}, weights ${type.name}\n`,
        );
      } finally {
        src.close();
        tokSrc.close();
      }
    });
}
