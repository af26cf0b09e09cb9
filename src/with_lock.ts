/**
 * `withLock`: run a function while holding a lock, with a result that says
 * whether it ran.
 *
 * @module
 */

import { LockHeldError } from "./errors.ts";
import { acquire, type Lease } from "./lease.ts";
import type { LockOptions } from "./options.ts";

/**
 * The outcome of {@linkcode withLock}: either the runner ran under the lock,
 * or the lock was not acquired and the runner did not run.
 *
 * @example
 * ```ts
 * import type { LockResult } from "./with_lock.ts";
 * function describe(result: LockResult<number>): string {
 *   return result.acquired ? `ran: ${result.value}` : `skipped: ${result.reason}`;
 * }
 * ```
 */
export type LockResult<T> =
  | {
    readonly acquired: true;
    readonly value: T;
    readonly token: bigint;
    readonly slot: number;
    /** For `JSON.stringify`: the token as a string. */
    toJSON(): { acquired: true; value: T; token: string; slot: number };
  }
  | { readonly acquired: false; readonly reason: "held" | "timeout" };

/**
 * Runs `runner` while holding the lock, then releases it (keeping it held
 * until the guard time from acquisition has passed). The runner gets the
 * lease, whose `signal` aborts if the lock is lost.
 *
 * Resolves `{ acquired: false, reason }` without running the runner when the
 * lock is held (`"held"`) or the wait timed out (`"timeout"`). Rejects with
 * the runner's error, with a `LockLostError` when the lock was lost while the
 * runner ran, with a `BackendUnavailableError` when the backend can't be
 * reached, or with the signal's reason when `signal` aborts the wait.
 */
export async function withLock<T>(
  options: LockOptions,
  runner: (lease: Lease) => T | Promise<T>,
): Promise<LockResult<T>> {
  if (typeof runner !== "function") {
    throw new TypeError("withLock needs a runner function");
  }
  let lease: Lease;
  try {
    lease = await acquire(options);
  } catch (error) {
    if (error instanceof LockHeldError) {
      return { acquired: false, reason: error.waited ? "timeout" : "held" };
    }
    throw error;
  }
  let value: T;
  try {
    value = await runner(lease);
  } finally {
    await lease.release();
  }
  if (lease.signal.aborted) throw lease.signal.reason;
  const token = lease.token;
  return {
    acquired: true,
    value,
    token,
    slot: lease.slot,
    toJSON: () => ({
      acquired: true,
      value,
      token: String(token),
      slot: lease.slot,
    }),
  };
}
