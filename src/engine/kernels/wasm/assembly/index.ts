// Entry point of the kernels module (dist/kernels.wasm, built by ../build.mjs): the exports the
// JS side (../backend.ts, ../worker.mjs) calls. Memory is imported (env.memory, shared); the
// module allocates nothing: every pointer is a byte offset chosen by the JS allocator, which
// starts above heapBase(). Work split across threads goes through `work`, which reads one op and
// its arguments from a control block in memory (layout: ../pool.ts).
import { TABLES_END } from "./common";
import { isKQuant, matmulRows } from "./matmul";
import { c4, isLegacyTileType, legacyGroupBytes, packQ8Group, packTokensF32 } from "./matmul-tiles";
import { T_BF16, T_F16, T_F16S, T_F32, T_Q4_0, T_Q4_1, T_Q5_0, T_Q5_1 } from "./types";
import { attention, attentionBlock, partBytes } from "./ops";
import {
  expandQ8_0,
  expandQ8_1,
  expandQ8K,
  quantizeQ8_0,
  quantizeQ8_1,
  quantizeQ8K,
  roundBf16Row,
  roundF16Row,
  roundF16RowScaled,
} from "./quantize";

export { matmulRows, rowBytes } from "./matmul";
export { f16AllFinite } from "./matmul-float";
export { add, addBias, attention, attentionBlock, attentionMerge, partBytes, rmsNorm, rope, softmax, swiglu } from "./ops";
export { quantizeQ8_0, quantizeQ8_1, quantizeQ8K, toBf16Row, toF16Row } from "./quantize";

/** Op codes of the control block. */
export const OP_MATMUL: i32 = 1;
export const OP_ATTENTION: i32 = 2;
export const OP_ATTENTION_BLOCKS: i32 = 3;

export { initTables } from "./common";

/** First byte past the module's static data and tables: the JS allocator starts above it. */
export function heapBase(): usize {
  return TABLES_END;
}

/**
 * Prepares the activation x (T,C) for matmulRows with weights of `type`. One token: F16/BF16 round
 * it into xa (C) f32, F32 needs nothing (xa = x). T > 1 with a float type: packed in groups of 4
 * tokens into xa (matmul-tiles.ts), rounded for F16/BF16. T > 1 with a legacy type: each group of
 * 4 rows quantized through tmp (4 rows of ggml blocks) and packed into xa (matmul-tiles.ts).
 * Otherwise each row is quantized through tmp (one row of ggml blocks) and expanded into xa (T,C)
 * i16 EO, ad and ax (see matmulRows). x86 != 0: Q8_0 / Q8_1 as ggml-cpu's x86 build quantizes
 * them (quantize.ts).
 */
export function prepareAct(
  type: i32,
  x: usize,
  T: i32,
  C: i32,
  xa: usize,
  ad: usize,
  ax: usize,
  tmp: usize,
  x86: i32,
): void {
  if (T > 1 && (type == T_F32 || type == T_F16 || type == T_F16S || type == T_BF16)) {
    // Packed in groups of 4 tokens (matmul-tiles.ts), then rounded in place (zeros stay zeros).
    packTokensF32(x, T, C, xa);
    const n = (((T + 3) >> 2) << 2) * c4(C);
    if (type == T_F16) roundF16Row(xa, xa, n);
    else if (type == T_F16S) roundF16RowScaled(xa, xa, n);
    else if (type == T_BF16) roundBf16Row(xa, xa, n);
    return;
  }
  if (type == T_F32) return;
  if (type == T_F16) {
    roundF16Row(x, xa, T * C);
    return;
  }
  if (type == T_F16S) {
    roundF16RowScaled(x, xa, T * C);
    return;
  }
  if (type == T_BF16) {
    roundBf16Row(x, xa, T * C);
    return;
  }
  if (T > 1 && isLegacyTileType(type)) {
    // Groups of 4 tokens: quantize each row to Q8_0 / Q8_1 in tmp (4 rows), then pack (matmul-tiles.ts).
    const q81 = type == T_Q4_1 || type == T_Q5_1;
    const rowBytes = <usize>(C >> 5) * (q81 ? 36 : 34);
    const gb = legacyGroupBytes(C);
    for (let t0 = 0; t0 < T; t0 += 4) {
      const n = min(4, T - t0);
      for (let i = 0; i < n; i++) {
        const xt = x + ((<usize>(t0 + i) * <usize>C) << 2);
        if (q81) quantizeQ8_1(xt, tmp + <usize>i * rowBytes, C, x86);
        else quantizeQ8_0(xt, tmp + <usize>i * rowBytes, C, x86);
      }
      packQ8Group(tmp, rowBytes, n, C, q81, xa + <usize>(t0 >> 2) * gb);
    }
    return;
  }
  const k = isKQuant(type);
  const nb = k ? C >> 8 : C >> 5;
  for (let t = 0; t < T; t++) {
    const xt = x + ((<usize>t * <usize>C) << 2);
    const qs = xa + ((<usize>t * <usize>C) << 1);
    const d = ad + ((<usize>t * <usize>nb) << 2);
    if (k) {
      quantizeQ8K(xt, tmp, C);
      expandQ8K(tmp, C, qs, d, ax + ((<usize>t * <usize>(C >> 4)) << 2));
    } else if (type == T_Q4_1 || type == T_Q5_1) {
      quantizeQ8_1(xt, tmp, C, x86);
      expandQ8_1(tmp, C, qs, d, ax + ((<usize>t * <usize>nb) << 2));
    } else {
      quantizeQ8_0(xt, tmp, C, x86);
      expandQ8_0(tmp, C, qs, d);
      // One token: Q4_0 / Q5_0 dots take their -8 / -16 offset from the block sums (matmul-legacy.ts).
      if (T == 1 && (type == T_Q4_0 || type == T_Q5_0)) offsetSums(tmp, C, type == T_Q4_0 ? 8 : 16, ax);
    }
  }
}

/**
 * For n/32 block_q8_0 at src: per block the i32x4 (off * sum of its 32 quants, 0, 0, 0) at
 * out + 16 b, which the Q4_0 / Q5_0 dots subtract from their integer lane sums.
 */
function offsetSums(src: usize, n: i32, off: i32, out: usize): void {
  for (let b = 0; b < n >> 5; b++) {
    const q = src + <usize>b * 34 + 2;
    const v0 = v128.load(q);
    const v1 = v128.load(q, 16);
    // i8 -> i16 pairwise sums, then i16 -> i32: exact.
    const s16 = i16x8.add(i16x8.extadd_pairwise_i8x16_s(v0), i16x8.extadd_pairwise_i8x16_s(v1));
    const s32 = i32x4.extadd_pairwise_i16x8_s(s16);
    const sum = i32x4.extract_lane(s32, 0) + i32x4.extract_lane(s32, 1) + i32x4.extract_lane(s32, 2) + i32x4.extract_lane(s32, 3);
    v128.store(out + (<usize>b << 4), i32x4.replace_lane(i32x4.splat(0), 0, off * sum));
  }
}

@inline
function arg(ctl: usize, i: i32): i32 {
  return load<i32>(ctl + 16 + (<usize>i << 2));
}

/**
 * Byte offset in the control block of the claim word: i64 [seq:32][chunks:16][next:16]. It and
 * the done count each have a cache line of their own, apart from the arguments every chunk
 * reads: a line written by one core and read by the other costs a transfer each time.
 */
const CLAIM: usize = 320;
/** Byte offset of the i32 count of chunks finished in the current op. */
const DONE: usize = 256;

/** Starts op number `seq` with `chunks` chunks (< 65536) to claim; the arguments are already set. */
export function publish(ctl: usize, seq: i32, chunks: i32): void {
  atomic.store<i32>(ctl + DONE, 0);
  atomic.store<i64>(ctl + CLAIM, (<i64><u32>seq << 32) | (<i64>chunks << 16));
}

/** Claims every chunk not yet claimed (the caller failed); returns how many it took. */
export function cancelChunks(ctl: usize): i32 {
  for (;;) {
    const v = atomic.load<i64>(ctl + CLAIM);
    const next = <i32>(v & 0xffff);
    const n = <i32>((v >> 16) & 0xffff);
    if (next >= n) return 0;
    if (atomic.cmpxchg<i64>(ctl + CLAIM, v, (v & ~(<i64>0xffff)) | <i64>n) == v) return n - next;
  }
  return 0;
}

/** Chunk c of `chunks` of the op in the control block (see work). */
function runChunk(ctl: usize, c: i32, chunks: i32, tid: i32): void {
  const op = load<i32>(ctl, 8);
  if (op == OP_MATMUL) {
    // Chunks of whole groups of 4 rows (the tiles of matmul-tiles.ts).
    const OC = arg(ctl, 8);
    const G = (OC + 3) >> 2;
    const r0 = min(OC, <i32>((<i64>G * c) / chunks) << 2);
    const r1 = min(OC, <i32>((<i64>G * (c + 1)) / chunks) << 2);
    const scratch = <usize>arg(ctl, 9) + <usize>tid * <usize>arg(ctl, 10);
    matmulRows(
      arg(ctl, 0),
      <usize>arg(ctl, 1),
      <usize>arg(ctl, 2),
      <usize>arg(ctl, 3),
      <usize>arg(ctl, 4),
      <usize>arg(ctl, 5),
      arg(ctl, 6),
      arg(ctl, 7),
      OC,
      r0,
      r1,
      scratch,
    );
  } else if (op == OP_ATTENTION) {
    // One chunk per item: item c of `chunks`.
    const scratch = <usize>arg(ctl, 10) + <usize>tid * <usize>arg(ctl, 11);
    attention(
      <usize>arg(ctl, 0),
      <usize>arg(ctl, 1),
      <usize>arg(ctl, 2),
      <usize>arg(ctl, 3),
      arg(ctl, 4),
      arg(ctl, 5),
      arg(ctl, 6),
      arg(ctl, 7),
      arg(ctl, 8),
      reinterpret<f32>(arg(ctl, 9)),
      arg(ctl, 12),
      scratch,
      c,
      chunks,
    );
  } else if (op == OP_ATTENTION_BLOCKS) {
    // Chunk c: cache positions [c blk, min(n, (c + 1) blk)) of one token.
    const n = arg(ctl, 4);
    const blk = arg(ctl, 9);
    const j0 = c * blk;
    const j1 = min(n, j0 + blk);
    const nHead = arg(ctl, 5);
    const headDim = arg(ctl, 7);
    attentionBlock(
      <usize>arg(ctl, 0),
      <usize>arg(ctl, 1),
      <usize>arg(ctl, 2),
      <usize>arg(ctl, 3) + <usize>c * <usize>nHead * <usize>partBytes(headDim),
      j0,
      j1,
      nHead,
      arg(ctl, 6),
      headDim,
      reinterpret<f32>(arg(ctl, 8)),
      <usize>arg(ctl, 10) + <usize>tid * <usize>arg(ctl, 11),
    );
  }
}

/**
 * Thread `tid` claims chunks of the current op (compare-and-swap on the claim word, whose op
 * number makes a claim from a late thread fail once the op is over) and runs them until none is
 * left; returns how many it ran. Whoever is free takes the next chunk, so a worker that the OS
 * has not scheduled yet costs the caller nothing but doing its share.
 * Control block: i32 [0] wake sequence, [2] op, [3] error flag, [4..31] arguments, [64] chunks
 * done (byte 256), [96] workers asleep (byte 384); i64 at byte 320 the claim word.
 */
export function work(ctl: usize, tid: i32, nth: i32): i32 {
  let ran = 0;
  for (;;) {
    const v = atomic.load<i64>(ctl + CLAIM);
    const next = <i32>(v & 0xffff);
    const n = <i32>((v >> 16) & 0xffff);
    if (next >= n) break;
    if (atomic.cmpxchg<i64>(ctl + CLAIM, v, v + 1) != v) continue;
    runChunk(ctl, next, n, tid);
    atomic.add<i32>(ctl + DONE, 1);
    ran++;
  }
  return ran;
}
