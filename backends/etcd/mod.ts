/**
 * The lock recipe that the `etcd` (JSON gateway, `gateway/`) and `etcd3`
 * (gRPC, `grpc/`) backends share, on their own transport ({@linkcode EtcdOps}):
 * each acquisition queues an entry key with a lease of its own (`queue.ts`,
 * in the layout of `keys.ts`); the `limit` oldest entries hold the lock,
 * each in a slot of its own (`slots.ts`), and a waiter watches only what it
 * waits on; a held slot is `claim.ts`; the operator's calls are
 * `operate.ts` and `check.ts`. Both transports run this very code, so their
 * locks exclude each other.
 *
 * @module
 */

import {
  type Backend,
  BackendUnavailableError,
  type CheckResult,
  type Claim,
  LimitMismatchError,
  type LockRequest,
  type LockStatus,
  type Removal,
} from "../../src/backend.ts";
import { Holdings } from "../../src/holdings.ts";
import { abortableDelay } from "../../src/timing.ts";
import { EtcdClaim } from "./claim.ts";
import { lockPrefix } from "./keys.ts";
import type { EtcdOps } from "./ops.ts";
import { checkEtcd } from "./check.ts";
import { forceRelease, lockStatus } from "./operate.ts";
import { EtcdQueue, type Standing } from "./queue.ts";
import type { EtcdTarget } from "./uri.ts";

/** The shortest lease TTL that etcd grants with its default timing. */
const MIN_TTL_MS = 2_000;

/** etcd's longest lease TTL (`MaxLeaseTTL` in its lessor), 9,000,000,000 s. */
const MAX_TTL_MS = 9_000_000_000 * 1000;

/** The etcd lock backend over one transport; `etcd` and `etcd3` build it. */
export class EtcdBackend implements Backend {
  /** Waiters queue in create-revision order and watch what they wait on. */
  readonly capabilities = {
    notifiesWaiters: true,
    fairQueue: true,
    minTtlMs: MIN_TTL_MS,
    maxTtlMs: MAX_TTL_MS,
    clock: "server",
    listsLocks: true,
    storesLimit: true,
  } as const;
  /** The URI scheme, such as `etcd` or `etcd3+https`. */
  readonly scheme: string;
  /** The URI with its password replaced by `***`. */
  readonly displayUri: string;
  readonly #queue: EtcdQueue;
  readonly #claims = new Set<EtcdClaim>();
  readonly #holdings = new Holdings();
  #ops?: Promise<EtcdOps>;
  #closed = false;

  /**
   * Keeps the target; `open` runs on first use.
   *
   * @param target the checked URI
   * @param open makes the transport, on first use
   * @param permissions the Deno permissions the backend needs
   */
  constructor(
    private readonly target: EtcdTarget,
    private readonly open: (signal: AbortSignal) => Promise<EtcdOps>,
    /** The Deno permissions: net to each host, TLS files, the client's env. */
    readonly permissions: readonly Deno.PermissionDescriptor[],
  ) {
    this.scheme = target.uri.scheme;
    this.displayUri = target.uri.display;
    this.#queue = new EtcdQueue(target.timeoutMs);
  }

  #client(): Promise<EtcdOps> {
    if (this.#closed) throw new TypeError("The etcd backend is closed");
    if (!this.#ops) {
      const opening = this.open(AbortSignal.timeout(this.target.timeoutMs));
      // A failed connect is tried again on the next call.
      opening.catch(() => {
        if (this.#ops === opening) this.#ops = undefined;
      });
      this.#ops = opening;
    }
    return this.#ops;
  }

  #unavailable(error: unknown): Error {
    if (
      error instanceof BackendUnavailableError ||
      error instanceof LimitMismatchError || error instanceof TypeError
    ) return error;
    return new BackendUnavailableError(
      this.displayUri,
      String((error as Error)?.message ?? error).replace(/\s+/g, " "),
      { cause: error },
    );
  }

  /** Makes the client ahead of the first attempt. */
  async connect(): Promise<void> {
    try {
      await this.#client();
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /** Queues an entry; holds a slot when it is among the oldest `limit`. */
  async tryAcquire(request: LockRequest): Promise<Claim | undefined> {
    request.signal.throwIfAborted();
    if (!Number.isSafeInteger(request.limit) || request.limit < 1) {
      throw new RangeError(`Lock limit must be a whole number from 1`);
    }
    let ops: EtcdOps;
    try {
      ops = await this.#client();
    } catch (error) {
      throw this.#unavailable(error);
    }
    const prefix = lockPrefix(this.target.root, request.name);
    let standing: Standing | undefined;
    try {
      standing = await this.#queue.take(ops, prefix, request);
    } catch (error) {
      if (!request.wait || error instanceof LimitMismatchError) {
        await this.#queue.drop(request.owner, ops);
      }
      throw this.#unavailable(error);
    }
    if (!standing?.holds) return undefined;
    const { place, slot, slotKey } = standing;
    this.#queue.won(request.owner, place);
    const claim = new EtcdClaim(
      ops,
      request.name,
      place,
      slot,
      slotKey,
      this.target.timeoutMs,
      () => this.#claims.delete(claim),
    );
    this.#claims.add(claim);
    return this.#holdings.track(claim, request);
  }

  /** Resolves when what this waiter waits on changes. */
  async waitForChange(
    request: LockRequest,
    signal: AbortSignal,
  ): Promise<void> {
    const watch = this.#queue.get(request.owner)?.watch;
    if (!watch) return await abortableDelay(60_000, signal);
    const ops = await this.#client();
    await ops.watch(watch, signal);
  }

  async #operate<T>(call: (ops: EtcdOps) => Promise<T>): Promise<T> {
    try {
      return await call(await this.#client());
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /** Who holds the lock `name` (or every lock under the root), and who waits. */
  status(name: string | undefined, signal: AbortSignal): Promise<LockStatus[]> {
    return this.#operate((ops) =>
      lockStatus(ops, this.target.root, name, signal)
    );
  }

  /** Revokes the leases of every holder, guard and waiter of `name`. */
  forceRelease(name: string, signal: AbortSignal): Promise<Removal[]> {
    return this.#operate((ops) =>
      forceRelease(ops, this.target.root, name, signal)
    );
  }

  /** Checks the endpoints, credentials, permissions, clock and cluster. */
  check(signal: AbortSignal): Promise<CheckResult[]> {
    return this.#operate((ops) => checkEtcd(ops, this.target, signal));
  }

  /** Releases held claims, gives up queue places and closes the client. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const ops = await this.#ops?.catch(() => undefined);
    this.#closed = true;
    if (!ops) return;
    await this.#holdings.releaseAll();
    await Promise.allSettled(
      [...this.#claims].map((claim) => claim.release(0)),
    );
    await this.#queue.dropAll(ops);
    await ops.close();
  }

  /** Calls {@linkcode EtcdBackend.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
