/**
 * The one rule for `Backend.close()`, written once: claims that a backend
 * handed out and that nobody released yet are released on close, each held
 * for what is left of its guard time, so that closing a backend early never
 * lets another node in before the guard time ends.
 *
 * A backend wraps every claim it hands out with `track`; the wrapper forgets
 * itself when released, and `releaseAll` in `close()` does the rest.
 *
 * @module
 */

import type { Claim, LockRequest } from "./backend.ts";

/** The claims one backend has handed out and not seen released. */
export class Holdings {
  readonly #held = new Map<Claim, number>();

  /**
   * Tracks `claim`, won for `request`; resolves the claim to hand out. Its
   * guard time is counted from now, which is no earlier than the lifecycle's
   * own count, so a close never holds the lock for less.
   */
  track(claim: Claim, request: LockRequest): Claim {
    const guardEndsAt = performance.now() + request.guardMs;
    const held = this.#held;
    const tracked: Claim = {
      token: claim.token,
      slot: claim.slot,
      lost: claim.lost,
      renew: (expiresInMs, signal) => claim.renew(expiresInMs, signal),
      release(holdMs) {
        held.delete(tracked);
        return claim.release(holdMs);
      },
      holdWhileGroup: claim.holdWhileGroup
        ? (pgid) => claim.holdWhileGroup!(pgid)
        : undefined,
    };
    held.set(tracked, guardEndsAt);
    return tracked;
  }

  /** How many claims are still held. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * Releases every claim still held, each kept for what is left of its
   * guard time; a failed release is left to the lock's expiry.
   */
  async releaseAll(): Promise<void> {
    const now = performance.now();
    const claims = [...this.#held];
    await Promise.allSettled(
      claims.map(([claim, guardEndsAt]) =>
        claim.release(Math.max(0, guardEndsAt - now))
      ),
    );
  }
}
