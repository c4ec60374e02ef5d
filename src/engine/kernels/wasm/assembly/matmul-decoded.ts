// K-quant rows decoded for the T > 1 tiles (matmul-tiles.ts): each weight row is decoded once into
// a per-thread scratch (EO i16 quants with their offsets applied, integer sub-block scales and
// mins, float block scales), then dotted with every token's activation. The integer sums and their
// scaling are the same as the fused single-token dots (matmul-kquants.ts) and ggml's vec_dot:
// decoding once instead of once per token is what this buys.
//
// K-quant rows are stored with each quant already times its sub-block scale (|q sc| <= 4096 fits
// i16), so their dots need no per-16 multiply; the integer block sums are unchanged.
//
// Decoded row (C values) at `dec`: q i16[C] EO | sc i32[C/16] (scale per 16 values) |
// fd f32[C/32 or C/256] (block scale; C/32 slots kept for the layout) | mn i32[C/16] (min per 16) |
// md f32[C/256] (dmin). decodedBytes(C) bytes in all.
import { f16t } from "./common";
import { T_Q2_K, T_Q3_K, T_Q4_K, T_Q5_K } from "./types";

@inline export function scOff(C: i32): usize {
  return <usize>C << 1;
}
@inline export function fdOff(C: i32): usize {
  return scOff(C) + (<usize>(C >> 4) << 2);
}
@inline export function mnOff(C: i32): usize {
  return fdOff(C) + (<usize>(C >> 5) << 2);
}
@inline export function mdOff(C: i32): usize {
  return mnOff(C) + (<usize>(C >> 4) << 2);
}

/** Bytes of a decoded row of C values. */
export function decodedBytes(C: i32): i32 {
  return <i32>mdOff(C) + ((C >> 8) << 2) + 64;
}

@inline
function store4(q: usize, a: v128, b: v128, c: v128, d: v128): void {
  v128.store(q, a);
  v128.store(q, b, 16);
  v128.store(q, c, 32);
  v128.store(q, d, 48);
}

/** Decodes row w (C values stored as K-quant `type`) into dec. */
export function decodeRow(type: i32, w: usize, C: i32, dec: usize): void {
  const m = i16x8.splat(15);
  const fd = dec + fdOff(C);
  const mn = dec + mnOff(C);
  const sc = dec + scOff(C);
  const md = dec + mdOff(C);
  const nb = C >> 8;
  const m3 = i16x8.splat(3);
  for (let b = 0; b < nb; b++) {
    const qb = dec + (<usize>b << 9);
    const scb = sc + (<usize>b << 6);
    const mnb = mn + (<usize>b << 6);
    const bo = <usize>b << 2;
    if (type == T_Q2_K) {
      const p = w + <usize>b * 84;
      for (let c = 0; c < 2; c++) {
        const q0 = v128.load(p + 16 + 32 * c);
        const q1 = v128.load(p + 32 + 32 * c);
        for (let k = 0; k < 4; k++) {
          const sh = 2 * k;
          store4(
            qb + (<usize>(4 * c + k) << 6),
            v128.and(i16x8.shr_u(q0, sh), m3),
            v128.and(i16x8.shr_u(q0, 8 + sh), m3),
            v128.and(i16x8.shr_u(q1, sh), m3),
            v128.and(i16x8.shr_u(q1, 8 + sh), m3),
          );
        }
      }
      for (let j = 0; j < 16; j++) {
        const s = <i32>load<u8>(p + j);
        store<i32>(scb + (<usize>j << 2), s & 15);
        store<i32>(mnb + (<usize>j << 2), s >> 4);
      }
      store<f32>(fd + bo, f16t(load<u16>(p, 80)));
      store<f32>(md + bo, f16t(load<u16>(p, 82)));
    } else if (type == T_Q3_K) {
      const p = w + <usize>b * 110;
      const m4 = i16x8.splat(4);
      const h0 = v128.load(p);
      const h1 = v128.load(p, 16);
      const h0lo = i16x8.shl(h0, 8);
      const h1lo = i16x8.shl(h1, 8);
      for (let c = 0; c < 2; c++) {
        const q0 = v128.load(p + 32 + 32 * c);
        const q1 = v128.load(p + 48 + 32 * c);
        for (let k = 0; k < 4; k++) {
          const sh = 2 * k;
          const hs = 4 * c + k + 6;
          store4(
            qb + (<usize>(4 * c + k) << 6),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(q0, sh), m3), v128.and(i16x8.shr_u(h0lo, hs), m4)), m4),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(q0, 8 + sh), m3), v128.and(i16x8.shr_u(h0, hs), m4)), m4),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(q1, sh), m3), v128.and(i16x8.shr_u(h1lo, hs), m4)), m4),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(q1, 8 + sh), m3), v128.and(i16x8.shr_u(h1, hs), m4)), m4),
          );
        }
      }
      const s = p + 96;
      for (let j = 0; j < 16; j++) {
        const lo = j < 8 ? <i32>load<u8>(s + j) & 0xf : <i32>load<u8>(s + j - 8) >> 4;
        store<i32>(scb + (<usize>j << 2), (lo | (((<i32>load<u8>(s + 8 + (j & 3)) >> (2 * (j >> 2))) & 3) << 4)) - 32);
      }
      store<f32>(fd + bo, f16t(load<u16>(p, 108)));
    } else if (type == T_Q4_K || type == T_Q5_K) {
      const five = type == T_Q5_K;
      const p = w + <usize>b * (five ? 176 : 144);
      const qs = p + (five ? 48 : 16);
      const m16 = i16x8.splat(16);
      const h0 = v128.load(p, 16);
      const h1 = v128.load(p, 32);
      const h0lo = i16x8.shl(h0, 4);
      const h1lo = i16x8.shl(h1, 4);
      const zero = i16x8.splat(0);
      for (let j = 0; j < 4; j++) {
        const c0 = v128.load(qs + 32 * j);
        const c1 = v128.load(qs + 32 * j + 16);
        const g0 = 2 * j;
        const g1 = 2 * j + 1;
        store4(
          qb + (<usize>g0 << 6),
          v128.or(v128.and(c0, m), five ? v128.and(i16x8.shr_u(h0lo, g0), m16) : zero),
          v128.or(v128.and(i16x8.shr_u(c0, 8), m), five ? v128.and(i16x8.shr_u(h0, g0 + 4), m16) : zero),
          v128.or(v128.and(c1, m), five ? v128.and(i16x8.shr_u(h1lo, g0), m16) : zero),
          v128.or(v128.and(i16x8.shr_u(c1, 8), m), five ? v128.and(i16x8.shr_u(h1, g0 + 4), m16) : zero),
        );
        store4(
          qb + (<usize>g1 << 6),
          v128.or(v128.and(i16x8.shr_u(c0, 4), m), five ? v128.and(i16x8.shr_u(h0lo, g1), m16) : zero),
          v128.or(i16x8.shr_u(c0, 12), five ? v128.and(i16x8.shr_u(h0, g1 + 4), m16) : zero),
          v128.or(v128.and(i16x8.shr_u(c1, 4), m), five ? v128.and(i16x8.shr_u(h1lo, g1), m16) : zero),
          v128.or(i16x8.shr_u(c1, 12), five ? v128.and(i16x8.shr_u(h1, g1 + 4), m16) : zero),
        );
      }
      // get_scale_min_k4: 8 scales and 8 mins of 6 bits, each for 32 values (two entries of 16).
      const s = p + 4;
      for (let j = 0; j < 8; j++) {
        const scv =
          j < 4 ? <i32>load<u8>(s + j) & 63 : (<i32>load<u8>(s + j + 4) & 0xf) | ((<i32>load<u8>(s + j - 4) >> 6) << 4);
        const mnv =
          j < 4 ? <i32>load<u8>(s + j + 4) & 63 : (<i32>load<u8>(s + j + 4) >> 4) | ((<i32>load<u8>(s + j) >> 6) << 4);
        store<i32>(scb + (<usize>(2 * j) << 2), scv);
        store<i32>(scb + (<usize>(2 * j + 1) << 2), scv);
        store<i32>(mnb + (<usize>(2 * j) << 2), mnv);
        store<i32>(mnb + (<usize>(2 * j + 1) << 2), mnv);
      }
      store<f32>(fd + bo, f16t(load<u16>(p)));
      store<f32>(md + bo, f16t(load<u16>(p, 2)));
    } else {
      // Q6_K
      const p = w + <usize>b * 210;
      const m48 = i16x8.splat(0x30);
      const e32 = i16x8.splat(32);
      for (let c = 0; c < 2; c++) {
        const qh0 = v128.load(p + 128 + 32 * c);
        const qh1 = v128.load(p + 144 + 32 * c);
        const qh0lo = i16x8.shl(qh0, 4);
        const qh1lo = i16x8.shl(qh1, 4);
        for (let k = 0; k < 4; k++) {
          const qlp = p + 64 * c + 32 * (k & 1);
          const ql0 = v128.load(qlp);
          const ql1 = v128.load(qlp, 16);
          const ns = 4 * (k >> 1);
          const hs = 2 * k;
          store4(
            qb + (<usize>(4 * c + k) << 6),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql0, ns), m), v128.and(i16x8.shr_u(qh0lo, hs), m48)), e32),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql0, 8 + ns), m), v128.and(i16x8.shr_u(qh0, 4 + hs), m48)), e32),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql1, ns), m), v128.and(i16x8.shr_u(qh1lo, hs), m48)), e32),
            i16x8.sub(v128.or(v128.and(i16x8.shr_u(ql1, 8 + ns), m), v128.and(i16x8.shr_u(qh1, 4 + hs), m48)), e32),
          );
        }
      }
      for (let j = 0; j < 16; j++) store<i32>(scb + (<usize>j << 2), <i32>load<i8>(p + 192 + j));
      store<f32>(fd + bo, f16t(load<u16>(p, 208)));
    }
    // Quants times their sub-block scale: sub-block j is the 16 EO values at qb + 32 j.
    for (let j = 0; j < 16; j++) {
      const sv = i16x8.splat(<i16>load<i32>(scb + (<usize>j << 2)));
      const qj = qb + (<usize>j << 5);
      v128.store(qj, i16x8.mul(v128.load(qj), sv));
      v128.store(qj, i16x8.mul(v128.load(qj, 16), sv), 16);
    }
  }
}

/** Whether K-quant `type` takes the decoded path's min terms. */
export function decodedHasMin(type: i32): bool {
  return type == T_Q2_K || type == T_Q4_K || type == T_Q5_K;
}
