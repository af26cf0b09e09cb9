/**
 * A held Redis lock slot: renew and release compare the exact value the
 * acquire script stored, so a stale holder never touches a newer one's key.
 *
 * A Redis server that restarts without persistence (or fails over, or
 * evicts) forgets the key while the holder still runs its job. A renewal
 * would notice only a third of the TTL later, so when the command
 * connection drops, `recheck` looks at the key as soon as the server
 * answers again, and aborts `lost` when it is gone.
 *
 * @module
 */

import {
  type Claim,
  LockLostError,
  type LockRequest,
} from "../../src/backend.ts";
import { abortableDelay } from "../../src/timing.ts";
import type { RedisLinks } from "./client.ts";
import { keysOf, wholeMs } from "./keys.ts";
import { RELEASE, RENEW } from "./scripts.ts";

/** How often a holder tries to reach the server again after a drop. */
const RECHECK_EVERY_MS = 100;
/** The bound on one look at the key while reconnecting. */
const RECHECK_TIMEOUT_MS = 2_000;

/** What a claim needs from its backend. */
export interface ClaimHost {
  readonly links: RedisLinks;
  /** The claim is released: stop watching it. */
  forget(claim: RedisClaim): void;
}

/** One slot held by one owner. */
export class RedisClaim implements Claim {
  readonly #lost = new AbortController();
  readonly lost: AbortSignal = this.#lost.signal;
  readonly #key: string;
  #released = false;
  #checking = false;

  /**
   * @param token the fencing token
   * @param slot the slot held
   * @param value the exact value stored in the slot key
   * @param request the request that won it
   * @param host the backend
   */
  constructor(
    readonly token: bigint,
    readonly slot: number,
    readonly value: string,
    readonly request: LockRequest,
    private readonly host: ClaimHost,
  ) {
    this.#key = keysOf(request.name).slot(slot);
  }

  #lose(why: string): LockLostError {
    const error = new LockLostError(this.request.name, why);
    this.#lost.abort(error);
    return error;
  }

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const { limit } = keysOf(this.request.name);
    const renewed = await this.host.links.run(
      (client) =>
        client.eval(
          RENEW,
          2,
          this.#key,
          limit,
          this.value,
          wholeMs(expiresInMs),
          String(this.request.limit),
        ),
      signal,
    );
    if (renewed !== 1) {
      throw this.#lose(
        "the renewal was refused: the key expired, was deleted or is held by another owner",
      );
    }
  }

  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.host.forget(this);
    const { name, limit, channel } = keysOf(this.request.name);
    await this.host.links.run((client) =>
      client.eval(
        RELEASE,
        2,
        this.#key,
        limit,
        this.value,
        holdMs > 0 ? wholeMs(holdMs) : "0",
        channel,
        name,
        String(this.request.limit),
      )
    );
  }

  /**
   * Looks at the key once the server answers again, after the command
   * connection dropped: gone or changed means a restart, a failover or an
   * eviction lost it, and `lost` aborts now rather than at the next
   * renewal. Keeps trying until it gets an answer, or the claim ends.
   */
  async recheck(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      while (
        !this.#released && !this.lost.aborted && !this.host.links.closed
      ) {
        try {
          const value = await this.host.links.run(
            (client) => client.get(this.#key),
            AbortSignal.timeout(RECHECK_TIMEOUT_MS),
          );
          if (value !== this.value && !this.#released) {
            this.#lose(
              "the connection to the server dropped, and the key was gone when it came back (a restart, failover or eviction lost it)",
            );
          }
          return;
        } catch {
          await abortableDelay(RECHECK_EVERY_MS);
        }
      }
    } finally {
      this.#checking = false;
    }
  }
}
