// Entry point of the kernels module (dist/kernels.wasm, built by ../build.mjs): the exports the
// JS side (../backend.ts, ../worker.mjs) calls. Memory is imported (env.memory, shared); the
// module allocates nothing: every pointer is a byte offset chosen by the JS allocator, which
// starts above heapBase(). Work split across threads goes through `work`, which reads one op and
// its arguments from a control block in memory (layout: ../pool.ts).
import { TABLES_END } from "./common";
import { isKQuant, matmulRows } from "./matmul";
import { T_BF16, T_F16, T_F32, T_Q4_1, T_Q5_1 } from "./types";
import { attention } from "./ops";
import {
  expandQ8_0,
  expandQ8_1,
  expandQ8K,
  quantizeQ8_0,
  quantizeQ8_1,
  quantizeQ8K,
  roundBf16Row,
  roundF16Row,
} from "./quantize";

export { matmulRows, rowBytes } from "./matmul";
export { add, addBias, attention, rmsNorm, rope, softmax, swiglu } from "./ops";
export { quantizeQ8_0, quantizeQ8_1, quantizeQ8K, toBf16Row, toF16Row } from "./quantize";

/** Op codes of the control block. */
export const OP_MATMUL: i32 = 1;
export const OP_ATTENTION: i32 = 2;

export { initTables } from "./common";

/** First byte past the module's static data and tables: the JS allocator starts above it. */
export function heapBase(): usize {
  return TABLES_END;
}

/**
 * Prepares the activation x (T,C) for matmulRows with weights of `type`: F16/BF16 round it into
 * xa (T,C) f32; the quantized types quantize each row through tmp (one row of ggml blocks) and
 * expand it into xa (T,C) i16, ad and ax (see matmulRows). F32 needs nothing (xa = x).
 * x86 != 0: Q8_0 / Q8_1 as ggml-cpu's x86 build quantizes them (quantize.ts).
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
  if (type == T_F32) return;
  if (type == T_F16) {
    roundF16Row(x, xa, T * C);
    return;
  }
  if (type == T_BF16) {
    roundBf16Row(x, xa, T * C);
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
    }
  }
}

@inline
function arg(ctl: usize, i: i32): i32 {
  return load<i32>(ctl + 16 + (<usize>i << 2));
}

/**
 * Thread `tid` of `nth` does its share of the op in the control block at ctl:
 * i32 [0] sequence, [1] done count, [2] op, [3] error flag, [4..] arguments.
 */
export function work(ctl: usize, tid: i32, nth: i32): void {
  const op = load<i32>(ctl, 8);
  if (op == OP_MATMUL) {
    const OC = arg(ctl, 8);
    const r0 = <i32>((<i64>OC * tid) / nth);
    const r1 = <i32>((<i64>OC * (tid + 1)) / nth);
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
      tid,
      nth,
    );
  }
}
