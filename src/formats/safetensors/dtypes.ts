/**
 * safetensors dtypes: names, element sizes, the crate's ordering, and exact conversion to float32.
 *
 * The table follows `enum Dtype` of the Rust crate (safetensors/src/tensor.rs), whose declaration
 * order is "increasing alignment": the writer sorts tensors by that order, descending, then by name.
 * 8-bit floats follow the OCP 8-bit Floating Point Specification (OFP8) rev 1.0:
 *   F8_E4M3 (E4M3FN): bias 7, no infinities, NaN = S.1111.111, max 448, min subnormal 2^-9
 *   F8_E5M2:          bias 15, IEEE-like: S.11111.00 = inf, S.11111.{01,10,11} = NaN, max 57344
 * and the "FNUZ" variants (arXiv 2206.02915): bias 8 / 16, the only NaN is 0x80, no -0, no inf.
 * F8_E8M0 is the OCP MX scale type: 2^(e-127), 0xff = NaN, no sign, no zero.
 * Not here: converting float32 to these types (quant/), sub-byte F4/F6 unpacking (their nibble
 * packing is framework-defined; they read as bytes only).
 */
import { OwlError } from "../../util/errors.ts";
import { f16Table } from "../../util/f16.ts";

export interface SafetensorsDtypeInfo {
  name: SafetensorsDtype;
  /** Bits per element (4 and 6 for the packed MX types, else a multiple of 8). */
  bits: number;
  /** Position in the crate's `enum Dtype`: the writer orders tensors by this, descending. */
  rank: number;
  /** readTensorAsFloat32 supports it. */
  toFloat32: boolean;
}

/** In the crate's declaration order (do not reorder: rank is the index). */
const DTYPE_LIST = [
  ["BOOL", 8, true],
  ["F4", 4, false],
  ["F6_E2M3", 6, false],
  ["F6_E3M2", 6, false],
  ["U8", 8, true],
  ["I8", 8, true],
  ["F8_E5M2", 8, true],
  ["F8_E4M3", 8, true],
  ["F8_E8M0", 8, true],
  ["F8_E4M3FNUZ", 8, true],
  ["F8_E5M2FNUZ", 8, true],
  ["I16", 16, true],
  ["U16", 16, true],
  ["F16", 16, true],
  ["BF16", 16, true],
  ["I32", 32, true],
  ["U32", 32, true],
  ["F32", 32, true],
  ["C64", 64, false],
  ["F64", 64, true],
  ["I64", 64, true],
  ["U64", 64, true],
] as const;

export type SafetensorsDtype = (typeof DTYPE_LIST)[number][0];

const DTYPES: ReadonlyMap<string, SafetensorsDtypeInfo> = new Map(
  DTYPE_LIST.map(([name, bits, toFloat32], rank) => [name, { name, bits, rank, toFloat32 }]),
);

/** Every dtype name the reader accepts, in the crate's order. */
export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = DTYPE_LIST.map(([name]) => name);

export function isSafetensorsDtype(name: string): name is SafetensorsDtype {
  return DTYPES.has(name);
}

/** Facts about a dtype; ERR_UNKNOWN_DTYPE for a name the format does not define. */
export function dtypeInfo(name: string): SafetensorsDtypeInfo {
  const info = DTYPES.get(name);
  if (!info) {
    throw new OwlError(
      "ERR_UNKNOWN_DTYPE",
      `unknown safetensors dtype ${JSON.stringify(name)} (expected one of ${SAFETENSORS_DTYPES.join(", ")})`,
    );
  }
  return info;
}

/**
 * Bytes of `nElements` values of `dtype`, or undefined when the count is not a whole number of
 * bytes (a packed sub-byte type) or the size passes 2^53. Mirrors the crate's `validate`.
 */
export function byteSizeOf(dtype: SafetensorsDtypeInfo, nElements: number): number | undefined {
  if (nElements > Number.MAX_SAFE_INTEGER / dtype.bits) return undefined;
  const bits = nElements * dtype.bits;
  return bits % 8 === 0 ? bits / 8 : undefined;
}

// ---- 8-bit float decoding (OFP8 and FNUZ), as 256-entry tables ----

function table(decode: (b: number) => number): Float32Array {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) t[b] = decode(b);
  return t;
}

/** F8_E4M3 (E4M3FN) bit pattern -> value. */
export function f8e4m3ToF32(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >>> 3) & 0xf;
  const m = b & 0x7;
  if (e === 0xf && m === 0x7) return Number.NaN;
  if (e === 0) return sign * m * 2 ** -9;
  return sign * (1 + m / 8) * 2 ** (e - 7);
}

/** F8_E5M2 bit pattern -> value. */
export function f8e5m2ToF32(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >>> 2) & 0x1f;
  const m = b & 0x3;
  if (e === 0x1f) return m === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  if (e === 0) return sign * m * 2 ** -16;
  return sign * (1 + m / 4) * 2 ** (e - 15);
}

/** F8_E4M3FNUZ bit pattern -> value. */
export function f8e4m3fnuzToF32(b: number): number {
  if (b === 0x80) return Number.NaN;
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >>> 3) & 0xf;
  const m = b & 0x7;
  if (e === 0) return sign * m * 2 ** -10;
  return sign * (1 + m / 8) * 2 ** (e - 8);
}

/** F8_E5M2FNUZ bit pattern -> value. */
export function f8e5m2fnuzToF32(b: number): number {
  if (b === 0x80) return Number.NaN;
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >>> 2) & 0x1f;
  const m = b & 0x3;
  if (e === 0) return sign * m * 2 ** -17;
  return sign * (1 + m / 4) * 2 ** (e - 16);
}

/** F8_E8M0 bit pattern -> value. */
export function f8e8m0ToF32(b: number): number {
  return b === 0xff ? Number.NaN : 2 ** (b - 127);
}

let f8Tables: Record<string, Float32Array> | undefined;

function f8Table(dtype: SafetensorsDtype): Float32Array | undefined {
  f8Tables ??= {
    F8_E4M3: table(f8e4m3ToF32),
    F8_E5M2: table(f8e5m2ToF32),
    F8_E4M3FNUZ: table(f8e4m3fnuzToF32),
    F8_E5M2FNUZ: table(f8e5m2fnuzToF32),
    F8_E8M0: table(f8e8m0ToF32),
  };
  return f8Tables[dtype];
}

// ---- 64-bit integers ----

/**
 * A 64-bit integer (two u32 halves) -> the nearest float32, ties to even. Converting through a
 * double first would round twice and can be off by one float32 step above 2^53.
 */
export function int64ToF32(lo: number, hi: number, signed: boolean): number {
  const negative = signed && hi >= 0x80000000;
  if (!negative && hi < 0x200000) return Math.fround(hi * 2 ** 32 + lo); // < 2^53: exact double
  let m = (BigInt(hi) << 32n) | BigInt(lo);
  if (negative) m = (1n << 64n) - m;
  const bitLength = m.toString(2).length;
  let r: number;
  if (bitLength <= 24) r = Number(m);
  else {
    const shift = BigInt(bitLength - 24);
    let q = m >> shift;
    const rem = m & ((1n << shift) - 1n);
    const half = 1n << (shift - 1n);
    if (rem > half || (rem === half && (q & 1n) === 1n)) q += 1n;
    r = Number(q) * 2 ** Number(shift); // q <= 2^24: exact
  }
  return Math.fround(negative ? -r : r);
}

/**
 * Convert `bytes` holding `nElements` values of `dtype` (little-endian) to float32.
 * Exact where float32 holds the value; otherwise round to nearest even (F64, I32/U32 above 2^24,
 * 64-bit integers). BOOL: any non-zero byte is 1.
 */
export function toFloat32Array(dtype: SafetensorsDtype, bytes: Uint8Array, nElements: number): Float32Array {
  const info = dtypeInfo(dtype);
  if (!info.toFloat32) {
    throw new OwlError("ERR_UNSUPPORTED", `converting ${dtype} tensors to float32 is not supported`, {
      hint: "read the raw bytes with readTensor()",
    });
  }
  const expected = byteSizeOf(info, nElements);
  if (expected !== bytes.byteLength) {
    throw new OwlError(
      "ERR_TENSOR_SHAPE",
      `${nElements} ${dtype} values need ${expected} bytes but ${bytes.byteLength} were given`,
    );
  }
  const out = new Float32Array(nElements);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32":
      new Uint8Array(out.buffer).set(bytes);
      break;
    case "F16":
      for (let i = 0; i < nElements; i++) out[i] = f16Table[bytes[2 * i]! | (bytes[2 * i + 1]! << 8)]!;
      break;
    case "BF16": {
      // Bit copy through an integer view keeps NaN payloads and signed zeros.
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < nElements; i++) u[i] = ((bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16) >>> 0;
      break;
    }
    case "F64":
      for (let i = 0; i < nElements; i++) out[i] = dv.getFloat64(8 * i, true);
      break;
    case "BOOL":
      for (let i = 0; i < nElements; i++) out[i] = bytes[i] === 0 ? 0 : 1;
      break;
    case "U8":
      for (let i = 0; i < nElements; i++) out[i] = bytes[i]!;
      break;
    case "I8":
      for (let i = 0; i < nElements; i++) out[i] = dv.getInt8(i);
      break;
    case "I16":
      for (let i = 0; i < nElements; i++) out[i] = dv.getInt16(2 * i, true);
      break;
    case "U16":
      for (let i = 0; i < nElements; i++) out[i] = dv.getUint16(2 * i, true);
      break;
    case "I32":
      for (let i = 0; i < nElements; i++) out[i] = dv.getInt32(4 * i, true);
      break;
    case "U32":
      for (let i = 0; i < nElements; i++) out[i] = dv.getUint32(4 * i, true);
      break;
    case "I64":
    case "U64": {
      const signed = dtype === "I64";
      for (let i = 0; i < nElements; i++) {
        out[i] = int64ToF32(dv.getUint32(8 * i, true), dv.getUint32(8 * i + 4, true), signed);
      }
      break;
    }
    default: {
      const t = f8Table(dtype);
      if (!t) throw new Error(`internal error: no float32 conversion for ${dtype}`);
      for (let i = 0; i < nElements; i++) out[i] = t[bytes[i]!]!;
    }
  }
  return out;
}
