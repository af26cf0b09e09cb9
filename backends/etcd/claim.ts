/**
 * A held etcd lock slot: a queue entry among the lock's oldest `limit`,
 * kept by its lease (with its slot key, for a limit above 1). It watches
 * its entry, so that a deletion (a forced release, an operator) or an
 * overwrite aborts `lost` at once, and it counts the lease out by the time
 * of the last acknowledged keepalive, since clients learn of a dead lease
 * late (grpc-js by seconds). Guard time is the entry moved to a fresh lease
 * of what is left, which nobody renews.
 *
 * @module
 */

import { type Claim, LockLostError } from "../../src/backend.ts";
import { abortableDelay, later } from "../../src/timing.ts";
import { decodeEntry, encodeEntry, stillOwned } from "./keys.ts";
import { type Compare, type EtcdOps, leaseSeconds, type TxnOp } from "./ops.ts";
import type { Place } from "./queue.ts";

/** The claim of a place that came to hold a slot of its lock. */
export class EtcdClaim implements Claim {
  /** The slot held, 0 … limit − 1. */
  readonly slot: number;
  /** The fencing token: the entry's create revision. */
  readonly token: bigint;
  readonly #lost = new AbortController();
  readonly #watching = new AbortController();
  /** Aborts when the entry is deleted, overwritten or its lease runs out. */
  readonly lost: AbortSignal = this.#lost.signal;
  readonly #key: string;
  readonly #slotKey?: string;
  #value: string;
  #lease: string;
  #ttlMs: number;
  #ackedAt: number;
  #cancelExpiry = () => {};
  #released?: Promise<void>;

  /**
   * Starts watching the entry and counting out its lease.
   *
   * @param ops the etcd calls
   * @param name the lock name
   * @param place the winning place
   * @param slot the slot it holds
   * @param slotKey its slot key, for a limit above 1
   * @param timeoutMs the bound on one call
   * @param onDone called once the claim is released
   */
  constructor(
    private readonly ops: EtcdOps,
    private readonly name: string,
    place: Place,
    slot: number,
    slotKey: string | undefined,
    private readonly timeoutMs: number,
    private readonly onDone: () => void,
  ) {
    this.slot = slot;
    this.token = place.createRevision;
    this.#key = place.key;
    this.#slotKey = slotKey;
    this.#value = place.value;
    this.#lease = place.lease;
    this.#ttlMs = place.ttlMs;
    this.#ackedAt = place.ackedAt;
    this.#armExpiry();
    void this.#watch(place.revision + 1n);
  }

  #lose(why: string): LockLostError {
    const error = new LockLostError(this.name, why);
    if (!this.#watching.signal.aborted) {
      this.#lost.abort(error);
      this.#stop();
    }
    return error;
  }

  #stop() {
    this.#cancelExpiry();
    this.#watching.abort();
  }

  #armExpiry() {
    this.#cancelExpiry();
    // Clients learn of a dead lease late; the server drops it at this time.
    this.#cancelExpiry = later(
      () => this.#lose("no keepalive was acknowledged within the lease TTL"),
      this.#ackedAt + this.#ttlMs - performance.now(),
    );
  }

  async #watch(from: bigint) {
    const signal = this.#watching.signal;
    while (!signal.aborted) {
      try {
        const change = await this.ops.watch(
          { key: this.#key, fromRevision: from },
          signal,
        );
        if (change.kind === "delete") {
          return void this.#lose("its key was deleted");
        }
        if (change.value !== this.#value) {
          return void this.#lose("its key was overwritten");
        }
        from = change.revision + 1n;
      } catch {
        // A compacted or broken watch: look, then watch from there.
        try {
          await abortableDelay(500, signal);
          from = (await this.#check(signal)) + 1n;
        } catch { /* unreachable: renewals and the deadline decide */ }
      }
    }
  }

  /** The conditions under which the entry (and its slot) are still ours. */
  #owned(): Compare[] {
    return [
      ...stillOwned(this.#key, this.#value, this.token),
      ...(this.#slotKey === undefined ? [] : [
        { key: this.#slotKey, target: "value", equals: this.#key } as const,
      ]),
    ];
  }

  /** Resolves the store revision at which the entry was still ours. */
  async #check(signal: AbortSignal): Promise<bigint> {
    const result = await this.ops.txn(
      this.#owned(),
      [],
      [],
      this.#bound(signal),
    );
    if (!result.succeeded) {
      throw this.#lose("its key or slot is gone or belongs to another owner");
    }
    return result.revision;
  }

  #bound(signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]);
  }

  /** Keeps the lease alive, or moves the entry to a shorter one. */
  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    if (this.#watching.signal.aborted) {
      throw new LockLostError(this.name, "it was released or lost before");
    }
    const sentAt = performance.now();
    if (this.#ttlMs > expiresInMs + 1_000) {
      // The lease still covers the guard time; shorten it once that has run.
      if (this.#ackedAt + this.#ttlMs - sentAt >= expiresInMs) {
        await this.#check(signal);
      } else await this.#swap(expiresInMs, false, signal);
      return;
    }
    const [ttl] = await Promise.all([
      this.ops.keepAlive(this.#lease, this.#bound(signal)),
      this.#check(signal),
    ]);
    if (ttl <= 0) throw this.#lose("its lease expired");
    this.#ackedAt = sentAt;
    this.#armExpiry();
  }

  /**
   * Moves the entry (and its slot key) to a fresh lease of `expiresInMs`,
   * then revokes the old one; `guard` marks it released into guard time.
   */
  async #swap(expiresInMs: number, guard: boolean, signal: AbortSignal) {
    const sentAt = performance.now();
    const [lease, ttl] = await this.ops.grant(
      leaseSeconds(expiresInMs),
      this.#bound(signal),
    );
    const old = this.#lease;
    const value = guard
      ? encodeEntry({ ...decodeEntry(this.#value), guard: Date.now() })
      : this.#value;
    const moves: TxnOp[] = [
      { put: { key: this.#key, value, lease } },
      ...(this.#slotKey === undefined
        ? []
        : [{ put: { key: this.#slotKey, value: this.#key, lease } }]),
    ];
    let moved = false;
    try {
      moved =
        (await this.ops.txn(this.#owned(), moves, [], this.#bound(signal)))
          .succeeded;
    } finally {
      if (moved) {
        [this.#lease, this.#ttlMs, this.#ackedAt, this.#value] = [
          lease,
          ttl * 1000,
          sentAt,
          value,
        ];
      }
      const revoked = moved ? [old] : [lease, old];
      await Promise.allSettled(
        revoked.map((id) => this.ops.revoke(id, this.#bound(signal))),
      );
    }
    if (!moved) throw this.#lose("its key belongs to another owner");
    if (!this.#watching.signal.aborted) this.#armExpiry();
  }

  /** Deletes the entry, or leaves it on a fresh lease for the guard time. */
  release(holdMs: number): Promise<void> {
    return this.#released ??= this.#release(holdMs);
  }

  async #release(holdMs: number): Promise<void> {
    this.#stop();
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      if (holdMs > 0) {
        // A fresh lease that nobody renews keeps the key for the guard time.
        await this.#swap(holdMs, true, signal).catch((error) => {
          if (!(error instanceof LockLostError)) throw error;
        });
      } else {
        // Revoking the lease deletes the entry and its slot key, and only
        // while they are still on it: an entry that another owner put again
        // is on that owner's lease.
        await this.ops.revoke(this.#lease, signal);
      }
    } finally {
      this.onDone();
    }
  }
}
