/**
 * Tiny random-weight GGUF models for the engine tests (llama, llama-MoE, qwen2, qwen3), written
 * with owl's own GGUF writer and quantizers, plus a float64 naive forward pass of the same
 * graph: the third opinion when owl and llama.cpp disagree.
 *
 * The vocabulary is a minimal valid SentencePiece ("llama") one: <unk>, <s>, </s>, the 256 byte
 * tokens and a few normal pieces, so llama.cpp loads it. Weights are drawn from a seeded normal
 * distribution with scales that keep activations sane (rms ~1 after each norm) and give peaked
 * next-token distributions (logit std ~3), so greedy paths do not hinge on rounding.
 */

import {
  type GgufFile,
  type GgufMetadata,
  type GgufTensorInput,
  type GgufValue,
  type GgufWriteInput,
  garr,
  gf32,
  gstr,
  gu32,
} from "../../src/formats/gguf/index.ts";
import { TokenType } from "../../src/formats/gguf/keys.ts";
import { dequantize, quantize } from "../../src/quant/index.ts";
import { bytesOf } from "../../src/util/bytes.ts";
import { GgmlType, type GgmlTypeName, requireGgmlType } from "../../src/util/ggml-types.ts";

export interface TinySpec {
  arch: "llama" | "qwen2" | "qwen3";
  /** Storage type of every 2-D weight matrix (norms, biases, router stay F32). */
  type: GgmlTypeName;
  /** Per-tensor storage type overriding `type` for matrices (mixed-type models). */
  typeOf?: (name: string) => GgmlTypeName | undefined;
  seed: number;
  C?: number;
  nFf?: number;
  L?: number;
  nHead?: number;
  nHeadKv?: number;
  /** attention.key_length/value_length when not C / nHead. */
  headDim?: number;
  V?: number;
  nCtx?: number;
  /** No output.weight: the output projection is token_embd. */
  tied?: boolean;
  /** llama3-style rope_freqs.weight. */
  ropeFreqs?: boolean;
  /** rope.scaling.type linear with this factor. */
  ropeScale?: number;
  freqBase?: number;
  /** q/k/v biases (qwen2 always has them). */
  qkvBias?: boolean;
  nExpert?: number;
  nExpertUsed?: number;
  rmsEps?: number;
}

/** mulberry32 + Box-Muller: a seeded standard normal generator. */
export function normalRng(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
}

export function tinyVocab(V: number): [string, GgufValue][] {
  const tokens: string[] = ["<unk>", "<s>", "</s>"];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const letters = "abcdefghijklmnopqrstuvwxyz";
  for (let i = 0; tokens.length < V; i++) {
    const piece =
      i < 26 ? `\u2581${letters[i]}` : `\u2581${letters[i % 26]}${letters[Math.floor(i / 26) % 26]}${i}`;
    tokens.push(piece);
  }
  const types = new Int32Array(V);
  const scores = new Float32Array(V);
  for (let i = 0; i < V; i++) {
    types[i] =
      i === 0 ? TokenType.UNKNOWN : i < 3 ? TokenType.CONTROL : i < 259 ? TokenType.BYTE : TokenType.NORMAL;
    scores[i] = i < 259 ? 0 : -(i - 259);
  }
  return [
    ["tokenizer.ggml.model", gstr("llama")],
    ["tokenizer.ggml.pre", gstr("default")],
    ["tokenizer.ggml.tokens", garr.strings(tokens)],
    ["tokenizer.ggml.scores", garr.f32(scores)],
    ["tokenizer.ggml.token_type", garr.i32(types)],
    ["tokenizer.ggml.bos_token_id", gu32(1)],
    ["tokenizer.ggml.eos_token_id", gu32(2)],
    ["tokenizer.ggml.unknown_token_id", gu32(0)],
  ];
}

/** Resolved dimensions of a spec. */
export function dimsOf(s: TinySpec) {
  const C = s.C ?? 256;
  const nHead = s.nHead ?? 8;
  return {
    C,
    nFf: s.nFf ?? 512,
    L: s.L ?? 2,
    nHead,
    nHeadKv: s.nHeadKv ?? 4,
    headDim: s.headDim ?? C / nHead,
    V: s.V ?? 300,
    nCtx: s.nCtx ?? 256,
    nExpert: s.nExpert ?? 0,
    nExpertUsed: s.nExpertUsed ?? 0,
  };
}

/** The GGUF of a tiny random model (tensors produced lazily by the writer). */
export function tinyModel(s: TinySpec): GgufWriteInput {
  const d = dimsOf(s);
  const { C, nFf, L, nHead, nHeadKv, headDim, V, nExpert } = d;
  const a = s.arch;
  const rng = normalRng(s.seed);
  const md: GgufMetadata = new Map<string, GgufValue>([
    ["general.architecture", gstr(a)],
    ["general.name", gstr(`tiny-${a}-${s.type}`)],
    [`${a}.vocab_size`, gu32(V)],
    [`${a}.context_length`, gu32(d.nCtx)],
    [`${a}.embedding_length`, gu32(C)],
    [`${a}.feed_forward_length`, gu32(nFf)],
    [`${a}.block_count`, gu32(L)],
    [`${a}.attention.head_count`, gu32(nHead)],
    [`${a}.attention.head_count_kv`, gu32(nHeadKv)],
    [`${a}.rope.dimension_count`, gu32(headDim)],
    [`${a}.rope.freq_base`, gf32(s.freqBase ?? 10000)],
    [`${a}.attention.layer_norm_rms_epsilon`, gf32(s.rmsEps ?? 1e-5)],
  ]);
  if (s.headDim !== undefined) {
    md.set(`${a}.attention.key_length`, gu32(headDim));
    md.set(`${a}.attention.value_length`, gu32(headDim));
  }
  if (s.ropeScale !== undefined) {
    md.set(`${a}.rope.scaling.type`, gstr("linear"));
    md.set(`${a}.rope.scaling.factor`, gf32(s.ropeScale));
  }
  if (nExpert > 0) {
    md.set(`${a}.expert_count`, gu32(nExpert));
    md.set(`${a}.expert_used_count`, gu32(d.nExpertUsed));
  }
  for (const [k, v] of tinyVocab(V)) md.set(k, v);

  const f32 = requireGgmlType(GgmlType.F32);
  const wType = requireGgmlType(GgmlType[s.type]);
  const tensors: GgufTensorInput[] = [];
  // Values are drawn eagerly, in a fixed order, so a spec always gives the same model.
  const add = (name: string, dims: number[], values: Float32Array, matrix: boolean) => {
    const override = matrix ? s.typeOf?.(name) : undefined;
    const type = override ? requireGgmlType(GgmlType[override]) : matrix ? wType : f32;
    tensors.push({
      name,
      dims,
      type,
      data: () => (type.name === "F32" ? bytesOf(values) : quantize(type, values)),
    });
  };
  const normal = (n: number, std: number, mean = 0) => {
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = mean + std * rng();
    return v;
  };
  const qDim = nHead * headDim;
  const kvDim = nHeadKv * headDim;
  add("token_embd.weight", [C, V], normal(C * V, s.tied ? 0.2 : 0.5), true);
  add("output_norm.weight", [C], normal(C, 0.1, 1), false);
  if (!s.tied) add("output.weight", [C, V], normal(C * V, 0.2), true);
  if (s.ropeFreqs) {
    // llama3-like: high frequencies untouched, low ones slowed down up to 8x.
    const half = headDim / 2;
    const ff = new Float32Array(half);
    for (let i = 0; i < half; i++) ff[i] = i < half / 2 ? 1 : 1 + (7 * (i - half / 2)) / (half / 2);
    add("rope_freqs.weight", [half], ff, false);
  }
  for (let l = 0; l < L; l++) {
    const b = `blk.${l}`;
    add(`${b}.attn_norm.weight`, [C], normal(C, 0.1, 1), false);
    add(`${b}.attn_q.weight`, [C, qDim], normal(C * qDim, 0.08), true);
    add(`${b}.attn_k.weight`, [C, kvDim], normal(C * kvDim, 0.08), true);
    add(`${b}.attn_v.weight`, [C, kvDim], normal(C * kvDim, 0.06), true);
    if (s.qkvBias || a === "qwen2") {
      add(`${b}.attn_q.bias`, [qDim], normal(qDim, 0.1), false);
      add(`${b}.attn_k.bias`, [kvDim], normal(kvDim, 0.1), false);
      add(`${b}.attn_v.bias`, [kvDim], normal(kvDim, 0.1), false);
    }
    if (a === "qwen3") {
      add(`${b}.attn_q_norm.weight`, [headDim], normal(headDim, 0.1, 1), false);
      add(`${b}.attn_k_norm.weight`, [headDim], normal(headDim, 0.1, 1), false);
    }
    add(`${b}.attn_output.weight`, [qDim, C], normal(qDim * C, 0.06), true);
    add(`${b}.ffn_norm.weight`, [C], normal(C, 0.1, 1), false);
    if (nExpert > 0) {
      add(`${b}.ffn_gate_inp.weight`, [C, nExpert], normal(C * nExpert, 0.1), false);
      add(`${b}.ffn_gate_exps.weight`, [C, nFf, nExpert], normal(C * nFf * nExpert, 0.06), true);
      add(`${b}.ffn_up_exps.weight`, [C, nFf, nExpert], normal(C * nFf * nExpert, 0.06), true);
      add(`${b}.ffn_down_exps.weight`, [nFf, C, nExpert], normal(nFf * C * nExpert, 0.04), true);
    } else {
      add(`${b}.ffn_gate.weight`, [C, nFf], normal(C * nFf, 0.06), true);
      add(`${b}.ffn_up.weight`, [C, nFf], normal(C * nFf, 0.06), true);
      add(`${b}.ffn_down.weight`, [nFf, C], normal(nFf * C, 0.04), true);
    }
  }
  return { version: 3, metadata: md, tensors };
}

// ------------------------------------------------------------------ float64 naive forward

function tensorF64(file: GgufFile, name: string): Float64Array | undefined {
  const info = file.tensor(name);
  if (!info) return undefined;
  return Float64Array.from(dequantize(info.type, file.readTensor(info), info.nElements));
}

/**
 * Logits (V) at every position of `tokens`, computed in float64 from the dequantized weights of
 * a tiny model file (llama-family graph, activations not quantized): the exact function both
 * engines approximate.
 */
export function naiveLogits(file: GgufFile, s: TinySpec, tokens: readonly number[]): Float64Array[] {
  const d = dimsOf(s);
  const { C, nFf, L, nHead, nHeadKv, headDim, V, nExpert, nExpertUsed } = d;
  const eps = Math.fround(s.rmsEps ?? 1e-5);
  const neox = s.arch !== "llama";
  const freqBase = s.freqBase ?? 10000;
  const freqScale = s.ropeScale ? 1 / s.ropeScale : 1;
  const qDim = nHead * headDim;
  const kvDim = nHeadKv * headDim;
  const must = (n: string) => {
    const t = tensorF64(file, n);
    if (!t) throw new Error(`missing ${n}`);
    return t;
  };
  const emb = must("token_embd.weight");
  const out = tensorF64(file, "output.weight") ?? emb;
  const outNorm = must("output_norm.weight");
  const ropeFreqs = tensorF64(file, "rope_freqs.weight");
  const mv = (w: Float64Array, x: Float64Array, rows: number, cols: number, off = 0) => {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      const o = off + r * cols;
      for (let c = 0; c < cols; c++) acc += w[o + c]! * x[c]!;
      y[r] = acc;
    }
    return y;
  };
  const rms = (x: Float64Array, w: Float64Array, from = 0, n = x.length) => {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[from + i]! ** 2;
    const k = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) x[from + i] = x[from + i]! * k * w[i]!;
  };
  const rope = (x: Float64Array, heads: number, pos: number) => {
    const half = headDim / 2;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const ff = ropeFreqs ? ropeFreqs[i]! : 1;
        const theta = (freqScale * pos * freqBase ** ((-2 * i) / headDim)) / ff;
        const i0 = h * headDim + (neox ? i : 2 * i);
        const i1 = neox ? i0 + half : i0 + 1;
        const x0 = x[i0]!;
        const x1 = x[i1]!;
        x[i0] = x0 * Math.cos(theta) - x1 * Math.sin(theta);
        x[i1] = x0 * Math.sin(theta) + x1 * Math.cos(theta);
      }
    }
  };
  const layers = Array.from({ length: L }, (_, l) => {
    const b = `blk.${l}`;
    return {
      attnNorm: must(`${b}.attn_norm.weight`),
      wq: must(`${b}.attn_q.weight`),
      wk: must(`${b}.attn_k.weight`),
      wv: must(`${b}.attn_v.weight`),
      wo: must(`${b}.attn_output.weight`),
      bq: tensorF64(file, `${b}.attn_q.bias`),
      bk: tensorF64(file, `${b}.attn_k.bias`),
      bv: tensorF64(file, `${b}.attn_v.bias`),
      qNorm: tensorF64(file, `${b}.attn_q_norm.weight`),
      kNorm: tensorF64(file, `${b}.attn_k_norm.weight`),
      ffnNorm: must(`${b}.ffn_norm.weight`),
      gate: tensorF64(file, nExpert ? `${b}.ffn_gate_exps.weight` : `${b}.ffn_gate.weight`)!,
      up: tensorF64(file, nExpert ? `${b}.ffn_up_exps.weight` : `${b}.ffn_up.weight`)!,
      down: tensorF64(file, nExpert ? `${b}.ffn_down_exps.weight` : `${b}.ffn_down.weight`)!,
      router: tensorF64(file, `${b}.ffn_gate_inp.weight`),
    };
  });
  const kCache: Float64Array[][] = layers.map(() => []);
  const vCache: Float64Array[][] = layers.map(() => []);
  const addTo = (a: Float64Array, b: Float64Array) => {
    for (let i = 0; i < a.length; i++) a[i] = a[i]! + b[i]!;
  };
  const ffn = (lw: (typeof layers)[number], h: Float64Array, e = 0) => {
    const g = mv(lw.gate, h, nFf, C, e * nFf * C);
    const u = mv(lw.up, h, nFf, C, e * nFf * C);
    for (let i = 0; i < nFf; i++) g[i] = (g[i]! / (1 + Math.exp(-g[i]!))) * u[i]!;
    return mv(lw.down, g, C, nFf, e * C * nFf);
  };
  const result: Float64Array[] = [];
  for (let pos = 0; pos < tokens.length; pos++) {
    const x = emb.slice(tokens[pos]! * C, (tokens[pos]! + 1) * C);
    for (let l = 0; l < L; l++) {
      const lw = layers[l]!;
      const h = x.slice();
      rms(h, lw.attnNorm);
      const q = mv(lw.wq, h, qDim, C);
      const k = mv(lw.wk, h, kvDim, C);
      const v = mv(lw.wv, h, kvDim, C);
      if (lw.bq) addTo(q, lw.bq);
      if (lw.bk) addTo(k, lw.bk);
      if (lw.bv) addTo(v, lw.bv);
      if (lw.qNorm) for (let hh = 0; hh < nHead; hh++) rms(q, lw.qNorm, hh * headDim, headDim);
      if (lw.kNorm) for (let hh = 0; hh < nHeadKv; hh++) rms(k, lw.kNorm, hh * headDim, headDim);
      rope(q, nHead, pos);
      rope(k, nHeadKv, pos);
      kCache[l]!.push(k);
      vCache[l]!.push(v);
      const att = new Float64Array(qDim);
      for (let hh = 0; hh < nHead; hh++) {
        const kvh = Math.floor(hh / (nHead / nHeadKv));
        const sc = new Float64Array(pos + 1);
        let max = Number.NEGATIVE_INFINITY;
        for (let j = 0; j <= pos; j++) {
          let dot = 0;
          for (let t = 0; t < headDim; t++) dot += q[hh * headDim + t]! * kCache[l]![j]![kvh * headDim + t]!;
          sc[j] = dot / Math.sqrt(headDim);
          max = Math.max(max, sc[j]!);
        }
        let sum = 0;
        for (let j = 0; j <= pos; j++) {
          sc[j] = Math.exp(sc[j]! - max);
          sum += sc[j]!;
        }
        for (let j = 0; j <= pos; j++) {
          for (let t = 0; t < headDim; t++) {
            att[hh * headDim + t] =
              att[hh * headDim + t]! + (sc[j]! / sum) * vCache[l]![j]![kvh * headDim + t]!;
          }
        }
      }
      addTo(x, mv(lw.wo, att, C, qDim));
      const h2 = x.slice();
      rms(h2, lw.ffnNorm);
      if (nExpert > 0) {
        const logits = mv(lw.router!, h2, nExpert, C);
        const max = Math.max(...logits);
        const p = logits.map((z) => Math.exp(z - max));
        const total = p.reduce((s2, z) => s2 + z, 0);
        const probs = p.map((z) => z / total);
        const order = [...probs.keys()].sort((i, j) => probs[j]! - probs[i]! || i - j).slice(0, nExpertUsed);
        const wsum = order.reduce((s2, e) => s2 + probs[e]!, 0);
        for (const e of order) {
          const y = ffn(lw, h2, e);
          for (let i = 0; i < C; i++) x[i] = x[i]! + (probs[e]! / wsum) * y[i]!;
        }
      } else {
        addTo(x, ffn(lw, h2));
      }
    }
    const hf = x.slice();
    rms(hf, outNorm);
    result.push(mv(out, hf, V, C));
  }
  return result;
}
