/**
 * The contract between the lock lifecycle (src/lease.ts) and a coordination
 * backend. A backend only knows how to take, extend and give back one key on
 * its server; waiting, renewal timers, the lost-lock deadline and guard time
 * are the lifecycle's job, written once.
 *
 * @module
 */

export {
  BackendUnavailableError,
  LockHeldError,
  LockLostError,
} from "./errors.ts";

/**
 * One attempt to take a lock, as the lifecycle hands it to a backend.
 *
 * @example Reading a request inside a backend
 * ```ts
 * import type { LockRequest } from "./backend.ts";
 * function keyFor(request: LockRequest): string {
 *   return `coolock/${request.name}`;
 * }
 * ```
 */
export interface LockRequest {
  /** The validated lock name: 1 to 200 characters, no control characters. */
  readonly name: string;
  /** Unique for this acquisition: the node name plus a random suffix. */
  readonly owner: string;
  /** The node name (hostname by default), for logs and for the stored value. */
  readonly node: string;
  /**
   * How long the backend keeps the lock when no renewal arrives, in
   * milliseconds. The lifecycle already raised it to cover the guard time, so
   * a holder that dies still keeps others out for the guard time.
   */
  readonly expiresInMs: number;
  /**
   * How long after acquisition the lock must stay unavailable to others, in
   * milliseconds, even if this process dies. Backends whose liveness is a
   * session (a connection, an ephemeral node) store it durably; backends with
   * key expiry get it through `expiresInMs` already.
   */
  readonly guardMs: number;
  /**
   * True when the caller will wait for the lock. A backend with a fair queue
   * may then keep this request's place in the queue after a failed attempt,
   * until `signal` aborts.
   */
  readonly wait: boolean;
  /** Aborts when the caller gives up: calls in flight should stop. */
  readonly signal: AbortSignal;
}

/**
 * A lock that a backend holds for one owner. It may be lost at any time; the
 * lifecycle learns it from a failed `renew` or from `lost`.
 *
 * @example Using a claim
 * ```ts
 * import type { Claim } from "./backend.ts";
 * async function extend(claim: Claim, signal: AbortSignal): Promise<void> {
 *   await claim.renew(30_000, signal);
 * }
 * ```
 */
export interface Claim {
  /**
   * The fencing token: strictly greater than every token handed out before
   * for this lock name on this backend.
   */
  readonly token: bigint;
  /**
   * Aborts when the backend sees the lock go without being asked: the key was
   * deleted or overwritten, the session expired, the connection dropped.
   * Optional: the lifecycle's own deadline covers backends without it.
   */
  readonly lost?: AbortSignal;
  /**
   * Extends the lock so that it lasts `expiresInMs` from now. Rejects with
   * {@linkcode LockLostError} when the lock is no longer this owner's; any
   * other rejection counts as a failed attempt that may be retried.
   */
  renew(expiresInMs: number, signal: AbortSignal): Promise<void>;
  /**
   * Gives the lock back, only if this owner still holds it. When `holdMs` is
   * positive the lock must stay unavailable to others for that many more
   * milliseconds (guard time), by the backend's own expiry where it has one.
   */
  release(holdMs: number): Promise<void>;
}

/**
 * What a backend offers beyond the contract; the README's backend table and
 * the contract suite read these.
 *
 * @example
 * ```ts
 * import type { BackendCapabilities } from "./backend.ts";
 * const capabilities: BackendCapabilities = {
 *   notifiesWaiters: true,
 *   fairQueue: false,
 *   minTtlMs: 1,
 *   clock: "server",
 * };
 * ```
 */
export interface BackendCapabilities {
  /** Waiters wake on a notification (pub/sub, watch); otherwise they poll. */
  readonly notifiesWaiters: boolean;
  /** Waiters are served in arrival order. */
  readonly fairQueue: boolean;
  /** The shortest lease the backend supports, in milliseconds. */
  readonly minTtlMs: number;
  /** Whose clock judges expiry and guard time. */
  readonly clock: "server" | "local";
}

/**
 * A coordination backend: one small interface that every file in backends/
 * implements.
 *
 * @example A backend's shape
 * ```ts
 * import type { Backend } from "./backend.ts";
 * async function tryOnce(backend: Backend): Promise<boolean> {
 *   const claim = await backend.tryAcquire({
 *     name: "nightly-backup",
 *     owner: "node-1:ab12",
 *     node: "node-1",
 *     expiresInMs: 30_000,
 *     guardMs: 0,
 *     wait: false,
 *     signal: AbortSignal.timeout(5_000),
 *   });
 *   await claim?.release(0);
 *   return claim !== undefined;
 * }
 * ```
 */
export interface Backend extends AsyncDisposable {
  /** The URI scheme this backend serves, such as `redis`. */
  readonly scheme: string;
  /** The backend's URI with any secret replaced by `***`. */
  readonly displayUri: string;
  /** What this backend offers beyond the contract. */
  readonly capabilities: BackendCapabilities;
  /**
   * Loads the client and connects, ahead of the first attempt, so that the
   * lifecycle's lost-lock deadline doesn't count start-up time against the
   * lease. Optional; `tryAcquire` must connect by itself anyway.
   */
  connect?(request: LockRequest): Promise<void>;
  /**
   * One attempt: resolves a claim when the lock was free, or `undefined` at
   * once when another owner holds it. Rejects with
   * {@linkcode BackendUnavailableError} when the server can't be reached in
   * bounded time.
   */
  tryAcquire(request: LockRequest): Promise<Claim | undefined>;
  /**
   * Resolves when the lock may have become free (a release notification, a
   * watch event), so that the lifecycle tries again. The lifecycle bounds the
   * wait itself and polls when a backend has no such method.
   */
  waitForChange?(request: LockRequest, signal: AbortSignal): Promise<void>;
  /** Closes every connection; claims still held are released first. */
  close(): Promise<void>;
}
