/**
 * The Modelfile parser and printer against Ollama's parser tests (ollama parser/parser_test.go:
 * TestParseFileFile, TrimSpace, Messages, Quoted, Parameters, Comments, FormatParseFile) and the
 * typed options of api/types.go; errors name line and column; parse(print(x)) equals x.
 */
import { describe, expect, it } from "vitest";
import { parseModelfile, printModelfile, quoteValue } from "../src/store/modelfile.ts";
import type { Modelfile } from "../src/store/types.ts";
import { isOwlError, type OwlError } from "../src/util/errors.ts";

function parseError(text: string): OwlError {
  try {
    parseModelfile(text);
  } catch (e) {
    if (isOwlError(e, "ERR_MODELFILE_PARSE")) return e;
    throw e;
  }
  throw new Error(`expected a parse error for ${JSON.stringify(text)}`);
}

const LLAMA3 =
  "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>";

describe("Modelfile parser (Ollama's parser_test.go cases)", () => {
  it("TestParseFileFile: every instruction, a multi-line template with trailing spaces after it", () => {
    const mf = parseModelfile(`
FROM model1
ADAPTER adapter1
LICENSE MIT
PARAMETER temperature 0.7
PARAMETER num_ctx 4096
TEMPLATE """${LLAMA3}"""    
`);
    expect(mf).toEqual({
      from: "model1",
      adapters: ["adapter1"],
      license: ["MIT"],
      params: { temperature: 0.7, num_ctx: 4096 },
      template: LLAMA3,
      messages: [],
    });
  });

  it("TestParseFileTrimSpace: bare values trimmed, quoted values kept as written", () => {
    const mf = parseModelfile(`
FROM "     model 1"
ADAPTER      adapter3
LICENSE "MIT       "
PARAMETER top_k        40
TEMPLATE """   {{ .Prompt }}   """    
`);
    expect(mf.from).toBe("     model 1");
    expect(mf.adapters).toEqual(["adapter3"]);
    expect(mf.license).toEqual(["MIT       "]);
    expect(mf.params).toEqual({ top_k: 40 });
    expect(mf.template).toBe("   {{ .Prompt }}   ");
  });

  it("TestParseFileMessages: roles, multi-line content, bad role, missing content", () => {
    expect(
      parseModelfile(`
FROM foo
MESSAGE system You are a file parser. Always parse things.
MESSAGE user Hey there!
MESSAGE assistant Hello, I want to parse all the things!
`).messages,
    ).toEqual([
      { role: "system", content: "You are a file parser. Always parse things." },
      { role: "user", content: "Hey there!" },
      { role: "assistant", content: "Hello, I want to parse all the things!" },
    ]);
    expect(
      parseModelfile(
        'FROM foo\nMESSAGE system """\nYou are a multiline file parser. Always parse things.\n"""\n\t\t\t',
      ).messages,
    ).toEqual([{ role: "system", content: "\nYou are a multiline file parser. Always parse things.\n" }]);
    const bad = parseError("\nFROM foo\nMESSAGE badguy I'm a bad guy!\n");
    expect(bad.message).toMatch(/line 3, column 9/);
    expect(bad.message).toContain('"system", "user" or "assistant"');
    expect(parseError("\nFROM foo\nMESSAGE system\n").message).toMatch(/line 3/);
    expect(parseError("\nFROM foo\nMESSAGE system").message).toMatch(/line 3/);
  });

  it("TestParseFileQuoted", () => {
    const sys = (s: string) => parseModelfile(`\nFROM foo\n${s}\n\t\t\t`).system;
    expect(sys('SYSTEM """\nThis is a\nmultiline system.\n"""')).toBe("\nThis is a\nmultiline system.\n");
    expect(sys('SYSTEM """\nThis is a\nmultiline system."""')).toBe("\nThis is a\nmultiline system.");
    expect(sys('SYSTEM """This is a\nmultiline system."""')).toBe("This is a\nmultiline system.");
    expect(sys('SYSTEM """This is a multiline system."""')).toBe("This is a multiline system.");
    expect(sys('SYSTEM """\nThis is a multiline system with "quotes".\n"""')).toBe(
      '\nThis is a multiline system with "quotes".\n',
    );
    expect(sys('SYSTEM """"""')).toBe("");
    expect(sys('SYSTEM ""')).toBe("");
    expect(sys(`SYSTEM "'"`)).toBe("'");
    expect(sys(`SYSTEM """''"'""'""'"'''''""'""'"""`)).toBe(`''"'""'""'"'''''""'""'`);
    expect(parseModelfile('\nFROM foo\nTEMPLATE """\n{{ .Prompt }}\n"""').template).toBe("\n{{ .Prompt }}\n");
    // Never closed: an error naming where the quote opened.
    expect(parseError('\nFROM foo\nSYSTEM """This is a multiline system.""\n\t\t\t').message).toMatch(
      /line 3, column 8: SYSTEM: the """ opened here is never closed/,
    );
    expect(parseError('\nFROM foo\nSYSTEM "\n\t\t\t').message).toMatch(/line 3, column 8/);
  });

  it("TestParseFileParameters: Ollama's typed options", () => {
    const cases: [string, string, unknown][] = [
      ["numa true", "numa", true],
      ["num_ctx 1", "num_ctx", 1],
      ["num_batch 1", "num_batch", 1],
      ["num_gpu 1", "num_gpu", 1],
      ["main_gpu 1", "main_gpu", 1],
      ["use_mmap true", "use_mmap", true],
      ["num_thread 1", "num_thread", 1],
      ["num_keep 1", "num_keep", 1],
      ["seed 1", "seed", 1],
      ["num_predict 1", "num_predict", 1],
      ["top_k 1", "top_k", 1],
      ["top_p 1.0", "top_p", 1],
      ["min_p 0.05", "min_p", 0.05],
      ["typical_p 1.0", "typical_p", 1],
      ["repeat_last_n 1", "repeat_last_n", 1],
      ["temperature 1.0", "temperature", 1],
      ["repeat_penalty 1.0", "repeat_penalty", 1],
      ["presence_penalty 1.0", "presence_penalty", 1],
      ["frequency_penalty 1.0", "frequency_penalty", 1],
      ["mirostat 2", "mirostat", 2],
      ["mirostat_tau 5.0", "mirostat_tau", 5],
      ["mirostat_eta 0.1", "mirostat_eta", 0.1],
      ["seed -1", "seed", -1],
      ["num_predict -2", "num_predict", -2],
      ["stop ### User:", "stop", ["### User:"]],
      ["stop ### User: ", "stop", ["### User:"]],
      ['stop "### User:"', "stop", ["### User:"]],
      ['stop "### User: "', "stop", ["### User: "]],
      ['stop """### User:"""', "stop", ["### User:"]],
      ['stop """### User:\n"""', "stop", ["### User:\n"]],
      ["stop <|endoftext|>", "stop", ["<|endoftext|>"]],
      ["stop <|eot_id|>", "stop", ["<|eot_id|>"]],
      ["stop </s>", "stop", ["</s>"]],
    ];
    for (const [line, name, value] of cases) {
      expect(parseModelfile(`FROM foo\nPARAMETER ${line}\n`).params, line).toEqual({ [name]: value });
    }
    // Deprecated options (Ollama: a warning, then dropped) are checked, then dropped.
    expect(parseModelfile("FROM foo\nPARAMETER penalize_newline true\n").params).toEqual({});
  });

  it("stop accumulates; other parameters: the last one wins", () => {
    const mf = parseModelfile(
      'FROM foo\nPARAMETER stop "<|im_end|>"\nPARAMETER temperature 0.1\nPARAMETER stop <|im_start|>\nPARAMETER temperature 0.9\n',
    );
    expect(mf.params).toEqual({ stop: ["<|im_end|>", "<|im_start|>"], temperature: 0.9 });
  });

  it("wrong parameter names and types: errors with line and column", () => {
    expect(parseError("FROM foo\n\nPARAMETER temperatur 0.5\n").message).toMatch(
      /line 3, column 11: unknown parameter "temperatur"; known: num_ctx/,
    );
    expect(parseError("FROM foo\nPARAMETER num_ctx 4k\n").message).toMatch(
      /line 2, column 19: parameter num_ctx must be an integer, found "4k"/,
    );
    expect(parseError("FROM foo\nPARAMETER num_ctx 1.5\n").message).toMatch(/must be an integer/);
    expect(parseError("FROM foo\nPARAMETER temperature hot\n").message).toMatch(
      /temperature must be a number/,
    );
    expect(parseError("FROM foo\nPARAMETER temperature NaN\n").message).toMatch(/must be a number/);
    expect(parseError("FROM foo\nPARAMETER use_mmap yes\n").message).toMatch(
      /use_mmap must be true or false/,
    );
    expect(parseError("FROM foo\nPARAMETER temperature\n").message).toMatch(/line 2/);
  });

  it("instructions are case-insensitive; comments and blank lines skipped; CRLF and a BOM accepted", () => {
    const mf = parseModelfile(
      "\uFEFF# a comment\r\n\r\nfrom foo\r\n  # indented comment\r\nParameter top_k 5\r\nsYsTeM hi # not a comment\r\n",
    );
    expect(mf).toEqual({
      from: "foo",
      params: { top_k: 5 },
      system: "hi # not a comment",
      adapters: [],
      license: [],
      messages: [],
    });
  });

  it("LICENSE and ADAPTER repeat; TEMPLATE and SYSTEM: the last one wins", () => {
    const mf = parseModelfile(
      "FROM x\nLICENSE a\nLICENSE b\nADAPTER l1.gguf\nADAPTER l2.gguf\nSYSTEM one\nSYSTEM two\n",
    );
    expect(mf.license).toEqual(["a", "b"]);
    expect(mf.adapters).toEqual(["l1.gguf", "l2.gguf"]);
    expect(mf.system).toBe("two");
  });

  it("errors: no FROM, an unknown instruction, a second FROM, DRAFT", () => {
    const noFrom = parseError("# only a comment\nSYSTEM hi\n");
    expect(noFrom.message).toMatch(/no FROM line/);
    expect(parseError("FROM foo\nFORM bar\n").message).toMatch(/line 2, column 1: expected an instruction/);
    expect(parseError("FROM foo\n  PARAMETERS x 1\n").message).toMatch(/line 2, column 3/);
    expect(parseError("FROM a\nFROM b\n").message).toMatch(
      /line 2, column 1: a second FROM \(the first is on line 1\)/,
    );
    expect(parseError("FROM a\nDRAFT ./b\n").message).toMatch(/DRAFT .* not supported/);
    expect(parseError("FROM\n").message).toMatch(/line 1/);
  });

  it("REQUIRES, RENDERER and PARSER (Ollama-specific) are accepted and ignored", () => {
    expect(parseModelfile("FROM a\nREQUIRES 0.14.0\nRENDERER qwen3\nPARSER qwen3\n").from).toBe("a");
  });
});

describe("Modelfile printer", () => {
  it("quotes only when needed, as Ollama's quote()", () => {
    expect(quoteValue("<|eot_id|>")).toBe("<|eot_id|>");
    expect(quoteValue("two words")).toBe("two words");
    expect(quoteValue(" padded ")).toBe('" padded "');
    expect(quoteValue("")).toBe('""');
    expect(quoteValue("a\nb")).toBe('"""a\nb"""');
    expect(quoteValue('"quoted"')).toBe('""quoted""');
  });

  it("prints in Ollama's order and reads back equal (TestParseFileFormatParseFile)", () => {
    const sources = [
      "\nFROM foo\nADAPTER adapter1\nLICENSE MIT\nPARAMETER top_k 3\nPARAMETER stop value2\nTEMPLATE template1\nMESSAGE system You are a file parser. Always parse things.\nMESSAGE user Hey there!\nMESSAGE assistant Hello, I want to parse all the things!\n",
      '\nFROM foo\nLICENSE """\nVery long and boring legal text.\nBlah blah blah.\n"Oh look, a quote!"\n"""\n\nMESSAGE system """\nYou are a store greeter. Always respond with "Hello!".\n"""\n',
      '\nFROM foo\nSYSTEM ""\n',
    ];
    for (const src of sources) {
      const mf = parseModelfile(src);
      expect(parseModelfile(printModelfile(mf))).toEqual(mf);
    }
    expect(
      printModelfile({
        from: "/x/blob",
        adapters: ["/x/lora"],
        template: "{{ .Prompt }}",
        system: "be brief",
        params: { temperature: 0.7, stop: ["a", "b c"] },
        license: ["MIT"],
        messages: [{ role: "user", content: "hi" }],
      }),
    ).toBe(
      "FROM /x/blob\nADAPTER /x/lora\nTEMPLATE {{ .Prompt }}\nSYSTEM be brief\nPARAMETER temperature 0.7\nPARAMETER stop a\nPARAMETER stop b c\nLICENSE MIT\nMESSAGE user hi\n",
    );
  });

  it("round trip: parse(print(x)) equals x over awkward values (seeded)", () => {
    // A small deterministic generator (mulberry32) of values made of the characters that matter.
    let seed = 12345;
    const rand = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const alphabet = ['"', '"', "'", " ", "\t", "\n", "#", "a", "b", "{", "}", "é", "🦉", "\\"];
    const value = () => {
      const n = Math.floor(rand() * 12);
      let s = "";
      for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
      return s;
    };
    // Printable in Modelfile syntax: no inner line ending in a quote (see quoteValue's NOTE).
    const printable = (v: string) =>
      v
        .split("\n")
        .slice(0, -1)
        .every((l) => !l.trimEnd().endsWith('"'));
    let tried = 0;
    for (let i = 0; i < 3000; i++) {
      const v = value();
      if (!printable(v)) continue;
      tried++;
      const x: Modelfile = {
        from: v.trim() === "" ? "x" : v,
        params: { stop: [v, "z"], temperature: 0.25 },
        system: v,
        template: v,
        adapters: v === "" ? [] : [v],
        license: [v, v],
        messages: [{ role: "assistant", content: v }],
      };
      const back = parseModelfile(printModelfile(x));
      expect(back, JSON.stringify(v)).toEqual(x);
    }
    expect(tried).toBeGreaterThan(1000);
  });
});
