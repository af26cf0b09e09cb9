/**
 * Consul sessions as the consul backend uses them: TTLs within Consul's
 * limits, and the guard session that keeps a released lock for the guard
 * time. One `/v1/txn` hands the key to a fresh session whose lock-delay is
 * what is left of the guard time (at most 60 s, Consul's limit), and
 * destroying that session starts the delay by the leader's clock. A longer
 * guard time rests on the guard session's TTL for the rest.
 *
 * @module
 */

import type { ConsulApi } from "./client.ts";

/** Consul's shortest session TTL, in milliseconds. */
export const MIN_TTL_MS = 10_000;
const MAX_TTL_MS = 86_400_000;
/** Consul's longest lock-delay, in milliseconds. */
export const MAX_LOCK_DELAY_MS = 60_000;

/**
 * A session TTL as Consul takes it: whole seconds from 10 s to 24 h.
 * Throws `RangeError` past 24 h.
 *
 * @example
 * ```ts
 * import { ttlOf } from "./sessions.ts";
 * console.log(ttlOf(2_500), ttlOf(30_001)); // 10s 31s
 * ```
 */
export function ttlOf(ms: number): string {
  if (ms > MAX_TTL_MS) {
    throw new RangeError(
      `A Consul session lasts at most ${MAX_TTL_MS / 1000} s, not ${
        ms / 1000
      } s`,
    );
  }
  return `${Math.ceil(Math.max(MIN_TTL_MS, ms) / 1000)}s`;
}

/**
 * Hands a held key to a guard session that keeps others out for `holdMs`,
 * then destroys that session where its lock-delay covers the rest.
 *
 * @example
 * ```ts ignore
 * import { holdFor } from "./sessions.ts";
 * await holdFor(api, "coolock/report", session, owner, 5_000);
 * ```
 */
export async function holdFor(
  api: ConsulApi,
  key: string,
  session: string,
  owner: string,
  holdMs: number,
): Promise<void> {
  const delayMs = Math.min(Math.ceil(holdMs), MAX_LOCK_DELAY_MS);
  const guard = await api.createSession({
    name: `coolock guard ${owner}`,
    ttl: ttlOf(holdMs - delayMs),
    lockdelay: `${delayMs}ms`,
  });
  const handed = await api.handOver(
    key,
    session,
    guard,
    owner,
  )
    .catch((error) => {
      void api.destroySession(guard).catch(() => {});
      throw error;
    });
  // Destroying the guard session deletes the key and starts its lock-delay.
  if (!handed || holdMs <= MAX_LOCK_DELAY_MS) {
    await api.destroySession(guard);
  }
}
