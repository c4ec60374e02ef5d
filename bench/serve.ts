/**
 * Serving benchmark: `owl serve` against node-llama-cpp 3.21.1 called directly on the same GGUF
 * in the same run, and owl's HTTP stack against a bare node:http server.
 *
 * Model: the ~15M llama2.c-shaped random llama of bench/engine.ts (dim 288, 6 layers, 32000-token
 * vocabulary, context 1024) in Q8_0, stored with ModelStore.create in a temp OWL_HOME. Every
 * process is a child started with UV_THREADPOOL_SIZE=1 (owl's entry point sets it too):
 *   - the peer (bench/serve-child.ts direct): node-llama-cpp with owl's llama.cpp backend settings
 *     (flash attention off, contextSize 1024 per sequence, 1 thread, greedy);
 *   - `node bin/owl.js serve` with OWL_NUM_PARALLEL=1 (single stream) and =8 (concurrency), its
 *     request log going to a file.
 * Figures:
 *   - single-stream decode of DECODE tokens after a short prompt: the server's own eval_count /
 *     eval_duration, and the client's wall clock (eval_count over first chunk to the last), each
 *     over the peer's tokens after the first / time from the first token to the last;
 *   - aggregate tok/s of 1, 4 and 8 concurrent /api/generate streams (sum of eval_count over the
 *     wall time from the requests to the last final chunk), and the peer with as many sequences
 *     of one context evaluated at once;
 *   - time to first token (request sent to first non-empty chunk, model loaded) for a short and a
 *     long prompt, and the peer's time from evaluate() to the first token;
 *   - tokens per CPU-second of each process (its user + system time, every thread, from
 *     /proc/<pid>/stat or process.cpuUsage()): robust to the load of a shared machine;
 *   - GET /api/tags requests/s under a loopback load generator (http.Agent keep-alive, CONNS
 *     loops each sending its next request when the last answer ends), against a bare node:http
 *     server answering the same bytes.
 * Prints markdown. Run through `npx tsx bench/run.ts serve` (bench/run.ts) or alone with tsx.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ModelStore } from "../src/store/store.ts";
import { SHAPES, writeModel } from "./engine.ts";
import { type DirectConfig, type DirectResult, singlePrompt, streamPrompt } from "./serve-child.ts";

const ROOT = resolve(import.meta.dirname, "..");
/** One thread for the model on both sides: on a shared 2-core machine llama.cpp's two spinning
 * threads collapse when a third process wants a core (seconds per token), and the server's own
 * JavaScript thread and the load generator need one. */
const THREADS = 1;
const N_CTX = 1024;
let DECODE = 128;
const STREAMS = [1, 4, 8];
const CONNS = 16;
let LOAD_SECONDS = 3;
const MODEL = "bench15m";
const TYPE = "Q8_0";
const PROMPT = "Once upon a time, there was a little owl who lived in a tall tree";
/** Time-to-first-token prompts: a short one and a long one (about 400 tokens); distinct texts so
 * that no KV-cache prefix is reused between them. */
const TTFT_PROMPTS = [
  "The sun rose over the quiet village",
  Array.from({ length: 8 }, (_, i) => `Line ${i}: the river kept flowing past the old mill.`).join(" "),
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

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

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, UV_THREADPOOL_SIZE: "1", ...extra };
}

/** Start a child and wait for a stdout line matching `ready`; its first match group is returned. */
function startChild(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
  stderrFile: string,
): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const err = openSync(stderrFile, "w");
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", err] });
  return new Promise((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error(`no "${ready}" from ${args.join(" ")} in 60 s`)), 60_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        res({ child, match: m });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      rej(
        new Error(`${args.join(" ")} exited with ${code}: ${readFileSync(stderrFile, "utf8").slice(-2000)}`),
      );
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null) return res();
    child.removeAllListeners("exit");
    child.once("exit", () => res());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
  });
}

interface StreamTiming {
  /** When the request was sent, the first non-empty chunk and the final chunk arrived (ms). */
  sent: number;
  first: number;
  done: number;
  final: Record<string, unknown>;
}

/** POST an NDJSON-streaming request and time its chunks. */
function streamRequest(agent: Agent, port: number, path: string, body: unknown): Promise<StreamTiming> {
  return new Promise((res, rej) => {
    const payload = Buffer.from(JSON.stringify(body));
    const sent = performance.now();
    let first = 0;
    let buffer = "";
    let final: Record<string, unknown> | undefined;
    const req = request(
      {
        agent,
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        headers: { "content-type": "application/json", "content-length": payload.length },
      },
      (r) => {
        r.setEncoding("utf8");
        r.on("data", (d: string) => {
          buffer += d;
          let nl = buffer.indexOf("\n");
          while (nl >= 0) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            nl = buffer.indexOf("\n");
            if (line.trim() === "") continue;
            const obj = JSON.parse(line) as Record<string, unknown>;
            if (typeof obj.error === "string") return rej(new Error(`${path}: ${obj.error}`));
            if (first === 0 && typeof obj.response === "string" && obj.response !== "")
              first = performance.now();
            if (obj.done === true) final = obj;
          }
        });
        r.on("end", () => {
          if (r.statusCode !== 200 || !final)
            return rej(new Error(`${path}: status ${r.statusCode} ${buffer}`));
          res({ sent, first: first || performance.now(), done: performance.now(), final });
        });
      },
    );
    req.on("error", rej);
    req.end(payload);
  });
}

function generateBody(prompt: string, numPredict: number) {
  return {
    model: MODEL,
    prompt,
    // raw: the prompt as it is (no template), the same tokens the peer evaluates.
    raw: true,
    stream: true,
    keep_alive: -1,
    options: { temperature: 0, num_predict: numPredict },
  };
}

/** Requests/s of GET `path` with CONNS keep-alive loops for LOAD_SECONDS (after a short warm-up). */
async function loadTest(port: number, path: string): Promise<{ rps: number; errors: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNS });
  const once = () =>
    new Promise<boolean>((res) => {
      const req = request({ agent, host: "127.0.0.1", port, path, method: "GET" }, (r) => {
        r.resume();
        r.on("end", () => res(r.statusCode === 200));
      });
      req.on("error", () => res(false));
      req.end();
    });
  const run = async (seconds: number) => {
    let ok = 0;
    let errors = 0;
    const until = performance.now() + seconds * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONNS }, async () => {
        while (performance.now() < until) {
          if (await once()) ok++;
          else errors++;
        }
      }),
    );
    return { rps: ok / ((performance.now() - t0) / 1000), errors };
  };
  await run(0.5);
  const r = await run(LOAD_SECONDS);
  agent.destroy();
  return r;
}

/** CPU time (user + system, all threads) of a child process so far, ms; Linux's /proc. */
function procCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of stat (utime, stime), in clock ticks of 10 ms (CLK_TCK 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

interface ServerRun {
  single: (StreamTiming & { cpuMs: number })[];
  ttft: StreamTiming[];
  concurrent: { streams: number; tokens: number; wallMs: number; cpuMs: number; counts: number[] }[];
  tags?: { rps: number; errors: number };
  tagsBody?: string;
  coldLoadMs: number;
}

async function benchServer(
  home: string,
  dir: string,
  parallel: number,
  withLoad: boolean,
): Promise<ServerRun> {
  const port = await freePort();
  const { child } = await startChild(
    [join(ROOT, "bin", "owl.js"), "serve"],
    childEnv({
      OWL_HOME: home,
      OWL_HOST: `127.0.0.1:${port}`,
      OWL_NUM_PARALLEL: String(parallel),
      OWL_CONTEXT_LENGTH: String(N_CTX),
      OWL_KEEP_ALIVE: "-1",
      OWL_NUM_THREADS: String(THREADS),
    }),
    /owl is listening on (\S+)/,
    join(dir, `serve-${parallel}.log`),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const out: ServerRun = { single: [], ttft: [], concurrent: [], coldLoadMs: 0 };
  try {
    const cold = await streamRequest(agent, port, "/api/generate", generateBody(PROMPT, 8));
    out.coldLoadMs = Number(cold.final.load_duration ?? 0) / 1e6;
    for (const p of TTFT_PROMPTS)
      out.ttft.push(await streamRequest(agent, port, "/api/generate", generateBody(p, 1)));
    if (parallel === 1) {
      for (let rep = 0; rep < 3; rep++) {
        const cpu = procCpuMs(child.pid);
        const r = await streamRequest(
          agent,
          port,
          "/api/generate",
          generateBody(singlePrompt(rep, PROMPT), DECODE),
        );
        out.single.push({ ...r, cpuMs: procCpuMs(child.pid) - cpu });
      }
    }
    if (withLoad) {
      for (const n of STREAMS) {
        const cpu = procCpuMs(child.pid);
        const t0 = performance.now();
        const runs = await Promise.all(
          Array.from({ length: n }, (_, i) =>
            streamRequest(agent, port, "/api/generate", generateBody(streamPrompt(n, i, PROMPT), DECODE)),
          ),
        );
        const counts = runs.map((r) => Number(r.final.eval_count ?? 0));
        out.concurrent.push({
          streams: n,
          tokens: counts.reduce((a, b) => a + b, 0),
          wallMs: Math.max(...runs.map((r) => r.done)) - t0,
          cpuMs: procCpuMs(child.pid) - cpu,
          counts,
        });
      }
      out.tagsBody = await new Promise<string>((res, rej) => {
        request({ agent, host: "127.0.0.1", port, path: "/api/tags" }, (r) => {
          let s = "";
          r.setEncoding("utf8");
          r.on("data", (d: string) => (s += d));
          r.on("end", () => res(s));
        })
          .on("error", rej)
          .end();
      });
      out.tags = await loadTest(port, "/api/tags");
    }
  } finally {
    agent.destroy();
    await stopChild(child);
  }
  return out;
}

function runDirect(path: string, dir: string): DirectResult {
  const config: DirectConfig = {
    threads: THREADS,
    nCtx: N_CTX,
    prompt: PROMPT,
    decode: DECODE,
    streams: STREAMS,
    ttftPrompts: TTFT_PROMPTS,
  };
  const out = execFileSync(
    process.execPath,
    ["--import", "tsx", join(ROOT, "bench", "serve-child.ts"), "direct", path, JSON.stringify(config)],
    { cwd: ROOT, encoding: "utf8", env: childEnv({}), maxBuffer: 1 << 20 },
  );
  writeFileSync(join(dir, "direct.json"), out);
  return JSON.parse(out.trim().split("\n").pop()!) as DirectResult;
}

async function bareTags(body: string, dir: string): Promise<{ rps: number; errors: number }> {
  const file = join(dir, "tags.json");
  writeFileSync(file, body);
  const { child, match } = await startChild(
    ["--import", "tsx", join(ROOT, "bench", "serve-child.ts"), "bare", file],
    childEnv({}),
    /listening (\d+)/,
    join(dir, "bare.log"),
  );
  try {
    return await loadTest(Number(match[1]), "/api/tags");
  } finally {
    await stopChild(child);
  }
}

/** `quick`: a smoke run of the harness (16 tokens, 0.5 s of load), not for RESULTS.md. */
export async function runServeBench(options: { quick?: boolean } = {}): Promise<string> {
  if (options.quick) {
    DECODE = 16;
    LOAD_SECONDS = 0.5;
  }
  const tStart = performance.now();
  const load0 = loadavg();
  const dir = mkdtempSync(join(tmpdir(), "owl-bench-serve-"));
  const home = join(dir, "home");
  mkdirSync(home);
  try {
    const shape = SHAPES.find((s) => s.name === "15M")!;
    const gguf = join(dir, `stories15M-${TYPE}.gguf`);
    process.stderr.write("bench serve: writing the model...\n");
    await writeModel(gguf, shape, TYPE);
    const size = statSync(gguf).size;
    await new ModelStore(join(home, "models"), { builtin: false }).create(MODEL, {
      from: gguf,
      params: {},
      adapters: [],
      license: [],
      messages: [],
    });

    process.stderr.write("bench serve: node-llama-cpp directly...\n");
    const direct = runDirect(gguf, dir);
    process.stderr.write("bench serve: owl serve, 1 parallel...\n");
    const s1 = await benchServer(home, dir, 1, false);
    process.stderr.write("bench serve: owl serve, 8 parallel...\n");
    const s8 = await benchServer(home, dir, 8, true);
    process.stderr.write("bench serve: bare node:http /api/tags...\n");
    const bare = await bareTags(s8.tagsBody ?? "{}", dir);

    // Single stream.
    const peerRate = median(direct.single.map((r) => (r.tokens / r.decodeMs) * 1000));
    const peerTokens = direct.single.map((r) => r.tokens);
    const serverRate = median(
      s1.single.map((r) => Number(r.final.eval_count) / (Number(r.final.eval_duration) / 1e9)),
    );
    const wallRate = median(s1.single.map((r) => (Number(r.final.eval_count) / (r.done - r.first)) * 1000));
    const evalCounts = s1.single.map((r) => Number(r.final.eval_count));
    const ratio = serverRate / peerRate;
    const wallRatio = wallRate / peerRate;
    // Tokens per CPU-second of the whole process (prompt and decode, every thread): what the work
    // costs, whatever share of the cores the machine's other load left.
    const peerCpuRate = median(direct.single.map((r) => (r.tokens / r.cpuMs) * 1000));
    const serverCpuRate = median(s1.single.map((r) => (Number(r.final.eval_count) / r.cpuMs) * 1000));

    // Concurrency.
    const aggRow = (n: number) => {
      const srv = s8.concurrent.find((c) => c.streams === n)!;
      const peer = direct.concurrent.find((c) => c.streams === n)!;
      const sr = (srv.tokens / srv.wallMs) * 1000;
      const pr = (peer.tokens / peer.wallMs) * 1000;
      const sc = (srv.tokens / srv.cpuMs) * 1000;
      const pc = (peer.tokens / peer.cpuMs) * 1000;
      return { n, sr, pr, sc, pc, tokens: srv.tokens, peerTokens: peer.tokens };
    };
    const agg = STREAMS.map(aggRow);
    const agg1 = agg[0]!.sr;
    const agg4 = agg.find((a) => a.n === 4)!.sr;
    const cpu4 = agg.find((a) => a.n === 4)!.sc / agg[0]!.sc;

    // TTFT.
    const ttftRows = TTFT_PROMPTS.map((_, i) => {
      const a = s1.ttft[i]!;
      const b = s8.ttft[i]!;
      return {
        tokens: Number(a.final.prompt_eval_count ?? 0),
        peerTokens: direct.ttftTokens[i]!,
        s1: a.first - a.sent,
        s8: b.first - b.sent,
        peer: direct.ttftMs[i]!,
      };
    });

    const tags = s8.tags!;
    const load1 = loadavg();
    const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(", ");
    const f1 = (x: number) => x.toFixed(1);
    const goals = [
      `- single-stream decode through the server >= 0.95x node-llama-cpp: ${ratio >= 0.95 ? "met" : "missed"} (${ratio.toFixed(2)}x by the server's eval_duration, ${wallRatio.toFixed(2)}x by the client's wall clock)`,
      `- 4 streams >= 2x the single-stream aggregate: ${agg4 >= 2 * agg1 ? "met" : "missed"} by wall clock (${(agg4 / agg1).toFixed(2)}x); ${cpu4 >= 2 ? "met" : "missed"} by tokens per CPU-second (${cpu4.toFixed(2)}x)`,
    ];
    return [
      `Command: \`npx tsx bench/run.ts serve\`. Machine: ${cpus()[0]?.model ?? "unknown CPU"}, ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 16)}Z. ` +
        `Load average (1, 5, 15 min) at the start: ${fmtLoad(load0)}; at the end: ${fmtLoad(load1)} (a shared machine: compare the ratios).`,
      "",
      `Model: the generated ~15M llama of the engine section (dim 288, 6 layers, 32000-token vocabulary, context ${N_CTX}) in ${TYPE}, ` +
        `${(size / 1e6).toFixed(1)} MB, stored with ModelStore.create in a temp OWL_HOME. Server: \`node bin/owl.js serve\` ` +
        `(llama.cpp backend, node-llama-cpp 3.21.1) in a child with UV_THREADPOOL_SIZE=1, OWL_CONTEXT_LENGTH=${N_CTX}, ` +
        `request log to a file; requests /api/generate streaming, temperature 0. Peer: node-llama-cpp called directly in a child ` +
        `with the backend's context settings (flash attention off, ${N_CTX} cells per sequence, ${THREADS} threads), greedy, same GGUF, same run.`,
      "",
      `Single stream (OWL_NUM_PARALLEL=1), ${DECODE} tokens after a ${direct.promptTokens}-token prompt, median of 3:`,
      "",
      "| measure | owl serve | node-llama-cpp direct | ratio |",
      "| --- | ---: | ---: | ---: |",
      `| decode tok/s (server's eval_count / eval_duration) | ${f1(serverRate)} | ${f1(peerRate)} | **${ratio.toFixed(2)}x** |`,
      `| decode tok/s (client wall clock, first chunk to last) | ${f1(wallRate)} | ${f1(peerRate)} | **${wallRatio.toFixed(2)}x** |`,
      `| tokens per CPU-second of the process (all threads, prompt + decode) | ${f1(serverCpuRate)} | ${f1(peerCpuRate)} | **${(serverCpuRate / peerCpuRate).toFixed(2)}x** |`,
      "",
      `Tokens generated: server ${evalCounts.join(", ")}; peer ${peerTokens.join(", ")} (fewer than ${DECODE} means the model ended the text). ` +
        `Cold load of the model by the first request (load_duration): ${f1(s1.coldLoadMs)} ms; the peer's load: ${f1(direct.loadMs)} ms.`,
      "",
      `Aggregate decode with concurrent streams (OWL_NUM_PARALLEL=8, one context of 8 sequences; peer: one context of 8 sequences, ` +
        `that many evaluated at once), ${DECODE} tokens each, distinct prompts: tokens of all streams / wall time from the requests to the last final chunk, ` +
        `and tokens per CPU-second (user + system time of the whole process, every thread, over the same span: what the batch costs, whatever share of the ` +
        `2 cores the machine's other load left; the server's includes its HTTP work):`,
      "",
      "| streams | owl serve tok/s | vs 1 stream | direct tok/s | vs 1 stream | owl / direct | owl serve tok per CPU-s | vs 1 stream | direct tok per CPU-s | vs 1 stream |",
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
      ...agg.map(
        (a) =>
          `| ${a.n} | ${f1(a.sr)} | ${(a.sr / agg1).toFixed(2)}x | ${f1(a.pr)} | ${(a.pr / agg[0]!.pr).toFixed(2)}x | **${(a.sr / a.pr).toFixed(2)}x** | ` +
          `${f1(a.sc)} | ${(a.sc / agg[0]!.sc).toFixed(2)}x | ${f1(a.pc)} | ${(a.pc / agg[0]!.pc).toFixed(2)}x |`,
      ),
      "",
      "Time to first token, model loaded (client: request sent to the first non-empty chunk; peer: evaluate() to the first token):",
      "",
      "| prompt tokens | owl serve, 1 parallel ms | owl serve, 8 parallel ms | node-llama-cpp direct ms | overhead (1 parallel) ms |",
      "| ---: | ---: | ---: | ---: | ---: |",
      ...ttftRows.map(
        (r) =>
          `| ${r.tokens} (peer ${r.peerTokens}) | ${f1(r.s1)} | ${f1(r.s8)} | ${f1(r.peer)} | ${f1(r.s1 - r.peer)} |`,
      ),
      "",
      `GET /api/tags under load (${CONNS} keep-alive connections from one loopback load generator, ${LOAD_SECONDS} s after a 0.5 s warm-up; ` +
        `the peer is a bare node:http server answering the same ${Buffer.byteLength(s8.tagsBody ?? "")} bytes):`,
      "",
      "| server | requests/s | errors |",
      "| --- | ---: | ---: |",
      `| owl serve (Hono, CORS, Host check, request log) | ${tags.rps.toFixed(0)} | ${tags.errors} |`,
      `| bare node:http | ${bare.rps.toFixed(0)} | ${bare.errors} |`,
      `| ratio | **${(tags.rps / bare.rps).toFixed(2)}x** | |`,
      "",
      "Goals:",
      "",
      ...goals,
      "",
      `Section wall time: ${((performance.now() - tStart) / 1000).toFixed(0)} s.`,
    ].join("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${await runServeBench({ quick: process.argv.includes("--quick") })}\n`);
}
