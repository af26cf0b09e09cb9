/**
 * The ZooKeeper lock recipe. Each contender adds an `EPHEMERAL_SEQUENTIAL`
 * node under `<root>/<name>/`; the lowest sequence number holds the lock,
 * and each waiter watches only its predecessor, so a release wakes one
 * process and waiters are served in arrival order. The fencing token is the
 * lock node's czxid, which the ensemble hands out in strictly increasing
 * order, also across a re-created parent.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { LockRequest } from "../../src/backend.ts";
import { encodeLockName } from "../../src/names.ts";
import { type Place, ZooKeeperClaim } from "./claim.ts";
import { bigintOf, codeOf, ignore, ZkCode } from "./client.ts";
import { guardRemaining, tidyParent, writeGuard } from "./guard.ts";
import type { ZkSession } from "./session.ts";

const NODE = /^lock-(\d{10})$/;

/**
 * The queue places of one backend, by owner, and the claims they won.
 *
 * @example
 * ```ts ignore
 * import { LockQueue } from "./queue.ts";
 * const queue = new LockQueue("/coolock");
 * const place = await queue.enqueue(session, request);
 * const claim = await queue.examine(place, request);
 * ```
 */
export class LockQueue {
  readonly #places = new Map<string, Place>();
  /** The claims won and not yet released. */
  readonly held = new Set<ZooKeeperClaim>();

  /**
   * An empty table.
   *
   * @param root the node under which lock parents live
   */
  constructor(private readonly root: string) {}

  /** The queue place of an owner, if it has one. */
  get(owner: string): Place | undefined {
    return this.#places.get(owner);
  }

  /** Adds the request's node at the back of the lock's queue. */
  async enqueue(session: ZkSession, request: LockRequest): Promise<Place> {
    const parent = `${this.root}/${encodeLockName(request.name)}`;
    const data = Buffer.from(request.owner);
    let path: string;
    for (let tries = 1;; tries++) {
      try {
        path = await session.create(
          `${parent}/lock-`,
          data,
          session.zk.CreateMode.EPHEMERAL_SEQUENTIAL,
          request.signal,
        );
        break;
      } catch (error) {
        // A releasing holder may have just tidied the parent away.
        if (codeOf(error) !== ZkCode.NO_NODE || tries === 3) throw error;
        await session.mkdirp(this.root, request.signal);
        await session.create(
          parent,
          Buffer.alloc(0),
          session.zk.CreateMode.PERSISTENT,
          request.signal,
        ).catch(ignore(ZkCode.NODE_EXISTS));
      }
    }
    const onAbort = () => void this.leave(place, true, true).catch(() => {});
    const place: Place = {
      session,
      parent,
      path,
      name: path.slice(parent.length + 1),
      unlisten: () => request.signal.removeEventListener("abort", onAbort),
    };
    this.#places.set(request.owner, place);
    request.signal.addEventListener("abort", onAbort, { once: true });
    return place;
  }

  /** Drops a place from the table, leaving its node alone. */
  forget(place: Place): void {
    place.unlisten();
    for (const [owner, kept] of this.#places) {
      if (kept === place) this.#places.delete(owner);
    }
  }

  /** Forgets every place. */
  forgetAll(): void {
    for (const place of [...this.#places.values()]) this.forget(place);
  }

  /**
   * Drops a queue place; `remove` also deletes its node (not when won), and
   * `tidy` the parent when that leaves it empty and unguarded (a waiter
   * giving up; a failed try leaves it to the holder).
   */
  async leave(place: Place, remove: boolean, tidy = false): Promise<void> {
    if (![...this.#places.values()].includes(place)) return;
    this.forget(place);
    if (!remove || place.session.lost.aborted) return;
    const { session, path, parent } = place;
    await session.remove(path, -1).catch(ignore(ZkCode.NO_NODE));
    if (!tidy) return;
    const { data, stat } = await session.getData(parent);
    if (data.length === 0) await tidyParent(session, parent, stat.version);
  }

  /**
   * Looks at the queue: resolves a claim when the place is first and no
   * guard record holds the lock, else watches the predecessor (wait mode).
   */
  async examine(
    place: Place,
    request: LockRequest,
  ): Promise<ZooKeeperClaim | undefined> {
    const { session, parent, path, name } = place;
    const { signal } = request;
    const startedAt = performance.now();
    const queue = (await session.getChildren(parent, signal))
      .filter((child) => NODE.test(child)).sort();
    const index = queue.indexOf(name);
    place.guardUntil = undefined;
    if (index < 0) {
      // Deleted out of band: the next attempt queues again, at the back.
      this.forget(place);
      return undefined;
    }
    if (index > 0) {
      const predecessor = `${parent}/${queue[index - 1]}`;
      if (request.wait && place.watched !== predecessor) {
        place.watched = predecessor;
        place.wake = new Promise<void>((resolve) => {
          session.watchGone(predecessor, resolve, signal).catch(() => {
            place.watched = undefined;
            resolve();
          });
        });
      }
      return undefined;
    }
    const { data, stat: parentStat } = await session.getData(parent, signal);
    const remaining = await guardRemaining(
      session,
      path,
      request.owner,
      data,
      parentStat,
    );
    if (remaining > 0) {
      place.guardUntil = performance.now() + remaining;
      return undefined;
    }
    const { guardEnd, parentVersion } = await writeGuard(
      session,
      parent,
      parentStat,
      data,
      request,
    );
    let deleted = false;
    let onDeleted: () => void = () => deleted = true;
    const stat = await session.watchGone(path, () => onDeleted(), signal);
    if (!stat) return undefined;
    const claim = new ZooKeeperClaim(
      bigintOf(stat.czxid),
      request.name,
      place,
      guardEnd,
      parentVersion,
      (done) => this.held.delete(done),
      startedAt,
      request.expiresInMs,
    );
    onDeleted = () => claim.gone();
    if (deleted) claim.gone();
    this.held.add(claim);
    return claim;
  }
}
