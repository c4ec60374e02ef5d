/**
 * Splitting text at special-token texts before the model codec sees it, with the result of
 * llama.cpp's llama_vocab::impl::tokenizer_st_partition: the special tokens (control, user-defined
 * and unknown; only user-defined ones unless parseSpecial) are taken one after the other, longest
 * text (in UTF-8 bytes) first, and each one claims its leftmost non-overlapping occurrences inside
 * the text still unclaimed, then LSTRIP/RSTRIP tokens swallow the whitespace beside them.
 *
 * llama.cpp scans the whole text once per special token: O(specials x text), minutes for 10 MB
 * and a vocabulary with thousands of added tokens. Here a trie of the special texts walked from
 * every position lists where each token occurs (counted first, then stored by token), and each
 * token's turn visits only its own occurrences, checking them against a per-character claimed
 * mark. A token with a huge number of (overlapping) occurrences, such as a run of spaces, is not
 * stored but searched with indexOf over the text instead, so memory stays O(text).
 * Not here: what happens to the fragments afterwards (tokenizer.ts).
 */
import { assert } from "../util/errors.ts";
import { TokenAttr, type Vocab } from "./types.ts";

/** A piece of the input: plain text for the codec, or a special token id. */
export type Fragment = string | number;

const SPECIAL = TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN;
/** Ranks are below 2^21 (SpecialSplitter refuses more), positions below 2^31 (a JS string's length). */
const RANK_SPAN = 2 ** 21;

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** C isspace() in the "C" locale, as llama.cpp's strip loops use. */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** The special tokens of a vocabulary in llama.cpp's processing order, with a trie of their texts. */
export class SpecialSplitter {
  /** Token ids in processing order (rank). */
  private readonly ids: number[];
  private readonly texts: string[];
  private readonly lstrip: Uint8Array;
  private readonly rstrip: Uint8Array;
  /** Trie over UTF-16 code units; node 0 is the root. */
  private readonly children: Map<number, number>[] = [new Map()];
  private readonly terminal: number[] = [-1];
  /** The root's children by code unit (0: none), the step every position takes. */
  private readonly root = new Int32Array(65536);

  /** Occurrences stored per character of text before the most frequent tokens are searched instead. */
  private readonly budgetPerChar: number;

  /** `options.occurrenceBudget` (per character, default 4) is for tests of the indexOf path. */
  constructor(vocab: Vocab, parseSpecial: boolean, options: { occurrenceBudget?: number } = {}) {
    this.budgetPerChar = options.occurrenceBudget ?? 4;
    const ids: number[] = [];
    for (let id = 0; id < vocab.attrs.length; id++) {
      const a = vocab.attrs[id]!;
      if ((a & SPECIAL) === 0) continue;
      // Control and unknown tokens are plain text unless parse_special.
      if (!parseSpecial && (a & (TokenAttr.CONTROL | TokenAttr.UNKNOWN)) !== 0) continue;
      if ((vocab.tokens[id] ?? "").length === 0) continue;
      ids.push(id);
    }
    // NOTE: llama.cpp sorts with std::sort by byte length only, so the order of equal lengths is
    // unspecified there; here it is ascending id. It matters only for overlapping equal-length texts.
    const lens = new Map<number, number>();
    for (const id of ids) lens.set(id, utf8Length(vocab.tokens[id]!));
    ids.sort((a, b) => lens.get(b)! - lens.get(a)! || a - b);
    assert(ids.length < RANK_SPAN, "more than 2^21 special tokens");
    this.ids = ids;
    this.texts = ids.map((id) => vocab.tokens[id]!);
    this.lstrip = Uint8Array.from(ids, (id) => ((vocab.attrs[id]! & TokenAttr.LSTRIP) !== 0 ? 1 : 0));
    this.rstrip = Uint8Array.from(ids, (id) => ((vocab.attrs[id]! & TokenAttr.RSTRIP) !== 0 ? 1 : 0));
    for (let rank = 0; rank < ids.length; rank++) {
      const t = this.texts[rank]!;
      let node = 0;
      for (let i = 0; i < t.length; i++) {
        const c = t.charCodeAt(i);
        let next = this.children[node]!.get(c);
        if (next === undefined) {
          next = this.children.length;
          this.children.push(new Map());
          this.terminal.push(-1);
          this.children[node]!.set(c, next);
          if (node === 0) this.root[c] = next;
        }
        node = next;
      }
      // A duplicate text keeps its first (highest-priority) rank: it claims every occurrence first.
      if (this.terminal[node] === -1) this.terminal[node] = rank;
      else continue;
    }
  }

  get size(): number {
    return this.ids.length;
  }

  /**
   * Walk the trie from every position of `text`, in ascending order, over every special text
   * occurring there (overlapping occurrences included): count them per rank in `counts`, and store
   * (rank, position) pairs in `pairs` while there are at most `limit` of them. Returns the total.
   */
  private walk(text: string, counts: Int32Array, pairs: { a: Int32Array; n: number }, limit: number): number {
    const root = this.root;
    const children = this.children;
    const terminal = this.terminal;
    const n = text.length;
    let total = 0;
    for (let p = 0; p < n; p++) {
      let node = root[text.charCodeAt(p)]!;
      for (let q = p + 1; node !== 0; q++) {
        const rank = terminal[node]!;
        if (rank >= 0) {
          counts[rank]!++;
          if (++total <= limit) {
            if (2 * pairs.n + 2 > pairs.a.length) {
              const g = new Int32Array(Math.min(2 * pairs.a.length, 2 * limit + 2));
              g.set(pairs.a);
              pairs.a = g;
            }
            pairs.a[2 * pairs.n] = rank;
            pairs.a[2 * pairs.n + 1] = p;
            pairs.n++;
          }
        }
        if (q >= n) break;
        node = children[node]!.get(text.charCodeAt(q)) ?? 0;
      }
    }
    return total;
  }

  /** Second walk when the first one hit its limit: store the positions of ranks not `searched`. */
  private walkStore(text: string, searched: Uint8Array, positions: Int32Array, fill: Int32Array): void {
    const root = this.root;
    const children = this.children;
    const terminal = this.terminal;
    const n = text.length;
    for (let p = 0; p < n; p++) {
      let node = root[text.charCodeAt(p)]!;
      for (let q = p + 1; node !== 0; q++) {
        const rank = terminal[node]!;
        if (rank >= 0 && searched[rank] === 0) positions[fill[rank]!++] = p;
        if (q >= n) break;
        node = children[node]!.get(text.charCodeAt(q)) ?? 0;
      }
    }
  }

  /** Split `text` into plain-text fragments and special token ids, in order. */
  split(text: string): Fragment[] {
    const n = text.length;
    if (n === 0) return [];
    const K = this.ids.length;
    if (K === 0) return [text];

    // Occurrences per token, stored by rank. Past a budget of 4 per character, the most frequent
    // tokens are not stored but searched with indexOf instead.
    const counts = new Int32Array(K);
    const budget = this.budgetPerChar === 4 ? Math.max(4 * n, 1 << 16) : this.budgetPerChar * n;
    const pairs = { a: new Int32Array(64), n: 0 };
    const total = this.walk(text, counts, pairs, budget);
    if (total === 0) return [text];
    const searched = new Uint8Array(K);
    let stored = total;
    if (stored > budget) {
      const byCount = Array.from(counts.keys()).sort((a, b) => counts[b]! - counts[a]!);
      for (const rank of byCount) {
        if (stored <= budget) break;
        searched[rank] = 1;
        stored -= counts[rank]!;
      }
    }
    const start = new Int32Array(K + 1);
    for (let r = 0; r < K; r++) start[r + 1] = start[r]! + (searched[r] ? 0 : counts[r]!);
    const positions = new Int32Array(stored);
    const fill = start.slice(0, K);
    if (total <= budget) {
      for (let i = 0; i < pairs.n; i++) positions[fill[pairs.a[2 * i]!]!++] = pairs.a[2 * i + 1]!;
    } else this.walkStore(text, searched, positions, fill);

    // 0: unclaimed text; 1: a special token; 2: whitespace a special token stripped.
    const state = new Uint8Array(n);
    const specialPos: number[] = [];
    const specialRank: number[] = [];
    const claim = (rank: number, p: number, L: number): void => {
      state.fill(1, p, p + L);
      specialPos.push(p);
      specialRank.push(rank);
      if (this.lstrip[rank] === 1)
        for (let j = p - 1; j >= 0 && state[j] === 0 && isSpace(text.charCodeAt(j)); j--) state[j] = 2;
      if (this.rstrip[rank] === 1)
        for (let j = p + L; j < n && state[j] === 0 && isSpace(text.charCodeAt(j)); j++) state[j] = 2;
    };
    /** First position in [p, p + L) that is not unclaimed text, or -1. */
    const firstClaimed = (p: number, L: number): number => {
      for (let i = p; i < p + L; i++) if (state[i] !== 0) return i;
      return -1;
    };

    for (let rank = 0; rank < K; rank++) {
      if (counts[rank] === 0) continue;
      const t = this.texts[rank]!;
      const L = t.length;
      if (searched[rank] === 0) {
        // Ascending positions: each accepted occurrence claims its characters, so the ones that
        // overlap it fail the check, which leaves llama.cpp's leftmost non-overlapping matches.
        for (let k = start[rank]!, end = start[rank + 1]!; k < end; k++) {
          const p = positions[k]!;
          if (firstClaimed(p, L) < 0) claim(rank, p, L);
        }
      } else {
        for (let cur = 0; cur <= n - L; ) {
          const p = text.indexOf(t, cur);
          if (p < 0) break;
          const q = firstClaimed(p, L);
          if (q < 0) {
            claim(rank, p, L);
            cur = p + L;
          } else {
            // Every occurrence starting in [p, q] covers q; skip past the claimed run at q.
            cur = q + 1;
            while (cur < n && state[cur] !== 0) cur++;
          }
        }
      }
    }

    // Specials in text order (claims never share a position: sort position * 2^21 + rank as
    // doubles, exact below 2^53), with the unclaimed text between them.
    const keys = new Float64Array(specialPos.length);
    for (let i = 0; i < keys.length; i++) keys[i] = specialPos[i]! * RANK_SPAN + specialRank[i]!;
    keys.sort();
    const result: Fragment[] = [];
    let from = 0;
    const pushText = (a: number, b: number): void => {
      while (a < b && state[a] !== 0) a++;
      while (b > a && state[b - 1] !== 0) b--;
      if (a < b) result.push(text.slice(a, b));
    };
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const rank = key % RANK_SPAN;
      const pos = (key - rank) / RANK_SPAN;
      pushText(from, pos);
      result.push(this.ids[rank]!);
      from = pos + this.texts[rank]!.length;
    }
    pushText(from, n);
    return result;
  }
}
