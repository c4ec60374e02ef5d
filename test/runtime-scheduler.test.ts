/**
 * The scheduler against a fake backend: deterministic loads (held until the test lets them go,
 * or failing), sequences that count their use, and an injected clock and timers. Each test is one
 * rule of src/runtime/scheduler.ts (Ollama's scheduling behaviour); the real llama.cpp backend is
 * in runtime-scheduler-llamacpp.test.ts.
 */
import { describe, expect, it } from "vitest";
import { Scheduler, type SchedulerOptions } from "../src/runtime/scheduler.ts";
import type {
  Backend,
  BackendName,
  Lease,
  LoadedModel,
  LoadOptions,
  ModelRequest,
  Sequence,
} from "../src/runtime/types.ts";
import type { ResolvedModel } from "../src/store/types.ts";
import { OwlError } from "../src/util/errors.ts";

// --- fakes -------------------------------------------------------------------------------------

class FakeSequence implements Sequence {
  readonly tokens: number[] = [];
  constructor(
    readonly index: number,
    private readonly model: FakeModel,
  ) {}
  // biome-ignore lint/correctness/useYield: never called by the scheduler
  async *generate(): AsyncGenerator<never, void, void> {
    throw new Error("not used");
  }
  lastPrompt() {
    return { reused: 0, evaluated: 0 };
  }
  release(): void {
    this.model.free(this.index);
  }
}

class FakeModel implements LoadedModel {
  readonly info = {
    architecture: "llama",
    trainContextLength: 512,
    embeddingLength: 8,
    vocabSize: 16,
    chatTemplate: undefined,
    eogTokens: [2],
    bosToken: 1,
    eosToken: 2,
    addBos: true,
    weightBytes: 1000,
  };
  readonly decodesOnEventLoop = false;
  readonly inUse: boolean[];
  disposed = false;
  /** Sequences handed out so far. */
  acquired = 0;
  constructor(
    readonly backend: BackendName,
    readonly options: LoadOptions,
  ) {
    this.inUse = new Array<boolean>(options.numParallel).fill(false);
  }
  get numCtx() {
    return this.options.numCtx;
  }
  get numParallel() {
    return this.options.numParallel;
  }
  get busy(): number {
    return this.inUse.filter(Boolean).length;
  }
  free(i: number): void {
    if (!this.inUse[i]) throw new Error(`sequence ${i} released twice`);
    this.inUse[i] = false;
  }
  tokenize(): number[] {
    return [];
  }
  detokenize(): string {
    return "";
  }
  tokenBytes(): Uint8Array {
    return new Uint8Array();
  }
  /** The prompts tryAcquireSequence was given. */
  readonly prompts: (readonly number[] | undefined)[] = [];
  tryAcquireSequence(prompt?: readonly number[]): Sequence | undefined {
    if (this.disposed) throw new Error("sequence asked of a disposed model");
    this.prompts.push(prompt);
    const i = this.inUse.indexOf(false);
    if (i < 0) return undefined;
    this.inUse[i] = true;
    this.acquired++;
    return new FakeSequence(i, this);
  }
  async embed(): Promise<never> {
    throw new Error("not used");
  }
  memoryBytes(): number {
    return 1000 + 100 * this.options.numCtx;
  }
  async dispose(): Promise<void> {
    if (this.disposed) throw new Error("disposed twice");
    this.disposed = true;
  }
}

interface PendingLoad {
  options: LoadOptions;
  backend: BackendName;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Loads wait until the test calls finishLoad()/failLoad(), unless `instant`. */
class FakeBackend implements Backend {
  readonly loads: LoadOptions[] = [];
  readonly models: FakeModel[] = [];
  readonly pending: PendingLoad[] = [];
  instant = true;
  failNext: Error | undefined;
  constructor(readonly name: BackendName) {}
  load(options: LoadOptions): Promise<LoadedModel> {
    this.loads.push(options);
    const fail = this.failNext;
    this.failNext = undefined;
    const make = () => {
      if (fail) throw fail;
      const m = new FakeModel(this.name, options);
      this.models.push(m);
      return m;
    };
    if (this.instant) return Promise.resolve().then(make);
    return new Promise<LoadedModel>((resolve, reject) => {
      this.pending.push({
        options,
        backend: this.name,
        resolve: () => {
          try {
            resolve(make());
          } catch (e) {
            reject(e);
          }
        },
        reject,
      });
    });
  }
  get live(): FakeModel[] {
    return this.models.filter((m) => !m.disposed);
  }
}

class FakeClock {
  t = 1_000_000;
  private nextId = 1;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  now = () => this.t;
  setTimer = (fn: () => void, ms: number) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimer = (h: unknown) => {
    this.timers.delete(h as number);
  };
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers)
        if (e[1].at <= end && (next === undefined || e[1].at < next[1].at)) next = e;
      if (next === undefined) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

const MIN = 60_000;

function setup(overrides: Partial<SchedulerOptions> = {}) {
  const clock = new FakeClock();
  const backends = { "llama.cpp": new FakeBackend("llama.cpp"), owl: new FakeBackend("owl") };
  const created: BackendName[] = [];
  const trainCtx = new Map<string, number>([
    ["/m/a.gguf", 512],
    ["/m/b.gguf", 2048],
    ["/m/c.gguf", 8192],
  ]);
  const scheduler = new Scheduler({
    createBackend: (name) => {
      created.push(name);
      return backends[name];
    },
    maxLoadedModels: 3,
    numParallel: 4,
    maxQueue: 512,
    defaultKeepAliveMs: 5 * MIN,
    defaultNumCtx: 4096,
    defaultBackend: "llama.cpp",
    trainContextLength: (p) => trainCtx.get(p),
    now: clock.now,
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer,
    ...overrides,
  });
  const fake = backends["llama.cpp"];
  return { scheduler, clock, backends, fake, created };
}

function resolved(path: string, name = path.replace(/^.*\/|\.gguf$/g, "")): ResolvedModel {
  return {
    name: `${name}:latest`,
    digest: `${"0".repeat(56)}${name.padStart(8, "0")}`.slice(-64),
    size: 1,
    modifiedAt: new Date(0),
    details: {
      parent_model: "",
      format: "gguf",
      family: "llama",
      families: ["llama"],
      parameter_size: "1K",
      quantization_level: "F32",
    },
    modelPath: path,
    adapters: [],
    params: {},
    license: [],
    messages: [],
    manifest: {
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: "sha256:0", size: 0 },
      layers: [],
    },
  };
}

function req(path: string, extra: Partial<ModelRequest> = {}): ModelRequest {
  const model = resolved(path);
  return { name: model.name.replace(/:latest$/, ""), model, ...extra };
}

/** Let promise callbacks and the loads' microtasks run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(p: Promise<T>) {
  const s: { done: boolean; value?: T; error?: unknown } = { done: false };
  p.then(
    (value) => {
      s.done = true;
      s.value = value;
    },
    (error) => {
      s.done = true;
      s.error = error;
    },
  );
  return s;
}

function codeOf(e: unknown): string | undefined {
  return e instanceof OwlError ? e.code : undefined;
}

// --- tests -------------------------------------------------------------------------------------

describe("scheduler: sequences and the queue", () => {
  it("loads a model once for concurrent requests, gives each its own sequence, and queues the 5th", async () => {
    const { scheduler, fake, created } = setup();
    fake.instant = false;
    const ps = [0, 1, 2, 3, 4].map(() => track(scheduler.acquire(req("/m/a.gguf"))));
    await flush();
    expect(fake.loads).toHaveLength(1);
    expect(created).toEqual(["llama.cpp"]);
    expect(fake.loads[0]).toMatchObject({
      modelPath: "/m/a.gguf",
      numCtx: 512,
      numParallel: 4,
      adapters: [],
    });
    expect(ps.some((p) => p.done)).toBe(false);
    fake.pending[0]?.resolve();
    await flush();
    const granted = ps.slice(0, 4).map((p) => p.value as Lease);
    expect(ps.slice(0, 4).every((p) => p.done && p.error === undefined)).toBe(true);
    expect(new Set(granted.map((l) => l.sequence?.index))).toEqual(new Set([0, 1, 2, 3]));
    expect(fake.models[0]?.busy).toBe(4);
    expect(ps[4]?.done).toBe(false);
    expect(scheduler.running()[0]?.active).toBe(4);
    granted[2]?.release();
    await flush();
    expect(ps[4]?.done).toBe(true);
    const fifth = ps[4]?.value as Lease;
    expect(fifth.sequence?.index).toBe(granted[2]?.sequence?.index);
    expect(fifth.loadNs).toBe(0);
    expect(fake.loads).toHaveLength(1);
    granted[2]?.release(); // idempotent: the sequence is not freed twice
    expect(fake.models[0]?.busy).toBe(4);
    for (const l of [...granted, fifth]) l.release();
    expect(fake.models[0]?.busy).toBe(0);
    await scheduler.close();
  });

  it("serves waiting requests in FIFO order", async () => {
    const { scheduler } = setup({ numParallel: 1 });
    const first = await scheduler.acquire(req("/m/a.gguf"));
    const order: string[] = [];
    const waiting = ["x", "y", "z"].map((tag) =>
      scheduler.acquire(req("/m/a.gguf")).then((l) => {
        order.push(tag);
        return l;
      }),
    );
    await flush();
    first.release();
    for (const p of waiting) (await p).release();
    expect(order).toEqual(["x", "y", "z"]);
    await scheduler.close();
  });

  it("answers ERR_QUEUE_FULL at once when maxQueue requests already wait", async () => {
    const { scheduler } = setup({ numParallel: 1, maxQueue: 1 });
    const a = await scheduler.acquire(req("/m/a.gguf"));
    const b = track(scheduler.acquire(req("/m/a.gguf")));
    const c = track(scheduler.acquire(req("/m/a.gguf")));
    await flush();
    expect(b.done).toBe(false);
    expect(c.done).toBe(true);
    expect(codeOf(c.error)).toBe("ERR_QUEUE_FULL");
    expect((c.error as OwlError).message).toMatch(
      /server busy: 1 requests already wait.*OWL_MAX_QUEUE \(1\)/,
    );
    a.release();
    await flush();
    expect(b.done).toBe(true);
    (b.value as Lease).release();
    await scheduler.close();
  });

  it("with maxQueue 0 a busy model refuses extra requests, but requests sharing a load are not queued", async () => {
    const { scheduler, fake } = setup({ numParallel: 2, maxQueue: 0 });
    fake.instant = false;
    const a = track(scheduler.acquire(req("/m/a.gguf")));
    const b = track(scheduler.acquire(req("/m/a.gguf")));
    const c = track(scheduler.acquire(req("/m/a.gguf")));
    await flush();
    expect(codeOf(c.error)).toBe("ERR_QUEUE_FULL");
    expect(a.done || b.done).toBe(false);
    fake.pending[0]?.resolve();
    await flush();
    expect(a.value?.sequence).toBeDefined();
    expect(b.value?.sequence).toBeDefined();
    await expect(scheduler.acquire(req("/m/a.gguf"))).rejects.toMatchObject({ code: "ERR_QUEUE_FULL" });
    a.value?.release();
    const d = await scheduler.acquire(req("/m/a.gguf"));
    expect(d.sequence).toBeDefined();
    b.value?.release();
    d.release();
    await scheduler.close();
  });

  it("aborting a queued request rejects it with ERR_ABORTED and frees its place", async () => {
    const { scheduler, fake } = setup({ numParallel: 1, maxQueue: 1 });
    const a = await scheduler.acquire(req("/m/a.gguf"));
    const ac = new AbortController();
    const b = track(scheduler.acquire(req("/m/a.gguf", { signal: ac.signal })));
    await flush();
    ac.abort();
    await flush();
    expect(codeOf(b.error)).toBe("ERR_ABORTED");
    const c = track(scheduler.acquire(req("/m/a.gguf")));
    await flush();
    expect(c.done).toBe(false); // queued in the freed place, not refused
    a.release();
    await flush();
    expect(c.value?.sequence?.index).toBe(0);
    expect(fake.models[0]?.acquired).toBe(2); // the aborted request never took a sequence
    c.value?.release();
    // An already aborted signal is refused before anything else.
    await expect(scheduler.acquire(req("/m/a.gguf", { signal: AbortSignal.abort() }))).rejects.toMatchObject({
      code: "ERR_ABORTED",
    });
    await scheduler.close();
  });

  it("aborting a request while its model loads rejects it; the load serves the others", async () => {
    const { scheduler, fake } = setup();
    fake.instant = false;
    const ac = new AbortController();
    const a = track(scheduler.acquire(req("/m/a.gguf", { signal: ac.signal })));
    const b = track(scheduler.acquire(req("/m/a.gguf")));
    await flush();
    ac.abort(new Error("client went away"));
    await flush();
    expect(codeOf(a.error)).toBe("ERR_ABORTED");
    expect((a.error as OwlError).message).toMatch(/loading/);
    fake.pending[0]?.resolve();
    await flush();
    expect(b.value?.sequence).toBeDefined();
    expect(fake.models[0]?.busy).toBe(1);
    b.value?.release();
    await scheduler.close();
  });

  it("a failed load rejects every request waiting for it with ERR_MODEL_LOAD; the next request loads again", async () => {
    const { scheduler, fake } = setup();
    fake.instant = false;
    fake.failNext = new Error("out of memory");
    const a = track(scheduler.acquire(req("/m/a.gguf")));
    const b = track(scheduler.acquire(req("/m/a.gguf")));
    await flush();
    fake.pending[0]?.resolve();
    await flush();
    for (const p of [a, b]) {
      expect(codeOf(p.error)).toBe("ERR_MODEL_LOAD");
      expect((p.error as OwlError).message).toMatch(/"a".*out of memory/);
      expect(((p.error as OwlError).cause as Error).message).toBe("out of memory");
    }
    expect(scheduler.running()).toEqual([]);
    fake.instant = true;
    const c = await scheduler.acquire(req("/m/a.gguf"));
    expect(fake.loads).toHaveLength(2);
    expect(c.sequence).toBeDefined();
    c.release();
    await scheduler.close();
  });

  it("a GGUF header that cannot be read is ERR_MODEL_LOAD naming the model", async () => {
    const { scheduler, fake } = setup({ trainContextLength: undefined });
    await expect(scheduler.acquire(req("/nonexistent/x.gguf"))).rejects.toMatchObject({
      code: "ERR_MODEL_LOAD",
      message: expect.stringMatching(/"x".*nonexistent/),
    });
    expect(fake.loads).toHaveLength(0);
    await scheduler.close();
  });

  it("reads the training context from the GGUF header: num_ctx 4096 on stories260K (512) loads 512", async () => {
    const { scheduler, fake } = setup({ trainContextLength: undefined });
    const path = new URL("../models/stories260k.gguf", import.meta.url).pathname;
    const l = await scheduler.acquire(req(path));
    expect(fake.loads[0]?.numCtx).toBe(512);
    expect(scheduler.running()[0]?.numCtx).toBe(512);
    l.release();
    const l2 = await scheduler.acquire(req(path, { numCtx: 128 }));
    expect(fake.loads.map((o) => o.numCtx)).toEqual([512, 128]);
    l2.release();
    await scheduler.close();
  });

  it("acquireModel gives the model without a sequence and holds it until release", async () => {
    const { scheduler, fake, clock } = setup({ maxLoadedModels: 1 });
    const m = await scheduler.acquireModel(req("/m/a.gguf"));
    expect(m.sequence).toBeUndefined();
    expect(m.model).toBe(fake.models[0]);
    expect(scheduler.running()[0]).toMatchObject({ active: 0 });
    // In use: another model must wait instead of evicting it; no keep-alive timer runs.
    const other = track(scheduler.acquire(req("/m/b.gguf")));
    clock.advance(60 * MIN);
    await flush();
    expect(other.done).toBe(false);
    expect(fake.models[0]?.disposed).toBe(false);
    m.release();
    await flush();
    expect(fake.models[0]?.disposed).toBe(true);
    expect(other.value?.sequence).toBeDefined();
    other.value?.release();
    await scheduler.close();
  });

  it("passes request.prompt's tokens, computed once for the loaded model, to tryAcquireSequence", async () => {
    const { scheduler, fake } = setup({ numParallel: 1 });
    const a = await scheduler.acquire(req("/m/a.gguf"));
    const seen: LoadedModel[] = [];
    const b = track(
      scheduler.acquire({
        ...req("/m/a.gguf"),
        prompt: (m) => {
          seen.push(m);
          return [1, 5, 7];
        },
      }),
    );
    await flush();
    a.release();
    await flush();
    expect(b.value?.sequence).toBeDefined();
    expect(seen).toEqual([fake.models[0]]);
    expect(fake.models[0]?.prompts).toEqual([undefined, [1, 5, 7], [1, 5, 7]]);
    b.value?.release();
    const bad = scheduler.acquire({
      ...req("/m/a.gguf"),
      prompt: () => {
        throw new OwlError("ERR_TEMPLATE_RENDER", "bad template");
      },
    });
    await expect(bad).rejects.toMatchObject({ code: "ERR_TEMPLATE_RENDER" });
    expect(fake.models[0]?.busy).toBe(0);
    await scheduler.close();
  });

  it("a lease's signal follows the request's signal", async () => {
    const { scheduler } = setup();
    const ac = new AbortController();
    const l = await scheduler.acquire(req("/m/a.gguf", { signal: ac.signal }));
    expect(l.signal?.aborted).toBe(false);
    ac.abort();
    expect(l.signal?.aborted).toBe(true);
    l.release();
    await scheduler.close();
  });
});

describe("scheduler: keep-alive", () => {
  it("unloads an idle model after the default keep-alive and shows expiresAt", async () => {
    const { scheduler, fake, clock } = setup();
    const l = await scheduler.acquire(req("/m/a.gguf"));
    const busy = scheduler.running()[0];
    expect(busy?.expiresAt?.getTime()).toBe(clock.t + 5 * MIN);
    clock.advance(10 * MIN); // no timer runs while a lease is held
    expect(fake.models[0]?.disposed).toBe(false);
    l.release();
    const t0 = clock.t;
    expect(scheduler.running()).toMatchObject([
      {
        name: "a",
        digest: resolved("/m/a.gguf").digest,
        modelPath: "/m/a.gguf",
        backend: "llama.cpp",
        numCtx: 512,
        size: 1000 + 100 * 512,
        expiresAt: new Date(t0 + 5 * MIN),
        active: 0,
      },
    ]);
    clock.advance(5 * MIN - 1);
    await flush();
    expect(fake.models[0]?.disposed).toBe(false);
    clock.advance(1);
    await flush();
    expect(fake.models[0]?.disposed).toBe(true);
    expect(scheduler.running()).toEqual([]);
    expect(clock.timers.size).toBe(0);
    await scheduler.close();
  });

  it("a new request cancels the timer, and the latest request's keep-alive wins", async () => {
    const { scheduler, fake, clock } = setup();
    (await scheduler.acquire(req("/m/a.gguf", { keepAliveMs: 10 * MIN }))).release();
    clock.advance(9 * MIN);
    const l = await scheduler.acquire(req("/m/a.gguf", { keepAliveMs: 2 * MIN }));
    expect(clock.timers.size).toBe(0);
    clock.advance(5 * MIN);
    l.release();
    expect(scheduler.running()[0]?.expiresAt?.getTime()).toBe(clock.t + 2 * MIN);
    clock.advance(2 * MIN);
    await flush();
    expect(fake.models[0]?.disposed).toBe(true);
    expect(fake.loads).toHaveLength(1);
    await scheduler.close();
  });

  it("keep-alive 0 unloads when the last request ends; negative keeps the model forever", async () => {
    const { scheduler, fake, clock } = setup();
    const a = await scheduler.acquire(req("/m/a.gguf", { keepAliveMs: 0 }));
    const b = await scheduler.acquire(req("/m/a.gguf", { keepAliveMs: 0 }));
    a.release();
    await flush();
    expect(fake.models[0]?.disposed).toBe(false); // b still runs
    b.release();
    await flush();
    expect(fake.models[0]?.disposed).toBe(true);
    expect(scheduler.running()).toEqual([]);

    (await scheduler.acquire(req("/m/a.gguf", { keepAliveMs: -1 }))).release();
    expect(scheduler.running()[0]?.expiresAt).toBeNull();
    clock.advance(1000 * 24 * 60 * MIN);
    await flush();
    expect(fake.models[1]?.disposed).toBe(false);
    expect(clock.timers.size).toBe(0);
    await scheduler.close();
    expect(fake.models[1]?.disposed).toBe(true);
  });

  it("a keep-alive beyond setTimeout's 2^31-1 ms re-arms the timer instead of firing early", async () => {
    const { scheduler, fake, clock } = setup();
    (await scheduler.acquire(req("/m/a.gguf", { keepAliveMs: 30 * 24 * 60 * MIN }))).release();
    const [timer] = [...clock.timers.values()];
    expect(timer && timer.at - clock.t).toBe(2 ** 31 - 1);
    clock.advance(2 ** 31);
    await flush();
    expect(fake.models[0]?.disposed).toBe(false);
    clock.advance(30 * 24 * 60 * MIN);
    await flush();
    expect(fake.models[0]?.disposed).toBe(true);
    await scheduler.close();
  });

  it("the default timers are unref()'d so a process can exit", async () => {
    const { scheduler, fake } = setup({ now: undefined, setTimer: undefined, clearTimer: undefined });
    const handles: NodeJS.Timeout[] = [];
    const orig = globalThis.setTimeout;
    const spy = ((fn: () => void, ms: number) => {
      const t = orig(fn, ms);
      handles.push(t);
      return t;
    }) as typeof setTimeout;
    globalThis.setTimeout = spy;
    try {
      (await scheduler.acquire(req("/m/a.gguf"))).release();
    } finally {
      globalThis.setTimeout = orig;
    }
    expect(handles).toHaveLength(1);
    expect(handles[0]?.hasRef()).toBe(false);
    await scheduler.close();
    expect(fake.models[0]?.disposed).toBe(true);
  });
});

describe("scheduler: several models", () => {
  it("beyond maxLoadedModels it unloads the least recently used idle model", async () => {
    const { scheduler, fake } = setup({ maxLoadedModels: 2 });
    const a = await scheduler.acquire(req("/m/a.gguf"));
    const b = await scheduler.acquire(req("/m/b.gguf"));
    b.release();
    a.release(); // a used last: b is the least recently used
    const c = await scheduler.acquire(req("/m/c.gguf"));
    expect(fake.models.map((m) => [m.options.modelPath, m.disposed])).toEqual([
      ["/m/a.gguf", false],
      ["/m/b.gguf", true],
      ["/m/c.gguf", false],
    ]);
    expect(
      scheduler
        .running()
        .map((r) => r.name)
        .sort(),
    ).toEqual(["a", "c"]);
    c.release();
    await scheduler.close();
  });

  it("with every loaded model busy a new model waits (queued, abortable) until one is idle", async () => {
    const { scheduler, fake } = setup({ maxLoadedModels: 1, maxQueue: 1 });
    const a = await scheduler.acquire(req("/m/a.gguf"));
    const ac = new AbortController();
    const b1 = track(scheduler.acquire(req("/m/b.gguf", { signal: ac.signal })));
    const b2 = track(scheduler.acquire(req("/m/b.gguf")));
    await flush();
    expect(codeOf(b2.error)).toBe("ERR_QUEUE_FULL"); // b1 counts as queued
    ac.abort();
    await flush();
    expect(codeOf(b1.error)).toBe("ERR_ABORTED");
    const b3 = track(scheduler.acquire(req("/m/b.gguf")));
    await flush();
    expect(b3.done).toBe(false);
    expect(fake.loads).toHaveLength(1);
    a.release();
    await flush();
    expect(fake.models[0]?.disposed).toBe(true);
    expect(b3.value?.sequence).toBeDefined();
    expect(fake.loads.map((o) => o.modelPath)).toEqual(["/m/a.gguf", "/m/b.gguf"]);
    b3.value?.release();
    await scheduler.close();
  });

  it("another num_ctx reloads the model once the old one is idle, and later requests for the old settings wait their turn", async () => {
    const { scheduler, fake } = setup();
    const a = await scheduler.acquire(req("/m/b.gguf")); // 2048 (capped from 4096)
    const small = track(scheduler.acquire(req("/m/b.gguf", { numCtx: 256 })));
    await flush();
    expect(small.done).toBe(false);
    expect(fake.loads).toHaveLength(1);
    // The old context has free sequences but takes no new request while a reload waits.
    const old = track(scheduler.acquire(req("/m/b.gguf")));
    await flush();
    expect(old.done).toBe(false);
    a.release();
    await flush();
    expect(fake.models[0]?.disposed).toBe(true);
    expect(small.value?.model.numCtx).toBe(256);
    expect(old.done).toBe(false);
    (small.value as Lease).release();
    await flush();
    expect(old.value?.model.numCtx).toBe(2048);
    expect(fake.loads.map((o) => o.numCtx)).toEqual([2048, 256, 2048]);
    expect(fake.live).toHaveLength(1);
    old.value?.release();
    await scheduler.close();
  });

  it("another backend reloads the model; an abandoned reload leaves the old model serving", async () => {
    const { scheduler, backends, created } = setup();
    const a = await scheduler.acquire(req("/m/a.gguf"));
    const ac = new AbortController();
    const owl = track(scheduler.acquire(req("/m/a.gguf", { backend: "owl", signal: ac.signal })));
    await flush();
    // While the owl request waits, the llama.cpp model takes no new request...
    const held = track(scheduler.acquire(req("/m/a.gguf")));
    await flush();
    expect(held.done).toBe(false);
    ac.abort();
    await flush();
    expect(codeOf(owl.error)).toBe("ERR_ABORTED");
    // ...and once it is abandoned, it serves again at once.
    expect(held.value?.sequence).toBeDefined();
    held.value?.release();
    a.release();
    await flush();
    // Nobody wants the owl backend any more: the llama.cpp model stays, on its keep-alive.
    expect(backends["llama.cpp"].models[0]?.disposed).toBe(false);
    expect(scheduler.running()[0]?.expiresAt).not.toBeNull();
    const b = await scheduler.acquire(req("/m/a.gguf"));
    b.release();
    const o = await scheduler.acquire(req("/m/a.gguf", { backend: "owl" }));
    expect(backends["llama.cpp"].models[0]?.disposed).toBe(true);
    expect(o.model.backend).toBe("owl");
    expect(scheduler.running()[0]?.backend).toBe("owl");
    expect(created).toEqual(["llama.cpp", "owl"]);
    o.release();
    await scheduler.close();
  });
});

describe("scheduler: unload and close", () => {
  it("unload(name) aborts running generations, waits for them, then disposes", async () => {
    const { scheduler, fake } = setup();
    const l = await scheduler.acquire(req("/m/a.gguf"));
    const done = track(scheduler.unload("a"));
    await flush();
    expect(l.signal?.aborted).toBe(true);
    expect(codeOf(l.signal?.reason)).toBe("ERR_ABORTED");
    expect(done.done).toBe(false);
    expect(fake.models[0]?.disposed).toBe(false);
    l.release();
    await flush();
    expect(done.value).toBe(true);
    expect(fake.models[0]?.disposed).toBe(true);
    expect(scheduler.running()).toEqual([]);
    expect(await scheduler.unload("a")).toBe(false);
    expect(await scheduler.unload("nothing")).toBe(false);
    // Full and short names both match.
    (await scheduler.acquire(req("/m/a.gguf"))).release();
    expect(await scheduler.unload("a:latest")).toBe(true);
    expect(fake.live).toHaveLength(0);
    await scheduler.close();
  });

  it("unload() during a load waits for it, keeps new requests off the model, then disposes it", async () => {
    const { scheduler, fake } = setup();
    fake.instant = false;
    const a = track(scheduler.acquire(req("/m/a.gguf")));
    const embed = track(scheduler.acquireModel(req("/m/a.gguf"))); // shares the load
    await flush();
    expect(fake.loads).toHaveLength(1);
    const done = track(scheduler.unload("a"));
    fake.pending[0]?.resolve();
    await flush();
    // The model loaded but is being unloaded: the waiting requests get a fresh load.
    expect(done.value).toBe(true);
    expect(fake.models[0]?.disposed).toBe(true);
    expect(fake.models[0]?.acquired).toBe(0);
    expect(fake.loads).toHaveLength(2);
    fake.pending[1]?.resolve();
    await flush();
    expect(a.value?.model).toBe(fake.models[1]);
    expect(embed.value?.model).toBe(fake.models[1]);
    expect(embed.value?.sequence).toBeUndefined();
    a.value?.release();
    embed.value?.release();
    await scheduler.close();
  });

  it("close() rejects queued requests, aborts running ones, disposes every model and clears its timers", async () => {
    const { scheduler, fake, clock } = setup({ numParallel: 1 });
    (await scheduler.acquire(req("/m/b.gguf"))).release(); // idle, keep-alive timer running
    expect(clock.timers.size).toBe(1);
    const a = await scheduler.acquire(req("/m/a.gguf"));
    const queued = track(scheduler.acquire(req("/m/a.gguf")));
    fake.instant = false;
    const loading = track(scheduler.acquire(req("/m/c.gguf")));
    await flush();
    const closed = track(scheduler.close());
    await flush();
    expect(codeOf(queued.error)).toBe("ERR_ABORTED");
    expect(a.signal?.aborted).toBe(true);
    expect(closed.done).toBe(false);
    a.release();
    fake.pending[0]?.resolve();
    await flush();
    expect(codeOf(loading.error)).toBe("ERR_ABORTED");
    expect(closed.done).toBe(true);
    expect(fake.models.every((m) => m.disposed)).toBe(true);
    expect(fake.models).toHaveLength(3);
    expect(clock.timers.size).toBe(0);
    expect(scheduler.running()).toEqual([]);
    await expect(scheduler.acquire(req("/m/a.gguf"))).rejects.toMatchObject({ code: "ERR_ABORTED" });
  });
});
