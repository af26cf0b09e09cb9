/**
 * A held memcached lock slot. Renew and release are compare-and-swap on the
 * slot item while it holds this claim's exact value, so a stale holder never
 * frees or extends a newer one's lock. A renewal rewrites the value (its
 * `until`), so the claim keeps the value it last wrote.
 *
 * memcached forgets every lock when it restarts. When a socket to the
 * server drops, `recheck` looks at the item as soon as the server answers
 * again, and aborts `lost` when it is gone, rather than at the next renewal.
 *
 * @module
 */

import {
  type Claim,
  LockLostError,
  type LockRequest,
} from "../../src/backend.ts";
import { abortableDelay } from "../../src/timing.ts";
import { holderValue, type Keys, type StoredHolder } from "./keys.ts";
import {
  expirySeconds,
  Op,
  Status,
  storageExtras,
  text,
  touchExtras,
} from "./protocol.ts";
import type { MemcachedStore } from "./store.ts";

/** How often a holder tries to reach the server again after a drop. */
const RECHECK_EVERY_MS = 100;

/** What a claim needs from its backend. */
export interface ClaimHost {
  readonly store: MemcachedStore;
  /** The server's clock now, Unix ms, as last measured (whole seconds). */
  serverNowMs(): number;
  /** The claim is released: stop watching it. */
  forget(claim: MemcachedClaim): void;
}

/** One slot held by one owner. */
export class MemcachedClaim implements Claim {
  readonly #lost = new AbortController();
  readonly lost: AbortSignal = this.#lost.signal;
  readonly #key: string;
  #value: string;
  /** The value a renewal in flight is writing. */
  #next?: string;
  #released = false;
  #checking = false;

  /**
   * @param token the fencing token
   * @param slot the slot held
   * @param holder what the value says
   * @param value the exact value stored in the slot item
   * @param request the request that won it
   * @param keys the lock's keys
   * @param host the backend
   */
  constructor(
    readonly token: bigint,
    readonly slot: number,
    private readonly holder: StoredHolder,
    value: string,
    readonly request: LockRequest,
    private readonly keys: Keys,
    private readonly host: ClaimHost,
  ) {
    this.#key = keys.slot(slot);
    this.#value = value;
  }

  #lose(why: string): LockLostError {
    const error = new LockLostError(this.request.name, why);
    this.#lost.abort(error);
    return error;
  }

  async renew(expiresInMs: number, signal: AbortSignal): Promise<void> {
    const { store } = this.host;
    const { route, limit } = this.keys;
    const next = holderValue({
      ...this.holder,
      until: this.host.serverNowMs() + expiresInMs,
    });
    const expiry = expirySeconds(expiresInMs);
    this.#next = next;
    let renewed: boolean;
    try {
      renewed = await store.swap(route, this.#key, (v) => v === this.#value, {
        op: Op.set,
        extras: storageExtras(expiry),
        value: next,
      }, signal);
    } finally {
      this.#next = undefined;
    }
    if (!renewed) {
      throw this.#lose(
        "the renewal was refused: the item expired, was deleted or is held by another owner",
      );
    }
    this.#value = next;
    // The stored limit lives as long as its holders renew it.
    const touched = await store.send(route, Op.touch, limit, {
      extras: touchExtras(expiry),
    }, signal).catch(() => undefined);
    if (touched?.status === Status.notFound) {
      await store.send(route, Op.add, limit, {
        extras: storageExtras(expiry),
        value: String(this.request.limit),
      }, signal).catch(() => undefined);
    }
  }

  async release(holdMs: number): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.host.forget(this);
    const now = this.host.serverNowMs();
    // A renewal in flight may be rewriting the value: both are ours.
    await this.host.store.swap(
      this.keys.route,
      this.#key,
      (v) => v === this.#value || v === this.#next,
      holdMs > 0
        ? {
          op: Op.set,
          extras: storageExtras(expirySeconds(holdMs)),
          value: holderValue({
            ...this.holder,
            until: now + holdMs,
            released: now,
          }),
        }
        : { op: Op.delete },
    );
  }

  /**
   * Looks at the item once the server answers again, after a socket
   * dropped: gone or changed means a restart or an eviction lost it, and
   * `lost` aborts now. Keeps trying until it gets an answer, or the claim
   * ends.
   */
  async recheck(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    const { store } = this.host;
    try {
      while (!this.#released && !this.lost.aborted && !store.closed) {
        try {
          const got = await store.send(
            this.keys.route,
            Op.get,
            this.#key,
            {},
            AbortSignal.timeout(store.target.timeoutMs),
          );
          store.expect(got, Status.ok, Status.notFound);
          const value = got.status === Status.ok ? text(got.value) : undefined;
          const ours = value !== undefined &&
            (value === this.#value || value === this.#next);
          if (!ours && !this.#released) {
            this.#lose(
              "a connection to the server dropped, and the item was gone when it came back (a restart or an eviction lost it)",
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
