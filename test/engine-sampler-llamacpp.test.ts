/**
 * The owl sampler against llama.cpp itself, token for token:
 *
 * 1. llama.cpp's sampler chain (libllama of node-llama-cpp 3.21.1, driven through its C API by
 *    test/fixtures/sampler/llama-sampler-reference.cpp) on synthetic logits that this test
 *    regenerates bit for bit from std::mt19937: every stage, vocabularies from 100 to 152064,
 *    sorted and unsorted paths, ties, penalties with a prompt, logit bias, greedy. Exact equality.
 * 2. node-llama-cpp generating from the bundled stories260K GGUF (F32 KV cache, flash attention
 *    off) with a seed and temperature / top-k / top-p / min-p / penalties / XTC / token bias, and
 *    owl's engine + sampler + generate() reproducing the same tokens from its own logits.
 *    NOTE: owl's logits differ from llama.cpp's by ~1e-6, so a draw landing that close to a
 *    boundary could differ; none does on these runs.
 * 3. generate() on that model with the real tokenizer's streaming decoder: the streamed text is
 *    the decoded tokens, and a stop string spanning two tokens cuts the text right before it.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token, TokenBias } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate } from "../src/engine/generate.ts";
import { loadModel, type Model, type Session } from "../src/engine/model.ts";
import { Sampler, type SamplerParams } from "../src/engine/sampler.ts";
import { Mt19937 } from "../src/engine/sampler-rng.ts";
import { createTokenizer } from "../src/tokenizer/tokenizer.ts";
import { vocabFromGgufFile } from "../src/tokenizer/vocab.ts";
import { fixturePath, missing, REPO_ROOT } from "./helpers/fixtures.ts";

interface RefCase {
  name: string;
  V: number;
  steps: number;
  prompt: number;
  gen: { seed: number; sigma: number; boostEvery: number; boost: number; quant: number };
  params: Omit<SamplerParams, "logitBias"> & { logitBias: [number, number | null][] };
  tokens: number[];
}

const REF = "sampler/llama-sampler-reference.json";

/** The logits of llama-sampler-reference.cpp's fill(): exact double steps, then float32. */
function fill(g: Mt19937, gen: RefCase["gen"], out: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const a = g.next();
    const b = g.next();
    const c = g.next();
    const d = g.next();
    const x = (a + b + c + d) / 4294967296 - 2;
    let l = x * gen.sigma;
    if (gen.boostEvery !== 0 && g.next() % gen.boostEvery === 0) l = l + gen.boost;
    if (gen.quant > 0) l = Math.floor(l / gen.quant) * gen.quant;
    out[i] = l;
  }
}

describe.skipIf(!fixturePath(REF))(
  `llama.cpp's sampler chain on synthetic logits ${fixturePath(REF) ? "" : missing(REF)}`,
  () => {
    const cases = fixturePath(REF)
      ? (JSON.parse(readFileSync(fixturePath(REF)!, "utf8")) as { cases: RefCase[] }).cases
      : [];

    it.each(cases.map((c) => [`${c.name} (V ${c.V}, seed ${c.params.seed})`, c] as const))(
      "%s: the same tokens",
      (_, c) => {
        const g = new Mt19937(c.gen.seed);
        const sampler = new Sampler(
          {
            ...c.params,
            logitBias: c.params.logitBias.map(
              ([id, b]) => [id, b ?? Number.NEGATIVE_INFINITY] as [number, number],
            ),
          },
          { nVocab: c.V },
        );
        for (let i = 0; i < c.prompt; i++) sampler.accept(g.next() % c.V);
        const logits = new Float32Array(c.V);
        const got: number[] = [];
        for (let s = 0; s < c.steps; s++) {
          fill(g, c.gen, logits);
          const t = sampler.sample(logits);
          sampler.accept(t);
          got.push(t);
        }
        expect(got).toEqual(c.tokens);
      },
    );
  },
);

const GGUF = join(REPO_ROOT, "models", "stories260k.gguf");
const EOS = 2;

interface DiffSet {
  name: string;
  /** Options of node-llama-cpp's evaluate (repeat penalty and token bias added per run). */
  node: {
    temperature: number;
    topK: number;
    topP: number;
    minP: number;
    xtc?: { probability: number; threshold: number };
  };
  repeat?: { penalty: number; frequencyPenalty: number; presencePenalty: number; lastN: number };
  bias?: [number, number][];
  seeds: number[];
}

// topK 512 (= V) in node-llama-cpp sorts every candidate, as owl's topK 512 does; owl's topK 0
// would leave them in id order (llama.cpp's own top_k <= 0), which node-llama-cpp never does.
const SETS: DiffSet[] = [
  {
    name: "temp 0.8, top-k 40, top-p 0.9, min-p 0.05",
    node: { temperature: 0.8, topK: 40, topP: 0.9, minP: 0.05 },
    seeds: [1, 42, 1234],
  },
  { name: "temp 1, everything kept", node: { temperature: 1, topK: 512, topP: 1, minP: 0 }, seeds: [7, 8] },
  {
    name: "temp 1.5, top-p 0.95",
    node: { temperature: 1.5, topK: 512, topP: 0.95, minP: 0 },
    seeds: [9, 10],
  },
  { name: "temp 0.7, min-p 0.1", node: { temperature: 0.7, topK: 512, topP: 1, minP: 0.1 }, seeds: [11, 12] },
  {
    name: "temp 1.2, top-k 100, repeat 1.3 / frequency 0.2 / presence 0.3 over 16",
    node: { temperature: 1.2, topK: 100, topP: 1, minP: 0 },
    repeat: { penalty: 1.3, frequencyPenalty: 0.2, presencePenalty: 0.3, lastN: 16 },
    seeds: [13, 14],
  },
  {
    name: "defaults + XTC 0.5 / 0.1",
    node: { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, xtc: { probability: 0.5, threshold: 0.1 } },
    seeds: [15, 16],
  },
  {
    name: "defaults + token bias",
    node: { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 },
    bias: [
      [261, 2.5],
      [378, Number.NEGATIVE_INFINITY],
      [400, -1.5],
    ],
    seeds: [17, 18],
  },
  {
    name: "greedy with repeat penalty 1.5 over 32",
    node: { temperature: 0, topK: 40, topP: 0.95, minP: 0.05 },
    repeat: { penalty: 1.5, frequencyPenalty: 0, presencePenalty: 0, lastN: 32 },
    seeds: [0],
  },
];
const N = 64;
const haveModel = existsSync(GGUF);

describe.skipIf(!haveModel)(
  `node-llama-cpp and owl generate the same tokens from stories260K ${haveModel ? "" : `(skipped: ${GGUF} not found)`}`,
  () => {
    let llama: Llama;
    let lm: LlamaModel;
    let owl: Model;
    let session: Session;
    let prompt: number[];

    beforeAll(async () => {
      llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
      lm = await llama.loadModel({ modelPath: GGUF });
      owl = await loadModel(GGUF, { session: { nCtx: 512 } });
      session = owl.createSession({ nCtx: 512 });
      prompt = [1, ...lm.tokenize("Once upon a time")];
    });

    afterAll(async () => {
      await owl?.dispose();
      await lm?.dispose();
      await llama?.dispose();
    });

    const runs = SETS.flatMap((s) => s.seeds.map((seed) => [`${s.name}, seed ${seed}`, s, seed] as const));

    it.each(runs)("%s", async (_, set, seed) => {
      // llama.cpp: evaluate() with the sampling options; the penalty window is the last lastN tokens
      // of prompt + generated, as llama-server keeps it.
      const ctx = await lm.createContext({
        contextSize: 512,
        flashAttention: false,
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32",
        threads: 1,
      });
      const all = [...prompt];
      const ref: number[] = [];
      try {
        const seq = ctx.getSequence();
        const rp = set.repeat;
        const tokenBias = set.bias ? new TokenBias(lm.tokenizer) : undefined;
        for (const [id, b] of set.bias ?? []) tokenBias!.set(id as Token, { logit: b });
        const options = {
          ...set.node,
          seed,
          ...(rp && {
            repeatPenalty: {
              penalty: rp.penalty,
              frequencyPenalty: rp.frequencyPenalty,
              presencePenalty: rp.presencePenalty,
              maxPunishTokens: rp.lastN,
              punishTokens: () => all.slice(-rp.lastN) as Token[],
            },
          }),
          ...(tokenBias && { tokenBias }),
        };
        for await (const t of seq.evaluate(prompt as Token[], options)) {
          ref.push(t);
          all.push(t);
          if (ref.length >= N) break;
        }
      } finally {
        await ctx.dispose();
      }

      // owl: the same parameters, by their Ollama names.
      const sampler = new Sampler({
        temperature: set.node.temperature,
        top_k: set.node.topK,
        top_p: set.node.topP,
        min_p: set.node.minP,
        seed,
        ...(set.node.xtc && {
          xtc_probability: set.node.xtc.probability,
          xtc_threshold: set.node.xtc.threshold,
        }),
        ...(set.repeat && {
          repeat_penalty: set.repeat.penalty,
          frequency_penalty: set.repeat.frequencyPenalty,
          presence_penalty: set.repeat.presencePenalty,
          repeat_last_n: set.repeat.lastN,
        }),
        ...(set.bias && { logit_bias: set.bias }),
        num_predict: N,
      });
      const got: number[] = [];
      for await (const step of generate({
        prompt,
        sampler,
        evaluate: (tokens) => session.evaluate(tokens).logits,
        stopTokens: [EOS],
      })) {
        if (step.token !== null) got.push(step.token);
      }
      expect(ref.length).toBeGreaterThan(16);
      expect(got).toEqual(ref);
    });

    it("generate() streams the tokenizer's text and cuts at a stop string spanning tokens", async () => {
      const tokenizer = createTokenizer(vocabFromGgufFile(GGUF));
      const run = async (stop: string[]) => {
        const pieces: string[] = [];
        const it = generate({
          prompt,
          sampler: new Sampler({ seed: 5, num_predict: 48, stop }),
          decoder: tokenizer.streamingDecoder(),
          evaluate: (tokens) => session.evaluate(tokens).logits,
          stopTokens: (id) => tokenizer.isEog(id),
        });
        for (;;) {
          const r = await it.next();
          if (r.done) return { pieces, result: r.value };
          pieces.push(r.value.text);
        }
      };
      const full = await run([]);
      expect(full.result.stopReason).toBe("length");
      expect(full.pieces.join("")).toBe(full.result.text);
      const dec = tokenizer.streamingDecoder();
      expect(full.result.tokens.map((t) => dec.push(t)).join("")).toBe(full.result.text);
      // A stop string from the end of one token's text into the next one's.
      const text = full.result.text;
      let end = 0;
      let stop = "";
      for (const [k, t] of full.result.tokens.entries()) {
        const piece = tokenizer.streamingDecoder().push(t);
        if (k >= 8 && piece.length >= 3 && end >= 2) {
          stop = text.slice(end - 2, end + 2);
          break;
        }
        end += piece.length;
      }
      expect(stop).toHaveLength(4);
      const cut = await run([stop]);
      expect(cut.result).toMatchObject({ stopReason: "stop", stop, text: text.slice(0, text.indexOf(stop)) });
      expect(cut.pieces.join("")).toBe(cut.result.text);
      expect(full.result.tokens.slice(0, cut.result.tokens.length)).toEqual(cut.result.tokens);
    });
  },
);
