#!/usr/bin/env python3
"""Render the 12 fixture chat templates with Python Jinja2 on conversations that
reference_renders.json does not cover (tool calls and results, reasoning fields, multi-part and
None contents, thinking switches), set up as Hugging Face transformers' apply_chat_template:
ImmutableSandboxedEnvironment(trim_blocks, lstrip_blocks, loopcontrols, a generation
passthrough), tojson = json.dumps(ensure_ascii=False), raise_exception, strftime_now frozen at
2024-07-26T12:00:00. Writes test/fixtures/templates/jinja2_renders_owl.json, the oracle of
test/chat-template-jinja2.test.ts. Not run by npm test; needs Python 3 and jinja2 3.1.6.

Usage: python3 scripts/render-chat-templates.py
"""
import json
import os
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DIR = os.path.join(ROOT, "test", "fixtures", "templates")
NOW = datetime(2024, 7, 26, 12, 0, 0)


class Generation(Extension):
    """transformers' {% generation %} tag, rendered as its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = lambda fmt: NOW.strftime(fmt)

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City"},
                "days": {"type": "integer"},
                "units": {"type": "string", "enum": ["c", "f"]},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["city"],
        },
    },
}

CONVERSATIONS = {
    "tool_roundtrip": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call12345",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": '{"temp": 21.5}'},
        {"role": "assistant", "content": "It is 21.5 C."},
        {"role": "user", "content": "Thanks"},
    ],
    "reasoning": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "two plus two", "thinking": "two plus two"},
        {"role": "user", "content": "3+3?"},
    ],
    "think_in_content": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
        {"role": "user", "content": "ok"},
    ],
    "parts": [{"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]}],
    "content_none_toolcall": [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "abcdefghi", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
            ],
        },
    ],
}

EXTRAS = [{"enable_thinking": True}, {"enable_thinking": False}, {"thinking": True}, {"reasoning_effort": "high"}]


def render(source, variables):
    try:
        return {"output": env.from_string(source).render(**variables)}
    except TemplateError as e:
        if type(e) is TemplateError:  # raise_exception
            return {"raised": str(e)}
        return {"error": f"{type(e).__name__}: {e}"}
    except Exception as e:  # what the template does with these inputs fails in Jinja2 too
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    ref = json.load(open(os.path.join(DIR, "reference_renders.json"), encoding="utf-8"))
    cases = []
    for name, t in ref["templates"].items():
        source = open(os.path.join(DIR, t["file"]), encoding="utf-8").read()
        tokens = {k: v for k, v in t["cases"][0]["variables"].items() if k in ("bos_token", "eos_token")}
        runs = [(c, tools, {}) for c in CONVERSATIONS for tools in (False, True)]
        runs += [("reasoning", False, extra) for extra in EXTRAS]
        for conversation, tools, extra in runs:
            variables = dict(tokens, messages=CONVERSATIONS[conversation], add_generation_prompt=True, **extra)
            if tools:
                variables["tools"] = [TOOL]
            case = {"template": name, "conversation": conversation, "tools": tools, "extra": extra, **tokens}
            case.update(render(source, variables))
            cases.append(case)
    out = {
        "renderer": f"Python jinja2 {jinja2.__version__}, set up as transformers' apply_chat_template "
        "(see scripts/render-chat-templates.py); strftime_now frozen at 2024-07-26T12:00:00; "
        "add_generation_prompt true; tools = [tool] when the case says so",
        "tool": TOOL,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    path = os.path.join(DIR, "jinja2_renders_owl.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{path}: {len(cases)} cases")


if __name__ == "__main__":
    main()
