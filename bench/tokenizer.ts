/**
 * Benchmark: encode throughput (MB/s of UTF-8 input) of owl's tokenizer against
 * @huggingface/tokenizers (the pure-JS Hugging Face tokenizer, as transformers.js uses it), both
 * reading the same tokenizer.json (built from the fixture GGUF as test/tokenizer-hf.test.ts does)
 * and encoding the same text in the same run: a few MB of mixed text (the seeded random corpus of
 * test/helpers/tokenizer-corpus.ts) and of English-like prose, as documents of about 2 KB, one
 * encode call each. Also reports how often the two give the same ids. Prints a markdown table.
 * Run through `npm run bench` (bench/run.ts), or alone: `npx tsx bench/tokenizer.ts`.
 */
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { vocabFromTokenizerJson } from "../src/tokenizer/hf-tokenizer.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { vocabFromGgufFile } from "../src/tokenizer/vocab.ts";
import { fixturePath } from "../test/helpers/fixtures.ts";
import { tokenizerCorpus } from "../test/helpers/tokenizer-corpus.ts";
import { hfFilesFromVocab } from "../test/helpers/tokenizer-json.ts";

const TARGET_BYTES = 3 << 20;
const DOC_BYTES = 2048;
const MIN_MS = 1500;
const VOCABS: [string, string][] = [
  ["llama-spm", "SPM (Llama 2, 32000)"],
  ["gpt-2", "byte-level BPE (GPT-2, 50257)"],
  ["deepseek-coder", "byte-level BPE (DeepSeek Coder, 32256)"],
];

/** Strings joined into documents of about `docBytes` each, about `bytes` in all. */
function toDocuments(
  strings: Iterable<string>,
  bytes: number,
  sep: string,
  docBytes = DOC_BYTES,
): { docs: string[]; bytes: number } {
  const enc = new TextEncoder();
  const docs: string[] = [];
  let total = 0;
  let doc = "";
  for (const s of strings) {
    doc += doc === "" ? s : sep + s;
    if (doc.length * 1.2 >= docBytes && enc.encode(doc).length >= docBytes) {
      docs.push(doc);
      total += enc.encode(doc).length;
      doc = "";
      if (total >= bytes) break;
    }
  }
  return { docs, bytes: total };
}

/** Mixed text: the random corpus (many scripts, emoji, whitespace runs, digits, code, odd code points). */
export function mixedDocuments(bytes = TARGET_BYTES): { docs: string[]; bytes: number } {
  return toDocuments(tokenizerCorpus(Math.ceil(bytes / 25), 7), bytes, "\n");
}

const PROSE_WORDS = (
  "the of and to a in was he it that with his for on she her as had at they but said be one little " +
  "there all so up not when what out very day time once upon big happy friends play saw went wanted " +
  "named Lily Tom mom dog cat tree ball park sun sky water house garden bird could would were from " +
  "about into over after then back again because every smiled looked asked found made new old good " +
  "small great red blue green long under through while each other many some them their this these " +
  "you we our your I me my don't it's can't won't I'm they're we've " +
  'Mr. Smith\'s 2024 3.14 1,000 e-mail well-known (and) [sic] "quoted" naïve café résumé'
).split(" ");

/** English-like prose: words drawn with Zipf-like weights, sentences and paragraphs. */
export function proseDocuments(
  bytes = TARGET_BYTES,
  docBytes = DOC_BYTES,
): { docs: string[]; bytes: number } {
  let seed = 11;
  const r = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const word = () => PROSE_WORDS[Math.floor(PROSE_WORDS.length * r() ** 2.2)]!;
  function* sentences(): Generator<string> {
    for (;;) {
      const n = 4 + Math.floor(r() * 14);
      const w: string[] = [];
      for (let i = 0; i < n; i++) w.push(word());
      const first = w[0]!;
      w[0] = first[0]!.toUpperCase() + first.slice(1);
      if (n > 8 && r() < 0.5) w[Math.floor(n / 2)] += ",";
      yield `${w.join(" ")}${r() < 0.8 ? "." : r() < 0.5 ? "!" : "?"}${r() < 0.15 ? "\n\n" : ""}`;
    }
  }
  return toDocuments(sentences(), bytes, " ", docBytes);
}

/** Seconds per pass over `docs` (warm-up on the first tenth, then whole passes until MIN_MS); the last pass's ids. */
function time(docs: string[], encode: (d: string) => number[]): { s: number; ids: number[][] } {
  for (const d of docs.slice(0, Math.ceil(docs.length / 10))) encode(d);
  let passes = 0;
  let ids: number[][] = [];
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < MIN_MS || passes < 1) {
    ids = docs.map(encode);
    passes++;
    t = performance.now();
  }
  return { s: (t - t0) / 1000 / passes, ids };
}

export function runTokenizerBench(): string {
  const texts: [string, { docs: string[]; bytes: number }][] = [
    ["mixed", mixedDocuments()],
    ["prose", proseDocuments()],
    ["prose, ~100 B calls", proseDocuments(TARGET_BYTES / 3, 100)],
  ];
  const lines: string[] = [];
  lines.push(
    `Texts: "mixed" is ${(texts[0]![1].bytes / 2 ** 20).toFixed(1)} MiB of the seeded random corpus of test/helpers/tokenizer-corpus.ts (many scripts, emoji, whitespace runs, digits, code, odd code points); "prose" is ${(texts[1]![1].bytes / 2 ** 20).toFixed(1)} MiB of English-like sentences (Zipf-weighted words), also as about 100-byte calls (${(texts[2]![1].bytes / 2 ** 20).toFixed(1)} MiB). Documents of about ${DOC_BYTES / 1024} KiB unless said, one encode call each, special-token text matched as HF does (owl: parseSpecial), no BOS/EOS. Peer: @huggingface/tokenizers on the same tokenizer.json, same process.`,
  );
  lines.push("");
  lines.push(
    "| vocabulary | text | owl MB/s | @huggingface/tokenizers MB/s | owl / HF | same ids (documents) | same ids (tokens) |",
  );
  lines.push("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const [name, label] of VOCABS) {
    const path = fixturePath(`tokenizer/ggml-vocab-${name}.gguf`);
    if (!path) {
      lines.push(`| ${label} | – | – | – | – | – | fixture missing |`);
      continue;
    }
    const files = hfFilesFromVocab(vocabFromGgufFile(path));
    const owl = new Tokenizer(
      vocabFromTokenizerJson(files.tokenizer, files.tokenizerConfig, { config: files.config }),
    );
    const hf = new HfTokenizer(files.tokenizer, files.tokenizerConfig);
    for (const [textName, { docs, bytes }] of texts) {
      process.stderr.write(`bench: tokenizer ${name} ${textName}...\n`);
      const o = time(docs, (d) => owl.encode(d, { addSpecial: false, parseSpecial: true }));
      const h = time(docs, (d) => hf.encode(d, { add_special_tokens: false }).ids);
      let sameDocs = 0;
      let sameTokens = 0;
      let tokens = 0;
      docs.forEach((_, k) => {
        const a = o.ids[k]!;
        const b = h.ids[k]!;
        // Tokens up to the first difference (after it the two streams may drift apart).
        let i = 0;
        while (i < a.length && i < b.length && a[i] === b[i]) i++;
        if (i === a.length && i === b.length) sameDocs++;
        sameTokens += i;
        tokens += a.length;
      });
      const owlMBs = bytes / o.s / 1e6;
      const hfMBs = bytes / h.s / 1e6;
      lines.push(
        `| ${label} | ${textName} | ${owlMBs.toFixed(2)} | ${hfMBs.toFixed(2)} | ${(owlMBs / hfMBs).toFixed(2)}x | ${((100 * sameDocs) / docs.length).toFixed(1)}% | ${((100 * sameTokens) / tokens).toFixed(1)}% |`,
      );
    }
  }
  lines.push("");
  lines.push(
    "\"same ids (tokens)\" counts each document's tokens up to its first difference. Every difference on these texts was traced to @huggingface/tokenizers 0.2.0, not owl (owl gives llama.cpp's ids on every code point, test/tokenizer-llamacpp.test.ts): its regexes use JavaScript's \\s, which includes U+FEFF and leaves out U+0085 (HF's Rust tokenizers and llama.cpp use Unicode White_Space); its Digits pre-tokenizer splits only ASCII digits; and it byte-encodes a lone surrogate as U+FFFD's bytes where owl, like llama.cpp given a JS string through node-llama-cpp, uses the U+FFFD token.",
  );
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${runTokenizerBench()}\n`);
}
