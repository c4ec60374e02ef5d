/**
 * Typed access to GGUF metadata: getters that check the on-disk type, and small constructors that
 * build GgufValue objects for the writer.
 *
 * Getters return undefined when the key is absent and throw ERR_GGUF_METADATA_TYPE (naming the
 * key, the expected and the found type) when it holds something else. Constructors check ranges
 * (gu8(300) throws ERR_INVALID_ARGUMENT) so a bad value fails where it is made, not at write time.
 * Not here: parsing (read.ts) and serialization (write.ts).
 */
import { OwlError } from "../../util/errors.ts";
import type { GgufArray, GgufMetadata, GgufValue } from "./types.ts";

/** A short description of a value's type for messages: "UINT32", "ARRAY of STRING". */
export function describeGgufType(v: GgufValue): string {
  return v.type === "ARRAY" ? `ARRAY of ${v.value.itemType}` : v.type;
}

function typeError(key: string, expected: string, v: GgufValue): OwlError {
  const found = describeGgufType(v);
  return new OwlError("ERR_GGUF_METADATA_TYPE", `metadata "${key}": expected ${expected}, found ${found}`, {
    details: { key, expected, found },
  });
}

/** A STRING value. */
export function getString(md: GgufMetadata, key: string): string | undefined {
  const v = md.get(key);
  if (v === undefined) return undefined;
  if (v.type !== "STRING") throw typeError(key, "STRING", v);
  return v.value;
}

/**
 * Any integer or float value as a number. 64-bit integers are converted when they are exactly
 * representable (|v| <= 2^53 - 1); larger ones throw ERR_GGUF_METADATA_TYPE (use getBigInt).
 */
export function getNumber(md: GgufMetadata, key: string): number | undefined {
  const v = md.get(key);
  if (v === undefined) return undefined;
  switch (v.type) {
    case "UINT64":
    case "INT64": {
      const n = Number(v.value);
      if (!Number.isSafeInteger(n)) {
        throw new OwlError(
          "ERR_GGUF_METADATA_TYPE",
          `metadata "${key}": expected a number that fits in 53 bits, found ${v.type} ${v.value}`,
          { details: { key, expected: "number", found: v.type, value: v.value } },
        );
      }
      return n;
    }
    case "STRING":
    case "BOOL":
    case "ARRAY":
      throw typeError(key, "a number (any integer or float type)", v);
    default:
      return v.value;
  }
}

/** Any integer value as a bigint (floats are rejected). */
export function getBigInt(md: GgufMetadata, key: string): bigint | undefined {
  const v = md.get(key);
  if (v === undefined) return undefined;
  switch (v.type) {
    case "UINT64":
    case "INT64":
      return v.value;
    case "UINT8":
    case "INT8":
    case "UINT16":
    case "INT16":
    case "UINT32":
    case "INT32":
      return BigInt(v.value);
    default:
      throw typeError(key, "an integer", v);
  }
}

/** A BOOL value. */
export function getBool(md: GgufMetadata, key: string): boolean | undefined {
  const v = md.get(key);
  if (v === undefined) return undefined;
  if (v.type !== "BOOL") throw typeError(key, "BOOL", v);
  return v.value;
}

/** An ARRAY value of any item type. */
export function getArray(md: GgufMetadata, key: string): GgufArray | undefined {
  const v = md.get(key);
  if (v === undefined) return undefined;
  if (v.type !== "ARRAY") throw typeError(key, "ARRAY", v);
  return v.value;
}

/** An ARRAY of STRING. */
export function getStringArray(md: GgufMetadata, key: string): string[] | undefined {
  const a = getArray(md, key);
  if (a === undefined) return undefined;
  if (a.itemType !== "STRING") throw typeError(key, "ARRAY of STRING", md.get(key)!);
  return a.items;
}

/**
 * An ARRAY of any numeric item type, as the typed array it was read into (Float32Array for token
 * scores, Int32Array for token types). 64-bit arrays are converted to a Float64Array when every
 * item is exactly representable, else ERR_GGUF_METADATA_TYPE.
 */
export function getNumberArray(
  md: GgufMetadata,
  key: string,
): Exclude<GgufArray, { itemType: "BOOL" | "STRING" | "ARRAY" }>["items"] | Float64Array | undefined {
  const a = getArray(md, key);
  if (a === undefined) return undefined;
  switch (a.itemType) {
    case "BOOL":
    case "STRING":
    case "ARRAY":
      throw typeError(key, "ARRAY of a numeric type", md.get(key)!);
    case "UINT64":
    case "INT64": {
      const out = new Float64Array(a.items.length);
      for (let i = 0; i < out.length; i++) {
        const n = Number(a.items[i]!);
        if (!Number.isSafeInteger(n)) {
          throw new OwlError(
            "ERR_GGUF_METADATA_TYPE",
            `metadata "${key}"[${i}]: expected a number that fits in 53 bits, found ${a.itemType} ${a.items[i]}`,
            { details: { key, index: i, found: a.itemType } },
          );
        }
        out[i] = n;
      }
      return out;
    }
    default:
      return a.items;
  }
}

// ---- constructors ----------------------------------------------------------------------------

function checkInt(kind: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `${kind} value must be an integer in ${min}..${max}, got ${v}`,
      {
        details: { kind, value: v },
      },
    );
  }
  return v;
}

function checkBig(kind: string, v: bigint | number, signed: boolean): bigint {
  const b = typeof v === "bigint" ? v : Number.isInteger(v) ? BigInt(v) : Number.NaN;
  const ok = typeof b === "bigint" && (signed ? BigInt.asIntN(64, b) === b : BigInt.asUintN(64, b) === b);
  if (!ok) {
    throw new OwlError("ERR_INVALID_ARGUMENT", `${kind} value out of range: ${v}`, {
      details: { kind, value: v },
    });
  }
  return b as bigint;
}

/** STRING. */
export const gstr = (value: string): GgufValue => ({ type: "STRING", value });
/** BOOL. */
export const gbool = (value: boolean): GgufValue => ({ type: "BOOL", value });
/** UINT8. */
export const gu8 = (v: number): GgufValue => ({ type: "UINT8", value: checkInt("UINT8", v, 0, 0xff) });
/** INT8. */
export const gi8 = (v: number): GgufValue => ({ type: "INT8", value: checkInt("INT8", v, -0x80, 0x7f) });
/** UINT16. */
export const gu16 = (v: number): GgufValue => ({ type: "UINT16", value: checkInt("UINT16", v, 0, 0xffff) });
/** INT16. */
export const gi16 = (v: number): GgufValue => ({
  type: "INT16",
  value: checkInt("INT16", v, -0x8000, 0x7fff),
});
/** UINT32. */
export const gu32 = (v: number): GgufValue => ({
  type: "UINT32",
  value: checkInt("UINT32", v, 0, 0xffffffff),
});
/** INT32. */
export const gi32 = (v: number): GgufValue => ({
  type: "INT32",
  value: checkInt("INT32", v, -0x80000000, 0x7fffffff),
});
/** UINT64 (a number must be a safe integer; pass a bigint for more). */
export const gu64 = (v: bigint | number): GgufValue => ({
  type: "UINT64",
  value: checkBig("UINT64", v, false),
});
/** INT64. */
export const gi64 = (v: bigint | number): GgufValue => ({ type: "INT64", value: checkBig("INT64", v, true) });
/** FLOAT32 (rounded to float32 when written). */
export const gf32 = (value: number): GgufValue => ({ type: "FLOAT32", value: Math.fround(value) });
/** FLOAT64. */
export const gf64 = (value: number): GgufValue => ({ type: "FLOAT64", value });

/**
 * ARRAY values. A typed array of the matching kind (and the string, bool and array lists) is used
 * as given, not copied; any other array-like is copied into one.
 */
export const garr = {
  u8: (items: ArrayLike<number>): GgufValue => arr({ itemType: "UINT8", items: typed(Uint8Array, items) }),
  i8: (items: ArrayLike<number>): GgufValue => arr({ itemType: "INT8", items: typed(Int8Array, items) }),
  u16: (items: ArrayLike<number>): GgufValue => arr({ itemType: "UINT16", items: typed(Uint16Array, items) }),
  i16: (items: ArrayLike<number>): GgufValue => arr({ itemType: "INT16", items: typed(Int16Array, items) }),
  u32: (items: ArrayLike<number>): GgufValue => arr({ itemType: "UINT32", items: typed(Uint32Array, items) }),
  i32: (items: ArrayLike<number>): GgufValue => arr({ itemType: "INT32", items: typed(Int32Array, items) }),
  f32: (items: ArrayLike<number>): GgufValue =>
    arr({ itemType: "FLOAT32", items: typed(Float32Array, items) }),
  f64: (items: ArrayLike<number>): GgufValue =>
    arr({ itemType: "FLOAT64", items: typed(Float64Array, items) }),
  u64: (items: ArrayLike<bigint>): GgufValue =>
    arr({ itemType: "UINT64", items: typed(BigUint64Array, items) }),
  i64: (items: ArrayLike<bigint>): GgufValue =>
    arr({ itemType: "INT64", items: typed(BigInt64Array, items) }),
  bools: (items: boolean[]): GgufValue => arr({ itemType: "BOOL", items }),
  strings: (items: string[]): GgufValue => arr({ itemType: "STRING", items }),
  /** An ARRAY of ARRAY (nested): garr.arrays([inner(garr.u8([1, 2])), inner(garr.strings(["a"]))]). */
  arrays: (items: GgufArray[]): GgufValue => arr({ itemType: "ARRAY", items }),
};

function typed<T, A>(ctor: { new (n: number): T; from(a: ArrayLike<A>): T }, items: ArrayLike<A>): T {
  return items instanceof (ctor as unknown as abstract new () => unknown)
    ? (items as unknown as T)
    : ctor.from(items);
}

function arr(value: GgufArray): GgufValue {
  return { type: "ARRAY", value };
}

/** The GgufArray inside an ARRAY value (to nest arrays made by garr). */
export function inner(v: GgufValue): GgufArray {
  if (v.type !== "ARRAY") {
    throw new OwlError("ERR_INVALID_ARGUMENT", `expected an ARRAY value, got ${v.type}`);
  }
  return v.value;
}
