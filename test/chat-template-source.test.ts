/**
 * Finding a model's chat templates (GGUF metadata, Hugging Face tokenizer_config.json and side
 * files), choosing one for a request, and the BOS/EOS texts from a vocabulary; then the real
 * chat template stored in llama.cpp's phi-3 vocab GGUF, rendered (expected text hand-written
 * from reading that template).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  type GgufMetadata,
  getNumber,
  getStringArray,
  gstr,
  gu32,
  openGguf,
} from "../src/formats/gguf/index.ts";
import { TOKENIZER } from "../src/formats/gguf/keys.ts";
import { compileChatTemplate, defaultChatTemplate } from "../src/tokenizer/chat-template.ts";
import {
  chatTemplateFromGgufMetadata,
  chatTemplateFromTokenizerConfig,
  chatTemplateTokens,
  readHfChatTemplates,
  selectChatTemplate,
} from "../src/tokenizer/chat-template-source.ts";
import { isOwlError, type OwlErrorCode } from "../src/util/errors.ts";
import { fixturePath, missing } from "./helpers/fixtures.ts";

function expectCode(f: () => unknown, code: OwlErrorCode): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(isOwlError(err, code), String(err)).toBe(true);
}

describe("chat templates in GGUF metadata", () => {
  it("reads tokenizer.chat_template and the named tokenizer.chat_template.<name> variants", () => {
    const md: GgufMetadata = new Map([
      ["general.architecture", gstr("llama")],
      ["tokenizer.chat_template", gstr("main")],
      ["tokenizer.chat_template.tool_use", gstr("tools")],
      ["tokenizer.chat_template.rag", gstr("rag")],
    ]);
    const t = chatTemplateFromGgufMetadata(md);
    expect(t?.default).toBe("main");
    expect([...(t?.named ?? [])]).toEqual([
      ["tool_use", "tools"],
      ["rag", "rag"],
    ]);
  });

  it("gives undefined without templates and a typed error for a template that is not a string", () => {
    expect(chatTemplateFromGgufMetadata(new Map([["general.architecture", gstr("llama")]]))).toBeUndefined();
    expectCode(
      () => chatTemplateFromGgufMetadata(new Map([["tokenizer.chat_template", gu32(1)]])),
      "ERR_GGUF_METADATA_TYPE",
    );
  });
});

describe("chat templates in Hugging Face files", () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), "owl-chat-template-"));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("reads tokenizer_config.json's chat_template as a string or a list of {name, template}", () => {
    expect(chatTemplateFromTokenizerConfig({ chat_template: "t" })).toEqual({
      default: "t",
      named: new Map(),
    });
    expect(
      chatTemplateFromTokenizerConfig({
        chat_template: [
          { name: "default", template: "d" },
          { name: "tool_use", template: "u" },
        ],
      }),
    ).toEqual({ default: "d", named: new Map([["tool_use", "u"]]) });
    expect(chatTemplateFromTokenizerConfig({ bos_token: "<s>" })).toBeUndefined();
    expect(chatTemplateFromTokenizerConfig({ chat_template: null })).toBeUndefined();
    expectCode(() => chatTemplateFromTokenizerConfig({ chat_template: 3 }), "ERR_INVALID_ARGUMENT");
    expectCode(
      () => chatTemplateFromTokenizerConfig({ chat_template: [{ name: "x" }] }),
      "ERR_INVALID_ARGUMENT",
    );
    expectCode(() => chatTemplateFromTokenizerConfig([]), "ERR_INVALID_ARGUMENT");
  });

  it("reads a model directory: chat_template.jinja wins over the config, extra templates are named", () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, "tokenizer_config.json"),
      JSON.stringify({
        chat_template: [
          { name: "default", template: "from config" },
          { name: "tool_use", template: "config tool_use" },
          { name: "rag", template: "config rag" },
        ],
      }),
    );
    writeFileSync(join(dir, "chat_template.jinja"), "from file\n");
    mkdirSync(join(dir, "additional_chat_templates"));
    writeFileSync(join(dir, "additional_chat_templates", "tool_use.jinja"), "file tool_use");
    const t = readHfChatTemplates(dir);
    expect(t?.default).toBe("from file\n");
    expect(t?.named).toEqual(
      new Map([
        ["tool_use", "file tool_use"],
        ["rag", "config rag"],
      ]),
    );
  });

  it("falls back to a processor's chat_template.json, and gives undefined for a directory without templates", () => {
    const dir = tempDir();
    expect(readHfChatTemplates(dir)).toBeUndefined();
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: "</s>" }));
    writeFileSync(join(dir, "chat_template.json"), JSON.stringify({ chat_template: "processor" }));
    expect(readHfChatTemplates(dir)?.default).toBe("processor");
    writeFileSync(join(dir, "tokenizer_config.json"), "{ not json");
    expectCode(() => readHfChatTemplates(dir), "ERR_INVALID_ARGUMENT");
  });
});

describe("selectChatTemplate", () => {
  const both = { default: "d", named: new Map([["tool_use", "u"]]) };

  it("picks tool_use for requests with tools, else the default, as transformers and llama.cpp do", () => {
    expect(selectChatTemplate(both)).toEqual({ name: "default", source: "d", fallback: false });
    expect(selectChatTemplate(both, { hasTools: true })).toEqual({
      name: "tool_use",
      source: "u",
      fallback: false,
    });
    expect(selectChatTemplate({ default: "d", named: new Map() }, { hasTools: true }).name).toBe("default");
    expect(selectChatTemplate({ default: undefined, named: new Map([["tool_use", "u"]]) }).name).toBe(
      "tool_use",
    );
  });

  it("honours a name asked for, and refuses a name the model lacks", () => {
    expect(selectChatTemplate(both, { name: "tool_use" }).source).toBe("u");
    expect(selectChatTemplate(both, { name: "default", hasTools: true }).source).toBe("d");
    expectCode(() => selectChatTemplate(both, { name: "rag" }), "ERR_INVALID_ARGUMENT");
  });

  it("falls back to defaultChatTemplate (ChatML) for a model without a template", () => {
    expect(selectChatTemplate(undefined)).toEqual({
      name: "fallback",
      source: defaultChatTemplate,
      fallback: true,
    });
  });
});

describe("chatTemplateTokens", () => {
  it("gives the texts of the vocabulary's BOS and EOS tokens, when it has them", () => {
    const tokens = ["<unk>", "<s>", "</s>"];
    expect(chatTemplateTokens({ tokens, bos: 1, eos: 2 })).toEqual({ bosToken: "<s>", eosToken: "</s>" });
    expect(chatTemplateTokens({ tokens, bos: undefined, eos: 2 })).toEqual({ eosToken: "</s>" });
  });
});

const PHI3 = "tokenizer/ggml-vocab-phi-3.gguf";
const phi3 = fixturePath(PHI3);

describe.skipIf(!phi3)(
  `the chat template of llama.cpp's phi-3 vocab GGUF ${phi3 ? "" : missing(PHI3)}`,
  () => {
    it("renders a conversation with the template and BOS text read from the file", () => {
      const file = openGguf(phi3!);
      try {
        const templates = chatTemplateFromGgufMetadata(file.metadata);
        const selected = selectChatTemplate(templates);
        expect(selected.fallback).toBe(false);
        const tokens = getStringArray(file.metadata, TOKENIZER.tokens) ?? [];
        const special = chatTemplateTokens({
          tokens,
          bos: getNumber(file.metadata, TOKENIZER.bosId),
          eos: getNumber(file.metadata, TOKENIZER.eosId),
        });
        expect(special).toEqual({ bosToken: "<s>", eosToken: "<|endoftext|>" });
        const template = compileChatTemplate(selected.source, { name: `${PHI3} tokenizer.chat_template` });
        // Phi-3's first template ignores system messages and always ends a user turn with the
        // assistant header (it has no add_generation_prompt branch).
        const out = template.render({
          messages: [
            { role: "system", content: "Be kind." },
            { role: "user", content: "Hi" },
            { role: "assistant", content: "Hello!" },
            { role: "user", content: "How are you?" },
          ],
          addGenerationPrompt: true,
          ...special,
        });
        expect(out).toBe(
          "<s><|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nHow are you?<|end|>\n<|assistant|>\n",
        );
      } finally {
        file.close();
      }
    });
  },
);
