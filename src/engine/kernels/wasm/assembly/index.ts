// Entry point of the kernels module (dist/kernels.wasm, built by ../build.mjs): the exports the
// JS side (../backend.ts, ../worker.mjs) calls. Memory is imported (env.memory, shared); the
// module allocates nothing: every pointer is a byte offset chosen by the JS allocator, which
// starts above heapBase(). Work split across threads goes through `work`, which reads one op and
// its arguments from a control block in memory (layout: ../pool.ts).
import { TABLES_END } from "./common";
import { isKQuant, matmulRows } from "./matmul";
import { packSmallGroup, packSmallKGroup, smallGroupBytes, smallKGroupBytes, smallQ81, useSmallT } from "./matmul-small";
import { c4, isLegacyTileType, kGroupBytes, legacyGroupBytes, packK8Group, packQ8Group, packTokensF32 } from "./matmul-tiles";
import { narrowBsums, pairBsums, q6Steps } from "./matmul-kquants";
import { eoPairs } from "./matmul-legacy";
import { T_BF16, T_F16, T_F16S, T_F32, T_Q2_K, T_Q4_0, T_Q4_1, T_Q4_K, T_Q5_0, T_Q5_1, T_Q5_K, T_Q6_K } from "./types";
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
 * tokens into xa (matmul-tiles.ts), rounded for F16/BF16. useSmallT with a legacy type (T = 2..8):
 * groups of 4 rows quantized through tmp and packed into xa (matmul-small.ts). T > 1 with another
 * legacy type: each group of 4 rows quantized through tmp (4 rows of ggml blocks) and packed into
 * xa (matmul-tiles.ts). Otherwise each row is quantized through tmp (one row of ggml blocks) and
 * expanded into xa (T,C) i16 EO, ad and ax (see matmulRows); K-quants with T > 1 then pack groups
 * of 4 tokens into xp (for the tiles, or for matmul-small.ts with useSmallT: Q2_K and Q3_K from
 * one token). x86 != 0: Q8_0 / Q8_1 as ggml-cpu's x86 build quantizes them (quantize.ts).
 * Returns the activation matmulRows reads: x (F32, one token), xp (K-quants packed), else xa.
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
  xp: usize,
  x86: i32,
): usize {
  if (T > 1 && (type == T_F32 || type == T_F16 || type == T_F16S || type == T_BF16)) {
    // Packed in groups of 4 tokens (matmul-tiles.ts), then rounded in place (zeros stay zeros).
    packTokensF32(x, T, C, xa);
    const n = (((T + 3) >> 2) << 2) * c4(C);
    if (type == T_F16) roundF16Row(xa, xa, n);
    else if (type == T_F16S) roundF16RowScaled(xa, xa, n);
    else if (type == T_BF16) roundBf16Row(xa, xa, n);
    return xa;
  }
  if (type == T_F32) return x;
  if (type == T_F16) {
    roundF16Row(x, xa, T * C);
    return xa;
  }
  if (type == T_F16S) {
    roundF16RowScaled(x, xa, T * C);
    return xa;
  }
  if (type == T_BF16) {
    roundBf16Row(x, xa, T * C);
    return xa;
  }
  if (useSmallT(type, T) && !isKQuant(type)) {
    // A few tokens (Q8_0 activations, Q8_1 for Q4_1 / Q5_1): groups of 4 quantized through tmp
    // and packed for matmul-small.ts.
    const q81 = smallQ81(type);
    const rowBytes = <usize>(C >> 5) * (q81 ? 36 : 34);
    const gb = smallGroupBytes(C, q81);
    for (let t0 = 0; t0 < T; t0 += 4) {
      const n = min(4, T - t0);
      for (let i = 0; i < n; i++) {
        const xt = x + ((<usize>(t0 + i) * <usize>C) << 2);
        if (q81) quantizeQ8_1(xt, tmp + <usize>i * rowBytes, C, x86);
        else quantizeQ8_0(xt, tmp + <usize>i * rowBytes, C, x86);
      }
      packSmallGroup(tmp, rowBytes, n, C, q81, xa + <usize>(t0 >> 2) * gb);
    }
    return xa;
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
    return xa;
  }
  const k = isKQuant(type);
  const nb = k ? C >> 8 : C >> 5;
  for (let t = 0; t < T; t++) {
    const xt = x + ((<usize>t * <usize>C) << 2);
    const qs = xa + ((<usize>t * <usize>C) << 1);
    const d = ad + ((<usize>t * <usize>nb) << 2);
    if (k) {
      quantizeQ8K(xt, tmp, C);
      const bs = ax + ((<usize>t * <usize>(C >> 4)) << 2);
      // One token with Q4_K / Q5_K: the halves layout and the bsums' pair sums, written over the
      // bsums (matmul-kquants.ts dotQ4K).
      const halves = T == 1 && (type == T_Q4_K || type == T_Q5_K);
      expandQ8K(tmp, C, qs, d, bs, halves);
      if (halves) pairBsums(bs, nb, bs);
      // One token with Q6_K: the steps layout and the bsums as i16 (matmul-kquants.ts dotQ6K).
      if (T == 1 && type == T_Q6_K) {
        q6Steps(qs, C);
        narrowBsums(bs, C);
      }
    } else if (type == T_Q4_1 || type == T_Q5_1) {
      quantizeQ8_1(xt, tmp, C, x86);
      expandQ8_1(tmp, C, qs, d, ax + ((<usize>t * <usize>nb) << 2));
      // One token with Q5_1: B - 256 A per EO pair (matmul-legacy.ts dotQ5_0).
      if (T == 1 && type == T_Q5_1) eoPairs(qs, C);
    } else {
      quantizeQ8_0(xt, tmp, C, x86);
      expandQ8_0(tmp, C, qs, d);
      // One token: Q4_0 / Q5_0 dots take their -8 / -16 offset from the block sums (matmul-legacy.ts).
      if (T == 1 && (type == T_Q4_0 || type == T_Q5_0)) offsetSums(tmp, C, type == T_Q4_0 ? 8 : 16, ax);
      if (T == 1 && type == T_Q5_0) eoPairs(qs, C);
    }
  }
  const small = useSmallT(type, T);
  if (k && (T > 1 || small)) {
    // Groups of 4 tokens packed into xp for the K tiles (matmul-tiles.ts) or, for a few tokens,
    // for matmul-small.ts.
    const gb = small ? smallKGroupBytes(C, type == T_Q2_K) : kGroupBytes(C);
    for (let t0 = 0; t0 < T; t0 += 4) {
      const g = xp + <usize>(t0 >> 2) * gb;
      if (small) packSmallKGroup(xa, ad, ax, t0, min(4, T - t0), C, type == T_Q2_K, g);
      else packK8Group(xa, ad, ax, t0, min(4, T - t0), C, g);
    }
    return xp;
  }
  return xa;
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

/**
 * Control block (pool.ts; byte offsets): i32 [0] wake sequence, [8] op, [12] error flag, [16..127]
 * the op's 28 i32 arguments ([100] kernel scratch bytes per thread, [104] thread regions' base,
 * [108] their stride), [256] chunks done, [320] i64 claim word, [384] workers asleep, [448]
 * argument version (the op number once the arguments are complete, 0 while they are written),
 * [512] workers between taking a chunk's outputs and finishing their copy, [576] chunk states
 * (i32 per chunk: the number of the op whose outputs for that chunk were taken), [1600] per thread
 * 128 bytes: a copy of bytes 0..127 taken by a worker before it runs a chunk.
 * The claim word and the done count each have a cache line of their own, apart from the arguments
 * every chunk reads: a line written by one core and read by the other costs a transfer each time.
 */
const ARGS: usize = 16;
const DONE: usize = 256;
const CLAIM: usize = 320;
const VERSION: usize = 448;
const INFLIGHT: usize = 512;
const STATE: usize = 576;
/** Most chunks of one op (the chunk states' room). */
export const MAX_CHUNKS: i32 = 256;
const SNAP: usize = STATE + (<usize>MAX_CHUNKS << 2);
const SNAP_BYTES: usize = 128;

@inline
function arg(a: usize, i: i32): i32 {
  return load<i32>(a + ARGS + (<usize>i << 2));
}

/** Starts op number `seq` with `chunks` chunks (<= MAX_CHUNKS) to claim; the arguments are already set. */
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

/** [lo, hi) of chunk c of `chunks` over `count` units: unit lo is count * c / chunks. */
@inline
function cut(count: i32, c: i32, chunks: i32): i32 {
  return <i32>((<i64>count * c) / chunks);
}

/** Byte offset in an attention output (T, nHead, headDim) of the first row of item i (t, split part). */
@inline
function itemOffset(i: i32, nSplit: i32, nHead: i32, headDim: i32): usize {
  const t = i / nSplit;
  const sp = i - t * nSplit;
  return (<usize>(t * nHead + cut(nHead, sp, nSplit)) * <usize>headDim) << 2;
}

/**
 * Runs chunk c of `chunks` of the op whose control block (or a copy of its first 128 bytes) is at
 * a, on thread tid (its region: kernel scratch, then private outputs). priv: the chunk's outputs
 * go to this thread's private outputs instead of their places (copyOut moves them).
 */
function runChunk(a: usize, c: i32, chunks: i32, tid: i32, priv: bool): void {
  const op = load<i32>(a, 8);
  const region = <usize>arg(a, 26) + <usize>tid * <usize>arg(a, 27);
  const out = region + <usize>arg(a, 25);
  if (op == OP_MATMUL) {
    // Chunks of whole groups of 4 rows (the tiles of matmul-tiles.ts).
    const T = arg(a, 6);
    const OC = arg(a, 8);
    const G = (OC + 3) >> 2;
    const r0 = min(OC, cut(G, c, chunks) << 2);
    const r1 = min(OC, cut(G, c + 1, chunks) << 2);
    const y = priv ? out - (<usize>r0 << 2) : <usize>arg(a, 5);
    const ys = priv ? <usize>(r1 - r0) << 2 : <usize>OC << 2;
    matmulRows(arg(a, 0), <usize>arg(a, 1), <usize>arg(a, 2), <usize>arg(a, 3), <usize>arg(a, 4), y, ys, T, arg(a, 7), OC, r0, r1, region);
  } else if (op == OP_ATTENTION) {
    // Items (token, part of the heads) [i0, i1); their output rows are contiguous.
    const T = arg(a, 4);
    const nHead = arg(a, 6);
    const headDim = arg(a, 8);
    const nSplit = arg(a, 12);
    const items = T * nSplit;
    const i0 = cut(items, c, chunks);
    const i1 = cut(items, c + 1, chunks);
    const o = priv ? out - itemOffset(i0, nSplit, nHead, headDim) : <usize>arg(a, 3);
    for (let i = i0; i < i1; i++) {
      attention(
        <usize>arg(a, 0),
        <usize>arg(a, 1),
        <usize>arg(a, 2),
        o,
        T,
        arg(a, 5),
        nHead,
        arg(a, 7),
        headDim,
        reinterpret<f32>(arg(a, 9)),
        nSplit,
        region,
        i,
        items,
      );
    }
  } else if (op == OP_ATTENTION_BLOCKS) {
    // Blocks [b0, b1) of cache positions [b blk, min(n, (b + 1) blk)) of one token.
    const n = arg(a, 4);
    const blk = arg(a, 9);
    const nHead = arg(a, 5);
    const headDim = arg(a, 7);
    const nBlocks = (n + blk - 1) / blk;
    const b0 = cut(nBlocks, c, chunks);
    const b1 = cut(nBlocks, c + 1, chunks);
    const pb = <usize>nHead * <usize>partBytes(headDim);
    const part = priv ? out - <usize>b0 * pb : <usize>arg(a, 3);
    for (let b = b0; b < b1; b++) {
      const j0 = b * blk;
      attentionBlock(
        <usize>arg(a, 0),
        <usize>arg(a, 1),
        <usize>arg(a, 2),
        part + <usize>b * pb,
        j0,
        min(n, j0 + blk),
        nHead,
        arg(a, 6),
        headDim,
        reinterpret<f32>(arg(a, 8)),
        region,
      );
    }
  }
}

/** Copies chunk c's outputs from thread tid's private outputs (runChunk with priv) to their places. */
function copyOut(a: usize, c: i32, chunks: i32, tid: i32): void {
  const op = load<i32>(a, 8);
  const out = <usize>arg(a, 26) + <usize>tid * <usize>arg(a, 27) + <usize>arg(a, 25);
  if (op == OP_MATMUL) {
    const T = arg(a, 6);
    const OC = arg(a, 8);
    const G = (OC + 3) >> 2;
    const r0 = min(OC, cut(G, c, chunks) << 2);
    const r1 = min(OC, cut(G, c + 1, chunks) << 2);
    const n = <usize>(r1 - r0) << 2;
    const y = <usize>arg(a, 5) + (<usize>r0 << 2);
    for (let t = 0; t < T; t++) memory.copy(y + <usize>t * (<usize>OC << 2), out + <usize>t * n, n);
  } else if (op == OP_ATTENTION) {
    const nHead = arg(a, 6);
    const headDim = arg(a, 8);
    const nSplit = arg(a, 12);
    const items = arg(a, 4) * nSplit;
    const s = itemOffset(cut(items, c, chunks), nSplit, nHead, headDim);
    const e = itemOffset(cut(items, c + 1, chunks), nSplit, nHead, headDim);
    memory.copy(<usize>arg(a, 3) + s, out, e - s);
  } else if (op == OP_ATTENTION_BLOCKS) {
    const blk = arg(a, 9);
    const nBlocks = (arg(a, 4) + blk - 1) / blk;
    const pb = <usize>arg(a, 5) * <usize>partBytes(arg(a, 7));
    const b0 = cut(nBlocks, c, chunks);
    const b1 = cut(nBlocks, c + 1, chunks);
    memory.copy(<usize>arg(a, 3) + <usize>b0 * pb, out, <usize>(b1 - b0) * pb);
  }
}

/**
 * Thread `tid` claims chunks of the current op (compare-and-swap on the claim word, whose op
 * number makes a claim from a late thread fail once the op is over) and runs them until none is
 * left; returns how many it finished. Whoever is free takes the next chunk.
 *
 * The caller (tid 0) writes its chunks' outputs in place. A worker runs its chunk on a copy of
 * the arguments into its private outputs, then takes the chunk's outputs (compare-and-swap of the
 * chunk's state to the op number) and copies them out; if the caller took them first (steal: the
 * worker was descheduled while it held the chunk, so the caller ran it itself rather than wait
 * milliseconds for the OS to run the worker again), the worker's results are dropped. A worker
 * late enough to see the next op's arguments drops its chunk before running it: the version word
 * is the op number only while the arguments are complete. Everything a worker writes before it
 * takes a chunk is in its own region, which no other thread touches.
 */
export function work(ctl: usize, tid: i32, nth: i32): i32 {
  let ran = 0;
  const snap = ctl + SNAP + <usize>tid * SNAP_BYTES;
  for (;;) {
    const v = atomic.load<i64>(ctl + CLAIM);
    const seq = <i32>(v >> 32);
    const next = <i32>(v & 0xffff);
    const n = <i32>((v >> 16) & 0xffff);
    if (next >= n) break;
    if (atomic.cmpxchg<i64>(ctl + CLAIM, v, v + 1) != v) continue;
    const st = ctl + STATE + (<usize>next << 2);
    if (tid == 0) {
      atomic.store<i32>(st, seq);
      runChunk(ctl, next, n, 0, false);
      atomic.add<i32>(ctl + DONE, 1);
      ran++;
      continue;
    }
    const s0 = atomic.load<i32>(st);
    if (s0 == seq) continue;
    if (atomic.load<i32>(ctl + VERSION) != seq) continue;
    memory.copy(snap, ctl, SNAP_BYTES);
    if (atomic.load<i32>(ctl + VERSION) != seq) continue;
    runChunk(snap, next, n, tid, true);
    atomic.add<i32>(ctl + INFLIGHT, 1);
    if (atomic.cmpxchg<i32>(st, s0, seq) == s0) {
      copyOut(snap, next, n, tid);
      atomic.add<i32>(ctl + DONE, 1);
      ran++;
    }
    atomic.sub<i32>(ctl + INFLIGHT, 1);
  }
  return ran;
}

/**
 * The caller (tid 0) takes and runs, in place, every chunk of the current op whose outputs no
 * thread has taken yet (a worker holding one is descheduled, or slow); returns how many.
 */
export function steal(ctl: usize): i32 {
  const v = atomic.load<i64>(ctl + CLAIM);
  const seq = <i32>(v >> 32);
  const n = <i32>((v >> 16) & 0xffff);
  let ran = 0;
  for (let c = n - 1; c >= 0; c--) {
    const st = ctl + STATE + (<usize>c << 2);
    const s = atomic.load<i32>(st);
    if (s == seq || atomic.cmpxchg<i32>(st, s, seq) != s) continue;
    runChunk(ctl, c, n, 0, false);
    atomic.add<i32>(ctl + DONE, 1);
    ran++;
  }
  return ran;
}

/**
 * Takes every chunk of the current op whose outputs no thread has taken (the caller failed): no
 * worker copies outputs after this once the in-flight count is 0; returns how many it took.
 */
export function takeAll(ctl: usize): i32 {
  const v = atomic.load<i64>(ctl + CLAIM);
  const seq = <i32>(v >> 32);
  const n = <i32>((v >> 16) & 0xffff);
  let k = 0;
  for (let c = 0; c < n; c++) {
    const st = ctl + STATE + (<usize>c << 2);
    const s = atomic.load<i32>(st);
    if (s != seq && atomic.cmpxchg<i32>(st, s, seq) == s) k++;
  }
  return k;
}
