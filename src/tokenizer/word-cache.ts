/**
 * A bounded cache from a word (a run of code points) to its token ids, for the BPE codec's hot
 * path. Keys are compared as code points straight from the pre-tokenizer's buffer, so a lookup
 * allocates no string; entries live in typed arrays with open addressing. Two generations give an
 * approximate LRU: when the young table is full it becomes the old one (the previous old one is
 * dropped), and a hit in the old table is copied into the young one.
 *
 * Not here: what a word is (pre-tokenize.ts) or how it is merged (bpe.ts).
 */

class Generation {
  readonly slots: Int32Array; // entry index + 1, 0 = empty
  readonly mask: number;
  readonly hash: Int32Array;
  readonly keyOff: Int32Array;
  readonly keyLen: Int32Array;
  readonly valOff: Int32Array;
  readonly valLen: Int32Array;
  keys: Int32Array;
  vals: Int32Array;
  count = 0;
  keyUsed = 0;
  valUsed = 0;

  constructor(readonly capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.slots = new Int32Array(size);
    this.mask = size - 1;
    this.hash = new Int32Array(capacity);
    this.keyOff = new Int32Array(capacity);
    this.keyLen = new Int32Array(capacity);
    this.valOff = new Int32Array(capacity);
    this.valLen = new Int32Array(capacity);
    this.keys = new Int32Array(capacity * 8);
    this.vals = new Int32Array(capacity * 4);
  }

  clear(): void {
    this.slots.fill(0);
    this.count = 0;
    this.keyUsed = 0;
    this.valUsed = 0;
  }

  find(h: number, cps: Int32Array, a: number, b: number): number {
    const len = b - a;
    for (let i = h & this.mask; ; i = (i + 1) & this.mask) {
      const e = this.slots[i]! - 1;
      if (e < 0) return -1;
      if (this.hash[e] !== h || this.keyLen[e] !== len) continue;
      const keys = this.keys;
      let o = this.keyOff[e]!;
      let k = a;
      while (k < b && keys[o] === cps[k]) {
        o++;
        k++;
      }
      if (k === b) return e;
    }
  }

  /** Add an entry (the caller checked `full` first); returns its index. */
  add(
    h: number,
    key: Int32Array,
    a: number,
    b: number,
    ids: ArrayLike<number>,
    i0: number,
    n: number,
  ): number {
    const e = this.count++;
    const len = b - a;
    if (this.keyUsed + len > this.keys.length) this.keys = grow(this.keys, this.keyUsed + len);
    if (this.valUsed + n > this.vals.length) this.vals = grow(this.vals, this.valUsed + n);
    this.keys.set(key.subarray(a, b), this.keyUsed);
    for (let j = 0; j < n; j++) this.vals[this.valUsed + j] = ids[i0 + j]!;
    this.hash[e] = h;
    this.keyOff[e] = this.keyUsed;
    this.keyLen[e] = len;
    this.valOff[e] = this.valUsed;
    this.valLen[e] = n;
    this.keyUsed += len;
    this.valUsed += n;
    let i = h & this.mask;
    while (this.slots[i] !== 0) i = (i + 1) & this.mask;
    this.slots[i] = e + 1;
    return e;
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }
}

function grow(a: Int32Array, need: number): Int32Array {
  const b = new Int32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/** Hash of cps[a..b). */
export function hashCodepoints(cps: Int32Array, a: number, b: number): number {
  let h = 0x811c9dc5 ^ (b - a);
  for (let k = a; k < b; k++) h = Math.imul(h ^ cps[k]!, 0x01000193);
  return Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) ^ (h >>> 12);
}

export class WordCache {
  private young: Generation;
  private old: Generation;

  /** `capacity` words per generation. */
  constructor(capacity: number) {
    this.young = new Generation(capacity);
    this.old = new Generation(capacity);
  }

  /**
   * Append the cached ids of cps[a..b) to `out` and return true, or return false on a miss.
   * `h` is hashCodepoints(cps, a, b).
   */
  get(h: number, cps: Int32Array, a: number, b: number, out: number[]): boolean {
    const y = this.young;
    const e = y.find(h, cps, a, b);
    if (e >= 0) {
      const vals = y.vals;
      const end = y.valOff[e]! + y.valLen[e]!;
      for (let j = y.valOff[e]!; j < end; j++) out.push(vals[j]!);
      return true;
    }
    const o = this.old;
    const eo = o.find(h, cps, a, b);
    if (eo < 0) return false;
    const start = out.length;
    const vals = o.vals;
    const end = o.valOff[eo]! + o.valLen[eo]!;
    for (let j = o.valOff[eo]!; j < end; j++) out.push(vals[j]!);
    // promote, copying from `out`: making room may recycle the old generation
    this.set(h, cps, a, b, out, start, out.length - start);
    return true;
  }

  /** Remember ids[i0..i0+n) for cps[a..b). */
  set(h: number, cps: Int32Array, a: number, b: number, ids: ArrayLike<number>, i0: number, n: number): void {
    this.room().add(h, cps, a, b, ids, i0, n);
  }

  private room(): Generation {
    if (this.young.full) {
      const t = this.old;
      this.old = this.young;
      t.clear();
      this.young = t;
    }
    return this.young;
  }
}
