/**
 * The contract between the lock lifecycle (src/lease.ts) and a coordination
 * backend. A backend only knows how to take, extend and give back one slot of
 * a lock on its server; waiting, renewal timers, the lost-lock deadline and
 * guard time are the lifecycle's job, written once. The operator's questions
 * (who holds it, free it, is the server fit) are optional parts of the same
 * interface.
 *
 * @module
 */

export {
  BackendUnavailableError,
  LimitMismatchError,
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
   * How many holders the lock admits at once: 1 for a mutex, N for a
   * counting semaphore with slots 0 … N−1. Every node must use the same N
   * for a name; a backend that stores N rejects another one with
   * {@linkcode LimitMismatchError}.
   */
  readonly limit: number;
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
 * A lock slot that a backend holds for one owner. It may be lost at any
 * time; the lifecycle learns it from a failed `renew` or from `lost`.
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
   * for this lock name on this backend, whatever the slot, and never smaller
   * after a server restart, an eviction or a torn write.
   */
  readonly token: bigint;
  /** The slot held, from 0 to `limit − 1`; unique among current holders. */
  readonly slot: number;
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
   * Calling it again does nothing.
   */
  release(holdMs: number): Promise<void>;
  /**
   * Records the process group of the job that runs under this claim, so that
   * a contender treats the lock as held while any process of that group is
   * alive, even after this process has died. Only backends whose lock dies
   * with its holder's process (the file backend) need it; the others keep
   * the lock for its TTL, which covers the watchdog's reaction.
   */
  holdWhileGroup?(pgid: number): Promise<void>;
}

/**
 * What a backend offers beyond the contract; the README's backend table, the
 * lifecycle and the contract suite read these.
 *
 * @example
 * ```ts
 * import type { BackendCapabilities } from "./backend.ts";
 * const capabilities: BackendCapabilities = {
 *   notifiesWaiters: true,
 *   fairQueue: false,
 *   minTtlMs: 1,
 *   maxTtlMs: 366 * 86_400_000,
 *   clock: "server",
 *   listsLocks: true,
 *   storesLimit: true,
 * };
 * ```
 */
export interface BackendCapabilities {
  /** Waiters wake on a notification (pub/sub, watch); otherwise they poll. */
  readonly notifiesWaiters: boolean;
  /** Waiters are served in arrival order, and `status` can count them. */
  readonly fairQueue: boolean;
  /** The shortest lease the backend supports, in milliseconds. */
  readonly minTtlMs: number;
  /**
   * The longest lease (TTL, or guard time, whichever is longer) the backend
   * can keep, in milliseconds; longer settings are refused before anything
   * connects.
   */
  readonly maxTtlMs: number;
  /** Whose clock judges expiry and guard time. */
  readonly clock: "server" | "local";
  /** `status` without a name can list every coolock lock on the server. */
  readonly listsLocks: boolean;
  /** The backend stores each lock's `limit` and refuses another one. */
  readonly storesLimit: boolean;
}

/**
 * One holder of a lock slot, as `status` reports it. Fields a backend can't
 * know are absent.
 *
 * @example
 * ```ts
 * import type { HolderStatus } from "./backend.ts";
 * const describe = (h: HolderStatus) => `${h.node} holds slot ${h.slot}`;
 * ```
 */
export interface HolderStatus {
  /** The slot, 0 for a mutex. */
  readonly slot: number;
  /**
   * `held`: a live holder renews it; `guard`: the holder released it (or
   * died) and guard time keeps others out.
   */
  readonly state: "held" | "guard";
  /** The holder's node name. */
  readonly node?: string;
  /** The holder's unique owner id. */
  readonly owner?: string;
  /** When it was acquired, by the server's clock where the backend has one. */
  readonly since?: Date;
  /** Its fencing token. */
  readonly token?: bigint;
  /** Milliseconds until the lease runs out if nobody renews it. */
  readonly leaseLeftMs?: number;
  /** Milliseconds of guard time left. */
  readonly guardLeftMs?: number;
}

/**
 * What `status` says about one lock.
 *
 * @example
 * ```ts
 * import type { LockStatus } from "./backend.ts";
 * const free = (s: LockStatus) => s.holders.length === 0;
 * ```
 */
export interface LockStatus {
  /** The lock name. */
  readonly name: string;
  /** The limit stored with the lock, where the backend stores one. */
  readonly limit?: number;
  /** Its holders, by slot; empty when the lock is free. */
  readonly holders: readonly HolderStatus[];
  /** Waiters queued for it, on backends that queue them (etcd, ZooKeeper). */
  readonly waiting?: number;
  /** The highest fencing token handed out so far, where the backend knows. */
  readonly lastToken?: bigint;
}

/**
 * One thing `forceRelease` removed, in words an operator understands.
 *
 * @example
 * ```ts
 * import type { Removal } from "./backend.ts";
 * const removal: Removal = { what: "lease", detail: "key coolock:lock:x of node-1" };
 * ```
 */
export interface Removal {
  /** What kind of thing: `lease`, `guard`, `queue entry`, `session`, … */
  readonly what: string;
  /** Which one: a key, a node, a row, a session id. Never a secret. */
  readonly detail: string;
}

/**
 * One line of `check`: a property of the backend and whether it is fine.
 *
 * @example
 * ```ts
 * import type { CheckResult } from "./backend.ts";
 * const rtt: CheckResult = { name: "reachable", status: "ok", detail: "round trip 0.4 ms" };
 * ```
 */
export interface CheckResult {
  /**
   * What was checked: `reachable`, `credentials`, `permissions`, `version`,
   * `clock`, or a backend's own (such as `eviction` for Redis).
   */
  readonly name: string;
  /** `ok`, `warn` (works, but weakens a guarantee) or `fail`. */
  readonly status: "ok" | "warn" | "fail";
  /** One line for the operator. Never a secret. */
  readonly detail: string;
  /** A measured figure: the round trip or the skew, in milliseconds. */
  readonly ms?: number;
}

/**
 * A coordination backend: one small interface that every folder in
 * backends/ implements.
 *
 * @example A backend's shape
 * ```ts
 * import type { Backend } from "./backend.ts";
 * async function tryOnce(backend: Backend): Promise<boolean> {
 *   const claim = await backend.tryAcquire({
 *     name: "nightly-backup",
 *     owner: "node-1:ab12",
 *     node: "node-1",
 *     limit: 1,
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
   * The Deno permissions this backend needs: net to its hosts, read and
   * write for its directory, env for its client's variables, read for TLS
   * files. The CLI checks them all, with its own, before it takes the lock,
   * so that a missing one is exit 77 and never a half-run job.
   */
  readonly permissions?: readonly Deno.PermissionDescriptor[];
  /**
   * Loads the client and connects, ahead of the first attempt, so that the
   * lifecycle's lost-lock deadline doesn't count start-up time against the
   * lease. Optional; `tryAcquire` must connect by itself anyway.
   */
  connect?(request: LockRequest): Promise<void>;
  /**
   * One attempt: resolves a claim on a free slot, or `undefined` at once
   * when all `limit` slots are held. Rejects with
   * {@linkcode BackendUnavailableError} when the server can't be reached in
   * bounded time, and with {@linkcode LimitMismatchError} when the lock is
   * stored with another limit.
   */
  tryAcquire(request: LockRequest): Promise<Claim | undefined>;
  /**
   * Resolves when the lock may have become free (a release notification, a
   * watch event), so that the lifecycle tries again. The lifecycle bounds the
   * wait itself and polls when a backend has no such method.
   */
  waitForChange?(request: LockRequest, signal: AbortSignal): Promise<void>;
  /**
   * Who holds the lock `name`, or every coolock lock on the server when
   * `name` is undefined (only where `capabilities.listsLocks`).
   */
  status?(name: string | undefined, signal: AbortSignal): Promise<LockStatus[]>;
  /**
   * Frees the lock `name` whoever holds it: a dead holder's lease, a guard
   * record, queue entries. The next holder's fencing token is still higher
   * than any handed out, and a live holder loses the lock at its next
   * renewal. Resolves what was removed (empty when the lock was free).
   */
  forceRelease?(name: string, signal: AbortSignal): Promise<Removal[]>;
  /**
   * Checks that the backend is fit for coolock: reachable, credentials,
   * permission to create its keys, server version and clock skew.
   */
  check?(signal: AbortSignal): Promise<CheckResult[]>;
  /**
   * Closes every connection. Claims still held are released first, and a
   * claim still inside its guard time keeps others out until the guard time
   * ends, as if its lease had released it (`src/holdings.ts` does this once
   * for every backend).
   */
  close(): Promise<void>;
}
