/**
 * The text-level completion loop that both HTTP APIs and `owl run` stream, over any backend:
 * a sequence's tokens become text events and one final "done" event.
 *
 *   for await (const ev of complete(model, sequence, { prompt, sampling, maxTokens: 64, stop: [] })) {
 *     if (ev.type === "text") write(ev.text); else report(ev);
 *   }
 *
 * It ends at an end-of-generation token (reason stop; the token is neither shown nor put in the
 * context), a stop string (reason stop; the stop text and what follows are withheld, as llama.cpp's
 * server and Ollama do), maxTokens or a full context (reason length), or the request's signal
 * (reason abort, with what was produced so far). With request.shift a full context does not end
 * it: the sequence starts again from the first numKeep tokens and the later half of the rest
 * (Ollama's context shift), and generation goes on. Text never splits a UTF-8 character (raw token
 * bytes through a streaming TextDecoder) and never shows what may still become a stop string
 * (StopMatcher). Each text event carries the TokenPiece of every token whose text it completes;
 * at a stop string, the tokens that reach into the text before it go out too (their pieces cover
 * the text), and those wholly inside the stop string are dropped with it.
 * Timings come from process.hrtime.bigint(): promptEvalNs from the start to the first sampled
 * token, evalNs from that token to the last; evalTokens counts sampled tokens, an end-of-generation
 * token included (it was evaluated like any other).
 * Not here: prompt rendering (prompt.ts), sampling itself (the backends), HTTP shapes (server/).
 */
import { StopMatcher } from "../engine/sampler-stop.ts";
import { OwlError } from "../util/errors.ts";
import type { CompletionEvent, CompletionRequest, LoadedModel, Sequence, TokenPiece } from "./types.ts";

function checkRequest(request: CompletionRequest): void {
  const { maxTokens, stop, prompt } = request;
  if (!Number.isInteger(maxTokens) || maxTokens < -1) {
    throw new OwlError(
      "ERR_INVALID_ARGUMENT",
      `maxTokens must be an integer >= -1 (-1 = no limit), found ${maxTokens}`,
      {
        details: { parameter: "maxTokens", found: maxTokens },
      },
    );
  }
  for (const [i, s] of stop.entries()) {
    if (typeof s !== "string" || s.length === 0) {
      throw new OwlError(
        "ERR_INVALID_ARGUMENT",
        `stop[${i}] must be a non-empty string, found ${JSON.stringify(s)}`,
        {
          details: { parameter: "stop", found: s },
        },
      );
    }
  }
  if (prompt.length === 0) {
    throw new OwlError("ERR_INVALID_ARGUMENT", "the prompt has no tokens: nothing to complete");
  }
  const l = request.logprobs;
  if (l !== undefined && (!Number.isInteger(l) || l < 0)) {
    throw new OwlError("ERR_INVALID_ARGUMENT", `logprobs must be an integer >= 0, found ${l}`, {
      details: { parameter: "logprobs", found: l },
    });
  }
}

const STREAM = { stream: true } as const;

/** Continuation bytes still expected after `bytes`, given `missing` expected before them. */
function utf8Missing(missing: number, bytes: Uint8Array): number {
  for (const b of bytes) {
    if (missing > 0 && (b & 0xc0) === 0x80) missing--;
    else if (b >= 0xf0) missing = 3;
    else if (b >= 0xe0) missing = 2;
    else if (b >= 0xc0) missing = 1;
    else missing = 0;
  }
  return missing;
}

export async function* complete(
  model: LoadedModel,
  sequence: Sequence,
  request: CompletionRequest,
): AsyncGenerator<CompletionEvent, void, void> {
  checkRequest(request);
  const t0 = process.hrtime.bigint();
  const { prompt, maxTokens, signal } = request;
  const eog = new Set(model.info.eogTokens);
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  const pieceText = new TextDecoder("utf-8", { ignoreBOM: true });
  const matcher = new StopMatcher(request.stop);
  const textOf = (token: number) => pieceText.decode(model.tokenBytes(token));

  const generated: number[] = [];
  let sampled = 0;
  let tFirst: bigint | undefined;
  let tLast: bigint | undefined;
  let reason: "stop" | "length" | "abort" = "length";
  let promptEvaluated = 0;
  let statsRead = false;
  const readStats = () => {
    if (statsRead) return;
    statsRead = true;
    promptEvaluated = sequence.lastPrompt().evaluated;
  };

  // Pieces wait until the text they complete has been shown: `ends[i]` (`starts[i]`) is the length
  // of the decoded text after (before) pending[i]'s bytes; `shown` the length emitted so far. At a
  // stop string, the pieces that reach into the shown text go out; those wholly inside it do not.
  let pending: TokenPiece[] = [];
  let ends: number[] = [];
  let starts: number[] = [];
  let decodedLength = 0;
  let shown = 0;
  let missing = 0;
  const release = (which: "complete" | "all" | "started"): TokenPiece[] => {
    let n = 0;
    const limit = which === "started" ? starts : ends;
    while (
      n < pending.length &&
      (which === "all" || limit[n]! < shown || (which === "complete" && limit[n]! === shown))
    )
      n++;
    if (n === 0) return [];
    if (n === pending.length) {
      // Everything goes (the common case): hand the array over instead of copying it.
      const out = pending;
      pending = [];
      ends = [];
      starts = [];
      return out;
    }
    const out = pending.slice(0, n);
    pending = pending.slice(n);
    ends = ends.slice(n);
    starts = starts.slice(n);
    return out;
  };
  const textEvent = (
    text: string,
    which: "complete" | "all" | "started" = "complete",
  ): CompletionEvent | undefined => {
    shown += text.length;
    const pieces = release(which);
    if (text === "" && pieces.length === 0) return undefined;
    return { type: "text", text, pieces };
  };

  let stopped = false;
  const jsonGrammar = request.grammar?.type === "json" || request.grammar?.type === "json_schema";
  let jsonText = "";
  let shifts = 0;
  const generateOptions = {
    sampling: request.sampling,
    ...(request.grammar && { grammar: request.grammar }),
    ...(request.logprobs !== undefined && { logprobs: request.logprobs }),
    ...(signal && { signal }),
  };
  let input: readonly number[] = prompt;
  while (maxTokens !== 0) {
    const generatedBefore = generated.length;
    // Set while a token is being handled: still set after the loop when it ended by a break.
    let brokeOut = false;
    const it = sequence.generate(input, generateOptions);
    try {
      for await (const step of it) {
        brokeOut = true;
        const now = process.hrtime.bigint();
        tFirst ??= now;
        tLast = now;
        readStats();
        sampled++;
        if (eog.has(step.token)) {
          reason = "stop";
          break;
        }
        generated.push(step.token);
        const bytes = model.tokenBytes(step.token);
        const piece: TokenPiece = { token: step.token, text: pieceText.decode(bytes) };
        if (step.logprob !== undefined) piece.logprob = step.logprob;
        if (step.top)
          piece.top = step.top.map((t) => ({ token: t.token, text: textOf(t.token), logprob: t.logprob }));
        const text = decoder.decode(bytes, STREAM);
        starts.push(decodedLength);
        decodedLength += text.length;
        missing = utf8Missing(missing, bytes);
        pending.push(piece);
        // A token that leaves a character incomplete waits for the text that completes it.
        ends.push(missing > 0 ? decodedLength + 1 : decodedLength);
        const r = matcher.push(text);
        if (r.stopped) {
          reason = "stop";
          stopped = true;
          const ev = textEvent(r.text, "started");
          if (ev) yield ev;
          break;
        }
        const ev = textEvent(r.text);
        if (ev) yield ev;
        if (jsonGrammar) {
          // NOTE: llama.cpp's JSON grammars allow whitespace after the closing brace, and a small
          // model fills it with newlines until max tokens; a complete JSON value is the end.
          jsonText += text;
          if (/[}\]]\s*$/.test(text) && isCompleteJson(jsonText)) {
            reason = "stop";
            break;
          }
        }
        if (signal?.aborted) break;
        if (maxTokens > 0 && generated.length >= maxTokens) break;
        brokeOut = false;
      }
    } finally {
      // Ends the backend's generator (and its evaluation) when we stop early or are returned.
      await it.return();
    }
    readStats();
    // The backend's generator ended on its own (not aborted): the sequence's context is full.
    if (brokeOut || signal?.aborted || !request.shift) break;
    // Context shift: keep num_keep (+ BOS), drop half of what follows, evaluate the rest again
    // (llama-server moves the cache instead; re-evaluating gives the same tokens their true
    // positions) and go on from the last generated token.
    const all = [...input, ...generated.slice(generatedBefore)];
    const bos = model.info.addBos ? model.info.bosToken : undefined;
    const shifted = shiftContext(all, prompt.length, request.shift.numKeep, bos);
    if (shifted === undefined) break;
    input = shifted;
    shifts++;
  }

  if (reason !== "stop" && signal?.aborted) reason = "abort";
  if (!stopped) {
    // The decoder's incomplete bytes (as U+FFFD) may still complete a stop string.
    const r = matcher.push(decoder.decode());
    if (r.stopped) {
      reason = "stop";
      const ev = textEvent(r.text, "started");
      if (ev) yield ev;
    } else {
      const ev = textEvent(r.text + matcher.flush(), "all");
      if (ev) yield ev;
    }
  }
  const tEnd = process.hrtime.bigint();
  const first = tFirst ?? tEnd;
  yield {
    type: "done",
    reason,
    promptTokens: prompt.length,
    promptEvaluated,
    promptEvalNs: Number(first - t0),
    evalTokens: sampled,
    evalNs: Number((tLast ?? first) - first),
    context: [...prompt, ...generated],
    shifts,
  };
}

/**
 * Ollama's context shift of a full context `all` (llama-server's n_discard = (n_past - n_keep) /
 * 2): the first numKeep tokens (-1: the whole prompt of promptLength tokens) plus a leading BOS
 * (`bosToken`, when the model adds one) stay, half of the rest goes, the later half follows;
 * undefined when nothing can go.
 */
export function shiftContext(
  all: readonly number[],
  promptLength: number,
  numKeep: number,
  bosToken: number | undefined,
): number[] | undefined {
  const bos = bosToken !== undefined && all[0] === bosToken ? 1 : 0;
  const n = numKeep < 0 ? promptLength - bos : numKeep;
  const keep = Math.max(0, Math.min(n + bos, all.length - 2));
  const discard = Math.floor((all.length - keep) / 2);
  if (discard < 1) return undefined;
  return [...all.slice(0, keep), ...all.slice(keep + discard)];
}

/** Whether `text` is one whole JSON value (an object or array: what the JSON grammars produce). */
function isCompleteJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
