/**
 * The SentencePiece-style ("llama") codec, as llama.cpp's llm_tokenizer_spm_session: split the
 * (whitespace-escaped) text into characters, then repeatedly merge the adjacent pair whose
 * concatenation is the best-scoring token (ties: the leftmost pair), with a priority queue, so a
 * fragment of n characters costs O(n log n). Characters that never became a token are emitted as
 * byte tokens "<0xXX>" (byte fallback).
 *
 * Works on JS strings: a symbol is a range of UTF-16 code units holding one code point, which is
 * the same segmentation as llama.cpp's UTF-8 characters, so the merges are the same.
 * Not here: the space prefix, special tokens, BOS/EOS (tokenizer.ts), decoding of control tokens.
 */
import { OwlError } from "../util/errors.ts";
import { type ModelCodec, TokenAttr, type Vocab } from "./types.ts";

const ESCAPED_SPACE = "\u2581";
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** The priority queue of bigrams the merge loop uses (try_add_bigram pushes, the loop pops). */
interface BigramQueue {
  reset(): void;
  /** Queue the pair (left, right) whose text is token `id` and `size` code units long. */
  push(id: number, left: number, right: number, size: number): void;
  /** Take the best entry into left/right/size; false when empty. */
  pop(): boolean;
  left: number;
  right: number;
  size: number;
}

/**
 * A max-heap of bigrams (llm_bigram_spm): higher priority first, then smaller left index
 * (llm_bigram_spm::comparator, with priority = the token's score). Entries are packed four doubles
 * each (priority, left, right, size) in one array and the heap is 4-ary, so a sift touches one or
 * two cache lines per level.
 */
class BigramHeap implements BigramQueue {
  h = new Float64Array(4 * 256);
  length = 0;
  left = 0;
  right = 0;
  size = 0;
  private readonly priority: Float32Array;

  constructor(priority: Float32Array) {
    this.priority = priority;
  }

  reset(): void {
    this.length = 0;
  }

  shrink(): void {
    this.length = 0;
    if (this.h.length > 4 * 256) this.h = new Float64Array(4 * 256);
  }

  push(id: number, left: number, right: number, size: number): void {
    if (4 * (this.length + 1) > this.h.length) {
      const g = new Float64Array(this.h.length * 2);
      g.set(this.h);
      this.h = g;
    }
    const h = this.h;
    const score = this.priority[id]!;
    let i = this.length++;
    while (i > 0) {
      const p = (i - 1) >> 2;
      const ps = h[4 * p]!;
      if (!(score > ps || (score === ps && left < h[4 * p + 1]!))) break;
      h[4 * i] = ps;
      h[4 * i + 1] = h[4 * p + 1]!;
      h[4 * i + 2] = h[4 * p + 2]!;
      h[4 * i + 3] = h[4 * p + 3]!;
      i = p;
    }
    h[4 * i] = score;
    h[4 * i + 1] = left;
    h[4 * i + 2] = right;
    h[4 * i + 3] = size;
  }

  pop(): boolean {
    if (this.length === 0) return false;
    const h = this.h;
    this.left = h[1]! | 0;
    this.right = h[2]! | 0;
    this.size = h[3]! | 0;
    const n = --this.length;
    if (n === 0) return true;
    // Sift the last entry down from the root.
    const o = 4 * n;
    const score = h[o]!;
    const left = h[o + 1]!;
    const right = h[o + 2]!;
    const size = h[o + 3]!;
    let i = 0;
    for (;;) {
      const c0 = 4 * i + 1;
      if (c0 >= n) break;
      let best = c0;
      let bs = h[4 * c0]!;
      let bl = h[4 * c0 + 1]!;
      const end = Math.min(c0 + 4, n);
      for (let c = c0 + 1; c < end; c++) {
        const cs = h[4 * c]!;
        if (cs > bs || (cs === bs && h[4 * c + 1]! < bl)) {
          best = c;
          bs = cs;
          bl = h[4 * c + 1]!;
        }
      }
      if (!(bs > score || (bs === score && bl < left))) break;
      h[4 * i] = bs;
      h[4 * i + 1] = bl;
      h[4 * i + 2] = h[4 * best + 2]!;
      h[4 * i + 3] = h[4 * best + 3]!;
      i = best;
    }
    h[4 * i] = score;
    h[4 * i + 1] = left;
    h[4 * i + 2] = right;
    h[4 * i + 3] = size;
    return true;
  }
}

/**
 * The same order as BigramHeap, for long segments (a run of one character, a long line of
 * digits): scores become dense ranks, each rank has a FIFO of entries, and an entry whose left is
 * not past its FIFO's tail goes to a heap (overflow). The merge loop mostly pushes entries of a
 * given score in left order, so almost every push and pop is O(1) and touches memory in order,
 * where a heap of millions of entries costs a cache miss per level.
 */
class RunQueue implements BigramQueue {
  left = 0;
  right = 0;
  size = 0;
  private readonly rankOf: Int32Array;
  private readonly head: Int32Array;
  private readonly tail: Int32Array;
  private readonly queued: Uint8Array;
  // Ranks with a (possibly emptied) FIFO, as a binary min-heap.
  private ranks = new Int32Array(64);
  private nRanks = 0;
  // FIFO nodes: left, right, size, next; freed nodes are chained through `next`.
  private nodes = new Int32Array(4 * 1024);
  private used = 0;
  private free = -1;
  private readonly overflow: BigramHeap;

  constructor(scores: Float32Array) {
    const order = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]!);
    this.rankOf = new Int32Array(scores.length);
    let rank = -1;
    let last = Number.NaN;
    for (const id of order) {
      if (scores[id] !== last) {
        rank++;
        last = scores[id]!;
      }
      this.rankOf[id] = rank;
    }
    this.head = new Int32Array(rank + 1).fill(-1);
    this.tail = new Int32Array(rank + 1).fill(-1);
    this.queued = new Uint8Array(rank + 1);
    this.overflow = new BigramHeap(Float32Array.from(this.rankOf, (r) => -r));
  }

  reset(): void {
    for (let i = 0; i < this.nRanks; i++) {
      const r = this.ranks[i]!;
      this.head[r] = -1;
      this.tail[r] = -1;
      this.queued[r] = 0;
    }
    this.nRanks = 0;
    this.used = 0;
    this.free = -1;
    this.overflow.reset();
  }

  /** Drop the storage a huge segment grew (the queue must be empty). */
  shrink(): void {
    this.reset();
    if (this.nodes.length > 4 * 1024) this.nodes = new Int32Array(4 * 1024);
    this.overflow.shrink();
  }

  private node(left: number, right: number, size: number): number {
    let k = this.free;
    if (k >= 0) this.free = this.nodes[4 * k + 3]!;
    else {
      k = this.used++;
      if (4 * this.used > this.nodes.length) {
        const g = new Int32Array(this.nodes.length * 2);
        g.set(this.nodes);
        this.nodes = g;
      }
    }
    const o = 4 * k;
    this.nodes[o] = left;
    this.nodes[o + 1] = right;
    this.nodes[o + 2] = size;
    this.nodes[o + 3] = -1;
    return k;
  }

  private pushRank(r: number): void {
    if (this.nRanks === this.ranks.length) {
      const g = new Int32Array(this.ranks.length * 2);
      g.set(this.ranks);
      this.ranks = g;
    }
    const a = this.ranks;
    let i = this.nRanks++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= r) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = r;
    this.queued[r] = 1;
  }

  private popRank(): void {
    const a = this.ranks;
    this.queued[a[0]!] = 0;
    const n = --this.nRanks;
    const r = a[n]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && a[c + 1]! < a[c]!) c++;
      if (a[c]! >= r) break;
      a[i] = a[c]!;
      i = c;
    }
    if (n > 0) a[i] = r;
  }

  push(id: number, left: number, right: number, size: number): void {
    const r = this.rankOf[id]!;
    const t = this.tail[r]!;
    if (t === -1) {
      const k = this.node(left, right, size);
      this.head[r] = k;
      this.tail[r] = k;
      if (this.queued[r] === 0) this.pushRank(r);
    } else if (left >= this.nodes[4 * t]!) {
      // NOTE: an equal left is a duplicate or a stale entry; their order among themselves is free.
      const k = this.node(left, right, size);
      this.nodes[4 * t + 3] = k;
      this.tail[r] = k;
    } else this.overflow.push(id, left, right, size);
  }

  pop(): boolean {
    while (this.nRanks > 0 && this.head[this.ranks[0]!] === -1) this.popRank();
    const haveFifo = this.nRanks > 0;
    const o = this.overflow;
    if (!haveFifo && o.length === 0) return false;
    let fromFifo = haveFifo;
    if (haveFifo && o.length > 0) {
      const r = this.ranks[0]!;
      const ro = -o.h[0]!;
      fromFifo = r < ro || (r === ro && this.nodes[4 * this.head[r]!]! <= o.h[1]!);
    }
    if (!fromFifo) return o.pop() && this.take(o);
    const r = this.ranks[0]!;
    const k = this.head[r]!;
    const nodes = this.nodes;
    this.left = nodes[4 * k]!;
    this.right = nodes[4 * k + 1]!;
    this.size = nodes[4 * k + 2]!;
    const next = nodes[4 * k + 3]!;
    this.head[r] = next;
    if (next === -1) this.tail[r] = -1;
    nodes[4 * k + 3] = this.free;
    this.free = k;
    return true;
  }

  private take(o: BigramHeap): boolean {
    this.left = o.left;
    this.right = o.right;
    this.size = o.size;
    return true;
  }
}

/** Symbols of scratch space kept between calls (a segment longer than this grows it for the call). */
const SCRATCH_KEEP = 1 << 16;

/** Multiplier of the polynomial string hash H(s + c) = H(s) * B + c (mod 2^32). */
const B = 0x01000193;

function mix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b);
  return h ^ (h >>> 16);
}

/**
 * Token text -> id (the last id for a duplicated text, like vocab.tokenToId) in an open-addressing
 * table keyed by the polynomial hash of the UTF-16 code units, so a range of the input can be
 * looked up from its hash without building a string.
 */
class TokenTable {
  private readonly slotId: Int32Array;
  private readonly slotHash: Int32Array;
  private readonly mask: number;
  private readonly codes: Uint16Array;
  private readonly off: Int32Array;
  private readonly len: Int32Array;

  constructor(tokens: readonly string[]) {
    const n = tokens.length;
    let total = 0;
    for (const t of tokens) total += t.length;
    this.codes = new Uint16Array(total);
    this.off = new Int32Array(n);
    this.len = new Int32Array(n);
    let cap = 16;
    while (cap < 2 * n) cap *= 2;
    this.mask = cap - 1;
    this.slotId = new Int32Array(cap).fill(-1);
    this.slotHash = new Int32Array(cap);
    let o = 0;
    for (let id = 0; id < n; id++) {
      const t = tokens[id]!;
      this.off[id] = o;
      this.len[id] = t.length;
      let h = 0;
      for (let i = 0; i < t.length; i++) {
        const c = t.charCodeAt(i);
        this.codes[o + i] = c;
        h = (Math.imul(h, B) + c) | 0;
      }
      o += t.length;
      let slot = mix(h) & this.mask;
      for (;;) {
        const other = this.slotId[slot]!;
        if (other < 0 || (this.slotHash[slot] === h && this.same(other, t, 0, t.length))) break;
        slot = (slot + 1) & this.mask;
      }
      this.slotId[slot] = id;
      this.slotHash[slot] = h;
    }
  }

  private same(id: number, text: string, s: number, n: number): boolean {
    if (this.len[id] !== n) return false;
    const o = this.off[id]!;
    for (let i = 0; i < n; i++) if (this.codes[o + i] !== text.charCodeAt(s + i)) return false;
    return true;
  }

  /** Like same(), reading every " " of the text as "▁". */
  private sameEscaped(id: number, text: string, s: number, n: number): boolean {
    if (this.len[id] !== n) return false;
    const o = this.off[id]!;
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(s + i);
      if (this.codes[o + i] !== (c === 0x20 ? 0x2581 : c)) return false;
    }
    return true;
  }

  /** The id of text[s, s + n) with its spaces read as "▁", whose hash is h, or -1. */
  find(text: string, s: number, n: number, h: number): number {
    let slot = mix(h) & this.mask;
    for (;;) {
      const id = this.slotId[slot]!;
      if (id < 0) return -1;
      if (this.slotHash[slot] === h && this.sameEscaped(id, text, s, n)) return id;
      slot = (slot + 1) & this.mask;
    }
  }
}

/** llama_vocab::byte_to_token for SPM: "<0xXX>", else the byte itself as a token (ASCII only). */
function byteTokens(vocab: Vocab): Int32Array {
  const out = new Int32Array(256).fill(-1);
  const hex = "0123456789ABCDEF";
  for (let b = 0; b < 256; b++) {
    const id = vocab.tokenToId.get(`<0x${hex[b >> 4]}${hex[b & 15]}>`);
    if (id !== undefined) out[b] = id;
    else if (b < 0x80) out[b] = vocab.tokenToId.get(String.fromCharCode(b)) ?? -1;
  }
  return out;
}

/** Byte of a "<0xXX>" token (llama_vocab::impl::token_to_byte), or -1. */
function tokenByte(text: string): number {
  if (text.length !== 6 || !text.startsWith("<0x") || text[5] !== ">") return -1;
  const v = Number.parseInt(text.slice(3, 5), 16);
  return Number.isNaN(v) ? -1 : v;
}

/**
 * Adjacent code-point pairs that occur inside some token, in an open-addressing table: the value
 * is the id of the two-character token, -2 when the pair only occurs inside longer tokens; a
 * lookup of an absent pair gives -1.
 */
class PairTable {
  private readonly a: Int32Array;
  private readonly b: Int32Array;
  private readonly v: Int32Array;
  private readonly mask: number;

  constructor(vocab: Vocab) {
    const pairs: number[] = [];
    for (const text of vocab.tokens) {
      let prev = -1;
      for (const ch of text) {
        const cp = ch.codePointAt(0)!;
        if (prev >= 0) pairs.push(prev, cp);
        prev = cp;
      }
    }
    let cap = 16;
    while (cap < pairs.length) cap *= 2; // load factor <= 1/2 (pairs holds two numbers a pair)
    this.mask = cap - 1;
    this.a = new Int32Array(cap).fill(-1);
    this.b = new Int32Array(cap);
    this.v = new Int32Array(cap);
    for (let i = 0; i < pairs.length; i += 2) this.insert(pairs[i]!, pairs[i + 1]!, -2);
    for (let id = 0; id < vocab.tokens.length; id++) {
      const text = vocab.tokens[id]!;
      const cp0 = text.codePointAt(0);
      if (cp0 === undefined) continue;
      const w0 = cp0 > 0xffff ? 2 : 1;
      const cp1 = text.codePointAt(w0);
      if (cp1 === undefined || w0 + (cp1 > 0xffff ? 2 : 1) !== text.length) continue;
      // Duplicated texts resolve to the id tokenToId holds, as every other lookup does.
      this.insert(cp0, cp1, vocab.tokenToId.get(text) ?? id);
    }
  }

  private slot(x: number, y: number): number {
    let h = (Math.imul(x, 0x9e3779b1) ^ Math.imul(y, 0x85ebca6b)) & this.mask;
    while (this.a[h] !== -1 && (this.a[h] !== x || this.b[h] !== y)) h = (h + 1) & this.mask;
    return h;
  }

  private insert(x: number, y: number, value: number): void {
    const h = this.slot(x, y);
    if (this.a[h] === -1) {
      this.a[h] = x;
      this.b[h] = y;
      this.v[h] = value;
    } else if (value !== -2) this.v[h] = value;
  }

  get(x: number, y: number): number {
    const h = this.slot(x, y);
    return this.a[h] === -1 ? -1 : this.v[h]!;
  }
}

/**
 * The SPM codec of a "llama" vocabulary. encodeFragment escapes spaces to "▁" and tokenizes; the
 * caller adds the space prefix (llama.cpp does it in llama_vocab::impl::tokenize).
 *
 * NOTE: speed. llama.cpp runs one priority queue over the whole fragment. Two adjacent characters
 * whose pair occurs in no token can never end up in the same token, so no merge crosses that
 * boundary and the text between such boundaries (about a word) can be merged on its own: the same
 * merges in the same order, but a small heap that stays in cache. Token lookups hash ranges of the
 * input (TokenTable) instead of building strings.
 */
class SpmCodec implements ModelCodec {
  private readonly vocab: Vocab;
  private readonly scores: Float32Array;
  private readonly table: TokenTable;
  private readonly bytes: Int32Array;
  private readonly pairs: PairTable;
  /** Single-character tokens of the BMP by code unit (-1: none); astral ones in singleAstral. */
  private readonly singleBmp: Int32Array;
  private readonly singleAstral = new Map<number, number>();
  private readonly pieces: (Uint8Array | undefined)[];
  private readonly heap: BigramHeap;
  /** The queue of the segment being merged (heap or runQueue). */
  private queue: BigramQueue;
  private runQueue: RunQueue | undefined;
  /** Segments of more symbols than this use the RunQueue. */
  private readonly longSegment: number;
  // Symbols of the current segment (llm_symbol, plus the code point, hash and B^len), grown on demand.
  private start = new Int32Array(64);
  private len = new Int32Array(64);
  private cps = new Int32Array(64);
  private hash = new Int32Array(64);
  private pow = new Int32Array(64);
  private prev = new Int32Array(64);
  private next = new Int32Array(64);
  /** PairTable value of symbols (i, i + 1) as split. */
  private pairValue = new Int32Array(64);

  constructor(vocab: Vocab, longSegment: number) {
    this.vocab = vocab;
    this.scores = vocab.scores;
    this.heap = new BigramHeap(vocab.scores);
    this.queue = this.heap;
    this.longSegment = longSegment;
    this.table = new TokenTable(vocab.tokens);
    this.bytes = byteTokens(vocab);
    this.pairs = new PairTable(vocab);
    this.singleBmp = new Int32Array(65536).fill(-1);
    for (const [text, id] of vocab.tokenToId) {
      if (text.length === 1) this.singleBmp[text.charCodeAt(0)] = id;
      else if (text.length === 2 && text.codePointAt(0)! > 0xffff)
        this.singleAstral.set(text.codePointAt(0)!, id);
    }
    this.pieces = new Array(vocab.tokens.length);
  }

  private grow(): void {
    this.resize(this.start.length * 2);
  }

  /** Reallocate the symbol arrays to `c` entries, keeping what fits. */
  private resize(c: number): void {
    const g = (a: Int32Array) => {
      const b = new Int32Array(c);
      b.set(a.length <= c ? a : a.subarray(0, c));
      return b;
    };
    this.start = g(this.start);
    this.len = g(this.len);
    this.cps = g(this.cps);
    this.hash = g(this.hash);
    this.pow = g(this.pow);
    this.prev = g(this.prev);
    this.next = g(this.next);
    this.pairValue = g(this.pairValue);
  }

  /**
   * llama_escape_whitespace then llm_tokenizer_spm_session::tokenize. NOTE: the text is not
   * rewritten: every " " is read as "▁" where characters are looked at (a 10 MB replaceAll costs
   * more than the merges).
   */
  encodeFragment(text: string, out: number[]): void {
    const tl = text.length;
    // NOTE: no local copies of the symbol arrays here: grow() replaces them mid-loop.
    let n = 0;
    for (let o = 0; o < tl; ) {
      let c = text.charCodeAt(o);
      if (c === 0x20) c = 0x2581;
      let cp = c;
      let w = 1;
      let h = c;
      let pw = B;
      if (c >= 0xd800 && c <= 0xdbff && o + 1 < tl) {
        const lo = text.charCodeAt(o + 1);
        if ((lo & 0xfc00) === 0xdc00) {
          cp = ((c - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
          w = 2;
          h = (Math.imul(c, B) + lo) | 0;
          pw = Math.imul(B, B);
        }
      }
      if (n > 0) {
        const v = this.pairs.get(this.cps[n - 1]!, cp);
        if (v === -1) {
          this.mergeSegment(text, n, out);
          n = 0;
        } else this.pairValue[n - 1] = v;
      }
      if (n === this.start.length) this.grow();
      this.start[n] = o;
      this.len[n] = w;
      this.cps[n] = cp;
      this.hash[n] = h;
      this.pow[n] = pw;
      n++;
      o += w;
    }
    if (n > 0) this.mergeSegment(text, n, out);
    // Do not keep hundreds of MB of scratch space alive after one huge segment.
    if (this.start.length > SCRATCH_KEEP) {
      this.resize(SCRATCH_KEEP);
      this.runQueue?.shrink();
    }
  }

  /** Queue the pair (left, right) when its text is a token (try_add_bigram). */
  private tryAdd(text: string, left: number, right: number): void {
    if (left === -1 || right === -1) return;
    const size = this.len[left]! + this.len[right]!;
    const h = (Math.imul(this.hash[left]!, this.pow[right]!) + this.hash[right]!) | 0;
    const id = this.table.find(text, this.start[left]!, size, h);
    if (id >= 0) this.queue.push(id, left, right, size);
  }

  /** The merges of llm_tokenizer_spm_session::tokenize over symbols 0..n-1, then resegment. */
  private mergeSegment(text: string, n: number, out: number[]): void {
    const { len, prev, next, cps, hash, pow } = this;
    if (n > 1) {
      for (let i = 0; i < n; i++) {
        prev[i] = i - 1;
        next[i] = i + 1;
      }
      next[n - 1] = -1;
      let queue: BigramQueue = this.heap;
      if (n > this.longSegment) {
        this.runQueue ??= new RunQueue(this.scores);
        queue = this.runQueue;
      }
      this.queue = queue;
      queue.reset();
      // The first bigrams are pairs of single characters, looked up by code point while splitting.
      const pv = this.pairValue;
      for (let i = 1; i < n; i++) {
        const id = pv[i - 1]!;
        if (id >= 0) queue.push(id, i - 1, i, len[i - 1]! + len[i]!);
      }
      while (queue.pop()) {
        const left = queue.left;
        const right = queue.right;
        // One of the symbols already took part in another merge: a stale entry.
        if (len[left] === 0 || len[right] === 0 || len[left]! + len[right]! !== queue.size) continue;
        len[left] = len[left]! + len[right]!;
        len[right] = 0;
        hash[left] = (Math.imul(hash[left]!, pow[right]!) + hash[right]!) | 0;
        pow[left] = Math.imul(pow[left]!, pow[right]!);
        const rn = next[right]!;
        next[left] = rn;
        if (rn >= 0) prev[rn] = left;
        this.tryAdd(text, prev[left]!, left);
        this.tryAdd(text, left, rn);
      }
    } else next[0] = -1;
    // llm_tokenizer_spm_session::resegment. NOTE: every merged symbol is a token (a pair is only
    // queued when its text is one), so llama.cpp's rev_merge recursion is never taken: a symbol is
    // a token or a single character that falls back to bytes.
    for (let i = 0; i !== -1; i = next[i]!) {
      const l = len[i]!;
      const cp = cps[i]!;
      let id: number;
      if (l === 1) id = this.singleBmp[cp]!;
      else if (l === 2 && cp > 0xffff) id = this.singleAstral.get(cp) ?? -1;
      else id = this.table.find(text, this.start[i]!, l, hash[i]!);
      if (id >= 0) out.push(id);
      else if (l <= 2) this.emitBytes(cp, out);
      else throw new Error("internal error: a merged SPM symbol is not a token");
    }
  }

  /** Byte fallback for one character: its UTF-8 bytes as byte tokens (llama_vocab::byte_to_token). */
  private emitBytes(cp: number, out: number[]): void {
    // A lone surrogate has no UTF-8 form: U+FFFD, as TextEncoder writes it.
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    let b0: number;
    let n: number;
    if (cp < 0x80) {
      b0 = cp;
      n = 1;
    } else if (cp < 0x800) {
      b0 = 0xc0 | (cp >> 6);
      n = 2;
    } else if (cp < 0x10000) {
      b0 = 0xe0 | (cp >> 12);
      n = 3;
    } else {
      b0 = 0xf0 | (cp >> 18);
      n = 4;
    }
    const ids = [this.byteToken(b0, cp)];
    for (let k = n - 2; k >= 0; k--) ids.push(this.byteToken(0x80 | ((cp >> (6 * k)) & 0x3f), cp));
    // NOTE: llama.cpp throws (std::out_of_range) when a byte has no token; owl emits one <unk> for
    // the character instead, as SentencePiece does without byte fallback.
    if (ids.includes(-1)) out.push(this.vocab.unk!);
    else for (const id of ids) out.push(id);
  }

  private byteToken(b: number, cp: number): number {
    const id = this.bytes[b]!;
    if (id < 0 && this.vocab.unk === undefined) {
      throw new OwlError(
        "ERR_TOKENIZER_BAD_METADATA",
        `the vocabulary has no byte token <0x${b.toString(16).toUpperCase().padStart(2, "0")}> and no unknown token, so U+${cp.toString(16).toUpperCase().padStart(4, "0")} cannot be encoded`,
        { details: { byte: b, codePoint: cp } },
      );
    }
    return id;
  }

  /**
   * llama_vocab::impl::token_to_piece for SPM (special = true): a normal token with "▁" as a
   * space, a byte token as its byte, control/unknown/user-defined tokens as their text; other
   * types (unused, undefined) decode to nothing.
   */
  pieceBytes(id: number): Uint8Array {
    const cached = this.pieces[id];
    if (cached) return cached;
    const text = this.vocab.tokens[id];
    const attr = this.vocab.attrs[id];
    if (text === undefined || attr === undefined) return EMPTY;
    let out: Uint8Array = EMPTY;
    if (attr & (TokenAttr.UNKNOWN | TokenAttr.CONTROL | TokenAttr.USER_DEFINED)) out = utf8.encode(text);
    else if (attr & TokenAttr.NORMAL) out = utf8.encode(text.replaceAll(ESCAPED_SPACE, " "));
    else if (attr & TokenAttr.BYTE) {
      const b = tokenByte(text);
      out = b >= 0 ? Uint8Array.of(b) : utf8.encode(text);
    }
    this.pieces[id] = out;
    return out;
  }
}

/** The SPM codec of a "llama" vocabulary. */
export function createSpmCodec(vocab: Vocab, options: { longSegment?: number } = {}): ModelCodec {
  return new SpmCodec(vocab, options.longSegment ?? 1024);
}
