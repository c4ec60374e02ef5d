/**
 * The owl engine's thread (started by owl-engine.ts through owl-engine-worker.mjs): it owns the
 * Model, its WebAssembly backend and thread pool, one Session (KV cache) per sequence and one for
 * embeddings, and runs the forward passes the main thread asks for, one message at a time in
 * arrival order. The engine is synchronous; here it blocks this thread instead of the server's
 * event loop, so the HTTP work of one step (sampling, JSON, socket writes) overlaps the next
 * step's forward.
 *
 * Protocol (owl-engine.ts EngineRequest / EngineReply): workerData is the EngineInit; the thread
 * answers { type: "ready", facts } or { type: "failed", error } once, then one reply per request,
 * with the request's id. Every evaluation reply carries `lengths`, the number of tokens each
 * session it touched now holds (after a failure too: a failed evaluate leaves a prefix of the
 * tokens it was given), so that the main thread's copy of each session's tokens stays exact.
 * Logits go back as transferred buffers (no copy). Errors go back as plain objects (code,
 * message, hint, details) and are thrown again there as OwlErrors.
 * Not here: the step barrier, sampling and everything the Backend contract promises (owl-backend.ts).
 */
import { parentPort, type TransferListItem, workerData } from "node:worker_threads";
import { createWasmBackend, type WasmBackend } from "../engine/kernels/wasm/backend.ts";
import { loadModel, type Model, type Session } from "../engine/model.ts";
import { openGguf } from "../formats/gguf/index.ts";
import { dequantize } from "../quant/index.ts";
import { OwlError } from "../util/errors.ts";
import { normalize } from "./gguf-info.ts";
import type { EngineFacts, EngineInit, EngineReply, EngineRequest, WireError } from "./owl-engine.ts";

function wireError(e: unknown): WireError {
  if (e instanceof OwlError) {
    return {
      code: e.code,
      message: e.message,
      ...(e.hint !== undefined && { hint: e.hint }),
      ...(e.details !== undefined && { details: e.details }),
    };
  }
  return { message: e instanceof Error ? (e.stack ?? e.message) : String(e) };
}

/** The buffer of `a` to transfer: the engine's results are fresh arrays of their own. */
function buffer(a: Float32Array): ArrayBuffer {
  if (!(a.buffer instanceof ArrayBuffer) || a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength)
    throw new Error("internal error: an engine result shares its buffer");
  return a.buffer;
}

class EngineHost {
  private embedSession: Session | undefined;
  private outputNorm: Float32Array | undefined;

  constructor(
    private readonly init: EngineInit,
    private readonly wasm: WasmBackend,
    private readonly model: Model,
    private readonly sessions: Session[],
  ) {}

  static async start(init: EngineInit): Promise<EngineHost> {
    const wasm = await createWasmBackend(init.threads !== undefined ? { threads: init.threads } : {});
    try {
      const model = await loadModel(init.modelPath, { backend: wasm });
      const sessions = Array.from({ length: init.numParallel }, () =>
        model.createSession({ nCtx: init.numCtx }),
      );
      return new EngineHost(init, wasm, model, sessions);
    } catch (e) {
      await wasm.dispose();
      throw e;
    }
  }

  facts(): EngineFacts {
    const hp = this.model.hparams;
    return { V: hp.V, C: hp.C, memoryBytes: this.model.memory().totalBytes };
  }

  private session(index: number): Session {
    const s = this.sessions[index];
    if (!s) throw new Error(`internal error: no session ${index} (${this.sessions.length} sessions)`);
    return s;
  }

  /** One request's reply (without its id), the buffers to transfer beside it. */
  handle(req: EngineRequest): [EngineReply, TransferListItem[]] {
    switch (req.type) {
      case "evaluate": {
        const session = this.session(req.seq);
        try {
          const r = session.evaluate(Array.from(req.tokens));
          return [
            { id: req.id, type: "logits", logits: [r.logits], lengths: [session.tokens.length] },
            [buffer(r.logits)],
          ];
        } catch (e) {
          return [{ id: req.id, type: "error", error: wireError(e), lengths: [session.tokens.length] }, []];
        }
      }
      case "step": {
        const sessions = req.seqs.map((i) => this.session(i));
        try {
          const logits =
            sessions.length === 1
              ? [sessions[0]!.evaluate(Array.from(req.tokens[0]!)).logits]
              : this.model
                  .evaluateBatch(
                    sessions.map((session, i) => ({ session, tokens: Array.from(req.tokens[i]!) })),
                    { maxRows: Math.max(sessions.length, 32) },
                  )
                  .map((r) => r.logits);
          const lengths = sessions.map((s) => s.tokens.length);
          return [{ id: req.id, type: "logits", logits, lengths }, logits.map(buffer)];
        } catch (e) {
          const lengths = sessions.map((s) => s.tokens.length);
          return [{ id: req.id, type: "error", error: wireError(e), lengths }, []];
        }
      }
      case "embed": {
        try {
          const embedding = this.embed(req.tokens, req.poolingType);
          return [
            { id: req.id, type: "embedding", embedding, memoryBytes: this.model.memory().totalBytes },
            [buffer(embedding)],
          ];
        } catch (e) {
          return [{ id: req.id, type: "error", error: wireError(e), lengths: [] }, []];
        }
      }
      case "dispose":
        // Answered by the message loop after the model is gone.
        return [{ id: req.id, type: "disposed" }, []];
    }
  }

  /**
   * The final hidden state of `tokens` (the residual stream after the last layer, a forward hook,
   * then the model's output norm), pooled as `poolingType` says, L2-normalized.
   */
  private embed(tokens: Int32Array, poolingType: number | undefined): Float32Array {
    const hp = this.model.hparams;
    const C = hp.C;
    this.embedSession ??= this.model.createSession({ nCtx: this.init.numCtx });
    const norm = this.finalNorm();
    const hidden = new Float32Array(tokens.length * C);
    const hookName = `blk.${hp.L - 1}.resid`;
    this.embedSession.evaluate(Array.from(tokens), {
      reuse: false,
      onActivation: (name, _layer, data, at) => {
        if (name === hookName) hidden.set(data.subarray(0, at.T * C), at.pos0 * C);
      },
    });
    return normalize(pool(hidden, tokens.length, C, norm, hp.rmsEps, poolingType));
  }

  /** output_norm.weight as float32 (C), read from the GGUF once. */
  private finalNorm(): Float32Array {
    if (this.outputNorm) return this.outputNorm;
    const file = openGguf(this.init.modelPath);
    try {
      const t = file.tensor("output_norm.weight");
      if (!t) {
        throw new OwlError(
          "ERR_UNSUPPORTED",
          `the model has no output_norm.weight: owl cannot embed with it`,
          {
            hint: "use the llama.cpp backend (OWL_BACKEND=llama.cpp, the default)",
          },
        );
      }
      this.outputNorm = dequantize(t.type, file.readTensor(t), t.nElements);
      return this.outputNorm;
    } finally {
      file.close();
    }
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
    await this.wasm.dispose();
  }
}

/** rms_norm(x) * w of each row, pooled over the T rows of `hidden` (T,C). */
function pool(
  hidden: Float32Array,
  T: number,
  C: number,
  w: Float32Array,
  eps: number,
  poolingType: number | undefined,
): Float32Array {
  // llama.cpp's enum llama_pooling_type: 1 mean, 2 cls (first token), 3 last; 0 / absent: none
  // (an embedding context then returns the last token's state).
  const rows = poolingType === 1 ? Array.from({ length: T }, (_, t) => t) : poolingType === 2 ? [0] : [T - 1];
  const out = new Float64Array(C);
  for (const t of rows) {
    const x = hidden.subarray(t * C, (t + 1) * C);
    let ss = 0;
    for (const v of x) ss += v * v;
    const scale = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) out[c] = out[c]! + x[c]! * scale * w[c]!;
  }
  return Float32Array.from(out, (v) => v / rows.length);
}

const port = parentPort;
if (!port) throw new Error("internal error: owl-engine-host.ts runs only as a worker thread");
try {
  const host = await EngineHost.start(workerData as EngineInit);
  port.postMessage({ type: "ready", facts: host.facts() });
  port.on("message", async (req: EngineRequest) => {
    const [reply, transfer] = host.handle(req);
    if (req.type === "dispose") {
      await host.dispose();
      port.postMessage(reply);
      port.close();
      return;
    }
    port.postMessage(reply, transfer);
  });
} catch (e) {
  port.postMessage({ type: "failed", error: wireError(e) });
}
