/**
 * A held etcd lock: the lowest key of its prefix, kept by its lease. It
 * watches its own key, so that a deletion or an overwrite aborts `lost` at
 * once, and it counts the lease out by the time of the last acknowledged
 * keepalive, since clients learn of a dead lease late.
 *
 * @module
 */

import { type Claim, LockLostError } from "../../src/backend.ts";
import { abortableDelay } from "../../src/timing.ts";
import { leaseSeconds } from "./keys.ts";
import type { EtcdOps, OwnedKey } from "./ops.ts";

/**
 * One acquisition's key: a place in the queue until it is the lowest.
 *
 * @example
 * ```ts
 * import type { Place } from "./claim.ts";
 * const first = (place: Place) => place.predecessor === undefined;
 * ```
 */
export interface Place {
  /** The acquisition's key. */
  readonly key: string;
  /** Its lease. */
  readonly lease: string;
  /** The TTL the server granted the lease. */
  readonly ttlMs: number;
  /** When the last acknowledged grant or keepalive of the lease was sent. */
  ackedAt: number;
  /** The revision that created the key. */
  createRevision: bigint;
  /** The store revision of the last read. */
  revision: bigint;
  /** The key just before this one in the queue, to watch. */
  predecessor?: { key: string; revision: bigint };
  /** Stops keeping the lease alive for the queue. */
  readonly stop: () => void;
}

/**
 * The claim of a place that became the lowest key of its lock.
 *
 * @example
 * ```ts ignore
 * import { EtcdClaim } from "./claim.ts";
 * const claim = new EtcdClaim(ops, "report", owner, place, 5_000, () => {});
 * await claim.release(0);
 * ```
 */
export class EtcdClaim implements Claim {
  /** Slots other than 0 come with the semaphore (issue 16). */
  readonly slot = 0;
  /** The fencing token: the key's create revision. */
  readonly token: bigint;
  readonly #lost = new AbortController();
  readonly #watching = new AbortController();
  /** Aborts when the key is deleted, overwritten or its lease runs out. */
  readonly lost: AbortSignal = this.#lost.signal;
  readonly #held: OwnedKey;
  #lease: string;
  #ttlMs: number;
  #ackedAt: number;
  #expiry?: ReturnType<typeof setTimeout>;
  #released?: Promise<void>;

  /**
   * Starts watching the key and counting out its lease.
   *
   * @param ops the etcd calls
   * @param name the lock name
   * @param owner the owner the key holds
   * @param place the winning place
   * @param timeoutMs the bound on one call
   * @param onDone called once the claim is released
   */
  constructor(
    private readonly ops: EtcdOps,
    private readonly name: string,
    private readonly owner: string,
    place: Place,
    private readonly timeoutMs: number,
    private readonly onDone: () => void,
  ) {
    this.token = place.createRevision;
    this.#held = { key: place.key, value: owner, createRevision: this.token };
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
    clearTimeout(this.#expiry);
    this.#watching.abort();
  }

  #armExpiry() {
    clearTimeout(this.#expiry);
    // Clients learn of a dead lease late; the server drops it at this time.
    const due = this.#ackedAt + this.#ttlMs - performance.now();
    this.#expiry = setTimeout(
      () => this.#lose("no keepalive was acknowledged within the lease TTL"),
      Math.max(0, due),
    );
  }

  async #watch(from: bigint) {
    const signal = this.#watching.signal;
    while (!signal.aborted) {
      try {
        const change = await this.ops.nextChange(this.#held.key, from, signal);
        if (change.kind === "delete") {
          return void this.#lose("its key was deleted");
        }
        if (change.value !== this.owner) {
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

  async #check(signal: AbortSignal): Promise<bigint> {
    const state = await this.ops.read(this.#held.key, this.#bound(signal));
    if (state?.value !== this.owner || state.createRevision !== this.token) {
      throw this.#lose("its key is gone or belongs to another owner");
    }
    return state.revision;
  }

  #bound(signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]);
  }

  /** Keeps the lease alive, or moves the key to a shorter one. */
  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    if (this.#watching.signal.aborted) {
      throw new LockLostError(this.name, "it was released or lost before");
    }
    const sentAt = performance.now();
    if (this.#ttlMs > expiresInMs + 1_000) {
      // The lease still covers the guard time; shorten it once that has run.
      if (this.#ackedAt + this.#ttlMs - sentAt >= expiresInMs) {
        await this.#check(signal);
      } else await this.#swap(expiresInMs, signal);
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

  /** Moves the key to a fresh lease of `expiresInMs`, then revokes the old. */
  async #swap(expiresInMs: number, signal: AbortSignal) {
    const sentAt = performance.now();
    const [lease, ttl] = await this.ops.grant(
      leaseSeconds(expiresInMs),
      this.#bound(signal),
    );
    const old = this.#lease;
    let moved = false;
    try {
      moved = await this.ops.replace(this.#held, lease, this.#bound(signal));
    } finally {
      if (moved) {
        [this.#lease, this.#ttlMs, this.#ackedAt] = [lease, ttl * 1000, sentAt];
      }
      const revoked = moved ? [old] : [lease, old];
      await Promise.allSettled(
        revoked.map((id) => this.ops.revoke(id, this.#bound(signal))),
      );
    }
    if (!moved) throw this.#lose("its key belongs to another owner");
    if (!this.#watching.signal.aborted) this.#armExpiry();
  }

  /** Deletes the key, or leaves it on a fresh lease for the guard time. */
  release(holdMs: number): Promise<void> {
    return this.#released ??= this.#release(holdMs);
  }

  async #release(holdMs: number): Promise<void> {
    this.#stop();
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      if (holdMs > 0) {
        // A fresh lease that nobody renews keeps the key for the guard time.
        await this.#swap(holdMs, signal).catch((error) => {
          if (!(error instanceof LockLostError)) throw error;
        });
      } else {
        await this.ops.remove(this.#held, signal);
        await this.ops.revoke(this.#lease, signal);
      }
    } finally {
      this.onDone();
    }
  }
}
