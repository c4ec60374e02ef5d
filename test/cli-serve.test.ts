/**
 * `owl serve`, `owl ps`, `owl stop` and `owl run` through a server, as a user runs them: each a
 * real `node bin/owl.js` child process with OWL_HOME in a temp dir and OWL_HOST on a free
 * loopback port (never the real ~/.owl or port 11434). The server answers Ollama's /api/ps as
 * `ollama ps` prints it, `owl run <name>` streams the same greedy text through the server as in
 * process (and the server's request log shows it went there), `owl stop` unloads, SIGTERM exits 0,
 * a wildcard bind without OWL_API_KEYS is refused, and with keys a request without one gets 401.
 * Not here: the HTTP routes themselves (server-*.test.ts), `owl run` in process (cli-run.test.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatUntil, humanBytes, humanDuration, renderRunning } from "../src/cli/commands/ps.ts";
import type { RunIO } from "../src/cli/commands/run.ts";
import { resolveRunTarget } from "../src/cli/commands/run.ts";
import { captureIO } from "../src/cli/io.ts";
import { runCli } from "../src/cli/main.ts";
import { defaultRunParams, serverOptions, setParam } from "../src/cli/run-params.ts";
import { ModelStore } from "../src/store/store.ts";
import { REPO_ROOT } from "./helpers/fixtures.ts";

const OWL = join(REPO_ROOT, "bin", "owl.js");

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

interface Result {
  code: number | null;
  out: string;
  err: string;
}

function owl(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<Result> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [OWL, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rej(new Error(`owl ${args.join(" ")} took over ${timeoutMs} ms\n${out}\n${err}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      res({ code, out, err });
    });
  });
}

/** A running `owl serve` child, its stdout/stderr so far, and a promise of its exit code. */
interface Served {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function serve(env: Record<string, string>): Promise<Served> {
  const child = spawn(process.execPath, [OWL, "serve"], {
    cwd: REPO_ROOT,
    env: { ...process.env, OWL_NUM_THREADS: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`owl serve did not start in 60 s\n${out}\n${err}`)), 60_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /owl is listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res({ child, url: m[1]!, stderr: () => err, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`owl serve exited with ${code}\n${out}\n${err}`));
    });
  });
}

describe("owl ps formatting (Ollama's format package)", () => {
  it("sizes in decimal units as format.HumanBytes", () => {
    expect(humanBytes(999)).toBe("999 B");
    expect(humanBytes(1000)).toBe("1 KB");
    expect(humanBytes(1_054_432)).toBe("1.1 MB");
    expect(humanBytes(5_400_000_000)).toBe("5.4 GB");
    expect(humanBytes(12_345_678_901)).toBe("12 GB");
  });

  it("rounds as Go's %.1f: exact ties to even, 10.0 below 10 units, whole part only from 10 up", () => {
    // Hand-computed from format/bytes.go (ollama/ollama) and Go's fmt, which rounds the exact
    // binary value and an exact tie to even; also printed by running that file with Go.
    const cases: [number, string][] = [
      [0, "0 B"],
      [1001, "1.0 KB"], // 1.001: not whole, so one decimal
      [1050, "1.1 KB"], // 1.05 is 1.0500000000000000444 in binary: above the tie
      [1250, "1.2 KB"], // 1.25 exactly: a tie, to even (JavaScript's toFixed says 1.3)
      [1750, "1.8 KB"], // 1.75 exactly: a tie, to even
      [1_150_000, "1.1 MB"], // 1.15 is 1.1499999999999999112
      [2_750_000, "2.8 MB"],
      [9_950_000, "9.9 MB"], // 9.95 is 9.9499999999999992895
      [9_960_000, "10.0 MB"], // below 10, rounds up to 10.0
      [9_999_999, "10.0 MB"],
      [10_000_000, "10 MB"],
      [999_999_999, "999 MB"], // truncated, not rounded
      [1_000_000_000, "1 GB"],
      [1_500_000_000_000, "1.5 TB"],
    ];
    for (const [b, text] of cases) expect(humanBytes(b), String(b)).toBe(text);
  });

  it("durations and UNTIL as format.HumanTime", () => {
    expect(humanDuration(500)).toBe("Less than a second");
    expect(humanDuration(1000)).toBe("1 second");
    expect(humanDuration(59_000)).toBe("59 seconds");
    expect(humanDuration(90_000)).toBe("About a minute");
    expect(humanDuration(4 * 60_000 + 59_000)).toBe("4 minutes");
    expect(humanDuration(3_600_000)).toBe("About an hour");
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(formatUntil("2026-01-01T00:04:30Z", now)).toBe("4 minutes from now");
    expect(formatUntil("2318-01-01T00:00:00Z", now)).toBe("Forever");
    expect(formatUntil(null, now)).toBe("Forever");
    expect(formatUntil("2025-12-31T23:59:00Z", now)).toBe("Stopping...");
  });

  it("the table: NAME ID SIZE PROCESSOR CONTEXT UNTIL, four spaces apart", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    const text = renderRunning(
      [
        {
          name: "stories260k:latest",
          digest: "2f769f3e94ba59df934f754cd9911a13663d820a2852400e89881206ff8f101c",
          size: 1_054_432,
          size_vram: 0,
          context_length: 512,
          expires_at: "2026-01-01T00:05:00Z",
        },
      ],
      now,
    );
    expect(text).toBe(
      "NAME                  ID              SIZE      PROCESSOR    CONTEXT    UNTIL\n" +
        "stories260k:latest    2f769f3e94ba    1.1 MB    100% CPU     512        5 minutes from now\n",
    );
  });
});

describe("owl run: what the arguments name, and the options it sends a server", () => {
  it("a stored name, a word that starts the prompt, a name with a tag that is not stored", async () => {
    const root = join(mkdtempSync(join(tmpdir(), "owl-run-target-")), "models");
    try {
      const stored = await resolveRunTarget("stories260k", ["Once", "upon"], root);
      expect(stored.kind).toBe("stored");
      expect(stored.kind === "stored" && stored.model.name).toBe("stories260k:latest");
      expect(stored.prompt).toBe("Once upon");
      const word = await resolveRunTarget("Hello", ["there"], root);
      expect(word.kind).toBe("file");
      expect(word.prompt).toBe("Hello there");
      await expect(resolveRunTarget("llama3:8b", ["hi"], root)).rejects.toThrow(
        'model "llama3:8b" not found',
      );
      const none = await resolveRunTarget(undefined, [], root);
      expect(none.kind === "file" && none.path.endsWith("stories260k.gguf")).toBe(true);
    } finally {
      rmSync(join(root, ".."), { recursive: true, force: true });
    }
  });

  it("only what differs from Ollama's defaults, repeat_penalty and seed when given, stop when set", () => {
    const p = defaultRunParams();
    expect(serverOptions(p)).toEqual({});
    setParam(p, "temperature", "0", "--temperature");
    setParam(p, "num_predict", "20", "--num-predict");
    setParam(p, "seed", "7", "--seed");
    setParam(p, "stop", "END", "--stop");
    expect(serverOptions(p)).toEqual({ temperature: 0, num_predict: 20, seed: 7, stop: ["END"] });
    setParam(p, "repeat_penalty", "1.1", "--repeat-penalty");
    expect(serverOptions(p).repeat_penalty).toBe(1.1);
  });
});

describe("owl serve, ps, stop and run through the server", () => {
  let home: string;
  let server: Served;
  let env: Record<string, string>;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), "owl-cli-serve-"));
    const port = await freePort();
    env = { OWL_HOME: home, OWL_HOST: `127.0.0.1:${port}` };
    server = await serve({ ...env, OWL_CONTEXT_LENGTH: "256", OWL_NUM_PARALLEL: "2" });
  }, 90_000);

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill("SIGKILL");
      await server.exited;
    }
    rmSync(home, { recursive: true, force: true });
  });

  it("prints where it listens and answers /api/version", async () => {
    expect(server.url).toBe(`http://${env.OWL_HOST}`);
    const v = (await (await fetch(`${server.url}/api/version`)).json()) as { version: string };
    expect(v.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('logs an unknown option as a WARN line (Ollama: "invalid option provided") and answers', async () => {
    const r = await fetch(`${server.url}/api/generate`, {
      method: "POST",
      body: JSON.stringify({
        model: "stories260k",
        prompt: "",
        keep_alive: 0,
        options: { not_an_option: 1 },
      }),
    });
    expect(r.status).toBe(200);
    expect(server.stderr()).toMatch(
      /^\S+Z \| WARN \| POST \/api\/generate: invalid option provided: options\.not_an_option\b.*\n/m,
    );
  }, 60_000);

  it("owl ps: nothing loaded, then the model a run loaded; owl run through the server equals in process; owl stop unloads", async () => {
    const empty = await owl(["ps"], env);
    expect(empty.err).toBe("");
    expect(empty.code).toBe(0);
    expect(empty.out).toBe("NAME    ID    SIZE    PROCESSOR    CONTEXT    UNTIL\n");

    const args = ["run", "stories260k", "Once upon a time", "--temperature", "0", "--num-predict", "20"];
    const via = await owl(args, env);
    expect(via.err).toBe("");
    expect(via.code).toBe(0);
    const local = await owl([...args, "--no-server"], env);
    expect(local.code).toBe(0);
    // run.c's greedy continuation of the bundled stories260K (cli-run.test.ts checks it against
    // llama2.c's reference tokens): both ways print it.
    expect(local.out).toMatch(/^, there was a little girl named Lily/);
    expect(via.out).toBe(local.out);
    expect(server.stderr()).toMatch(/\| 200 \| +[\d.]+m?s \| POST \/api\/generate\n/);

    const ps = await owl(["ps"], env);
    expect(ps.code).toBe(0);
    const lines = ps.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^NAME +ID +SIZE +PROCESSOR +CONTEXT +UNTIL$/);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(
      /^stories260k:latest +[0-9a-f]{12} +[\d.]+ [KMG]?B +100% CPU +\d+ +(\d+ minutes|About a minute) from now$/,
    );

    const stop = await owl(["stop", "stories260k"], env);
    expect(stop.err).toBe("");
    expect(stop.code).toBe(0);
    const after = await owl(["ps"], env);
    expect(after.out).toBe("NAME    ID    SIZE    PROCESSOR    CONTEXT    UNTIL\n");
  }, 240_000);

  it("owl run --verbose through the server prints the final chunk's timings", async () => {
    const r = await owl(["run", "stories260k", "Once upon a time", "--num-predict", "5", "--verbose"], env);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^prompt eval count: +\d+ token\(s\)$/m);
    expect(r.err).toMatch(/^eval count: +5 token\(s\)$/m);
    expect(r.err).toMatch(/^eval rate: +[\d.]+ tokens\/s$/m);
    expect(r.err).toContain(`server:               ${server.url}`);
  }, 120_000);

  it("the chat of owl run <name> goes through /api/chat", async () => {
    const chat = async (extra: string[]) => {
      const io: RunIO & ReturnType<typeof captureIO> = captureIO();
      io.owlHome = home;
      io.input = Readable.from(["Once upon a time\n", "/bye\n"]);
      io.inputIsTTY = true;
      const code = await runCli(
        ["run", "stories260k", "--temperature", "0", "--num-predict", "8", ...extra],
        io,
      );
      return { code, out: io.stdout(), err: io.stderr() };
    };
    // OwlClient reads OWL_HOST from the environment; vitest runs each file in a process of its own.
    const saved = process.env.OWL_HOST;
    process.env.OWL_HOST = env.OWL_HOST;
    try {
      const via = await chat([]);
      expect(via.err).toBe("");
      expect(via.code).toBe(0);
      // The answer itself is the server's rendering of the messages (server-ollama tests check it).
      expect(via.out).toMatch(/>>> Once upon a time\n.+\n\n>>> /);
      expect(server.stderr()).toMatch(/\| 200 \| +[\d.]+m?s \| POST \/api\/chat\n/);
    } finally {
      if (saved === undefined) delete process.env.OWL_HOST;
      else process.env.OWL_HOST = saved;
    }
  }, 120_000);

  it("a stored model with a Modelfile TEMPLATE, SYSTEM and PARAMETERs: the same text in process and through the server", async () => {
    await new ModelStore(join(home, "models")).create("teller:v1", {
      from: "stories260k",
      template: "{{ .System }} {{ .Prompt }}",
      system: "Lily and Ben were friends.",
      params: { temperature: 0, num_predict: 12 },
      adapters: [],
      license: [],
      messages: [],
    });
    const local = await owl(["run", "teller:v1", "One day they", "--no-server"], env);
    expect(local.err).toBe("");
    expect(local.code).toBe(0);
    const via = await owl(["run", "teller:v1", "One day they"], env);
    expect(via.code).toBe(0);
    expect(via.out).toBe(local.out);
    // The template and system made a difference: the bare prompt continues otherwise.
    const bare = await owl(
      ["run", "stories260k", "One day they", "--temperature", "0", "--num-predict", "12"],
      env,
    );
    expect(bare.out).not.toBe(local.out);
  }, 240_000);

  it("a thinking model through the server: Thinking..., the thinking, ...done thinking., as ollama run shows it; --hidethinking, --think=false", async () => {
    await new ModelStore(join(home, "models")).create("thinker:v1", {
      from: "stories260k",
      template:
        '{{- range $i, $_ := .Messages }}{{ if eq .Role "user" }}User: {{ .Content }}\n' +
        '{{ else if eq .Role "assistant" }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}\n' +
        "{{ end }}{{ end }}Assistant:{{ if and $.IsThinkSet (not $.Think) }} Sure.{{ else }} <think>{{ end }}",
      params: { temperature: 0, num_predict: 12 },
      adapters: [],
      license: [],
      messages: [],
    });
    const direct = (await (
      await fetch(`${server.url}/api/generate`, {
        method: "POST",
        body: JSON.stringify({ model: "thinker:v1", prompt: "Once upon a time", stream: false }),
      })
    ).json()) as { thinking: string; response: string };
    expect(direct.thinking.length).toBeGreaterThan(0);
    const shown = await owl(["run", "thinker:v1", "Once upon a time"], env);
    expect(shown.code).toBe(0);
    const nl = direct.thinking.endsWith("\n") ? "" : "\n";
    expect(shown.out).toBe(`Thinking...\n${direct.thinking}${nl}...done thinking.\n\n`);
    const hidden = await owl(["run", "thinker:v1", "Once upon a time", "--hidethinking"], env);
    expect(hidden.out).toBe("");
    // In this process (the owl engine), the template is the same, so is what is shown.
    const local = await owl(["run", "thinker:v1", "Once upon a time", "--no-server"], env);
    expect(local.code).toBe(0);
    expect(local.out).toBe(shown.out);
    const off = await owl(["run", "thinker:v1", "Once upon a time", "--think=false"], env);
    expect(off.out).not.toContain("Thinking...");
    expect(off.out.length).toBeGreaterThan(1);
    const localOff = await owl(
      ["run", "thinker:v1", "Once upon a time", "--no-server", "--think=false"],
      env,
    );
    expect(localOff.out).toBe(off.out);
    const bad = await owl(["run", "thinker:v1", "Once upon a time", "--think=maybe"], env);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/invalid value for --think: "maybe"/);
  }, 120_000);

  it("owl stop of a model that is not there is a clear error", async () => {
    const r = await owl(["stop", "nosuchmodel"], env);
    expect(r.code).toBe(1);
    expect(r.err).toContain('couldn\'t find model "nosuchmodel" to stop');
  }, 60_000);

  it("SIGTERM: a clean shutdown, exit code 0", async () => {
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(server.stderr()).toContain("shutting down");
  }, 60_000);
});

describe("owl serve: refusals and API keys", () => {
  let home: string;
  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), "owl-cli-serve-keys-"));
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it("no server: owl ps says how to start one", async () => {
    const port = await freePort();
    const r = await owl(["ps"], { OWL_HOME: home, OWL_HOST: `127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`could not reach the owl server at http://127.0.0.1:${port}`);
    expect(r.err).toContain("start it with `owl serve`");
  }, 60_000);

  it("a non-loopback address without OWL_API_KEYS: refused, exit 1", async () => {
    const port = await freePort();
    const r = await owl(["serve"], { OWL_HOME: home, OWL_HOST: `0.0.0.0:${port}`, OWL_API_KEYS: "" });
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^error: refusing to listen on 0\.0\.0\.0: .*no API key is configured/m);
    expect(r.err).toMatch(/^hint: set OWL_API_KEYS/m);
  }, 60_000);

  it("a busy port: a clear error naming the address", async () => {
    const port = await freePort();
    const env = { OWL_HOME: home, OWL_HOST: `127.0.0.1:${port}` };
    const first = await serve(env);
    try {
      const r = await owl(["serve"], env);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`cannot listen on 127.0.0.1:${port}: the port is in use`);
    } finally {
      first.child.kill("SIGTERM");
      expect(await first.exited).toBe(0);
    }
  }, 120_000);

  it("with OWL_API_KEYS: 401 without the key, 200 with it; the CLI sends the first key", async () => {
    const port = await freePort();
    const env = { OWL_HOME: home, OWL_HOST: `127.0.0.1:${port}`, OWL_API_KEYS: "k-one,k-two" };
    const s = await serve(env);
    try {
      expect((await fetch(`${s.url}/api/tags`)).status).toBe(401);
      const bad = await fetch(`${s.url}/api/tags`, { headers: { authorization: "Bearer nope" } });
      expect(bad.status).toBe(401);
      const ok = await fetch(`${s.url}/api/tags`, { headers: { authorization: "Bearer k-two" } });
      expect(ok.status).toBe(200);
      // Ollama's probes stay open: / and /api/version.
      expect((await fetch(`${s.url}/api/version`)).status).toBe(200);
      const ps = await owl(["ps"], env);
      expect(ps.code).toBe(0);
      const noKey = await owl(["ps"], { ...env, OWL_API_KEYS: "" });
      expect(noKey.code).toBe(1);
      expect(noKey.err).toMatch(/^hint: set OWL_API_KEYS/m);
    } finally {
      s.child.kill("SIGTERM");
      expect(await s.exited).toBe(0);
    }
  }, 120_000);
});
