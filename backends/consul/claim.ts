/**
 * A held Consul lock: the key `coolock/<name>` acquired by a session. A
 * blocking query on the key watches for it being deleted or taken, as
 * `consul lock` monitors its lock; renewal renews the session.
 *
 * @module
 */

import {
  type Claim,
  LockLostError,
  type LockRequest,
} from "../../src/backend.ts";
import { abortableDelay } from "../../src/timing.ts";
import { type ConsulApi, ConsulCallError } from "./client.ts";
import { holdFor } from "./sessions.ts";

const MONITOR_WAIT_MS = 30_000;

/**
 * The claim of a session on a lock's key.
 *
 * @example
 * ```ts ignore
 * import { ConsulClaim } from "./claim.ts";
 * const claim = new ConsulClaim(token, request, key, session, api, () => {}, index);
 * await claim.release(0);
 * ```
 */
export class ConsulClaim implements Claim {
  /** Slots other than 0 come with the semaphore (issue 16). */
  readonly slot = 0;
  readonly #lost = new AbortController();
  readonly lost: AbortSignal = this.#lost.signal;
  readonly #watching = new AbortController();
  readonly #monitor: Promise<void>;
  #released = false;

  /** Starts monitoring the key from the index of the read that confirmed it. */
  constructor(
    readonly token: bigint,
    private readonly request: LockRequest,
    private readonly key: string,
    private readonly session: string,
    private readonly api: ConsulApi,
    private readonly onDone: (claim: ConsulClaim) => void,
    index: string,
  ) {
    this.#monitor = this.#watch(index);
  }

  /** Blocking queries on the key, as `consul lock` monitors its lock. */
  async #watch(index: string): Promise<void> {
    const signal = this.#watching.signal;
    while (!signal.aborted) {
      try {
        const read = await this.api.get(this.key, signal, {
          index,
          ms: MONITOR_WAIT_MS,
        });
        if (this.#released) return;
        if (read.entry?.Session !== this.session) {
          const why = read.entry
            ? "another session holds the key"
            : "the key was deleted";
          this.#lost.abort(new LockLostError(this.request.name, why));
          return;
        }
        // Indexes can go backwards (a snapshot restore): start over then.
        index = BigInt(read.index) < BigInt(index) ? "0" : read.index;
      } catch {
        // The lifecycle's deadline judges an agent that stopped answering.
        await abortableDelay(1_000, signal).catch(() => {});
      }
    }
  }

  // A session's TTL is fixed at creation; it was the first `expiresInMs`,
  // which no later renewal exceeds (the guard time only shrinks).
  async renew(_expiresInMs: number, signal: AbortSignal): Promise<void> {
    try {
      await this.api.renewSession(this.session, signal);
    } catch (error) {
      if (error instanceof ConsulCallError && error.status === 404) {
        throw new LockLostError(
          this.request.name,
          "its Consul session expired or was destroyed",
        );
      }
      throw error;
    }
    const { entry } = await this.api.get(this.key, signal);
    if (entry?.Session !== this.session) {
      throw new LockLostError(
        this.request.name,
        "the key is no longer held by its session",
      );
    }
  }

  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      if (holdMs > 0) {
        // On failure the session stays, and its TTL covers the guard time.
        await holdFor(
          this.api,
          this.key,
          this.session,
          this.request.owner,
          holdMs,
        );
      } else {
        await this.api.lock(
          "release",
          this.key,
          this.session,
          this.request.owner,
        ).catch(() => false);
      }
      await this.api.destroySession(this.session);
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
