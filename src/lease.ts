/**
 * The lock lifecycle, written once for every backend: the wait loop, the
 * renewal timer, the local lost-lock deadline and guard time on release.
 *
 * @module
 */

import type { Backend, Claim, LockRequest } from "./backend.ts";
import {
  BackendUnavailableError,
  isSettingError,
  LockHeldError,
  LockLostError,
} from "./errors.ts";
import {
  type CheckedOptions,
  checkOptions,
  type LockOptions,
} from "./options.ts";
import { abortableDelay, later, withTimeout } from "./timing.ts";

/**
 * A held lock. It is NOT safe to assume that the lock is held until
 * `release()`: `signal` aborts, with a {@linkcode LockLostError} as its
 * reason, as soon as the lock is known or feared lost.
 *
 * @example
 * ```ts
 * import { acquire, file } from "../mod.ts";
 * await using lease = await acquire({ backend: file(), lock: "report", guardTime: 0 });
 * lease.signal.throwIfAborted();
 * console.log(`running as ${lease.owner} with token ${lease.token}`);
 * ```
 */
export interface Lease extends AsyncDisposable {
  /** The lock name. */
  readonly name: string;
  /** The node name that holds it. */
  readonly node: string;
  /** This acquisition's unique owner id, as stored on the backend. */
  readonly owner: string;
  /** The fencing token: strictly increasing per lock name. */
  readonly token: bigint;
  /** The slot held, from 0 to `limit − 1`: 0 for a mutex. */
  readonly slot: number;
  /** Aborts when the lock is lost; its reason is a `LockLostError`. */
  readonly signal: AbortSignal;
  /**
   * Gives the lock back, keeping it held until the guard time has passed.
   * Never rejects: a failed release only means the lock expires by its TTL,
   * and that is logged. With `{ guard: false }` the guard time is dropped:
   * for a job that could not even start, so that another node may run it.
   */
  release(options?: { readonly guard?: boolean }): Promise<void>;
  /**
   * Keeps the lock held while any process of the process group `pgid`
   * lives, even if this process dies, where the backend needs it (the file
   * backend; the others keep a dead holder's lock for its TTL). A supervisor
   * calls it for the job it started; the CLI does.
   */
  holdWhileGroup(pgid: number): Promise<void>;
  /** The lease as JSON: name, node, owner, slot, and the token as a string. */
  toJSON(): {
    name: string;
    node: string;
    owner: string;
    slot: number;
    token: string;
  };
}

const POLL_FIRST_MS = 25;
const POLL_MAX_MS = 500;

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(
    "",
  );
}

/**
 * Takes a lock, waiting up to `waitTimeout` seconds, and keeps it renewed
 * until released. Rejects with {@linkcode LockHeldError} when the lock is
 * held by another owner (at once, or after the wait), with
 * {@linkcode BackendUnavailableError} when the backend can't be reached, and
 * with the signal's reason when `signal` aborts the wait.
 */
export async function acquire(options: LockOptions): Promise<Lease> {
  const checked = checkOptions(options);
  const { backend, lock, node, signal, log } = checked;
  signal?.throwIfAborted();
  const attempt = new AbortController();
  const onAbort = () => attempt.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const request: LockRequest = {
    name: lock,
    owner: `${node}:${Deno.pid}:${randomSuffix()}`,
    node,
    limit: checked.limit,
    expiresInMs: Math.max(checked.ttlMs, checked.guardMs),
    guardMs: checked.guardMs,
    wait: checked.waitMs > 0,
    signal: attempt.signal,
  };
  const giveUpAt = performance.now() + checked.waitMs;
  let pollMs = POLL_FIRST_MS;
  try {
    if (backend.connect) {
      await bounded(backend, backend.connect(request), request, checked);
    }
    for (let tries = 1;; tries++) {
      const sentAt = performance.now();
      const claim = await attemptOnce(backend, request, checked);
      if (claim) {
        log(
          "debug",
          `Lock '${lock}' acquired after ${tries} attempt(s) with fencing token ${claim.token}`,
        );
        return startLease(claim, request, sentAt, checked);
      }
      const remaining = giveUpAt - performance.now();
      if (remaining <= 0) {
        throw new LockHeldError(lock, checked.waitMs > 0);
      }
      if (tries === 1) {
        log(
          "debug",
          `Lock '${lock}' is held; waiting up to ${remaining / 1000} s`,
        );
      }
      await waitForChange(
        backend,
        request,
        Math.min(remaining, pollMs),
        signal,
      );
      pollMs = Math.min(POLL_MAX_MS, pollMs * 1.5);
    }
  } catch (error) {
    attempt.abort(error);
    throw signal?.aborted ? signal.reason : error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

async function attemptOnce(
  backend: Backend,
  request: LockRequest,
  checked: CheckedOptions,
): Promise<Claim | undefined> {
  const pending = backend.tryAcquire(request);
  try {
    return await bounded(backend, pending, request, checked);
  } catch (error) {
    // A claim that arrives after we gave up must not hold the lock until TTL.
    pending.then((late) => late?.release(0), () => {});
    throw error;
  }
}

/** Bounds a backend call in time, and says "unavailable" for its failures. */
async function bounded<T>(
  backend: Backend,
  call: Promise<T>,
  request: LockRequest,
  checked: CheckedOptions,
): Promise<T> {
  try {
    return await withTimeout(call, checked.timeoutMs, request.signal);
  } catch (error) {
    if (request.signal.aborted) throw request.signal.reason;
    if (
      error instanceof BackendUnavailableError || isSettingError(error) ||
      error instanceof Deno.errors.NotCapable
    ) throw error;
    throw new BackendUnavailableError(
      backend.displayUri,
      error instanceof DOMException && error.name === "TimeoutError"
        ? `no answer within ${checked.timeoutMs / 1000} s`
        : (error as Error).message,
      { cause: error },
    );
  }
}

async function waitForChange(
  backend: Backend,
  request: LockRequest,
  pollMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  // Notifications miss expiries (a dead holder, guard time), so notified
  // waiters poll on the same schedule as the others.
  const jittered = pollMs * (0.8 + Math.random() * 0.4);
  const timeout = AbortSignal.timeout(jittered);
  const stop = signal ? AbortSignal.any([timeout, signal]) : timeout;
  const delay = () => abortableDelay(jittered, stop);
  // A broken notification channel is not fatal: the next attempt tells.
  const notified = backend.waitForChange?.(request, stop).catch(delay);
  await (notified ?? delay()).catch(() => {});
  signal?.throwIfAborted();
}

/**
 * What a loss says: the backend's own words when it gave a `LockLostError`
 * (a refused renewal, a deleted key), else `fallback`.
 */
function causeOf(reason: unknown, fallback: string): string {
  if (!(reason instanceof LockLostError)) return fallback;
  return reason.message.replace(/^Lock '.*?' was lost: /s, "");
}

function startLease(
  claim: Claim,
  request: LockRequest,
  acquiredAt: number,
  checked: CheckedOptions,
): Lease {
  const { lock, ttlMs, guardMs, marginMs, log, timeoutMs } = checked;
  const lost = new AbortController();
  const renewing = new AbortController();
  const guardEndsAt = acquiredAt + guardMs;
  let cancelRenew = () => {};
  let cancelDeadline = () => {};
  let deadline = Infinity;
  let released: Promise<void> | undefined;

  const lose = (why: string, cause?: unknown) => {
    if (lost.signal.aborted || released) return;
    const error = new LockLostError(lock, why, { cause });
    log("error", error.message);
    lost.abort(error);
    stopTimers();
  };
  const stopTimers = () => {
    cancelRenew();
    cancelDeadline();
    renewing.abort();
  };
  const armDeadline = (confirmedSentAt: number) => {
    cancelDeadline();
    deadline = confirmedSentAt + ttlMs - marginMs;
    checked.onDeadline?.(deadline);
    const due = deadline - performance.now();
    cancelDeadline = later(
      () =>
        lose(
          `no renewal was confirmed within ${(ttlMs - marginMs) / 1000} s`,
        ),
      due,
    );
  };
  const renew = async () => {
    const sentAt = performance.now();
    const expiresInMs = Math.max(ttlMs, guardEndsAt - sentAt);
    try {
      await claim.renew(
        expiresInMs,
        AbortSignal.any([
          renewing.signal,
          AbortSignal.timeout(Math.min(timeoutMs, ttlMs / 3)),
        ]),
      );
      if (renewing.signal.aborted) return;
      // A confirmation that comes after the deadline (this process was
      // stopped, or its event loop stalled) can't undo it: the watchdog may
      // already have ended the job, and others may hold the lock.
      if (performance.now() >= deadline) {
        lose(
          `no renewal was confirmed within ${(ttlMs - marginMs) / 1000} s`,
        );
        return;
      }
      armDeadline(sentAt);
      schedule(ttlMs / 3);
    } catch (error) {
      if (renewing.signal.aborted) return;
      if (error instanceof LockLostError) {
        lose(causeOf(error, "the backend refused the renewal"), error);
        return;
      }
      log(
        "warning",
        `Renewing lock '${lock}' failed, retrying: ${(error as Error).message}`,
      );
      schedule(Math.min(ttlMs / 10, 1_000));
    }
  };
  const schedule = (delayMs: number) => {
    cancelRenew = later(renew, delayMs);
  };
  const onBackendLoss = () =>
    lose(
      causeOf(claim.lost?.reason, "the backend reported it gone"),
      claim.lost?.reason,
    );

  armDeadline(acquiredAt);
  // A slow first attempt leaves less than a full period before the deadline.
  const untilDeadline = acquiredAt + ttlMs - marginMs - performance.now();
  schedule(Math.max(0, Math.min(ttlMs / 3, untilDeadline / 2)));
  if (claim.lost?.aborted) onBackendLoss();
  claim.lost?.addEventListener("abort", onBackendLoss, { once: true });

  const release = (options?: { guard?: boolean }): Promise<void> => {
    const keepGuard = options?.guard ?? true;
    released ??= (async () => {
      stopTimers();
      claim.lost?.removeEventListener("abort", onBackendLoss);
      const holdMs = keepGuard
        ? Math.max(0, guardEndsAt - performance.now())
        : 0;
      try {
        // Bounded: a hung server must not hold the caller; the lock then
        // expires by its TTL.
        await withTimeout(claim.release(holdMs), timeoutMs);
        log(
          "debug",
          holdMs > 0
            ? `Lock '${lock}' released, held ${
              Math.ceil(holdMs) / 1000
            } s more for the guard time`
            : `Lock '${lock}' released`,
        );
      } catch (error) {
        log(
          lost.signal.aborted ? "debug" : "warning",
          `Releasing lock '${lock}' failed; it expires by its TTL: ${
            (error as Error).message
          }`,
        );
      }
    })();
    return released;
  };

  const lease: Lease = {
    name: lock,
    node: request.node,
    owner: request.owner,
    token: claim.token,
    slot: claim.slot,
    signal: lost.signal,
    release,
    holdWhileGroup: (pgid) => claim.holdWhileGroup?.(pgid) ?? Promise.resolve(),
    toJSON: () => ({
      name: lock,
      node: request.node,
      owner: request.owner,
      slot: claim.slot,
      token: String(claim.token),
    }),
    [Symbol.asyncDispose]: () => release(),
  };
  return lease;
}
