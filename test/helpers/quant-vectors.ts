/**
 * The reference-vector checks every quantization family runs, table-driven over the rows of one
 * type: quantize gives ggml's bytes, dequantize ggml's floats (bit for bit), the activation
 * quantizer ggml's activation bytes, and dot ggml's scalar result (bit for bit), its SIMD result
 * (within 1e-5 relative) and its naive twin (within dotTolerance).
 */
import { expect, it } from "vitest";
import type { QuantKernels } from "../../src/quant/kernels.ts";
import {
  assertDotsClose,
  assertSameBits,
  assertSameBytes,
  assertSameFloat,
  dotScale,
  dotTolerance,
} from "./quant-assert.ts";
import type { QuantTypeVectors } from "./quant-fixtures.ts";

export interface VectorCheckOptions {
  /** Kernels of the activation type (its quantize is checked; its dequantize gives the scale). */
  activation?: QuantKernels;
  /** Dequantizer of the activation when `activation` has none (Q8_K). */
  activationDequantize?: (src: Uint8Array, dst: Float32Array, n: number) => void;
  /** Tolerance against ggml's SIMD `result` as a function of it and the scale (default 1e-5 rel). */
  simdTolerance?: (result: number, scale: number) => number;
  /** Float32 accumulation steps of `dot` for 256 values (blocks; 1 for plain floats). */
  steps: number;
}

export function checkVectors(t: QuantTypeVectors, k: QuantKernels, opt: VectorCheckOptions): void {
  const n = 256;
  const rowLabel = (i: number) => `${t.name} row ${i} (${t.rows[i]!.distribution})`;

  if (k.quantize) {
    const quantize = k.quantize;
    it("quantize gives ggml's bytes (undefined bytes excepted)", () => {
      for (const [i, r] of t.rows.entries()) {
        const q = new Uint8Array(r.quant.length).fill(0xa5); // every byte must be written
        quantize(r.input, q, n);
        assertSameBytes(q, r.quant, `${rowLabel(i)} quantize`, r.undefinedBytes);
      }
    });
  }

  if (k.dequantize) {
    const dequantize = k.dequantize;
    it("dequantize gives ggml's floats bit for bit", () => {
      for (const [i, r] of t.rows.entries()) {
        const y = new Float32Array(n);
        dequantize(r.quant, y, n);
        // The sign of zero is undefined only where ggml's bytes are (README quirk 2).
        assertSameBits(y, r.dequant, `${rowLabel(i)} dequantize`, r.undefinedBytes.length > 0);
      }
    });
  }

  const dotRows = t.rows.filter((r) => r.dot);
  if (!k.dot || dotRows.length === 0) return;
  const { dot, dotRef } = k;
  const actQuantize = opt.activation?.quantize;
  const actDequantize = opt.activation?.dequantize ?? opt.activationDequantize;

  if (actQuantize) {
    it(`quantizing the activation to ${k.dotActivation} gives ggml's bytes`, () => {
      for (const r of dotRows) {
        const q = new Uint8Array(r.dot!.activationQuant.length);
        actQuantize(r.dot!.activation, q, n);
        assertSameBytes(q, r.dot!.activationQuant, `${rowLabel(r.index)} activation`);
      }
    });
  }

  it("dot equals ggml's scalar result bit for bit", () => {
    for (const r of dotRows) {
      assertSameFloat(
        dot(r.quant, r.dot!.activationQuant, n),
        r.dot!.resultScalar,
        `${rowLabel(r.index)} dot`,
      );
    }
  });

  it("dot is close to ggml's SIMD result and to dotRef", () => {
    expect(actDequantize, "an activation dequantizer").toBeDefined();
    const fast: number[] = [];
    const ref: number[] = [];
    const simd: number[] = [];
    const tolRef: number[] = [];
    const tolSimd: number[] = [];
    for (const r of dotRows) {
      const w = new Float32Array(n);
      const a = new Float32Array(n);
      k.dequantize!(r.quant, w, n);
      actDequantize!(r.dot!.activationQuant, a, n);
      const scale = dotScale(w, a);
      fast.push(dot(r.quant, r.dot!.activationQuant, n));
      ref.push(dotRef!(r.quant, r.dot!.activationQuant, n));
      simd.push(r.dot!.result);
      tolRef.push(dotTolerance(opt.steps, scale));
      tolSimd.push(opt.simdTolerance?.(r.dot!.result, scale) ?? 1e-5 * Math.abs(r.dot!.result));
    }
    assertDotsClose(fast, ref, tolRef, `${t.name} dot vs dotRef`);
    assertDotsClose(fast, simd, tolSimd, `${t.name} dot vs ggml SIMD result`);
  });
}
