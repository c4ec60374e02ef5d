/**
 * WasmBackend: the KernelBackend (../../backend.ts) over WebAssembly SIMD kernels (assembly/,
 * built to dist/kernels.wasm) and worker threads that share one WebAssembly.Memory.
 *
 * Memory: one shared memory (wasm32, at most 4 GiB) holds weights, KV cache, activations and the
 * kernels' scratch. A bump allocator hands out 64-byte aligned ranges above the module's static
 * data and the thread pool's control block; nothing is freed before dispose(). Growth: alloc (and
 * a kernel needing more scratch than it had, on the first call with a larger shape) may grow the
 * memory. Views from f32()/u8() stay valid after growth (a shared buffer is never detached) but
 * do not cover memory added later: take views after allocating.
 *
 * Threads: matmul rows and attention items are cut into chunks that `threads` threads (the caller
 * plus threads - 1 workers, pool.ts) claim as they go; the other ops are cheap and run on the
 * caller. getRow
 * dequantizes with src/quant's exact kernels (one row per token: not worth a SIMD twin).
 * Not here: the kernels themselves (assembly/), the worker loop (worker.mjs).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { kernelsFor } from "../../../quant/index.ts";
import { assert, OwlError } from "../../../util/errors.ts";
import { GgmlType, type GgmlTypeName, ggmlTypeByName, rowBytes } from "../../../util/ggml-types.ts";
import type { Buf, KernelBackend, RopeParams } from "../../backend.ts";
import { CONTROL_BYTES, MAX_CHUNKS, ThreadPool } from "./pool.ts";
import { WA, type WasmGlobal, type WasmMemory } from "./wasm-api.ts";

export interface WasmBackendOptions {
  /** Threads to split matmul and attention across, the caller included (default: availableParallelism()). */
  threads?: number;
  /** Most bytes the memory may grow to (default and ceiling 4 GiB, the wasm32 limit). */
  maxMemoryBytes?: number;
  /** Microseconds an idle thread spins before it sleeps in Atomics.wait (default 1000). */
  spin?: number;
  /** Multiply-adds below which matmul and attention stay on the caller (default 2^16; 0 in tests). */
  minParallelWork?: number;
  /**
   * How Q8_0 / Q8_1 activation rows are quantized: "x86" (default) as ggml-cpu's x86 build, the
   * build llama.cpp runs here; "ref" with ggml's reference quantizers. As RefBackend's option of
   * the same name (kernels/ref/activations.ts).
   */
  activations?: "x86" | "ref";
  /** Path of another build of the kernels (A/B benchmarks of kernel changes); default dist/kernels.wasm. */
  wasmPath?: string;
  /**
   * Chunk times the caller waits for a chunk a worker holds before it runs the chunk itself
   * (pool.ts; default 1.5; 0 in tests: steal at once, to exercise the protocol).
   */
  stealWait?: number;
  /**
   * Measure, in phases, whether ops run faster with the worker threads or on the caller alone,
   * and use the faster (default true; pool.ts EXPLOIT_MS): another process wanting a core can make
   * the workers a loss.
   */
  adaptive?: boolean;
}

/** The exports of dist/kernels.wasm (assembly/index.ts); pointers are byte offsets. */
export interface KernelExports {
  heapBase(): number;
  initTables(): void;
  prepareAct(
    type: number,
    x: number,
    T: number,
    C: number,
    xa: number,
    ad: number,
    ax: number,
    tmp: number,
    xp: number,
    x86: number,
  ): number;
  matmulRows(
    type: number,
    w: number,
    xa: number,
    ad: number,
    ax: number,
    y: number,
    ys: number,
    T: number,
    C: number,
    OC: number,
    r0: number,
    r1: number,
    scratch: number,
  ): void;
  rowBytes(type: number, C: number): number;
  f16AllFinite(w: number, n: number): number;
  work(ctl: number, tid: number, nth: number): number;
  publish(ctl: number, seq: number, chunks: number): void;
  cancelChunks(ctl: number): number;
  steal(ctl: number): number;
  takeAll(ctl: number): number;
  rmsNorm(x: number, w: number, out: number, T: number, C: number, eps: number): void;
  rope(
    x: number,
    T: number,
    nHeads: number,
    headDim: number,
    pos: number,
    nRot: number,
    freqBase: number,
    freqScale: number,
    neox: number,
    ff: number,
    cache: number,
  ): void;
  softmax(x: number, rows: number, n: number): void;
  attention(
    q: number,
    k: number,
    v: number,
    out: number,
    T: number,
    pos0: number,
    nHead: number,
    nHeadKv: number,
    headDim: number,
    scale: number,
    nSplit: number,
    scratch: number,
    tid: number,
    nth: number,
  ): void;
  add(a: number, b: number, n: number): void;
  addBias(a: number, b: number, T: number, C: number): void;
  swiglu(gate: number, up: number, n: number): void;
  quantizeQ8_0(x: number, dst: number, n: number, x86: number): void;
  quantizeQ8_1(x: number, dst: number, n: number, x86: number): void;
  quantizeQ8K(x: number, dst: number, n: number): void;
  toF16Row(x: number, dst: number, n: number): void;
  toBf16Row(x: number, dst: number, n: number): void;
  OP_MATMUL: WasmGlobal;
  OP_ATTENTION: WasmGlobal;
  OP_ATTENTION_BLOCKS: WasmGlobal;
  partBytes(headDim: number): number;
  attentionMerge(part: number, nBlocks: number, out: number, nHead: number, headDim: number): void;
  attentionBlock(
    q: number,
    k: number,
    v: number,
    part: number,
    j0: number,
    j1: number,
    nHead: number,
    nHeadKv: number,
    headDim: number,
    scale: number,
    scratch: number,
  ): void;
}

const PAGE = 65536;
const MAX_PAGES = 65536;
const ALIGN = 64;
/**
 * Below this many multiply-adds (about 5 µs of one thread) an op runs on the caller alone. Within
 * a forward pass the workers spin between ops, so handing them chunks costs about a microsecond;
 * one that sleeps (or is not scheduled) just takes no chunk.
 */
const MIN_PARALLEL_MACS = 1 << 16;
/** Chunks per thread of a matmul split across threads (fewer when the op is small). */
const CHUNKS_PER_THREAD = 8;
/** Cache positions per block of one-token attention (attentionBlocks). */
const ATTENTION_BLOCK = 64;
/** Least multiply-adds of one chunk of a matmul split across threads. */
const MIN_CHUNK_MACS = 1 << 14;

/** Weight types with a matmul kernel, by ggml type id. */
const MATMUL_TYPES: ReadonlySet<GgmlTypeName> = new Set<GgmlTypeName>([
  "F32",
  "F16",
  "BF16",
  "Q8_0",
  "Q4_0",
  "Q4_1",
  "Q5_0",
  "Q5_1",
  "Q2_K",
  "Q3_K",
  "Q4_K",
  "Q5_K",
  "Q6_K",
]);

/** assembly/types.ts T_F16S: F16 weights without inf/NaN (dotF16S). */
const T_F16S = 0x101;

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/** Path of the built kernels (dist/kernels.wasm at the repository root). */
export const KERNELS_WASM_PATH = fileURLToPath(new URL("../../../../dist/kernels.wasm", import.meta.url));

/**
 * The kernels' bytes, building them first when the file is missing or older than its sources
 * and the AssemblyScript compiler is installed (a checkout after `git pull`, say).
 */
async function loadKernelBytes(wasmPath?: string): Promise<Uint8Array> {
  if (wasmPath !== undefined) {
    if (!existsSync(wasmPath)) throw new OwlError("ERR_FILE_NOT_FOUND", `no kernels build at ${wasmPath}`);
    return readFileSync(wasmPath);
  }
  const path = KERNELS_WASM_PATH;
  const have = existsSync(path);
  let buildError: unknown;
  let stale = !have;
  if (have) {
    const { sourcesMtime } = await import("./build.mjs");
    stale = sourcesMtime() > statSync(path).mtimeMs;
  }
  if (stale) {
    try {
      const { buildKernels } = await import("./build.mjs");
      await buildKernels(path);
    } catch (e) {
      buildError = e;
    }
  }
  if (!existsSync(path)) {
    throw new OwlError(
      "ERR_FILE_NOT_FOUND",
      `the WebAssembly kernels ${path} are missing and could not be built`,
      {
        hint: "run `npm run build:wasm` (it needs the assemblyscript dev dependency: `npm ci`)",
        cause: buildError,
      },
    );
  }
  return readFileSync(path);
}

export class WasmBackend implements KernelBackend {
  readonly name = "wasm";
  readonly threads: number;
  /** The shared memory every buffer lives in. */
  readonly memory: WasmMemory;
  /** The module's exports, for tests and benchmarks. */
  readonly kernels: KernelExports;

  private readonly pool: ThreadPool;
  private readonly maxBytes: number;
  private top: number;
  private scratchBuf: Buf = { offset: 0, bytes: 0 };
  /** The threads' regions (pool.ts setRegions): one buffer, `regionStride` bytes per thread. */
  private regionsBuf: Buf = { offset: 0, bytes: 0 };
  private regionStride = 0;
  private disposed = false;
  private readonly finiteF16 = new Map<number, boolean>();
  private readonly opMatmul: number;
  private readonly opAttention: number;
  private readonly opAttentionBlocks: number;
  private readonly minParallel: number;
  private readonly x86: number;

  private constructor(
    memory: WasmMemory,
    kernels: KernelExports,
    pool: ThreadPool,
    top: number,
    maxBytes: number,
    minParallel: number,
    x86: boolean,
  ) {
    this.minParallel = minParallel;
    this.x86 = x86 ? 1 : 0;
    this.memory = memory;
    this.kernels = kernels;
    this.pool = pool;
    this.threads = pool.threads;
    this.top = top;
    this.maxBytes = maxBytes;
    this.opMatmul = kernels.OP_MATMUL.value as number;
    this.opAttention = kernels.OP_ATTENTION.value as number;
    this.opAttentionBlocks = kernels.OP_ATTENTION_BLOCKS.value as number;
  }

  static async create(options: WasmBackendOptions = {}): Promise<WasmBackend> {
    const threads = options.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `threads must be an integer in 1..64, got ${threads}`);
    }
    const maxBytes = Math.min(options.maxMemoryBytes ?? MAX_PAGES * PAGE, MAX_PAGES * PAGE);
    if (!(maxBytes >= 16 * PAGE)) {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `maxMemoryBytes must be at least ${16 * PAGE}, got ${maxBytes}`,
      );
    }
    const module = await WA.compile(await loadKernelBytes(options.wasmPath));
    const maxPages = Math.floor(maxBytes / PAGE);
    const memory = new WA.Memory({ initial: 16, maximum: maxPages, shared: true });
    const instance = await WA.instantiate(module, { env: { memory } });
    const kernels = instance.exports as unknown as KernelExports;
    const ctl = align(kernels.heapBase());
    if (ctl + PAGE > 16 * PAGE) memory.grow(Math.ceil((ctl + PAGE) / PAGE) - 16);
    kernels.initTables();
    const top = ctl + align(CONTROL_BYTES);
    const pool = await ThreadPool.start(module, memory, kernels, ctl, threads, {
      spin: options.spin ?? 1000,
      stealWait: options.stealWait ?? 1.5,
      adaptive: options.adaptive ?? true,
    });
    return new WasmBackend(
      memory,
      kernels,
      pool,
      top,
      maxPages * PAGE,
      options.minParallelWork ?? MIN_PARALLEL_MACS,
      (options.activations ?? "x86") === "x86",
    );
  }

  // ------------------------------------------------------------------------------- memory

  alloc(bytes: number): Buf {
    this.live();
    if (!Number.isInteger(bytes) || bytes < 0) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `alloc: bytes must be a non-negative integer, got ${bytes}`);
    }
    const offset = align(this.top);
    const end = offset + bytes;
    if (end > this.maxBytes) {
      throw new OwlError(
        "ERR_UNSUPPORTED",
        `the WebAssembly backend needs ${end} bytes of memory but its limit is ${this.maxBytes}`,
        {
          hint: "use a smaller model or quantization (wasm32 memory ends at 4 GiB), or raise maxMemoryBytes",
        },
      );
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return { offset, bytes };
  }

  upload(data: Uint8Array): Buf {
    const buf = this.alloc(data.byteLength);
    this.u8(buf).set(data);
    return buf;
  }

  f32(buf: Buf): Float32Array {
    return new Float32Array(this.memory.buffer, buf.offset, buf.bytes >>> 2);
  }

  u8(buf: Buf): Uint8Array {
    return new Uint8Array(this.memory.buffer, buf.offset, buf.bytes);
  }

  usedBytes(): number {
    return this.top;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.pool.close();
  }

  // ------------------------------------------------------------------------------ kernels

  matmul(type: GgmlTypeName, w: Buf, x: Buf, y: Buf, T: number, C: number, OC: number): void {
    this.live();
    const info = ggmlTypeByName(type);
    if (!info || !MATMUL_TYPES.has(type)) {
      throw new OwlError("ERR_UNSUPPORTED", `matmul has no WebAssembly kernel for weights of type ${type}`, {
        details: { supported: [...MATMUL_TYPES] },
      });
    }
    const k = this.kernels;
    const code = type === "F16" && this.f16Finite(w, OC * C) ? T_F16S : GgmlType[type];
    const actBlock = info.blockSize === 256 ? 256 : info.blockSize === 32 ? 32 : 1;
    if (C % actBlock !== 0 || C <= 0 || OC <= 0 || T <= 0) {
      throw new OwlError(
        "ERR_TENSOR_SHAPE",
        `matmul ${type}: C must be a positive multiple of ${actBlock}, got T=${T} C=${C} OC=${OC}`,
      );
    }
    this.checkBuf("matmul w", w, OC * rowBytes(info, C));
    this.checkBuf("matmul x", x, T * C * 4);
    this.checkBuf("matmul y", y, T * OC * 4);
    if (type === "F32" && x.offset < y.offset + T * OC * 4 && y.offset < x.offset + T * C * 4) {
      // The other types read a quantized copy of x; F32 reads x itself while y is written.
      throw new OwlError("ERR_INVALID_ARGUMENT", "matmul F32: the output y overlaps the input x");
    }
    // Scratch: the prepared activation, then the caller's rows. T > 1: the activation packed in
    // groups of 4 tokens, the rows converted 2 (float) or 4 (quantized) at a time
    // (assembly/matmul-tiles.ts; K-quants expand it first, then pack it into xp).
    let xa = x.offset;
    let ad = 0;
    let ax = 0;
    let tmp = 0;
    let xp = 0;
    let need = 0;
    const T4 = Math.ceil(T / 4) * 4;
    const isFloat = type === "F32" || type === "F16" || type === "BF16";
    const kq = actBlock === 256;
    const nb = C / actBlock;
    // 4 decoded K-quant rows: 8 C bytes of interleaved quants and 4 rows of about 2.75 C.
    const rowScratch = align(21 * C + 1024);
    if (isFloat) {
      if (T > 1) need = align(T4 * Math.ceil(C / 4) * 4 * 4);
      else if (type !== "F32") need = align(C * 4);
    } else {
      const qsBytes = align(T4 * C * 2);
      const dBytes = align(T4 * nb * 4);
      const axBytes = align(kq ? T * (C / 16) * 4 : T4 * nb * 16);
      const tmpBytes = align(kq ? nb * 292 : 4 * nb * 36);
      // K-quants: packed for the tiles or matmul-small.ts (T > 1; Q2_K and Q3_K from one token).
      const xpBytes = kq ? align((T4 / 4) * (8 * C + 144 * nb)) : 0;
      need = qsBytes + dBytes + axBytes + tmpBytes + xpBytes;
    }
    const s = this.scratch(need + rowScratch);
    const base = s.offset;
    if (isFloat) {
      if (need > 0) xa = base;
    } else {
      xa = base;
      ad = xa + align(T4 * C * 2);
      ax = ad + align(T4 * nb * 4);
      tmp = ax + align(kq ? T * (C / 16) * 4 : T4 * nb * 16);
      xp = tmp + align(kq ? nb * 292 : 4 * nb * 36);
    }
    const rows = base + need; // the caller's decoded rows when it runs alone
    // What matmulRows reads: the packed activation xp for the K tiles and matmul-small.ts.
    xa = k.prepareAct(code, x.offset, T, C, xa, ad, ax, tmp, xp, this.x86);
    if (this.threads === 1 || T * C * OC < this.minParallel || OC < this.threads) {
      k.matmulRows(code, w.offset, xa, ad, ax, y.offset, OC * 4, T, C, OC, 0, OC, rows);
      return;
    }
    // A few chunks per thread, of at least MIN_CHUNK_MACS: each claim moves the claim word's
    // cache line between cores (a few hundred ns here), so more chunks cost more than they balance.
    const groups = Math.ceil(OC / 4);
    const chunks = Math.max(
      1,
      Math.min(groups, CHUNKS_PER_THREAD * this.threads, Math.floor((T * C * OC) / MIN_CHUNK_MACS)),
    );
    const p = this.pool;
    // Each thread's region: its decoded rows, then its private copy of a chunk's outputs.
    this.regions(rowScratch, T * Math.ceil(groups / chunks) * 4 * 4);
    p.setInt(0, code);
    p.setInt(1, w.offset);
    p.setInt(2, xa);
    p.setInt(3, ad);
    p.setInt(4, ax);
    p.setInt(5, y.offset);
    p.setInt(6, T);
    p.setInt(7, C);
    p.setInt(8, OC);
    p.run(this.opMatmul, chunks, T * C * OC);
  }

  getRow(type: GgmlTypeName, e: Buf, row: number, C: number, out: Buf, outOffsetFloats = 0): void {
    this.live();
    const info = ggmlTypeByName(type);
    const deq = info && kernelsFor(info).dequantize;
    if (!info || !deq) throw new OwlError("ERR_UNSUPPORTED", `getRow: no dequantizer for type ${type}`);
    const rb = rowBytes(info, C);
    this.checkBuf("getRow e", e, (row + 1) * rb);
    this.checkBuf("getRow out", out, (outOffsetFloats + C) * 4);
    const src = new Uint8Array(this.memory.buffer, e.offset + row * rb, rb);
    const dst = new Float32Array(this.memory.buffer, out.offset + outOffsetFloats * 4, C);
    deq(src, dst, C);
  }

  rmsNorm(x: Buf, w: Buf, out: Buf, T: number, C: number, eps: number): void {
    this.live();
    this.checkBuf("rmsNorm x", x, T * C * 4);
    this.checkBuf("rmsNorm w", w, C * 4);
    this.checkBuf("rmsNorm out", out, T * C * 4);
    this.kernels.rmsNorm(x.offset, w.offset, out.offset, T, C, eps);
  }

  rope(x: Buf, T: number, nHeads: number, headDim: number, positions: Int32Array, p: RopeParams): void {
    this.live();
    if (p.nRot % 2 !== 0 || p.nRot > headDim || p.nRot <= 0) {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `rope: nRot must be even and in 2..headDim (${headDim}), got ${p.nRot}`,
      );
    }
    if (positions.length < T) {
      throw new OwlError("ERR_INVALID_ARGUMENT", `rope: ${T} tokens but ${positions.length} positions`);
    }
    this.checkBuf("rope x", x, T * nHeads * headDim * 4);
    if (p.freqFactors) this.checkBuf("rope freqFactors", p.freqFactors, (p.nRot / 2) * 4);
    const s = this.scratch(align(T * 4) + p.nRot * 4);
    new Int32Array(this.memory.buffer, s.offset, T).set(positions.subarray(0, T));
    this.kernels.rope(
      x.offset,
      T,
      nHeads,
      headDim,
      s.offset,
      p.nRot,
      p.freqBase,
      p.freqScale,
      p.neox ? 1 : 0,
      p.freqFactors ? p.freqFactors.offset : 0,
      s.offset + align(T * 4),
    );
  }

  attention(
    q: Buf,
    kCache: Buf,
    vCache: Buf,
    out: Buf,
    T: number,
    pos0: number,
    nHead: number,
    nHeadKv: number,
    headDim: number,
    scale = Math.fround(1 / Math.fround(Math.sqrt(headDim))), // llama.cpp: 1.0f/sqrtf(n_embd_head)
  ): void {
    this.live();
    if (nHeadKv <= 0 || nHead % nHeadKv !== 0) {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `attention: nHead (${nHead}) must be a multiple of nHeadKv (${nHeadKv})`,
      );
    }
    const n = pos0 + T;
    this.checkBuf("attention q", q, T * nHead * headDim * 4);
    this.checkBuf("attention kCache", kCache, n * nHeadKv * headDim * 4);
    this.checkBuf("attention vCache", vCache, n * nHeadKv * headDim * 4);
    this.checkBuf("attention out", out, T * nHead * headDim * 4);
    const parallel = this.threads > 1 && T * nHead * n * headDim >= this.minParallel;
    if (T === 1 && n >= 2 * ATTENTION_BLOCK) {
      this.attentionBlocks(q, kCache, vCache, out, n, nHead, nHeadKv, headDim, scale, parallel);
      return;
    }
    // Each item sweeps the cache once for a token and a range of query heads: split the heads
    // only when the tokens are too few to keep the threads busy.
    const nSplit = !parallel || T >= 2 * this.threads ? 1 : Math.min(nHead, this.threads);
    const per = align(Math.ceil(nHead / nSplit) * n * 4);
    if (!parallel) {
      const s = this.scratch(per);
      this.kernels.attention(
        q.offset,
        kCache.offset,
        vCache.offset,
        out.offset,
        T,
        pos0,
        nHead,
        nHeadKv,
        headDim,
        scale,
        nSplit,
        s.offset,
        0,
        1,
      );
      return;
    }
    const p = this.pool;
    const items = T * nSplit;
    const chunks = Math.min(items, MAX_CHUNKS);
    this.regions(per, Math.ceil(items / chunks) * Math.ceil(nHead / nSplit) * headDim * 4);
    p.setInt(0, q.offset);
    p.setInt(1, kCache.offset);
    p.setInt(2, vCache.offset);
    p.setInt(3, out.offset);
    p.setInt(4, T);
    p.setInt(5, pos0);
    p.setInt(6, nHead);
    p.setInt(7, nHeadKv);
    p.setInt(8, headDim);
    p.setFloat(9, scale);
    p.setInt(12, nSplit);
    p.run(this.opAttention, chunks, T * nHead * n * headDim);
  }

  /**
   * One token against n >= 2 ATTENTION_BLOCK positions: the positions are cut into blocks of
   * ATTENTION_BLOCK (whatever the thread count, so the result does not depend on it), each block
   * gives every head its partial softmax state (attentionBlock), and the caller merges them.
   */
  private attentionBlocks(
    q: Buf,
    kCache: Buf,
    vCache: Buf,
    out: Buf,
    n: number,
    nHead: number,
    nHeadKv: number,
    headDim: number,
    scale: number,
    parallel: boolean,
  ): void {
    const k = this.kernels;
    const nBlocks = Math.ceil(n / ATTENTION_BLOCK);
    const partAll = align(nBlocks * nHead * k.partBytes(headDim));
    const per = align(nHead * ATTENTION_BLOCK * 4);
    const s = this.scratch(partAll + per);
    const part = s.offset;
    const scores = s.offset + partAll;
    if (!parallel) {
      for (let b = 0; b < nBlocks; b++) {
        const j0 = b * ATTENTION_BLOCK;
        k.attentionBlock(
          q.offset,
          kCache.offset,
          vCache.offset,
          part + b * nHead * k.partBytes(headDim),
          j0,
          Math.min(n, j0 + ATTENTION_BLOCK),
          nHead,
          nHeadKv,
          headDim,
          scale,
          scores,
        );
      }
    } else {
      const p = this.pool;
      const chunks = Math.min(nBlocks, MAX_CHUNKS);
      this.regions(per, Math.ceil(nBlocks / chunks) * nHead * k.partBytes(headDim));
      p.setInt(0, q.offset);
      p.setInt(1, kCache.offset);
      p.setInt(2, vCache.offset);
      p.setInt(3, part);
      p.setInt(4, n);
      p.setInt(5, nHead);
      p.setInt(6, nHeadKv);
      p.setInt(7, headDim);
      p.setFloat(8, scale);
      p.setInt(9, ATTENTION_BLOCK);
      p.run(this.opAttentionBlocks, chunks, nHead * n * headDim);
    }
    k.attentionMerge(part, nBlocks, out.offset, nHead, headDim);
  }

  add(a: Buf, b: Buf, n: number): void {
    this.live();
    this.checkBuf("add a", a, n * 4);
    this.checkBuf("add b", b, n * 4);
    this.kernels.add(a.offset, b.offset, n);
  }

  addBias(a: Buf, b: Buf, T: number, C: number): void {
    this.live();
    this.checkBuf("addBias a", a, T * C * 4);
    this.checkBuf("addBias b", b, C * 4);
    this.kernels.addBias(a.offset, b.offset, T, C);
  }

  swiglu(gate: Buf, up: Buf, n: number): void {
    this.live();
    this.checkBuf("swiglu gate", gate, n * 4);
    this.checkBuf("swiglu up", up, n * 4);
    this.kernels.swiglu(gate.offset, up.offset, n);
  }

  softmax(x: Buf, rows: number, n: number): void {
    this.live();
    this.checkBuf("softmax x", x, rows * n * 4);
    this.kernels.softmax(x.offset, rows, n);
  }

  copy(src: Buf, dst: Buf, n: number, srcOffsetFloats = 0, dstOffsetFloats = 0): void {
    this.live();
    this.checkBuf("copy src", src, (srcOffsetFloats + n) * 4);
    this.checkBuf("copy dst", dst, (dstOffsetFloats + n) * 4);
    const b = new Uint8Array(this.memory.buffer);
    const from = src.offset + srcOffsetFloats * 4;
    b.copyWithin(dst.offset + dstOffsetFloats * 4, from, from + n * 4);
  }

  // ------------------------------------------------------------------------------ helpers

  /**
   * Whether the F16 weights at w (n halves) hold no inf/NaN, so the faster dotF16S applies: each
   * weight buffer is scanned once and remembered by its offset (the allocator never reuses one).
   * NOTE: writing inf/NaN into F16 weights after their first matmul is not supported.
   */
  private f16Finite(w: Buf, n: number): boolean {
    const key = w.offset * 2 ** 20 + (n % 2 ** 20);
    let finite = this.finiteF16.get(key);
    if (finite === undefined) {
      finite = this.kernels.f16AllFinite(w.offset, n) !== 0;
      this.finiteF16.set(key, finite);
    }
    return finite;
  }

  /**
   * Gives each thread a region of `scratchBytes` kernel scratch plus `privateBytes` for a private
   * copy of a chunk's outputs (pool.ts setRegions). A region is only ever touched by its thread
   * (a descheduled worker may still write its old one after the caller moved on), so regions
   * are never shared with other buffers: growing allocates new ones and abandons the old.
   */
  private regions(scratchBytes: number, privateBytes: number): void {
    const need = align(scratchBytes) + align(privateBytes);
    if (need > this.regionStride) {
      const stride = Math.max(need, this.regionStride * 2, 1 << 16);
      this.regionsBuf = this.alloc(stride * this.threads);
      this.regionStride = stride;
    }
    this.pool.setRegions(this.regionsBuf.offset, this.regionStride, align(scratchBytes));
  }

  /** A scratch range of at least `bytes`, reused across calls; grows (by doubling) when too small. */
  private scratch(bytes: number): Buf {
    if (this.scratchBuf.bytes < bytes) {
      this.scratchBuf = this.alloc(Math.max(align(bytes), this.scratchBuf.bytes * 2, 1 << 20));
    }
    return this.scratchBuf;
  }

  private checkBuf(what: string, b: Buf, need: number): void {
    if (b.bytes < need || b.offset + b.bytes > this.top) {
      throw new OwlError(
        "ERR_TENSOR_OUT_OF_BOUNDS",
        `${what}: needs ${need} bytes, the buffer at ${b.offset} has ${b.bytes} (backend memory in use: ${this.top})`,
      );
    }
  }

  private live(): void {
    assert(!this.disposed, "WasmBackend used after dispose()");
  }
}

/** Creates a WasmBackend: compiles (building if needed) the kernels and starts the worker threads. */
export function createWasmBackend(options: WasmBackendOptions = {}): Promise<WasmBackend> {
  return WasmBackend.create(options);
}
