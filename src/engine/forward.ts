/**
 * The forward pass of the llama-family decoder (llama, Mistral, Mixtral-style MoE, qwen2, qwen3),
 * written once against KernelBackend and following llama.cpp's graphs (src/models/llama.cpp,
 * qwen2.cpp, qwen3.cpp, and llm_graph_context::build_moe_ffn in src/llama-graph.cpp):
 *
 *   x = token_embd[tokens]
 *   per layer: h = rms_norm(x) * attn_norm
 *              q, k, v = h·wqᵀ (+bq), h·wkᵀ (+bk), h·wvᵀ (+bv)
 *              qwen3: q, k = per-head rms_norm(q) * q_norm, rms_norm(k) * k_norm
 *              q, k = rope(q), rope(k); k, v -> KV cache
 *              x = x + attention(q, K, V)·woᵀ
 *              h = rms_norm(x) * ffn_norm
 *              x = x + down(silu(h·gateᵀ) * h·upᵀ)    (MoE: weighted sum over the top-k experts)
 *   logits = (rms_norm(x) * output_norm)·outputᵀ, only for the rows asked for
 *
 * Hook points (optional callback, nothing done when absent): blk.N.attn_norm, attn_out, ffn_inp,
 * ffn_out, resid, each (T,C) float32, given as a live view of backend memory: a hook may modify
 * it in place (steering) and the forward continues from the modified values.
 * Batched step (step.rows, Model.evaluateBatch): the rows of one forward may belong to different
 * sequences, row t at its own position rows[t].pos of its own KV cache rows[t].kv. Every matrix
 * product then runs once over all rows (the weights are read once per step, not once per
 * sequence); RoPE takes each row's position, K and V go to each row's cache at its position, and
 * each run of consecutive rows of one cache attends to that cache alone (the same attention kernel
 * as a one-sequence step). Hooks are not called in a batched step. A batched step of 2 or 3 rows
 * multiplies weights of types outside BATCH_SMALL_T_TYPES a row at a time (BATCH_ROWWISE_BELOW:
 * faster on today's kernels).
 * Not here: loading and binding weights (weights.ts), sessions, prefix reuse (model.ts).
 */
import { rowBytes } from "../quant/index.ts";
import { GgmlType, requireGgmlType } from "../util/ggml-types.ts";
import type { Buf, KernelBackend, RopeParams } from "./backend.ts";
import type { Hyperparams } from "./hyperparams.ts";
import type { KvCache } from "./kv-cache.ts";
import type { DecoderWeights, Weight } from "./weights.ts";

const fround = Math.fround;

/** Named activations a hook can see, in the order the forward reaches them in each layer. */
export type HookPoint = "attn_norm" | "attn_out" | "ffn_inp" | "ffn_out" | "resid";
/** "blk.3.attn_out" and so on. */
export type ActivationName = `blk.${number}.${HookPoint}`;
/**
 * Called with a live view `data` (T,C) of the activation at hook point `name` for the T tokens at
 * positions info.pos0..info.pos0+T-1. Valid only during the call; writes to it steer the forward.
 */
export type ActivationHook = (
  name: ActivationName,
  layer: number,
  data: Float32Array,
  info: { pos0: number; T: number },
) => void;

/** Activation buffers of one session, sized for nBatch tokens per step. */
export interface Scratch {
  nBatch: number;
  /** Residual stream x and work buffers xb, xb2 (nBatch,C). */
  x: Buf;
  xb: Buf;
  xb2: Buf;
  /** q and attention output (nBatch, nHead*headDim); k, v (nBatch, nHeadKv*headDim). */
  q: Buf;
  k: Buf;
  v: Buf;
  att: Buf;
  /** FFN hidden (nBatch, nFf) twice. */
  hb: Buf;
  hb2: Buf;
  /** MoE: router probabilities (nBatch, nExpert) and one expert's output (C). */
  router?: Buf;
  expertOut?: Buf;
  /** Logits (logitRows, V). */
  logits: Buf;
  logitRows: number;
  bytes: number;
}

export function allocScratch(
  backend: KernelBackend,
  hp: Hyperparams,
  nBatch: number,
  logitRows: number,
): Scratch {
  const { C, nHead, nHeadKv, headDim, nFf, nExpert, V } = hp;
  let bytes = 0;
  const f = (n: number): Buf => {
    bytes += n * 4;
    return backend.alloc(n * 4);
  };
  const s: Scratch = {
    nBatch,
    x: f(nBatch * C),
    xb: f(nBatch * C),
    xb2: f(nBatch * C),
    q: f(nBatch * nHead * headDim),
    k: f(nBatch * nHeadKv * headDim),
    v: f(nBatch * nHeadKv * headDim),
    att: f(nBatch * nHead * headDim),
    hb: f(nBatch * nFf),
    hb2: f(nBatch * nFf),
    logits: f(logitRows * V),
    logitRows,
    bytes: 0,
  };
  if (nExpert > 0) {
    s.router = f(nBatch * nExpert);
    s.expertOut = f(C);
  }
  s.bytes = bytes;
  return s;
}

/** One step of the forward: T tokens at positions pos0..pos0+T-1. */
export interface ForwardStep {
  backend: KernelBackend;
  scratch: Scratch;
  kv: KvCache;
  tokens: readonly number[];
  pos0: number;
  /** Rows outFrom..T-1 get logits, written to scratch.logits rows 0..T-1-outFrom. */
  outFrom: number;
  hook?: ActivationHook | undefined;
  /**
   * A batched step over several sequences: token t belongs to rows[t] (its cache and position);
   * `kv` and `pos0` are then not used. Rows of one cache must be consecutive with consecutive
   * positions (a run), and a run's earlier positions already in its cache.
   */
  rows?: readonly BatchRow[] | undefined;
  /** With rows: the rows that get logits (instead of outFrom..T-1), in scratch.logits rows 0... */
  outRows?: readonly number[] | undefined;
}

/** One row of a batched step: the KV cache of its sequence and its position there. */
export interface BatchRow {
  kv: KvCache;
  pos: number;
}

/** Consecutive rows t0..t0+T-1 of one cache at positions pos0..pos0+T-1. */
interface Run {
  kv: KvCache;
  t0: number;
  T: number;
  pos0: number;
}

/** The runs of a batched step's rows (a new run where the cache changes or a position skips). */
function runsOf(rows: readonly BatchRow[]): Run[] {
  const runs: Run[] = [];
  let cur: Run | undefined;
  for (const [t, r] of rows.entries()) {
    if (cur && cur.kv === r.kv && cur.pos0 + cur.T === r.pos) cur.T++;
    else {
      cur = { kv: r.kv, t0: t, T: 1, pos0: r.pos };
      runs.push(cur);
    }
  }
  return runs;
}

/** `n` floats of `buf` starting `offsetFloats` floats in. */
export function sub(buf: Buf, offsetFloats: number, n: number): Buf {
  return { offset: buf.offset + offsetFloats * 4, bytes: n * 4 };
}

/**
 * Rows below which a batched step multiplies each row on its own, for weights of types other than
 * BATCH_SMALL_T_TYPES.
 * NOTE: measured on the WebAssembly kernels (bench/serve.ts --owl; /tmp A/B of matmul T=1..8): a
 * 2-row product through the register tiles of 4 tokens (they run half empty) costs 2-4x a one-row
 * one, 3 rows about 3x, so one-row products were as cheap or cheaper; from 4 rows the tiles pay.
 * F32's 2-row product beats two one-row ones, and so do those of the types with small-T kernels
 * (kernels/wasm/assembly/matmul-small.ts; 110M-sized weights, 1 thread, 2 / 3 / 4 rows vs one:
 * Q8_0 1.2x / 1.8x / 2.1x, Q4_K 1.1x / 1.3x / 1.7x, Q5_K 1.5x / 1.9x / 2.1x, Q6_K 0.9x / 1.1x /
 * 1.2x, Q5_0 1.4-1.5x / 1.7-1.9x / 1.8-2.2x, Q4_1 1.3-1.5x / 1.7-2.1x / 2.0-2.3x, Q5_1 1.2x /
 * 1.5-1.6x / 1.7x, F16 1.5-1.9x / 1.8-2.2x / 2.4-2.8x; F16 weights holding inf or NaN take the
 * tiles, 2.6x at 2 rows). The last, Q2_K and Q3_K (C=768, OC=768 / 2048 / 32000, main's kernels
 * and these alternated in one process): one row now takes their small-T kernels too, 0.42-0.53x
 * the time of the one-token dots before (load 2.3-2.8), and against it 2 / 3 / 4 rows cost Q2_K
 * 1.27-1.33x / 1.67-1.87x / 1.91-2.06x, Q3_K 1.23-1.47x / 1.53-1.72x / 1.96-2.3x (the tiles against
 * the old one-row dots: Q2_K 1.65-2.7x / 1.8-3.5x / 1.7-2.65x, Q3_K 1.45-2.15x / 1.1-2.15x /
 * 1.45-2.0x; load 2.3-5.4). So every type with a WebAssembly kernel is in BATCH_SMALL_T_TYPES and
 * nothing goes row by row there today; drop this when no backend needs it.
 */
const BATCH_ROWWISE_BELOW = 4;

/** Weight types whose 2- and 3-row products beat as many one-row ones (see BATCH_ROWWISE_BELOW). */
const BATCH_SMALL_T_TYPES: ReadonlySet<string> = new Set([
  "F32",
  "F16",
  "BF16",
  "Q8_0",
  "Q4_0",
  "Q5_0",
  "Q4_1",
  "Q5_1",
  "Q2_K",
  "Q3_K",
  "Q4_K",
  "Q5_K",
  "Q6_K",
]);

/**
 * y (T,OC) = x (T,C) · wᵀ with w (OC,C) a loaded weight; `rowwise`: a batched step, where 2..3
 * rows of a weight of another type than BATCH_SMALL_T_TYPES go one at a time (BATCH_ROWWISE_BELOW).
 */
function matmul(
  be: KernelBackend,
  w: Weight,
  x: Buf,
  y: Buf,
  T: number,
  C: number,
  OC: number,
  rowwise = false,
): void {
  if (rowwise && T > 1 && T < BATCH_ROWWISE_BELOW && !BATCH_SMALL_T_TYPES.has(w.type)) {
    for (let t = 0; t < T; t++) be.matmul(w.type, w.buf, sub(x, t * C, C), sub(y, t * OC, OC), 1, C, OC);
    return;
  }
  be.matmul(w.type, w.buf, x, y, T, C, OC);
}

/** Expert e of a 3-D expert tensor (nExpert, OC, C): its (OC,C) matrix as a Buf. */
function expert(w: Weight, e: number): Buf {
  const C = w.dims[0]!;
  const OC = w.dims[1]!;
  const bytes = rowBytes(requireGgmlType(GgmlType[w.type]), C) * OC;
  return { offset: w.buf.offset + e * bytes, bytes };
}

/**
 * Mixture-of-experts FFN on h (T,C) -> out (T,C), as build_moe_ffn for llama/Mixtral: router
 * logits (T, nExpert) = h·routerᵀ, softmax over all experts, the top-k experts by probability,
 * their probabilities renormalized to sum 1 (sum clamped below at 6.1035e-5), each expert's
 * down(silu(gate) * up) scaled by its weight, and the k results added in rank order.
 */
function moeFfn(
  be: KernelBackend,
  moe: NonNullable<DecoderWeights["layers"][number]["moe"]>,
  hp: Hyperparams,
  s: Scratch,
  h: Buf,
  out: Buf,
  T: number,
): void {
  const { C, nFf, nExpert, nExpertUsed: K } = hp;
  const router = s.router!;
  const eo = s.expertOut!;
  matmul(be, moe.router, h, router, T, C, nExpert);
  be.softmax(router, T, nExpert);
  const order = new Int32Array(nExpert);
  const weights = new Float32Array(K);
  for (let t = 0; t < T; t++) {
    const probs = be.f32(sub(router, t * nExpert, nExpert));
    for (let e = 0; e < nExpert; e++) order[e] = e;
    // Descending probability; equal ones keep index order.
    order.sort((a, b) => probs[b]! - probs[a]! || a - b);
    let sum = 0; // ggml_sum_rows: float64 sum, stored as float32
    for (let i = 0; i < K; i++) sum += probs[order[i]!]!;
    const norm = Math.max(fround(sum), 6.103515625e-5);
    for (let i = 0; i < K; i++) weights[i] = probs[order[i]!]! / norm;

    const hRow = sub(h, t * C, C);
    const outRow = sub(out, t * C, C);
    for (let i = 0; i < K; i++) {
      const e = order[i]!;
      be.matmul(moe.gate.type, expert(moe.gate, e), hRow, s.hb, 1, C, nFf);
      be.matmul(moe.up.type, expert(moe.up, e), hRow, s.hb2, 1, C, nFf);
      be.swiglu(s.hb, s.hb2, nFf);
      be.matmul(moe.down.type, expert(moe.down, e), s.hb, eo, 1, nFf, C);
      const y = be.f32(eo);
      const o = be.f32(outRow);
      const w = weights[i]!;
      if (i === 0) for (let c = 0; c < C; c++) o[c] = y[c]! * w;
      else for (let c = 0; c < C; c++) o[c] = o[c]! + fround(y[c]! * w);
    }
  }
}

/** The llama-family forward for one step; see the module comment. */
export function forwardDecoder(w: DecoderWeights, hp: Hyperparams, step: ForwardStep): void {
  const { backend: be, scratch: s, kv, tokens, pos0, hook } = step;
  const T = tokens.length;
  const { C, V, nHead, nHeadKv, headDim, nFf, rmsEps: eps } = hp;
  const qDim = nHead * headDim;
  const kvDim = nHeadKv * headDim;
  const positions = new Int32Array(T);
  for (let t = 0; t < T; t++) positions[t] = step.rows ? step.rows[t]!.pos : pos0 + t;
  const runs = step.rows ? runsOf(step.rows) : [{ kv, t0: 0, T, pos0 }];
  const rowwise = step.rows !== undefined;
  const rope: RopeParams = w.ropeFreqs ? { ...hp.rope, freqFactors: w.ropeFreqs.buf } : { ...hp.rope };
  const x = sub(s.x, 0, T * C);
  const xb = sub(s.xb, 0, T * C);
  const xb2 = sub(s.xb2, 0, T * C);
  const see = (layer: number, point: HookPoint, buf: Buf) => {
    if (hook && !step.rows) hook(`blk.${layer}.${point}`, layer, be.f32(buf), { pos0, T });
  };

  for (let t = 0; t < T; t++) be.getRow(w.tokEmbd.type, w.tokEmbd.buf, tokens[t]!, C, s.x, t * C);

  for (let l = 0; l < hp.L; l++) {
    const lw = w.layers[l]!;
    // attention
    be.rmsNorm(x, lw.attnNorm.buf, xb, T, C, eps);
    see(l, "attn_norm", xb);
    matmul(be, lw.wq, xb, s.q, T, C, qDim, rowwise);
    matmul(be, lw.wk, xb, s.k, T, C, kvDim, rowwise);
    matmul(be, lw.wv, xb, s.v, T, C, kvDim, rowwise);
    if (lw.bq) be.addBias(s.q, lw.bq.buf, T, qDim);
    if (lw.bk) be.addBias(s.k, lw.bk.buf, T, kvDim);
    if (lw.bv) be.addBias(s.v, lw.bv.buf, T, kvDim);
    if (lw.qNorm) be.rmsNorm(s.q, lw.qNorm.buf, s.q, T * nHead, headDim, eps);
    if (lw.kNorm) be.rmsNorm(s.k, lw.kNorm.buf, s.k, T * nHeadKv, headDim, eps);
    be.rope(s.q, T, nHead, headDim, positions, rope);
    be.rope(s.k, T, nHeadKv, headDim, positions, rope);
    for (const r of runs) {
      be.copy(s.k, r.kv.k[l]!, r.T * kvDim, r.t0 * kvDim, r.pos0 * kvDim);
      be.copy(s.v, r.kv.v[l]!, r.T * kvDim, r.t0 * kvDim, r.pos0 * kvDim);
    }
    for (const r of runs) {
      const q = sub(s.q, r.t0 * qDim, r.T * qDim);
      const att = sub(s.att, r.t0 * qDim, r.T * qDim);
      be.attention(q, r.kv.k[l]!, r.kv.v[l]!, att, r.T, r.pos0, nHead, nHeadKv, headDim);
    }
    matmul(be, lw.wo, s.att, xb, T, qDim, C, rowwise);
    see(l, "attn_out", xb);
    be.add(x, xb, T * C);
    see(l, "ffn_inp", x);

    // feed-forward
    be.rmsNorm(x, lw.ffnNorm.buf, xb, T, C, eps);
    if (lw.moe) {
      moeFfn(be, lw.moe, hp, s, xb, xb2, T);
    } else {
      const ffn = lw.ffn!;
      matmul(be, ffn.gate, xb, s.hb, T, C, nFf, rowwise);
      matmul(be, ffn.up, xb, s.hb2, T, C, nFf, rowwise);
      be.swiglu(s.hb, s.hb2, T * nFf);
      matmul(be, ffn.down, s.hb, xb2, T, nFf, C, rowwise);
    }
    see(l, "ffn_out", xb2);
    be.add(x, xb2, T * C);
    see(l, "resid", x);
  }

  // Output only for the rows asked for (llama.cpp's inp_out_ids).
  if (step.outRows) {
    const nOut = step.outRows.length;
    if (nOut === 0) return;
    // Gather the rows into xb2, then as below.
    for (const [i, t] of step.outRows.entries()) be.copy(s.x, s.xb2, C, t * C, i * C);
    const ho = sub(s.xb, 0, nOut * C);
    be.rmsNorm(sub(s.xb2, 0, nOut * C), w.outputNorm.buf, ho, nOut, C, eps);
    matmul(be, w.output, ho, s.logits, nOut, C, V, rowwise);
    return;
  }
  const nOut = T - step.outFrom;
  if (nOut <= 0) return;
  const xo = sub(s.x, step.outFrom * C, nOut * C);
  const ho = sub(s.xb, 0, nOut * C);
  be.rmsNorm(xo, w.outputNorm.buf, ho, nOut, C, eps);
  matmul(be, w.output, ho, s.logits, nOut, C, V, rowwise);
}
