/**
 * Releasing what a backend still holds when it closes, keeping each lock for
 * what is left of its guard time.
 *
 * @module
 */

import type { Claim, LockRequest } from "./backend.ts";

/**
 * A claim that remembers when it was acquired and for which request.
 *
 * @example
 * ```ts
 * import type { HeldClaim } from "./holdings.ts";
 * const guardLeft = (claim: HeldClaim) =>
 *   claim.acquiredAt + claim.request.guardMs - performance.now();
 * ```
 */
export interface HeldClaim extends Claim {
  /** `performance.now()` at acquisition. */
  readonly acquiredAt: number;
  /** The request that acquired it. */
  readonly request: LockRequest;
}

/**
 * Releases every claim, each held for what is left of its guard time;
 * failures are left to the locks' expiry.
 *
 * @example
 * ```ts
 * import { releaseHeld } from "./holdings.ts";
 * await releaseHeld(new Set());
 * ```
 */
export async function releaseHeld(
  held: Iterable<HeldClaim>,
): Promise<void> {
  await Promise.allSettled(
    [...held].map((claim) =>
      claim.release(
        Math.max(
          0,
          claim.acquiredAt + claim.request.guardMs - performance.now(),
        ),
      )
    ),
  );
}
