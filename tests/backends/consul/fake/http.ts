/**
 * HTTP pieces of the Consul fake: responses as Consul writes them, and
 * blocking queries as agent/consul/rpc.go blockingQuery runs them: the read
 * runs again each time its watch fires, until its index passes `?index`, or
 * `wait` (default 5 min, at most 10 min, plus up to wait/16 of jitter) ends.
 *
 * @module
 */

import { parseGoDuration } from "./duration.ts";
import type { Change, ConsulState } from "./state.ts";

const DEFAULT_WAIT_MS = 5 * 60_000;
const MAX_WAIT_MS = 10 * 60_000;

/** A JSON answer, with Consul's content type. */
export function json(
  body: unknown,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A plain-text error, as Consul answers one. */
export function text(message: string, status: number): Response {
  return new Response(message, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/** What one run of a blocking-capable read found. */
export interface Answer {
  /** The index to report; blocking waits until it exceeds `?index`. */
  readonly index: number;
  /** Builds the response, once the wait is over. */
  respond(headers: Record<string, string>): Response;
  /** Whether a change may alter this answer (Consul's watch channel). */
  matches(change: Change): boolean;
}

/**
 * Runs a read as Consul's `blockingQuery` does: at once without `?index`,
 * else again after each matching change until the index passes `?index`, or
 * until `wait` (default 5 min, at most 10 min, plus up to wait/16 jitter).
 */
export async function blocking(
  state: ConsulState,
  params: URLSearchParams,
  signal: AbortSignal,
  run: () => Answer,
): Promise<Response> {
  const indexText = params.get("index");
  const minIndex = indexText === null || indexText === ""
    ? 0
    : Number(indexText);
  if (!Number.isSafeInteger(minIndex) || minIndex < 0) {
    return text("Invalid index", 400);
  }
  const waitText = params.get("wait");
  const waitMs = waitText === null
    ? DEFAULT_WAIT_MS
    : parseGoDuration(waitText);
  if (waitMs === undefined || waitMs < 0) {
    return text("Invalid wait time", 400);
  }
  let answer = run();
  if (minIndex > 0) {
    const bounded = Math.min(waitMs, MAX_WAIT_MS);
    const deadline = Date.now() + bounded + Math.random() * bounded / 16;
    while (Math.max(1, answer.index) <= minIndex && !signal.aborted) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const fired = await state.waitFor(answer.matches, left, signal);
      answer = run();
      if (!fired) break;
    }
  }
  return answer.respond({
    "x-consul-index": String(Math.max(1, answer.index)),
    "x-consul-knownleader": "true",
    "x-consul-lastcontact": "0",
  });
}

/** Base64, as Go's encoding/json marshals a `[]byte`. */
export function toBase64(bytes: Uint8Array | null): string | null {
  if (bytes === null) return null;
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The inverse of {@linkcode toBase64}; `undefined` when malformed. */
export function fromBase64(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
  } catch {
    return undefined;
  }
}
