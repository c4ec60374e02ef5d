/**
 * `owl tokenize` and `owl detokenize`, run in process with captureIO against the bundled
 * stories260K GGUF (ids from llama2.c run.c: greedy_once_upon_a_time_n200.json prompt_tokens).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseIds } from "../src/cli/commands/tokenize.ts";
import { captureIO } from "../src/cli/io.ts";
import { runCli } from "../src/cli/main.ts";
import { fixturePath, REPO_ROOT } from "./helpers/fixtures.ts";

const MODEL = `${REPO_ROOT}/models/stories260k.gguf`;

async function owl(args: string[], stdin?: string) {
  const io = { ...captureIO(), ...(stdin === undefined ? {} : { readStdin: async () => stdin }) };
  const code = await runCli(args, io);
  return { code, out: io.stdout(), err: io.stderr() };
}

describe("owl tokenize", () => {
  it('prints "Once upon a time" as run.c\'s prompt tokens', async () => {
    const ref = JSON.parse(
      readFileSync(fixturePath("llama2c/reference/greedy_once_upon_a_time_n200.json")!, "utf8"),
    ) as { prompt_tokens: number[] };
    const r = await owl(["tokenize", MODEL, "Once upon a time"]);
    expect(r).toEqual({ code: 0, out: "1 403 407 261 378\n", err: "" });
    expect(r.out.trim().split(" ").map(Number)).toEqual(ref.prompt_tokens);
  });

  it("--no-bos, --pieces, --special", async () => {
    expect((await owl(["tokenize", MODEL, "Once upon a time", "--no-bos"])).out).toBe("403 407 261 378\n");
    const pieces = await owl(["tokenize", MODEL, "Hi\n🐶", "--pieces"]);
    expect(pieces.code).toBe(0);
    expect(pieces.out.split("\n").slice(0, 2)).toEqual(["     1 -> '<s>'", "   320 -> ' H'"]);
    expect(pieces.out).toContain("-> '\\n'");
    expect(pieces.out).toContain("-> '<0xF0>'");
    expect((await owl(["tokenize", MODEL, "<s>a", "--no-bos"])).out).not.toMatch(/^1 /);
    expect((await owl(["tokenize", MODEL, "<s>a", "--no-bos", "--special"])).out).toMatch(/^1 /);
  });

  it('reads the text from stdin when it is "-"', async () => {
    const r = await owl(["tokenize", MODEL, "-"], "Once upon a time");
    expect(r.out).toBe("1 403 407 261 378\n");
  });

  it("reports a missing model as an error", async () => {
    const r = await owl(["tokenize", `${REPO_ROOT}/models/nope.gguf`, "x"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: /);
  });
});

describe("owl detokenize", () => {
  it("takes ids as separate arguments or one list", async () => {
    for (const args of [
      ["1", "403", "407", "261", "378"],
      ["1 403 407 261 378"],
      ["1,403,407", "261", "378"],
      ["[1, 403, 407, 261, 378]"],
    ]) {
      const r = await owl(["detokenize", MODEL, ...args]);
      expect(r).toEqual({ code: 0, out: "<s> Once upon a time\n", err: "" });
    }
    expect((await owl(["detokenize", MODEL, "403", "407"])).out).toBe("Once upon\n");
    expect((await owl(["detokenize", MODEL, "1", "403", "--hide-special"])).out).toBe(" Once\n");
  });

  it("rejects ids that are not ids, or not in the vocabulary", async () => {
    const bad = await owl(["detokenize", MODEL, "1", "x2"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/"x2" is not a token id/);
    const range = await owl(["detokenize", MODEL, "512"]);
    expect(range.code).toBe(1);
    expect(range.err).toMatch(/token id 512 is out of range/);
    expect(parseIds([" 7 ,8", "[9]"])).toEqual([7, 8, 9]);
  });
});
