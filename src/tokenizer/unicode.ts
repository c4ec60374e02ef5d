/**
 * The Unicode facts the BPE pre-tokenizers and the WordPiece normalizer need, the way llama.cpp's
 * src/unicode.cpp sees them: per-code-point category flags (unicode_cpt_flags: one general
 * category bit, plus White_Space), simple lowercase (unicode_tolower), "NFD" as llama.cpp does it
 * (unicode_cpts_normalize_nfd keeps only the FIRST code point of the decomposition), code points
 * of a JS string, UTF-8 of code points, and the GPT-2 byte <-> unicode map (unicode_byte_to_utf8).
 *
 * NOTE: llama.cpp ships tables generated from UnicodeData.txt (Unicode 15.1 in the llama.cpp that
 * node-llama-cpp bundles); owl asks V8's ICU through `\p{...}` regexes instead, once per code point,
 * and caches the answer. Node 20's ICU knows Unicode 16 and 17, so the code points first assigned
 * there (LLAMA_UNASSIGNED, from DerivedAge.txt) are forced back to "unassigned", which makes owl
 * agree with llama.cpp on every code point (checked over all 0x110000 against unicode-data.cpp).
 *
 * Not here: the pre-tokenizer regexes (pre-tokenize.ts), merges (bpe.ts), WordPiece (wpm.ts).
 */

/** unicode_cpt_flags bits (llama.cpp src/unicode.h). Exactly one category bit is set per code point. */
export const CptFlag = {
  UNDEFINED: 0x0001,
  NUMBER: 0x0002,
  LETTER: 0x0004,
  SEPARATOR: 0x0008,
  ACCENT_MARK: 0x0010,
  PUNCTUATION: 0x0020,
  SYMBOL: 0x0040,
  CONTROL: 0x0080,
  MASK_CATEGORIES: 0x00ff,
  WHITESPACE: 0x0100,
} as const;

export const MAX_CODEPOINTS = 0x110000;

/**
 * Inclusive [first, last] pairs of the code points first assigned in Unicode 16.0 and 17.0, which
 * llama.cpp's tables treat as unassigned (category Cn, no case or decomposition mapping).
 */
const LLAMA_UNASSIGNED = Int32Array.of(
  0x88f,
  0x88f,
  0x897,
  0x897,
  0xc5c,
  0xc5c,
  0xcdc,
  0xcdc,
  0x1acf,
  0x1add,
  0x1ae0,
  0x1aeb,
  0x1b4e,
  0x1b4f,
  0x1b7f,
  0x1b7f,
  0x1c89,
  0x1c8a,
  0x20c1,
  0x20c1,
  0x2427,
  0x2429,
  0x2b96,
  0x2b96,
  0x31e4,
  0x31e5,
  0xa7cb,
  0xa7cf,
  0xa7d2,
  0xa7d2,
  0xa7d4,
  0xa7d4,
  0xa7da,
  0xa7dc,
  0xa7f1,
  0xa7f1,
  0xfbc3,
  0xfbd2,
  0xfd90,
  0xfd91,
  0xfdc8,
  0xfdce,
  0x105c0,
  0x105f3,
  0x10940,
  0x10959,
  0x10d40,
  0x10d65,
  0x10d69,
  0x10d85,
  0x10d8e,
  0x10d8f,
  0x10ec2,
  0x10ec7,
  0x10ed0,
  0x10ed8,
  0x10efa,
  0x10efc,
  0x11380,
  0x11389,
  0x1138b,
  0x1138b,
  0x1138e,
  0x1138e,
  0x11390,
  0x113b5,
  0x113b7,
  0x113c0,
  0x113c2,
  0x113c2,
  0x113c5,
  0x113c5,
  0x113c7,
  0x113ca,
  0x113cc,
  0x113d5,
  0x113d7,
  0x113d8,
  0x113e1,
  0x113e2,
  0x116d0,
  0x116e3,
  0x11b60,
  0x11b67,
  0x11bc0,
  0x11be1,
  0x11bf0,
  0x11bf9,
  0x11db0,
  0x11ddb,
  0x11de0,
  0x11de9,
  0x11f5a,
  0x11f5a,
  0x13460,
  0x143fa,
  0x16100,
  0x16139,
  0x16d40,
  0x16d79,
  0x16ea0,
  0x16eb8,
  0x16ebb,
  0x16ed3,
  0x16ff2,
  0x16ff6,
  0x187f8,
  0x187ff,
  0x18cff,
  0x18cff,
  0x18d09,
  0x18d1e,
  0x18d80,
  0x18df2,
  0x1cc00,
  0x1ccfc,
  0x1cd00,
  0x1ceb3,
  0x1ceba,
  0x1ced0,
  0x1cee0,
  0x1cef0,
  0x1e5d0,
  0x1e5fa,
  0x1e5ff,
  0x1e5ff,
  0x1e6c0,
  0x1e6de,
  0x1e6e0,
  0x1e6f5,
  0x1e6fe,
  0x1e6ff,
  0x1f6d8,
  0x1f6d8,
  0x1f777,
  0x1f77a,
  0x1f8b2,
  0x1f8bb,
  0x1f8c0,
  0x1f8c1,
  0x1f8d0,
  0x1f8d8,
  0x1fa54,
  0x1fa57,
  0x1fa89,
  0x1fa8a,
  0x1fa8e,
  0x1fa8f,
  0x1fabe,
  0x1fabe,
  0x1fac6,
  0x1fac6,
  0x1fac8,
  0x1fac8,
  0x1facd,
  0x1facd,
  0x1fadc,
  0x1fadc,
  0x1fadf,
  0x1fadf,
  0x1fae9,
  0x1faea,
  0x1faef,
  0x1faef,
  0x1fbcb,
  0x1fbef,
  0x1fbfa,
  0x1fbfa,
  0x2b73a,
  0x2b73f,
  0x2cea2,
  0x2cead,
  0x323b0,
  0x33479,
);

/** True for a code point llama.cpp's Unicode 15.1 tables do not know but newer ICU does. */
export function isNewerThanLlamaTables(cp: number): boolean {
  const r = LLAMA_UNASSIGNED;
  if (cp < r[0]! || cp > r[r.length - 1]!) return false;
  let lo = 0;
  let hi = r.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < r[2 * mid]!) hi = mid - 1;
    else if (cp > r[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * Lazily filled flag table: 0 = not computed yet (every real code point has a category bit).
 * Hot loops read it directly and call cptFlags on a 0.
 */
export const CPT_FLAGS = new Uint16Array(MAX_CODEPOINTS);
const FLAGS = CPT_FLAGS;

const RE_L = /^\p{L}$/u;
const RE_N = /^\p{N}$/u;
const RE_P = /^\p{P}$/u;
const RE_S = /^\p{S}$/u;
const RE_M = /^\p{M}$/u;
const RE_Z = /^\p{Z}$/u;
const RE_CN = /^\p{Cn}$/u;

/** The White_Space property, exactly llama.cpp's unicode_set_whitespace. */
export function isWhitespaceCpt(cp: number): boolean {
  return (
    (cp >= 0x09 && cp <= 0x0d) ||
    cp === 0x20 ||
    cp === 0x85 ||
    cp === 0xa0 ||
    cp === 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    cp === 0x202f ||
    cp === 0x205f ||
    cp === 0x3000
  );
}

function computeFlags(cp: number): number {
  let f: number;
  if (cp >= 0xd800 && cp <= 0xdfff) {
    f = CptFlag.CONTROL; // Cs
  } else if (isNewerThanLlamaTables(cp)) {
    f = CptFlag.UNDEFINED;
  } else {
    const s = String.fromCodePoint(cp);
    if (RE_L.test(s)) f = CptFlag.LETTER;
    else if (RE_N.test(s)) f = CptFlag.NUMBER;
    else if (RE_P.test(s)) f = CptFlag.PUNCTUATION;
    else if (RE_S.test(s)) f = CptFlag.SYMBOL;
    else if (RE_M.test(s)) f = CptFlag.ACCENT_MARK;
    else if (RE_Z.test(s)) f = CptFlag.SEPARATOR;
    else if (RE_CN.test(s)) f = CptFlag.UNDEFINED;
    else f = CptFlag.CONTROL; // Cc, Cf, Co
  }
  if (isWhitespaceCpt(cp)) f |= CptFlag.WHITESPACE;
  FLAGS[cp] = f;
  return f;
}

for (let cp = 0; cp < 0x80; cp++) computeFlags(cp);

/** unicode_cpt_flags_from_cpt: the flags of a code point; 0 for anything past U+10FFFF. */
export function cptFlags(cp: number): number {
  if (cp < 0 || cp >= MAX_CODEPOINTS) return 0;
  const f = FLAGS[cp]!;
  return f !== 0 ? f : computeFlags(cp);
}

const LOWER = new Map<number, number>();

/**
 * unicode_tolower: the simple (one code point) lowercase mapping of UnicodeData.txt, the code point
 * itself when there is none. NOTE: JS toLowerCase() applies the full mapping, which differs only
 * for U+0130 (İ -> "i̇"); its simple mapping is U+0069.
 */
export function toLowerCpt(cp: number): number {
  if (cp < 0x80) return cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp;
  let r = LOWER.get(cp);
  if (r === undefined) {
    if (cp === 0x130) r = 0x69;
    else if ((cp >= 0xd800 && cp <= 0xdfff) || isNewerThanLlamaTables(cp)) r = cp;
    else {
      const s = String.fromCodePoint(cp).toLowerCase();
      const first = s.codePointAt(0)!;
      r = s.length === (first > 0xffff ? 2 : 1) ? first : cp;
    }
    LOWER.set(cp, r);
  }
  return r;
}

const NFD_FIRST = new Map<number, number>();

/**
 * unicode_cpts_normalize_nfd for one code point: the FIRST code point of its canonical
 * decomposition (so "é" becomes "e" and the accent is gone; a Hangul syllable becomes its leading
 * jamo). NOTE: this is what llama.cpp does, not a real NFD.
 */
export function nfdFirstCpt(cp: number): number {
  if (cp < 0xc0) return cp;
  let r = NFD_FIRST.get(cp);
  if (r === undefined) {
    r =
      (cp >= 0xd800 && cp <= 0xdfff) || isNewerThanLlamaTables(cp)
        ? cp
        : String.fromCodePoint(cp).normalize("NFD").codePointAt(0)!;
    NFD_FIRST.set(cp, r);
  }
  return r;
}

/** True when the string has a UTF-16 surrogate unit that is not half of a valid pair. */
export function hasLoneSurrogate(text: string): boolean {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

/**
 * Replace every lone surrogate with U+FFFD. llama.cpp works on UTF-8 bytes and owl's input is a JS
 * string; a lone surrogate has no UTF-8 form, and TextEncoder turns it into U+FFFD's bytes
 * (EF BF BD), so owl tokenizes it as U+FFFD: the same ids as llama.cpp given TextEncoder's bytes.
 */
export function replaceLoneSurrogates(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/** Reusable growable buffers for code points of a text. */
export class CodepointBuffer {
  cps = new Int32Array(256);
  /** UTF-16 offset of each code point (n + 1 entries), only filled when `astral` is true. */
  u16 = new Int32Array(0);
  n = 0;
  /** The text had code points above U+FFFF, so code point and UTF-16 indices differ. */
  astral = false;
  /** The text had lone surrogates (loaded as U+FFFD). */
  loneSurrogates = false;

  /** Code points of a string; a lone surrogate becomes U+FFFD (see replaceLoneSurrogates). */
  load(text: string): void {
    const len = text.length;
    if (this.cps.length < len) this.cps = new Int32Array(Math.max(len, this.cps.length * 2));
    const cps = this.cps;
    let n = 0;
    let astral = false;
    let lone = false;
    for (let i = 0; i < len; i++) {
      const c = text.charCodeAt(i);
      if (c < 0xd800 || c > 0xdfff) {
        cps[n++] = c;
        continue;
      }
      if (c <= 0xdbff && i + 1 < len) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          cps[n++] = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
          i++;
          astral = true;
          continue;
        }
      }
      cps[n++] = 0xfffd;
      lone = true;
    }
    this.n = n;
    this.astral = astral;
    this.loneSurrogates = lone;
    if (astral) {
      if (this.u16.length < n + 1) this.u16 = new Int32Array(Math.max(n + 1, this.u16.length * 2));
      const u16 = this.u16;
      let o = 0;
      for (let k = 0; k < n; k++) {
        u16[k] = o;
        o += cps[k]! > 0xffff ? 2 : 1;
      }
      u16[n] = o;
    }
  }

  /** Drop arrays grown past `keep` entries. */
  shrink(keep: number): void {
    if (this.cps.length > keep) this.cps = new Int32Array(256);
    if (this.u16.length > keep) this.u16 = new Int32Array(0);
    this.n = 0;
    this.astral = false;
  }

  /** UTF-16 offset of code point index k. */
  offset(k: number): number {
    return this.astral ? this.u16[k]! : k;
  }
}

/** Append the UTF-8 bytes of code point `cp` to `out` at `o`; returns the new offset. */
export function putUtf8(out: Uint8Array, o: number, cp: number): number {
  if (cp < 0x80) {
    out[o] = cp;
    return o + 1;
  }
  if (cp < 0x800) {
    out[o] = 0xc0 | (cp >> 6);
    out[o + 1] = 0x80 | (cp & 0x3f);
    return o + 2;
  }
  if (cp < 0x10000) {
    out[o] = 0xe0 | (cp >> 12);
    out[o + 1] = 0x80 | ((cp >> 6) & 0x3f);
    out[o + 2] = 0x80 | (cp & 0x3f);
    return o + 3;
  }
  out[o] = 0xf0 | (cp >> 18);
  out[o + 1] = 0x80 | ((cp >> 12) & 0x3f);
  out[o + 2] = 0x80 | ((cp >> 6) & 0x3f);
  out[o + 3] = 0x80 | (cp & 0x3f);
  return o + 4;
}

/**
 * GPT-2's bytes_to_unicode (llama.cpp unicode_byte_to_utf8_map): printable Latin-1 bytes map to
 * themselves, the other 68 bytes to U+0100.. in byte order. Every image is one UTF-16 unit.
 */
export const BYTE_TO_UNICODE: Uint16Array = (() => {
  const map = new Uint16Array(256);
  const direct = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) map[b] = direct(b) ? b : 256 + n++;
  return map;
})();

/** The inverse of BYTE_TO_UNICODE, indexed by UTF-16 unit; -1 where a unit is not an image. */
export const UNICODE_TO_BYTE: Int16Array = (() => {
  const inv = new Int16Array(0x200).fill(-1);
  for (let b = 0; b < 256; b++) inv[BYTE_TO_UNICODE[b]!] = b;
  return inv;
})();

const encoder = new TextEncoder();

/** UTF-8 bytes of a string (lone surrogates become U+FFFD, as TextEncoder does). */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}
