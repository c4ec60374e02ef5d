/**
 * Python's `datetime.now().strftime(fmt)` for the `strftime_now` global of chat templates
 * (HF transformers defines it exactly so), in the C/POSIX locale, on a naive local time.
 *
 * Python hands most directives to the platform strftime; this follows glibc in the C locale:
 * English day and month names, `%c` = "Fri Jul 26 12:00:00 2024", `%x` = "07/26/24", and glibc's
 * flags `-` (no padding), `_` (pad with spaces) and `0` (pad with zeros), as in "%-d". Because
 * the datetime is naive, `%z` and `%Z` give "" (as Python does). `%f` is Python's microseconds.
 * An unknown directive is kept as written. Not here: locales other than C, `%E`/`%O` modifiers.
 */

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

const DAY_MS = 86_400_000;

/** Day of the year, 0-based, of a local date. */
function dayOfYear(d: Date): number {
  return Math.round(
    (Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 1)) / DAY_MS,
  );
}

/** ISO 8601 week-based year and week number of a local date. */
function isoWeek(d: Date): { year: number; week: number } {
  // The Thursday of the date's week decides the year; week 1 is the week holding January 4th.
  const thursday = Date.UTC(d.getFullYear(), d.getMonth(), d.getDate() - ((d.getDay() + 6) % 7) + 3);
  const year = new Date(thursday).getUTCFullYear();
  const jan4 = new Date(Date.UTC(year, 0, 4));
  const firstThursday = Date.UTC(year, 0, 4 - ((jan4.getUTCDay() + 6) % 7) + 3);
  return { year, week: 1 + Math.round((thursday - firstThursday) / (7 * DAY_MS)) };
}

/** A number padded to `width` with `pad` unless the flag says otherwise. */
function num(n: number, width: number, pad: "0" | " ", flag: string): string {
  const s = String(n);
  if (flag === "-") return s;
  const p = flag === "_" ? " " : flag === "0" ? "0" : pad;
  return s.length >= width ? s : p.repeat(width - s.length) + s;
}

/** Format a local date like Python's naive datetime.strftime in the C locale. */
export function strftime(d: Date, format: string): string {
  return format.replace(/%([-_0]?)([a-zA-Z%+])/g, (whole, flag: string, c: string): string => {
    const h = d.getHours();
    switch (c) {
      case "%":
        return "%";
      case "a":
        return DAYS[d.getDay()]!.slice(0, 3);
      case "A":
        return DAYS[d.getDay()]!;
      case "b":
      case "h":
        return MONTHS[d.getMonth()]!.slice(0, 3);
      case "B":
        return MONTHS[d.getMonth()]!;
      case "c":
        return strftime(d, "%a %b %e %H:%M:%S %Y");
      case "C":
        return num(Math.floor(d.getFullYear() / 100), 2, "0", flag);
      case "d":
        return num(d.getDate(), 2, "0", flag);
      case "D":
      case "x":
        return strftime(d, "%m/%d/%y");
      case "e":
        return num(d.getDate(), 2, " ", flag);
      case "f":
        return num(d.getMilliseconds() * 1000, 6, "0", flag);
      case "F":
        return strftime(d, "%Y-%m-%d");
      case "G":
        return String(isoWeek(d).year);
      case "g":
        return num(isoWeek(d).year % 100, 2, "0", flag);
      case "H":
        return num(h, 2, "0", flag);
      case "I":
        return num(h % 12 === 0 ? 12 : h % 12, 2, "0", flag);
      case "j":
        return num(dayOfYear(d) + 1, 3, "0", flag);
      case "k":
        return num(h, 2, " ", flag);
      case "l":
        return num(h % 12 === 0 ? 12 : h % 12, 2, " ", flag);
      case "m":
        return num(d.getMonth() + 1, 2, "0", flag);
      case "M":
        return num(d.getMinutes(), 2, "0", flag);
      case "n":
        return "\n";
      case "p":
        return h < 12 ? "AM" : "PM";
      case "P":
        return h < 12 ? "am" : "pm";
      case "r":
        return strftime(d, "%I:%M:%S %p");
      case "R":
        return strftime(d, "%H:%M");
      case "s":
        return String(Math.floor(d.getTime() / 1000));
      case "S":
        return num(d.getSeconds(), 2, "0", flag);
      case "t":
        return "\t";
      case "T":
      case "X":
        return strftime(d, "%H:%M:%S");
      case "u":
        return String(d.getDay() === 0 ? 7 : d.getDay());
      case "U":
        return num(Math.floor((dayOfYear(d) + 7 - d.getDay()) / 7), 2, "0", flag);
      case "V":
        return num(isoWeek(d).week, 2, "0", flag);
      case "w":
        return String(d.getDay());
      case "W":
        return num(Math.floor((dayOfYear(d) + 7 - ((d.getDay() + 6) % 7)) / 7), 2, "0", flag);
      case "y":
        return num(d.getFullYear() % 100, 2, "0", flag);
      case "Y":
        return String(d.getFullYear());
      case "z":
      case "Z":
        return ""; // a naive datetime has no zone
      default:
        return whole;
    }
  });
}
