/**
 * The queue of the etcd recipe. Each acquisition puts one entry key under
 * the lock's prefix, on a lease of its own, kept alive while its owner
 * waits and revoked (deleting the key) when it gives up. The `limit`
 * entries with the lowest create revisions hold the lock (`slots.ts` gives
 * each its slot); since create revisions only grow, an entry that is among
 * them stays among them until it goes, so "holds" never needs re-checking.
 *
 * Waking: the lowest waiter (position `limit`) waits for any holder to go:
 * for a mutex a watch on the one holder's key, else a watch on the queue's
 * deletions. Every other waiter watches the entry just ahead of it, which
 * changes when that one goes or comes to hold (it writes its slot and
 * time), so one release wakes one waiter, not the herd. Watching the entry
 * `limit` places ahead instead would miss holders that leave out of
 * arrival order: the lowest waiter would only learn of it by polling.
 *
 * @module
 */

import type { LockRequest } from "../../src/backend.ts";
import { abortableDelay } from "../../src/timing.ts";
import {
  aheadRange,
  encodeEntry,
  holdersRange,
  queueEnd,
  queueKey,
  slotsRange,
  stillOwned,
} from "./keys.ts";
import {
  type EtcdOps,
  type KeyValue,
  LeaseGoneError,
  leaseSeconds,
  type WatchQuery,
} from "./ops.ts";
import { checkLimit, holderValue, holdSlot } from "./slots.ts";

/** One acquisition's entry: a place in the queue until it holds. */
export interface Place {
  /** The entry's key. */
  readonly key: string;
  /** Its lease. */
  readonly lease: string;
  /** The TTL the server granted the lease. */
  readonly ttlMs: number;
  /** When the last acknowledged grant or keepalive of the lease was sent. */
  ackedAt: number;
  /** The revision that created the key: the fencing token. */
  createRevision: bigint;
  /** The value as stored, for compare-and-set. */
  value: string;
  /** The store revision of the last read or write. */
  revision: bigint;
  /** What this waiter waits on, from the revision after the last read. */
  watch?: WatchQuery;
  /** Stops keeping the lease alive for the queue. */
  readonly stop: () => void;
}

/** Where an attempt left its entry. */
export type Standing =
  | {
    readonly holds: true;
    readonly place: Place;
    readonly slot: number;
    /** The slot key, for a limit above 1. */
    readonly slotKey?: string;
  }
  | { readonly holds: false; readonly place: Place };

function waiterValue(request: LockRequest): string {
  const { owner, node, limit } = request;
  return encodeEntry({ owner, node, limit });
}

/** The queue places of one backend, by owner. */
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

  /** The owner's place, if it waits. */
  get(owner: string): Place | undefined {
    return this.#places.get(owner);
  }

  /**
   * This request's standing: its entry holds, or waits (`place.watch` says
   * on what); `undefined` when all slots are held and it doesn't wait.
   */
  async take(
    ops: EtcdOps,
    prefix: string,
    request: LockRequest,
  ): Promise<Standing | undefined> {
    const { owner, signal, limit } = request;
    const place = this.#places.get(owner);
    if (place) {
      const sentAt = performance.now();
      const [ttl, look] = await Promise.all([
        ops.keepAlive(place.lease, signal),
        ops.txn(
          stillOwned(place.key, place.value, place.createRevision),
          [
            { range: holdersRange(prefix, limit) },
            { range: aheadRange(prefix, place.createRevision) },
            ...(limit > 1 ? [{ range: slotsRange(prefix) }] : []),
          ],
          [],
          signal,
        ),
      ]);
      if (ttl > 0 && look.succeeded) {
        place.ackedAt = sentAt;
        place.revision = look.revision;
        const [head, [before], taken = []] = look.ranges;
        return this.#judge(ops, prefix, place, request, head, before, taken);
      }
      // Its lease ran out or it was removed: queue again, at the end.
      await this.drop(owner, ops);
    }
    return this.#enter(ops, prefix, request);
  }

  async #enter(
    ops: EtcdOps,
    prefix: string,
    request: LockRequest,
  ): Promise<Standing | undefined> {
    const { owner, signal, limit } = request;
    const sentAt = performance.now();
    const [lease, ttl] = await ops.grant(
      leaseSeconds(request.expiresInMs),
      signal,
    );
    const key = queueKey(prefix, lease);
    const keeping = new AbortController();
    const place: Place = {
      key,
      lease,
      ttlMs: ttl * 1000,
      ackedAt: sentAt,
      createRevision: 0n,
      value: "",
      revision: 0n,
      stop: () => keeping.abort(),
    };
    this.#places.set(owner, place);
    const onAbort = () => void this.drop(owner, ops);
    signal.addEventListener("abort", onAbort, { once: true });
    keeping.signal.addEventListener(
      "abort",
      () => signal.removeEventListener("abort", onAbort),
      { once: true },
    );
    const expired = () =>
      new Error("the new lease expired before its key was put");
    if (limit === 1 && !request.wait) {
      // A mutex without waiting: put the key only when the queue is empty,
      // so that a herd of tries leaves no keys (and holds at once).
      const value = holderValue(request, 0);
      const result = await ops.txn(
        [{ key: prefix, end: queueEnd(prefix), target: "create", equals: 0n }],
        [{ put: { key, value, lease } }, { range: { key } }],
        [{ range: holdersRange(prefix, 1) }],
        signal,
      ).catch((error) => {
        throw error instanceof LeaseGoneError ? expired() : error;
      });
      if (!result.succeeded) {
        await this.drop(owner, ops);
        checkLimit(request, result.ranges[0][0]);
        return undefined;
      }
      const [mine] = result.ranges[0];
      if (!mine) throw expired();
      Object.assign(place, {
        createRevision: mine.createRevision,
        value,
        revision: result.revision,
      });
      return { holds: true, place, slot: 0 };
    }
    const value = waiterValue(request);
    const result = await ops.txn(
      [{ key, target: "create", equals: 0n }],
      [
        { put: { key, value, lease } },
        { range: holdersRange(prefix, limit) },
        {
          range: {
            key: prefix,
            end: queueEnd(prefix),
            order: "newest",
            limit: 2,
          },
        },
        ...(limit > 1 ? [{ range: slotsRange(prefix) }] : []),
      ],
      [],
      signal,
    ).catch((error) => {
      throw error instanceof LeaseGoneError ? expired() : error;
    });
    if (!result.succeeded) throw new Error(`the queue key ${key} exists`);
    // The put is this transaction's only write: its revision created the key.
    Object.assign(place, {
      createRevision: result.revision,
      value,
      revision: result.revision,
    });
    // A queue place lives as long as its lease: keep it while we wait.
    if (request.wait) void this.#keep(ops, place, keeping.signal);
    const [head, newest, taken = []] = result.ranges;
    const before = newest.find((kv) => kv.key !== key);
    return this.#judge(ops, prefix, place, request, head, before, taken);
  }

  /** Holds, waits or gives up, by the entries ahead of `place`. */
  async #judge(
    ops: EtcdOps,
    prefix: string,
    place: Place,
    request: LockRequest,
    head: readonly KeyValue[],
    before: KeyValue | undefined,
    taken: readonly KeyValue[],
  ): Promise<Standing | undefined> {
    checkLimit(request, head[0]);
    if (head.some((kv) => kv.key === place.key)) {
      const held = await holdSlot(ops, prefix, place, request, head, taken);
      if (!held) {
        // Removed (a forced release, its lease ran out) before it could hold.
        await this.drop(request.owner, ops);
        return undefined;
      }
      place.value = held.value;
      place.revision = held.revision;
      return { holds: true, place, slot: held.slot, slotKey: held.slotKey };
    }
    if (!request.wait) {
      await this.drop(request.owner, ops);
      return undefined;
    }
    const from = place.revision + 1n;
    const lowest = before !== undefined &&
      before.key === head[head.length - 1]?.key;
    place.watch = lowest && request.limit > 1
      ? {
        key: prefix,
        end: queueEnd(prefix),
        fromRevision: from,
        deletesOnly: true,
      }
      : before
      ? { key: before.key, fromRevision: from }
      : undefined;
    return { holds: false, place };
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
