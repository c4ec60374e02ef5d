/**
 * llama.cpp's tokenizer test vectors (ggml-vocab-*.gguf.inp / .out, see ../shared/fixtures/README.md)
 * and a plain reference port of llama.cpp's SPM tokenizer for differential tests.
 */
import { existsSync, readFileSync } from "node:fs";
import type { Vocab } from "../../src/tokenizer/types.ts";

export interface VocabVector {
  text: string;
  ids: number[];
}

/**
 * The vectors of a vocab GGUF, or undefined when it has no .inp/.out. The .inp is split the way
 * test-tokenizer-0.cpp does (every string is followed by the separator), never by lines.
 */
export function readVocabVectors(gguf: string): VocabVector[] | undefined {
  if (!existsSync(`${gguf}.inp`) || !existsSync(`${gguf}.out`)) return undefined;
  const inp = readFileSync(`${gguf}.inp`, "utf8");
  const sep = "\n__ggml_vocab_test__\n";
  const texts: string[] = [];
  for (let pos = 0; ; ) {
    const i = inp.indexOf(sep, pos);
    if (i < 0) break;
    texts.push(inp.slice(pos, i));
    pos = i + sep.length;
  }
  const lines = readFileSync(`${gguf}.out`, "utf8").split("\n");
  return texts.map((text, i) => {
    const line = (lines[i] ?? "").trim();
    return { text, ids: line === "" ? [] : line.split(" ").map(Number) };
  });
}

/**
 * llm_tokenizer_spm_session::tokenize as written in llama.cpp (src/llama-vocab.cpp): one binary
 * heap over the whole text, string lookups, rev_merge and the recursive resegment. Slow and
 * obviously faithful; spm.ts must give the same ids. `text` is already escaped ("▁" for spaces).
 */
export function referenceSpm(vocab: Vocab, text: string): number[] {
  const enc = new TextEncoder();
  const chars = Array.from(text);
  const syms = chars.map((c, i) => ({
    text: c,
    n: c.length,
    prev: i - 1,
    next: i + 1 === chars.length ? -1 : i + 1,
  }));
  // Absolute start of each symbol in `text`.
  const starts: number[] = [];
  for (let i = 0, o = 0; i < chars.length; o += chars[i]!.length, i++) starts.push(o);
  type Bigram = { left: number; right: number; score: number; size: number };
  const heap: Bigram[] = [];
  const less = (a: Bigram, b: Bigram) => a.score < b.score || (a.score === b.score && a.left > b.left);
  const push = (b: Bigram) => {
    heap.push(b);
    for (let i = heap.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!less(heap[p]!, heap[i]!)) break;
      [heap[p], heap[i]] = [heap[i]!, heap[p]!];
      i = p;
    }
  };
  const pop = (): Bigram => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[m]!, heap[l]!)) m = l;
        if (r < heap.length && less(heap[m]!, heap[r]!)) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i]!, heap[m]!];
        i = m;
      }
    }
    return top;
  };
  const revMerge = new Map<string, [number, number]>();
  const tryAdd = (left: number, right: number) => {
    if (left === -1 || right === -1) return;
    const t = text.slice(starts[left]!, starts[left]! + syms[left]!.n + syms[right]!.n);
    const id = vocab.tokenToId.get(t);
    if (id === undefined) return;
    push({ left, right, score: vocab.scores[id]!, size: t.length });
    revMerge.set(t, [left, right]);
  };
  for (let i = 1; i < syms.length; i++) tryAdd(i - 1, i);
  while (heap.length > 0) {
    const b = pop();
    const l = syms[b.left]!;
    const r = syms[b.right]!;
    if (l.n === 0 || r.n === 0 || l.n + r.n !== b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next]!.prev = b.left;
    tryAdd(l.prev, b.left);
    tryAdd(b.left, l.next);
  }
  const out: number[] = [];
  const hex = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
  const resegment = (i: number) => {
    const t = text.slice(starts[i]!, starts[i]! + syms[i]!.n);
    const id = vocab.tokenToId.get(t);
    if (id !== undefined) {
      out.push(id);
      return;
    }
    const p = revMerge.get(t);
    if (!p) {
      for (const b of enc.encode(t)) out.push(vocab.tokenToId.get(hex(b)) ?? vocab.unk!);
      return;
    }
    resegment(p[0]);
    resegment(p[1]);
  };
  if (syms.length > 0) for (let i = 0; i !== -1; i = syms[i]!.next) resegment(i);
  return out;
}
