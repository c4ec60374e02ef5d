/**
 * Model names against Ollama's own test table (ollama types/model/name_test.go: testCases for
 * fully qualified names, TestDisplayShortest, TestParseNameParts) plus owl's path-safety cases:
 * nothing that could leave the manifests directory is a valid name.
 */
import { describe, expect, it } from "vitest";
import { displayName, isValidModelName, parseModelName, sameModelName } from "../src/store/names.ts";
import { isOwlError } from "../src/util/errors.ts";

const part80 = "x".repeat(80);
const part350 = "h".repeat(350);

describe("model names (Ollama's rules)", () => {
  // Ollama's testCases, fully qualified ones (ParseNameBare without defaults there; with the
  // defaults here, so only the entries whose validity does not depend on defaults are taken).
  const ollamaCases: [string, boolean][] = [
    ["", false],
    ["_why/_the/_lucky:_stiff", true],
    ["h/n/m:t", true],
    ["host/namespace/model:tag", true],
    [`${part80}/${part80}/${part80}:${part80}`, true],
    [`${part350}/${part80}/${part80}:${part80}`, true],
    ["h/nn/mm:t", true],
    ["n/m:", false],
    ["@t", false],
    ["m@d", false],
    ["^", false],
    ["mm:", false],
    ["/nn/mm", false],
    ["//", false],
    ["//mm", false],
    ["hh//", false],
    ["//mm:@", false],
    ["00@", false],
    ["@", false],
    ["-hh/nn/mm:tt", false],
    ["hh/-nn/mm:tt", false],
    ["hh/nn/-mm:tt", false],
    ["hh/nn/mm:-tt", false],
    ["host:https/namespace/model:tag", true],
    ["host/name:space/model:tag", false],
  ];
  for (const [name, valid] of ollamaCases) {
    it(`${JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name)} is ${valid ? "valid" : "invalid"}`, () => {
      expect(isValidModelName(name)).toBe(valid);
    });
  }

  it("fills in Ollama's defaults and keeps the parts (name_test.go TestParseNameParts)", () => {
    expect(parseModelName("registry.ollama.ai/library/dolphin-mistral:7b-v2.6-dpo-laser-q6_K")).toEqual({
      host: "registry.ollama.ai",
      namespace: "library",
      model: "dolphin-mistral",
      tag: "7b-v2.6-dpo-laser-q6_K",
    });
    expect(parseModelName("scheme://host:port/namespace/model:tag")).toEqual({
      host: "host:port",
      namespace: "namespace",
      model: "model",
      tag: "tag",
    });
    expect(parseModelName("host:port/namespace/model")).toEqual({
      host: "host:port",
      namespace: "namespace",
      model: "model",
      tag: "latest",
    });
    expect(parseModelName("namespace/model")).toEqual({
      host: "registry.ollama.ai",
      namespace: "namespace",
      model: "model",
      tag: "latest",
    });
    expect(parseModelName("model")).toEqual({
      host: "registry.ollama.ai",
      namespace: "library",
      model: "model",
      tag: "latest",
    });
  });

  it("lengths: 80 characters a part, 350 for the host", () => {
    expect(isValidModelName(`${"m".repeat(81)}`)).toBe(false);
    expect(isValidModelName(`m:${"t".repeat(81)}`)).toBe(false);
    expect(isValidModelName(`${"h".repeat(351)}/n/m:t`)).toBe(false);
    expect(isValidModelName("m".repeat(80))).toBe(true);
  });

  it("displays names as Ollama's DisplayShortest", () => {
    const cases: [string, string][] = [
      ["registry.ollama.ai/library/model:latest", "model:latest"],
      ["registry.ollama.ai/library/model:tag", "model:tag"],
      ["registry.ollama.ai/namespace/model:tag", "namespace/model:tag"],
      ["host/namespace/model:tag", "host/namespace/model:tag"],
      ["host/library/model:tag", "host/library/model:tag"],
      ["stories260k", "stories260k:latest"],
    ];
    for (const [inp, want] of cases) expect(displayName(parseModelName(inp))).toBe(want);
  });

  it("compares case-insensitively", () => {
    expect(sameModelName(parseModelName("Llama3:Latest"), parseModelName("llama3"))).toBe(true);
    expect(sameModelName(parseModelName("a/b:c"), parseModelName("a/b:d"))).toBe(false);
  });

  it("refuses every path-traversal shape with ERR_INVALID_NAME saying what is allowed", () => {
    const bad = [
      "..",
      "../x",
      "x/..",
      "x/../y",
      "a/b/../c",
      "a/b/c/d",
      "a/b/c/d:e",
      "/etc/passwd",
      "/abs",
      "a\\b",
      "..\\x",
      "a\0b",
      "a//b",
      "model:../x",
      "model:a/b",
      "a..b",
      ".hidden",
      "m: t",
      "m t",
      "a/./b",
      "./x",
      "~/x",
    ];
    for (const name of bad) {
      let err: unknown;
      try {
        parseModelName(name);
      } catch (e) {
        err = e;
      }
      expect(isOwlError(err, "ERR_INVALID_NAME"), JSON.stringify(name)).toBe(true);
      if (isOwlError(err)) {
        expect(err.message).toContain(JSON.stringify(name));
        expect(err.hint).toContain("[host/][namespace/]model[:tag]");
      }
    }
  });
});
