/**
 * The sorts of llama.cpp's samplers, reproduced so that candidates with equal logits come out in
 * the same order as in llama.cpp (its samplers pick by position, so the order of ties decides
 * which token a draw lands on):
 *
 * - sortDesc / partialSortDesc: std::sort (introsort) and std::partial_sort (heap select + heap
 *   sort) as GCC's libstdc++ implements them (bits/stl_algo.h, bits/stl_heap.h), the standard
 *   library of node-llama-cpp's prebuilt llama.cpp. Neither is stable; these make the same moves.
 * - bucketPartialSort: llama_token_data_array_partial_sort of src/llama-sampler.cpp, 128 buckets
 *   over logits in [-10, 10), then std::sort per bucket and std::partial_sort in the last one.
 *
 * Every function sorts token ids (Int32Array `a`, a range [first, last)) by key[id], largest
 * first: the comparison is llama.cpp's `a.logit > b.logit`. Written from the algorithms'
 * descriptions; no allocation per call.
 * Not here: which sampler sorts when (sampler-stages.ts).
 */

/** libstdc++'s _S_threshold: ranges this short are left to the final insertion sort. */
const THRESHOLD = 16;

/** std::__lg: floor(log2(n)) for n > 0. */
function lg(n: number): number {
  return 31 - Math.clz32(n);
}

/**
 * std::__adjust_heap: sift the hole at `hole` down to a leaf, then push `value` up from there.
 * Indices are relative to `first`; `len` is the heap size.
 */
function adjustHeap(
  a: Int32Array,
  key: Float32Array,
  first: number,
  hole: number,
  len: number,
  value: number,
) {
  const top = hole;
  let child = hole;
  while (child < (len - 1) >> 1) {
    child = 2 * (child + 1);
    if (key[a[first + child]!]! > key[a[first + child - 1]!]!) child--;
    a[first + hole] = a[first + child]!;
    hole = child;
  }
  if ((len & 1) === 0 && child === (len - 2) >> 1) {
    child = 2 * (child + 1);
    a[first + hole] = a[first + child - 1]!;
    hole = child - 1;
  }
  // std::__push_heap
  const kv = key[value]!;
  let parent = (hole - 1) >> 1;
  while (hole > top && key[a[first + parent]!]! > kv) {
    a[first + hole] = a[first + parent]!;
    hole = parent;
    parent = (hole - 1) >> 1;
  }
  a[first + hole] = value;
}

/** std::__make_heap over [first, last). */
function makeHeap(a: Int32Array, key: Float32Array, first: number, last: number): void {
  const len = last - first;
  if (len < 2) return;
  for (let parent = (len - 2) >> 1; ; parent--) {
    adjustHeap(a, key, first, parent, len, a[first + parent]!);
    if (parent === 0) return;
  }
}

/**
 * std::partial_sort(first, middle, last): the `middle - first` largest keys of [first, last),
 * sorted, in [first, middle); the rest in an unspecified (but reproduced) order after them.
 */
export function partialSortDesc(
  a: Int32Array,
  key: Float32Array,
  first: number,
  middle: number,
  last: number,
) {
  // std::__heap_select
  makeHeap(a, key, first, middle);
  const len = middle - first;
  if (len > 0) {
    // The heap's top key, cached: most ids fail the test against it (the hot loop of top-k).
    let top = key[a[first]!]!;
    for (let i = middle; i < last; i++) {
      const v = a[i]!;
      if (key[v]! > top) {
        // std::__pop_heap(first, middle, i)
        a[i] = a[first]!;
        adjustHeap(a, key, first, 0, len, v);
        top = key[a[first]!]!;
      }
    }
  }
  // std::__sort_heap
  for (let end = middle; end - first > 1; ) {
    end--;
    const v = a[end]!;
    a[end] = a[first]!;
    adjustHeap(a, key, first, 0, end - first, v);
  }
}

/** std::__unguarded_linear_insert: move a[last] left while its key is larger (needs a sentinel). */
function unguardedLinearInsert(a: Int32Array, key: Float32Array, last: number): void {
  const v = a[last]!;
  const kv = key[v]!;
  let next = last - 1;
  while (kv > key[a[next]!]!) {
    a[last] = a[next]!;
    last = next;
    next--;
  }
  a[last] = v;
}

/** std::__insertion_sort over [first, last). */
function insertionSort(a: Int32Array, key: Float32Array, first: number, last: number): void {
  if (first === last) return;
  for (let i = first + 1; i < last; i++) {
    const v = a[i]!;
    if (key[v]! > key[a[first]!]!) {
      a.copyWithin(first + 1, first, i);
      a[first] = v;
    } else {
      unguardedLinearInsert(a, key, i);
    }
  }
}

/** std::__move_median_to_first(result, x, y, z). */
function moveMedianToFirst(
  a: Int32Array,
  key: Float32Array,
  result: number,
  x: number,
  y: number,
  z: number,
) {
  const kx = key[a[x]!]!;
  const ky = key[a[y]!]!;
  const kz = key[a[z]!]!;
  let m: number;
  if (kx > ky) {
    if (ky > kz) m = y;
    else if (kx > kz) m = z;
    else m = x;
  } else if (kx > kz) m = x;
  else if (ky > kz) m = z;
  else m = y;
  const t = a[result]!;
  a[result] = a[m]!;
  a[m] = t;
}

/** std::__unguarded_partition_pivot: median of three to `first`, then Hoare partition. */
function unguardedPartitionPivot(a: Int32Array, key: Float32Array, first: number, last: number): number {
  const mid = first + ((last - first) >> 1);
  moveMedianToFirst(a, key, first, first + 1, mid, last - 1);
  const kp = key[a[first]!]!;
  let lo = first + 1;
  let hi = last;
  for (;;) {
    while (key[a[lo]!]! > kp) lo++;
    hi--;
    while (kp > key[a[hi]!]!) hi--;
    if (!(lo < hi)) return lo;
    const t = a[lo]!;
    a[lo] = a[hi]!;
    a[hi] = t;
    lo++;
  }
}

function introsortLoop(a: Int32Array, key: Float32Array, first: number, last: number, depth: number): void {
  while (last - first > THRESHOLD) {
    if (depth === 0) {
      partialSortDesc(a, key, first, last, last);
      return;
    }
    depth--;
    const cut = unguardedPartitionPivot(a, key, first, last);
    introsortLoop(a, key, cut, last, depth);
    last = cut;
  }
}

/** std::sort(first, last) with comp = key[x] > key[y] (libstdc++'s introsort). */
export function sortDesc(a: Int32Array, key: Float32Array, first: number, last: number): void {
  if (last - first < 2) return;
  introsortLoop(a, key, first, last, lg(last - first) * 2);
  // std::__final_insertion_sort
  if (last - first > THRESHOLD) {
    insertionSort(a, key, first, first + THRESHOLD);
    for (let i = first + THRESHOLD; i < last; i++) unguardedLinearInsert(a, key, i);
  } else {
    insertionSort(a, key, first, last);
  }
}

const NBUCKETS = 128;
// constexpr floats of llama_token_data_array_partial_sort: 128 / (10 - -10) and 10 * that.
const BUCKET_SCALE = Math.fround(NBUCKETS / 20);
const BUCKET_INTER = Math.fround(10 * BUCKET_SCALE);

/** Scratch of bucketPartialSort, reused between calls. */
export class BucketScratch {
  bucketOf = new Uint8Array(0);
  readonly histo = new Int32Array(NBUCKETS);
  readonly ptr = new Int32Array(NBUCKETS);

  reserve(n: number): void {
    if (this.bucketOf.length < n) this.bucketOf = new Uint8Array(n);
  }
}

/** The bucket of a logit: int(scale * x + inter) in float, clamped to [0, 127]. */
function bucketOf(x: number): number {
  const f = Math.fround(Math.fround(BUCKET_SCALE * x) + BUCKET_INTER);
  // NOTE: x86's float-to-int conversion gives INT_MIN for NaN, infinities and values out of
  // range, so a +inf (or huge) logit lands in bucket 0 in llama.cpp, as it does here.
  const ib = f > -2147483649 && f < 2147483648 ? Math.trunc(f) : -2147483648;
  return ib < 0 ? 0 : Math.min(ib, NBUCKETS - 1);
}

/**
 * llama_token_data_array_partial_sort: copy into `res` (from 0) the ids of src[0..n) that fall in
 * the highest buckets holding at least `npartial` of them, the first `npartial` sorted. Returns
 * how many ids were written (>= npartial). `res` needs room for n ids.
 */
export function bucketPartialSort(
  src: Int32Array,
  n: number,
  npartial: number,
  key: Float32Array,
  res: Int32Array,
  s: BucketScratch,
): number {
  s.reserve(n);
  const { bucketOf: bidx, histo, ptr } = s;
  histo.fill(0);
  for (let i = 0; i < n; i++) {
    const ib = bucketOf(key[src[i]!]!);
    bidx[i] = ib;
    histo[ib]!++;
  }
  let nhave = 0;
  let ib = NBUCKETS - 1;
  for (; ib >= 0; --ib) {
    nhave += histo[ib]!;
    if (nhave >= npartial) break;
  }
  let o = 0;
  for (let j = NBUCKETS - 1; j >= ib; --j) {
    ptr[j] = o;
    o += histo[j]!;
  }
  for (let i = 0; i < n; i++) {
    const j = bidx[i]!;
    if (j >= ib) res[ptr[j]!++] = src[i]!;
  }
  let start = 0;
  let ndone = 0;
  for (let j = NBUCKETS - 1; j > ib; --j) {
    sortDesc(res, key, start, start + histo[j]!);
    start += histo[j]!;
    ndone += histo[j]!;
  }
  partialSortDesc(res, key, start, start + npartial - ndone, start + histo[ib]!);
  return nhave;
}
