/**
 * Locating test fixtures. Tests read test/fixtures (committed copies, see its README) first, then
 * ../shared/fixtures (the full set in this workplace). A test whose fixture is in neither place
 * skips with a message naming the missing file, so a clone with no ../shared still passes.
 */
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";

export const REPO_ROOT = resolve(import.meta.dirname, "..", "..");
export const LOCAL_FIXTURES = join(REPO_ROOT, "test", "fixtures");
export const SHARED_FIXTURES = resolve(REPO_ROOT, "..", "shared", "fixtures");

/** Absolute path of a fixture (relative to the fixtures root), or undefined when absent. */
export function fixturePath(rel: string): string | undefined {
  for (const base of [LOCAL_FIXTURES, SHARED_FIXTURES]) {
    const p = join(base, rel);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Like fixturePath but throws a clear message; use inside tests guarded by hasFixture. */
export function requireFixture(rel: string): string {
  const p = fixturePath(rel);
  if (!p) throw new Error(`missing fixture ${rel} (looked in test/fixtures and ../shared/fixtures)`);
  return p;
}

/** Files in a fixture folder matching `re`, from ../shared/fixtures when present (the full set). */
export function listFixtures(folder: string, re: RegExp): string[] {
  const seen = new Map<string, string>();
  for (const base of [SHARED_FIXTURES, LOCAL_FIXTURES]) {
    const dir = join(base, folder);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir))
      if (re.test(name) && !seen.has(name)) seen.set(name, join(dir, name));
  }
  return [...seen.values()].sort();
}

/** A label for `it.skipIf`/describe messages when a fixture is missing. */
export function missing(rel: string): string {
  return `skipped: fixture ${rel} not found in test/fixtures or ../shared/fixtures`;
}
