/**
 * safetensors reader: files laid out by hand (and the Rust crate's own test vectors) parse to the
 * right tensors; every dtype converts to float32 exactly (hand-computed values from the OCP FP8
 * spec, IEEE-754 and the integer types); lazy positioned reads on a sparse 20 GB file.
 * Bad input is in safetensors-bad-input.test.ts, the writer in safetensors-write.test.ts.
 */
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  int64ToF32,
  openSafetensors,
  readSafetensors,
  SAFETENSORS_DTYPES,
  type SafetensorsDtype,
} from "../src/formats/safetensors/index.ts";
import { MemorySource } from "../src/util/bytes.ts";
import { isOwlError } from "../src/util/errors.ts";

/** u64 N + header text + data: a file laid out by hand, header padded only if `pad`. */
function layout(header: string, data: ArrayLike<number> = [], pad = 0): Uint8Array {
  const json = new TextEncoder().encode(header + " ".repeat(pad));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(Array.from(data), 8 + json.length);
  return out;
}

function open(bytes: Uint8Array, name = "<memory>") {
  return readSafetensors(new MemorySource(bytes, name));
}

function f32Bytes(values: number[]): number[] {
  return Array.from(new Uint8Array(new Float32Array(values).buffer));
}

const tmp = mkdtempSync(join(tmpdir(), "owl-st-read-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("safetensors reader: hand-built files", () => {
  it("parses the Rust crate's serialization test vector (attn.0, F32 [1,2,3])", () => {
    // Bytes from safetensors/src/tensor.rs test_serialization.
    const bytes = new Uint8Array([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101,
      34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34,
      100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0,
      0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
    ]);
    const f = open(bytes);
    expect(f.headerSize).toBe(64);
    expect(f.dataOffset).toBe(72);
    expect(f.metadata).toEqual({});
    expect(f.tensors).toEqual([
      {
        name: "attn.0",
        dtype: "F32",
        shape: [1, 2, 3],
        begin: 0,
        end: 24,
        fileOffset: 72,
        byteSize: 24,
        nElements: 6,
        file: "<memory>",
      },
    ]);
    expect(Array.from(f.readTensorAsFloat32("attn.0"))).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("parses the crate's empty-file vectors, with and without __metadata__", () => {
    const empty = open(new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]));
    expect(empty.tensors).toEqual([]);
    const withMeta = open(layout('{"__metadata__":{"framework":"pt"}}', [], 5));
    expect(withMeta.metadata).toEqual({ framework: "pt" });
    expect(withMeta.tensors).toEqual([]);
  });

  it("accepts any key order, whitespace, padding, scalars, empty tensors and __metadata__: null", () => {
    // Listed out of offset order and pretty-printed; "s" is a scalar (shape []), "e" is empty.
    const header = `{
      "w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12], "extra": "ignored like serde"},
      "e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [12, 12]},
      "s": {"dtype": "I32", "shape": [], "data_offsets": [0, 4]},
      "__metadata__": null
    }`;
    const data = [7, 0, 0, 0, ...f32Bytes([1.5, -2])];
    const f = open(layout(header, data, 3));
    expect(f.tensors.map((t) => [t.name, t.begin, t.end, t.nElements])).toEqual([
      ["s", 0, 4, 1],
      ["w", 4, 12, 2],
      ["e", 12, 12, 0],
    ]);
    expect(f.metadata).toEqual({});
    expect(Array.from(f.readTensorAsFloat32("s"))).toEqual([7]);
    expect(Array.from(f.readTensorAsFloat32("w"))).toEqual([1.5, -2]);
    expect(f.readTensor("e").length).toBe(0);
    expect(f.readTensorAsFloat32("e").length).toBe(0);
    expect(f.tensor("w")?.fileOffset).toBe(f.dataOffset + 4);
    expect(f.tensor("nope")).toBeUndefined();
  });

  it("reads byte ranges inside a tensor and rejects ranges outside it", () => {
    const f = open(layout('{"t":{"dtype":"U8","shape":[6],"data_offsets":[0,6]}}', [10, 11, 12, 13, 14, 15]));
    expect(Array.from(f.readTensor("t", 2, 3))).toEqual([12, 13, 14]);
    expect(Array.from(f.readTensor("t", 4))).toEqual([14, 15]);
    expect(Array.from(f.readTensor(f.tensor("t")!))).toEqual([10, 11, 12, 13, 14, 15]);
    for (const [o, l] of [
      [5, 2],
      [-1, 1],
      [7, 0],
      [0.5, 1],
    ] as const) {
      expect(() => f.readTensor("t", o, l)).toThrowError(
        expect.objectContaining({ code: "ERR_INVALID_ARGUMENT" }),
      );
    }
    expect(() => f.readTensor("missing")).toThrowError(
      expect.objectContaining({ code: "ERR_TENSOR_NOT_FOUND" }),
    );
  });

  it("keeps metadata keys such as __proto__ as plain data", () => {
    const f = open(
      layout(
        '{"__metadata__":{"__proto__":"x","format":"pt"},"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
        [9],
      ),
    );
    expect(Object.keys(f.metadata)).toEqual(["__proto__", "format"]);
    expect(Object.getOwnPropertyDescriptor(f.metadata, "__proto__")?.value).toBe("x");
    expect(Object.getPrototypeOf(f.metadata)).toBe(Object.prototype);
    expect(Array.from(f.readTensor("__proto__"))).toEqual([9]);
  });

  it("opens a file on disk and closes it", () => {
    const p = join(tmp, "one.safetensors");
    const fd = openSync(p, "w");
    writeSync(fd, layout('{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32Bytes([3, 4]), 2));
    closeSync(fd);
    const f = openSafetensors(p);
    expect(f.name).toBe(p);
    expect(f.tensors[0]!.file).toBe(p);
    expect(Array.from(f.readTensorAsFloat32("t"))).toEqual([3, 4]);
    f.close();
    expect(() => f.readTensor("t")).toThrowError(expect.objectContaining({ code: "ERR_IO" }));
  });
});

/** One-tensor file of `dtype` holding `bytes`, converted to float32. */
function decode(dtype: SafetensorsDtype, bytes: number[], nElements = bytes.length): number[] {
  const header = JSON.stringify({ t: { dtype, shape: [nElements], data_offsets: [0, bytes.length] } });
  return Array.from(open(layout(header, bytes)).readTensorAsFloat32("t"));
}

function le(bits: number, values: (number | bigint)[]): number[] {
  const out = new Uint8Array((values.length * bits) / 8);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => {
    if (bits === 16) dv.setUint16(2 * i, Number(v), true);
    else if (bits === 32) dv.setUint32(4 * i, Number(v), true);
    else dv.setBigUint64(8 * i, BigInt.asUintN(64, BigInt(v)), true);
  });
  return Array.from(out);
}

describe("safetensors dtypes: exact float32 conversion", () => {
  it("knows every dtype of the spec and the current crate", () => {
    for (const d of [
      "F64",
      "F32",
      "F16",
      "BF16",
      "I64",
      "I32",
      "I16",
      "I8",
      "U8",
      "BOOL",
      "F8_E4M3",
      "F8_E5M2",
    ]) {
      expect(SAFETENSORS_DTYPES).toContain(d);
    }
    expect(SAFETENSORS_DTYPES).toEqual(
      expect.arrayContaining([
        "U16",
        "U32",
        "U64",
        "F8_E8M0",
        "F8_E4M3FNUZ",
        "F8_E5M2FNUZ",
        "F4",
        "F6_E2M3",
        "F6_E3M2",
        "C64",
      ]),
    );
  });

  it("F8_E4M3 (OCP E4M3FN): bias 7, no inf, S.1111.111 is NaN, max 448", () => {
    const cases: [number, number][] = [
      [0x00, 0],
      [0x01, 2 ** -9], // min subnormal 0.001 x 2^-6
      [0x07, 7 * 2 ** -9], // max subnormal 0.875 x 2^-6
      [0x08, 2 ** -6], // min normal
      [0x38, 1], // e=7
      [0x3c, 1.5],
      [0x40, 2],
      [0x78, 256], // e=15, m=0: a normal number, not inf
      [0x7e, 448], // max normal 1.75 x 2^8
      [0xfe, -448],
      [0xb8, -1],
    ];
    const got = decode(
      "F8_E4M3",
      cases.map((c) => c[0]),
    );
    expect(got).toEqual(cases.map((c) => c[1]));
    expect(Object.is(decode("F8_E4M3", [0x80])[0], -0)).toBe(true);
    expect(decode("F8_E4M3", [0x7f, 0xff]).every(Number.isNaN)).toBe(true);
  });

  it("F8_E5M2 (OCP): bias 15, S.11111.00 is inf, S.11111.{01,10,11} NaN, max 57344", () => {
    const cases: [number, number][] = [
      [0x01, 2 ** -16], // min subnormal
      [0x03, 0.75 * 2 ** -14], // max subnormal
      [0x04, 2 ** -14], // min normal
      [0x3c, 1],
      [0x3e, 1.5],
      [0x7b, 57344], // max normal 1.75 x 2^15
      [0xfb, -57344],
      [0x7c, Number.POSITIVE_INFINITY],
      [0xfc, Number.NEGATIVE_INFINITY],
    ];
    expect(
      decode(
        "F8_E5M2",
        cases.map((c) => c[0]),
      ),
    ).toEqual(cases.map((c) => c[1]));
    expect(decode("F8_E5M2", [0x7d, 0x7e, 0x7f, 0xfd, 0xfe, 0xff]).every(Number.isNaN)).toBe(true);
    expect(Object.is(decode("F8_E5M2", [0x80])[0], -0)).toBe(true);
  });

  it("FNUZ variants: bias 8 / 16, 0x80 is the only NaN, all other patterns finite", () => {
    expect(decode("F8_E4M3FNUZ", [0x40, 0x7f, 0xff, 0x01, 0x08])).toEqual([1, 240, -240, 2 ** -10, 2 ** -7]);
    expect(decode("F8_E5M2FNUZ", [0x40, 0x7f, 0xff, 0x01, 0x04])).toEqual([
      1,
      57344,
      -57344,
      2 ** -17,
      2 ** -15,
    ]);
    expect(Number.isNaN(decode("F8_E4M3FNUZ", [0x80])[0])).toBe(true);
    expect(Number.isNaN(decode("F8_E5M2FNUZ", [0x80])[0])).toBe(true);
  });

  it("F8_E8M0 (OCP MX scale): 2^(e-127), 0xff NaN", () => {
    const got = decode("F8_E8M0", [127, 128, 0, 254, 255]);
    expect(got.slice(0, 4)).toEqual([1, 2, 2 ** -127, 2 ** 127]);
    expect(Number.isNaN(got[4])).toBe(true);
  });

  it("F16, BF16, F32, F64", () => {
    expect(decode("F16", le(16, [0x3c00, 0xc000, 0x7c00, 0x0001, 0x7bff]), 5)).toEqual([
      1,
      -2,
      Number.POSITIVE_INFINITY,
      2 ** -24,
      65504,
    ]);
    expect(decode("BF16", le(16, [0x3f80, 0xc0a0, 0xff80, 0x0001]), 4)).toEqual([
      1,
      -5,
      Number.NEGATIVE_INFINITY,
      2 ** -133,
    ]);
    expect(Number.isNaN(decode("BF16", le(16, [0x7fc1]), 1)[0])).toBe(true);
    expect(decode("F32", f32Bytes([0.1, -3e38]), 2)).toEqual([Math.fround(0.1), Math.fround(-3e38)]);
    const f64 = new Float64Array([1 / 3, 1e300, 1 + 2 ** -24, 1 + 3 * 2 ** -24, 2 ** -149, -0]);
    const got = decode("F64", Array.from(new Uint8Array(f64.buffer)), 6);
    // Round to nearest, ties to even: 1 + 2^-24 is halfway between 1 and 1 + 2^-23.
    expect(got.slice(0, 5)).toEqual([
      Math.fround(1 / 3),
      Number.POSITIVE_INFINITY,
      1,
      1 + 2 ** -22,
      2 ** -149,
    ]);
    expect(Object.is(got[5], -0)).toBe(true);
  });

  it("integers and BOOL", () => {
    expect(decode("I8", [0x80, 0x7f, 0xff])).toEqual([-128, 127, -1]);
    expect(decode("U8", [0, 255])).toEqual([0, 255]);
    expect(decode("BOOL", [0, 1, 2])).toEqual([0, 1, 1]);
    expect(decode("I16", le(16, [0x8000, 0x7fff]), 2)).toEqual([-32768, 32767]);
    expect(decode("U16", le(16, [0xffff]), 1)).toEqual([65535]);
    // 2^24 + 1 is a tie between 2^24 and 2^24 + 2: even wins; 2^24 + 3 rounds up to 2^24 + 4.
    expect(decode("I32", le(32, [2 ** 24 + 1, 2 ** 24 + 3, 0xffffffff]), 3)).toEqual([
      2 ** 24,
      2 ** 24 + 4,
      -1,
    ]);
    expect(decode("U32", le(32, [0xffffffff]), 1)).toEqual([2 ** 32]);
    expect(decode("I64", le(64, [-1n, -(2n ** 63n), 2n ** 53n + 1n]), 3)).toEqual([-1, -(2 ** 63), 2 ** 53]);
    expect(decode("U64", le(64, [2n ** 64n - 1n]), 1)).toEqual([2 ** 64]);
  });

  it("64-bit integers round once, not through a double", () => {
    // 2^60 + 2^36 + 1: through a double it becomes 2^60 + 2^36 (a float32 tie -> 2^60); rounded
    // directly it is just above the tie, so it goes up to 2^60 + 2^37.
    const x = 2n ** 60n + 2n ** 36n + 1n;
    expect(Math.fround(Number(x))).toBe(2 ** 60);
    expect(decode("I64", le(64, [x, -x]), 2)).toEqual([2 ** 60 + 2 ** 37, -(2 ** 60 + 2 ** 37)]);
    expect(decode("U64", le(64, [x]), 1)).toEqual([2 ** 60 + 2 ** 37]);
    expect(int64ToF32(0, 0x80000000, true)).toBe(-(2 ** 63));
    expect(int64ToF32(0, 0x80000000, false)).toBe(2 ** 63);
  });

  it("sub-byte and complex dtypes read as bytes only", () => {
    const f = open(
      layout(
        '{"p":{"dtype":"F4","shape":[4],"data_offsets":[0,2]},"c":{"dtype":"C64","shape":[1],"data_offsets":[2,10]}}',
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      ),
    );
    expect(Array.from(f.readTensor("p"))).toEqual([1, 2]);
    expect(() => f.readTensorAsFloat32("p")).toThrowError(
      expect.objectContaining({ code: "ERR_UNSUPPORTED" }),
    );
    expect(() => f.readTensorAsFloat32("c")).toThrowError(
      expect.objectContaining({ code: "ERR_UNSUPPORTED" }),
    );
    // 3 F4 values are 12 bits: not a whole number of bytes (the crate's MisalignedSlice).
    expect(() => open(layout('{"p":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', [1, 2]))).toThrowError(
      expect.objectContaining({ code: "ERR_TENSOR_SHAPE" }),
    );
    // F6: 4 values are 24 bits = 3 bytes.
    expect(
      open(layout('{"p":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]}}', [1, 2, 3])).tensors[0]!
        .byteSize,
    ).toBe(3);
  });
});

describe("safetensors lazy reads", () => {
  it("opens a sparse ~20 GB file at once and reads a tensor at its far end", () => {
    const big = 20_000_000_000;
    const header = JSON.stringify({
      __metadata__: { format: "pt" },
      huge: { dtype: "U8", shape: [big], data_offsets: [0, big] },
      tail: { dtype: "F32", shape: [4], data_offsets: [big, big + 16] },
    });
    const prefix = layout(header, [], (8 - (header.length % 8)) % 8);
    const p = join(tmp, "sparse.safetensors");
    const fd = openSync(p, "w");
    try {
      writeSync(fd, prefix);
      ftruncateSync(fd, prefix.length + big + 16);
      writeSync(fd, new Uint8Array(new Float32Array([1, -2, 3.5, 1e-3]).buffer), 0, 16, prefix.length + big);
    } finally {
      closeSync(fd);
    }
    const before = process.memoryUsage();
    const t0 = performance.now();
    const f = openSafetensors(p);
    const openMs = performance.now() - t0;
    try {
      expect(openMs).toBeLessThan(500);
      expect(f.fileSize).toBe(prefix.length + big + 16);
      expect(f.tensor("tail")!.fileOffset).toBe(prefix.length + big);
      expect(Array.from(f.readTensorAsFloat32("tail"))).toEqual([1, -2, 3.5, Math.fround(1e-3)]);
      expect(Array.from(f.readTensor("huge", big - 4, 4))).toEqual([0, 0, 0, 0]);
      // 20 GB cannot be one array: a clear error instead of a RangeError, before any allocation.
      expect(() => f.readTensor("huge")).toThrowError(expect.objectContaining({ code: "ERR_UNSUPPORTED" }));
      expect(() => f.readTensorAsFloat32("huge")).toThrowError(
        expect.objectContaining({ code: "ERR_UNSUPPORTED" }),
      );
      const grew = process.memoryUsage().arrayBuffers - before.arrayBuffers;
      expect(grew).toBeLessThan(16 * 1024 * 1024);
    } finally {
      f.close();
      rmSync(p);
    }
  });
});

describe("safetensors errors are OwlErrors with the file name", () => {
  it("names the source in messages", () => {
    try {
      open(layout('{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', [0, 0]), "model.safetensors");
      expect.unreachable();
    } catch (e) {
      expect(isOwlError(e, "ERR_TENSOR_OUT_OF_BOUNDS")).toBe(true);
      expect((e as Error).message).toMatch(
        /model\.safetensors: tensor "t" ends at byte \d+ .* but the file has \d+ bytes/,
      );
    }
  });
});
