/**
 * The 12 fixture templates on conversations reference_renders.json lacks (tool calls and
 * results, reasoning fields, multi-part and None contents, thinking switches), against what
 * Python Jinja2 renders in transformers' set-up (test/fixtures/templates/jinja2_renders_owl.json,
 * made by scripts/render-chat-templates.py). Where Jinja2 fails on the input (a template that
 * concatenates a list to a string, say), owl must fail too, with ERR_TEMPLATE_RENDER, or with
 * ERR_TEMPLATE_RAISED and the same message where the template raised.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  type ChatMessage,
  type CompiledChatTemplate,
  compileChatTemplate,
  type ToolDefinition,
} from "../src/tokenizer/chat-template.ts";
import { OwlError } from "../src/util/errors.ts";
import { fixturePath, missing } from "./helpers/fixtures.ts";

interface Case {
  template: string;
  conversation: string;
  tools: boolean;
  extra: Record<string, unknown>;
  bos_token?: string;
  eos_token?: string;
  output?: string;
  error?: string;
  raised?: string;
}

const RENDERS = "templates/jinja2_renders_owl.json";
const REF = "templates/reference_renders.json";
const rendersPath = fixturePath(RENDERS);
const refPath = fixturePath(REF);

describe.skipIf(!rendersPath || !refPath)(
  `chat templates against Jinja2 on more conversations ${rendersPath && refPath ? "" : missing(RENDERS)}`,
  () => {
    const data = JSON.parse(readFileSync(rendersPath!, "utf8")) as {
      tool: ToolDefinition;
      conversations: Record<string, ChatMessage[]>;
      cases: Case[];
    };
    const ref = JSON.parse(readFileSync(refPath!, "utf8")) as { templates: Record<string, { file: string }> };
    const compiled = new Map<string, CompiledChatTemplate>();
    const template = (name: string) => {
      let t = compiled.get(name);
      if (!t) {
        const file = ref.templates[name]?.file;
        if (!file) throw new Error(`no template ${name} in ${REF}`);
        t = compileChatTemplate(readFileSync(join(dirname(refPath!), file), "utf8"), { name });
        compiled.set(name, t);
      }
      return t;
    };

    for (const c of data.cases) {
      const label = `${c.template} ${c.conversation}${c.tools ? " +tools" : ""} ${JSON.stringify(c.extra)}`;
      it(label, () => {
        const render = () =>
          template(c.template).render({
            messages: data.conversations[c.conversation] ?? [],
            tools: c.tools ? [data.tool] : undefined,
            addGenerationPrompt: true,
            bosToken: c.bos_token,
            eosToken: c.eos_token,
            extra: c.extra,
            now: new Date(2024, 6, 26, 12, 0, 0),
          });
        if (c.output !== undefined) {
          expect(render()).toBe(c.output);
          return;
        }
        let thrown: unknown;
        try {
          render();
        } catch (e) {
          thrown = e;
        }
        expect(thrown, `Jinja2 failed with ${c.error ?? c.raised}`).toBeInstanceOf(OwlError);
        const e = thrown as OwlError;
        if (c.raised !== undefined) {
          expect(e.code).toBe("ERR_TEMPLATE_RAISED");
          expect(e.message).toBe(c.raised);
        } else {
          expect(e.code, `Jinja2: ${c.error}; owl: ${e.message}`).toBe("ERR_TEMPLATE_RENDER");
        }
      });
    }
  },
);
