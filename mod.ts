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

export type {
  Backend,
  BackendCapabilities,
  Claim,
  LockRequest,
} from "./src/backend.ts";
export {
  BackendUnavailableError,
  LockHeldError,
  LockLostError,
} from "./src/errors.ts";
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
  const release = () =>
    released ??= lease.release().finally(() => opened.close());
  return {
    ...lease,
    signal: lease.signal,
    release,
    [Symbol.asyncDispose]: release,
  };
}
