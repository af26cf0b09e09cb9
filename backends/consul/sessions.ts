/**
 * Consul sessions as the consul backend makes them, and the guard session
 * that keeps a released key for the guard time.
 *
 * - **No health checks.** A session with Consul's default `serfHealth`
 *   check is deleted as soon as the holder's node is marked critical
 *   (agent/consul/state/catalog.go ensureCheckTxn → deleteSessionTxn): a
 *   partitioned, paused or restarting agent would free the lock while its
 *   job still runs. Ours have none (client.ts sends `Checks: []`), so only
 *   their TTL, an explicit destroy, or the node leaving the catalog ends
 *   them (catalog.go deleteNodeTxn destroys every session of a node).
 * - **Lock-delay for that last case.** When a session is invalidated, its
 *   keys can't be locked again for its lock-delay (state/session.go
 *   deleteSessionTxn, at most 60 s). It defaults to the session's TTL, up to
 *   60 s: the holder stops its job within the TTL of its last confirmed
 *   renewal, so a contender can't get in while the job runs even if the
 *   holder's node is deregistered right after that renewal.
 * - **TTL bounds.** Consul takes TTLs from the servers' `session_ttl_min`
 *   (10 s unless configured; `session-ttl-min=` in the URI says otherwise)
 *   to 24 h, and reaps a session between TTL and 2 × TTL after its last
 *   renewal (session_ttl.go, SessionTTLMultiplier). A server that refuses a
 *   TTL names its range ("must be between [10s=24h0m0s]"); the backend then
 *   learns the minimum and retries with it, a longer TTL being only slower.
 * - **Guard time on release.** A fresh guard session, whose lock-delay is
 *   what is left of the guard time (at most 60 s), takes over in one
 *   `/v1/txn`; destroying it starts that delay by the leader's clock. A
 *   longer guard time rests on the guard session's TTL for the rest. Consul
 *   offers no way to end a lock-delay early, so the mutex puts it on a
 *   separate guard key that its value points to: a forced release drops
 *   the pointer, and the lock is free at once.
 *
 * @module
 */

import { type ConsulApi, ConsulCallError } from "./client.ts";
import { decodeHolder, encodeHolder } from "./keys.ts";

/** Consul's default `session_ttl_min`, in milliseconds. */
export const DEFAULT_TTL_MIN_MS = 10_000;
/** structs.SessionTTLMax. */
export const MAX_TTL_MS = 86_400_000;
/** structs.MaxLockDelay: what Consul clamps a lock-delay to. */
export const MAX_LOCK_DELAY_MS = 60_000;

/** What the backend knows of the servers' session limits; learned as it goes. */
export interface SessionLimits {
  /** The shortest TTL the servers take, in milliseconds. */
  ttlMinMs: number;
  /** The lock-delay the URI asks for, or `undefined` for "the TTL". */
  readonly lockDelayMs: number | undefined;
}

const GO_UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go `time.Duration` string such as `1m30s`, in milliseconds. */
function goDurationMs(text: string): number | undefined {
  let total = 0;
  const part = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  for (part.lastIndex = 0; part.lastIndex < text.length;) {
    const found = part.exec(text);
    if (!found) return undefined;
    total += Number(found[1]) * GO_UNIT_MS[found[2]];
  }
  return text === "" ? undefined : total;
}

/**
 * The TTL range a refusal names: Session.Apply's "Invalid Session TTL '…',
 * must be between [10s=24h0m0s]" (agent/consul/session_endpoint.go).
 */
export function ttlRangeOf(
  error: unknown,
): { minMs: number; maxMs: number } | undefined {
  if (!(error instanceof ConsulCallError)) return undefined;
  const found = /must be between \[([^=\]]+)=([^\]]+)\]/.exec(error.message);
  const minMs = found && goDurationMs(found[1]);
  const maxMs = found && goDurationMs(found[2]);
  return minMs && maxMs ? { minMs, maxMs } : undefined;
}

/** A TTL as Consul takes it: whole seconds, at least `minMs`. */
function ttlText(ms: number, minMs: number): string {
  return `${Math.ceil(Math.max(minMs, ms) / 1000)}s`;
}

/**
 * Creates a check-less session that lasts `ttlMs` (raised to the servers'
 * minimum) with the lock-delay `lockDelayMs`, or the TTL's (≤ 60 s) when
 * that is undefined. Resolves its ID and the TTL it got.
 */
export async function createSession(
  api: ConsulApi,
  limits: SessionLimits,
  name: string,
  ttlMs: number,
  signal?: AbortSignal,
  lockDelayMs?: number,
): Promise<{ id: string; ttlMs: number }> {
  for (let attempt = 0;; attempt++) {
    const ttl = ttlText(ttlMs, limits.ttlMinMs);
    const sessionTtlMs = Number(ttl.slice(0, -1)) * 1000;
    const delayMs = Math.min(
      MAX_LOCK_DELAY_MS,
      lockDelayMs ?? limits.lockDelayMs ?? sessionTtlMs,
    );
    try {
      const id = await api.createSession({
        name,
        ttl,
        // Whole milliseconds: Consul reads under 1 µs as seconds.
        lockdelay: `${Math.ceil(delayMs)}ms`,
      }, signal);
      return { id, ttlMs: sessionTtlMs };
    } catch (error) {
      const range = ttlRangeOf(error);
      if (range && sessionTtlMs > range.maxMs) {
        throw new RangeError(
          `A Consul session lasts at most ${
            range.maxMs / 1000
          } s on these servers, not ${sessionTtlMs / 1000} s`,
        );
      }
      if (!range || attempt > 0 || range.minMs <= limits.ttlMinMs) throw error;
      limits.ttlMinMs = range.minMs;
    }
  }
}

/**
 * Keeps a released key out of others' reach for `holdMs`: one `/v1/txn`
 * unlocks `key` (writing `guardUntil` into its value) and locks a guard key
 * with a fresh guard session; destroying that session deletes the guard key
 * and starts its lock-delay. The guard key is `probe` when given (the
 * mutex: contenders must lock it too, and a force release only has to drop
 * the pointer to it), else `key` itself (a semaphore's contender key, which
 * pruning must lock). Resolves false when `session` no longer held `key`.
 */
export async function holdFor(
  api: ConsulApi,
  limits: SessionLimits,
  key: string,
  session: string,
  value: string,
  holdMs: number,
  probe?: string,
): Promise<boolean> {
  const delayMs = Math.min(Math.ceil(holdMs), MAX_LOCK_DELAY_MS);
  const holder = decodeHolder(value);
  const marked = encodeHolder({
    ...holder,
    guardUntil: new Date(Date.now() + holdMs).toISOString(),
    ...(probe ? { probe } : {}),
  });
  const guard = await createSession(
    api,
    limits,
    `coolock guard ${holder.owner}`,
    holdMs - delayMs,
    undefined,
    delayMs,
  );
  const handed = await api.txn([
    { Verb: "unlock", Key: key, Session: session, Value: marked },
    { Verb: "lock", Key: probe ?? key, Session: guard.id, Value: marked },
  ]).catch((error) => {
    void api.destroySession(guard.id).catch(() => {});
    throw error;
  });
  if (!handed.ok || holdMs <= MAX_LOCK_DELAY_MS) {
    // Destroying the guard session deletes its key and starts the delay.
    await api.destroySession(guard.id);
  }
  if (handed.ok && holdMs <= MAX_LOCK_DELAY_MS && !probe) {
    // Written back without a session, so that `status` sees the guard.
    await api.put(key, marked, 0).catch(() => false);
  }
  return handed.ok;
}
