/**
 * A held ZooKeeper lock slot: an entry that may hold, and the slot record
 * it wrote. Each renewal rewrites the record (compare-and-set on its
 * version, in one transaction with a check that the entry still exists), so
 * the record keeps others out until the lease's end by the server's clock,
 * whatever happens to the session. A release clears the record, or leaves
 * a guard-only one, and deletes the entry, in one transaction, so the
 * waiter it wakes finds the slot as it was left.
 *
 * The claim is lost when its session is, when its entry is deleted (a
 * forced release, a session closed out of band), or when it goes unrenewed
 * past its lease: that deletes its entry, as a key with a TTL would expire,
 * and leaves the record to run out on the server's clock.
 *
 * @module
 */

import { type Claim, LockLostError } from "../../src/backend.ts";
import { later } from "../../src/timing.ts";
import { codeOf, ignore, msOf, ZkCode } from "./client.ts";
import { encodeRecord, type SlotRecord } from "./keys.ts";
import type { ZkSession } from "./session.ts";
import { raced, tidy } from "./slots.ts";

/** What a claim holds, as the queue won it. */
export interface Holding {
  /** The fencing token: the entry's czxid. */
  readonly token: bigint;
  /** The lock name, for messages. */
  readonly lock: string;
  readonly session: ZkSession;
  /** The lock's parent node. */
  readonly parent: string;
  /** The entry's path. */
  readonly entry: string;
  readonly slot: number;
  /** The record as written at acquisition. */
  readonly record: SlotRecord;
  /** The node that holds the record. */
  readonly recordPath: string;
  /** The record node's version after the acquisition's write. */
  readonly recordVersion: number;
  /** The acquisition's write time, in server ms. */
  readonly since: number;
  /** When the winning attempt started, on performance.now(). */
  readonly acquiredAt: number;
  /** How long the claim lasts without renewal. */
  readonly expiresInMs: number;
  /** Called once the claim is released. */
  readonly onDone: (claim: ZooKeeperClaim) => void;
}

/** The claim on a slot that an entry won. */
export class ZooKeeperClaim implements Claim {
  readonly token: bigint;
  readonly slot: number;
  /** Aborts when the session is lost, the entry deleted or the claim lapsed. */
  readonly lost: AbortSignal;
  readonly #held: Holding;
  readonly #deleted = new AbortController();
  #recordVersion: number;
  #released = false;
  #cancelLapse = () => {};

  /**
   * Starts the claim's lapse timer.
   *
   * @param held what the queue won
   */
  constructor(held: Holding) {
    this.#held = held;
    this.token = held.token;
    this.slot = held.slot;
    this.#recordVersion = held.recordVersion;
    this.lost = AbortSignal.any([held.session.lost, this.#deleted.signal]);
    this.#lapseAt(held.acquiredAt + held.expiresInMs);
  }

  /**
   * The session outlives an owner that stopped renewing (its lifecycle gave
   * the lease up as lost while the session held on), so an unrenewed claim
   * lapses like a key with a TTL: its entry goes, and its record runs out
   * on the server's clock.
   */
  #lapseAt(due: number): void {
    this.#cancelLapse();
    this.#cancelLapse = later(() => {
      this.#deleted.abort(
        new Error("No renewal came in time, so the lock lapsed"),
      );
      this.#released = true;
      this.#held.onDone(this);
      const { session, entry } = this.#held;
      session.remove(entry, -1).catch(() => {});
    }, due - performance.now());
  }

  /** Called when the watch sees the held entry deleted. */
  gone(): void {
    if (this.#released) return;
    this.#deleted.abort(
      new Error(`The lock node '${this.#held.entry}' was deleted`),
    );
  }

  #lostError(): LockLostError {
    return new LockLostError(
      this.#held.lock,
      (this.lost.reason as Error).message.replace(/^./, (c) => c.toLowerCase()),
    );
  }

  /** Rewrites the record for `expiresInMs` more, if this claim still holds. */
  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    if (this.lost.aborted) throw this.#lostError();
    const { session, entry, record, recordPath, acquiredAt } = this.#held;
    const sentAt = performance.now();
    // The guard left, counted from a local time no later than the write's:
    // the record never holds for less than the lifecycle's guard.
    const guardMs = Math.max(
      0,
      Math.ceil(record.guardMs - (sentAt - acquiredAt)),
    );
    const next: SlotRecord = {
      ...record,
      guardMs,
      leaseMs: expiresInMs,
      since: this.#held.since,
    };
    try {
      const [, { stat }] = await session.transaction([
        { check: entry },
        {
          setData: recordPath,
          data: encodeRecord(next),
          version: this.#recordVersion,
        },
      ], signal);
      this.#recordVersion = stat!.version;
    } catch (error) {
      if (!raced(error)) throw error;
      throw new LockLostError(
        this.#held.lock,
        codeOf(error) === ZkCode.NO_NODE
          ? `the lock node '${entry}' or its record is gone`
          : `its record '${recordPath}' was rewritten by another owner`,
      );
    }
    if (!this.#released && !this.lost.aborted) {
      this.#lapseAt(sentAt + expiresInMs);
    }
  }

  /**
   * Clears the record (or leaves a guard-only one for `holdMs`) and deletes
   * the entry, in one transaction; without guard time, then tidies the
   * lock's nodes away if nothing else uses them.
   */
  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#cancelLapse();
    this.#held.onDone(this);
    const { session, entry, record, recordPath, parent } = this.#held;
    if (session.lost.aborted) return;
    const left = holdMs > 0
      ? encodeRecord({
        owner: record.owner,
        node: record.node,
        guardMs: Math.ceil(holdMs),
        leaseMs: 0,
        since: this.#held.since,
      })
      : new Uint8Array();
    let now: number;
    try {
      const [{ stat }] = await session.transaction([
        { setData: recordPath, data: left, version: this.#recordVersion },
        { remove: entry, version: -1 },
      ]);
      now = msOf(stat!.mtime);
    } catch (error) {
      if (!raced(error)) throw error;
      // The record is another owner's now (a forced release, a lapse):
      // leave it, and only take the entry away.
      await session.remove(entry, -1).catch(ignore(ZkCode.NO_NODE));
      return;
    }
    if (holdMs <= 0) await tidy(session, parent, now);
  }
}
