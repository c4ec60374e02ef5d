/**
 * The in-process chat (`owl run` with no prompt) when its history outgrows the context: the oldest
 * messages go first (never a system message, never the new one), as Ollama's server does
 * (server/prompt.go chatPrompt), instead of failing the turn. The expected prompts are rendered
 * here from the message lists a turn should keep, with the same template, independently of the
 * chat's own bookkeeping. A runner stand-in records the prompts and answers with fixed text.
 * A long history moved into a small context drops many messages in one turn, with a handful of
 * renders (a binary search over how many go), not one per dropped message.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { localChat } from "../src/cli/chat.ts";
import type { GenerationResult, ModelRunner } from "../src/cli/run-backend.ts";
import { defaultRunParams } from "../src/cli/run-params.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { REPO_ROOT } from "./helpers/fixtures.ts";

const TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}<assistant>";
const ANSWER = "Tim and his dog played in the big park all day long.";

function fakeRunner(chatTemplate: string | undefined) {
  const tokenizer = Tokenizer.fromGgufFile(join(REPO_ROOT, "models", "stories260k.gguf"));
  const prompts: number[][] = [];
  const runner: ModelRunner = {
    backend: "owl",
    tokenizer,
    chatTemplate,
    nCtxTrain: 512,
    loadMs: 0,
    async generate(tokens, _params, onText): Promise<GenerationResult> {
      prompts.push([...tokens]);
      onText(ANSWER);
      const answer = tokenizer.encode(ANSWER, { addSpecial: false });
      return {
        tokens: answer,
        text: ANSWER,
        stopReason: "eog",
        stats: { promptTokens: tokens.length, promptMs: 0, evalTokens: answer.length, evalMs: 0, totalMs: 0 },
      };
    },
    memory: () => undefined,
    dispose: async () => {},
  };
  return { runner, prompts, tokenizer };
}

const signal = new AbortController().signal;

describe("in-process chat past the context", () => {
  it("a chat template: the oldest messages are dropped until the prompt leaves room for an answer", async () => {
    const { runner, prompts, tokenizer } = fakeRunner(TEMPLATE);
    const chat = localChat(runner);
    const lines = [
      "Tell me a story about a cat.",
      "Now one about a dog.",
      "And one about a bird?",
      "Thanks!",
    ];
    const params = { ...defaultRunParams(), num_ctx: 70 };
    for (const [i, line] of lines.entries()) await chat.send(line, params, () => {}, signal, i === 0);
    // What each turn should send: the longest tail of the history (ending with the new line) whose
    // rendering is under 70 tokens, rendered here by hand.
    const render = (msgs: { role: string; content: string }[]) =>
      tokenizer.encode(`${msgs.map((m) => `<${m.role}>${m.content}\n`).join("")}<assistant>`, {
        addSpecial: true,
        parseSpecial: true,
      });
    const history: { role: string; content: string }[] = [];
    for (const [i, line] of lines.entries()) {
      history.push({ role: "user", content: line });
      let from = 0;
      while (render(history.slice(from)).length >= 70 && from < history.length - 1) from++;
      expect(prompts[i]).toEqual(render(history.slice(from)));
      expect(prompts[i]!.length).toBeLessThan(70);
      history.push({ role: "assistant", content: ANSWER });
    }
    // The last turn lost the first question: the context could not hold it.
    expect(tokenizer.decode(prompts[3]!)).not.toContain("cat");
    expect(tokenizer.decode(prompts[3]!)).toContain("Thanks!");
  });

  it("a system message stays while older turns go", async () => {
    const { runner, prompts, tokenizer } = fakeRunner(TEMPLATE);
    const stored = {
      name: "m:latest",
      system: "You tell short stories.",
      messages: [],
      template: undefined,
    } as unknown as Parameters<typeof localChat>[1];
    const chat = localChat(runner, stored);
    const params = { ...defaultRunParams(), num_ctx: 80 };
    for (const line of ["One about a cat.", "One about a dog.", "One about a bird.", "One about a fish."])
      await chat.send(line, params, () => {}, signal, false);
    const last = tokenizer.decode(prompts.at(-1)!);
    // (decode shows BOS as "<s> ")
    expect(last).toMatch(/^<s> <system>You tell short stories\.\n<user>/);
    expect(last).not.toContain("cat");
    expect(last).toContain("fish");
    expect(prompts.at(-1)!.length).toBeLessThan(80);
  });

  it.each([
    ["a chat template", undefined],
    ["a stored model's system message", "You tell short stories."],
  ])(
    "a long history into a small context: %s; many messages dropped at once, in few renders",
    async (_, system) => {
      const { runner, prompts, tokenizer } = fakeRunner(TEMPLATE);
      const stored =
        system === undefined
          ? undefined
          : ({ name: "m:latest", system, messages: [], template: undefined } as unknown as Parameters<
              typeof localChat
            >[1]);
      const chat = localChat(runner, stored);
      const animals = ["cat", "dog", "bird", "fish", "frog", "duck", "bear", "fox", "owl"];
      const big = { ...defaultRunParams(), num_ctx: 512 };
      for (const a of animals) await chat.send(`A story about a ${a}.`, big, () => {}, signal, false);
      // Nothing dropped so far: every turn sent the whole history.
      const render = (msgs: { role: string; content: string }[]) =>
        tokenizer.encode(`${msgs.map((m) => `<${m.role}>${m.content}\n`).join("")}<assistant>`, {
          addSpecial: true,
          parseSpecial: true,
        });
      const head = system === undefined ? [] : [{ role: "system", content: system }];
      const history: { role: string; content: string }[] = [];
      for (const a of animals)
        history.push(
          { role: "user", content: `A story about a ${a}.` },
          { role: "assistant", content: ANSWER },
        );
      expect(prompts.at(-1)).toEqual(render([...head, ...history.slice(0, -1)]));

      // The next turn in a context of 100 tokens: the longest tail that fits, rendered by hand.
      let renders = 0;
      const encode = tokenizer.encode.bind(tokenizer);
      tokenizer.encode = ((...args: Parameters<typeof encode>) => {
        renders++;
        return encode(...args);
      }) as typeof tokenizer.encode;
      await chat.send("One more, about a hen.", { ...big, num_ctx: 100 }, () => {}, signal, false);
      tokenizer.encode = encode;
      history.push({ role: "user", content: "One more, about a hen." });
      let from = 0;
      while (render([...head, ...history.slice(from)]).length >= 100 && from < history.length - 1) from++;
      expect(from).toBeGreaterThanOrEqual(16);
      expect(from).toBeLessThan(history.length - 1);
      expect(prompts.at(-1)).toEqual(render([...head, ...history.slice(from)]));
      expect(prompts.at(-1)!.length).toBeLessThan(100);
      // One render of the whole history, a binary search over the 18 messages that may go (at
      // most 5 renders) and one more at most; one encode is the stand-in runner's answer. Dropping
      // one at a time took a render per dropped message.
      expect(renders).toBeLessThanOrEqual(1 + 5 + 1 + 1);
      // The chat goes on from the shortened history.
      await chat.send("Thanks!", { ...big, num_ctx: 512 }, () => {}, signal, false);
      history.push({ role: "assistant", content: ANSWER }, { role: "user", content: "Thanks!" });
      expect(prompts.at(-1)).toEqual(render([...head, ...history.slice(from)]));
    },
  );

  it("no chat template: the text so far keeps its first token (BOS) and its latest half", async () => {
    const { runner, prompts, tokenizer } = fakeRunner(undefined);
    const chat = localChat(runner);
    const params = { ...defaultRunParams(), num_ctx: 40 };
    await chat.send("Once upon a time", params, () => {}, signal, true);
    await chat.send(" there was a cat named Tom.", params, () => {}, signal, false);
    await chat.send(" He liked milk.", params, () => {}, signal, false);
    const bos = tokenizer.encode("x")[0];
    for (const p of prompts) {
      expect(p[0]).toBe(bos);
      expect(p.length).toBeLessThan(40);
    }
    // The third prompt is BOS + the last 20 tokens of everything so far.
    const all = [
      ...prompts[1]!,
      ...tokenizer.encode(ANSWER, { addSpecial: false }),
      ...tokenizer.encode(" He liked milk.", { addSpecial: false }),
    ];
    expect(prompts[2]).toEqual([bos, ...all.slice(1).slice(-20)]);
  });
});

describe("in-process chat with a thinking model", () => {
  it("shows the thinking apart, as through a server, and keeps it out of the history", async () => {
    const { runner, prompts, tokenizer } = fakeRunner(undefined);
    runner.generate = async (tokens, _params, onText): Promise<GenerationResult> => {
      prompts.push([...tokens]);
      const text = "I plan.</think>Answer.";
      onText(text);
      return {
        tokens: tokenizer.encode(text, { addSpecial: false }),
        text,
        stopReason: "eog",
        stats: { promptTokens: tokens.length, promptMs: 0, evalTokens: 1, evalMs: 0, totalMs: 0 },
      };
    };
    const stored = {
      name: "t:latest",
      template: "{{ range .Messages }}<{{ .Role }}>{{ .Content }}\n{{ end }}<assistant><think>",
      messages: [],
    } as unknown as Parameters<typeof localChat>[1];
    const chat = localChat(runner, stored, {
      think: true,
      tags: { open: "<think>", close: "</think>" },
      hide: false,
    });
    let shown = "";
    const params = defaultRunParams();
    const a = await chat.send("Hi", params, (t) => (shown += t), signal, true);
    expect(shown).toBe("Thinking...\nI plan.\n...done thinking.\n\nAnswer.");
    expect(a.text).toBe("Answer.");
    await chat.send("More", params, () => {}, signal, false);
    const second = tokenizer.decode(prompts[1]!);
    expect(second).toContain("<assistant>Answer.\n<user>More");
    expect(second).not.toContain("I plan");
  });
});
