/**
 * A held ZooKeeper lock: the lowest node of a lock's queue. It is lost when
 * its session is, when the node is deleted out of band, or when it goes
 * unrenewed past its lease; the latter deletes its node, as a key with a TTL
 * would expire.
 *
 * @module
 */

import { type Claim, LockLostError } from "../../src/backend.ts";
import { bigintOf, ignore, ZkCode } from "./client.ts";
import { guardLapsed, tidyParent } from "./guard.ts";
import type { ZkSession } from "./session.ts";

/**
 * A contender's node in a lock's queue, kept across attempts in wait mode.
 *
 * @example
 * ```ts ignore
 * import type { Place } from "./claim.ts";
 * const queued = (place: Place) => place.path.startsWith(place.parent);
 * ```
 */
export interface Place {
  /** The session whose ephemeral node this is. */
  readonly session: ZkSession;
  /** The lock's persistent parent node. */
  readonly parent: string;
  /** The contender's own node. */
  readonly path: string;
  /** The node's name under the parent, `lock-<sequence>`. */
  readonly name: string;
  /** Stops listening for the request's abort. */
  unlisten(): void;
  /** The predecessor watched. */
  watched?: string;
  /** Resolves when the watched predecessor is deleted. */
  wake?: Promise<void>;
  /** When an active guard record lapses, on performance.now(). */
  guardUntil?: number;
}

/**
 * The claim on a lock node that won the queue.
 *
 * @example
 * ```ts ignore
 * import { ZooKeeperClaim } from "./claim.ts";
 * const claim = new ZooKeeperClaim(token, name, place, 0, version, () => {}, sentAt, 3_000);
 * await claim.release(0);
 * ```
 */
export class ZooKeeperClaim implements Claim {
  /** Slots other than 0 come with the semaphore (issue 16). */
  readonly slot = 0;
  /** Aborts when the session is lost, the node deleted or the claim lapsed. */
  readonly lost: AbortSignal;
  readonly #deleted = new AbortController();
  #released = false;
  #lapse?: ReturnType<typeof setTimeout>;

  /**
   * Starts the claim's lapse timer.
   *
   * @param token the lock node's czxid
   * @param name the lock name
   * @param place the node that holds the lock
   * @param guardEnd server-clock ms when the guard record lapses; 0 without one
   * @param parentVersion the parent's version after the guard record
   * @param onDone called once the claim is released
   * @param sentAt when the winning attempt started, on performance.now()
   * @param expiresInMs how long the claim lasts without renewal
   */
  constructor(
    /** The fencing token: the lock node's czxid. */
    readonly token: bigint,
    private readonly name: string,
    private readonly place: Place,
    private readonly guardEnd: number,
    private readonly parentVersion: number,
    private readonly onDone: (claim: ZooKeeperClaim) => void,
    sentAt: number,
    expiresInMs: number,
  ) {
    this.lost = AbortSignal.any([place.session.lost, this.#deleted.signal]);
    this.#lapseAt(sentAt + expiresInMs);
  }

  /**
   * The session outlives an owner that stopped renewing (its lifecycle gave
   * the lease up as lost while the session held on), so an unrenewed claim
   * lapses like a key with a TTL: its node goes, its guard record stays.
   */
  #lapseAt(due: number): void {
    clearTimeout(this.#lapse);
    this.#lapse = setTimeout(() => {
      this.#deleted.abort(
        new Error("No renewal came in time, so the lock lapsed"),
      );
      this.release(0).catch(() => {});
    }, Math.max(0, due - performance.now()));
  }

  /** Called when the watch sees the held node deleted. */
  gone(): void {
    if (this.#released) return;
    this.#deleted.abort(
      new Error(`The lock node '${this.place.path}' was deleted`),
    );
  }

  /** Confirms the node is still this claim's, and extends the lapse. */
  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    // The session's own heartbeat keeps it alive; this confirms the node.
    const { session, path } = this.place;
    if (this.lost.aborted) {
      throw new LockLostError(this.name, (this.lost.reason as Error).message);
    }
    const sentAt = performance.now();
    const stat = await session.exists(path, signal);
    if (!stat || bigintOf(stat.czxid) !== this.token) {
      throw new LockLostError(this.name, `the lock node '${path}' is gone`);
    }
    if (!this.#released && !this.lost.aborted) {
      this.#lapseAt(sentAt + expiresInMs);
    }
  }

  /** Deletes the node, and the parent once no guard record holds it. */
  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    clearTimeout(this.#lapse);
    this.onDone(this);
    const { session, path, parent } = this.place;
    if (session.lost.aborted) return;
    let tidy = this.guardEnd === 0;
    if (!tidy && holdMs <= 0) {
      tidy = await guardLapsed(session, path, this.guardEnd);
    }
    await session.remove(path, -1).catch(ignore(ZkCode.NO_NODE));
    if (tidy) await tidyParent(session, parent, this.parentVersion);
  }
}
