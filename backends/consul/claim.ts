/**
 * A held Consul lock slot: a session that holds a key (the mutex key, or
 * its contender key in a semaphore). Renewal renews the session, then
 * reads that the key is still its own.
 *
 * A monitor watches the key with blocking queries, as api/lock.go's
 * monitorLock does, and reports the lock lost when the key is deleted or
 * taken, and also at the monitor's **first error**, as monitorLock does by
 * default (MonitorRetries = 0). An error means coolock can no longer see
 * its key, and the commonest cause, the agent stopping or restarting, is
 * itself a graceful leave that deregisters the node and with it every
 * session on it (state/catalog.go deleteNodeTxn), health checks or not;
 * after that only lock-delay (at most 60 s) keeps others out. Ending the
 * job at once is the safe side; the cost is that a leader election or an
 * agent restart ends it with exit 75.
 *
 * @module
 */

import {
  type Claim,
  LockLostError,
  type LockRequest,
} from "../../src/backend.ts";
import { abortableDelay } from "../../src/timing.ts";
import { ConsulCallError } from "./client.ts";

const MONITOR_WAIT_MS = 30_000;

/** What a claim needs from its recipe (mutex.ts, semaphore.ts). */
export interface Holding {
  /**
   * Reads whether the session still holds its slot; blocking past `index`
   * when given. `why` says what is wrong when it does not.
   */
  check(
    signal: AbortSignal,
    index?: string,
    waitMs?: number,
  ): Promise<{ held: boolean; why: string; index: string }>;
  /** `PUT /v1/session/renew`; rejects with a 404 when the session is gone. */
  renew(signal: AbortSignal): Promise<void>;
  /** Gives the slot back, held `holdMs` more by a guard, then ends the session. */
  release(holdMs: number): Promise<void>;
}

/** What a won attempt (mutex.ts, semaphore.ts) hands the claim. */
export interface Won {
  readonly token: bigint;
  readonly slot: number;
  /** The index to start monitoring from. */
  readonly index: string;
  readonly holding: Holding;
}

/** The claim of a session on a slot. */
export class ConsulClaim implements Claim {
  readonly #lost = new AbortController();
  readonly lost: AbortSignal = this.#lost.signal;
  readonly #watching = new AbortController();
  readonly #monitor: Promise<void>;
  #released = false;

  /** Starts monitoring from the index of the write or read that confirmed it. */
  constructor(
    readonly token: bigint,
    readonly slot: number,
    private readonly request: LockRequest,
    private readonly holding: Holding,
    private readonly onDone: (claim: ConsulClaim) => void,
    index: string,
  ) {
    this.#monitor = this.#watch(index);
  }

  async #watch(index: string): Promise<void> {
    const signal = this.#watching.signal;
    while (!signal.aborted) {
      let read;
      try {
        read = await this.holding.check(signal, index, MONITOR_WAIT_MS);
      } catch (error) {
        if (this.#released || signal.aborted) return;
        this.#lose(
          `Consul could not confirm it (${
            (error as Error).message
          }), so it may be gone`,
          error,
        );
        return;
      }
      if (this.#released) return;
      if (!read.held) {
        this.#lose(read.why);
        return;
      }
      // Indexes can go backwards (a snapshot restore): start over then.
      index = BigInt(read.index) < BigInt(index) ? "0" : read.index;
    }
  }

  #lose(why: string, cause?: unknown): void {
    this.#lost.abort(new LockLostError(this.request.name, why, { cause }));
  }

  // A session's TTL is fixed at creation; it was the first `expiresInMs`,
  // which no later renewal exceeds (the guard time only shrinks).
  async renew(_expiresInMs: number, signal: AbortSignal): Promise<void> {
    try {
      await this.holding.renew(signal);
    } catch (error) {
      if (error instanceof ConsulCallError && error.status === 404) {
        throw new LockLostError(
          this.request.name,
          "its Consul session expired or was destroyed",
        );
      }
      throw error;
    }
    const read = await this.holding.check(signal);
    if (!read.held) throw new LockLostError(this.request.name, read.why);
  }

  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      await this.holding.release(holdMs);
    } finally {
      // The release changed the key, which ends the monitor's query by
      // itself; only a monitor still blocked after a second is aborted.
      const settled = new AbortController();
      await Promise.race([
        this.#monitor,
        abortableDelay(1_000, settled.signal).catch(() => {}),
      ]);
      settled.abort();
      this.#watching.abort();
      await this.#monitor;
      this.onDone(this);
    }
  }
}
