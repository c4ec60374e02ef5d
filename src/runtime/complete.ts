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
 *
 * A grammar on a thinking answer (request.thinking): the model thinks unconstrained and the
 * grammar applies once its thinking has ended, as Ollama does for a format on a thinking model
 * (server/routes.go ChatHandler, "structured outputs via double request": a first completion
 * without the format, read by the thinking parser; once thinking has come and content follows
 * the closing tag, that content is dropped, the completion cancelled, and a second one started,
 * with the format, on the prompt rendered again with the thinking as an assistant message;
 * llm/llama_server.go hands the format to llama-server as a grammar or JSON schema for the whole
 * of a completion). Here the same sequence goes on instead of a prompt rendered again: generation
 * runs without the grammar while a ThinkingParser reads its text; the token in which the answer's
 * first non-space character after the closing tag appears is dropped (it was written without the
 * grammar; the tag and the whitespace before it in that token are kept: re-tokenized when the
 * model's tokenizer spells them exactly, else the token stays in the sequence, unshown), and
 * generation starts again on the same sequence (its KV cache reused) with the grammar, from the
 * prompt plus the answer up to there. An answer that does not open with the thinking tag has no
 * thinking: it is dropped unshown and generation starts again from the prompt with the grammar
 * (Ollama's parser then sees no thinking and never applies the format). The grammar is checked
 * before anything is generated (a backend without grammars, a schema it cannot build: the same
 * errors, at the same point, as without thinking). maxTokens counts the whole answer, thinking
 * included (Ollama gives each of its two completions num_predict).
 *
 * Timings come from process.hrtime.bigint(): promptEvalNs from the start to the first sampled
 * token, evalNs from that token to the last; evalTokens counts sampled tokens, an end-of-generation
 * token included (it was evaluated like any other).
 * Not here: prompt rendering (prompt.ts), sampling itself (the backends), HTTP shapes (server/).
 */
import { StopMatcher } from "../engine/sampler-stop.ts";
import { OwlError } from "../util/errors.ts";
import { ThinkingParser } from "./thinking.ts";
import type {
  CompletionEvent,
  CompletionRequest,
  LoadedModel,
  SampledToken,
  Sequence,
  SequenceGenerateOptions,
  TokenPiece,
} from "./types.ts";

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
const utf8 = new TextEncoder();

/**
 * Tokens whose bytes spell `text` exactly, from the model's tokenizer, or undefined. A tokenizer
 * that puts a space before a text (SentencePiece's space prefix) may merge that space with the
 * text's first characters (" a" is one token in stories260K): then the text is tokenized after a
 * newline (a piece of its own for the usual pre-tokenizers) and the tokens that spell the newline
 * (and the space before it) dropped. Every answer is checked against the text's bytes.
 */
function spell(model: LoadedModel, text: string): number[] | undefined {
  const want = utf8.encode(text);
  const bytesOf = (ids: readonly number[]) => Buffer.concat(ids.map((t) => model.tokenBytes(t)));
  for (const before of ["", "\n"]) {
    const tokens = model.tokenize(before + text, { addBos: false, parseSpecial: false });
    for (let k = 0; k <= 2 && k < tokens.length; k++) {
      const head = bytesOf(tokens.slice(0, k)).toString();
      if (head !== before && head !== ` ${before}`) continue;
      const rest = tokens.slice(k);
      if (bytesOf(rest).equals(want)) return rest;
    }
  }
  return undefined;
}

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
  let decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  const pieceText = new TextDecoder("utf-8", { ignoreBOM: true });
  const matcher = new StopMatcher(request.stop);
  const textOf = (token: number) => pieceText.decode(model.tokenBytes(token));
  const pieceOf = (step: SampledToken, bytes: Uint8Array): TokenPiece => {
    const piece: TokenPiece = { token: step.token, text: pieceText.decode(bytes) };
    if (step.logprob !== undefined) piece.logprob = step.logprob;
    if (step.top)
      piece.top = step.top.map((t) => ({ token: t.token, text: textOf(t.token), logprob: t.logprob }));
    return piece;
  };

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
  /** The stop string that ended the text, if one did. */
  let stopText: string | undefined;
  /** Shows a token's text (a stop string sets `stopped`): what the caller gets of it, if anything. */
  const show = (piece: TokenPiece, bytes: Uint8Array, text: string): CompletionEvent | undefined => {
    starts.push(decodedLength);
    decodedLength += text.length;
    missing = utf8Missing(missing, bytes);
    pending.push(piece);
    // A token that leaves a character incomplete waits for the text that completes it.
    ends.push(missing > 0 ? decodedLength + 1 : decodedLength);
    const r = matcher.push(text);
    if (r.stopped) {
      stopped = true;
      stopText = r.stop;
      return textEvent(r.text, "started");
    }
    return textEvent(r.text);
  };
  const jsonGrammar = request.grammar?.type === "json" || request.grammar?.type === "json_schema";
  let jsonText = "";
  let shifts = 0;
  const generateOptions = (grammar: boolean): SequenceGenerateOptions => ({
    sampling: request.sampling,
    ...(grammar && request.grammar && { grammar: request.grammar }),
    ...(request.logprobs !== undefined && { logprobs: request.logprobs }),
    ...(signal && { signal }),
  });
  // A grammar after the thinking (module comment): `watch` reads the answer until it ends.
  let watch: ThinkingParser | undefined;
  if (request.grammar !== undefined && request.thinking !== undefined) {
    watch = new ThinkingParser(request.thinking.tags);
    if (request.thinking.inside) watch.add(request.thinking.tags.open);
    // The grammar's errors come now, not after the thinking: a generation already aborted
    // checks its grammar and yields nothing (Sequence.generate).
    const probe = sequence.generate(prompt, {
      ...generateOptions(true),
      signal: AbortSignal.abort(),
    });
    try {
      await probe.next();
    } finally {
      await probe.return();
    }
  }
  /** Tokens read while `watch` looks for the opening tag: shown once it is found. */
  let held: { piece: TokenPiece; bytes: Uint8Array; text: string }[] = [];
  let input: readonly number[] = prompt;
  while (maxTokens !== 0) {
    const generatedBefore = generated.length;
    // Set while a token is being handled: still set after the loop when it ended by a break.
    let brokeOut = false;
    /** Where generation starts again with the grammar (the thinking has ended, or never began). */
    let restart: readonly number[] | undefined;
    const it = sequence.generate(input, generateOptions(watch === undefined));
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
        const bytes = model.tokenBytes(step.token);
        const piece = pieceOf(step, bytes);
        const text = decoder.decode(bytes, STREAM);
        if (watch !== undefined) {
          const answer = watch.add(text).content;
          if (answer === "" || watch.opened) {
            // Still thinking, or still looking for the opening tag (held, unshown, meanwhile).
            held.push({ piece, bytes, text });
            if (!watch.opened) {
              generated.push(step.token);
            } else {
              // The token where the answer starts after the thinking shows only the text before
              // the answer (NOTE: its piece keeps the whole token's text and logprob).
              const before = answer === "" ? text : text.slice(0, text.length - answer.length);
              if (answer !== "") {
                held.pop();
                if (before !== "") held.push({ piece, bytes: utf8.encode(before), text: before });
              }
              for (const h of held) {
                const ev = show(h.piece, h.bytes, h.text);
                if (ev) yield ev;
                if (stopped) break;
              }
              held = [];
              if (answer === "") generated.push(step.token);
              else if (!stopped) {
                const kept = before === "" ? [] : (spell(model, before) ?? [step.token]);
                generated.push(...kept);
                restart = [...input, ...generated.slice(generatedBefore)];
                // The dropped rest of the token may hold part of a character: start afresh.
                decoder = new TextDecoder("utf-8", { ignoreBOM: true });
                missing = 0;
                watch = undefined;
              }
            }
            if (stopped) {
              reason = "stop";
              break;
            }
            if (restart !== undefined) break;
          } else {
            // No thinking: what was read goes, unshown; the grammar applies from the prompt.
            held = [];
            generated.length = 0;
            decoder = new TextDecoder("utf-8", { ignoreBOM: true });
            restart = prompt;
            watch = undefined;
            break;
          }
        } else {
          generated.push(step.token);
          const ev = show(piece, bytes, text);
          if (ev) yield ev;
          if (stopped) {
            reason = "stop";
            break;
          }
        }
        if (jsonGrammar && watch === undefined) {
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
    let all: readonly number[];
    if (restart !== undefined && !signal?.aborted) {
      if (maxTokens > 0 && generated.length >= maxTokens) break;
      if (restart.length < model.numCtx) {
        input = restart;
        continue;
      }
      // The thinking filled the context: a full context, as below.
      if (!request.shift) break;
      all = restart;
    } else {
      // The backend's generator ended on its own (not aborted): the sequence's context is full.
      if (brokeOut || signal?.aborted || !request.shift) break;
      all = [...input, ...generated.slice(generatedBefore)];
    }
    // Context shift: keep num_keep (+ BOS), drop half of what follows, evaluate the rest again
    // (llama-server moves the cache instead; re-evaluating gives the same tokens their true
    // positions) and go on from the last generated token.
    const bos = model.info.addBos ? model.info.bosToken : undefined;
    const shifted = shiftContext(all, prompt.length, request.shift.numKeep, bos);
    if (shifted === undefined) break;
    input = shifted;
    shifts++;
  }

  if (reason !== "stop" && signal?.aborted) reason = "abort";
  if (!stopped) {
    // An answer that ended while still looking for the opening tag: shown as it is.
    for (const h of held) {
      const ev = show(h.piece, h.bytes, h.text);
      if (ev) yield ev;
      if (stopped) {
        reason = "stop";
        break;
      }
    }
  }
  if (!stopped) {
    // The decoder's incomplete bytes (as U+FFFD) may still complete a stop string.
    const r = matcher.push(decoder.decode());
    if (r.stopped) {
      stopText = r.stop;
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
    ...(stopText !== undefined && { stopText }),
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
