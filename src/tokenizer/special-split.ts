/**
 * Splitting text at special-token texts before the model codec sees it, with the result of
 * llama.cpp's llama_vocab::impl::tokenizer_st_partition: the special tokens (control, user-defined
 * and unknown; only user-defined ones unless parseSpecial) are taken one after the other, longest
 * text (in UTF-8 bytes) first, and each one claims its leftmost non-overlapping occurrences inside
 * the text still unclaimed, then LSTRIP/RSTRIP tokens swallow the whitespace beside them.
 *
 * llama.cpp scans the whole text once per special token (O(specials x text)); a vocabulary with
 * thousands of added tokens made that slow. Here one pass over the text with a trie of the special
 * texts finds which tokens occur at all (a trie branch stops being walked once all its tokens have
 * been seen), and only those run llama.cpp's per-token pass, whose forward-only search is O(text).
 * Not here: what happens to the fragments afterwards (tokenizer.ts).
 */
import { TokenAttr, type Vocab } from "./types.ts";

/** A piece of the input: plain text for the codec, or a special token id. */
export type Fragment = string | number;

const SPECIAL = TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN;

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
  private readonly parent: number[] = [-1];
  private readonly tokenCount: number[] = [0];
  /** Code units that start some special text. */
  private readonly first = new Uint8Array(65536);

  constructor(vocab: Vocab, parseSpecial: boolean) {
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
          this.parent.push(node);
          this.tokenCount.push(0);
          this.children[node]!.set(c, next);
        }
        node = next;
      }
      // A duplicate text keeps its first (highest-priority) rank: it claims every occurrence first.
      if (this.terminal[node] === -1) this.terminal[node] = rank;
      else continue;
      for (let n = node; n !== -1; n = this.parent[n]!) this.tokenCount[n]!++;
      this.first[t.charCodeAt(0)] = 1;
    }
  }

  get size(): number {
    return this.ids.length;
  }

  /** Ranks of the special texts occurring anywhere in `text`, ascending. */
  private occurring(text: string): number[] {
    const found: number[] = [];
    if (this.ids.length === 0) return found;
    // Unseen tokens below each node; a node whose tokens have all been seen is not walked again.
    const pending = Int32Array.from(this.tokenCount);
    const first = this.first;
    const children = this.children;
    const terminal = this.terminal;
    const parent = this.parent;
    const n = text.length;
    const seen = new Uint8Array(this.ids.length);
    for (let p = 0; p < n && pending[0]! > 0; p++) {
      if (first[text.charCodeAt(p)] === 0) continue;
      let node = 0;
      for (let q = p; q < n; q++) {
        const next = children[node]!.get(text.charCodeAt(q));
        if (next === undefined || pending[next] === 0) break;
        node = next;
        const rank = terminal[node]!;
        if (rank >= 0 && seen[rank] === 0) {
          seen[rank] = 1;
          found.push(rank);
          for (let m = node; m !== -1; m = parent[m]!) pending[m]!--;
          if (pending[node] === 0) break;
        }
      }
    }
    return found.sort((a, b) => a - b);
  }

  /** Split `text` into plain-text fragments and special token ids, in order. */
  split(text: string): Fragment[] {
    if (text.length === 0) return [];
    const ranks = this.occurring(text);
    if (ranks.length === 0) return [text];

    // Raw (unclaimed) regions as [start, end) pairs, sorted; specials as (pos, rank) pairs.
    let raw: number[] = [0, text.length];
    const specialPos: number[] = [];
    const specialRank: number[] = [];
    for (const rank of ranks) {
      const t = this.texts[rank]!;
      const L = t.length;
      const lstrip = this.lstrip[rank] === 1;
      const rstrip = this.rstrip[rank] === 1;
      const out: number[] = [];
      // Forward-only search: `found` is the first occurrence at or after `searchedFrom`, and the
      // positions asked for only grow, so the whole pass scans the text at most once.
      let searchedFrom = -1;
      let found = -1;
      for (let f = 0; f < raw.length; f += 2) {
        const b = raw[f + 1]!;
        let cur = raw[f]!;
        for (;;) {
          if (searchedFrom === -1 || (found !== -1 && found < cur)) {
            found = text.indexOf(t, cur);
            searchedFrom = cur;
          }
          const p = found;
          if (p === -1 || p + L > b) break;
          let leftEnd = p;
          if (lstrip) while (leftEnd > cur && isSpace(text.charCodeAt(leftEnd - 1))) leftEnd--;
          if (leftEnd > cur) out.push(cur, leftEnd);
          specialPos.push(p);
          specialRank.push(rank);
          cur = p + L;
          if (rstrip) while (cur < b && isSpace(text.charCodeAt(cur))) cur++;
          if (cur >= b) break;
        }
        if (cur < b) out.push(cur, b);
      }
      raw = out;
    }

    // Merge the raw regions and the specials by position.
    const order = specialPos.map((_, i) => i).sort((a, b) => specialPos[a]! - specialPos[b]!);
    const result: Fragment[] = [];
    let r = 0;
    for (const i of order) {
      const pos = specialPos[i]!;
      while (r < raw.length && raw[r]! < pos) {
        result.push(text.slice(raw[r]!, raw[r + 1]!));
        r += 2;
      }
      result.push(this.ids[specialRank[i]!]!);
    }
    for (; r < raw.length; r += 2) result.push(text.slice(raw[r]!, raw[r + 1]!));
    return result;
  }
}
