/**
 * The ZooKeeper lock recipe, for a mutex and a counting semaphore alike.
 * Each contender adds an ephemeral sequential entry under the lock's
 * parent; the `limit` lowest sequence numbers may hold. One that may hold
 * takes a slot whose record (`slots.ts`) is free, or has run out by the
 * server's clock, so a holder whose session dropped keeps its slot for the
 * lease it last renewed.
 *
 * - **Order.** Entries take slots in queue order: one waits while an entry
 *   ahead of it has no slot yet (briefly, even without wait mode, when
 *   enough slots are free for them and for it: they are taking theirs at
 *   that moment). So each new holder's entry is younger than every earlier
 *   holder's, and the fencing token, the entry's czxid (which the ensemble
 *   hands out in strictly increasing order, also across a re-created
 *   parent), grows with every acquisition, across slots.
 * - **Waking.** A waiter at position `limit` watches the deletion of every
 *   entry that may hold; one further back watches the entry just ahead of
 *   it, for its deletion or a write (an entry writes itself when it comes to
 *   hold, or to read the server's clock), so a release wakes one waiter.
 *   For a mutex that is the classic recipe: each waiter watches its
 *   predecessor's deletion only. An entry held off by a record watches that
 *   record, and sleeps until its end.
 * - **Limit.** The parent stores it; an entry with another limit is refused
 *   (`LimitMismatchError`), unless it is alone and every record of the old
 *   layout has run out: then it rewrites the layout for its own limit.
 *
 * @module
 */

import { LimitMismatchError, type LockRequest } from "../../src/backend.ts";
import { ZooKeeperClaim } from "./claim.ts";
import { bigintOf, codeOf, ignore, msOf, ZkCode } from "./client.ts";
import {
  encodeValue,
  entriesOf,
  parentOf,
  parentValue,
  recordEnd,
  type SlotRecord,
  storedLimit,
} from "./keys.ts";
import type { NodeData, TxnOp, ZkSession } from "./session.ts";
import {
  raced,
  readSlotNodes,
  readSlots,
  serverNow,
  type Slot,
  standing,
  takeSlot,
  tidy,
} from "./slots.ts";

/** How often one attempt looks again after losing a race for a slot. */
const ROUNDS = 6;
/** How long an entry waits for older ones to take their slots. */
const SEAT_WAIT_MS = 2_000;

/** A contender's entry in a lock's queue, kept across attempts in wait mode. */
export interface Place {
  /** The session whose ephemeral entry this is. */
  readonly session: ZkSession;
  /** The lock's persistent parent node. */
  readonly parent: string;
  /** The entry's path. */
  readonly path: string;
  /** The entry's name under the parent, `lock-<sequence>`. */
  readonly name: string;
  /** The entry's value. */
  readonly value: Uint8Array;
  /** Stops listening for the request's abort. */
  unlisten(): void;
  /** What the waiter watches, as a key, while the watch is armed. */
  watching?: string;
  /** Resolves when what it watches changes. */
  wake?: Promise<void>;
  /** When the record that keeps it out runs out, on performance.now(). */
  lapseAt?: number;
}

/** The queue places of one backend, by owner, and the claims they won. */
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

  /** Adds the request's entry at the back of the lock's queue. */
  async enqueue(session: ZkSession, request: LockRequest): Promise<Place> {
    const parent = parentOf(this.root, request.name);
    const value = encodeValue({ owner: request.owner, node: request.node });
    let path: string;
    for (let tries = 1;; tries++) {
      try {
        path = await session.create(
          `${parent}/lock-`,
          value,
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
          parentValue(request.limit),
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
      value,
      unlisten: () => request.signal.removeEventListener("abort", onAbort),
    };
    this.#places.set(request.owner, place);
    request.signal.addEventListener("abort", onAbort, { once: true });
    return place;
  }

  /** Drops a place from the table, leaving its entry alone. */
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
   * Drops a queue place; `remove` also deletes its entry (not when won),
   * and `tidy` the parent when nothing else uses it (a waiter giving up; a
   * failed try leaves that to the holder).
   */
  async leave(place: Place, remove: boolean, tidyUp = false): Promise<void> {
    if (![...this.#places.values()].includes(place)) return;
    this.forget(place);
    if (!remove || place.session.lost.aborted) return;
    const { session, path, parent } = place;
    await session.remove(path, -1).catch(ignore(ZkCode.NO_NODE));
    if (tidyUp) await tidy(session, parent);
  }

  /**
   * Looks at the queue: resolves a claim when the place may hold and a slot
   * is free, else arms what a waiter waits on (wait mode).
   */
  async examine(
    place: Place,
    request: LockRequest,
  ): Promise<ZooKeeperClaim | undefined> {
    const { session, parent, name } = place;
    const { signal, limit } = request;
    const startedAt = performance.now();
    for (let round = 0; round < ROUNDS + 2 * limit; round++) {
      const read = await Promise.all([
        session.getChildren(parent, signal),
        session.getData(parent, signal),
      ]).catch((error) => {
        // The parent went with the entry (a forced release): queue again.
        if (codeOf(error) === ZkCode.NO_NODE) return undefined;
        throw error;
      });
      if (!read) {
        this.forget(place);
        return undefined;
      }
      const [{ children }, parentNode] = read;
      const queue = entriesOf(children);
      const index = queue.indexOf(name);
      place.lapseAt = undefined;
      if (index < 0) {
        // Deleted out of band: the next attempt queues again, at the back.
        this.forget(place);
        return undefined;
      }
      const stored = storedLimit(parentNode.data);
      if (stored !== limit) {
        if (await this.#relayout(place, request, queue, children, parentNode)) {
          continue;
        }
        throw new LimitMismatchError(request.name, limit, stored);
      }
      if (index >= limit) {
        if (request.wait) this.#watchAhead(place, queue, index, limit);
        return undefined;
      }
      const slots = await readSlots(session, parent, limit, parentNode, signal);
      const entries = new Set(queue);
      const holding = new Set(slots.map((slot) => slot.record?.entry));
      // Older entries take their slots first, so tokens keep their order.
      const unseated = queue.slice(0, index).filter((entry) =>
        !holding.has(entry)
      );
      const { free, waitMs } = await this.#judge(place, slots, entries, signal);
      if (unseated.length > 0) {
        if (free.length > unseated.length) {
          // They are taking their slots now, and one is left for this one.
          await this.#seated(place, unseated[0], signal);
          continue;
        }
        if (request.wait) {
          this.#arm(place, [{
            path: `${parent}/${unseated[0]}`,
            dataToo: true,
          }]);
        }
        return undefined;
      }
      if (free.length === 0) {
        if (waitMs === Infinity) return undefined;
        place.lapseAt = performance.now() + waitMs;
        if (request.wait) {
          // A timed record may be cleared early (a forced release), and a
          // holder's release frees its slot at once.
          this.#arm(place, [
            ...slots.filter((slot) => standing(slot, entries, name) === "timed")
              .map((slot) => ({ path: slot.path, dataToo: true })),
            ...queue.slice(0, limit).filter((entry) => entry !== name).map(
              (entry) => ({ path: `${parent}/${entry}`, dataToo: false }),
            ),
          ]);
        }
        return undefined;
      }
      const claim = await this.#take(place, request, free[0], startedAt);
      if (claim) return claim;
      if (this.get(request.owner) !== place) return undefined;
    }
    return undefined;
  }

  /**
   * The slots free for this place, lowest first (empty, its own, or run out
   * by the server's clock), and the milliseconds until the first timed
   * record runs out (`Infinity` without one).
   */
  async #judge(
    place: Place,
    slots: readonly Slot[],
    entries: ReadonlySet<string>,
    signal: AbortSignal,
  ): Promise<{ free: Slot[]; waitMs: number }> {
    const { session, path, value, name } = place;
    const timed = slots.filter((slot) =>
      standing(slot, entries, name) === "timed"
    );
    const now = timed.length > 0
      ? await serverNow(session, path, value, signal)
      : 0;
    let waitMs = Infinity;
    const free = slots.filter((slot) => {
      const how = standing(slot, entries, name);
      if (how === "free") return true;
      if (how === "held") return false;
      const left = recordEnd(slot.record!, slot.stat!) - now;
      if (left > 0) waitMs = Math.min(waitMs, left);
      return left <= 0;
    });
    return { free, waitMs };
  }

  /**
   * Waits, briefly, until an older entry that may hold has taken its slot
   * (it writes itself) or gone.
   */
  async #seated(
    place: Place,
    entry: string,
    signal: AbortSignal,
  ): Promise<void> {
    const stop = AbortSignal.any([signal, AbortSignal.timeout(SEAT_WAIT_MS)]);
    await new Promise<void>((resolve) => {
      stop.addEventListener("abort", () => resolve(), { once: true });
      place.session.watch(`${place.parent}/${entry}`, () => resolve(), {
        dataToo: true,
        signal: stop,
      }).catch(() => resolve());
    });
    signal.throwIfAborted();
  }

  /** Writes the record into the chosen slot and makes the claim. */
  async #take(
    place: Place,
    request: LockRequest,
    slot: Slot,
    startedAt: number,
  ): Promise<ZooKeeperClaim | undefined> {
    const { session, path, name } = place;
    const { signal, limit } = request;
    const record: SlotRecord = {
      owner: request.owner,
      node: request.node,
      entry: name,
      guardMs: request.guardMs,
      leaseMs: request.expiresInMs,
    };
    const written = await takeSlot(session, slot, record, signal);
    if (!written) return undefined;
    let deleted = false;
    let onDeleted: () => void = () => deleted = true;
    // A holder of a semaphore writes its slot into its entry: the write also
    // wakes the waiter behind it. ZooKeeper runs a session's requests in
    // order, so the watch is armed after the write.
    const clear = () =>
      session.setData(slot.path, new Uint8Array(), written.version)
        .catch(ignore(ZkCode.BAD_VERSION, ZkCode.NO_NODE));
    const [, stat] = await Promise.all([
      limit > 1
        ? session.setData(
          path,
          encodeValue({
            owner: request.owner,
            node: request.node,
            slot: slot.slot,
          }),
          -1,
          signal,
        ).catch(ignore(ZkCode.NO_NODE))
        : undefined,
      session.watch(path, () => onDeleted(), { signal }),
    ]).catch(async (error) => {
      // No claim was handed out: the slot must not stay taken for a lease.
      await clear().catch(() => {});
      throw error;
    });
    if (!stat) {
      // The entry went (a forced release) after the record was written.
      await clear();
      this.forget(place);
      return undefined;
    }
    const claim = new ZooKeeperClaim({
      token: bigintOf(stat.czxid),
      lock: request.name,
      session,
      parent: place.parent,
      entry: path,
      slot: slot.slot,
      record,
      recordPath: slot.path,
      recordVersion: written.version,
      since: msOf(written.mtime),
      acquiredAt: startedAt,
      expiresInMs: request.expiresInMs,
      onDone: (done) => this.held.delete(done),
    });
    onDeleted = () => claim.gone();
    if (deleted) claim.gone();
    this.held.add(claim);
    return claim;
  }

  /** Arms the watch of a waiter behind the entries that may hold. */
  #watchAhead(
    place: Place,
    queue: readonly string[],
    index: number,
    limit: number,
  ): void {
    const { parent } = place;
    if (limit === 1 || index > limit) {
      const path = `${parent}/${queue[index - 1]}`;
      this.#arm(place, [{ path, dataToo: limit > 1 }]);
    } else {
      this.#arm(
        place,
        queue.slice(0, limit).map((entry) => ({
          path: `${parent}/${entry}`,
          dataToo: false,
        })),
      );
    }
  }

  /**
   * Watches each path for its deletion (and with `dataToo` for a write),
   * unless the same watch is armed already; `place.wake` resolves on the
   * first event.
   */
  #arm(place: Place, watched: { path: string; dataToo: boolean }[]): void {
    const key = JSON.stringify(watched);
    if (place.watching === key) return;
    place.watching = key;
    place.wake = new Promise<void>((resolve) => {
      const fire = () => {
        if (place.watching === key) place.watching = undefined;
        resolve();
      };
      Promise.all(
        watched.map(({ path, dataToo }) =>
          place.session.watch(path, fire, { dataToo })
        ),
      ).catch(fire);
    });
  }

  /**
   * Rewrites a lock's layout for the request's limit, when the place's
   * entry is the only one and every record of the stored layout is empty or
   * has run out by the server's clock. Resolves false when the lock is in
   * use under the stored limit.
   */
  async #relayout(
    place: Place,
    request: LockRequest,
    queue: readonly string[],
    children: readonly string[],
    parentNode: NodeData,
  ): Promise<boolean> {
    const { session, parent, path, value, name } = place;
    const { signal } = request;
    if (queue.some((entry) => entry !== name)) return false;
    const slotNodes = await readSlotNodes(session, parent, children, signal);
    const records = storedLimit(parentNode.data) === 1
      ? [...slotNodes, ...await readSlots(session, parent, 1, parentNode)]
      : slotNodes;
    const timed = records.filter((slot) => slot.record);
    if (timed.length > 0) {
      const now = await serverNow(session, path, value, signal);
      if (timed.some((slot) => recordEnd(slot.record!, slot.stat!) > now)) {
        return false;
      }
    }
    const ops: TxnOp[] = [
      ...slotNodes.map((slot) => ({
        remove: slot.path,
        version: slot.stat!.version,
      })),
      {
        setData: parent,
        data: parentValue(request.limit),
        version: parentNode.stat.version,
      },
    ];
    await session.transaction(ops, signal).catch((error) => {
      if (!raced(error)) throw error;
    });
    return true;
  }
}
