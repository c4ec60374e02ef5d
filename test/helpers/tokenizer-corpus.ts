/**
 * A seeded corpus of random strings for tokenizer tests and benchmarks: words of many scripts
 * (accented Latin, Cyrillic, Greek, CJK, Arabic, Hebrew, Devanagari, Thai, Khmer, ...) in mixed
 * case, emoji with ZWJ sequences, skin tones, keycaps and flags, contractions, code, punctuation,
 * runs of spaces, tabs and newlines, digits of many lengths, random code points from many blocks
 * (marks, symbols, controls, private use, unassigned, the newest CJK extensions) and a few lone
 * surrogates. Used by test/tokenizer-llamacpp.test.ts and bench/tokenizer.ts.
 */
/** mulberry32: a small seeded generator, [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS: Record<string, readonly string[]> = {
  latin: [
    "hello",
    "world",
    "tokenizer",
    "Straße",
    "café",
    "naïve",
    "façade",
    "Ångström",
    "jalapeño",
    "Zürich",
    "smörgåsbord",
    "crème",
    "brûlée",
    "São",
    "Paulo",
    "łódź",
    "Čeština",
    "İstanbul",
    "Œuvre",
    "Æsir",
    "ǅemal",
    "ﬁnance",
  ],
  cyrillic: ["привет", "мир", "Москва", "нещо", "Български", "ЁЖИК", "Україна", "їжак", "Ђорђе"],
  greek: ["γειά", "σου", "κόσμε", "ΣΊΣΥΦΟΣ", "Ελληνικά", "ἀρχή", "ὕδωρ", "λόγος"],
  cjk: [
    "我想在",
    "工作",
    "你好世界",
    "東京",
    "日本語のテキスト",
    "カタカナ",
    "ｶﾀｶﾅ",
    "한국어",
    "안녕하세요",
    "𠀀𠀁",
    "中文。标点，",
    "「引用」",
  ],
  arabic: ["مرحبا", "العربية", "بِسْمِ", "ٱللَّٰهِ", "١٢٣", "שלום", "עברית"],
  devanagari: ["नमस्ते", "हिन्दी", "क्षत्रिय", "१२३", "संस्कृतम्"],
  thai: ["สวัสดี", "ภาษาไทย", "กรุงเทพฯ", "កាន់តែពិសេស", "ລາວ", "မြန်မာ"],
  emoji: [
    "🦙",
    "🚀",
    "😀",
    "😶‍🌫️",
    "👨‍👩‍👧‍👦",
    "👍🏽",
    "🧑🏿‍💻",
    "🏳️‍🌈",
    "🇺🇸",
    "🇯🇵🇫🇷",
    "1️⃣",
    "#️⃣",
    "✅",
    "❤️",
    "☕",
    "🫠",
    "©",
    "™",
    "€",
  ],
  contractions: [
    "don't",
    "DON'T",
    "I'M",
    "I'm",
    "we've",
    "WE'VE",
    "they'RE",
    "it'S",
    "you'll",
    "YOU'LL",
    "he'd",
    "'s",
    "'T",
    "o'clock",
    "rock'n'roll",
  ],
  code: [
    'fn main() { println!("{}", x[i] + 1); }',
    "if (a && b) {\n\treturn c->d;\n}",
    "def foo(bar):\n    return bar ** 2  # square",
    '<div class="x">&nbsp;</div>',
    "#include <stdio.h>",
    "const re = /[a-z]+/gi;",
    "SELECT * FROM t WHERE id = 42;",
    "x = [1, 2, 3]; y = {'a': (4, 5)}",
    "a != b || c >= d",
    "__init__(self, *args, **kwargs)",
    "$HOME/.config/~user/@scope",
    "```python\nprint('hi')\n```",
    "i++; j--; k += 0x1F;",
    "<|endoftext|><s></s>[CLS]",
  ],
  punct: [
    "...",
    "!?",
    "—",
    "–",
    "…",
    "«»",
    "„“",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "<",
    ">",
    "/",
    "\\",
    "|",
    "~",
    "^",
    "`",
    "_",
    "-",
    "--",
    "==",
    "!!!",
    "???",
    "''",
    '""',
    "@#$%",
  ],
};
const SPACES = [
  " ",
  "  ",
  "   ",
  "\t",
  "\t\t",
  "\n",
  "\n\n",
  "\r\n",
  " \n ",
  "\u00a0",
  "\u3000",
  "\u2009",
  "\v",
  "\f",
];
/** Ranges random code points come from (letters, marks, symbols of many scripts; no surrogates). */
const RANGES: readonly [number, number][] = [
  [0x20, 0x7e],
  [0xa0, 0x24f],
  [0x300, 0x36f],
  [0x370, 0x3ff],
  [0x400, 0x4ff],
  [0x590, 0x6ff],
  [0x900, 0x97f],
  [0xe00, 0xe7f],
  [0x1100, 0x11ff],
  [0x1e00, 0x1fff],
  [0x2000, 0x206f],
  [0x2100, 0x23ff],
  [0x2460, 0x27bf],
  [0x3000, 0x30ff],
  [0x4e00, 0x4fff],
  [0xac00, 0xad00],
  [0xff00, 0xffef],
  [0x1f300, 0x1faff],
  [0x1d400, 0x1d7ff],
  [0x20000, 0x20100],
  // Harder: controls, C1, specials, private use, unassigned, tags, lone regional indicators, and
  // blocks newer than some Unicode tables (symbols for legacy computing, CJK extensions H and I).
  [0x0, 0x1f],
  [0x7f, 0x9f],
  [0x370, 0x37f],
  [0xfff0, 0xffff],
  [0xe000, 0xe0ff],
  [0xe0000, 0xe007f],
  [0x1f1e6, 0x1f1ff],
  [0x1fb00, 0x1fbff],
  [0x31350, 0x323af],
  [0x2ebf0, 0x2ee5f],
];
/** Invisible and odd characters: ZWJ/ZWNJ, BOM, NEL, line/paragraph separators, soft hyphen, a lone combining mark. */
const ODD = [
  "\u200b",
  "\u200c",
  "\u200d",
  "\ufeff",
  "\u0085",
  "\u2028",
  "\u2029",
  "\u00ad",
  "\u0301",
  "\u034f",
  "\u180e",
  "\u2060",
];

function randomString(r: () => number): string {
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const kinds = Object.keys(WORDS);
  const parts: string[] = [];
  const n = 1 + int(8);
  for (let i = 0; i < n; i++) {
    const k = r();
    let part: string;
    if (k < 0.55) {
      part = pick(WORDS[pick(kinds)]!);
      const c = r();
      if (c < 0.1) part = part.toUpperCase();
      else if (c < 0.2) part = part[0]!.toUpperCase() + part.slice(1);
      else if (c < 0.25)
        part = Array.from(part, (ch) => (r() < 0.5 ? ch.toUpperCase() : ch.toLowerCase())).join("");
    } else if (k < 0.7) {
      let len = 1 + int(r() < 0.8 ? 4 : 14);
      part = "";
      while (len-- > 0) part += String(int(10));
      if (r() < 0.2) part += pick([".", ",", "/", ":", "e", "%"]) + String(int(1000));
    } else if (k < 0.83) {
      part = "";
      for (let m = 1 + int(3); m > 0; m--) part += pick(SPACES);
      if (r() < 0.1) part = " ".repeat(1 + int(40));
    } else if (k < 0.86) {
      part = pick(ODD);
      // A lone surrogate now and then: no UTF-8 form; both sides read it as U+FFFD.
      if (r() < 0.1) part = r() < 0.5 ? "\ud83d" : "\ude00";
    } else {
      part = "";
      for (let m = 1 + int(6); m > 0; m--) {
        const [a, b] = pick(RANGES);
        part += String.fromCodePoint(a + int(b - a + 1));
      }
    }
    parts.push(part);
    const sep = r();
    if (sep < 0.55) parts.push(" ");
    else if (sep < 0.6) parts.push(pick(SPACES));
  }
  return parts.join("");
}

/** `count` strings, the same for the same seed. */
export function tokenizerCorpus(count: number, seed = 20240611): string[] {
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(randomString(r));
  return out;
}
