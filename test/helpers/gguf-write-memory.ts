/**
 * Child process of test/gguf-write-memory.test.ts (run with --expose-gc): writes a GGUF of 40
 * tensors of 4 MiB each, allocating each tensor's bytes only when the writer asks for it, and
 * prints the peak of process.memoryUsage().arrayBuffers seen right after a forced GC at every
 * request. A writer that keeps earlier tensors alive would show a peak near the 160 MiB total.
 */
import { join } from "node:path";
import { writeGguf } from "../../src/formats/gguf/index.ts";
import type { GgufTensorInput } from "../../src/formats/gguf/types.ts";
import { GgmlType, requireGgmlType } from "../../src/util/ggml-types.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");
const dir = process.argv[2]!;
const TENSOR_BYTES = 4 << 20;
const f32 = requireGgmlType(GgmlType.F32);
gc();
const baseline = process.memoryUsage().arrayBuffers;
let peak = 0;
const tensors: GgufTensorInput[] = Array.from({ length: 40 }, (_, i) => ({
  name: `t${i}`,
  dims: [1024, TENSOR_BYTES / 4 / 1024],
  type: f32,
  data: () => {
    gc();
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
    const b = new Uint8Array(TENSOR_BYTES);
    b.fill(i);
    return b;
  },
}));
await writeGguf(join(dir, "big.gguf"), { metadata: new Map(), tensors });
gc();
peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline);
process.stdout.write(`${JSON.stringify({ peak, total: 40 * TENSOR_BYTES, tensor: TENSOR_BYTES })}\n`);
