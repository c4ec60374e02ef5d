/**
 * The BPE merge loop over one word's symbols, in the order of llama.cpp's llm_bigram_bpe queue:
 * always the adjacent pair with the lowest merge rank, the leftmost one among equal ranks.
 *
 * - mergeShort rescans a short array after each merge (fast for ordinary words).
 * - mergeLong keeps one list of pair positions per rank ("buckets") and a small heap of the ranks
 *   that have pending pairs. Pairs of one rank are merged left to right in one sequential sweep,
 *   which keeps the memory access pattern linear on a 10 MB word (a heap over millions of pairs
 *   spends its time in cache misses). Stale entries are skipped by checking the pair's current
 *   rank. A merge never creates a pair of the rank being merged (its left half would have to
 *   equal the merged symbol), so a sweep only pauses when a merge creates a pair of a LOWER rank
 *   (possible in hand-edited merge lists); that rank is merged first, as the queue would.
 *
 * Both write the surviving symbols to `out` through `emit`. Not here: the merge table (bpe.ts).
 */

export const NO_PAIR = -1;

/** What the merge loops need from the merge table. */
export interface PairTable {
  /** Slot of the pair (left, right), or NO_PAIR. */
  find(left: number, right: number): number;
  readonly rank: Int32Array;
  readonly merged: Int32Array;
}

const NO_RANK = 0x7fffffff;

/** Scratch for mergeShort, sized for `max` symbols. */
export class ShortScratch {
  readonly rank: Int32Array;
  readonly slot: Int32Array;
  constructor(readonly max: number) {
    this.rank = new Int32Array(max);
    this.slot = new Int32Array(max);
  }
}

/** Merge sym[0..n) (n <= scratch.max) in place; returns the number of symbols left. */
export function mergeShort(table: PairTable, sym: Int32Array, n: number, scratch: ShortScratch): number {
  const rk = scratch.rank;
  const sl = scratch.slot;
  for (let i = 0; i + 1 < n; i++) {
    const s = table.find(sym[i]!, sym[i + 1]!);
    sl[i] = s;
    rk[i] = s === NO_PAIR ? NO_RANK : table.rank[s]!;
  }
  while (n > 1) {
    let best = 0;
    let bestRank = rk[0]!;
    for (let i = 1; i + 1 < n; i++) {
      if (rk[i]! < bestRank) {
        bestRank = rk[i]!;
        best = i;
      }
    }
    if (bestRank === NO_RANK) break;
    sym[best] = table.merged[sl[best]!]!;
    for (let i = best + 1; i + 1 < n; i++) {
      sym[i] = sym[i + 1]!;
      rk[i] = rk[i + 1]!;
      sl[i] = sl[i + 1]!;
    }
    n--;
    if (best > 0) {
      const s = table.find(sym[best - 1]!, sym[best]!);
      sl[best - 1] = s;
      rk[best - 1] = s === NO_PAIR ? NO_RANK : table.rank[s]!;
    }
    if (best + 1 < n) {
      const s = table.find(sym[best]!, sym[best + 1]!);
      sl[best] = s;
      rk[best] = s === NO_PAIR ? NO_RANK : table.rank[s]!;
    }
  }
  return n;
}

/** Pending left positions of pairs of one rank. */
class Bucket {
  pos = new Int32Array(8);
  head = 0;
  n = 0;
  sorted = true;
  push(p: number): void {
    if (this.n === this.pos.length) {
      if (this.head > this.n >> 1) {
        this.pos.copyWithin(0, this.head, this.n);
        this.n -= this.head;
        this.head = 0;
      } else {
        const b = new Int32Array(this.pos.length * 2);
        b.set(this.pos.subarray(0, this.n));
        this.pos = b;
      }
    }
    if (this.n > this.head && p < this.pos[this.n - 1]!) this.sorted = false;
    this.pos[this.n++] = p;
  }
}

/** A binary min-heap of distinct ranks. */
class RankHeap {
  a = new Int32Array(16);
  n = 0;
  push(r: number): void {
    if (this.n === this.a.length) {
      const b = new Int32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    const a = this.a;
    let i = this.n++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= r) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = r;
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a[--this.n]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= this.n) break;
      if (c + 1 < this.n && a[c + 1]! < a[c]!) c++;
      if (a[c]! >= last) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/**
 * Merge sym[0..n) of a long word. Dead symbols are set to NO_PAIR; the survivors are linked by
 * the returned `next` array, starting at 0.
 */
export function mergeLong(table: PairTable, sym: Int32Array, n: number): Int32Array {
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : NO_PAIR;
  }
  const buckets = new Map<number, Bucket>();
  const ranks = new RankHeap();
  const rankOf = table.rank;
  /** Queue the pair starting at p (if it has a rank); returns its rank or NO_RANK. */
  const queue = (p: number): number => {
    const q = next[p]!;
    if (q === NO_PAIR) return NO_RANK;
    const s = table.find(sym[p]!, sym[q]!);
    if (s === NO_PAIR) return NO_RANK;
    const r = rankOf[s]!;
    let b = buckets.get(r);
    if (b === undefined) {
      b = new Bucket();
      buckets.set(r, b);
      ranks.push(r);
    }
    b.push(p);
    return r;
  };
  for (let i = 0; i + 1 < n; i++) queue(i);

  while (ranks.n > 0) {
    const r = ranks.pop();
    const b = buckets.get(r)!;
    if (!b.sorted) {
      b.pos.subarray(b.head, b.n).sort();
      b.sorted = true;
    }
    let paused = false;
    while (b.head < b.n) {
      const p = b.pos[b.head++]!;
      const left = sym[p]!;
      if (left === NO_PAIR) continue;
      const q = next[p]!;
      if (q === NO_PAIR) continue;
      const s = table.find(left, sym[q]!);
      if (s === NO_PAIR || rankOf[s] !== r) continue;
      // merge q into p
      sym[p] = table.merged[s]!;
      sym[q] = NO_PAIR;
      const qq = next[q]!;
      next[p] = qq;
      if (qq !== NO_PAIR) prev[qq] = p;
      const r1 = queue(p);
      const pp = prev[p]!;
      const r2 = pp === NO_PAIR ? NO_RANK : queue(pp);
      if (r1 < r || r2 < r) {
        paused = true;
        break;
      }
    }
    if (paused && b.head < b.n) ranks.push(r);
    else buckets.delete(r);
  }
  return next;
}
