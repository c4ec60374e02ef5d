// The non-matmul kernels of the engine over float32 buffers: rmsNorm, rope (normal and NEOX,
// frequency factors), causal attention (GQA), softmax, add, addBias, swiglu. Each follows the
// ggml CPU op named on it (ggml-cpu/ops.cpp, vec.h). Attention runs over a range of (token,
// head) items so threads can share it; the rest run on one thread.

import { expf1, expNeg, expv, hmax } from "./common";
import { dotF32 } from "./matmul-float";

/** out (T,C) = x / sqrt(mean(x^2) + eps) * w (C); ggml_compute_forward_rms_norm_f32 + mul. */
export function rmsNorm(x: usize, w: usize, out: usize, T: i32, C: i32, eps: f32): void {
  for (let t = 0; t < T; t++) {
    const xp = x + ((<usize>t * <usize>C) << 2);
    const op = out + ((<usize>t * <usize>C) << 2);
    // ggml sums the float32 squares in double.
    let s0 = f64x2.splat(0);
    let s1 = f64x2.splat(0);
    let i = 0;
    for (; i + 4 <= C; i += 4) {
      const v = v128.load(xp + ((<usize>i) << 2));
      const sq = f32x4.mul(v, v);
      s0 = f64x2.add(s0, f64x2.promote_low_f32x4(sq));
      s1 = f64x2.add(s1, f64x2.promote_low_f32x4(i32x4.shuffle(sq, sq, 2, 3, 0, 1)));
    }
    const s = f64x2.add(s0, s1);
    let sum = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
    for (; i < C; i++) {
      const v = load<f32>(xp + ((<usize>i) << 2));
      sum += <f64>(v * v);
    }
    const mean = <f32>(sum / <f64>C);
    const scale: f32 = <f32>1 / Mathf.sqrt(mean + eps);
    const sv = f32x4.splat(scale);
    i = 0;
    for (; i + 4 <= C; i += 4) {
      const o = (<usize>i) << 2;
      v128.store(op + o, f32x4.mul(f32x4.mul(v128.load(xp + o), sv), v128.load(w + o)));
    }
    for (; i < C; i++) {
      const o = (<usize>i) << 2;
      store<f32>(op + o, load<f32>(xp + o) * scale * load<f32>(w + o));
    }
  }
}

/**
 * RoPE in place on x (T, nHeads, headDim) at positions pos (T i32); ggml_rope_cache_init +
 * rotate_pairs (ext_factor 0, attn_factor 1): theta_i = pos * base^(-2i/nRot) by repeated float32
 * products, divided by freq factor i (ff: nRot/2 f32, or 0), times freqScale. Normal pairs
 * (2i, 2i+1), NEOX pairs (i, i + nRot/2); dims past nRot unchanged. cache: nRot floats of scratch.
 */
export function rope(
  x: usize,
  T: i32,
  nHeads: i32,
  headDim: i32,
  pos: usize,
  nRot: i32,
  freqBase: f32,
  freqScale: f32,
  neox: i32,
  ff: usize,
  cache: usize,
): void {
  const half = nRot >> 1;
  const thetaScale = <f32>Math.pow(<f64>freqBase, <f64>(<f32>-2.0 / <f32>nRot));
  for (let t = 0; t < T; t++) {
    let theta = <f32>load<i32>(pos + ((<usize>t) << 2));
    for (let i = 0; i < half; i++) {
      const f: f32 = ff != 0 ? load<f32>(ff + ((<usize>i) << 2)) : 1;
      const th = freqScale * (theta / f);
      store<f32>(cache + ((<usize>i) << 3), <f32>Math.cos(<f64>th));
      store<f32>(cache + ((<usize>i) << 3), <f32>Math.sin(<f64>th), 4);
      theta *= thetaScale;
    }
    for (let h = 0; h < nHeads; h++) {
      const base = x + ((<usize>(t * nHeads + h) * <usize>headDim) << 2);
      for (let i = 0; i < half; i++) {
        const c = load<f32>(cache + ((<usize>i) << 3));
        const s = load<f32>(cache + ((<usize>i) << 3), 4);
        const p0 = base + (<usize><u32>(neox != 0 ? i : 2 * i) << 2);
        const p1 = neox ? p0 + ((<usize>half) << 2) : p0 + 4;
        const x0 = load<f32>(p0);
        const x1 = load<f32>(p1);
        store<f32>(p0, x0 * c - x1 * s);
        store<f32>(p1, x0 * s + x1 * c);
      }
    }
  }
}

/**
 * y (n) = exp(x - max) in place, returning the sum in double; the body of ggml_vec_soft_max_f32
 * (max is the largest x, so every x - max <= 0: expNeg, as ggml's ggml_v_expf).
 */
function expShifted(x: usize, n: i32, max: f32): f64 {
  const mv = f32x4.splat(max);
  let s0 = f64x2.splat(0);
  let s1 = f64x2.splat(0);
  let p = x;
  const e4 = x + ((<usize>(n & ~3)) << 2);
  while (p < e4) {
    const e = expNeg(f32x4.sub(v128.load(p), mv));
    v128.store(p, e);
    s0 = f64x2.add(s0, f64x2.promote_low_f32x4(e));
    s1 = f64x2.add(s1, f64x2.promote_low_f32x4(i32x4.shuffle(e, e, 2, 3, 0, 1)));
    p += 16;
  }
  const s = f64x2.add(s0, s1);
  let sum = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (let i = n & ~3; i < n; i++) {
    const o = (<usize>i) << 2;
    const e = f32x4.extract_lane(expNeg(f32x4.splat(load<f32>(x + o) - max)), 0);
    store<f32>(x + o, e);
    sum += <f64>e;
  }
  return sum;
}

/** Largest of x (n). */
function maxOf(x: usize, n: i32): f32 {
  let m = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.pmax(m, v128.load(x + ((<usize>i) << 2)));
  let r = hmax(m);
  for (; i < n; i++) r = max(r, load<f32>(x + ((<usize>i) << 2)));
  return r;
}

/** x (n) *= s. */
function scaleRow(x: usize, n: i32, s: f32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(x + o, f32x4.mul(v128.load(x + o), sv));
  }
  for (; i < n; i++) store<f32>(x + ((<usize>i) << 2), load<f32>(x + ((<usize>i) << 2)) * s);
}

/** Softmax in place over each of `rows` rows of n floats; ggml_vec_soft_max_f32 then scale by 1/sum. */
export function softmax(x: usize, rows: i32, n: i32): void {
  for (let r = 0; r < rows; r++) {
    const xp = x + ((<usize>r * <usize>n) << 2);
    const sum = expShifted(xp, n, maxOf(xp, n));
    scaleRow(xp, n, <f32>(1.0 / sum));
  }
}

/**
 * Causal attention. Work items are (token t, range s of the query heads), nSplit ranges per token,
 * taken as tid, tid + nth, ...: an item sweeps the cache positions j in order and, at each, reads
 * the K (then V) values of all its heads, which sit side by side in the row of position j. One
 * forward sweep over contiguous memory per item, instead of one strided pass per head (that
 * pattern read the cache from L3 once per head: 5-10x slower at depth).
 * q (T, nHead, headDim); k, v (nCtx, nHeadKv, headDim) holding positions 0..pos0+T-1;
 * out (T, nHead, headDim); scratch: ceil(nHead / nSplit) * (pos0 + T) floats for this thread.
 * Query head h reads KV head h / (nHead / nHeadKv) (llama.cpp's GQA broadcast). Scores = scale *
 * q.k, softmax as ggml_soft_max_ext (max, expf, sum in double, times 1/sum), then the weighted sum
 * of v in position order. Each head's arithmetic is the same whatever the split.
 */
export function attention(
  q: usize,
  k: usize,
  v: usize,
  out: usize,
  T: i32,
  pos0: i32,
  nHead: i32,
  nHeadKv: i32,
  headDim: i32,
  scale: f32,
  nSplit: i32,
  scratch: usize,
  tid: i32,
  nth: i32,
): void {
  const group = nHead / nHeadKv;
  const rowBytes = <usize>headDim << 2;
  const kvStride = <usize>nHeadKv * rowBytes;
  const items = T * nSplit;
  for (let item = tid; item < items; item += nth) {
    const t = item / nSplit;
    const sp = item - t * nSplit;
    const h0 = <i32>((<i64>nHead * sp) / nSplit);
    const h1 = <i32>((<i64>nHead * (sp + 1)) / nSplit);
    const n = pos0 + t + 1;
    const sBytes = <usize>n << 2;
    const qt = q + <usize>(t * nHead) * rowBytes;
    const outT = out + <usize>(t * nHead) * rowBytes;
    scoresRange(qt, k, h0, h1, group, headDim, kvStride, scale, 0, n, scratch, sBytes);
    for (let h = h0; h < h1; h++) {
      const sg = scratch + <usize>(h - h0) * sBytes;
      const sum = expShifted(sg, n, maxOf(sg, n));
      // Fold 1/sum into the probabilities: out = sum_j (p_j / sum) v_j.
      scaleRow(sg, n, <f32>(1.0 / sum));
    }
    const o0 = outT + <usize>h0 * rowBytes;
    memory.fill(o0, 0, <usize>(h1 - h0) * rowBytes);
    accumulateRange(v, h0, h1, group, headDim, kvStride, 0, n, scratch, sBytes, o0, rowBytes);
  }
}

/**
 * Scores of the query heads h0..h1-1 of one token (qt: its (nHead, headDim) queries) against
 * cache positions j0..j1-1: scale * q.k to scratch + (h - h0) sBytes + 4 (j - j0). Four
 * positions at a time: four lane sums per head, added across lanes into one vector of scores.
 */
function scoresRange(
  qt: usize,
  k: usize,
  h0: i32,
  h1: i32,
  group: i32,
  headDim: i32,
  kvStride: usize,
  scale: f32,
  j0: i32,
  j1: i32,
  scratch: usize,
  sBytes: usize,
): void {
  const rowBytes = <usize>headDim << 2;
  let j = j0;
  if ((headDim & 7) == 0) {
    // Pointers stepped through the 4 rows, 8 values an iteration: V8 computes every
    // base + index * stride address with integer ops of its own (1.27x this way).
    const sv = f32x4.splat(scale);
    let kj = k + <usize>j * kvStride;
    for (; j + 4 <= j1; j += 4) {
      let out = scratch + (<usize>(j - j0) << 2);
      for (let h = h0; h < h1; h++) {
        let qp = qt + <usize>h * rowBytes;
        const qe = qp + rowBytes;
        let k0 = kj + <usize>(h / group) * rowBytes;
        let k1 = k0 + kvStride;
        let k2 = k1 + kvStride;
        let k3 = k2 + kvStride;
        let a0 = f32x4.splat(0);
        let a1 = f32x4.splat(0);
        let a2 = f32x4.splat(0);
        let a3 = f32x4.splat(0);
        while (qp < qe) {
          let q = v128.load(qp);
          a0 = f32x4.add(a0, f32x4.mul(q, v128.load(k0)));
          a1 = f32x4.add(a1, f32x4.mul(q, v128.load(k1)));
          a2 = f32x4.add(a2, f32x4.mul(q, v128.load(k2)));
          a3 = f32x4.add(a3, f32x4.mul(q, v128.load(k3)));
          q = v128.load(qp, 16);
          a0 = f32x4.add(a0, f32x4.mul(q, v128.load(k0, 16)));
          a1 = f32x4.add(a1, f32x4.mul(q, v128.load(k1, 16)));
          a2 = f32x4.add(a2, f32x4.mul(q, v128.load(k2, 16)));
          a3 = f32x4.add(a3, f32x4.mul(q, v128.load(k3, 16)));
          qp += 32;
          k0 += 32;
          k1 += 32;
          k2 += 32;
          k3 += 32;
        }
        v128.store(out, f32x4.mul(reduce4f(a0, a1, a2, a3), sv));
        out += sBytes;
      }
      kj += kvStride << 2;
    }
  } else if ((headDim & 3) == 0) {
    const sv = f32x4.splat(scale);
    for (; j + 4 <= j1; j += 4) {
      const k0 = k + <usize>j * kvStride;
      for (let h = h0; h < h1; h++) {
        const qh = qt + <usize>h * rowBytes;
        const kh = k0 + <usize>(h / group) * rowBytes;
        let a0 = f32x4.splat(0);
        let a1 = f32x4.splat(0);
        let a2 = f32x4.splat(0);
        let a3 = f32x4.splat(0);
        for (let i = 0; i < headDim; i += 4) {
          const o = <usize>i << 2;
          const qv = v128.load(qh + o);
          a0 = f32x4.add(a0, f32x4.mul(qv, v128.load(kh + o)));
          a1 = f32x4.add(a1, f32x4.mul(qv, v128.load(kh + kvStride + o)));
          a2 = f32x4.add(a2, f32x4.mul(qv, v128.load(kh + 2 * kvStride + o)));
          a3 = f32x4.add(a3, f32x4.mul(qv, v128.load(kh + 3 * kvStride + o)));
        }
        v128.store(scratch + <usize>(h - h0) * sBytes + (<usize>(j - j0) << 2), f32x4.mul(reduce4f(a0, a1, a2, a3), sv));
      }
    }
  }
  for (; j < j1; j++) {
    const kj = k + <usize>j * kvStride;
    const sj = scratch + (<usize>(j - j0) << 2);
    for (let h = h0; h < h1; h++) {
      const d = dotF32(qt + <usize>h * rowBytes, kj + <usize>(h / group) * rowBytes, headDim) * scale;
      store<f32>(sj + <usize>(h - h0) * sBytes, d);
    }
  }
}

/**
 * out_h += sum over positions j0..j1-1 of p_hj v_j for heads h0..h1-1, p at scratch + (h - h0)
 * sBytes + 4 (j - j0), out_h at o0 + (h - h0) oStride; in position order, 8 positions at a time
 * with 16 outputs in registers (the 8 rows stay in L1 while every head reads them).
 */
function accumulateRange(
  v: usize,
  h0: i32,
  h1: i32,
  group: i32,
  headDim: i32,
  kvStride: usize,
  j0: i32,
  j1: i32,
  scratch: usize,
  sBytes: usize,
  o0: usize,
  oStride: usize,
): void {
  const rowBytes = <usize>headDim << 2;
  for (let jb = j0; jb < j1; jb += 8) {
    const je = min(jb + 8, j1);
    for (let h = h0; h < h1; h++) {
      const sh = scratch + <usize>(h - h0) * sBytes - (<usize>j0 << 2);
      const vh = v + <usize>(h / group) * rowBytes;
      const op = o0 + <usize>(h - h0) * oStride;
      let i = 0;
      for (; i + 16 <= headDim; i += 16) {
        const o = <usize>i << 2;
        let c0 = v128.load(op + o);
        let c1 = v128.load(op + o, 16);
        let c2 = v128.load(op + o, 32);
        let c3 = v128.load(op + o, 48);
        for (let jj = jb; jj < je; jj++) {
          const pv = f32x4.splat(load<f32>(sh + (<usize>jj << 2)));
          const vp = vh + <usize>jj * kvStride + o;
          c0 = f32x4.add(c0, f32x4.mul(pv, v128.load(vp)));
          c1 = f32x4.add(c1, f32x4.mul(pv, v128.load(vp, 16)));
          c2 = f32x4.add(c2, f32x4.mul(pv, v128.load(vp, 32)));
          c3 = f32x4.add(c3, f32x4.mul(pv, v128.load(vp, 48)));
        }
        v128.store(op + o, c0);
        v128.store(op + o, c1, 16);
        v128.store(op + o, c2, 32);
        v128.store(op + o, c3, 48);
      }
      for (; i + 4 <= headDim; i += 4) {
        const o = <usize>i << 2;
        let c0 = v128.load(op + o);
        for (let jj = jb; jj < je; jj++) {
          c0 = f32x4.add(c0, f32x4.mul(f32x4.splat(load<f32>(sh + (<usize>jj << 2))), v128.load(vh + <usize>jj * kvStride + o)));
        }
        v128.store(op + o, c0);
      }
      for (; i < headDim; i++) {
        const o = <usize>i << 2;
        let c = load<f32>(op + o);
        for (let jj = jb; jj < je; jj++) c += load<f32>(sh + (<usize>jj << 2)) * load<f32>(vh + <usize>jj * kvStride + o);
        store<f32>(op + o, c);
      }
    }
  }
}

/** Bytes of one head's partial state in attentionBlock: m f32, pad, s f64, then headDim f32. */
export function partBytes(headDim: i32): i32 {
  return 16 + (((headDim << 2) + 15) & ~15);
}

/**
 * One block of cache positions [j0, j1) of the attention of a single token (the one at position
 * n - 1, queries q (nHead, headDim)), every head: per head the block's largest score m, the sum s
 * (float64) of exp(score - m) and o = sum of exp(score - m) v_j, to part + h partBytes(headDim).
 * attentionMerge combines the blocks. Splitting the positions instead of the heads lets each
 * thread read its own contiguous stretch of the cache. scratch: nHead * (j1 - j0) floats.
 */
export function attentionBlock(
  q: usize,
  k: usize,
  v: usize,
  part: usize,
  j0: i32,
  j1: i32,
  nHead: i32,
  nHeadKv: i32,
  headDim: i32,
  scale: f32,
  scratch: usize,
): void {
  const group = nHead / nHeadKv;
  const kvStride = <usize>nHeadKv * (<usize>headDim << 2);
  const nb = j1 - j0;
  const sBytes = <usize>nb << 2;
  const pb = <usize>partBytes(headDim);
  scoresRange(q, k, 0, nHead, group, headDim, kvStride, scale, j0, j1, scratch, sBytes);
  for (let h = 0; h < nHead; h++) {
    const sg = scratch + <usize>h * sBytes;
    const m = maxOf(sg, nb);
    const ph = part + <usize>h * pb;
    store<f32>(ph, m);
    store<f64>(ph, expShifted(sg, nb, m), 8);
    memory.fill(ph + 16, 0, <usize>headDim << 2);
  }
  accumulateRange(v, 0, nHead, group, headDim, kvStride, j0, j1, scratch, sBytes, part + 16, pb);
}

/**
 * out (nHead, headDim) from the nBlocks partial states at part (attentionBlock, block b at part +
 * b nHead partBytes): M = the largest m, S = sum of s_b exp(m_b - M) (float64), out = sum of
 * o_b exp(m_b - M), times 1/S.
 */
export function attentionMerge(part: usize, nBlocks: i32, out: usize, nHead: i32, headDim: i32): void {
  const pb = <usize>partBytes(headDim);
  const blockBytes = <usize>nHead * pb;
  for (let h = 0; h < nHead; h++) {
    const p0 = part + <usize>h * pb;
    let M = load<f32>(p0);
    for (let b = 1; b < nBlocks; b++) M = max(M, load<f32>(p0 + <usize>b * blockBytes));
    let S: f64 = 0;
    for (let b = 0; b < nBlocks; b++) {
      const pbh = p0 + <usize>b * blockBytes;
      const w = Mathf.exp(load<f32>(pbh) - M);
      store<f32>(pbh, w, 4); // the block's weight, in the header's spare slot
      S += load<f64>(pbh, 8) * <f64>w;
    }
    const inv = <f32>(1.0 / S);
    const op = out + <usize>h * (<usize>headDim << 2);
    // out_i = (sum over blocks of o_bi w_b) / S, blocks in order, 4 values at a time.
    let i = 0;
    for (; i + 4 <= headDim; i += 4) {
      let acc = f32x4.splat(0);
      let pbh = p0;
      for (let b = 0; b < nBlocks; b++) {
        acc = f32x4.add(acc, f32x4.mul(v128.load(pbh + 16 + (<usize>i << 2)), v128.load32_splat(pbh, 4)));
        pbh += blockBytes;
      }
      v128.store(op + (<usize>i << 2), f32x4.mul(acc, f32x4.splat(inv)));
    }
    for (; i < headDim; i++) {
      let acc: f32 = 0;
      for (let b = 0; b < nBlocks; b++) {
        const pbh = p0 + <usize>b * blockBytes;
        acc += load<f32>(pbh + 16 + (<usize>i << 2)) * load<f32>(pbh, 4);
      }
      store<f32>(op + (<usize>i << 2), acc * inv);
    }
  }
}

/** [sum a, sum b, sum c, sum d] of four f32x4 vectors. */
@inline
function reduce4f(a: v128, b: v128, c: v128, d: v128): v128 {
  const x = f32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const y = f32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return f32x4.add(i32x4.shuffle(x, y, 0, 1, 4, 5), i32x4.shuffle(x, y, 2, 3, 6, 7));
}

/** a (n) += b (n). */
export function add(a: usize, b: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(a + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++)
    store<f32>(a + ((<usize>i) << 2), load<f32>(a + ((<usize>i) << 2)) + load<f32>(b + ((<usize>i) << 2)));
}

/** a (T,C) += b (C) on every row. */
export function addBias(a: usize, b: usize, T: i32, C: i32): void {
  for (let t = 0; t < T; t++) add(a + ((<usize>t * <usize>C) << 2), b, C);
}

/** gate (n) = silu(gate) * up, silu(x) = x / (1 + expf(-x)); ggml_vec_swiglu_f32. */
export function swiglu(gate: usize, up: usize, n: i32): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = (<usize>i) << 2;
    const g = v128.load(gate + o);
    const s = f32x4.div(g, f32x4.add(one, expv(f32x4.neg(g))));
    v128.store(gate + o, f32x4.mul(s, v128.load(up + o)));
  }
  for (; i < n; i++) {
    const o = (<usize>i) << 2;
    const g = load<f32>(gate + o);
    const e = expf1(-g);
    store<f32>(gate + o, (g / (1 + e)) * load<f32>(up + o));
  }
}
