/**
 * Sizes as Ollama's CLI prints them (format/bytes.go HumanBytes), for `owl list` and `owl ps`:
 * decimal units (1 KB = 1000 B) up to TB; from 10 up the whole part only ("12 GB", truncated),
 * below 10 one decimal unless the value is whole ("1 KB", "1.1 MB", "1.0 KB" for 1001 B).
 * Not here: progress bars (progress.ts keeps binary units for downloads and copies).
 */

const UNITS: readonly [number, string][] = [
  [1e12, "TB"],
  [1e9, "GB"],
  [1e6, "MB"],
  [1e3, "KB"],
];

/**
 * Go's fmt "%.1f" of a non-negative float64 below 1e15: the exact binary value rounded to one
 * decimal, an exact tie to even (Go gives "1.2" for 1.25; JavaScript's toFixed gives "1.3").
 */
function goFixed1(v: number): string {
  // NOTE: toFixed(60) is the exact decimal expansion of a double in [1, 1000): it has at most 52
  // fractional bits, so at most 52 fractional decimal digits.
  const [whole = "0", frac = ""] = v.toFixed(60).split(".");
  const digit = Number(frac[0] ?? "0");
  const rest = frac.slice(1);
  let tenths = Number(whole) * 10 + digit;
  const half = `5${"0".repeat(rest.length - 1)}`;
  if (rest > half || (rest === half && digit % 2 === 1)) tenths++;
  return `${Math.trunc(tenths / 10)}.${tenths % 10}`;
}

/** Ollama's format.HumanBytes. */
export function humanBytes(b: number): string {
  for (const [size, unit] of UNITS) {
    if (b < size) continue;
    const v = b / size;
    if (v >= 10 || Number.isInteger(v)) return `${Math.trunc(v)} ${unit}`;
    return `${goFixed1(v)} ${unit}`;
  }
  return `${b} B`;
}
