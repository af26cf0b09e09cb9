/**
 * The queue places of the etcd lock recipe: one key per acquisition under
 * the lock's prefix, on a lease of its own, kept alive while its owner waits
 * and revoked (deleting the key) when it gives up.
 *
 * @module
 */

import type { LockRequest } from "../../src/backend.ts";
import { abortableDelay } from "../../src/timing.ts";
import type { Place } from "./claim.ts";
import { leaseSeconds, queueKey } from "./keys.ts";
import type { EtcdOps } from "./ops.ts";

/**
 * The queue places of one backend, by owner.
 *
 * @example
 * ```ts ignore
 * import { EtcdQueue } from "./queue.ts";
 * const queue = new EtcdQueue(5_000);
 * const place = await queue.take(ops, "coolock/report/", request);
 * await queue.drop(request.owner, ops);
 * ```
 */
export class EtcdQueue {
  readonly #places = new Map<string, Place>();
  readonly #cleanups = new Set<Promise<void>>();

  /**
   * An empty table.
   *
   * @param timeoutMs the bound on one call
   */
  constructor(private readonly timeoutMs: number) {}

  #bound(signal?: AbortSignal): AbortSignal {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    return signal ? AbortSignal.any([signal, timeout]) : timeout;
  }

  /** The owner's place, if it has one. */
  get(owner: string): Place | undefined {
    return this.#places.get(owner);
  }

  /** This request's queue place, fresh; `undefined` when held (no wait). */
  async take(
    ops: EtcdOps,
    prefix: string,
    request: LockRequest,
  ): Promise<Place | undefined> {
    const { owner, signal } = request;
    const place = this.#places.get(owner);
    if (place) {
      const sentAt = performance.now();
      const [ttl, state] = await Promise.all([
        ops.keepAlive(place.lease, signal),
        ops.create(
          { key: place.key, value: owner, lease: place.lease },
          signal,
        ),
      ]);
      if (ttl > 0 && state && state !== "held") {
        return Object.assign(place, state, { ackedAt: sentAt });
      }
      await this.drop(owner, ops);
    }
    const sentAt = performance.now();
    const [lease, ttl] = await ops.grant(
      leaseSeconds(request.expiresInMs),
      signal,
    );
    const key = queueKey(prefix, lease);
    const keeping = new AbortController();
    const fresh: Place = {
      key,
      lease,
      ttlMs: ttl * 1000,
      ackedAt: sentAt,
      createRevision: 0n,
      revision: 0n,
      stop: () => keeping.abort(),
    };
    this.#places.set(owner, fresh);
    const onAbort = () => void this.drop(owner, ops);
    signal.addEventListener("abort", onAbort, { once: true });
    keeping.signal.addEventListener(
      "abort",
      () => signal.removeEventListener("abort", onAbort),
      { once: true },
    );
    // Without waiting, take the lock only when nobody holds or queues for it.
    const state = await ops.create({
      key,
      value: owner,
      lease,
      ifEmpty: request.wait ? undefined : prefix,
    }, signal);
    if (state === "held") {
      await this.drop(owner, ops);
      return undefined;
    }
    if (state?.value !== owner) {
      throw new Error("the new lease expired before its key was put");
    }
    // A queue place lives as long as its lease: keep it while we wait.
    if (request.wait) void this.#keep(ops, fresh, keeping.signal);
    return Object.assign(fresh, state);
  }

  async #keep(ops: EtcdOps, place: Place, signal: AbortSignal) {
    while (!signal.aborted) {
      try {
        await abortableDelay(place.ttlMs / 3, signal);
        const sentAt = performance.now();
        if (await ops.keepAlive(place.lease, this.#bound(signal)) > 0) {
          place.ackedAt = sentAt;
        }
      } catch { /* the next attempt finds out */ }
    }
  }

  /** Hands a won place to its claim: it is no longer kept as a queue place. */
  won(owner: string, place: Place): void {
    this.#places.delete(owner);
    place.stop();
  }

  /** Gives up a queue place; revoking its lease deletes its key. */
  drop(owner: string, ops: EtcdOps): Promise<void> {
    const place = this.#places.get(owner);
    if (!place) return Promise.resolve();
    this.#places.delete(owner);
    place.stop();
    const cleanup = ops.revoke(place.lease, this.#bound()).catch(() => {});
    this.#cleanups.add(cleanup);
    return cleanup.finally(() => this.#cleanups.delete(cleanup));
  }

  /** Gives up every place, and waits for the revocations. */
  async dropAll(ops: EtcdOps): Promise<void> {
    for (const owner of [...this.#places.keys()]) void this.drop(owner, ops);
    await Promise.allSettled([...this.#cleanups]);
  }
}
