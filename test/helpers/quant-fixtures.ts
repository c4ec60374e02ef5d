/**
 * Reader for the ggml quantization reference vectors (test/fixtures/quant, see its README):
 * per type, 8 rows of 256 values with input floats, quantized bytes, dequantized floats and,
 * for vec_dot types, the activation row (floats and quantized) and ggml's dot results.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fixturePath } from "./fixtures.ts";

interface Span {
  file: string;
  offset: number;
  length: number;
}

interface RawRow {
  index: number;
  distribution: string;
  input: Span;
  quant: Span;
  dequant: Span;
  quant_undefined_bytes?: [number, number][];
  quant_chunk?: Span;
  dequant_chunk?: Span;
  dot?: {
    activation_type: string;
    activation: Span;
    activation_quant: Span;
    result: number;
    result_bits: string;
    result_scalar: number;
    result_scalar_bits: string;
  };
}

export interface QuantRow {
  index: number;
  distribution: string;
  input: Float32Array;
  quant: Uint8Array;
  dequant: Float32Array;
  /** [offset, length] byte ranges of `quant` that ggml left undefined (IQ4_NL zeros row). */
  undefinedBytes: [number, number][];
  quantChunk?: Uint8Array;
  dequantChunk?: Float32Array;
  dot?: {
    activationType: string;
    activation: Float32Array;
    activationQuant: Uint8Array;
    /** ggml's CPU (SIMD) kernel result. */
    result: number;
    /** ggml's scalar *_generic kernel result, compiled without FMA contraction. */
    resultScalar: number;
  };
}

export interface QuantTypeVectors {
  name: string;
  ggmlType: number;
  blockSize: number;
  bytesPerBlock: number;
  rows: QuantRow[];
}

const INDEX = "quant/index.json";

export function quantFixturesAvailable(): boolean {
  return fixturePath(INDEX) !== undefined;
}

let cache: Map<string, QuantTypeVectors> | undefined;

function bitsToF32(hex: string): number {
  const f = new Float32Array(1);
  new Uint32Array(f.buffer)[0] = Number.parseInt(hex, 16);
  return f[0]!;
}

/** All types in the reference set, keyed by our type name (Q4_K, IQ4_NL, ...). */
export function loadQuantVectors(): Map<string, QuantTypeVectors> {
  if (cache) return cache;
  const indexPath = fixturePath(INDEX);
  if (!indexPath) throw new Error(`missing fixture ${INDEX}`);
  const dir = dirname(indexPath);
  const index = JSON.parse(readFileSync(indexPath, "utf8")) as {
    types: Record<string, { ggml_type: number; block_size: number; bytes_per_block: number; rows: RawRow[] }>;
  };
  const files = new Map<string, Buffer>();
  const bytes = (s: Span): Uint8Array => {
    let b = files.get(s.file);
    if (!b) {
      b = readFileSync(join(dir, s.file));
      files.set(s.file, b);
    }
    return new Uint8Array(b.subarray(s.offset, s.offset + s.length));
  };
  const floats = (s: Span): Float32Array => new Float32Array(bytes(s).buffer.slice(0));
  cache = new Map();
  for (const [name, t] of Object.entries(index.types)) {
    cache.set(name, {
      name,
      ggmlType: t.ggml_type,
      blockSize: t.block_size,
      bytesPerBlock: t.bytes_per_block,
      rows: t.rows.map((r) => ({
        index: r.index,
        distribution: r.distribution,
        input: floats(r.input),
        quant: bytes(r.quant),
        dequant: floats(r.dequant),
        undefinedBytes: r.quant_undefined_bytes ?? [],
        ...(r.quant_chunk ? { quantChunk: bytes(r.quant_chunk) } : {}),
        ...(r.dequant_chunk ? { dequantChunk: floats(r.dequant_chunk) } : {}),
        ...(r.dot
          ? {
              dot: {
                activationType: r.dot.activation_type,
                activation: floats(r.dot.activation),
                activationQuant: bytes(r.dot.activation_quant),
                result: bitsToF32(r.dot.result_bits),
                resultScalar: bitsToF32(r.dot.result_scalar_bits),
              },
            }
          : {}),
      })),
    });
  }
  return cache;
}
