/**
 * The operator's questions, on any backend: who holds a lock
 * (`lockStatus`), free a stuck one (`forceRelease`), and is the backend fit
 * for coolock (`checkBackend`). Each call is bounded in time, and a backend's
 * failure is a `BackendUnavailableError`, as in the lock lifecycle.
 *
 * @module
 */

import type { Backend, CheckResult, LockStatus, Removal } from "./backend.ts";
import { BackendUnavailableError, isSettingError } from "./errors.ts";
import { checkLockName } from "./names.ts";
import { withTimeout } from "./timing.ts";

/**
 * Options of the operator calls.
 *
 * @example
 * ```ts
 * import type { OperateOptions } from "./operate.ts";
 * const options: OperateOptions = { timeout: 5 };
 * ```
 */
export interface OperateOptions {
  /** Cancels the call. */
  readonly signal?: AbortSignal;
  /** Seconds the call may take. Default 10. */
  readonly timeout?: number;
}

function missing(backend: Backend, what: string): TypeError {
  return new TypeError(`The ${backend.scheme} backend can't ${what}`);
}

async function bounded<T>(
  backend: Backend,
  call: (signal: AbortSignal) => Promise<T>,
  options: OperateOptions,
): Promise<T> {
  const ms = (options.timeout ?? 10) * 1000;
  if (!(ms > 0)) {
    throw new RangeError(
      `Option 'timeout' must be a positive number of seconds`,
    );
  }
  const stop = new AbortController();
  const signal = options.signal
    ? AbortSignal.any([options.signal, stop.signal])
    : stop.signal;
  try {
    return await withTimeout(call(signal), ms, options.signal);
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (
      error instanceof BackendUnavailableError || isSettingError(error) ||
      error instanceof Deno.errors.NotCapable
    ) throw error;
    throw new BackendUnavailableError(
      backend.displayUri,
      error instanceof DOMException && error.name === "TimeoutError"
        ? `no answer within ${ms / 1000} s`
        : (error as Error).message,
      { cause: error },
    );
  } finally {
    stop.abort();
  }
}

/**
 * Who holds the lock `lock`, or every coolock lock on the backend when
 * `lock` is undefined (where `capabilities.listsLocks`).
 */
export function lockStatus(
  backend: Backend,
  lock: string | undefined,
  options: OperateOptions = {},
): Promise<LockStatus[]> {
  if (lock !== undefined) checkLockName(lock);
  if (!backend.status) throw missing(backend, "report a lock's status");
  if (lock === undefined && !backend.capabilities.listsLocks) {
    throw missing(backend, "list its locks: name one");
  }
  return bounded(backend, (signal) => backend.status!(lock, signal), options);
}

/**
 * Frees the lock `lock` whoever holds it, and resolves what was removed. The
 * next holder's fencing token is higher than any handed out before, and a
 * live holder loses the lock at its next renewal.
 */
export function forceRelease(
  backend: Backend,
  lock: string,
  options: OperateOptions = {},
): Promise<Removal[]> {
  checkLockName(lock);
  if (!backend.forceRelease) throw missing(backend, "force a release");
  return bounded(
    backend,
    (signal) => backend.forceRelease!(lock, signal),
    options,
  );
}

/**
 * Checks that the backend is fit for coolock: reachable (with the round
 * trip), credentials, permission to create its keys, the server's version
 * and the clock skew between this host and the server.
 */
export function checkBackend(
  backend: Backend,
  options: OperateOptions = {},
): Promise<CheckResult[]> {
  if (!backend.check) throw missing(backend, "check itself");
  return bounded(backend, (signal) => backend.check!(signal), options);
}
