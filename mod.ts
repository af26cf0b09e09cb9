/**
 * coolock: run a job once across a fleet, by a lock on the coordination
 * backend that the cluster already runs.
 *
 * ```ts
 * import { withLock } from "./mod.ts";
 * const result = await withLock(
 *   { backend: "file:///tmp/coolock-example", lock: "nightly-report", guardTime: 0 },
 *   (lease) => {
 *     lease.signal.throwIfAborted();
 *     return `ran with fencing token ${lease.token}`;
 *   },
 * );
 * console.log(result.acquired ? result.value : `skipped: ${result.reason}`);
 * ```
 *
 * A lease may be lost while it is held: its `signal` aborts when it is, and
 * its `token` lets the resource it guards refuse a stale holder.
 *
 * @module
 */

import type { Backend } from "./src/backend.ts";
import { acquire as acquireWith, type Lease } from "./src/lease.ts";
import type { LockOptions } from "./src/options.ts";
import { type LockResult, withLock as withLockOn } from "./src/with_lock.ts";
import { openBackend } from "./backends/mod.ts";
import type { CheckResult, LockStatus, Removal } from "./src/backend.ts";
import {
  checkBackend as checkOn,
  forceRelease as forceReleaseOn,
  lockStatus as lockStatusOn,
  type OperateOptions,
} from "./src/operate.ts";

export type {
  Backend,
  BackendCapabilities,
  CheckResult,
  Claim,
  HolderStatus,
  LockRequest,
  LockStatus,
  Removal,
} from "./src/backend.ts";
export {
  BackendUnavailableError,
  LimitMismatchError,
  LockHeldError,
  LockLostError,
  UntrustedPathError,
} from "./src/errors.ts";
export type { OperateOptions } from "./src/operate.ts";
export type { Lease } from "./src/lease.ts";
export type { LockOptions, LogSink } from "./src/options.ts";
export type { LockResult } from "./src/with_lock.ts";
export { openBackend, SCHEMES } from "./backends/mod.ts";
export { consul } from "./backends/consul/mod.ts";
export { etcd } from "./backends/etcd/gateway/mod.ts";
export { etcd3 } from "./backends/etcd/grpc/mod.ts";
export { file } from "./backends/file/mod.ts";
export { memcached } from "./backends/memcached/mod.ts";
export { mysql } from "./backends/sql/mysql/mod.ts";
export { postgres } from "./backends/sql/postgres/mod.ts";
export { redis } from "./backends/redis/mod.ts";
export { zookeeper } from "./backends/zookeeper/mod.ts";

/**
 * The options of {@linkcode withLock} and {@linkcode acquire}: a backend
 * object, or a URI that is opened for the call and closed after it.
 *
 * @example
 * ```ts
 * import type { Options } from "./mod.ts";
 * const options: Options = { backend: "redis://db:6379", lock: "nightly-backup", waitTimeout: 5 };
 * ```
 */
export type Options = Omit<LockOptions, "backend"> & {
  /** A backend, or a URI such as `redis://db:6379` that names one. */
  readonly backend: Backend | string | URL;
};

function isBackend(backend: Options["backend"]): backend is Backend {
  return typeof backend === "object" && !(backend instanceof URL);
}

/**
 * Runs `runner` while holding the lock and releases it after, keeping it held
 * until `guardTime` seconds from acquisition have passed. Resolves
 * `{ acquired: true, value, token }`, or `{ acquired: false, reason }` when
 * the lock was held (`"held"`) or the wait timed out (`"timeout"`).
 *
 * Rejects with the runner's error, with `LockLostError` when the lock was lost
 * while the runner ran, with `BackendUnavailableError` when the backend can't
 * be reached, or with the signal's reason when `signal` aborts the wait.
 *
 * @example
 * ```ts
 * import { withLock } from "./mod.ts";
 * const result = await withLock(
 *   { backend: "file:///tmp/coolock-example", lock: "mail-run", guardTime: 0 },
 *   () => 42,
 * );
 * if (result.acquired) console.log(result.value, result.token);
 * ```
 */
export async function withLock<T>(
  options: Options,
  runner: (lease: Lease) => T | Promise<T>,
): Promise<LockResult<T>> {
  const { backend } = options;
  if (isBackend(backend)) return withLockOn({ ...options, backend }, runner);
  await using opened = openBackend(backend);
  return await withLockOn({ ...options, backend: opened }, runner);
}

/**
 * Takes a lock and keeps it renewed until released; for `await using`.
 * Rejects with `LockHeldError` when the lock is held (at once, or after
 * `waitTimeout`), `BackendUnavailableError` when the backend can't be
 * reached, or the signal's reason when `signal` aborts the wait.
 *
 * @example
 * ```ts
 * import { acquire } from "./mod.ts";
 * {
 *   await using lease = await acquire({
 *     backend: "file:///tmp/coolock-example",
 *     lock: "report",
 *     guardTime: 0,
 *   });
 *   console.log(`holding '${lease.name}' with token ${lease.token}`);
 * } // released here
 * ```
 */
export async function acquire(options: Options): Promise<Lease> {
  const { backend } = options;
  if (isBackend(backend)) return acquireWith({ ...options, backend });
  const opened = openBackend(backend);
  let lease: Lease;
  try {
    lease = await acquireWith({ ...options, backend: opened });
  } catch (error) {
    await opened.close();
    throw error;
  }
  let released: Promise<void> | undefined;
  const release = (options?: { readonly guard?: boolean }) =>
    released ??= lease.release(options).finally(() => opened.close());
  return {
    ...lease,
    signal: lease.signal,
    release,
    [Symbol.asyncDispose]: () => release(),
  };
}

/** Runs `call` on `backend`, opening and closing it when it is a URI. */
async function onBackend<T>(
  backend: Backend | string | URL,
  call: (backend: Backend) => Promise<T>,
): Promise<T> {
  if (isBackend(backend)) return await call(backend);
  await using opened = openBackend(backend);
  return await call(opened);
}

/**
 * Who holds the lock `lock`, or every coolock lock on the backend when
 * `lock` is undefined (where the backend can list its keys): each holder's
 * slot, node, owner, since when, fencing token, lease and guard time left,
 * and how many wait, on the backends that queue waiters.
 *
 * @example
 * ```ts
 * import { lockStatus } from "./mod.ts";
 * const [status] = await lockStatus("file:///tmp/coolock-example", "nightly-report");
 * for (const holder of status.holders) {
 *   console.log(`slot ${holder.slot}: ${holder.node} (${holder.state})`);
 * }
 * ```
 */
export function lockStatus(
  backend: Backend | string | URL,
  lock?: string,
  options: OperateOptions = {},
): Promise<LockStatus[]> {
  return onBackend(backend, (opened) => lockStatusOn(opened, lock, options));
}

/**
 * Frees a stuck lock whoever holds it: a dead holder's lease, a guard
 * record, queue entries. Resolves what was removed. The next holder's
 * fencing token is higher than any handed out before, and a live holder
 * loses the lock at its next renewal.
 *
 * @example
 * ```ts
 * import { forceRelease } from "./mod.ts";
 * const removed = await forceRelease("file:///tmp/coolock-example", "stuck-job");
 * console.log(removed.length === 0 ? "it was free" : removed);
 * ```
 */
export function forceRelease(
  backend: Backend | string | URL,
  lock: string,
  options: OperateOptions = {},
): Promise<Removal[]> {
  return onBackend(backend, (opened) => forceReleaseOn(opened, lock, options));
}

/**
 * Checks that a backend is fit for coolock: reachable and the round trip,
 * the credentials, permission to create its keys, the server's version, and
 * the clock skew between this host and the server.
 *
 * @example
 * ```ts
 * import { checkBackend } from "./mod.ts";
 * for (const line of await checkBackend("file:///tmp/coolock-example")) {
 *   console.log(line.status, line.name, line.detail);
 * }
 * ```
 */
export function checkBackend(
  backend: Backend | string | URL,
  options: OperateOptions = {},
): Promise<CheckResult[]> {
  return onBackend(backend, (opened) => checkOn(opened, options));
}
